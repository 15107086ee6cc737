"""Tiny configs, folders and subprocess environments shared by the tests."""

import functools
import os

import jax

from ssl_jax.configs import default
from ssl_jax.data import augment


def train_apply(model):
  """``model.apply`` in training mode (batch statistics), compiled whole.

  Run op by op, a model's apply dispatches hundreds of small programs, each
  compiled on first use: slower than one compile of the whole.

  Args:
    model: a flax module.

  Returns:
    ``(variables, x, **kwargs) -> (out, {'batch_stats': ...})``, jitted.
  """
  return jax.jit(
      functools.partial(model.apply, train=True, mutable=['batch_stats'])
  )


def make_views(key, images, views, size):
  """``augment.make_views`` compiled whole (see :func:`train_apply`)."""
  return jax.jit(lambda k, x: augment.make_views(k, x, views, size))(
      key, images
  )


def subprocess_env(devices: int = 1, **extra) -> dict[str, str]:
  """The environment of a command run by a test: CPU, ``devices`` devices.

  Keeps the tests' other XLA flags (conftest.py: optimisation level 0), so a
  subprocess compiles its small programs as fast as the test process does.

  Args:
    devices: fake CPU devices in the subprocess.
    **extra: more variables.

  Returns:
    A copy of ``os.environ`` with ``JAX_PLATFORMS`` and ``XLA_FLAGS`` set.
  """
  flags = [
      f
      for f in os.environ.get('XLA_FLAGS', '').split()
      if not f.startswith('--xla_force_host_platform_device_count')
  ]
  flags.append(f'--xla_force_host_platform_device_count={devices}')
  return dict(
      os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS=' '.join(flags), **extra
  )


def tiny_config(**overrides):
  """A SimCLR config that compiles and runs in seconds on CPU."""
  c = default.get_config()
  c.encoder = 'convnet'
  c.model.conv_widths = (8, 8, 8, 8)
  c.model.dense = 0
  c.projector.hidden_dims = (16,)
  c.projector.out_dim = 8
  # DINO's head in place of the projector: 2048-wide, 4,096 prototypes.
  c.dino.hidden_dims = (16,)
  c.dino.bottleneck_dim = 8
  c.dino.out_dim = 32
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


def make_folder(
    root,
    splits=(('train', 3, 8), ('test', 3, 4)),
    size=20,
    seed=0,
    fmt='JPEG',
):
  """Writes a folder dataset of random images: ``root/split/class_k/i.jpg``.

  Args:
    root: the dataset folder to create.
    splits: ``(name, classes, images per class)``; 0 classes writes the
      images directly into the split folder (unlabelled).
    size: image side.
    seed: the pixels' seed.
    fmt: Pillow format of every file.

  Returns:
    ``str(root)``.
  """
  import os  # pylint: disable=g-import-not-at-top

  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(seed)
  ext = {'JPEG': 'jpg', 'PNG': 'png'}.get(fmt, fmt.lower())
  for name, classes, per_class in splits:
    dirs = [f'class_{k}' for k in range(classes)] or ['']
    for d in dirs:
      os.makedirs(os.path.join(root, name, d), exist_ok=True)
      for i in range(per_class):
        # Classes differ in mean brightness, so probes can learn them.
        base = 40 + 170 * (dirs.index(d) / max(1, len(dirs) - 1))
        x = rng.normal(base, 30, (size, size, 3)).clip(0, 255).astype(np.uint8)
        Image.fromarray(x).save(os.path.join(root, name, d, f'{i}.{ext}'), fmt)
  return str(root)


def compiled_step(config, steps_per_epoch=4):
  """``config``'s run, its first state and its compiled train step.

  Args:
    config: the experiment config.
    steps_per_epoch: batches in the stand-in train split (methods size their
      extra state by it).

  Returns:
    ``(run, state, step)``.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from ssl_jax.training import run as run_lib  # pylint: disable=g-import-not-at-top

  run = run_lib.build(config)
  schedule, tx = run.optimizer(steps_per_epoch)
  state = run.create_state(
      tx,
      jax.random.key(0),
      {'train': np.zeros(steps_per_epoch * config.batch_size)},
  )
  return run, state, run.compile_step(tx, schedule)


def with_unlike_target(run, state, scale=1.5):
  """``state`` with its target parameters scaled, so they differ from online.

  Args:
    run: the run that made ``state``.
    state: a state whose ``extra`` holds a momentum target.
    scale: the factor on every target parameter.

  Returns:
    ``(state, target)``: the new state and the target's variables on the host.
  """
  import jax  # pylint: disable=g-import-not-at-top

  target = jax.device_get({
      'params': jax.tree.map(lambda p: scale * p, state.extra['target_params']),
      'batch_stats': state.extra['target_batch_stats'],
  })
  extra = dict(state.extra, target_params=run.replicate(target['params']))
  return state.replace(extra=extra), target


def random_batch(run, size=16, side=16, seed=0):
  """A batch of random uint8 images and labels, sharded as ``run`` trains.

  Args:
    run: the run whose data sharding the batch takes.
    size: images in the batch.
    side: their height and width.
    seed: the NumPy seed.

  Returns:
    ``(images, batch)``: the host images and the device batch.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (size, side, side, 3), np.uint8)
  labels = rng.integers(0, 10, (size,), np.int32)
  batch = jax.device_put({'image': images, 'label': labels}, run.data_sharding)
  return images, batch
