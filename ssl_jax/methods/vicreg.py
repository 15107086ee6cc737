"""VICReg (Bardes, Ponce and LeCun, 2022): variance, invariance, covariance."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssl_jax import errors
from ssl_jax import losses
from ssl_jax.methods import base
from ssl_jax.methods import shared
from ssl_jax.methods.base import TrainState


def defaults() -> ml_collections.ConfigDict:
  """``config.vicreg``: the loss weights (the paper's 25, 25, 1)."""
  c = ml_collections.ConfigDict()
  c.sim_weight = 25.0  # Invariance (mean squared distance of the views).
  c.var_weight = 25.0  # Variance hinge at 1 on each dimension's std.
  c.cov_weight = 1.0  # Squared off-diagonal covariances over the dimension.
  return c


def check_config(config: ml_collections.ConfigDict) -> None:
  """The weights must be >= 0 and not all 0."""
  w = config.vicreg
  weights = (w.sim_weight, w.var_weight, w.cov_weight)
  if min(weights) < 0 or max(weights) <= 0:
    raise errors.ConfigError(
        f'vicreg weights (sim, var, cov)={weights} must be >= 0 and not all 0.'
    )


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
  """One VICReg step on a global batch (see ``shared.two_view_step``).

  Variances and covariances are over the global batch of each view.

  Args:
    state: the replicated train state.
    batch: ``{'image': uint8 [B,H,W,C], 'label': int32 [B]}`` (label -1 where
      unknown), sharded over the data axis.
      Or ready ``'views'`` (two float32 [B,S,S,C]) in place of
      ``'image'`` (see ``shared.views_of``).
    key: the PRNG key of this step.
    model: a ``shared.TwoViewModel``.
    tx: the optimiser.
    config: the experiment config (``config.vicreg``).
    schedule: the LR schedule (for logging only).

  Returns:
    The new state and a dict of scalar metrics.
  """
  w = config.vicreg

  def embedding_loss(z_a, z_b):
    loss = losses.vicreg(z_a, z_b, w.sim_weight, w.var_weight, w.cov_weight)
    # The invariance term alone (logged): how close the views are.
    return loss, {'invariance': jnp.mean(jnp.square(z_a - z_b))}

  return shared.two_view_step(
      state,
      batch,
      key,
      model=model,
      tx=tx,
      config=config,
      schedule=schedule,
      embedding_loss=embedding_loss,
  )


METHOD = base.Method(
    name='vicreg',
    build_model=shared.build_two_view_model,
    train_step=train_step,
    section='vicreg',
    defaults=defaults,
    check_config=check_config,
    images_per_step=shared.two_views_per_image,
    host_views=shared.two_host_views,
)
