"""The linear probe on frozen features: L-BFGS or streamed SGD, and metrics.

The probe is L2-regularised softmax regression on standardised features: a
convex problem. Where the float32 feature matrix and L-BFGS's working memory
fit ``data.memory_budget_gb`` it is fitted to convergence with L-BFGS
(``optax.lbfgs``): no learning rate or epoch count to tune. Otherwise (an
ImageNet-sized bank) the same objective is minimised by minibatch SGD with
momentum, the minibatches gathered from the stored features (kept as
``probe.feature_dtype``) and standardised on the device. The only choice, the
L2 strength, is made on a validation part carved from the probe's train
split; the test split is used once, for the reported figures.
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
from sklearn import metrics as skmetrics

from ssl_jax import errors
from ssl_jax.data import memory
from ssl_jax.evaluation import features as features_lib

# Kept here too: DeepCluster, the supervised baseline, embed and the kNN
# monitor extract features through the probe module.
extract_features = features_lib.extract_features

SOLVERS = ('auto', 'lbfgs', 'sgd')
PROTOCOLS = ('features', 'augmented')
# optax.lbfgs's default number of curvature pairs kept.
_LBFGS_MEMORY = 10
# Host bytes of stored features gathered per transfer to the device (SGD).
_SGD_CHUNK_BYTES = 64 << 20


def check_config(cfg: ml_collections.ConfigDict) -> None:
  """Raises a one-line ``errors.ConfigError`` on a bad ``config.probe`` field.

  Args:
    cfg: ``config.probe``.

  Raises:
    errors.ConfigError: an unknown solver, protocol or feature dtype, or a
      non-positive epoch count or learning rate, a momentum outside [0, 1) or
      a negative weight decay.
  """
  for field, value, choices in (
      ('solver', cfg.solver, SOLVERS),
      ('protocol', cfg.protocol, PROTOCOLS),
      ('feature_dtype', cfg.feature_dtype, features_lib.DTYPES),
  ):
    if value not in choices:
      raise errors.ConfigError(
          f'probe.{field}={value!r}; use one of {choices}.'
      )
  for field, ok, want in (
      ('epochs', cfg.epochs > 0, 'a positive integer'),
      ('sgd_lr', cfg.sgd_lr > 0, '> 0'),
      ('momentum', 0 <= cfg.momentum < 1, 'in [0, 1)'),
      ('weight_decay', cfg.weight_decay >= 0, '>= 0'),
  ):
    if not ok:
      raise errors.ConfigError(f'probe.{field}={cfg[field]!r} must be {want}.')


def lbfgs_bytes(n: int, dim: int, num_classes: int) -> int:
  """Host bytes the L-BFGS probe needs on ``n`` features of ``dim``.

  Three float32 copies of the features (standardised, the part fitted, and
  the copy the solver reads), four float32 logit-sized arrays (logits,
  softmax, their gradient, the line search's trial) and L-BFGS's curvature
  pairs with a few more weight-sized arrays.

  Args:
    n: training rows.
    dim: feature width.
    num_classes: number of classes.

  Returns:
    ``4 * (3 n dim + 4 n classes + 26 dim classes)``.
  """
  weights = dim * num_classes
  return 4 * (
      3 * n * dim + 4 * n * num_classes + (2 * _LBFGS_MEMORY + 6) * weights
  )


def choose_solver(
    cfg: ml_collections.ConfigDict,
    n: int,
    dim: int,
    num_classes: int,
    budget_bytes: float,
) -> str:
  """``probe.solver``, with 'auto' resolved against the memory budget.

  Args:
    cfg: ``config.probe``.
    n: training rows.
    dim: feature width.
    num_classes: number of classes.
    budget_bytes: host memory the probe may use.

  Returns:
    'lbfgs' or 'sgd'.
  """
  need = lbfgs_bytes(n, dim, num_classes)
  # Configs written before the solver existed mean today's L-BFGS-if-it-fits.
  solver = cfg.get('solver', 'auto')
  if solver == 'auto':
    solver = 'lbfgs' if need <= budget_bytes else 'sgd'
  logging.info(
      'Linear probe: L-BFGS on %d x %d features needs ~%.2f GB of a %.2f GB '
      'budget; probe.solver=%s -> %s',
      n,
      dim,
      need / 2**30,
      budget_bytes / 2**30,
      cfg.get('solver', 'auto'),
      solver,
  )
  return solver


@functools.partial(jax.jit, static_argnames=('num_classes', 'max_iters'))
def _fit_softmax(x, y, l2, *, num_classes: int, max_iters: int):
  """Minimises mean cross-entropy + l2/2 |W|^2 with L-BFGS; returns (W, b)."""
  params = (jnp.zeros((x.shape[1], num_classes)), jnp.zeros((num_classes,)))

  def objective(p):
    logits = x @ p[0] + p[1]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return ce + 0.5 * l2 * jnp.sum(p[0] ** 2)

  opt = optax.lbfgs(memory_size=_LBFGS_MEMORY)
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


def _sgd_steps(carry, xs, ys, mean, inv_std, l2, *, tx):
  """Runs ``len(xs)`` SGD steps of the L2-regularised softmax regression."""

  def loss(p, x, y):
    logits = x @ p[0] + p[1]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return ce + 0.5 * l2 * jnp.sum(p[0] ** 2)

  def step(carry, batch):
    p, opt_state = carry
    x = (batch[0].astype(jnp.float32) - mean) * inv_std
    grads = jax.grad(loss)(p, x, batch[1])
    updates, opt_state = tx.update(grads, opt_state, p)
    return (optax.apply_updates(p, updates), opt_state), None

  return jax.lax.scan(step, carry, (xs, ys))[0]


class _Standardised:
  """Features kept as stored, standardised chunk by chunk when read."""

  def __init__(self, x: np.ndarray, mean: np.ndarray, std: np.ndarray):
    self.x, self.mean, self.inv_std = x, mean, 1.0 / std

  def logits(self, p, rows: np.ndarray, chunk: int = 65536) -> np.ndarray:
    w, b = (np.asarray(a, np.float32) for a in p)
    return np.concatenate([
        ((self.x[r].astype(np.float32) - self.mean) * self.inv_std) @ w + b
        for r in np.array_split(rows, max(1, -(-len(rows) // chunk)))
    ])


def _moments(x: np.ndarray, chunk: int = 65536):
  """float32 mean and std of ``x``'s columns, summed in float64 by chunks."""
  s = sq = 0.0
  for lo in range(0, len(x), chunk):
    c = x[lo : lo + chunk].astype(np.float64)
    s, sq = s + c.sum(0), sq + (c**2).sum(0)
  mean = s / len(x)
  std = np.sqrt(np.maximum(sq / len(x) - mean**2, 0.0))
  return mean.astype(np.float32), (std + 1e-6).astype(np.float32)


def _fit_sgd(data: _Standardised, y, rows, l2, *, num_classes, cfg, seed):
  """Softmax regression on ``rows`` by minibatch SGD; returns (W, b)."""
  batch = min(cfg.batch_size, len(rows))
  steps_per_epoch = len(rows) // batch
  total = cfg.epochs * steps_per_epoch
  lr = cfg.sgd_lr * batch / 256
  tx = optax.sgd(optax.cosine_decay_schedule(lr, total), cfg.momentum)
  run = jax.jit(functools.partial(_sgd_steps, tx=tx), donate_argnums=0)
  p = (
      jnp.zeros((data.x.shape[1], num_classes)),
      jnp.zeros((num_classes,)),
  )
  carry = (p, tx.init(p))
  row_bytes = data.x.shape[1] * data.x.itemsize
  per_chunk = max(1, _SGD_CHUNK_BYTES // (batch * row_bytes))
  mean, inv_std = jnp.asarray(data.mean), jnp.asarray(data.inv_std)
  for epoch in range(cfg.epochs):
    perm = np.random.default_rng([seed, epoch]).permutation(rows)
    perm = perm[: steps_per_epoch * batch].reshape(steps_per_epoch, batch)
    for lo in range(0, steps_per_epoch, per_chunk):
      idx = perm[lo : lo + per_chunk]
      carry = run(carry, data.x[idx], y[idx], mean, inv_std, l2)
  return carry[0]


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
    budget_bytes: float = float('inf'),
) -> dict[str, Any]:
  """Chooses L2 on validation, refits on all of train, reports on test.

  Args:
    train_x: [N, D] features of the labelled train split (float32 or
      bfloat16).
    train_y: [N] int labels.
    test_x: [M, D] features of the test split.
    test_y: [M] int labels.
    num_classes: number of classes.
    config: ``config.probe`` (``l2_grid``, ``val_fraction``, ``max_iters``,
      ``solver`` and the SGD fields).
    seed: seeds the train/validation split (and SGD's minibatches).
    class_names: optional names for the per-class figures.
    prefix: metric-name prefix.
    budget_bytes: host memory the probe may use (``solver='auto'``).

  Returns:
    A flat dict: validation accuracy per L2, the chosen L2, the solver, test
    top-1/top-5 accuracy, and per-class and macro precision, recall and F1 on
    test.
  """
  start = time.time()
  train_y, test_y = np.asarray(train_y), np.asarray(test_y)
  solver = choose_solver(
      config,
      len(train_y),
      train_x.shape[1],
      num_classes,
      budget_bytes,
  )
  perm = np.random.default_rng(seed).permutation(len(train_y))
  n_val = max(1, int(round(config.val_fraction * len(train_y))))
  val, fit = perm[:n_val], perm[n_val:]
  if solver == 'lbfgs':
    train_x = np.asarray(train_x, np.float32)
    test_x = np.asarray(test_x, np.float32)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    fit_fn = functools.partial(
        _fit_softmax, num_classes=num_classes, max_iters=config.max_iters
    )
    train_fn = lambda rows, l2: fit_fn(train_x[rows], train_y[rows], l2)
    predict = lambda p, x, rows: np.asarray(
        x[rows] @ np.asarray(p[0]) + np.asarray(p[1])
    )
  else:
    train_x = _Standardised(train_x, *_moments(train_x))
    test_x = _Standardised(test_x, train_x.mean, 1.0 / train_x.inv_std)
    train_fn = lambda rows, l2: _fit_sgd(
        train_x,
        train_y,
        rows,
        l2,
        num_classes=num_classes,
        cfg=config,
        seed=seed,
    )
    predict = lambda p, x, rows: x.logits(p, rows)
  results, best = {}, (-1.0, None)
  for l2 in config.l2_grid:
    p = train_fn(fit, l2)
    acc = float(np.mean(predict(p, train_x, val).argmax(1) == train_y[val]))
    results[f'{prefix}val_accuracy/l2={l2:g}'] = acc
    if acc > best[0]:
      best = (acc, l2)
  everything = np.arange(len(train_y))
  p = train_fn(everything, best[1])
  results.update({
      f'{prefix}l2': best[1],
      f'{prefix}solver': solver,
      f'{prefix}val_accuracy': best[0],
      f'{prefix}train_accuracy': float(
          np.mean(predict(p, train_x, everything).argmax(1) == train_y)
      ),
  })
  results.update(
      classification_metrics(
          predict(p, test_x, np.arange(len(test_y))),
          test_y,
          num_classes,
          class_names,
          prefix + 'test_',
      )
  )
  logging.info(
      'Linear probe (%s): l2=%g val=%.4f test=%.4f (%.1fs)',
      solver,
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
) -> dict[str, Any]:
  """Extracts frozen features of both splits and runs :func:`linear_probe`.

  Args:
    model: the method's model.
    variables: ``{'params', 'batch_stats'}`` of the encoder to evaluate.
    train_split: the labelled train :class:`ssl_jax.data.input_pipeline.Split`
      (cached or streamed; unlabelled records are left out).
    test_split: the test split (likewise).
    config: the experiment config.
    mesh: the device mesh.
    num_classes: number of classes.
    class_names: optional class names.
    prefix: metric-name prefix.

  Returns:
    The probe's flat results dict.
  """
  extract = functools.partial(
      features_lib.extract,
      model,
      variables,
      image_size=config.image_size,
      batch_size=config.probe.batch_size,
      mesh=mesh,
      dtype=config.probe.feature_dtype,
  )
  start = time.time()
  train, test = extract(train_split).labelled(), extract(test_split).labelled()
  logging.info(
      'Extracted %d+%d features of dim %d in %.1fs',
      len(train.labels),
      len(test.labels),
      train.features.shape[1],
      time.time() - start,
  )
  return linear_probe(
      train.features,
      train.labels,
      test.features,
      test.labels,
      num_classes=num_classes,
      config=config.probe,
      seed=config.seed,
      class_names=class_names,
      prefix=prefix,
      budget_bytes=memory.budget_bytes(config.data.memory_budget_gb),
  )
