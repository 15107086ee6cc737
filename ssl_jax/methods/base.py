"""The method plug-in contract: :class:`Method`, and the :class:`TrainState`.

A method is one module that builds one :class:`Method` and one line in the
registry of ``ssl_jax/methods/__init__.py``. Everything the training loop,
config validation, the report and the benchmarks need to know about a method
is a field here; fields with defaults are the optional hooks. Nothing outside
``ssl_jax/methods/`` names a particular method.
"""

import dataclasses
from typing import Any, Callable, Iterator, Optional

import flax
import flax.linen as nn
import jax
import ml_collections
import numpy as np

from ssl_jax.data import batching
from ssl_jax.data import input_pipeline

Batch = dict[str, Any]
Metrics = dict[str, Any]
Data = dict[str, input_pipeline.Split]


@flax.struct.dataclass
class TrainState:
  """Everything a run needs to continue.

  Attributes:
    step: the global step (int32 scalar). The LR schedule, the data order and
      the PRNG keys are pure functions of it.
    params: model parameters.
    batch_stats: BatchNorm running statistics.
    opt_state: the optax state.
    extra: the method's own state (EMA parameters, cluster assignments, ...);
      an empty dict for methods that keep none.
  """

  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  extra: Any = flax.struct.field(default_factory=dict)


def init_variables(
    rng: jax.Array,
    config: ml_collections.ConfigDict,
    sample: jax.Array,
    model: nn.Module,
) -> tuple[Any, Any]:
  """Initialises ``model`` on ``sample``; returns ``(params, batch_stats)``.

  Args:
    rng: a PRNG key.
    config: the experiment config.
    sample: a float batch [b, image_size, image_size, C] fixing the shapes.
    model: the method's module.

  Returns:
    ``(params, batch_stats)``.
  """
  del config
  variables = jax.jit(lambda k, x: model.init(k, x, train=False))(rng, sample)
  return variables['params'], variables.get('batch_stats', {})


def train_split_only(
    config: ml_collections.ConfigDict,
    train_split: input_pipeline.Split,
    load: Callable[..., input_pipeline.Split],
) -> Data:
  """Trains on ``data.train_split`` as it is."""
  del config, load
  return {'train': train_split}


def one_batch_per_step(config: ml_collections.ConfigDict, data: Data) -> int:
  """An epoch is one pass over ``data['train']``, ``batch_size`` a step."""
  return len(data['train']) // config.batch_size


def no_extra(
    config: ml_collections.ConfigDict, params: Any, batch_stats: Any, data: Data
) -> dict[str, Any]:
  """No state of the method's own."""
  del config, params, batch_stats, data
  return {}


def shuffled_batches(
    *,
    state: TrainState,
    start_step: int,
    config: ml_collections.ConfigDict,
    data: Data,
    sharding: jax.sharding.NamedSharding,
) -> Iterator[Batch]:
  """Global batches of ``data['train']``, each a pure function of (seed, step)."""
  del state
  return batching.train_batches(
      data['train'],
      seed=config.seed,
      batch_size=config.batch_size,
      start_step=start_step,
      sharding=sharding,
      prefetch=config.data.prefetch,
  )


def trained_variables(state: TrainState) -> dict[str, Any]:
  """The trained ``{'params', 'batch_stats'}``."""
  return {'params': state.params, 'batch_stats': state.batch_stats}


def no_checks(config: ml_collections.ConfigDict) -> None:
  """No settings of the method's own to check."""
  del config


def labelled_batch(
    config: ml_collections.ConfigDict,
    rng: np.random.Generator,
    num_classes: int,
    channels: int,
) -> Batch:
  """A random ``{'image', 'label'}`` global batch (benchmarks and tests)."""
  b, s = config.batch_size, config.image_size
  return {
      'image': rng.integers(0, 256, (b, s, s, channels), dtype=np.uint8),
      'label': rng.integers(0, num_classes, (b,), dtype=np.int32),
  }


def nothing_frozen(
    config: ml_collections.ConfigDict,
) -> tuple[tuple[str, float], ...]:
  """Every parameter trains from the first step."""
  del config
  return ()


def one_view_per_image(config: ml_collections.ConfigDict) -> tuple[int, int]:
  """``(images read, views encoded)`` per step: one view of each image."""
  return config.batch_size, config.batch_size


