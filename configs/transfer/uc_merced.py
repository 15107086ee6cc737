"""Transfer to uc_merced: linear probe and fine-tune of a finished run's encoder.

  python -m ssl_jax.evaluators --workdir=DIR --evals=configs/transfer/uc_merced.py

uc_merced: train-only in tfds, so a fixed 80/20 carve of 'train' (the same for every run).
A target that is not prepared in the tfds data_dir is reported as one line
(with how to prepare it) and the other evaluations still run.
"""

from configs.evals import default


def get_config():
  e = default.get_config()
  for name in ('knn', 'embedding', 'pictures'):
    e[name].enabled = False
  e.transfer.enabled = True
  e.transfer.targets = ('uc_merced:train[:80%]:train[80%:]',)
  e.transfer.finetune = True
  return e
