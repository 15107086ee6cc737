"""BYOL (Grill et al., 2020): predict a slow-moving target's embedding."""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssl_jax import errors
from ssl_jax import losses
from ssl_jax import models
from ssl_jax.methods import base
from ssl_jax.methods import shared
from ssl_jax.methods.base import TrainState
from ssl_jax.models import heads


def defaults() -> ml_collections.ConfigDict:
  """``config.byol``."""
  c = ml_collections.ConfigDict()
  # Target momentum: from this value at step 0 to 1 at the last step (cosine).
  c.base_momentum = 0.99
  c.predictor_hidden_dims = (4096,)  # The predictor MLP's hidden widths.
  return c


def check_config(config: ml_collections.ConfigDict) -> None:
  """``byol.base_momentum`` must be in [0, 1)."""
  if not 0.0 <= config.byol.base_momentum < 1.0:
    raise errors.ConfigError(
        f'byol.base_momentum={config.byol.base_momentum!r} must be in [0, 1), '
        'e.g. 0.99 or 0.996.'
    )


def build_model(config: ml_collections.ConfigDict, num_classes: int):
  """Encoder + ``config.projector`` + a predictor to the projection width."""
  predictor = heads.ProjectionHead(
      hidden_dims=tuple(config.byol.predictor_hidden_dims),
      out_dim=config.projector.out_dim,
      use_bn=True,
      dtype=jnp.dtype(config.dtype),
  )
  return shared.TwoViewModel(
      models.get_encoder(config),
      models.get_projector(config),
      num_classes,
      predictor=predictor,
  )


def init_extra(config, params, batch_stats, data) -> dict[str, Any]:
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
  # Copies: a buffer that appears twice in the donated state would be freed twice.
  return {
      'target_params': jax.tree.map(jnp.copy, params),
      'target_batch_stats': jax.tree.map(jnp.copy, batch_stats),
      'num_steps': jnp.asarray(max(1, num_steps), jnp.int32),
  }


def target_momentum(
    step: jax.Array, num_steps: jax.Array, base_momentum: float
) -> jax.Array:
  """BYOL's cosine schedule: ``1 - (1 - base) (cos(pi step / K) + 1) / 2``.

  Args:
    step: the step just taken (0-based).
    num_steps: K, the run's steps.
    base_momentum: the momentum at step 0.

  Returns:
    The float32 momentum, rising from ``base_momentum`` to 1 at step K.
  """
  progress = jnp.minimum(step / num_steps, 1.0).astype(jnp.float32)
  return 1.0 - (1.0 - base_momentum) * (jnp.cos(math.pi * progress) + 1) / 2


def train_step(
    state: TrainState,
    batch: dict[str, jax.Array],
    key: jax.Array,
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    config: ml_collections.ConfigDict,
    schedule: optax.Schedule,
) -> tuple[TrainState, dict[str, Any]]:
  """One BYOL step: symmetric loss, then the target's EMA update.

  Args:
    state: the replicated train state (``extra`` holds the target).
    batch: ``{'image': uint8 [B,H,W,C], 'label': int32 [B]}`` (label -1 where
      unknown), sharded over the data axis.
    key: the PRNG key of this step.
    model: a ``shared.TwoViewModel`` with a predictor.
    tx: the optimiser.
    config: the experiment config (``config.byol``).
    schedule: the LR schedule (for logging only).

  Returns:
    The new state and a dict of scalar metrics.
  """

  def embedding_loss(p_a, p_b, t_a, t_b):
    return losses.byol(p_a, t_b) + losses.byol(p_b, t_a), {}

  new, metrics = shared.two_view_step(
      state,
      batch,
      key,
      model=model,
      tx=tx,
      config=config,
      schedule=schedule,
      embedding_loss=embedding_loss,
      target_variables=lambda s: {
          'params': s.extra['target_params'],
          'batch_stats': s.extra['target_batch_stats'],
      },
      online_output='prediction',
      target_output='projection',
  )
  tau = target_momentum(
      state.step, state.extra['num_steps'], config.byol.base_momentum
  )
  extra = dict(
      state.extra,
      target_params=shared.ema_update(
          state.extra['target_params'], new.params, tau
      ),
      target_batch_stats=shared.ema_update(
          state.extra['target_batch_stats'], new.batch_stats, tau
      ),
  )
  return new.replace(extra=extra), dict(metrics, target_momentum=tau)


METHOD = base.Method(
    name='byol',
    build_model=build_model,
    train_step=train_step,
    section='byol',
    defaults=defaults,
    check_config=check_config,
    structural_fields=('byol.predictor_hidden_dims',),
    init_extra=init_extra,
    images_per_step=shared.two_views_per_image,
)
