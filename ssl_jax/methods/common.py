"""Pieces shared by the methods: init, the two-view model, the update."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssl_jax import augment
from ssl_jax import models
from ssl_jax.train_state import TrainState


class TwoViewModel(nn.Module):
  """Encoder, projector and an online linear probe on stop-gradient features.

  Attributes:
    encoder: images -> features (the representation that is evaluated).
    projector: features -> embeddings for the loss.
    num_classes: classes of the online probe.
  """
  encoder: nn.Module
  projector: nn.Module
  num_classes: int

  @nn.compact
  def __call__(self, x, train: bool = True):
    features = self.encoder(x, train=train)
    projection = self.projector(features, train=train)
    probe_logits = nn.Dense(self.num_classes, name='probe')(
        jax.lax.stop_gradient(features).astype(jnp.float32))
    return {'features': features, 'projection': projection,
            'probe_logits': probe_logits}


def build_two_view_model(config: ml_collections.ConfigDict,
                         num_classes: int) -> nn.Module:
  """Encoder + ``config.projector`` + online probe."""
  return TwoViewModel(models.get_encoder(config), models.get_projector(config),
                      num_classes)


def init(rng: jax.Array, config: ml_collections.ConfigDict, sample: jax.Array,
         model: nn.Module) -> tuple[Any, Any]:
  """Initialises a model.

  Args:
    rng: a PRNG key.
    config: the experiment config.
    sample: a float batch [b, image_size, image_size, C] fixing the shapes.
    model: the method's module.

  Returns:
    ``(params, batch_stats)``.
  """
  del config
  variables = jax.jit(lambda k, x: model.init(k, x, train=False))(rng, sample)
  return variables['params'], variables.get('batch_stats', {})


def train_view_size(config: ml_collections.ConfigDict) -> int:
  """Side of the training views: ``augment.train_size``, else ``image_size``."""
  return config.augment.train_size or config.image_size


def probe_loss(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Cross-entropy and accuracy over the examples with a label (>= 0).

  The loss of every classification head here: online probes, the supervised
  and FixMatch classifiers and DeepCluster's cluster head.
  """
  valid = labels >= 0
  safe = jnp.where(valid, labels, 0)
  ce = optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), safe)
  count = jnp.maximum(valid.sum(), 1)
  correct = (jnp.argmax(logits, -1) == safe) & valid
  return (jnp.where(valid, ce, 0.0).sum() / count,
          correct.sum().astype(jnp.float32) / count)


def apply_gradients(state: TrainState, grads, batch_stats, *,
                    tx: optax.GradientTransformation, schedule: optax.Schedule,
                    metrics: dict[str, Any]) -> tuple[TrainState, dict[str, Any]]:
  """Applies ``tx`` and advances the step; adds LR and grad norm to ``metrics``."""
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  metrics = dict(metrics, learning_rate=schedule(state.step),
                 grad_norm=optax.tree.norm(grads))
  return state.replace(step=state.step + 1,
                       params=optax.apply_updates(state.params, updates),
                       batch_stats=batch_stats, opt_state=opt_state), metrics


def two_view_step(state: TrainState, batch: dict[str, jax.Array], key: jax.Array,
                  *, model: nn.Module, tx: optax.GradientTransformation,
                  config: ml_collections.ConfigDict, schedule: optax.Schedule,
                  embedding_loss) -> tuple[TrainState, dict[str, Any]]:
  """A joint-embedding step: two views, one encoder pass, a loss on the pair.

  Both views go through the encoder as one concatenated batch, so BatchNorm
  statistics cover both views of the whole global batch. Under ``jax.jit``
  with the batch sharded over devices the batch is one global array: XLA
  inserts the cross-device reductions and the gradient is that of the
  global-batch loss. The online probe trains on stop-gradient features of the
  examples with a label (>= 0).

  Args:
    state: the replicated train state.
    batch: ``{'image': uint8 [B,H,W,C], 'label': int32 [B]}``.
    key: the PRNG key of this step.
    model: a :class:`TwoViewModel`.
    tx: the optimiser.
    config: the experiment config.
    schedule: the LR schedule (for logging only).
    embedding_loss: ``(z_a, z_b) -> (loss, metrics)`` on the projections.

  Returns:
    The new state and a dict of scalar metrics.
  """
  views = augment.make_views(key, batch['image'],
                             (config.augment.view1, config.augment.view2),
                             train_view_size(config))
  x = jnp.concatenate(views, axis=0)
  labels = jnp.concatenate([batch['label'], batch['label']])

  def loss_fn(params):
    out, new_vars = model.apply(
        {'params': params, 'batch_stats': state.batch_stats}, x, train=True,
        mutable=['batch_stats'])
    # The loss (logits, softmax, correlations) in float32 even under bfloat16.
    loss, metrics = embedding_loss(
        *jnp.split(out['projection'].astype(jnp.float32), 2))
    p_loss, p_acc = probe_loss(out['probe_logits'], labels)
    total = loss + (p_loss if config.online_probe else 0.0)
    metrics = dict(metrics, loss=loss, **{'online_probe/loss': p_loss,
                                          'online_probe/accuracy': p_acc})
    return total, (new_vars['batch_stats'], metrics)

  grads, (batch_stats, metrics) = jax.grad(loss_fn, has_aux=True)(state.params)
  return apply_gradients(state, grads, batch_stats, tx=tx, schedule=schedule,
                         metrics=metrics)
