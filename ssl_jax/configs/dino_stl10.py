"""DINO on STL-10 (unlabelled+train) at 96 px with a ResNet-18 and multi-crop.

  python main.py --config=configs/dino_stl10.py --workdir=/tmp/dino_stl \
      --config.data_dir=DIR

The CIFAR recipe (``configs/dino_cifar10.py``) at 96 px with the ImageNet
stem, batch 512, 500 epochs, DINO's crops for larger images (2 global crops
of 96 px from 40-100 %, 6 local crops of 48 px from 5-40 %) and its
asymmetric views (blur 1.0 / 0.1 on the globals and 0.5 on the locals,
solarize 0 / 0.2). Not yet measured here.
"""

from ssl_jax.configs import dino_cifar10


def get_config():
  c = dino_cifar10.get_config()
  c.model.cifar_stem = False
  c.dataset = 'stl10'
  c.data.train_split = 'unlabelled+train'
  c.image_size = 96
  c.batch_size = 512
  c.num_epochs = 500
  c.probe.batch_size = 256
  for view, blur in ((c.augment.view1, 1.0), (c.augment.view2, 0.1)):
    view.crop_scale = (0.4, 1.0)
    view.jitter_strength = 1.0
    view.blur_prob = blur
  c.dino.num_local_crops = 6
  c.dino.local_size = 48
  c.dino.local_view.jitter_strength = 1.0
  c.dino.local_view.blur_prob = 0.5
  return c
