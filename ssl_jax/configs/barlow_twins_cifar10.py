"""Barlow Twins on CIFAR-10: ResNet-18 (CIFAR stem), LARS, batch 256, 1000 epochs.

Reference: vturrisi/solo-learn, scripts/pretrain/cifar/barlow.yaml @ 9187ea39c2c3.

  python main.py --config=configs/barlow_twins_cifar10.py --workdir=/tmp/bt_c10 \
      --config.data_dir=DIR

solo-learn's CIFAR recipe: a 3-layer 2048-wide projector, lambda 0.0051,
solo-learn's LARS (``clip_lr``, trust coefficient 0.02, biases and norm
parameters outside the weight decay and trust ratio) at 0.3 x B/256 with weight
decay 1e-4, crops from 0.08 of the image, asymmetric solarize (0.0 / 0.2) and
no blur. Its loss scale 0.1 (``barlow.scale_loss``); see docs/recipes.md. Published
for this recipe (solo-learn, ResNet-18, 1000 epochs): 92.1 % online linear; not
yet measured here at that length.
"""

from ssl_jax.configs import default
from ssl_jax.configs import recipe_parts


def get_config():
  c = default.get_config()
  c.method = 'barlow_twins'
  c.encoder = 'resnet18'
  c.dataset = 'cifar10'
  c.image_size = 32
  c.batch_size = 256
  c.num_epochs = 1000
  c.learning_rate = 0.3
  c.optimizer.lr_scaling = 'linear'
  c.optimizer.weight_decay = 1e-4
  recipe_parts.solo_learn_lars(c)
  c.projector.hidden_dims = (2048, 2048)
  c.projector.out_dim = 2048
  c.barlow.lambd = 0.0051
  c.barlow.scale_loss = 0.1
  for view, solarize in ((c.augment.view1, 0.0), (c.augment.view2, 0.2)):
    view.crop_scale = (0.08, 1.0)
    recipe_parts.torchvision_view(view)
    view.blur_prob = 0.0
    view.solarize_prob = solarize
  recipe_parts.normalize(c, recipe_parts.CIFAR10_MEAN_STD)
  return c
