"""Evaluations of a trained encoder, built from ``config.evals``.

Each evaluator is a function ``(ctx: Context) -> Iterator[(name, value)]`` in
the :data:`EVALUATORS` registry, switched on by ``config.evals.<name>.enabled``.
They run at the end of pretraining (``ssl_jax.training.train``), or later on
any finished workdir (``python -m ssl_jax.tools.evaluate``). Nothing is chosen
on the test split.
"""

import os
import time
from typing import Any, Callable, Iterator, Optional

from absl import logging
import ml_collections
import numpy as np

from ssl_jax import errors
from ssl_jax.data import host_crop
from ssl_jax.data import input_pipeline
from ssl_jax.data import memory
from ssl_jax.evaluation import augmented
from ssl_jax.evaluation import embedding_metrics
from ssl_jax.evaluation import finetune
from ssl_jax.evaluation import knn as knn_lib
from ssl_jax.evaluation import pictures as pictures_lib
from ssl_jax.evaluation import probe
from ssl_jax.evaluation.context import Context

Evaluator = Callable[[Context], Iterator[tuple[str, Any]]]


def linear_probe(ctx: Context) -> Iterator[tuple[str, Any]]:
  """The linear probe (``config.probe``), and its random-init reference.

  ``probe.protocol='features'`` fits softmax regression on the frozen
  features (L-BFGS or streamed SGD, ``probe.solver``); ``'augmented'``
  trains a linear head on augmented views through the frozen encoder.
  """
  cfg = ctx.config.probe
  probe.check_config(cfg)
  kwargs = dict(
      num_classes=ctx.info['num_classes'],
      class_names=ctx.info.get('class_names'),
  )
  if cfg.protocol == 'augmented':
    train_split = ctx.probe_train
    if ctx.host_crop:  # Each epoch's crops cut from the original images.
      crop = host_crop.spec(augmented.view_config(), ctx.config.image_size)
      train_split = ctx.load(
          ctx.config.data.probe_train_split, cache=False, crops=(crop,)
      )
    encoders = [('linear_probe/', ctx.variables)]
    if cfg.random_init and ctx.random_init is not None:
      encoders.append(('random_init/linear_probe/', ctx.random_init))
    for prefix, variables in encoders:
      yield from augmented.linear_eval(
          ctx.model,
          variables,
          train_split=train_split,
          test_split=ctx.probe_test,
          config=ctx.config,
          mesh=ctx.mesh,
          prefix=prefix,
          **kwargs,
      ).items()
    return
  kwargs.update(
      config=cfg,
      seed=ctx.config.seed,
      budget_bytes=memory.budget_bytes(ctx.config.data.memory_budget_gb),
  )
  yield from probe.linear_probe(
      ctx.train_features,
      ctx.train_labels,
      ctx.test_features,
      ctx.test_labels,
      **kwargs,
  ).items()
  if cfg.random_init and ctx.random_init is not None:
    train = ctx.features(ctx.probe_train, ctx.random_init)
    test = ctx.features(ctx.probe_test, ctx.random_init)
    yield from probe.linear_probe(
        train.features,
        train.labels,
        test.features,
        test.labels,
        prefix='random_init/linear_probe/',
        **kwargs,
    ).items()


