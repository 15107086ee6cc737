"""Transfer to cifar10: linear probe and fine-tune of a finished run's encoder.

  python -m ssl_jax.tools.evaluate --workdir=DIR --evals=configs/transfer/cifar10.py

cifar10: resized to the encoder's side.
"""

from ssl_jax.configs.transfer import common


def get_config():
  return common.transfer_evals('cifar10')
