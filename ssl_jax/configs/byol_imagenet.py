"""BYOL on ImageNet: ResNet-50 at 224 px, LARS, batch 4096, 1000 epochs.

Reference: google-deepmind/deepmind-research, byol/configs/byol.py @ f5de0ede8430.

  python main.py --config=configs/byol_imagenet.py --workdir=/tmp/byol_in \
      --config.data_dir=DIR

DIR is ImageNet in its folder layout (``DIR/train/<wnid>/*.JPEG``,
``DIR/val/<wnid>/*.JPEG``); for tfds add ``--config.dataset=imagenet2012
--config.data.probe_test_split=validation``. The recipe is DeepMind's BYOL
config at ``byol/main_loop.py``'s defaults (1000 epochs, batch 4096) with its
1000-epoch presets: LARS (trust coefficient 1e-3, momentum 0.9, biases and
norms excluded) at 0.2 x B/256 with weight decay 1.5e-6, 10 warm-up epochs and
a cosine to 0; the target's momentum from 0.996 to 1 (cosine); a 4096-wide
projector to 256 dimensions and a 4096-wide predictor (BatchNorm in the hidden
layers); ``byol/utils/augmentations.py``'s asymmetric views (colour jitter
0.4/0.4/0.2/0.1 with probability 0.8, grayscale 0.2, blur 1.0 / 0.1 with a
kernel of a tenth of the side, solarize 0 / 0.2 at 0.5) on bicubic crops from
0.08, normalised by ImageNet's mean and std. For its 300-epoch presets use
``--config.num_epochs=300 --config.learning_rate=0.3
--config.optimizer.weight_decay=1e-6 --config.byol.base_momentum=0.99``.
Its README's ResNet-50 checkpoint of this recipe evaluates to about 74.4 %
linear (README.md:72); not yet measured here.

Kept apart from it (docs/recipes.md): brightness scales the image here
(``color_ops='simclr'``, SimCLR v2's and torchvision's form) where BYOL adds a
shift in [-0.4, 0.4] (no field); our LARS applies the rate before the
momentum (``optax.lars``) where BYOL's applies it after (no field for the
rate's place; the trust ratio and decay are the same).

Smoke run on a small folder (CPU; a warm-up longer than the run is
shortened to its first tenth):

  python main.py --config=configs/byol_imagenet.py --workdir=/tmp/w \
      --config.data_dir=/tmp/inet --config.encoder=resnet18 \
      --config.image_size=64 --config.batch_size=32 --config.num_epochs=1
"""

from ssl_jax.configs import default
from ssl_jax.configs import recipe_parts


def get_config():
  c = default.get_config()
  c.method = 'byol'
  c.encoder = 'resnet50'
  recipe_parts.imagenet_folder(c)
  c.batch_size = 4096
  c.num_epochs = 1000
  c.learning_rate = 0.2
  c.optimizer.lr_scaling = 'linear'
  c.optimizer.weight_decay = 1.5e-6
  c.optimizer.warmup_epochs = 10.0
  c.optimizer.trust_coefficient = 1e-3
  c.optimizer.momentum = 0.9
  c.projector.hidden_dims = (4096,)
  c.projector.out_dim = 256
  c.byol.predictor_hidden_dims = (4096,)
  c.byol.base_momentum = 0.996
  for view, blur, solarize in (
      (c.augment.view1, 1.0, 0.0),
      (c.augment.view2, 0.1, 0.2),
  ):
    view.crop_scale = (0.08, 1.0)
    view.crop_interpolation = 'bicubic'  # dataset._preprocess_image.
    view.brightness, view.contrast = 0.4, 0.4
    view.saturation, view.hue = 0.2, 0.1
    view.blur_prob = blur
    view.solarize_prob = solarize
  recipe_parts.normalize(c, recipe_parts.IMAGENET_MEAN_STD)
  return c
