"""DINO on STL-10 (unlabelled+train) at 96 px with a ResNet-18.

Reference: vturrisi/solo-learn, scripts/pretrain/imagenet-100/dino.yaml @ 9187ea39c2c3.

  python main.py --config=configs/dino_stl10.py --workdir=/tmp/dino_stl \
      --config.data_dir=DIR

solo-learn has no STL-10 recipe; its ImageNet-100 one (ResNet-18, 126,689
images, close to STL-10's 105,000) is followed at 96 px: the CIFAR recipe's
head, temperatures, momentum and optimiser (``configs/dino_cifar10.py``) with
the teacher's temperature warmed from 0.04 to 0.07 over 50 epochs, batch 256,
400 epochs, two 96 px views with crops from 0.08, asymmetric blur (1.0 / 0.1)
and solarize (0 / 0.2), and no local crops (add them with
``--config.dino.num_local_crops=6 --config.dino.local_size=48``). Per-value
comparison: docs/recipes.md. Not yet measured here.
"""

from ssl_jax.configs import dino_cifar10
from ssl_jax.configs import recipe_parts


def get_config():
  c = dino_cifar10.get_config()
  c.model.cifar_stem = False
  c.dataset = 'stl10'
  c.data.train_split = 'unlabelled+train'
  c.image_size = 96
  c.batch_size = 256
  c.num_epochs = 400
  c.probe.batch_size = 256
  c.dino.warmup_teacher_epochs = 50.0
  for view, blur in ((c.augment.view1, 1.0), (c.augment.view2, 0.1)):
    view.crop_scale = (0.08, 1.0)
    view.blur_prob = blur
  recipe_parts.normalize(c, recipe_parts.IMAGENET_MEAN_STD)
  return c
