"""FixMatch-style semi-supervised learning (Sohn et al., 2020).

Each step takes ``batch_size`` labelled images and ``fixmatch.mu`` times as
many unlabelled ones. The labelled images and a weak view of the unlabelled
ones (``augment.view1``) and a strong view (``augment.view2``) go through the
encoder as one batch, so BatchNorm sees all three. The pseudo-label of an
unlabelled image is the stop-gradient argmax of its weak view's softmax, kept
where that softmax reaches ``fixmatch.threshold``; the loss is the labelled
cross-entropy plus ``unlabelled_weight`` times the masked cross-entropy of the
strong view against the pseudo-label. An EMA of the parameters (and BatchNorm
statistics) is kept in the state and is what the final evaluation uses.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ssl_jax import errors
from ssl_jax.data import augment
from ssl_jax.data import batching
from ssl_jax.data import input_pipeline
from ssl_jax.methods import base
from ssl_jax.methods import shared
from ssl_jax.methods import supervised
from ssl_jax.methods.base import TrainState


def defaults() -> ml_collections.ConfigDict:
  """``config.fixmatch``."""
  c = ml_collections.ConfigDict()
  c.mu = 5  # Unlabelled images per labelled one in a batch.
  c.threshold = 0.95  # Confidence for a pseudo-label (0: keep all; 1: none).
  c.unlabelled_weight = 1.0  # lambda_u.
  c.ema_decay = 0.999  # EMA of the parameters used for evaluation.
  return c


def check_config(config: ml_collections.ConfigDict) -> None:
  """One-line errors for ``config.fixmatch``."""
  fm = config.fixmatch
  if not (isinstance(fm.mu, int) and fm.mu >= 1):
    raise errors.ConfigError(
        f'fixmatch.mu={fm.mu!r} must be a positive integer (unlabelled images '
        'per labelled one).'
    )
  if not 0 <= fm.threshold <= 1:
    raise errors.ConfigError(
        f'fixmatch.threshold={fm.threshold!r} must be in [0, 1].'
    )
  if not 0 <= fm.ema_decay < 1:
    raise errors.ConfigError(
        f'fixmatch.ema_decay={fm.ema_decay!r} must be in [0, 1).'
    )


def prepare_data(
    config: ml_collections.ConfigDict, train_split, load
) -> dict[str, Any]:
  """The unlabelled pool (``data.train_split``) and the labelled subset.

  Args:
    config: the experiment config.
    train_split: the loaded ``data.train_split`` (labels are not used).
    load: ``(split_name, cache) -> Split``.

  Returns:
    ``{'train': unlabelled pool, 'labelled': class-balanced
    ``data.label_fraction`` of ``data.labelled_split``}``.

  Raises:
    input_pipeline.DataError: the labelled split has unlabelled images.
  """
  labelled = (
      train_split
      if config.data.labelled_split == config.data.train_split
      else load(config.data.labelled_split, cache=True)
  )
  if labelled.labels is None or (labelled.labels < 0).any():
    raise input_pipeline.DataError(
        f'data.labelled_split={config.data.labelled_split!r} has unlabelled '
        "images; use a labelled split such as 'train'."
    )
  labelled = input_pipeline.labelled_subset(
      labelled,
      config.data.label_fraction,
      config.seed,
      config.data.labels_per_class,
  )
  if len(labelled) < config.batch_size:
    raise input_pipeline.DataError(
        f'data.label_fraction={config.data.label_fraction} leaves '
        f'{len(labelled)} labelled images, fewer than batch_size='
        f'{config.batch_size}; lower --config.batch_size.'
    )
  return {'train': train_split, 'labelled': labelled}


def steps_per_epoch(config: ml_collections.ConfigDict, data) -> int:
  """An epoch is one pass over the unlabelled pool, ``mu * batch_size`` a step."""
  return len(data['train']) // (config.fixmatch.mu * config.batch_size)


def init_extra(config, params, batch_stats, data) -> dict[str, Any]:
  """The EMA of params and BatchNorm statistics starts at their initial values."""
  del config, data
  # Copies: a buffer that appears twice in the donated state would be freed twice.
  return {
      'ema_params': jax.tree.map(jnp.copy, params),
      'ema_batch_stats': jax.tree.map(jnp.copy, batch_stats),
  }


def eval_variables(state: TrainState) -> dict[str, Any]:
  """The EMA variables, which the final evaluation uses."""
  return {
      'params': state.extra['ema_params'],
      'batch_stats': state.extra['ema_batch_stats'],
  }


def train_batches(
    *,
    state: TrainState,
    start_step: int,
    config: ml_collections.ConfigDict,
    data: dict[str, Any],
    sharding: jax.sharding.NamedSharding,
):
  """Labelled and unlabelled batches, each a pure function of (seed, step).

  Args:
    state: unused (the streams do not depend on it).
    start_step: the first step to produce.
    config: the experiment config.
    data: from :func:`prepare_data`.
    sharding: the data-axis sharding.

  Returns:
    An iterator of ``{'image', 'label'}`` (labelled, ``batch_size``) plus
    ``{'unlabelled_image', 'unlabelled_label'}`` (``mu * batch_size``; labels
    only for logging, -1 where unknown) global batches.
  """
  del state
  labelled, pool = data['labelled'], data['train']
  b, bu = config.batch_size, config.fixmatch.mu * config.batch_size

  processes = dict(
      process_index=jax.process_index(), process_count=jax.process_count()
  )
  return batching.global_batches(
      functools.partial(
          _read_step,
          seed=config.seed,
          batch=b,
          unlabelled_batch=bu,
          **processes,
      ),
      start_step=start_step,
      sharding=sharding,
      prefetch=config.data.prefetch,
      splits=(labelled, pool),
  )


def _read_step(splits, step, *, seed, batch, unlabelled_batch, **processes):
  """Both streams' batches of ``step`` (picklable: it may run in workers)."""
  labelled, pool = splits
  read = functools.partial(batching.shuffled_read, seed=seed, **processes)
  lab = read((labelled,), step, batch_size=batch, stream=1)
  unl = read((pool,), step, batch_size=unlabelled_batch)
  return dict(lab, unlabelled_image=unl['image'], unlabelled_label=unl['label'])


