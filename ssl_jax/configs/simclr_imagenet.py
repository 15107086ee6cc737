"""SimCLR on ImageNet: ResNet-50 at 224 px, LARS, batch 4096, 100 epochs.

Reference: google-research/simclr, README.md (ImageNet command) @ 383d4143fd8c.

  python main.py --config=configs/simclr_imagenet.py --workdir=/tmp/simclr_in \
      --config.data_dir=DIR

DIR is ImageNet in its folder layout (``DIR/train/<wnid>/*.JPEG``,
``DIR/val/<wnid>/*.JPEG``); for tfds add ``--config.dataset=imagenet2012
--config.data.probe_test_split=validation`` (DIR: the tfds data_dir). The
recipe is google-research/simclr's ImageNet command (ResNet-50, batch 4096,
100 epochs, LARS at 0.075 x sqrt(B) = 4.8 at B=4096, i.e. 0.3 x B/256, trust
coefficient 1e-3, weight decay 1e-4, temperature 0.1, 10 warm-up epochs) with
``run.py``'s defaults for what it leaves out: colour jitter strength 1.0,
Gaussian blur with probability 0.5 on both views, a 3-layer projection head
(2048-2048-128, BatchNorm on every layer; the output one with a learned scale
and no centre), crops from 0.08 resized bicubically, [0, 1] inputs without
mean/std normalisation. Its README expects about 64.5 % from its linear
evaluation of this run (README.md:146); not yet measured here. Per-value
comparison: docs/recipes.md.

Smoke run on a small folder (CPU; a warm-up longer than the run is
shortened to its first tenth):

  python main.py --config=configs/simclr_imagenet.py --workdir=/tmp/w \
      --config.data_dir=/tmp/inet --config.encoder=resnet18 \
      --config.image_size=64 --config.batch_size=32 --config.num_epochs=1
"""

from ssl_jax.configs import default
from ssl_jax.configs import recipe_parts


def get_config():
  c = default.get_config()
  c.encoder = 'resnet50'
  recipe_parts.imagenet_folder(c)
  c.batch_size = 4096
  c.num_epochs = 100
  c.learning_rate = 0.075
  c.optimizer.lr_scaling = 'sqrt'
  c.optimizer.weight_decay = 1e-4
  c.optimizer.warmup_epochs = 10.0
  c.temperature = 0.1
  # model_util.projection_head: num_proj_layers=3, hidden = feature width.
  c.projector.hidden_dims = (2048, 2048)
  c.projector.out_dim = 128
  c.projector.out_bn = True
  c.projector.out_bn_scale = True  # center=False, scale on (model_util.py).
  for view in (c.augment.view1, c.augment.view2):
    view.jitter_strength = 1.0
    view.blur_prob = 0.5  # model.py: batch_random_blur on each view.
    view.crop_interpolation = 'bicubic'  # data_util.crop_and_resize.
  return c
