"""Transfer to caltech101: linear probe and fine-tune of a finished run's encoder.

  python -m ssl_jax.tools.evaluate --workdir=DIR --evals=configs/transfer/caltech101.py

caltech101: mixed image sizes: centre-cropped and resized to the encoder's side.
"""

from ssl_jax.configs.transfer import common


def get_config():
  return common.transfer_evals('caltech101')
