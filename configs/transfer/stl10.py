"""Transfer to stl10: linear probe and fine-tune of a finished run's encoder.

  python -m ssl_jax.evaluators --workdir=DIR --evals=configs/transfer/stl10.py

stl10: resized to the encoder's side.
A target that is not prepared in the tfds data_dir is reported as one line
(with how to prepare it) and the other evaluations still run.
"""

from configs.evals import default


def get_config():
  e = default.get_config()
  for name in ('knn', 'embedding', 'pictures'):
    e[name].enabled = False
  e.transfer.enabled = True
  e.transfer.targets = ('stl10',)
  e.transfer.finetune = True
  return e
