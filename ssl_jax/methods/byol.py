"""BYOL (Grill et al., 2020): predict a slow-moving target's embedding."""

from typing import Any

import flax.linen as nn
import jax
import ml_collections
import optax

from ssl_jax import losses
from ssl_jax.methods import base
from ssl_jax.methods import momentum
from ssl_jax.methods import shared
from ssl_jax.methods.base import TrainState


def defaults() -> ml_collections.ConfigDict:
  """``config.byol``."""
  c = ml_collections.ConfigDict()
  # Target momentum: from this value at step 0 to 1 at the last step (cosine).
  c.base_momentum = 0.99
  c.predictor_hidden_dims = (4096,)  # The predictor MLP's hidden widths.
  return c


def check_config(config: ml_collections.ConfigDict) -> None:
  """``byol.base_momentum`` must be in [0, 1)."""
  momentum.check_momentum('byol', config.byol.base_momentum)


def build_model(config: ml_collections.ConfigDict, num_classes: int):
  """Encoder + ``config.projector`` + a predictor to the projection width."""
  return momentum.model_with_predictor(
      config, num_classes, config.byol.predictor_hidden_dims
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
  """One BYOL step: symmetric loss, then the target's EMA update.

  Args:
    state: the replicated train state (``extra`` holds the target).
    batch: ``{'image': uint8 [B,H,W,C], 'label': int32 [B]}`` (label -1 where
      unknown), sharded over the data axis.
      Or ready ``'views'`` (two float32 [B,S,S,C]) in place of
      ``'image'`` (see ``shared.views_of``).
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

  return momentum.predict_target_step(
      state,
      batch,
      key,
      model=model,
      tx=tx,
      config=config,
      schedule=schedule,
      embedding_loss=embedding_loss,
      base_momentum=config.byol.base_momentum,
  )


METHOD = base.Method(
    name='byol',
    build_model=build_model,
    train_step=train_step,
    section='byol',
    defaults=defaults,
    check_config=check_config,
    structural_fields=('byol.predictor_hidden_dims',),
    init_extra=momentum.init_target,
    images_per_step=shared.two_views_per_image,
    host_views=shared.two_host_views,
)