def pseudo_label_loss(
    logits_weak: jax.Array, logits_strong: jax.Array, threshold: float
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """FixMatch's unlabelled loss.

  Args:
    logits_weak: [N, C] logits of the weak views (no gradient flows to them).
    logits_strong: [N, C] logits of the strong views of the same images.
    threshold: confidence needed for a pseudo-label; 0 keeps all (the
      no-threshold variant), 1 or more keeps none (a softmax never reaches 1
      in exact arithmetic, so float rounding is not allowed to decide).

  Returns:
    ``(mean over all N of mask * CE(strong, pseudo-label), aux)`` with aux
    ``{'mask': float [N], 'pseudo_label': int [N]}``.
  """
  probs = jax.nn.softmax(jax.lax.stop_gradient(logits_weak).astype(jnp.float32))
  pseudo, confidence = jnp.argmax(probs, -1), jnp.max(probs, -1)
  if threshold >= 1:
    mask = jnp.zeros_like(confidence)
  else:
    mask = (confidence >= threshold).astype(jnp.float32)
  ce = optax.softmax_cross_entropy_with_integer_labels(
      logits_strong.astype(jnp.float32), pseudo
  )
  return jnp.mean(mask * ce), {'mask': mask, 'pseudo_label': pseudo}


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
  """One FixMatch step, then the EMA update.

  Args:
    state: the replicated train state.
    batch: from :func:`train_batches`, sharded over the data axis.
    key: the PRNG key of this step (views and dropout).
    model: the supervised model (encoder + classifier).
    tx: the optimiser.
    config: the experiment config (``fixmatch``, views).
    schedule: the LR schedule (for logging only).

  Returns:
    The new state and scalar metrics, including the mask rate and the
    pseudo-labels' accuracy where the unlabelled labels are known.
  """
  fm = config.fixmatch
  size = shared.train_view_size(config)
  k_lab, k_weak, k_strong, k_drop = jax.random.split(key, 4)
  x = jnp.concatenate([
      augment.augment_batch(k_lab, batch['image'], config.augment.view1, size),
      augment.augment_batch(
          k_weak, batch['unlabelled_image'], config.augment.view1, size
      ),
      augment.augment_batch(
          k_strong, batch['unlabelled_image'], config.augment.view2, size
      ),
  ])
  n_lab, n_unl = batch['image'].shape[0], batch['unlabelled_image'].shape[0]

  def loss_fn(params):
    out, new_vars = model.apply(
        {'params': params, 'batch_stats': state.batch_stats},
        x,
        train=True,
        mutable=['batch_stats'],
        rngs={'dropout': k_drop},
    )
    logits = out['logits'].astype(jnp.float32)
    lab, weak, strong = jnp.split(logits, [n_lab, n_lab + n_unl])
    sup, acc = shared.probe_loss(lab, batch['label'])
    unsup, aux = pseudo_label_loss(weak, strong, fm.threshold)
    known = batch['unlabelled_label'] >= 0
    right = (aux['pseudo_label'] == batch['unlabelled_label']) & known
    kept_known = aux['mask'] * known
    metrics = {
        'loss': sup + fm.unlabelled_weight * unsup,
        'supervised_loss': sup,
        'unlabelled_loss': unsup,
        'accuracy': acc,
        'mask_rate': jnp.mean(aux['mask']),
        # Accuracy of the kept pseudo-labels, and of all of them.
        'pseudo_label_accuracy': (
            jnp.sum(right * aux['mask']) / jnp.maximum(kept_known.sum(), 1)
        ),
        'pseudo_label_accuracy_all': right.sum() / jnp.maximum(known.sum(), 1),
    }
    return metrics['loss'], (new_vars.get('batch_stats', {}), metrics)

  grads, (batch_stats, metrics) = jax.grad(loss_fn, has_aux=True)(state.params)
  state, metrics = shared.apply_gradients(
      state, grads, batch_stats, tx=tx, schedule=schedule, metrics=metrics
  )
  return (
      state.replace(
          extra={
              'ema_params': shared.ema_update(
                  state.extra['ema_params'], state.params, fm.ema_decay
              ),
              'ema_batch_stats': shared.ema_update(
                  state.extra['ema_batch_stats'],
                  state.batch_stats,
                  fm.ema_decay,
              ),
          }
      ),
      metrics,
  )


def example_batch(
    config: ml_collections.ConfigDict,
    rng: np.random.Generator,
    num_classes: int,
    channels: int,
) -> dict[str, np.ndarray]:
  """A random labelled batch and ``mu`` times as many unlabelled images."""
  batch = base.labelled_batch(config, rng, num_classes, channels)
  n, s = config.fixmatch.mu * config.batch_size, config.image_size
  batch['unlabelled_image'] = rng.integers(
      0, 256, (n, s, s, channels), dtype=np.uint8
  )
  batch['unlabelled_label'] = rng.integers(0, num_classes, (n,), dtype=np.int32)
  return batch


def images_per_step(config: ml_collections.ConfigDict) -> tuple[int, int]:
  """Labelled images (a weak view) and unlabelled ones (weak and strong)."""
  b, mu = config.batch_size, config.fixmatch.mu
  return b + mu * b, b + 2 * mu * b


METHOD = base.Method(
    name='fixmatch',
    build_model=supervised.build_model,
    train_step=train_step,
    uses_labels=True,
    section='fixmatch',
    defaults=defaults,
    check_config=check_config,
    structural_fields=('fixmatch.mu',),
    prepare_data=prepare_data,
    steps_per_epoch=steps_per_epoch,
    init_extra=init_extra,
    train_batches=train_batches,
    eval_variables=eval_variables,
    evaluate=supervised.evaluate,
    example_batch=example_batch,
    images_per_step=images_per_step,
)
