"""MoCo v3 on CIFAR-10 within a CPU budget (the method comparison).

  python main.py --config=configs/moco_v3_cifar10_cpu.py \
      --workdir=/tmp/mocov3_cpu --config.data_dir=/tmp/tfds

Same encoder, views and optimiser as the SimCLR CPU proof
(``configs/cifar10_cpu_common.py``); a 1024-wide projector to 256 dimensions
ending in BatchNorm without affine parameters, a 1024-wide predictor,
temperature 0.2, the momentum encoder from 0.99 to 1, asymmetric solarize
(0 / 0.2), 10 epochs (as BYOL's, whose step costs the same). The README's
comparison table has the measured figures.
"""

from ssl_jax.configs import cifar10_cpu_common


def get_config():
  c = cifar10_cpu_common.get_config()
  c.method = 'moco_v3'
  c.num_epochs = 10.0
  c.learning_rate = 1e-3
  c.projector.hidden_dims = (1024,)
  c.projector.out_dim = 256
  c.projector.out_bn = True
  c.moco_v3.predictor_hidden_dims = (1024,)
  c.moco_v3.temperature = 0.2
  c.moco_v3.base_momentum = 0.99
  c.augment.view2.solarize_prob = 0.2
  return c
