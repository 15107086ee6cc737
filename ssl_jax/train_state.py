"""The training state: one pytree that orbax saves and restores whole."""

from typing import Any

import flax
import jax


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