def sklearn_probe(ctx: Context) -> Iterator[tuple[str, Any]]:
  """scikit-learn ``LogisticRegression``, C chosen on validation carved from train."""
  from sklearn import linear_model  # pylint: disable=g-import-not-at-top
  from sklearn import preprocessing  # pylint: disable=g-import-not-at-top

  cfg = ctx.config.evals.sklearn_probe
  # float32 rows as sklearn reads them (the features may be bfloat16).
  rows = lambda x, i: np.asarray(x[i], np.float32)
  x, y = ctx.train_features, ctx.train_labels
  rng = np.random.default_rng([ctx.config.seed, 11])
  keep = rng.permutation(len(y))[: cfg.max_train]
  n_val = max(1, int(round(ctx.config.probe.val_fraction * len(keep))))
  val, fit = keep[:n_val], keep[n_val:]
  scaler = preprocessing.StandardScaler().fit(rows(x, fit))
  best = (-1.0, None)
  for c in cfg.c_grid:
    clf = linear_model.LogisticRegression(C=c, max_iter=cfg.max_iter)
    clf.fit(scaler.transform(rows(x, fit)), y[fit])
    acc = float(clf.score(scaler.transform(rows(x, val)), y[val]))
    yield f'sklearn_probe/val_accuracy/C={c:g}', acc
    if acc > best[0]:
      best = (acc, c)
  clf = linear_model.LogisticRegression(C=best[1], max_iter=cfg.max_iter)
  clf.fit(scaler.transform(rows(x, keep)), y[keep])
  test_x = np.asarray(ctx.test_features, np.float32)
  scores = clf.decision_function(scaler.transform(test_x))
  yield 'sklearn_probe/C', best[1]
  yield 'sklearn_probe/val_accuracy', best[0]
  metrics = probe.classification_metrics(
      scores,
      ctx.test_labels,
      ctx.info['num_classes'],
      ctx.info.get('class_names'),
      'sklearn_probe/test_',
  )
  yield 'sklearn_probe/test_accuracy', metrics['sklearn_probe/test_accuracy']
  yield 'sklearn_probe/test_top5_accuracy', metrics[
      'sklearn_probe/test_top5_accuracy'
  ]


def knn(ctx: Context) -> Iterator[tuple[str, Any]]:
  """Weighted cosine kNN: the train split is the bank, test the queries."""
  metrics = probe.classification_metrics(
      ctx.knn_scores,
      ctx.test_labels,
      ctx.info['num_classes'],
      ctx.info.get('class_names'),
      'knn/test_',
  )
  yield 'knn/test_accuracy', metrics['knn/test_accuracy']
  yield 'knn/test_top5_accuracy', metrics['knn/test_top5_accuracy']
  yield 'knn/test_f1/macro_avg', metrics['knn/test_f1/macro_avg']
  yield 'knn/k', ctx.config.evals.knn.k


def embedding(ctx: Context) -> Iterator[tuple[str, Any]]:
  """Silhouette, Dunn and k-means NMI/ARI of the test embeddings against labels."""
  yield from embedding_metrics.embedding_metrics(
      ctx.test_features,
      ctx.test_labels,
      num_classes=ctx.info['num_classes'],
      seed=ctx.config.seed,
      max_points=ctx.config.evals.embedding.max_points,
  ).items()


def pictures(ctx: Context) -> Iterator[tuple[str, Any]]:
  """t-SNE (over checkpoints), nearest-neighbour grid, confusion matrix, curves.

  Only the images shown are read, so a streamed split is never held in RAM.
  """
  cfg, out = ctx.config.evals.pictures, ctx.out_dir
  names = ctx.info.get('class_names')
  test_y = ctx.test_labels
  panels = []
  for step in cfg.tsne_steps:
    if step == ctx.step:
      continue
    try:
      variables = ctx.restore(step)
    except ValueError as e:
      logging.warning('t-SNE: skipping step %s: %s', step, e)
      continue
    panels.append(
        (f'step {step}', ctx.features(ctx.probe_test, variables).features)
    )
  panels.append((f'step {ctx.step}', ctx.test_features))
  saved = {
      'tsne': pictures_lib.tsne(
          panels,
          test_y,
          os.path.join(out, 'tsne.png'),
          class_names=names,
          seed=ctx.config.seed,
          max_points=cfg.tsne_points,
      )
  }
  rng = np.random.default_rng([ctx.config.seed, 13])
  queries = np.sort(rng.permutation(len(test_y))[: cfg.queries])
  _, nn = knn_lib.nearest(
      ctx.test_features[queries], ctx.train_features, cfg.neighbours
  )
  saved['neighbours'] = pictures_lib.neighbours(
      ctx.test_images(queries),
      ctx.train_images(nn),
      os.path.join(out, 'neighbours.png'),
      query_labels=test_y[queries],
      neighbour_labels=ctx.train_labels[nn],
      class_names=names,
  )
  saved['confusion'] = pictures_lib.confusion_matrix(
      test_y,
      ctx.knn_scores.argmax(1),
      os.path.join(out, 'confusion_knn.png'),
      class_names=names,
      title='kNN predictions on test (row-normalised)',
  )
  series = pictures_lib.read_scalars(ctx.workdir)
  # Training curves only: not the loop's bookkeeping or one-off final figures.
  bookkeeping = (
      'epoch',
      'uptime',
      'steps_per_sec',
      'steps_per_second',
      'images_per_second',
  )
  series = {
      k: v
      for k, v in series.items()
      if len(v) > 1
      and k not in bookkeeping
      and not k.startswith(('eval/', 'hparams'))
  }
  if series:
    saved['curves'] = pictures_lib.curves(
        series, os.path.join(out, 'curves.png'), title=ctx.workdir
    )
  for name, image in saved.items():
    ctx.save_picture(name, image)
  yield 'pictures/count', len(saved)


