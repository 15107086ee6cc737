"""Transfer to stl10: linear probe and fine-tune of a finished run's encoder.

  python -m ssl_jax.tools.evaluate --workdir=DIR --evals=configs/transfer/stl10.py

stl10: resized to the encoder's side.
"""

from ssl_jax.configs.transfer import common


def get_config():
  return common.transfer_evals('stl10')
