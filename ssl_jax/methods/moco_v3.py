"""MoCo v3 (Chen, Xie and He, 2021): queries against momentum-encoder keys."""

import math
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import optax

from ssl_jax import errors
from ssl_jax import losses
from ssl_jax import models
from ssl_jax.methods import base
from ssl_jax.methods import momentum
from ssl_jax.methods import shared
from ssl_jax.methods.base import TrainState


def defaults() -> ml_collections.ConfigDict:
  """``config.moco_v3``."""
  c = ml_collections.ConfigDict()
  c.temperature = 0.2  # InfoNCE temperature (the loss is scaled by 2 T).
  # Momentum encoder: from this value at step 0 to 1 at the last step (cosine).
  c.base_momentum = 0.99
  c.predictor_hidden_dims = (4096,)  # The predictor MLP's hidden widths.
  # BatchNorm without scale or bias on the predictor's output (MoCo v3's ViT
  # predictor has it, its ResNet one does not).
  c.predictor_out_bn = False
  # A bias on the predictor's output layer (MoCo v3's and solo-learn's have
  # none).
  c.predictor_out_bias = True
  # ViT: never train the patch embedding (MoCo v3's stop-grad-conv1, with
  # model.patch_init='xavier_uniform'), which it reports stabilises ViTs.
  c.freeze_patch_embedding = False
  return c


def check_config(config: ml_collections.ConfigDict) -> None:
  """``moco_v3.temperature`` > 0 and ``moco_v3.base_momentum`` in [0, 1)."""
  if config.moco_v3.temperature <= 0:
    raise errors.ConfigError(
        f'moco_v3.temperature={config.moco_v3.temperature!r} must be > 0, '
        'e.g. 0.2.'
    )
  momentum.check_momentum('moco_v3', config.moco_v3.base_momentum)
  if config.moco_v3.freeze_patch_embedding and not models.is_vit(config):
    raise errors.ConfigError(
        'moco_v3.freeze_patch_embedding=True needs a ViT encoder'
        f' (encoder={config.encoder!r}); use --config.encoder=vit_small.'
    )


def build_model(config: ml_collections.ConfigDict, num_classes: int):
  """Encoder + ``config.projector`` + a predictor to the projection width."""
  return momentum.model_with_predictor(
      config,
      num_classes,
      config.moco_v3.predictor_hidden_dims,
      predictor_out_bn=config.moco_v3.predictor_out_bn,
      predictor_out_bias=config.moco_v3.predictor_out_bias,
  )


def frozen_params(
    config: ml_collections.ConfigDict,
) -> tuple[tuple[str, float], ...]:
  """The ViT's patch embedding, never trained, if asked for."""
  if config.moco_v3.freeze_patch_embedding:
    return ((r'^encoder/patch_embedding/', math.inf),)
  return ()


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
  """One MoCo v3 step: symmetric InfoNCE, then the momentum encoder's update.

  Under ``jax.jit`` the batch is one global array, so every query meets the
  keys of the whole global batch as negatives (the paper's all-gather).

  Args:
    state: the replicated train state (``extra`` holds the momentum encoder).
    batch: ``{'image': uint8 [B,H,W,C], 'label': int32 [B]}`` (label -1 where
      unknown), sharded over the data axis.
      Or ready ``'views'`` (two float32 [B,S,S,C]) in place of
      ``'image'`` (see ``shared.views_of``).
    key: the PRNG key of this step.
    model: a ``shared.TwoViewModel`` with a predictor.
    tx: the optimiser.
    config: the experiment config (``config.moco_v3``).
    schedule: the LR schedule (for logging only).

  Returns:
    The new state and a dict of scalar metrics.
  """
  temperature = config.moco_v3.temperature

  def embedding_loss(q_a, q_b, k_a, k_b):
    return (
        losses.moco_v3(q_a, k_b, temperature)
        + losses.moco_v3(q_b, k_a, temperature)
    ), {}

  return momentum.predict_target_step(
      state,
      batch,
      key,
      model=model,
      tx=tx,
      config=config,
      schedule=schedule,
      embedding_loss=embedding_loss,
      base_momentum=config.moco_v3.base_momentum,
  )


METHOD = base.Method(
    name='moco_v3',
    build_model=build_model,
    train_step=train_step,
    section='moco_v3',
    defaults=defaults,
    check_config=check_config,
    structural_fields=(
        'moco_v3.predictor_hidden_dims',
        'moco_v3.predictor_out_bn',
        'moco_v3.predictor_out_bias',
        'moco_v3.freeze_patch_embedding',
    ),
    init_extra=momentum.init_target,
    images_per_step=shared.two_views_per_image,
    host_views=shared.two_host_views,
    frozen_params=frozen_params,
)
