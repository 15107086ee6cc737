"""Transfer to oxford_iiit_pet: linear probe and fine-tune of a finished run's encoder.

  python -m ssl_jax.evaluators --workdir=DIR --evals=configs/transfer/oxford_iiit_pet.py

oxford_iiit_pet: 37 breeds; mixed sizes, centre-cropped and resized.
A target that is not prepared in the tfds data_dir is reported as one line
(with how to prepare it) and the other evaluations still run.
"""

from configs.evals import default


def get_config():
  e = default.get_config()
  for name in ('knn', 'embedding', 'pictures'):
    e[name].enabled = False
  e.transfer.enabled = True
  e.transfer.targets = ('oxford_iiit_pet',)
  e.transfer.finetune = True
  return e
