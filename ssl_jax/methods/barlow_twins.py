"""Barlow Twins (Zbontar et al., 2021): decorrelate the two views' embeddings."""

from typing import Any

import flax.linen as nn
import jax
import ml_collections
import optax

from ssl_jax import errors
from ssl_jax import losses
from ssl_jax.methods import base
from ssl_jax.methods import shared
from ssl_jax.methods.base import TrainState


def defaults() -> ml_collections.ConfigDict:
  """``config.barlow``."""
  c = ml_collections.ConfigDict()
  c.lambd = 0.0051  # Off-diagonal weight of the loss.
  # Multiplies the whole loss (solo-learn's scale_loss: 0.1 in its recipes).
  c.scale_loss = 1.0
  return c


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
  """One Barlow Twins step on a global batch (see ``shared.two_view_step``).

  The embedding standardisation and cross-correlation use the global batch.

  Args:
    state: the replicated train state.
    batch: ``{'image': uint8 [B,H,W,C], 'label': int32 [B]}`` (label -1 where
      unknown), sharded over the data axis.
      Or ready ``'views'`` (two float32 [B,S,S,C]) in place of
      ``'image'`` (see ``shared.views_of``).
    key: the PRNG key of this step.
    model: a ``shared.TwoViewModel``.
    tx: the optimiser.
    config: the experiment config (``barlow.lambd``, ``barlow.scale_loss``).
    schedule: the LR schedule (for logging only).

  Returns:
    The new state and a dict of scalar metrics.
  """

  def embedding_loss(z_a, z_b):
    loss = losses.barlow_twins(z_a, z_b, config.barlow.lambd)
    return config.barlow.scale_loss * loss, {}

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


def check_config(config: ml_collections.ConfigDict) -> None:
  """``barlow.lambd`` >= 0 and ``barlow.scale_loss`` > 0."""
  b = config.barlow
  if b.lambd < 0 or b.scale_loss <= 0:
    raise errors.ConfigError(
        f'barlow.lambd={b.lambd!r} must be >= 0 and barlow.scale_loss='
        f'{b.scale_loss!r} > 0 (the paper: 0.0051 and 1; solo-learn 0.1).'
    )


METHOD = base.Method(
    name='barlow_twins',
    build_model=shared.build_two_view_model,
    train_step=train_step,
    section='barlow',
    defaults=defaults,
    check_config=check_config,
    images_per_step=shared.two_views_per_image,
    host_views=shared.two_host_views,
)
