"""SimCLR (Chen et al., 2020): NT-Xent between two augmented views."""

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
  """One SimCLR step on a global batch (see ``shared.two_view_step``).

  The NT-Xent negatives of every anchor are the whole global batch.

  Args:
    state: the replicated train state.
    batch: ``{'image': uint8 [B,H,W,C], 'label': int32 [B]}`` (label -1 where
      unknown), sharded over the data axis.
      Or ready ``'views'`` (two float32 [B,S,S,C]) in place of
      ``'image'`` (see ``shared.views_of``).
    key: the PRNG key of this step.
    model: a ``shared.TwoViewModel``.
    tx: the optimiser.
    config: the experiment config (``temperature``).
    schedule: the LR schedule (for logging only).

  Returns:
    The new state and a dict of scalar metrics.
  """

  def embedding_loss(z_a, z_b):
    loss, acc = losses.nt_xent_and_accuracy(z_a, z_b, config.temperature)
    return loss, {'contrastive_accuracy': acc}

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
  """One-line error for a temperature NT-Xent cannot use."""
  if not config.temperature > 0:
    raise errors.ConfigError(
        f'temperature={config.temperature!r} must be > 0 (SimCLR uses 0.1-0.5).'
    )


METHOD = base.Method(
    name='simclr',
    build_model=shared.build_two_view_model,
    train_step=train_step,
    check_config=check_config,
    images_per_step=shared.two_views_per_image,
    host_views=shared.two_host_views,
)
