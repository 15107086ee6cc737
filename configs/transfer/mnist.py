"""Transfer to mnist: linear probe and fine-tune of a finished run's encoder.

  python -m ssl_jax.evaluators --workdir=DIR --evals=configs/transfer/mnist.py

mnist: grayscale digits, repeated to RGB for an RGB encoder.
A target that is not prepared in the tfds data_dir is reported as one line
(with how to prepare it) and the other evaluations still run.
"""

from configs.evals import default


def get_config():
  e = default.get_config()
  for name in ('knn', 'embedding', 'pictures'):
    e[name].enabled = False
  e.transfer.enabled = True
  e.transfer.targets = ('mnist',)
  e.transfer.finetune = True
  return e
