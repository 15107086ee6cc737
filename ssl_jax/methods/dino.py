"""DINO (Caron et al., 2021): self-distillation from a centred teacher.

The student sees 2 global crops and N local crops of another size; the
teacher, an EMA of the student, sees the global crops only. Each student
crop is trained towards the teacher's output of every other global crop.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssl_jax import errors
from ssl_jax import losses
from ssl_jax import models
from ssl_jax.data import augment
from ssl_jax.methods import base
from ssl_jax.methods import momentum
from ssl_jax.methods import shared
from ssl_jax.methods.base import TrainState
from ssl_jax.models import heads


def defaults() -> ml_collections.ConfigDict:
  """``config.dino`` (its head replaces ``config.projector``)."""
  c = ml_collections.ConfigDict()
  c.out_dim = 4096  # Prototypes K.
  c.hidden_dims = (2048, 2048)  # The head's hidden widths (GELU).
  c.bottleneck_dim = 256  # The l2-normalised bottleneck before the prototypes.
  c.use_bn = False  # BatchNorm in the head's hidden layers.
  c.norm_last_layer = True  # Prototype norms fixed at 1.
  c.student_temperature = 0.1
  # The teacher's temperature rises linearly from warmup_teacher_temperature
  # to teacher_temperature over warmup_teacher_epochs, then stays.
  c.teacher_temperature = 0.07
  c.warmup_teacher_temperature = 0.04
  c.warmup_teacher_epochs = 30.0
  # Teacher momentum: from this value at step 0 to 1 at the last step (cosine).
  c.base_momentum = 0.996
  c.center_momentum = 0.9  # EMA of the centre of the teacher's outputs.
  # The prototypes (the head's last layer) are not trained for this many
  # epochs (DINO: 1): no update, no decay, optimiser state from then on.
  c.freeze_last_layer_epochs = 0.0
  # Multi-crop: the global crops are augment.view1 and augment.view2 at the
  # training view side; these local crops go to the student only.
  c.num_local_crops = 6
  c.local_size = 0  # Side of the local crops (0: half the global side).
  c.local_view = augment.view_config(crop_scale=(0.05, 0.4))
  return c


def host_views(
    config: ml_collections.ConfigDict,
) -> tuple[tuple[ml_collections.ConfigDict, int], ...]:
  """The 2 global crops, then the local ones: DINO's ``host_views``."""
  d, side = config.dino, shared.train_view_size(config)
  return ((config.augment.view1, side), (config.augment.view2, side)) + (
      (d.local_view, local_size(config)),
  ) * d.num_local_crops


