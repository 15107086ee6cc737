"""Learning methods, one module each, selected by name from a plain dict.

A method module provides:
  ``build_model(config, num_classes) -> flax module`` whose ``__call__(x,
  train)`` returns a dict with at least ``'features'`` (pre-projection);
  ``init(rng, config, sample, model) -> (params, batch_stats)``;
  ``train_step(state, batch, key, *, model, tx, config, schedule) ->
  (state, metrics)``, a pure function that ``train.py`` jit-compiles;
  optionally ``evaluate(model, variables, *, test_split, config, mesh,
  num_classes, class_names) -> dict`` for method-specific final figures.

Optional hooks (all called by ``train.train_and_evaluate``, never a loop of
the method's own):
  ``prepare_data(config, train_split, load) -> {'train': Split, ...}``: the
  splits the method trains on (default ``{'train': train_split}``);
  ``steps_per_epoch(config, data) -> int`` (default ``len(train) // batch``);
  ``init_extra(config, params, batch_stats, data) -> pytree``: the method's
  own state, kept in ``TrainState.extra`` and checkpointed with the rest;
  ``train_batches(*, state, start_step, config, data, sharding) -> iterator``
  of global batches (default: ``batching.train_batches`` on ``train``);
  ``epoch_start(state, epoch, *, model, config, data, mesh) -> (state,
  metrics)``: a host hook run before each epoch's first step; the batch
  stream is restarted after it (DeepCluster's clustering);
  ``eval_variables(state) -> variables`` evaluated instead of the trained
  ones (FixMatch's EMA).
"""

from ssl_jax.methods import barlow_twins
from ssl_jax.methods import deepcluster
from ssl_jax.methods import fixmatch
from ssl_jax.methods import simclr
from ssl_jax.methods import supervised

METHODS = {
    'simclr': simclr,
    'barlow_twins': barlow_twins,
    'supervised': supervised,
    'deepcluster': deepcluster,
    'fixmatch': fixmatch,
}


def get(name: str):
  """Returns the method module registered as ``name``."""
  if name not in METHODS:
    raise ValueError(f'method={name!r} is not registered; use one of'
                     f' {sorted(METHODS)}.')
  return METHODS[name]
