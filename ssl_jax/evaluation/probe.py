"""Frozen-feature evaluation: feature extraction and the linear probe.

The probe is L2-regularised softmax regression fitted to convergence with
L-BFGS (``optax.lbfgs``) on standardised features: a convex problem, so no
learning rate or epoch count to tune. The only choice, the L2 strength, is
made on a validation part carved from the probe's train split; the test
split is used once, for the reported figures.
"""

import functools
import time
from typing import Any, Callable

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from sklearn import metrics as skmetrics

from ssl_jax.data import augment
from ssl_jax.data import batching
from ssl_jax.models import conv


def _features(variables, images, *, model, image_size, output, mesh):
  x = augment.preprocess_eval(images, image_size)
  out = model.apply(variables, x, train=False)[output].astype(jnp.float32)
  # Replicated, so that every process can read all of it.
  return jax.lax.with_sharding_constraint(
      out, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  )


# Module-level jits keyed on (model, image_size, output, mesh): repeated calls
# (every DeepCluster epoch, each probe) reuse one compilation.
_STATIC = ('model', 'image_size', 'output', 'mesh')
_features_fn = jax.jit(_features, static_argnames=_STATIC)
_features_fn_cpu = jax.jit(
    _features,
    static_argnames=_STATIC,
    compiler_options=conv.CPU_COMPILER_OPTIONS,
)


def extract_features(
    model,
    variables: dict[str, Any],
    images: np.ndarray,
    *,
    image_size: int,
    batch_size: int,
    mesh: jax.sharding.Mesh,
    output: str = 'features',
) -> np.ndarray:
  """Pre-projection features of ``images`` with BatchNorm in inference mode.

  Args:
    model: the method's model; its output dict has ``output``.
    variables: ``{'params': ..., 'batch_stats': ...}``; never modified.
    images: uint8 [N, H, W, C] (the same on every process).
    image_size: the encoder's input side.
    batch_size: global batch, divisible by the device count.
    mesh: the device mesh, with axis ``'data'``.
    output: which entry of the model's output dict to return.

  Returns:
    float32 [N, D] features.
  """
  sharding = jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec('data')
  )
  jitted = (
      _features_fn
      if conv.compiler_options(mesh) is None
      else (_features_fn_cpu)
  )
  fn = functools.partial(
      jitted, model=model, image_size=image_size, output=output, mesh=mesh
  )
  out = []
  for batch, real in batching.eval_batches(images, batch_size, sharding):
    out.append(np.asarray(jax.device_get(fn(variables, batch)))[:real])
  return np.concatenate(out)


@functools.partial(jax.jit, static_argnames=('num_classes', 'max_iters'))
def _fit_softmax(x, y, l2, *, num_classes: int, max_iters: int):
  """Minimises mean cross-entropy + l2/2 |W|^2 with L-BFGS; returns (W, b)."""
  params = (jnp.zeros((x.shape[1], num_classes)), jnp.zeros((num_classes,)))

  def objective(p):
    logits = x @ p[0] + p[1]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return ce + 0.5 * l2 * jnp.sum(p[0] ** 2)

  opt = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(objective)

  def body(carry):
    p, state, it = carry
    value, grad = value_and_grad(p, state=state)
    updates, state = opt.update(
        grad, state, p, value=value, grad=grad, value_fn=objective
    )
    return optax.apply_updates(p, updates), state, it + 1

  def cond(carry):
    _, state, it = carry
    grad = optax.tree.get(state, 'grad')
    return (it == 0) | ((it < max_iters) & (optax.tree.norm(grad) > 1e-4))

  p, _, _ = jax.lax.while_loop(cond, body, (params, opt.init(params), 0))
  return p


def _predict(p, x):
  return np.asarray(x @ np.asarray(p[0]) + np.asarray(p[1]))


def linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    num_classes: int,
    config: ml_collections.ConfigDict,
    seed: int,
    class_names=None,
    prefix: str = 'linear_probe/',
) -> dict[str, float]:
  """Chooses L2 on validation, refits on all of train, reports on test.

  Args:
    train_x: [N, D] features of the labelled train split.
    train_y: [N] int labels.
    test_x: [M, D] features of the test split.
    test_y: [M] int labels.
    num_classes: number of classes.
    config: ``config.probe`` (``l2_grid``, ``val_fraction``, ``max_iters``).
    seed: seeds the train/validation split.
    class_names: optional names for the per-class figures.
    prefix: metric-name prefix.

  Returns:
    A flat dict: validation accuracy per L2, the chosen L2, test top-1/top-5
    accuracy, and per-class and macro precision, recall and F1 on test.
  """
  start = time.time()
  mean, std = train_x.mean(0), train_x.std(0) + 1e-6
  train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
  perm = np.random.default_rng(seed).permutation(len(train_y))
  n_val = max(1, int(round(config.val_fraction * len(train_y))))
  val, fit = perm[:n_val], perm[n_val:]
  fit_fn = functools.partial(
      _fit_softmax, num_classes=num_classes, max_iters=config.max_iters
  )
  results, best = {}, (-1.0, None)
  for l2 in config.l2_grid:
    p = fit_fn(train_x[fit], train_y[fit], l2)
    acc = float(np.mean(_predict(p, train_x[val]).argmax(1) == train_y[val]))
    results[f'{prefix}val_accuracy/l2={l2:g}'] = acc
    if acc > best[0]:
      best = (acc, l2)
  p = fit_fn(train_x, train_y, best[1])
  results.update({
      f'{prefix}l2': best[1],
      f'{prefix}val_accuracy': best[0],
      f'{prefix}train_accuracy': float(
          np.mean(_predict(p, train_x).argmax(1) == train_y)
      ),
  })
  results.update(
      classification_metrics(
          _predict(p, test_x),
          test_y,
          num_classes,
          class_names,
          prefix + 'test_',
      )
  )
  logging.info(
      'Linear probe: l2=%g val=%.4f test=%.4f (%.1fs)',
      best[1],
      best[0],
      results[f'{prefix}test_accuracy'],
      time.time() - start,
  )
  return results


def classification_metrics(
    logits: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    class_names=None,
    prefix: str = '',
) -> dict[str, float]:
  """Top-1/top-5 accuracy and scikit-learn's per-class precision, recall, F1.

  Args:
    logits: [N, num_classes] scores.
    labels: [N] int labels.
    num_classes: number of classes.
    class_names: optional names used in the metric keys.
    prefix: metric-name prefix.

  Returns:
    ``{prefix}accuracy``, ``{prefix}top5_accuracy`` and
    ``{prefix}{precision,recall,f1}/{class or macro_avg}``.
  """
  pred = logits.argmax(1)
  top5 = np.argsort(-logits, axis=1)[:, : min(5, num_classes)]
  results = {
      f'{prefix}accuracy': float(np.mean(pred == labels)),
      f'{prefix}top5_accuracy': float(
          np.mean((top5 == labels[:, None]).any(1))
      ),
  }
  names = (
      list(class_names)
      if class_names is not None
      else [str(i) for i in range(num_classes)]
  )
  report = skmetrics.classification_report(
      labels,
      pred,
      labels=list(range(num_classes)),
      target_names=names,
      output_dict=True,
      zero_division=0,
  )
  for name in names + ['macro avg']:
    for m in ('precision', 'recall', 'f1-score'):
      results[f'{prefix}{m.replace("-score", "")}/{name.replace(" ", "_")}'] = (
          float(report[name][m])
      )
  return results


def probe_encoder(
    model,
    variables,
    *,
    train_split,
    test_split,
    config,
    mesh,
    num_classes,
    class_names=None,
    prefix='linear_probe/',
) -> dict[str, float]:
  """Extracts frozen features of both splits and runs :func:`linear_probe`.

  Args:
    model: the method's model.
    variables: ``{'params', 'batch_stats'}`` of the encoder to evaluate.
    train_split: the labelled train :class:`ssl_jax.data.input_pipeline.Split` (cached).
    test_split: the test :class:`ssl_jax.data.input_pipeline.Split` (cached).
    config: the experiment config.
    mesh: the device mesh.
    num_classes: number of classes.
    class_names: optional class names.
    prefix: metric-name prefix.

  Returns:
    The probe's flat results dict.
  """
  extract: Callable[[np.ndarray], np.ndarray] = functools.partial(
      extract_features,
      model,
      variables,
      image_size=config.image_size,
      batch_size=config.probe.batch_size,
      mesh=mesh,
  )
  start = time.time()
  train_x, test_x = extract(train_split.images), extract(test_split.images)
  logging.info(
      'Extracted %d+%d features of dim %d in %.1fs',
      len(train_x),
      len(test_x),
      train_x.shape[1],
      time.time() - start,
  )
  return linear_probe(
      train_x,
      train_split.labels,
      test_x,
      test_split.labels,
      num_classes=num_classes,
      config=config.probe,
      seed=config.seed,
      class_names=class_names,
      prefix=prefix,
  )
