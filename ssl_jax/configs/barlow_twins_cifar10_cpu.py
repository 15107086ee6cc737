"""Barlow Twins on CIFAR-10 within a CPU budget (the method comparison).

  python main.py --config=configs/barlow_twins_cifar10_cpu.py \
      --workdir=/tmp/bt_cpu --config.data_dir=/tmp/tfds

Same encoder, views and optimiser as the SimCLR CPU proof
(``configs/cifar10_cpu_common.py``); a 1024-1024-1024 projector, lambda
0.0051, asymmetric solarize (0 / 0.2). About 16 minutes of pretraining on 2
CPU cores; the README's comparison table has the measured figures.
"""

from ssl_jax.configs import cifar10_cpu_common


def get_config():
  c = cifar10_cpu_common.get_config()
  c.method = 'barlow_twins'
  c.num_epochs = 8.0
  c.learning_rate = 1e-3
  c.projector.hidden_dims = (1024, 1024)
  c.projector.out_dim = 1024
  c.barlow.lambd = 0.0051
  c.augment.view2.solarize_prob = 0.2
  return c
