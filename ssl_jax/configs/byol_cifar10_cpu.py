"""BYOL on CIFAR-10 within a CPU budget (the method comparison).

  python main.py --config=configs/byol_cifar10_cpu.py \
      --workdir=/tmp/byol_cpu --config.data_dir=/tmp/tfds

Same encoder, views and optimiser as the SimCLR CPU proof
(``configs/cifar10_cpu_common.py``); a 1024-wide projector to 256 dimensions,
a 1024-wide predictor, the target's momentum from 0.99 to 1, asymmetric
solarize (0 / 0.2), 10 epochs (the target's forward pass costs about a
third of a step more; 10 epochs still train within 30 minutes on 2 cores).
The README's comparison table has the measured figures.
"""

from ssl_jax.configs import cifar10_cpu_common


def get_config():
  c = cifar10_cpu_common.get_config()
  c.method = 'byol'
  c.num_epochs = 10.0
  c.learning_rate = 1e-3
  c.projector.hidden_dims = (1024,)
  c.projector.out_dim = 256
  c.byol.predictor_hidden_dims = (1024,)
  c.byol.base_momentum = 0.99
  c.augment.view2.solarize_prob = 0.2
  return c
