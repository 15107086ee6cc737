"""Learning methods, one module each, selected by name from a plain dict.

A method module provides:
  ``build_model(config, num_classes) -> flax module`` whose ``__call__(x,
  train)`` returns a dict with at least ``'features'`` (pre-projection);
  ``init(rng, config, sample, model) -> (params, batch_stats)``;
  ``train_step(state, batch, key, *, model, tx, config, schedule) ->
  (state, metrics)``, a pure function that ``train.py`` jit-compiles.
"""

from ssl_jax.methods import simclr

METHODS = {
    'simclr': simclr,
}


def get(name: str):
  """Returns the method module registered as ``name``."""
  if name not in METHODS:
    raise ValueError(f'method={name!r} is not registered; use one of'
                     f' {sorted(METHODS)}.')
  return METHODS[name]
