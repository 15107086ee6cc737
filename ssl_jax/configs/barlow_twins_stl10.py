"""Barlow Twins on STL-10 (unlabelled+train) at 96 px with a ResNet-18.

Reference: vturrisi/solo-learn, scripts/pretrain/imagenet-100/barlow.yaml @ 9187ea39c2c3.

  python main.py --config=configs/barlow_twins_stl10.py --workdir=/tmp/bt_stl \
      --config.data_dir=DIR

solo-learn has no STL-10 recipe; its ImageNet-100 one (ResNet-18, 126,689
images, close to STL-10's 105,000) is followed at 96 px: batch 256, 400 epochs,
a 3-layer 2048-wide projector, solo-learn's LARS (``clip_lr``, trust
coefficient 0.02) at 0.3 x B/256 with weight decay 1e-4, asymmetric views (blur
1.0 / 0.1, solarize 0.0 / 0.2), crops from 0.08, loss scale 0.1
(``barlow.scale_loss``); see docs/recipes.md. Not yet measured here.
"""

from ssl_jax.configs import default
from ssl_jax.configs import recipe_parts


def get_config():
  c = default.get_config()
  c.method = 'barlow_twins'
  c.encoder = 'resnet18'
  c.model.cifar_stem = False
  c.dataset = 'stl10'
  c.data.train_split = 'unlabelled+train'
  c.image_size = 96
  c.batch_size = 256
  c.num_epochs = 400
  c.learning_rate = 0.3
  c.optimizer.lr_scaling = 'linear'
  c.optimizer.weight_decay = 1e-4
  recipe_parts.solo_learn_lars(c)
  c.projector.hidden_dims = (2048, 2048)
  c.projector.out_dim = 2048
  c.barlow.lambd = 0.0051
  c.barlow.scale_loss = 0.1
  c.probe.batch_size = 256
  for view, blur, solarize in (
      (c.augment.view1, 1.0, 0.0),
      (c.augment.view2, 0.1, 0.2),
  ):
    view.crop_scale = (0.08, 1.0)
    recipe_parts.torchvision_view(view)
    view.blur_prob = blur
    view.solarize_prob = solarize
  recipe_parts.normalize(c, recipe_parts.IMAGENET_MEAN_STD)
  return c
