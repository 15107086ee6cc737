"""Transfer to sklearn_digits: linear probe and fine-tune of a finished run's encoder.

  python -m ssl_jax.tools.evaluate --workdir=DIR --evals=configs/transfer/sklearn_digits.py

sklearn_digits: ships with scikit-learn: works offline with nothing to prepare.
"""

from ssl_jax.configs.transfer import common


def get_config():
  return common.transfer_evals('sklearn_digits')
