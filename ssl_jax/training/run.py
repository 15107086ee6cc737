"""A run's wiring, built once from its config.

Training, the workdir evaluators, fine-tuning (which is a training run), the
benchmarks and the tests all build the same :class:`Run`, so a run's method,
model, mesh, data loader and optimiser are defined in one place. Free of
TensorFlow and clu, like :mod:`ssl_jax.training.step`.
"""

import dataclasses
import functools
import math
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import ml_collections
import optax

from ssl_jax import methods
from ssl_jax.data import host_crop
from ssl_jax.data import input_pipeline
from ssl_jax.data import memory
from ssl_jax.methods import base
from ssl_jax.models import conv
from ssl_jax.training import checkpoint
from ssl_jax.training import optim
from ssl_jax.training import step as step_lib

P = jax.sharding.PartitionSpec


@dataclasses.dataclass(frozen=True)
class Run:
  """The pieces of one run that do not depend on its data.

  Attributes:
    config: the experiment config as run: ``cpu_convolutions`` is what this
      mesh runs (see ``models.conv.resolve``).
    method: the registered method ``config.method``.
    model: the method's model for the dataset's classes.
    mesh: the device mesh (axis ``'data'``).
    dataset: facts about ``config.dataset`` (``image_shape``,
      ``num_classes``, ``class_names``, ``splits``; see
      ``input_pipeline.dataset_info``).
    channels: image channels the encoder sees (``data.channels`` or the
      dataset's).
  """

  config: ml_collections.ConfigDict
  method: base.Method
  model: nn.Module
  mesh: jax.sharding.Mesh
  dataset: dict[str, Any]
  channels: int

  @property
  def num_classes(self) -> int:
    """Classes of the dataset (the probes' and heads' outputs)."""
    return self.dataset['num_classes']

  @property
  def class_names(self) -> Optional[tuple[str, ...]]:
    """The dataset's class names, where known."""
    return self.dataset.get('class_names')

  @property
  def data_sharding(self) -> jax.sharding.NamedSharding:
    """Global batches: split over the ``'data'`` axis."""
    return jax.sharding.NamedSharding(self.mesh, P('data'))

  @property
  def host_crop(self) -> bool:
    """Whether training crops are cut on the host (``host_crop.resolve``)."""
    c = self.config
    return host_crop.resolve(
        c.data.host_crop,
        self.dataset['image_shape'],
        c.image_size,
        c.data.resize,
        self.method.host_views is not None,
    )

  @property
  def load(self) -> Callable[..., input_pipeline.Split]:
    """``(split, cache=None, crops=()) -> Split`` of the run's dataset.

    With host crops, splits read without ``crops`` give evaluation's centre
    crop (``data.eval_crop_fraction``) at ``image_size``.
    """
    c = self.config
    host = self.host_crop
    return functools.partial(
        input_pipeline.load_split,
        c.dataset,
        data_dir=c.data_dir,
        resize=c.image_size if host else c.data.resize,
        channels=c.data.channels,
        bad_images=c.data.bad_images,
        workers=c.data.workers,
        crop_fraction=c.data.eval_crop_fraction if host else 0.0,
        seed=c.seed,
        classes=c.data.classes,
        memory_budget_gb=c.data.memory_budget_gb,
    )

  def load_train(self) -> input_pipeline.Split:
    """The training split: host crops of the method's views, or images.

    Returns:
      ``data.train_split`` as ``data.cache`` and ``data.host_crop`` say.

    Raises:
      errors.ConfigError: it streams, and ``data.memory_budget_gb`` cannot
        hold the batches the stream keeps ready.
    """
    c = self.config
    crops = ()
    if self.host_crop:
      crops = tuple(
          host_crop.spec(view, side) for view, side in self.method.host_views(c)
      )
    split = self.load(c.data.train_split, cache=c.data.cache, crops=crops)
    if split.images is None:
      pixels = sum(s.size * s.size * self.channels for s in crops) or (
          c.image_size**2 * self.channels
          if self.host_crop
          else math.prod(d or c.image_size for d in split.image_shape or ())
      )
      memory.check_stream_budget(
          c.batch_size // jax.process_count(),
          pixels,
          c.data.prefetch,
          c.data.memory_budget_gb,
          split.workers if split.parallel else 1,
      )
    return split

  def optimizer(
      self, steps_per_epoch: int
  ) -> tuple[optax.Schedule, optax.GradientTransformation]:
    """The LR schedule (a pure function of the step) and the optimiser.

    Args:
      steps_per_epoch: the method's steps per epoch (its ``steps_per_epoch``
        of the prepared data), which epoch-based settings convert with.

    Returns:
      ``(schedule, tx)``.
    """
    schedule = optim.learning_rate_schedule(self.config, steps_per_epoch)
    return schedule, optim.make_optimizer(
        self.config,
        schedule,
        steps_per_epoch=steps_per_epoch,
        frozen=self.method.frozen_params(self.config),
    )

  def init_variables(self, key: jax.Array) -> tuple[Any, Any]:
    """Freshly initialised ``(params, batch_stats)`` (no ``init_from``).

    Args:
      key: the init key.

    Returns:
      ``(params, batch_stats)`` on the host.
    """
    return step_lib.init_variables(self.config, self.model, key, self.channels)

  def create_state(
      self,
      tx: optax.GradientTransformation,
      key: jax.Array,
      data: Optional[base.Data] = None,
  ) -> base.TrainState:
    """The step-0 state (``init_from`` loaded), replicated over the mesh.

    Args:
      tx: the optimiser (its state is initialised here).
      key: the init key.
      data: the method's prepared splits (for its ``init_extra``).

    Returns:
      The replicated :class:`base.TrainState`.
    """
    return step_lib.replicate(
        step_lib.create_state(
            self.config, self.model, tx, key, self.channels, data
        ),
        self.mesh,
    )

  def compile_step(
      self, tx: optax.GradientTransformation, schedule: optax.Schedule
  ):
    """The jit-compiled, donating train step (see ``step.compile_train_step``).

    Args:
      tx: the optimiser.
      schedule: the LR schedule (logged by the step).

    Returns:
      ``(state, batch, key) -> (state, metrics)``, jitted over the mesh.
    """
    return step_lib.compile_train_step(
        self.config, self.model, tx, schedule, self.mesh
    )

  def replicate(self, tree: Any) -> Any:
    """``tree`` placed fully replicated over the mesh (see ``step.replicate``)."""
    return step_lib.replicate(tree, self.mesh)

  def restore_variables(
      self, workdir: str, step: Optional[int] = None
  ) -> tuple[int, dict[str, Any]]:
    """The evaluated variables (``method.eval_variables``) of a checkpoint.

    Args:
      workdir: a run directory.
      step: the checkpoint (default: the latest).

    Returns:
      ``(step, {'params', 'batch_stats'})`` on the host.
    """
    step, tree = checkpoint.restore_tree(workdir, step)
    state = base.TrainState(
        step=tree['step'],
        params=tree['params'],
        batch_stats=tree['batch_stats'],
        opt_state=None,
        extra=tree.get('extra', {}),
    )
    return step, self.method.eval_variables(state)


