"""SimCLR (Chen et al., 2020): NT-Xent between two augmented views."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssl_jax import augment
from ssl_jax import losses
from ssl_jax import models
from ssl_jax.train_state import TrainState


class SimCLRModel(nn.Module):
  """Encoder, projector and an online linear probe on stop-gradient features.

  Attributes:
    encoder: images -> features.
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


def build_model(config: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
  """Returns the SimCLR model for ``config``."""
  return SimCLRModel(models.get_encoder(config), models.get_projector(config),
                     num_classes)


def init(rng: jax.Array, config: ml_collections.ConfigDict, sample: jax.Array,
         model: nn.Module) -> tuple[Any, Any]:
  """Initialises the model.

  Args:
    rng: a PRNG key.
    config: the experiment config.
    sample: a float batch [b, image_size, image_size, C] fixing the shapes.
    model: the module from :func:`build_model`.

  Returns:
    ``(params, batch_stats)``.
  """
  del config
  variables = jax.jit(lambda k, x: model.init(k, x, train=False))(rng, sample)
  return variables['params'], variables.get('batch_stats', {})


def probe_loss(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Cross-entropy and accuracy over the examples with a label (>= 0)."""
  valid = labels >= 0
  safe = jnp.where(valid, labels, 0)
  ce = optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), safe)
  count = jnp.maximum(valid.sum(), 1)
  correct = (jnp.argmax(logits, -1) == safe) & valid
  return (jnp.where(valid, ce, 0.0).sum() / count,
          correct.sum().astype(jnp.float32) / count)


def train_step(state: TrainState, batch: dict[str, jax.Array], key: jax.Array,
               *, model: nn.Module, tx: optax.GradientTransformation,
               config: ml_collections.ConfigDict,
               schedule: optax.Schedule) -> tuple[TrainState, dict[str, Any]]:
  """One SimCLR step on a global batch.

  Both views go through the encoder as one concatenated batch, so BatchNorm
  statistics cover both views of the whole global batch, and the NT-Xent
  negatives are the whole global batch. Under ``jax.jit`` with the batch
  sharded over devices, XLA inserts the cross-device reductions; the gradient
  is that of the global-batch loss.

  Args:
    state: the replicated train state.
    batch: ``{'image': uint8 [B,H,W,C], 'label': int32 [B]}`` (label -1 where
      unknown), sharded over the data axis.
    key: the PRNG key of this step.
    model: the module from :func:`build_model`.
    tx: the optimiser.
    config: the experiment config.
    schedule: the LR schedule (for logging only).

  Returns:
    The new state and a dict of scalar metrics.
  """
  views = augment.make_views(key, batch['image'],
                             (config.augment.view1, config.augment.view2),
                             config.image_size)
  x = jnp.concatenate(views, axis=0)
  labels = jnp.concatenate([batch['label'], batch['label']])

  def loss_fn(params):
    out, new_vars = model.apply(
        {'params': params, 'batch_stats': state.batch_stats}, x, train=True,
        mutable=['batch_stats'])
    z_a, z_b = jnp.split(out['projection'], 2)
    loss, acc = losses.nt_xent_and_accuracy(z_a, z_b, config.temperature)
    p_loss, p_acc = probe_loss(out['probe_logits'], labels)
    total = loss + (p_loss if config.online_probe else 0.0)
    metrics = {'loss': loss, 'contrastive_accuracy': acc,
               'online_probe/loss': p_loss, 'online_probe/accuracy': p_acc}
    return total, (new_vars['batch_stats'], metrics)

  grads, (batch_stats, metrics) = jax.grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics['learning_rate'] = schedule(state.step)
  metrics['grad_norm'] = optax.global_norm(grads)
  new_state = state.replace(step=state.step + 1, params=params,
                            batch_stats=batch_stats, opt_state=opt_state)
  return new_state, metrics
