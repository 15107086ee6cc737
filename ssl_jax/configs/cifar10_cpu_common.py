"""The shared CPU-budget setup of the method comparison on CIFAR-10 (not a config).

Every ``*_cifar10_cpu.py`` config starts here, so that the methods compare on
the same encoder, resolution and optimiser family: the small ConvNet with
conv widths 48-96-192-384 and no dense layer (the evaluated representation
is the pooled 384-d conv output), trained on 24 px views and evaluated at
32 px, batch 256, Adam with warmup and cosine, no weight decay, and oneDNN's
convolutions where they are installed (``pip install -e ".[onednn]"``).
"""

from ssl_jax.configs import default


def get_config():
  c = default.get_config()
  c.dataset = 'cifar10'
  c.encoder = 'convnet'
  c.model.conv_widths = (48, 96, 192, 384)
  c.model.dense = 0
  c.image_size = 32
  c.augment.train_size = 24
  c.batch_size = 256
  c.learning_rate = 1.5e-3
  c.optimizer.name = 'adam'
  c.optimizer.lr_scaling = 'none'
  c.optimizer.warmup_epochs = 0.5
  c.optimizer.weight_decay = 0.0
  for view in (c.augment.view1, c.augment.view2):
    view.crop_scale = (0.2, 1.0)
    view.jitter_strength = 0.5
    view.blur_prob = 0.0
  c.log_every_steps = 50
  c.checkpoint_every_steps = 200
  c.cpu_convolutions = 'onednn'
  return c
