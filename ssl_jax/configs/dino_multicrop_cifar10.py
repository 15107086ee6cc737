"""DINO on CIFAR-10 with multi-crop: dino_cifar10 plus 4 local crops of 16 px.

Reference: vturrisi/solo-learn, scripts/pretrain/cifar/dino.yaml @ 9187ea39c2c3 (departs from it: local crops).

  python main.py --config=configs/dino_multicrop_cifar10.py \
      --workdir=/tmp/dino_mc_c10 --config.data_dir=DIR

``configs/dino_cifar10.py`` (solo-learn's CIFAR recipe) with DINO's multi-crop
added, which that recipe leaves out: to the two 32 px global crops, 4 local
crops of 16 px from 5-40 % of the image (the global views' colour jitter, no
blur or solarize), seen by the student only; and the teacher's temperature
warmed from 0.04 to 0.07 over 50 epochs (DINO's warm-up, lengthened for the
1000-epoch run, as solo-learn's ImageNet-100 recipe does). Not yet measured
here.
"""

from ssl_jax.configs import dino_cifar10
from ssl_jax.configs import recipe_parts


def get_config():
  c = dino_cifar10.get_config()
  c.dino.warmup_teacher_epochs = 50.0
  c.dino.num_local_crops = 4
  c.dino.local_size = 16
  c.dino.local_view.crop_scale = (0.05, 0.4)
  recipe_parts.torchvision_view(c.dino.local_view)
  c.dino.local_view.blur_prob = 0.0
  c.dino.local_view.solarize_prob = 0.0
  return c
