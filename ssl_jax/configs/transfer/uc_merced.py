"""Transfer to uc_merced: linear probe and fine-tune of a finished run's encoder.

  python -m ssl_jax.tools.evaluate --workdir=DIR --evals=configs/transfer/uc_merced.py

uc_merced: train-only in tfds, so a fixed 80/20 carve of 'train' (the same for every run).
"""

from ssl_jax.configs.transfer import common


def get_config():
  return common.transfer_evals('uc_merced:train[:80%]:train[80%:]')