def build(
    config: ml_collections.ConfigDict,
    mesh: Optional[jax.sharding.Mesh] = None,
    dataset: Optional[dict[str, Any]] = None,
) -> Run:
  """Builds the :class:`Run` of ``config`` (on all devices unless ``mesh``).

  Loads oneDNN first where ``config.cpu_convolutions='onednn'`` applies.

  Args:
    config: a validated experiment config.
    mesh: the device mesh (default: a 1-D mesh over every device).
    dataset: the dataset's facts (default: read by
      ``input_pipeline.dataset_info``; a workdir keeps them in
      ``dataset.json``, so its encoder loads where the data is absent).

  Returns:
    The run.
  """
  mesh = step_lib.make_mesh() if mesh is None else mesh
  convolutions = conv.resolve(config.cpu_convolutions, mesh)
  if convolutions != config.cpu_convolutions:
    config = config.copy_and_resolve_references()
    config.cpu_convolutions = convolutions
  method = methods.get(config.method)
  if dataset is None:
    dataset = input_pipeline.dataset_info(
        config.dataset, config.data_dir, config.data.classes
    )
  return Run(
      config=config,
      method=method,
      # A folder without classes still gets a (never trained) one-class probe
      # head: a zero-width softmax would put NaN into the gradients.
      model=method.build_model(config, max(1, dataset['num_classes'])),
      mesh=mesh,
      dataset=dataset,
      channels=config.data.channels or dataset['image_shape'][-1],
  )
