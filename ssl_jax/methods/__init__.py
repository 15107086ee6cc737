"""Learning methods, one module each, selected by name from a plain dict.

A method module provides:
  ``build_model(config, num_classes) -> flax module`` whose ``__call__(x,
  train)`` returns a dict with at least ``'features'`` (pre-projection);
  ``init(rng, config, sample, model) -> (params, batch_stats)``;
  ``train_step(state, batch, key, *, model, tx, config, schedule) ->
  (state, metrics)``, a pure function that ``train.py`` jit-compiles;
  optionally ``evaluate(model, variables, *, test_split, config, mesh,
  num_classes, class_names) -> dict`` for method-specific final figures.
"""

from ssl_jax.methods import barlow_twins
from ssl_jax.methods import simclr
from ssl_jax.methods import supervised

METHODS = {
    'simclr': simclr,
    'barlow_twins': barlow_twins,
    'supervised': supervised,
}


def get(name: str):
  """Returns the method module registered as ``name``."""
  if name not in METHODS:
    raise ValueError(f'method={name!r} is not registered; use one of'
                     f' {sorted(METHODS)}.')
  return METHODS[name]
