"""Evaluations of a trained encoder, built from ``config.evals``.

Each evaluator is a function ``(ctx: Context) -> Iterator[(name, value)]`` in
the :data:`EVALUATORS` dict. They run at the end of pretraining (from
``train.train_and_evaluate``), or later on any finished workdir:

  python -m ssl_jax.evaluators --workdir=DIR [--evals=configs/evals/full.py]

which merges its figures into ``DIR/results.json`` and writes PNGs to
``DIR/eval/``. Frozen features of the probe's train and test splits are
extracted once per context and shared. Nothing is chosen on the test split.
"""

import dataclasses
import functools
import os
import time
from typing import Any, Callable, Iterator, Optional

from absl import logging
import jax
import ml_collections
import numpy as np

from ssl_jax import embedding_metrics
from ssl_jax import evaluate
from ssl_jax import input_pipeline
from ssl_jax import knn as knn_lib
from ssl_jax import pictures as pictures_lib


@dataclasses.dataclass
class Context:
  """What every evaluator may use; features are computed on first use.

  Attributes:
    config: the run's config (``config.evals`` holds the evaluators' settings).
    workdir: the run's directory (fine-tunes and PNGs go below ``eval/``).
    model: the method's model.
    variables: ``{'params', 'batch_stats'}`` of the encoder evaluated.
    mesh: the device mesh.
    load: ``(split, cache) -> Split`` for the run's dataset.
    step: the checkpoint step evaluated.
    random_init: variables of the random-init reference encoder, if any.
    train_fn: ``train.train_and_evaluate`` (fine-tuning runs through it).
    writer: optional clu writer for pictures.
    train_split: the labelled split features are fitted on (default: loaded).
  """
  config: ml_collections.ConfigDict
  workdir: str
  model: Any
  variables: dict[str, Any]
  mesh: jax.sharding.Mesh
  load: Callable[..., input_pipeline.Split]
  step: int = 0
  random_init: Optional[dict[str, Any]] = None
  train_fn: Optional[Callable[..., dict[str, Any]]] = None
  writer: Any = None
  train_split: Optional[input_pipeline.Split] = None

  @property
  def info(self) -> dict[str, Any]:
    return input_pipeline.DATASETS[self.config.dataset]

  @property
  def out_dir(self) -> str:
    return os.path.join(self.workdir, 'eval')

  @functools.cached_property
  def probe_train(self) -> input_pipeline.Split:
    if self.train_split is not None:
      return self.train_split
    return self.load(self.config.data.probe_train_split, cache=True)

  @functools.cached_property
  def probe_test(self) -> input_pipeline.Split:
    return self.load(self.config.data.probe_test_split, cache=True)

  def features(self, images: np.ndarray, variables=None) -> np.ndarray:
    return evaluate.extract_features(
        self.model, self.variables if variables is None else variables, images,
        image_size=self.config.image_size,
        batch_size=self.config.probe.batch_size, mesh=self.mesh)

  @functools.cached_property
  def train_features(self) -> np.ndarray:
    return self.features(self.probe_train.images)

  @functools.cached_property
  def test_features(self) -> np.ndarray:
    return self.features(self.probe_test.images)

  @functools.cached_property
  def knn_scores(self) -> np.ndarray:
    cfg = self.config.evals.knn
    return knn_lib.knn_scores(self.train_features, self.probe_train.labels,
                              self.test_features,
                              num_classes=self.info['num_classes'], k=cfg.k,
                              temperature=cfg.temperature)

  def save_picture(self, name: str, image: np.ndarray) -> None:
    if self.writer is not None:
      self.writer.write_images(self.step, {f'eval/{name}': image[None]})


def linear_probe(ctx: Context) -> Iterator[tuple[str, Any]]:
  """The JAX L-BFGS softmax probe (``config.probe``), and its random-init reference."""
  kwargs = dict(num_classes=ctx.info['num_classes'], config=ctx.config.probe,
                seed=ctx.config.seed, class_names=ctx.info.get('class_names'))
  yield from evaluate.linear_probe(
      ctx.train_features, ctx.probe_train.labels, ctx.test_features,
      ctx.probe_test.labels, **kwargs).items()
  if ctx.config.probe.random_init and ctx.random_init is not None:
    yield from evaluate.linear_probe(
        ctx.features(ctx.probe_train.images, ctx.random_init),
        ctx.probe_train.labels,
        ctx.features(ctx.probe_test.images, ctx.random_init),
        ctx.probe_test.labels, prefix='random_init/linear_probe/',
        **kwargs).items()


