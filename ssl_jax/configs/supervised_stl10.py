"""Supervised baseline on STL-10's 5,000 labelled images: the small ConvNet, Adam, 40 epochs.

  python main.py --config=configs/supervised_stl10.py --workdir=/tmp/sup_stl \
      --config.data_dir=DIR

The STL-10 assignment's baseline: 4 conv layers of width 128 + dense 128 at
96 px, Adam 1e-3, batch 64, 40 epochs, dropout 0.5, flip and crop
augmentation only. Reports ``classifier/test_accuracy`` and the per-class
report (expected around 60-65 %), plus a linear probe of the features.
"""

from ssl_jax.configs import default


def get_config():
  c = default.get_config()
  c.method = 'supervised'
  c.encoder = 'convnet'
  c.model.width = 128
  c.model.dense = 128
  c.model.dropout = 0.5
  c.dataset = 'stl10'
  c.data.train_split = 'train'
  c.image_size = 96
  c.batch_size = 64
  c.num_epochs = 40
  c.learning_rate = 1e-3
  c.optimizer.name = 'adam'
  c.optimizer.lr_scaling = 'none'
  c.optimizer.warmup_epochs = 1
  c.optimizer.weight_decay = 0.0
  c.probe.batch_size = 256
  c.augment.view1.crop_scale = (0.5, 1.0)
  c.augment.view1.jitter_prob = 0.0
  c.augment.view1.grayscale_prob = 0.0
  return c