EVALUATORS: dict[str, Evaluator] = {
    'linear_probe': linear_probe,
    'sklearn_probe': sklearn_probe,
    'knn': knn,
    'embedding': embedding,
    'pictures': pictures,
    'finetune': finetune.finetune,
    'transfer': finetune.transfer,
}


# Settings (``config.evals.<name>``) of evaluators registered from outside.
SETTINGS: dict[str, Callable[[], ml_collections.ConfigDict]] = {}


def register(
    name: str,
    evaluator: Evaluator,
    settings: Callable[[], ml_collections.ConfigDict],
) -> Evaluator:
  """Adds an evaluator defined outside ssl_jax.

  Args:
    name: its key in :data:`EVALUATORS` and its ``config.evals`` field.
    evaluator: ``ctx -> iterator of (name, value)``.
    settings: ``() -> ConfigDict`` of its settings; it must have an
      ``enabled`` field. ``configs/evals/default.py`` adds them.

  Returns:
    ``evaluator``.
  """
  if name in EVALUATORS:
    raise ValueError(f'an evaluator named {name!r} is already registered.')
  if 'enabled' not in settings():
    raise ValueError(
        f'evaluator {name!r}: its settings need an `enabled` field.'
    )
  EVALUATORS[name] = evaluator
  SETTINGS[name] = settings
  return evaluator


def enabled(config: ml_collections.ConfigDict) -> list[str]:
  """The evaluator names ``config`` turns on, in :data:`EVALUATORS` order."""
  out = ['linear_probe'] if config.probe.enabled else []
  return out + [
      n for n in EVALUATORS if n in config.evals and config.evals[n].enabled
  ]


def check_names(names: list[str]) -> None:
  """Raises a one-line ``errors.ConfigError`` for a name not in the registry."""
  unknown = [n for n in names if n not in EVALUATORS]
  if unknown:
    raise errors.ConfigError(
        f'unknown evaluator {unknown[0]!r}; use one of {sorted(EVALUATORS)}.'
    )


def run(ctx: Context, names: Optional[list[str]] = None) -> dict[str, Any]:
  """Runs evaluators by name (default: those enabled) and collects their figures.

  An evaluator that fails on data (a missing dataset) records
  ``{name}/error`` and the others still run.

  Args:
    ctx: the evaluation context.
    names: evaluators to run, in order.

  Returns:
    A flat dict of every figure.
  """
  names = enabled(ctx.config) if names is None else names
  check_names(names)
  results = {}
  for name in names:
    start = time.time()
    try:
      results.update(EVALUATORS[name](ctx))
    except input_pipeline.DataError as e:
      logging.error('%s: %s', name, e)
      results[f'{name}/error'] = str(e)
    logging.info('Evaluator %s done in %.1fs', name, time.time() - start)
  return results
