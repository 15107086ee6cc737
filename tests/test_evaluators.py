"""The evaluation suite: kNN, selection off test, stratified fine-tune subsets,
frozen encoder, device-count independence, transfer errors, the workdir CLI."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from ssl_jax.data import input_pipeline
from ssl_jax.evaluation import evaluators
from ssl_jax.evaluation import finetune
from ssl_jax.evaluation import knn
from ssl_jax.evaluation import probe
from ssl_jax.training import run as run_lib
from ssl_jax.training import step as step_lib
from ssl_jax.training import train
from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_knn_toy_set_with_known_answer():
  # Bank: class 0 along +x, class 1 along +y; each query is nearest one class.
  bank = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)
  bank_y = np.array([0, 0, 1, 1])
  queries = np.array([[2, 0.1], [0.05, 3], [1, 0.8]], np.float32)
  scores = knn.knn_scores(
      bank, bank_y, queries, num_classes=2, k=2, temperature=0.1
  )
  np.testing.assert_array_equal(scores.argmax(1), [0, 1, 0])
  # With k=1 and one query, the score is exp(cos / T) on the nearest class.
  s = knn.knn_scores(
      bank, bank_y, queries[:1], num_classes=2, k=1, temperature=0.5
  )
  cos = queries[0] @ bank[0] / np.linalg.norm(queries[0])
  np.testing.assert_allclose(s[0], [np.exp(cos / 0.5), 0], rtol=1e-5)
  assert knn.knn_accuracy(
      bank, bank_y, queries, [0, 1, 1], num_classes=2, k=2
  ) == pytest.approx(2 / 3)


def test_knn_chunks_agree_with_one_matmul():
  rng = np.random.default_rng(0)
  bank, y = rng.normal(size=(50, 8)), rng.integers(0, 4, 50)
  q = rng.normal(size=(37, 8))
  a = knn.knn_scores(bank, y, q, num_classes=4, k=5, chunk=10)
  b = knn.knn_scores(bank, y, q, num_classes=4, k=5, chunk=1000)
  np.testing.assert_allclose(a, b, rtol=1e-5)


def test_selection_never_depends_on_test():
  """The chosen L2 / C and validation figures are the same whatever test is."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(300, 6)).astype(np.float32)
  y = (x[:, 0] + 0.5 * rng.normal(size=300) > 0).astype(np.int32)
  config = helpers.tiny_config().probe
  runs = []
  test_x = np.random.default_rng(1).normal(size=(100, 6)).astype(np.float32)
  for flip in (0, 1):  # Test labels right, then all wrong.
    test_y = ((test_x[:, 0] > 0) ^ flip).astype(np.int32)
    runs.append(
        probe.linear_probe(
            x, y, test_x, test_y, num_classes=2, config=config, seed=0
        )
    )
  chosen = [{k: v for k, v in r.items() if 'test' not in k} for r in runs]
  assert chosen[0] == chosen[1]
  assert runs[0]['linear_probe/test_accuracy'] > 0.8
  assert runs[1]['linear_probe/test_accuracy'] < 0.2


def test_stratified_subset_exact_and_reproducible_per_seed():
  labels = np.repeat(
      np.arange(10), [100, 100, 100, 100, 100, 50, 50, 50, 50, 300]
  )
  a = input_pipeline.labelled_indices(labels, 0.01, seed=0)
  assert np.bincount(labels[a]).tolist() == [1] * 9 + [3]
  np.testing.assert_array_equal(
      a, input_pipeline.labelled_indices(labels, 0.01, 0)
  )
  assert not np.array_equal(a, input_pipeline.labelled_indices(labels, 0.01, 1))
  b = input_pipeline.labelled_indices(labels, 1.0, seed=3, per_class=20)
  assert np.bincount(labels[b]).tolist() == [20] * 10


def _tiny_run(tmp_path, **overrides):
  config = helpers.tiny_config(**{
      'dataset': 'sklearn_digits',
      'batch_size': 64,
      'num_epochs': 1,
      'optimizer.warmup_epochs': 0.0,
      'checkpoint_every_steps': 100,
      **overrides,
  })
  workdir = str(tmp_path / 'run')
  results = train.train_and_evaluate(config, workdir)
  return config, workdir, results


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
  return _tiny_run(
      tmp_path_factory.mktemp('ev'),
      **{'evals.knn.every_steps': 10, 'evals.knn.monitor_bank': 200},
  )


def _context(config, workdir, mesh=None):
  run = run_lib.build(config, mesh)
  step, variables = run.restore_variables(workdir)
  return train.evaluation_context(run, workdir, run.replicate(variables), step)


@pytest.mark.slow
def test_final_evaluation_writes_knn_and_embedding(tiny_run):
  _, _, results = tiny_run
  for key in (
      'knn/test_accuracy',
      'embedding/silhouette',
      'embedding/dunn',
      'embedding/kmeans_nmi',
      'linear_probe/test_accuracy',
  ):
    assert np.isfinite(results[key]), key
  assert results['knn/test_accuracy'] > 0.3  # 10 classes: chance is 0.1.
  # The online monitor ran on held-out train images during training.
  assert 0 < results['train/last_knn_monitor_val_accuracy'] <= 1


