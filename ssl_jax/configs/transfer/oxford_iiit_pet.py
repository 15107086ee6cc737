"""Transfer to oxford_iiit_pet: linear probe and fine-tune of a finished run's encoder.

  python -m ssl_jax.tools.evaluate --workdir=DIR --evals=configs/transfer/oxford_iiit_pet.py

oxford_iiit_pet: 37 breeds; mixed sizes, centre-cropped and resized.
"""

from ssl_jax.configs.transfer import common


def get_config():
  return common.transfer_evals('oxford_iiit_pet')