def sklearn_probe(ctx: Context) -> Iterator[tuple[str, Any]]:
  """scikit-learn ``LogisticRegression``, C chosen on validation carved from train."""
  from sklearn import linear_model  # pylint: disable=g-import-not-at-top
  from sklearn import preprocessing  # pylint: disable=g-import-not-at-top
  cfg = ctx.config.evals.sklearn_probe
  x, y = ctx.train_features, ctx.probe_train.labels
  rng = np.random.default_rng([ctx.config.seed, 11])
  keep = rng.permutation(len(y))[:cfg.max_train]
  n_val = max(1, int(round(ctx.config.probe.val_fraction * len(keep))))
  val, fit = keep[:n_val], keep[n_val:]
  scaler = preprocessing.StandardScaler().fit(x[fit])
  best = (-1.0, None)
  for c in cfg.c_grid:
    clf = linear_model.LogisticRegression(C=c, max_iter=cfg.max_iter)
    clf.fit(scaler.transform(x[fit]), y[fit])
    acc = float(clf.score(scaler.transform(x[val]), y[val]))
    yield f'sklearn_probe/val_accuracy/C={c:g}', acc
    if acc > best[0]:
      best = (acc, c)
  clf = linear_model.LogisticRegression(C=best[1], max_iter=cfg.max_iter)
  clf.fit(scaler.transform(x[keep]), y[keep])
  scores = clf.decision_function(scaler.transform(ctx.test_features))
  yield 'sklearn_probe/C', best[1]
  yield 'sklearn_probe/val_accuracy', best[0]
  metrics = evaluate.classification_metrics(
      scores, ctx.probe_test.labels, ctx.info['num_classes'],
      ctx.info.get('class_names'), 'sklearn_probe/test_')
  yield 'sklearn_probe/test_accuracy', metrics['sklearn_probe/test_accuracy']
  yield 'sklearn_probe/test_top5_accuracy', metrics[
      'sklearn_probe/test_top5_accuracy']


def knn(ctx: Context) -> Iterator[tuple[str, Any]]:
  """Weighted cosine kNN: the train split is the bank, test the queries."""
  metrics = evaluate.classification_metrics(
      ctx.knn_scores, ctx.probe_test.labels, ctx.info['num_classes'],
      ctx.info.get('class_names'), 'knn/test_')
  yield 'knn/test_accuracy', metrics['knn/test_accuracy']
  yield 'knn/test_top5_accuracy', metrics['knn/test_top5_accuracy']
  yield 'knn/test_f1/macro_avg', metrics['knn/test_f1/macro_avg']
  yield 'knn/k', ctx.config.evals.knn.k


def embedding(ctx: Context) -> Iterator[tuple[str, Any]]:
  """Silhouette, Dunn and k-means NMI/ARI of the test embeddings against labels."""
  yield from embedding_metrics.embedding_metrics(
      ctx.test_features, ctx.probe_test.labels,
      num_classes=ctx.info['num_classes'], seed=ctx.config.seed,
      max_points=ctx.config.evals.embedding.max_points).items()


