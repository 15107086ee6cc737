"""Tiny configs shared by the tests."""

from ssl_jax.configs import default


def tiny_config(**overrides):
  """A SimCLR config that compiles and runs in seconds on CPU."""
  c = default.get_config()
  c.encoder = 'convnet'
  c.model.conv_widths = (8, 8, 8, 8)
  c.model.dense = 0
  c.projector.hidden_dims = (16,)
  c.projector.out_dim = 8
  c.image_size = 16
  c.batch_size = 16
  c.num_epochs = 2
  c.learning_rate = 0.1
  c.optimizer.warmup_epochs = 1
  c.log_every_steps = 2
  c.checkpoint_every_steps = 4
  c.probe.l2_grid = (1e-3, 1e-1)
  c.probe.max_iters = 30
  c.probe.batch_size = 32
  c.data.prefetch = 1
  c.evals.pictures.enabled = False  # Tested on their own (t-SNE takes seconds).
  c.evals.embedding.max_points = 500
  for k, v in overrides.items():
    node = c
    *path, leaf = k.split('.')
    for p in path:
      node = node[p]
    node[leaf] = v
  return c
