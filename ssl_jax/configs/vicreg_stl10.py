"""VICReg on STL-10 (unlabelled+train) at 96 px with a ResNet-18.

  python main.py --config=configs/vicreg_stl10.py --workdir=/tmp/vicreg_stl \
      --config.data_dir=DIR

The CIFAR recipe (``configs/vicreg_cifar10.py``) at 96 px with the ImageNet
stem, batch 512, 500 epochs and, as for larger images, Gaussian blur on both
views. Not yet measured here.
"""

from ssl_jax.configs import default


def get_config():
  c = default.get_config()
  c.method = 'vicreg'
  c.encoder = 'resnet18'
  c.model.cifar_stem = False
  c.dataset = 'stl10'
  c.data.train_split = 'unlabelled+train'
  c.image_size = 96
  c.batch_size = 512
  c.num_epochs = 500
  c.learning_rate = 0.3
  c.optimizer.lr_scaling = 'linear'
  c.optimizer.weight_decay = 1e-4
  c.optimizer.trust_coefficient = 0.02
  c.projector.hidden_dims = (2048, 2048)
  c.projector.out_dim = 2048
  c.probe.batch_size = 256
  for view in (c.augment.view1, c.augment.view2):
    view.crop_scale = (0.2, 1.0)
    view.jitter_strength = 0.5
    view.blur_prob = 0.5
    view.solarize_prob = 0.1
  return c
