"""FixMatch-style semi-supervised STL-10: labelled ``train`` plus ``unlabelled``.

  python main.py --config=configs/fixmatch_stl10.py --workdir=/tmp/fm_stl \
      --config.data_dir=DIR [--config.fixmatch.mu=1|5|20] \
      [--config.fixmatch.threshold=0]

The 5,000 labelled images are the ``train`` split; the unlabelled pool is the
100,000-image ``unlabelled`` split. The labelled:unlabelled ratio is
``fixmatch.mu`` (1:1, 1:5 and 1:20 as in the BITS ablation), threshold 0.95
(0 gives the no-threshold variant). WRN-45-2 at 96 px, as in the STL-10
report. Expected ``classifier/test_accuracy`` in the 80s % for long runs;
not measured here (no STL-10 offline).
"""

from ssl_jax.configs import default
from ssl_jax.configs import fixmatch_cifar10


def get_config():
  c = default.get_config()
  c.method = 'fixmatch'
  c.encoder = 'wrn45_2'
  c.dataset = 'stl10'
  c.data.train_split = 'unlabelled'
  c.data.labelled_split = 'train'
  c.image_size = 96
  c.batch_size = 64
  c.num_epochs = 50
  c.learning_rate = 0.03
  c.optimizer.name = 'sgd'
  c.optimizer.lr_scaling = 'none'
  c.optimizer.warmup_epochs = 0
  c.optimizer.weight_decay = 5e-4
  c.fixmatch.mu = 5
  c.fixmatch.threshold = 0.95
  c.probe.batch_size = 256
  fixmatch_cifar10.set_views(c, strong_blur=0.5)
  return c