def pictures(ctx: Context) -> Iterator[tuple[str, Any]]:
  """t-SNE (over checkpoints), nearest-neighbour grid, confusion matrix, curves."""
  cfg, out = ctx.config.evals.pictures, ctx.out_dir
  names = ctx.info.get('class_names')
  test_y = ctx.probe_test.labels
  panels = []
  for step in cfg.tsne_steps:
    if step == ctx.step:
      continue
    try:
      variables = restore_variables(ctx.config, ctx.workdir, step)[1]
    except ValueError as e:
      logging.warning('t-SNE: skipping step %s: %s', step, e)
      continue
    panels.append((f'step {step}', ctx.features(ctx.probe_test.images,
                                                variables)))
  panels.append((f'step {ctx.step}', ctx.test_features))
  saved = {
      'tsne': pictures_lib.tsne(
          panels, test_y, os.path.join(out, 'tsne.png'), class_names=names,
          seed=ctx.config.seed, max_points=cfg.tsne_points)}
  rng = np.random.default_rng([ctx.config.seed, 13])
  queries = np.sort(rng.permutation(len(test_y))[:cfg.queries])
  nn = pictures_lib.nearest_neighbours(ctx.test_features[queries],
                                       ctx.train_features, cfg.neighbours)
  saved['neighbours'] = pictures_lib.neighbours(
      ctx.probe_test.images[queries], ctx.probe_train.images[nn],
      os.path.join(out, 'neighbours.png'), query_labels=test_y[queries],
      neighbour_labels=ctx.probe_train.labels[nn], class_names=names)
  saved['confusion'] = pictures_lib.confusion_matrix(
      test_y, ctx.knn_scores.argmax(1), os.path.join(out, 'confusion_knn.png'), class_names=names,
      title='kNN predictions on test (row-normalised)')
  series = pictures_lib.read_scalars(ctx.workdir)
  # Training curves only: not the loop's bookkeeping or one-off final figures.
  bookkeeping = ('epoch', 'uptime', 'steps_per_sec', 'steps_per_second',
                 'images_per_second')
  series = {k: v for k, v in series.items() if len(v) > 1
            and k not in bookkeeping and not k.startswith(('eval/', 'hparams'))}
  if series:
    saved['curves'] = pictures_lib.curves(
        series, os.path.join(out, 'curves.png'), title=ctx.workdir)
  for name, image in saved.items():
    ctx.save_picture(name, image)
  yield 'pictures/count', len(saved)


def _finetune(ctx):  # Lazy: finetune imports this module.
  from ssl_jax import finetune  # pylint: disable=g-import-not-at-top
  return finetune.finetune(ctx)


def _transfer(ctx):
  from ssl_jax import finetune  # pylint: disable=g-import-not-at-top
  return finetune.transfer(ctx)


EVALUATORS: dict[str, Callable[[Context], Iterator[tuple[str, Any]]]] = {
    'linear_probe': linear_probe,
    'sklearn_probe': sklearn_probe,
    'knn': knn,
    'embedding': embedding,
    'pictures': pictures,
    'finetune': _finetune,
    'transfer': _transfer,
}


def enabled(config: ml_collections.ConfigDict) -> list[str]:
  """The evaluator names ``config`` turns on, in :data:`EVALUATORS` order."""
  out = ['linear_probe'] if config.probe.enabled else []
  return out + [n for n in EVALUATORS
                if n in config.evals and config.evals[n].enabled]


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
  results = {}
  for name in enabled(ctx.config) if names is None else names:
    start = time.time()
    try:
      results.update(EVALUATORS[name](ctx))
    except input_pipeline.DataError as e:
      logging.error('%s: %s', name, e)
      results[f'{name}/error'] = str(e)
    logging.info('Evaluator %s done in %.1fs', name, time.time() - start)
  return results


def restore_variables(config: ml_collections.ConfigDict, workdir: str,
                      step: Optional[int] = None):
  """The evaluated variables of a workdir's checkpoint (FixMatch: its EMA).

  Args:
    config: the run's config.
    workdir: the run's directory.
    step: the checkpoint (default: latest).

  Returns:
    ``(step, {'params', 'batch_stats'})``.
  """
  from ssl_jax import checkpoint  # pylint: disable=g-import-not-at-top
  from ssl_jax import methods  # pylint: disable=g-import-not-at-top
  from ssl_jax.train_state import TrainState  # pylint: disable=g-import-not-at-top
  step, tree = checkpoint.restore_tree(workdir, step)
  from ssl_jax import train  # pylint: disable=g-import-not-at-top
  state = TrainState(step=tree['step'], params=tree['params'],
                     batch_stats=tree['batch_stats'], opt_state=None,
                     extra=tree.get('extra', {}))
  return step, train.eval_variables(methods.get(config.method), state)