@dataclasses.dataclass(frozen=True)
class Method:
  """A learning method: what the loop calls, and what it says about itself.

  Attributes:
    name: the registry key (``config.method``).
    build_model: ``(config, num_classes) -> nn.Module`` whose ``__call__(x,
      train)`` returns a dict with at least ``'features'`` (the evaluated
      representation).
    train_step: ``(state, batch, key, *, model, tx, config, schedule) ->
      (state, metrics)``, a pure function the loop jit-compiles over the mesh
      (batch sharded on ``'data'``, state replicated and donated). The
      joint-embedding methods (the two-view ones and DINO) also take a batch
      that carries ready ``'views'`` (a tuple of float32 [B,S,S,C] in [0, 1];
      DINO's global crops, then its local ones) in place of ``'image'``, and
      encode those as they are (``shared.views_of``): parity tests feed them
      the views a reference implementation sees; and a batch that carries
      host-cut crops under ``'crops'`` (see ``host_views``).
    init: ``(rng, config, sample, model) -> (params, batch_stats)``.
    uses_labels: pretraining reads labels, so ``data.label_fraction`` applies
      (the report shows it; self-supervised methods say False).
    section: the config field holding the method's own settings ('' if none).
    defaults: ``() -> ConfigDict``, the defaults of ``config.<section>``;
      ``configs/default.py`` adds them for every registered method.
    check_config: ``config -> None``, raises ``errors.ConfigError`` with a
      one-line message on a bad value of the method's own settings.
    structural_fields: config fields (dotted) that change the shapes of the
      method's state, so a workdir cannot resume under another value.
    prepare_data: ``(config, train_split, load) -> {'train': Split, ...}``:
      the splits the method trains on; ``load(split, cache=...)`` reads more.
    steps_per_epoch: ``(config, data) -> int``.
    init_extra: ``(config, params, batch_stats, data) -> pytree``: the
      method's own state, kept in ``TrainState.extra`` and checkpointed.
    train_batches: ``(*, state, start_step, config, data, sharding) ->
      iterator`` of global batches.
    epoch_start: ``(state, epoch, *, model, config, data, mesh) -> (state,
      metrics)``, a host hook run before each epoch's first step, after which
      the batch stream restarts (DeepCluster's clustering); None for none.
    eval_variables: ``state -> {'params', 'batch_stats'}`` that evaluations
      use (FixMatch's EMA).
    evaluate: ``(model, variables, *, test_split, config, mesh, num_classes,
      class_names) -> dict`` of the method's own final figures; None for none.
    example_batch: ``(config, rng, num_classes, channels) -> batch``: a
      random global batch in the layout ``train_step`` takes (benchmarks,
      tests).
    images_per_step: ``config -> (images read, views encoded)`` per step, for
      throughput figures.
    frozen_params: ``config -> ((path regex, epochs), ...)``: parameters
      (``/``-joined paths) the optimiser leaves alone for that many epochs
      (``math.inf``: always), such as DINO's prototypes in its first epoch
      (``optim.make_optimizer``).
    host_views: ``config -> ((view config, side), ...)``: the views whose
      random-resized crops ``train_step`` takes cut on the host, in the order
      of the batch's ``'crops'`` (``data.host_crop``); None: the method
      crops on device only.
  """

  name: str
  build_model: Callable[[ml_collections.ConfigDict, int], nn.Module]
  train_step: Callable[..., tuple[TrainState, Metrics]]
  init: Callable[..., tuple[Any, Any]] = init_variables
  uses_labels: bool = False
  section: str = ''
  defaults: Optional[Callable[[], ml_collections.ConfigDict]] = None
  check_config: Callable[[ml_collections.ConfigDict], None] = no_checks
  structural_fields: tuple[str, ...] = ()
  prepare_data: Callable[..., Data] = train_split_only
  steps_per_epoch: Callable[[ml_collections.ConfigDict, Data], int] = (
      one_batch_per_step
  )
  init_extra: Callable[..., Any] = no_extra
  train_batches: Callable[..., Iterator[Batch]] = shuffled_batches
  epoch_start: Optional[Callable[..., tuple[TrainState, Metrics]]] = None
  eval_variables: Callable[[TrainState], dict[str, Any]] = trained_variables
  evaluate: Optional[Callable[..., dict[str, float]]] = None
  example_batch: Callable[..., Batch] = labelled_batch
  images_per_step: Callable[[ml_collections.ConfigDict], tuple[int, int]] = (
      one_view_per_image
  )
  frozen_params: Callable[
      [ml_collections.ConfigDict], tuple[tuple[str, float], ...]
  ] = nothing_frozen
  host_views: Optional[
      Callable[
          [ml_collections.ConfigDict],
          tuple[tuple[ml_collections.ConfigDict, int], ...],
      ]
  ] = None

  def __post_init__(self):
    if bool(self.section) != (self.defaults is not None):
      raise ValueError(
          f'Method {self.name!r}: section and defaults go '
          'together (both set, or neither).'
      )
