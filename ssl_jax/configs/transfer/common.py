"""The shared shape of every transfer config (not a config itself).

A target that is not prepared in the tfds data_dir is reported as one line
(with how to prepare it) and the other evaluations still run.
"""

from ssl_jax.configs.evals import default


def transfer_evals(target: str):
  """Evals that probe and fine-tune on ``target`` only ('name' or 'name:train:test')."""
  e = default.get_config()
  for name in ('knn', 'embedding', 'pictures'):
    e[name].enabled = False
  e.transfer.enabled = True
  e.transfer.targets = (target,)
  e.transfer.finetune = True
  return e
