"""Pieces the methods share: the two-view model and step, the update, EMAs."""

from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssl_jax import models
from ssl_jax.data import augment
from ssl_jax.methods.base import TrainState


class TwoViewModel(nn.Module):
  """Encoder, projector and an online linear probe on stop-gradient features.

  Attributes:
    encoder: images -> features (the representation that is evaluated).
    projector: features -> embeddings for the loss.
    num_classes: classes of the online probe.
    predictor: optional projections -> ``'prediction'`` (BYOL's online head).
  """

  encoder: nn.Module
  projector: nn.Module
  num_classes: int
  predictor: Optional[nn.Module] = None

  @nn.compact
  def __call__(self, x, train: bool = True, more_crops=None):
    """Encodes ``x`` (and ``more_crops``, crops of another side).

    Args:
      x: images [N, H, W, C].
      train: training mode (BatchNorm statistics of the batch).
      more_crops: optional images [M, h, w, C]: encoded in a second pass,
        then projected with ``x`` as one batch of N + M features, as DINO's
        multi-crop wrapper runs its head once on all crops.

    Returns:
      ``features`` and ``probe_logits`` of ``x``; ``projection`` (and
      ``prediction``) of ``x`` then ``more_crops``.
    """
    features = self.encoder(x, train=train)
    head_in = features
    if more_crops is not None:
      head_in = jnp.concatenate(
          [features, self.encoder(more_crops, train=train)]
      )
    projection = self.projector(head_in, train=train)
    probe_logits = nn.Dense(self.num_classes, name='probe')(
        jax.lax.stop_gradient(features).astype(jnp.float32)
    )
    out = {
        'features': features,
        'projection': projection,
        'probe_logits': probe_logits,
    }
    if self.predictor is not None:
      out['prediction'] = self.predictor(projection, train=train)
    return out


def build_two_view_model(
    config: ml_collections.ConfigDict, num_classes: int
) -> nn.Module:
  """Encoder + ``config.projector`` + online probe."""
  return TwoViewModel(
      models.get_encoder(config), models.get_projector(config), num_classes
  )


def train_view_size(config: ml_collections.ConfigDict) -> int:
  """Side of the training views: ``augment.train_size``, else ``image_size``."""
  return config.augment.train_size or config.image_size


def probe_loss(
    logits: jax.Array, labels: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """Cross-entropy and accuracy over the examples with a label (>= 0).

  The loss of every classification head here: online probes, the supervised
  and FixMatch classifiers and DeepCluster's cluster head.

  Args:
    logits: [N, C] (any float dtype; computed in float32).
    labels: int [N], -1 where unknown.

  Returns:
    ``(mean cross-entropy, accuracy)`` over the labelled examples (0 where
    none is labelled).
  """
  valid = labels >= 0
  safe = jnp.where(valid, labels, 0)
  ce = optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), safe
  )
  count = jnp.maximum(valid.sum(), 1)
  correct = (jnp.argmax(logits, -1) == safe) & valid
  return (
      jnp.where(valid, ce, 0.0).sum() / count,
      correct.sum().astype(jnp.float32) / count,
  )


def apply_gradients(
    state: TrainState,
    grads,
    batch_stats,
    *,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule,
    metrics: dict[str, Any],
) -> tuple[TrainState, dict[str, Any]]:
  """Applies ``tx`` and advances the step; adds LR and grad norm to ``metrics``.

  Args:
    state: the state the gradients were taken at.
    grads: gradients of the loss in ``state.params``.
    batch_stats: the BatchNorm statistics of this step's forward pass.
    tx: the optimiser.
    schedule: the LR schedule (for logging).
    metrics: the step's metrics so far.

  Returns:
    The next state and the metrics with ``learning_rate`` and ``grad_norm``.
  """
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  metrics = dict(
      metrics,
      learning_rate=schedule(state.step),
      grad_norm=optax.tree.norm(grads),
  )
  return (
      state.replace(
          step=state.step + 1,
          params=optax.apply_updates(state.params, updates),
          batch_stats=batch_stats,
          opt_state=opt_state,
      ),
      metrics,
  )


def two_host_views(
    config: ml_collections.ConfigDict,
) -> tuple[tuple[ml_collections.ConfigDict, int], ...]:
  """A two-view method's ``host_views``: both views at the training side.

  Args:
    config: the experiment config.

  Returns:
    ``((augment.view1, side), (augment.view2, side))``.
  """
  side = train_view_size(config)
  return ((config.augment.view1, side), (config.augment.view2, side))


