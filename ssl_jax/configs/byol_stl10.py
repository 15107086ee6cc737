"""BYOL on STL-10 (unlabelled+train) at 96 px with a ResNet-18.

  python main.py --config=configs/byol_stl10.py --workdir=/tmp/byol_stl \
      --config.data_dir=DIR

The CIFAR recipe (``configs/byol_cifar10.py``) at 96 px with the ImageNet
stem, batch 512, 500 epochs, the target's momentum from 0.996, and the
paper's asymmetric views for larger images (blur 1.0 / 0.1, solarize 0 /
0.2). Not yet measured here.
"""

from ssl_jax.configs import default


def get_config():
  c = default.get_config()
  c.method = 'byol'
  c.encoder = 'resnet18'
  c.model.cifar_stem = False
  c.dataset = 'stl10'
  c.data.train_split = 'unlabelled+train'
  c.image_size = 96
  c.batch_size = 512
  c.num_epochs = 500
  c.learning_rate = 1.0
  c.optimizer.lr_scaling = 'linear'
  c.optimizer.weight_decay = 1e-5
  c.optimizer.trust_coefficient = 0.02
  c.projector.hidden_dims = (4096,)
  c.projector.out_dim = 256
  c.byol.predictor_hidden_dims = (4096,)
  c.byol.base_momentum = 0.996
  c.probe.batch_size = 256
  for view, blur, solarize in (
      (c.augment.view1, 1.0, 0.0),
      (c.augment.view2, 0.1, 0.2),
  ):
    view.crop_scale = (0.2, 1.0)
    view.jitter_strength = 1.0
    view.blur_prob = blur
    view.solarize_prob = solarize
  return c
