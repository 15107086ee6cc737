"""VICReg on CIFAR-10 within a CPU budget (the method comparison).

  python main.py --config=configs/vicreg_cifar10_cpu.py \
      --workdir=/tmp/vicreg_cpu --config.data_dir=/tmp/tfds

Same encoder, views and optimiser as the SimCLR CPU proof
(``configs/cifar10_cpu_common.py``); a 1024-1024-1024 projector, weights
25 / 25 / 1 on the sum of the two views' variance hinges (``var_weight`` 50
on their mean, which ``losses.vicreg`` takes), solarize 0.1 on both views, 10
epochs. The README's comparison table has the measured figures.
"""

from ssl_jax.configs import cifar10_cpu_common


def get_config():
  c = cifar10_cpu_common.get_config()
  c.method = 'vicreg'
  c.num_epochs = 10.0
  c.learning_rate = 1e-3
  c.projector.hidden_dims = (1024, 1024)
  c.projector.out_dim = 1024
  c.vicreg.var_weight = 50.0
  for view in (c.augment.view1, c.augment.view2):
    view.solarize_prob = 0.1
  return c