def local_size(config: ml_collections.ConfigDict) -> int:
  """Side of the local crops: ``dino.local_size``, else half the global side."""
  return config.dino.local_size or max(1, shared.train_view_size(config) // 2)


def check_config(config: ml_collections.ConfigDict) -> None:
  """Temperatures > 0, momenta in [0, 1), crop counts and sizes that fit."""
  d = config.dino
  for name in (
      'student_temperature',
      'teacher_temperature',
      'warmup_teacher_temperature',
  ):
    if d[name] <= 0:
      raise errors.ConfigError(
          f'dino.{name}={d[name]!r} must be > 0 (DINO: student 0.1, teacher'
          ' 0.04 to 0.07).'
      )
  momentum.check_momentum('dino', d.base_momentum)
  if not 0.0 <= d.center_momentum < 1.0:
    raise errors.ConfigError(
        f'dino.center_momentum={d.center_momentum!r} must be in [0, 1), e.g.'
        ' 0.9.'
    )
  if d.freeze_last_layer_epochs < 0:
    raise errors.ConfigError(
        f'dino.freeze_last_layer_epochs={d.freeze_last_layer_epochs!r} must'
        ' be >= 0 (DINO: 1).'
    )
  if d.num_local_crops < 0 or d.warmup_teacher_epochs < 0:
    raise errors.ConfigError(
        f'dino.num_local_crops={d.num_local_crops!r} and'
        f' dino.warmup_teacher_epochs={d.warmup_teacher_epochs!r} must be'
        ' >= 0.'
    )
  side, multiple = local_size(config), models.input_multiple(config)
  if d.num_local_crops and (d.local_size < 0 or side % multiple):
    raise errors.ConfigError(
        f'dino.local_size={d.local_size!r} gives local crops of side {side}:'
        f' it must be >= 0 and a multiple of model.patch_size={multiple}.'
    )
  augment.check_view('dino.local_view', d.local_view, side)


def build_model(config: ml_collections.ConfigDict, num_classes: int):
  """Encoder + DINO head (``config.dino``) + online probe."""
  d = config.dino
  head = heads.DINOHead(
      hidden_dims=tuple(d.hidden_dims),
      bottleneck_dim=d.bottleneck_dim,
      out_dim=d.out_dim,
      use_bn=d.use_bn,
      norm_last_layer=d.norm_last_layer,
      dtype=jnp.dtype(config.dtype),
  )
  return shared.TwoViewModel(models.get_encoder(config), head, num_classes)


def init_extra(config, params, batch_stats, data) -> dict[str, Any]:
  """The teacher (a copy of the student), the centre and the warm-up length.

  Args:
    config: the experiment config.
    params: the student's parameters.
    batch_stats: the student's BatchNorm statistics.
    data: the method's splits (they fix the number of steps).

  Returns:
    :func:`momentum.init_target`'s dict with ``center`` [K] and
    ``warmup_steps``.
  """
  steps_per_epoch = base.one_batch_per_step(config, data)
  warmup = int(config.dino.warmup_teacher_epochs * steps_per_epoch)
  return dict(
      momentum.init_target(config, params, batch_stats, data),
      center=jnp.zeros((config.dino.out_dim,), jnp.float32),
      warmup_steps=jnp.asarray(warmup, jnp.int32),
  )


def teacher_temperature(
    step: jax.Array, warmup_steps: jax.Array, d: ml_collections.ConfigDict
) -> jax.Array:
  """Linear from ``warmup_teacher_temperature`` to ``teacher_temperature``.

  Args:
    step: the current step.
    warmup_steps: steps of the warm-up (0: none).
    d: ``config.dino``.

  Returns:
    The float32 teacher temperature of ``step``.
  """
  progress = jnp.where(
      warmup_steps > 0, step / jnp.maximum(warmup_steps, 1), 1.0
  )
  progress = jnp.minimum(progress, 1.0).astype(jnp.float32)
  start, end = d.warmup_teacher_temperature, d.teacher_temperature
  return start + progress * (end - start)


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
  """One DINO step: multi-crop self-distillation, then teacher and centre EMAs.

  The student encodes the global crops and the local crops in two passes
  (their sides differ), so the encoder's BatchNorm normalises each group
  over the whole global batch; its head then runs once on the features of
  all crops (``dino.use_bn``: one BatchNorm over all of them), as DINO's
  multi-crop wrapper does.

  Args:
    state: the replicated train state (``extra``: teacher, centre).
    batch: ``{'image': uint8 [B,H,W,C], 'label': int32 [B]}`` (label -1 where
      unknown), sharded over the data axis.
      Or ready ``'views'`` in place of ``'image'``: the 2 global crops,
      then the local ones (see ``shared.views_of``).
    key: the PRNG key of this step.
    model: the :func:`build_model` module.
    tx: the optimiser.
    config: the experiment config (``config.dino``).
    schedule: the LR schedule (for logging only).

  Returns:
    The new state and a dict of scalar metrics.
  """
  d = config.dino
  b = batch['label'].shape[0]
  global_key, local_key = jax.random.split(key)
  global_views = jnp.concatenate(
      shared.views_of(
          batch,
          global_key,
          (config.augment.view1, config.augment.view2),
          shared.train_view_size(config),
      )
  )
  local_views = None
  if d.num_local_crops:
    local_views = jnp.concatenate(
        shared.views_of(
            batch,
            local_key,
            (d.local_view,) * d.num_local_crops,
            local_size(config),
            first=2,
        )
    )
  labels = jnp.concatenate([batch['label'], batch['label']])
  temperature = teacher_temperature(state.step, state.extra['warmup_steps'], d)
  center = state.extra['center']

  teacher_out, _ = model.apply(
      momentum.target_variables(state),
      global_views,
      train=True,
      mutable=['batch_stats'],
  )
  teacher = jax.lax.stop_gradient(teacher_out['projection'])
  teacher = teacher.astype(jnp.float32).reshape(2, b, -1)

  def loss_fn(params):
    out, new_vars = model.apply(
        {'params': params, 'batch_stats': state.batch_stats},
        global_views,
        train=True,
        more_crops=local_views,
        mutable=['batch_stats'],
    )
    batch_stats = new_vars.get('batch_stats', {})
    student = out['projection'].reshape(2 + d.num_local_crops, b, -1)
    loss = losses.dino(
        student,
        teacher,
        center,
        student_temperature=d.student_temperature,
        teacher_temperature=temperature,
    )
    p_loss, p_acc = shared.probe_loss(out['probe_logits'], labels)
    total = loss + (p_loss if config.online_probe else 0.0)
    metrics = {
        'loss': loss,
        'online_probe/loss': p_loss,
        'online_probe/accuracy': p_acc,
    }
    return total, (batch_stats, metrics)

  grads, (batch_stats, metrics) = jax.grad(loss_fn, has_aux=True)(state.params)
  new, metrics = shared.apply_gradients(
      state, grads, batch_stats, tx=tx, schedule=schedule, metrics=metrics
  )
  new, tau = momentum.update_target(state, new, d.base_momentum)
  # The teacher's sharpened, centred distribution: its entropy falls towards
  # 0 as it sharpens and reaches log(K) if it collapses to uniform.
  probs = jax.nn.softmax((teacher - center) / temperature, axis=-1)
  entropy = -jnp.sum(probs * jnp.log(probs + 1e-12), axis=-1).mean()
  new = new.replace(
      extra=dict(
          new.extra,
          center=losses.dino_center(teacher, center, d.center_momentum),
      )
  )
  return new, dict(
      metrics,
      target_momentum=tau,
      teacher_temperature=temperature,
      teacher_entropy=entropy,
  )


def frozen_params(
    config: ml_collections.ConfigDict,
) -> tuple[tuple[str, float], ...]:
  """The prototypes, for ``dino.freeze_last_layer_epochs`` epochs."""
  epochs = config.dino.freeze_last_layer_epochs
  return ((r'^projector/.*prototypes', epochs),) if epochs > 0 else ()


def images_per_step(config: ml_collections.ConfigDict) -> tuple[int, int]:
  """``(images read, views encoded)``: 2 global and N local crops of each."""
  return config.batch_size, (2 + config.dino.num_local_crops) * (
      config.batch_size
  )


METHOD = base.Method(
    name='dino',
    build_model=build_model,
    train_step=train_step,
    section='dino',
    defaults=defaults,
    check_config=check_config,
    structural_fields=(
        'dino.out_dim',
        'dino.hidden_dims',
        'dino.bottleneck_dim',
        'dino.use_bn',
        'dino.norm_last_layer',
        # Frozen parameters have their own optimiser state.
        'dino.freeze_last_layer_epochs',
    ),
    init_extra=init_extra,
    images_per_step=images_per_step,
    host_views=host_views,
    frozen_params=frozen_params,
)
