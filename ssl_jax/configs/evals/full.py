"""Every evaluation, for a finished CPU-budget CIFAR-10 run (the proof of the suite).

  python -m ssl_jax.tools.evaluate --workdir=DIR --evals=configs/evals/full.py

kNN, the scikit-learn probe, embedding metrics, pictures, fine-tuning on 1 %
and 10 % of the labels (3 seeds each, with the frozen probe on the same
labels) and transfer to scikit-learn's digits (probe and fine-tune).
"""

from ssl_jax.configs.evals import default


def get_config():
  e = default.get_config()
  e.sklearn_probe.enabled = True
  e.finetune.enabled = True
  e.transfer.enabled = True
  e.transfer.targets = ('sklearn_digits', 'mnist')
  e.transfer.finetune = True
  return e
