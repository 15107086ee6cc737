"""ImageNet's linear evaluation: a linear head trained on augmented views.

``probe.protocol='augmented'`` runs the protocol ImageNet papers report
(SimCLR, MoCo, BYOL, DINO): a linear softmax head on the frozen encoder,
BatchNorm in inference mode, trained for ``probe.epochs`` by SGD with
momentum and a cosine LR (``probe.sgd_lr`` at batch 256, scaled linearly)
on a fresh random-resized crop and flip of every training image each epoch,
then evaluated once on centre-cropped test images. The encoder's variables
are an input of the step, never an output, so they stay bit-identical.
Nothing is chosen on the test split: the protocol has no hyperparameter
search.
"""

import functools
import time
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ssl_jax import errors
from ssl_jax.data import augment
from ssl_jax.data import batching
from ssl_jax.data import input_pipeline
from ssl_jax.evaluation import features as features_lib
from ssl_jax.evaluation import probe
from ssl_jax.methods import shared
from ssl_jax.models import conv

# Keeps this protocol's augmentation keys apart from pretraining's.
_KEY_TAG = 0x11E7
_LOG_EVERY_SECONDS = 30.0


def view_config() -> ml_collections.ConfigDict:
  """Random-resized crop (scale 0.08-1) and horizontal flip, nothing else."""
  return augment.view_config(jitter_prob=0.0, grayscale_prob=0.0)


def _head_step(head, batch, key, variables, *, model, tx, view, size):
  """One SGD step of the linear head on one augmented view of ``batch``."""
  (views,) = shared.views_of(batch, key, (view,), size)
  x = model.apply(variables, views, train=False)['features']
  x = jax.lax.stop_gradient(x.astype(jnp.float32))
  labels = batch['label']
  # Folders may mix in unlabelled images (label -1): they do not count.
  mask = (labels >= 0).astype(jnp.float32)
  count = jnp.maximum(mask.sum(), 1.0)

  def loss_fn(params):
    logits = x @ params[0] + params[1]
    ce = optax.softmax_cross_entropy_with_integer_labels(
        logits, jnp.maximum(labels, 0)
    )
    return jnp.sum(ce * mask) / count, logits

  (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      head['params']
  )
  updates, opt_state = tx.update(grads, head['opt_state'], head['params'])
  head = {
      'params': optax.apply_updates(head['params'], updates),
      'opt_state': opt_state,
  }
  accuracy = jnp.sum((logits.argmax(-1) == labels) * mask) / count
  return head, {'loss': loss, 'accuracy': accuracy}


def linear_eval(
    model,
    variables: dict[str, Any],
    *,
    train_split: input_pipeline.Split,
    test_split: input_pipeline.Split,
    config: ml_collections.ConfigDict,
    mesh: jax.sharding.Mesh,
    num_classes: int,
    class_names=None,
    prefix: str = 'linear_probe/',
) -> dict[str, Any]:
  """Trains a linear head on augmented views; reports it on centre crops.

  Args:
    model: the method's model; its output dict has ``'features'``.
    variables: ``{'params', 'batch_stats'}`` of the frozen encoder; never
      modified.
    train_split: the probe's train split, cached or streamed.
    test_split: the split reported on, cached or streamed.
    config: the experiment config (``config.probe``: ``epochs``,
      ``batch_size``, ``sgd_lr``, ``momentum``, ``weight_decay``).
    mesh: the device mesh, with axis ``'data'``.
    num_classes: number of classes.
    class_names: optional names for the per-class figures.
    prefix: metric-name prefix.

  Returns:
    ``{prefix}test_accuracy`` and the other figures of
    :func:`probe.classification_metrics`, the protocol, the epochs and the
    last step's train loss and accuracy.

  Raises:
    errors.ConfigError: ``probe.batch_size`` exceeds the train split.
  """
  cfg, start = config.probe, time.time()
  n, batch = len(train_split), cfg.batch_size
  if n < batch:
    raise errors.ConfigError(
        f'probe.batch_size={batch} is more than the {n} images of the probe '
        f'train split; set --config.probe.batch_size to at most {n}.'
    )
  total = cfg.epochs * (n // batch)
  schedule = optax.cosine_decay_schedule(cfg.sgd_lr * batch / 256, total)
  tx = optax.chain(
      optax.add_decayed_weights(cfg.weight_decay),
      optax.sgd(schedule, momentum=cfg.momentum),
  )
  size, channels = config.image_size, features_lib.image_shape(train_split)[-1]
  dim = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=False)['features'],
      variables,
      jax.ShapeDtypeStruct((1, size, size, channels), jnp.float32),
  ).shape[-1]
  params = (jnp.zeros((dim, num_classes)), jnp.zeros((num_classes,)))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  head = jax.device_put(
      {'params': params, 'opt_state': tx.init(params)}, replicated
  )
  step_fn = jax.jit(
      functools.partial(
          _head_step, model=model, tx=tx, view=view_config(), size=size
      ),
      donate_argnums=0,
      compiler_options=conv.compiler_options(mesh),
  )
  base_key = jax.random.fold_in(jax.random.key(config.seed), _KEY_TAG)
  batches = batching.train_batches(
      train_split,
      seed=config.seed,
      batch_size=batch,
      start_step=0,
      sharding=jax.sharding.NamedSharding(
          mesh, jax.sharding.PartitionSpec('data')
      ),
      prefetch=config.data.prefetch,
  )
  metrics, last_log = {}, start
  try:
    for step, data in zip(range(total), batches):
      head, metrics = step_fn(
          head, data, jax.random.fold_in(base_key, step), variables
      )
      if time.time() - last_log > _LOG_EVERY_SECONDS:
        last_log, done = time.time(), step + 1
        logging.info(
            'Linear evaluation: step %d/%d, loss %.4f, ETA %.0fs',
            done,
            total,
            float(metrics['loss']),
            (total - done) * (last_log - start) / done,
        )
  finally:
    batches.close()  # Stops the prefetch thread.
  test = features_lib.extract(
      model,
      variables,
      test_split,
      image_size=size,
      batch_size=batch,
      mesh=mesh,
  ).labelled()
  w, b = (np.asarray(a) for a in jax.device_get(head['params']))
  results = probe.classification_metrics(
      test.features @ w + b,
      test.labels,
      num_classes,
      class_names,
      prefix + 'test_',
  )
  results.update({
      f'{prefix}protocol': 'augmented',
      f'{prefix}epochs': cfg.epochs,
      f'{prefix}train_loss': float(metrics['loss']),
      f'{prefix}train_batch_accuracy': float(metrics['accuracy']),
  })
  logging.info(
      'Linear evaluation (augmented, %d steps): test=%.4f (%.1fs)',
      total,
      results[f'{prefix}test_accuracy'],
      time.time() - start,
  )
  return results
