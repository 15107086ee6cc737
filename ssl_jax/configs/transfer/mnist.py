"""Transfer to mnist: linear probe and fine-tune of a finished run's encoder.

  python -m ssl_jax.tools.evaluate --workdir=DIR --evals=configs/transfer/mnist.py

mnist: grayscale digits, repeated to RGB for an RGB encoder.
"""

from ssl_jax.configs.transfer import common


def get_config():
  return common.transfer_evals('mnist')
