"""MoCo v3 on STL-10 (unlabelled+train) at 96 px with a ResNet-18.

  python main.py --config=configs/moco_v3_stl10.py --workdir=/tmp/mocov3_stl \
      --config.data_dir=DIR

The CIFAR recipe (``configs/moco_v3_cifar10.py``) at 96 px with the ImageNet
stem, batch 512, 500 epochs, and the paper's asymmetric views for larger
images (blur 1.0 / 0.1, solarize 0 / 0.2). Not yet measured here.
"""

from ssl_jax.configs import moco_v3_cifar10


def get_config():
  c = moco_v3_cifar10.get_config()
  c.model.cifar_stem = False
  c.dataset = 'stl10'
  c.data.train_split = 'unlabelled+train'
  c.image_size = 96
  c.batch_size = 512
  c.num_epochs = 500
  c.probe.batch_size = 256
  for view, blur in ((c.augment.view1, 1.0), (c.augment.view2, 0.1)):
    view.jitter_strength = 1.0
    view.blur_prob = blur
  return c