def views_of(
    batch: dict[str, Any],
    key: jax.Array,
    view_configs: tuple[ml_collections.ConfigDict, ...],
    size: int,
    first: int = 0,
) -> tuple[jax.Array, ...]:
  """The batch's views: its ready ``'views'`` if it carries them, else augmented.

  A batch may carry ``'crops'``, one uint8 [B,S,S,C] batch per view of
  random-resized crops cut on the host (``host_crop``): views ``first`` on
  get the rest of their augmentation from ``key``. It may carry ``'views'``,
  a tuple of float32 [B,S,S,C] images in
  [0, 1] made elsewhere (the parity tests feed the views a reference
  implementation sees); views ``first`` to ``first + len(view_configs)`` of
  it are used as they are and ``key`` is not used. Otherwise the views are
  ``augment.make_views(key, batch['image'], view_configs, size)``.

  Args:
    batch: ``{'image', 'label'}``, ``{'crops', 'label'}`` or
      ``{'views', 'label'}``.
    key: the PRNG key of the augmentations.
    view_configs: one ``augment.view_config`` per view wanted.
    size: the side of the augmented views.
    first: the index in ``batch['crops']`` or ``batch['views']`` of the
      first view wanted.

  Returns:
    ``len(view_configs)`` arrays [B,S,S,C].
  """
  for field in ('crops', 'views'):
    if field in batch:
      given = tuple(batch[field][first : first + len(view_configs)])
      if len(given) != len(view_configs):
        raise ValueError(
            f'batch[{field!r}] holds {len(batch[field])} views; views {first}'
            f' to {first + len(view_configs) - 1} are wanted.'
        )
      if field == 'views':
        return given
      # Cut on the host: the rest of each view's augmentation here.
      return augment.make_views(key, given, view_configs, size)
  return augment.make_views(key, batch['image'], view_configs, size)


def two_view_step(
    state: TrainState,
    batch: dict[str, jax.Array],
    key: jax.Array,
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    config: ml_collections.ConfigDict,
    schedule: optax.Schedule,
    embedding_loss: Callable[..., tuple[jax.Array, dict[str, Any]]],
    target_variables: Optional[Callable[[TrainState], dict[str, Any]]] = None,
    online_output: str = 'projection',
    target_output: str = 'projection',
) -> tuple[TrainState, dict[str, Any]]:
  """A joint-embedding step: two views, one encoder pass, a loss on the pair.

  Both views go through the encoder as one concatenated batch, so BatchNorm
  statistics cover both views of the whole global batch. Under ``jax.jit``
  with the batch sharded over devices the batch is one global array: XLA
  inserts the cross-device reductions and the gradient is that of the
  global-batch loss. The online probe trains on stop-gradient features of the
  examples with a label (>= 0).

  With ``target_variables`` (BYOL, MoCo v3), the same model with those
  variables (an EMA of the online ones, say) also encodes both views, in
  training mode and without gradient; its ``target_output`` of the other
  view is what each online ``online_output`` is pulled towards. The target's
  BatchNorm statistics are not updated here: the method's EMA does that.

  Args:
    state: the replicated train state.
    batch: ``{'image': uint8 [B,H,W,C], 'label': int32 [B]}``, or with
      ready ``'views'`` (two float32 [B,S,S,C] in [0, 1]) instead of
      ``'image'``: those are encoded as they are (see :func:`views_of`).
    key: the PRNG key of this step (unused with ready views).
    model: a :class:`TwoViewModel`.
    tx: the optimiser.
    config: the experiment config.
    schedule: the LR schedule (for logging only).
    embedding_loss: ``(z_a, z_b) -> (loss, metrics)`` on the online outputs
      of the two views; with a target network ``(z_a, z_b, t_a, t_b) ->
      (loss, metrics)``, where ``t_a, t_b`` are the target's outputs.
    target_variables: ``state -> {'params', 'batch_stats'}`` of the target
      network, or None for none.
    online_output: the model output the loss takes from the online network.
    target_output: the model output it takes from the target network.

  Returns:
    The new state and a dict of scalar metrics.
  """
  views = views_of(
      batch,
      key,
      (config.augment.view1, config.augment.view2),
      train_view_size(config),
  )
  x = jnp.concatenate(views, axis=0)
  labels = jnp.concatenate([batch['label'], batch['label']])

  targets = ()
  if target_variables is not None:
    target_out, _ = model.apply(
        target_variables(state), x, train=True, mutable=['batch_stats']
    )
    targets = jnp.split(
        jax.lax.stop_gradient(target_out[target_output]).astype(jnp.float32), 2
    )

  def loss_fn(params):
    out, new_vars = model.apply(
        {'params': params, 'batch_stats': state.batch_stats},
        x,
        train=True,
        mutable=['batch_stats'],
    )
    # The loss (logits, softmax, correlations) in float32 even under bfloat16.
    loss, metrics = embedding_loss(
        *jnp.split(out[online_output].astype(jnp.float32), 2), *targets
    )
    p_loss, p_acc = probe_loss(out['probe_logits'], labels)
    total = loss + (p_loss if config.online_probe else 0.0)
    metrics = dict(
        metrics,
        loss=loss,
        **{'online_probe/loss': p_loss, 'online_probe/accuracy': p_acc},
    )
    return total, (new_vars.get('batch_stats', {}), metrics)

  grads, (batch_stats, metrics) = jax.grad(loss_fn, has_aux=True)(state.params)
  return apply_gradients(
      state, grads, batch_stats, tx=tx, schedule=schedule, metrics=metrics
  )


def two_views_per_image(config: ml_collections.ConfigDict) -> tuple[int, int]:
  """``(images read, views encoded)`` per step of :func:`two_view_step`."""
  return config.batch_size, 2 * config.batch_size


def ema_update(ema: Any, new: Any, decay: float) -> Any:
  """``ema <- decay * ema + (1 - decay) * new``, leaf by leaf.

  Args:
    ema: the running average (a pytree).
    new: the current values (same structure).
    decay: the weight of the old average, in [0, 1).

  Returns:
    The updated average.
  """
  return optax.incremental_update(new, ema, 1.0 - decay)
