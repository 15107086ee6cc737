"""BYOL on CIFAR-10: ResNet-18 (CIFAR stem), LARS, batch 256, 1000 epochs.

Reference: vturrisi/solo-learn, scripts/pretrain/cifar/byol.yaml @ 9187ea39c2c3.

  python main.py --config=configs/byol_cifar10.py --workdir=/tmp/byol_c10 \
      --config.data_dir=DIR

solo-learn's CIFAR recipe: a 4096-wide projector to 256 dimensions and a
4096-wide predictor, the target's momentum from 0.99 to 1 (cosine),
solo-learn's LARS (``clip_lr``, trust coefficient 0.02) at 1.0 x B/256 with
weight decay 1e-5, crops from 0.08 of the image, asymmetric solarize (0 / 0.2),
no blur. Per-value comparison: docs/recipes.md. Published for this recipe
(solo-learn, ResNet-18, 1000 epochs): 92.58 % online linear; not yet measured
here at that length.
"""

from ssl_jax.configs import default
from ssl_jax.configs import recipe_parts


def get_config():
  c = default.get_config()
  c.method = 'byol'
  c.encoder = 'resnet18'
  c.dataset = 'cifar10'
  c.image_size = 32
  c.batch_size = 256
  c.num_epochs = 1000
  c.learning_rate = 1.0
  c.optimizer.lr_scaling = 'linear'
  c.optimizer.weight_decay = 1e-5
  recipe_parts.solo_learn_lars(c)
  c.projector.hidden_dims = (4096,)
  c.projector.out_dim = 256
  c.byol.predictor_hidden_dims = (4096,)
  c.byol.base_momentum = 0.99
  for view, solarize in ((c.augment.view1, 0.0), (c.augment.view2, 0.2)):
    view.crop_scale = (0.08, 1.0)
    recipe_parts.torchvision_view(view)
    view.blur_prob = 0.0
    view.solarize_prob = solarize
  recipe_parts.normalize(c, recipe_parts.CIFAR10_MEAN_STD)
  return c
