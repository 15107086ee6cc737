"""BYOL on ImageNet-100: ResNet-18 at 224 px, LARS, batch 256, 400 epochs.

Reference: vturrisi/solo-learn, scripts/pretrain/imagenet-100/byol.yaml @ 9187ea39c2c3.

  python main.py --config=configs/byol_imagenet100.py --workdir=/tmp/byol_in100 \
      --config.data_dir=DIR

DIR is ImageNet (all of it, or only the 100 classes) in its folder layout
(``DIR/train/<wnid>/*.JPEG``, ``DIR/val/<wnid>/*.JPEG``); the run keeps
solo-learn's 100 classes (``data.classes='imagenet100'``). For tfds add
``--config.dataset=imagenet2012 --config.data.probe_test_split=validation``.
solo-learn's recipe (as ``configs/byol_stl10.py``, at its own 224 px): batch
256 (128 on each of 2 devices), 400 epochs, a 4096-wide projector to 256
dimensions and an 8192-wide predictor, the target's momentum from 0.99 to 1
(cosine), solo-learn's LARS (``clip_lr``, trust coefficient 0.02) at 0.5 x
B/256 with weight decay 1e-6 and 10 warm-up epochs, torchvision's views
(bicubic crops from 0.08, jitter 0.4/0.4/0.2/0.1, blur 1.0 / 0.1, solarize 0 /
0.2) and ImageNet's mean and std. The yaml reads through NVIDIA DALI
(``format: dali``); these are the same values in its torchvision pipeline
(``solo/data/pretrain_dataloader.py``), which our ops follow. Published
(solo-learn's README, ResNet-18, 400 epochs): 80.16 % online linear; not yet
measured here. Per-value comparison: docs/recipes.md.

Smoke run on a small folder whose class folders are not ImageNet-100 wnids
(CPU; a warm-up longer than the run is shortened to its first tenth):

  python main.py --config=configs/byol_imagenet100.py --workdir=/tmp/w \
      --config.data_dir=/tmp/inet --config.data.classes= \
      --config.image_size=64 --config.batch_size=32 --config.num_epochs=1
"""

from ssl_jax.configs import byol_stl10
from ssl_jax.configs import recipe_parts


def get_config():
  c = byol_stl10.get_config()  # The same yaml, at STL-10's 96 px.
  recipe_parts.imagenet_folder(c)
  c.data.classes = 'imagenet100'
  return c
