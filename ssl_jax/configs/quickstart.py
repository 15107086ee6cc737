"""Quick start: SimCLR then a linear probe on scikit-learn's handwritten digits.

  python main.py --config=configs/quickstart.py --workdir=workdirs/quickstart

Offline, about 2 minutes on 2 CPU cores: the 1,797 8x8 digits that ship with
scikit-learn (upsampled to 16x16; 1,437 train / 360 test) pretrain a small
ConvNet without labels, then a linear probe on the frozen features is
compared with the same probe on the randomly initialised encoder.
"""

from ssl_jax.configs import default
from ssl_jax.data import augment


def get_config():
  c = default.get_config()
  c.dataset = 'sklearn_digits'
  c.encoder = 'convnet'
  c.model.width = 32
  c.model.dense = 0
  c.image_size = 16
  c.batch_size = 256
  c.num_epochs = 60
  c.learning_rate = 2e-3
  c.optimizer.name = 'adam'
  c.optimizer.lr_scaling = 'none'
  c.optimizer.warmup_epochs = 5
  c.optimizer.weight_decay = 0.0
  c.temperature = 0.2
  c.projector.hidden_dims = (128,)
  c.projector.out_dim = 64
  for name in ('view1', 'view2'):
    c.augment[name] = augment.view_config(
        crop_scale=(0.5, 1.0),
        flip_prob=0.0,
        jitter_strength=0.5,
        grayscale_prob=0.0,
        noise_prob=0.5,
        noise_std=0.1,
    )
  c.log_every_steps = 25
  c.checkpoint_every_steps = 100
  c.probe.batch_size = 256
  return c