@pytest.mark.slow
def test_frozen_evaluations_leave_encoder_bit_identical(tiny_run, tmp_path):
  config, workdir, _ = tiny_run
  config = config.copy_and_resolve_references()
  config.evals.pictures.enabled = True
  config.evals.sklearn_probe.enabled = True
  config.evals.sklearn_probe.c_grid = (1.0,)
  config.evals.transfer.enabled = True
  config.evals.transfer.targets = ('sklearn_digits',)
  ctx = _context(config, workdir)
  ctx.workdir = str(tmp_path)  # PNGs go here, not into the shared run.
  before = jax.tree.map(np.array, jax.device_get(ctx.variables))
  results = evaluators.run(
      ctx,
      [
          'linear_probe',
          'sklearn_probe',
          'knn',
          'embedding',
          'pictures',
          'transfer',
      ],
  )
  after = jax.device_get(ctx.variables)
  jax.tree.map(np.testing.assert_array_equal, before, after)
  assert results['pictures/count'] >= 3
  for name in ('tsne.png', 'neighbours.png', 'confusion_knn.png'):
    assert os.path.getsize(os.path.join(tmp_path, 'eval', name)) > 1000
  assert 0 <= results['transfer/sklearn_digits/linear_probe/test_accuracy'] <= 1


@pytest.mark.slow
def test_results_do_not_depend_on_device_count(tiny_run):
  config, workdir, _ = tiny_run
  figures = []
  for devices in (jax.devices()[:1], jax.devices()):
    ctx = _context(config, workdir, step_lib.make_mesh(devices))
    figures.append((ctx.test_features, dict(evaluators.run(ctx, ['knn']))))
  np.testing.assert_allclose(figures[0][0], figures[1][0], rtol=1e-5, atol=1e-5)
  assert figures[0][1] == figures[1][1]


@pytest.mark.slow
def test_missing_transfer_dataset_is_one_line_and_others_run(
    tiny_run, tmp_path
):
  config, workdir, _ = tiny_run
  config = config.copy_and_resolve_references()
  config.data_dir = str(tmp_path / 'empty_tfds')
  config.evals.transfer.enabled = True
  config.evals.transfer.targets = ('mnist', 'sklearn_digits')
  results = evaluators.run(_context(config, workdir), ['transfer', 'knn'])
  error = results['transfer/mnist/error']
  assert '\n' not in error and 'prepare' in error.lower()
  assert 'transfer/sklearn_digits/linear_probe/test_accuracy' in results
  assert 'knn/test_accuracy' in results


@pytest.mark.slow
def test_finetune_uses_the_stratified_subset_and_reports_mean_std(tiny_run):
  config, workdir, _ = tiny_run
  config = config.copy_and_resolve_references()
  ft = config.evals.finetune
  ft.enabled, ft.label_fractions, ft.seeds, ft.num_steps = (
      True,
      (0.1,),
      (0, 1),
      3,
  )
  ctx = _context(config, workdir)
  results = dict(evaluators.run(ctx, ['finetune']))
  for prefix in ('finetune', 'frozen'):
    accs = [
        results[f'{prefix}/frac=0.1/seed={s}/test_accuracy'] for s in (0, 1)
    ]
    assert results[f'{prefix}/frac=0.1/test_accuracy_mean'] == pytest.approx(
        np.mean(accs)
    )
    assert results[f'{prefix}/frac=0.1/test_accuracy_std'] == pytest.approx(
        np.std(accs)
    )
  # The fine-tune trained on exactly labelled_indices(seed) of the train split.
  run_dir = os.path.join(workdir, 'eval', 'finetune', 'frac=0.1', 'seed=1')
  with open(os.path.join(run_dir, 'config.json')) as f:
    saved = json.load(f)
  assert saved['init_from'] == os.path.abspath(workdir)
  assert saved['method'] == 'supervised' and saved['seed'] == 1
  labels = ctx.probe_train.labels
  idx = input_pipeline.labelled_indices(labels, 0.1, 1)
  subset = input_pipeline.labelled_subset(ctx.probe_train, 0.1, 1)
  np.testing.assert_array_equal(subset.labels, labels[idx])
  assert results['finetune/frac=0.1/num_labelled'] == len(idx)


def test_transfer_target_spec():
  assert finetune.parse_target('mnist') == ('mnist', 'train', 'test')
  assert finetune.parse_target('uc_merced:train[:80%]:train[80%:]') == (
      'uc_merced',
      'train[:80%]',
      'train[80%:]',
  )
  with pytest.raises(input_pipeline.DataError):
    finetune.parse_target('a:b')


@pytest.mark.slow
def test_cli_evaluates_a_workdir_and_merges_results(tiny_run):
  _, workdir, _ = tiny_run
  env = helpers.subprocess_env()
  out = subprocess.run(
      [
          sys.executable,
          '-m',
          'ssl_jax.tools.evaluate',
          f'--workdir={workdir}',
          '--only=knn',
          '--evals.knn.k=5',
      ],
      cwd=ROOT,
      env=env,
      capture_output=True,
      text=True,
      timeout=300,
      check=False,
  )
  assert out.returncode == 0, out.stderr[-2000:]
  assert 'knn/test_accuracy' in out.stdout
  with open(os.path.join(workdir, 'results.json')) as f:
    merged = json.load(f)
  assert merged['knn/k'] == 5 and 'train/wall_seconds' in merged
  bad = subprocess.run(
      [
          sys.executable,
          '-m',
          'ssl_jax.tools.evaluate',
          '--workdir=/nonexistent',
      ],
      cwd=ROOT,
      env=env,
      capture_output=True,
      text=True,
      timeout=120,
      check=False,
  )
  assert bad.returncode != 0 and 'config.json' in bad.stderr
