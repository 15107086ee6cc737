"""Transfer to sklearn_digits: linear probe and fine-tune of a finished run's encoder.

  python -m ssl_jax.evaluators --workdir=DIR --evals=configs/transfer/sklearn_digits.py

sklearn_digits: ships with scikit-learn: works offline with nothing to prepare.
A target that is not prepared in the tfds data_dir is reported as one line
(with how to prepare it) and the other evaluations still run.
"""

from configs.evals import default


def get_config():
  e = default.get_config()
  for name in ('knn', 'embedding', 'pictures'):
    e[name].enabled = False
  e.transfer.enabled = True
  e.transfer.targets = ('sklearn_digits',)
  e.transfer.finetune = True
  return e
