"""MoCo v3 on STL-10 (unlabelled+train) at 96 px with a ResNet-18.

Reference: vturrisi/solo-learn, scripts/pretrain/imagenet-100/mocov3.yaml @ 9187ea39c2c3.

  python main.py --config=configs/moco_v3_stl10.py --workdir=/tmp/mocov3_stl \
      --config.data_dir=DIR

solo-learn has no STL-10 recipe; its ImageNet-100 one (ResNet-18, 126,689
images, close to STL-10's 105,000) is followed at 96 px: the CIFAR recipe's
heads, temperature, momentum and optimiser (``configs/moco_v3_cifar10.py``, the
same values in both yamls) with batch 256, 400 epochs and asymmetric views
(blur 1.0 / 0.1, solarize 0 / 0.2). Per-value comparison: docs/recipes.md. Not
yet measured here.
"""

from ssl_jax.configs import moco_v3_cifar10
from ssl_jax.configs import recipe_parts


def get_config():
  c = moco_v3_cifar10.get_config()
  c.model.cifar_stem = False
  c.dataset = 'stl10'
  c.data.train_split = 'unlabelled+train'
  c.image_size = 96
  c.batch_size = 256
  c.num_epochs = 400
  c.probe.batch_size = 256
  for view, blur in ((c.augment.view1, 1.0), (c.augment.view2, 0.1)):
    view.blur_prob = blur
  recipe_parts.normalize(c, recipe_parts.IMAGENET_MEAN_STD)
  return c