def evaluate_workdir(workdir: str, evals: Optional[ml_collections.ConfigDict]
                     = None, step: Optional[int] = None,
                     names: Optional[list[str]] = None) -> dict[str, Any]:
  """Runs evaluators on a finished run's checkpoint and merges its results.json.

  Args:
    workdir: a run directory holding ``config.json`` and checkpoints.
    evals: replaces the run's ``config.evals`` (default: keep the run's).
    step: the checkpoint to evaluate (default: the latest).
    names: evaluators to run (default: those ``evals`` enables; the linear
      probe only when named, as training already ran it).

  Returns:
    The new figures (also merged into ``workdir/results.json`` and written to
    ``workdir/eval/results_step{step}.json``).
  """
  import json  # pylint: disable=g-import-not-at-top
  from configs import default  # pylint: disable=g-import-not-at-top
  from ssl_jax import checkpoint  # pylint: disable=g-import-not-at-top
  from ssl_jax import methods  # pylint: disable=g-import-not-at-top
  from ssl_jax import train  # pylint: disable=g-import-not-at-top
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise input_pipeline.DataError(
        f'{path} does not exist; pass the --workdir of a run of main.py.')
  config = default.get_config()
  with open(path) as f:
    config.update_from_flattened_dict({
        k: tuple(v) if isinstance(v, list) else v
        for k, v in checkpoint.flatten(json.load(f)).items()})
  if evals is not None:
    config.evals = evals
  start = time.time()
  step, variables = restore_variables(config, workdir, step)
  mesh = train.make_mesh()
  variables = train.replicate(variables, mesh)
  info = input_pipeline.DATASETS[config.dataset]
  model = methods.get(config.method).build_model(config, info['num_classes'])
  load = functools.partial(input_pipeline.load_split, config.dataset,
                           data_dir=config.data_dir, resize=config.data.resize,
                           channels=config.data.channels)
  from clu import metric_writers  # pylint: disable=g-import-not-at-top
  # TensorBoard's "eval" run beside the training curves.
  writer = metric_writers.create_default_writer(
      os.path.join(workdir, 'eval'), just_logging=jax.process_index() != 0,
      asynchronous=False)
  ctx = Context(config=config, workdir=workdir, model=model,
                variables=variables, mesh=mesh, load=load, step=step,
                train_fn=train.train_and_evaluate, writer=writer)
  names = names or [n for n in enabled(config) if n != 'linear_probe']
  results = run(ctx, names)
  writer.write_scalars(step, {k: v for k, v in results.items()
                              if isinstance(v, (int, float))})
  writer.close()
  results['eval/wall_seconds'] = time.time() - start
  results['eval/step'] = step
  if jax.process_index() == 0:
    os.makedirs(ctx.out_dir, exist_ok=True)
    train.write_json(os.path.join(ctx.out_dir, f'results_step{step}.json'),
                     results)
    merged = {}
    main_path = os.path.join(workdir, 'results.json')
    if os.path.exists(main_path):
      with open(main_path) as f:
        merged = json.load(f)
    merged.update(results)
    train.write_json(main_path, merged)
  return results


def main(argv, *, evals_flag):
  """The command line: evaluates ``--workdir`` with ``--evals``."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise SystemExit(f'Unexpected arguments: {argv[1:]}')
  flag = flags.FLAGS
  names = [n for n in flag.only.split(',') if n] if flag.only else None
  try:
    results = evaluate_workdir(flag.workdir, evals_flag.value, flag.step, names)
  except (input_pipeline.DataError, ValueError) as e:
    raise SystemExit(f'ssl_jax.evaluators: error: {e}') from None
  for k in sorted(results):
    if isinstance(results[k], float) and k.endswith(
        ('accuracy', 'accuracy_mean', 'silhouette', 'dunn', 'kmeans_nmi')):
      print(f'{k}: {results[k]:.4f}')


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('workdir', None, 'Run directory to evaluate.',
                      required=True)
  flags.DEFINE_integer('step', None, 'Checkpoint step (default: latest).')
  flags.DEFINE_string('only', '', 'Comma-separated evaluators to run '
                      f'(default: those --evals enables), from {list(EVALUATORS)}.')
  # Flags only here: train.py imports this module beside main.py's flags.
  evals = config_flags.DEFINE_config_file(
      'evals', os.path.join(os.path.dirname(os.path.dirname(
          os.path.abspath(__file__))), 'configs', 'evals', 'default.py'),
      'Evaluations config file (configs/evals/*.py or configs/transfer/*.py).')
  app.run(functools.partial(main, evals_flag=evals))
