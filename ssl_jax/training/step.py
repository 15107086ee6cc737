"""The compiled train step: mesh, state, placement and the jitted method step.

Pure and free of TensorFlow, clu and tfds, so benchmarks and accelerator
images without them can build and time the exact step that training runs.
"""

import functools
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssl_jax import methods
from ssl_jax.methods.base import TrainState
from ssl_jax.models import conv
from ssl_jax.training import checkpoint
from ssl_jax.training import guards

P = jax.sharding.PartitionSpec


def make_mesh(devices: Optional[list[Any]] = None) -> jax.sharding.Mesh:
  """A 1-D mesh over ``devices`` (default: all) with the axis ``'data'``."""
  devices = jax.devices() if devices is None else devices
  return jax.sharding.Mesh(
      np.asarray(devices), ('data',), axis_types=(jax.sharding.AxisType.Auto,)
  )


def train_step(state: TrainState, batch, base_key, *, method, **kwargs):
  """Derives this step's key as ``fold_in(base_key, step)`` and runs the method.

  No key is carried across steps, so a resumed run draws the same
  augmentations as an uninterrupted one. The step is guarded: a non-finite
  loss, gradient or parameter norm is flagged (and with
  ``config.nonfinite='skip'`` undone), see :func:`guards.guarded_step`.

  Args:
    state: the train state.
    batch: the global batch.
    base_key: the run's augmentation key.
    method: the :class:`ssl_jax.methods.base.Method`.
    **kwargs: bound to ``method.train_step`` (``config`` among them).

  Returns:
    ``(state, metrics)`` from ``method.train_step``, plus ``param_norm`` and
    ``nonfinite``.
  """
  key = jax.random.fold_in(base_key, state.step)
  config = kwargs['config']
  return guards.guarded_step(
      state,
      batch,
      key,
      step_fn=functools.partial(method.train_step, **kwargs),
      nonfinite=config.nonfinite,
      poison_step=config.debug.nan_at_step,
  )


def init_variables(
    config: ml_collections.ConfigDict, model, key: jax.Array, channels: int
) -> tuple[Any, Any]:
  """The method's freshly initialised ``(params, batch_stats)``."""
  sample = jnp.zeros((1, config.image_size, config.image_size, channels))
  return methods.get(config.method).init(key, config, sample, model)


def create_state(
    config: ml_collections.ConfigDict,
    model,
    tx,
    key: jax.Array,
    channels: int,
    data: Optional[dict[str, Any]] = None,
) -> TrainState:
  """Initialises the train state (unplaced), loading ``config.init_from``.

  Args:
    config: the experiment config.
    model: the method's module.
    tx: the optimiser.
    key: the init key.
    channels: image channels.
    data: the method's splits (passed to its ``init_extra``).

  Returns:
    A :class:`TrainState` at step 0.
  """
  method = methods.get(config.method)
  params, batch_stats = init_variables(config, model, key, channels)
  if config.init_from:
    params, batch_stats = checkpoint.load_encoder(
        config.init_from, params, batch_stats
    )
  extra = method.init_extra(config, params, batch_stats, data or {})
  return TrainState(
      step=jnp.zeros([], jnp.int32),
      params=params,
      batch_stats=batch_stats,
      opt_state=tx.init(params),
      extra=extra,
  )


def replicate(tree: Any, mesh: jax.sharding.Mesh) -> Any:
  """Places a host-identical pytree (arrays, PRNG keys) replicated over ``mesh``.

  Unlike ``jax.device_put``, this also works when the mesh spans devices of
  other processes: each process fills its own devices from its copy.

  Args:
    tree: a pytree of arrays with the same values in every process.
    mesh: the global mesh.

  Returns:
    The pytree as fully replicated global arrays.
  """
  sharding = jax.sharding.NamedSharding(mesh, P())

  def put(x):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.random.wrap_key_data(
          put(jax.random.key_data(x)), impl=jax.random.key_impl(x)
      )
    host = np.asarray(jax.device_get(x))
    return jax.make_array_from_callback(
        host.shape, sharding, lambda index: host[index]
    )

  return jax.tree.map(put, tree)


def compile_train_step(config, model, tx, schedule, mesh):
  """Jits the method's step over ``mesh``: batch on 'data', state replicated, donated."""
  replicated = jax.sharding.NamedSharding(mesh, P())
  data = jax.sharding.NamedSharding(mesh, P('data'))
  fn = functools.partial(
      train_step,
      method=methods.get(config.method),
      model=model,
      tx=tx,
      config=config,
      schedule=schedule,
  )
  return jax.jit(
      fn,
      in_shardings=(replicated, data, replicated),
      out_shardings=(replicated, replicated),
      donate_argnums=0,
      compiler_options=conv.compiler_options(mesh),
  )
