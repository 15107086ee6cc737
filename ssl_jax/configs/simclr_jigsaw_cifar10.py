"""SimCLR with jigsaw views on CIFAR-10 (the CIFAR-10 study's v2.1 / v2.2).

  python main.py --config=configs/simclr_jigsaw_cifar10.py --workdir=/tmp/jig \
      --config.data_dir=DIR

v2.1 (this default): view 1 is the standard SimCLR view, view 2 is that view
cut into a 2x2 grid of shuffled tiles. v2.2: also shuffle view 1 with
``--config.augment.view1.jigsaw_grid=2``. Same 30-minute CPU budget and encoder
as ``configs/simclr_cifar10_cpu.py``, so the two compare directly.
"""

from ssl_jax.configs import simclr_cifar10_cpu


def get_config():
  c = simclr_cifar10_cpu.get_config()
  c.augment.view2.jigsaw_grid = 2
  return c
