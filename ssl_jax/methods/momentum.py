"""A momentum target network: an EMA of the online one (BYOL, MoCo v3, DINO).

The target is the online model's whole variable tree under another set of
values, kept in ``TrainState.extra`` (so it is checkpointed and donated with
the state) and moved towards the online values after every step with a
momentum that rises from ``base_momentum`` to 1 on a cosine over the run.
"""

import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssl_jax import errors
from ssl_jax import models
from ssl_jax.methods import base
from ssl_jax.methods import shared
from ssl_jax.methods.base import TrainState
from ssl_jax.models import heads


def check_momentum(section: str, value: float) -> None:
  """Raises a one-line ``ConfigError`` unless ``0 <= value < 1``.

  Args:
    section: the config section holding ``base_momentum``.
    value: its value.
  """
  if not 0.0 <= value < 1.0:
    raise errors.ConfigError(
        f'{section}.base_momentum={value!r} must be in [0, 1), e.g. 0.99 or '
        '0.996.'
    )


def init_target(
    config: ml_collections.ConfigDict, params: Any, batch_stats: Any, data
) -> dict[str, Any]:
  """The target starts as a copy of the online network.

  Args:
    config: the experiment config.
    params: the online parameters.
    batch_stats: the online BatchNorm statistics.
    data: the method's splits (they fix the number of steps).

  Returns:
    ``{'target_params', 'target_batch_stats', 'num_steps'}``.
  """
  num_steps = int(config.num_epochs * base.one_batch_per_step(config, data))
  # Copies: a buffer twice in the donated state would be freed twice.
  return {
      'target_params': jax.tree.map(jnp.copy, params),
      'target_batch_stats': jax.tree.map(jnp.copy, batch_stats),
      'num_steps': jnp.asarray(max(1, num_steps), jnp.int32),
  }


def target_momentum(
    step: jax.Array, num_steps: jax.Array, base_momentum: float
) -> jax.Array:
  """The cosine schedule: ``1 - (1 - base) (cos(pi step / K) + 1) / 2``.

  Args:
    step: the step just taken (0-based).
    num_steps: K, the run's steps.
    base_momentum: the momentum at step 0.

  Returns:
    The float32 momentum, rising from ``base_momentum`` to 1 at step K.
  """
  progress = jnp.minimum(step / num_steps, 1.0).astype(jnp.float32)
  return 1.0 - (1.0 - base_momentum) * (jnp.cos(math.pi * progress) + 1) / 2


def target_variables(state: TrainState) -> dict[str, Any]:
  """The target's ``{'params', 'batch_stats'}``."""
  return {
      'params': state.extra['target_params'],
      'batch_stats': state.extra['target_batch_stats'],
  }


def update_target(
    state: TrainState, new: TrainState, base_momentum: float
) -> tuple[TrainState, jax.Array]:
  """Moves the target of ``new`` towards its online variables.

  Args:
    state: the state the step started from (its step and target count).
    new: the state after the optimiser update.
    base_momentum: the momentum at step 0.

  Returns:
    ``new`` with the updated target, and the momentum used.
  """
  tau = target_momentum(state.step, state.extra['num_steps'], base_momentum)
  extra = dict(
      new.extra,
      target_params=shared.ema_update(
          state.extra['target_params'], new.params, tau
      ),
      target_batch_stats=shared.ema_update(
          state.extra['target_batch_stats'], new.batch_stats, tau
      ),
  )
  return new.replace(extra=extra), tau


def model_with_predictor(
    config: ml_collections.ConfigDict,
    num_classes: int,
    predictor_hidden_dims: tuple[int, ...],
    predictor_out_bn: bool = False,
    predictor_out_bias: bool = True,
) -> nn.Module:
  """Encoder + ``config.projector`` + a predictor back to the projection width.

  Args:
    config: the experiment config.
    num_classes: classes of the online probe.
    predictor_hidden_dims: the predictor MLP's hidden widths.
    predictor_out_bn: BatchNorm without scale or bias on the predictor's
      output (MoCo v3's ViT predictor).
    predictor_out_bias: a bias on the predictor's output layer (MoCo v3's
      has none).

  Returns:
    A ``shared.TwoViewModel`` with a ``'prediction'`` output.
  """
  predictor = heads.ProjectionHead(
      hidden_dims=tuple(predictor_hidden_dims),
      out_dim=config.projector.out_dim,
      use_bn=True,
      out_bn=predictor_out_bn,
      out_bias=predictor_out_bias,
      dtype=jnp.dtype(config.dtype),
  )
  return shared.TwoViewModel(
      models.get_encoder(config),
      models.get_projector(config),
      num_classes,
      predictor=predictor,
  )


def predict_target_step(
    state: TrainState,
    batch: dict[str, jax.Array],
    key: jax.Array,
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    config: ml_collections.ConfigDict,
    schedule: optax.Schedule,
    embedding_loss: Callable[..., tuple[jax.Array, dict[str, Any]]],
    base_momentum: float,
) -> tuple[TrainState, dict[str, Any]]:
  """A two-view step whose online predictions chase the target's projections.

  Args:
    state: the replicated train state (``extra`` holds the target).
    batch: ``{'image': uint8 [B,H,W,C], 'label': int32 [B]}`` (label -1 where
      unknown), sharded over the data axis.
    key: the PRNG key of this step.
    model: a ``shared.TwoViewModel`` with a predictor.
    tx: the optimiser.
    config: the experiment config.
    schedule: the LR schedule (for logging only).
    embedding_loss: ``(p_a, p_b, t_a, t_b) -> (loss, metrics)``: online
      predictions and target projections of the two views.
    base_momentum: the target's momentum at step 0.

  Returns:
    The new state and a dict of scalar metrics (with ``target_momentum``).
  """
  new, metrics = shared.two_view_step(
      state,
      batch,
      key,
      model=model,
      tx=tx,
      config=config,
      schedule=schedule,
      embedding_loss=embedding_loss,
      target_variables=target_variables,
      online_output='prediction',
      target_output='projection',
  )
  new, tau = update_target(state, new, base_momentum)
  return new, dict(metrics, target_momentum=tau)
