"""Evaluation at ImageNet scale: streamed features, chunked kNN, SGD probe,
the solver's memory choice, the augmented linear protocol."""

import os

import jax
import ml_collections
import numpy as np
import pytest

from ssl_jax import errors
from ssl_jax import methods
from ssl_jax.data import input_pipeline
from ssl_jax.data import memory
from ssl_jax.evaluation import augmented
from ssl_jax.evaluation import context as context_lib
from ssl_jax.evaluation import evaluators
from ssl_jax.evaluation import features
from ssl_jax.evaluation import knn
from ssl_jax.evaluation import probe
from ssl_jax.training import step as step_lib
from tests import helpers


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
  """A folder dataset of 16 px PNGs with one undecodable train file."""
  root = helpers.make_folder(
      tmp_path_factory.mktemp('scale') / 'data',
      splits=(('train', 3, 12), ('test', 3, 6)),
      size=16,
      fmt='PNG',
  )
  with open(os.path.join(root, 'train', 'class_1', 'bad.png'), 'wb') as f:
    f.write(b'not a png')
  return root


def _load(root, split, cache):
  return input_pipeline.load_split(
      'folder', split, data_dir=root, cache=cache, bad_images='skip'
  )


@pytest.fixture(scope='module')
def encoder():
  config = helpers.tiny_config()
  model = methods.get('simclr').build_model(config, 3)
  params, batch_stats = methods.get('simclr').init(
      jax.random.key(0), config, np.zeros((1, 16, 16, 3), np.float32), model
  )
  return model, {'params': params, 'batch_stats': batch_stats}


def _extract(encoder, split, mesh=None, dtype='float32', batch_size=16):
  model, variables = encoder
  return features.extract(
      model,
      variables,
      split,
      image_size=16,
      batch_size=batch_size,
      mesh=mesh or step_lib.make_mesh(),
      dtype=dtype,
  )


def test_streamed_features_equal_cached(folder, encoder):
  cached = _extract(encoder, _load(folder, 'train', True))
  streamed_split = _load(folder, 'train', False)
  assert streamed_split.images is None
  streamed = _extract(encoder, streamed_split)
  assert len(streamed.labels) == 36  # The bad file is dropped, not replaced.
  assert streamed_split.num_skipped == 1
  np.testing.assert_array_equal(cached.labels, streamed.labels)
  np.testing.assert_array_equal(cached.features, streamed.features)
  # The indices name the records each row came from.
  again = streamed_split.read(streamed.indices[[0, 20, 35]])
  np.testing.assert_array_equal(again['label'], streamed.labels[[0, 20, 35]])


def test_bfloat16_features_are_close(folder, encoder):
  split = _load(folder, 'test', True)
  f32 = _extract(encoder, split).features
  bf16 = _extract(encoder, split, dtype='bfloat16').features
  assert bf16.dtype == np.dtype(jax.numpy.bfloat16)
  assert bf16.nbytes * 2 == f32.nbytes
  np.testing.assert_allclose(
      bf16.astype(np.float32), f32, rtol=1e-2, atol=1e-2 * np.abs(f32).max()
  )
  with pytest.raises(errors.ConfigError, match='probe.feature_dtype'):
    _extract(encoder, split, dtype='float16')


def test_multi_device_extraction_equals_single_device(folder, encoder):
  assert len(jax.devices()) == 8  # conftest's fake CPU devices.
  split = _load(folder, 'train', False)
  one = _extract(
      encoder, split, step_lib.make_mesh(jax.devices()[:1]), batch_size=8
  )
  eight = _extract(
      encoder, split, step_lib.make_mesh(jax.devices()), batch_size=24
  )
  np.testing.assert_array_equal(one.indices, eight.indices)
  np.testing.assert_allclose(one.features, eight.features, rtol=1e-5, atol=1e-6)


def _knn_reference(bank, bank_y, queries, num_classes, k, temperature):
  unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  sim = unit(queries.astype(np.float64)) @ unit(bank.astype(np.float64)).T
  top = np.argsort(-sim, axis=1)[:, :k]
  scores = np.zeros((len(queries), num_classes))
  for q in range(len(queries)):
    for j in top[q]:
      scores[q, bank_y[j]] += np.exp(sim[q, j] / temperature)
  return top, scores


def test_chunked_knn_equals_unchunked_and_numpy():
  rng = np.random.default_rng(0)
  bank = rng.normal(size=(203, 12)).astype(np.float32)
  bank_y = rng.integers(0, 5, 203)
  queries = rng.normal(size=(37, 12)).astype(np.float32)
  top, want = _knn_reference(bank, bank_y, queries, 5, 9, 0.1)
  whole = knn.knn_scores(bank, bank_y, queries, num_classes=5, k=9)
  chunked = knn.knn_scores(
      bank, bank_y, queries, num_classes=5, k=9, chunk=8, bank_chunk=16
  )
  np.testing.assert_allclose(chunked, whole, rtol=1e-5)
  np.testing.assert_allclose(chunked, want, rtol=1e-4)
  _, idx = knn.nearest(queries, bank, 9, query_chunk=5, bank_chunk=7)
  np.testing.assert_array_equal(idx, top)


def _probe_config(**overrides):
  cfg = dict(
      l2_grid=(1e-4, 1e-2),
      val_fraction=0.2,
      max_iters=200,
      solver='auto',
      batch_size=32,
      epochs=30,
      sgd_lr=0.1,
      momentum=0.9,
  )
  return ml_collections.ConfigDict(dict(cfg, **overrides))


def _blobs(n=400, dim=6, classes=3, seed=0):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, classes, n)
  x = rng.normal(size=(classes, dim))[y] * 3 + rng.normal(size=(n, dim))
  return x.astype(np.float32), y


def test_sgd_probe_is_close_to_lbfgs():
  x, y = _blobs()
  run = lambda solver, xs: probe.linear_probe(
      xs[:300],
      y[:300],
      xs[300:],
      y[300:],
      num_classes=3,
      config=_probe_config(solver=solver),
      seed=0,
  )
  lbfgs, sgd = run('lbfgs', x), run('sgd', x)
  assert (lbfgs['linear_probe/solver'], sgd['linear_probe/solver']) == (
      'lbfgs',
      'sgd',
  )
  assert lbfgs['linear_probe/test_accuracy'] > 0.9
  assert (
      abs(
          sgd['linear_probe/test_accuracy']
          - lbfgs['linear_probe/test_accuracy']
      )
      <= 0.03
  )
  # bfloat16 features go through the same SGD path.
  half = run('sgd', x.astype(jax.numpy.bfloat16))
  assert half['linear_probe/test_accuracy'] > 0.9


def test_auto_solver_follows_the_memory_budget():
  config = helpers.tiny_config()
  cfg = config.probe
  # Default budget (half of RAM): CIFAR-10 at 512-d keeps today's L-BFGS.
  budget = memory.budget_bytes(config.data.memory_budget_gb)
  assert probe.choose_solver(cfg, 50000, 512, 10, budget) == 'lbfgs'
  need = probe.lbfgs_bytes(50000, 512, 10)
  assert probe.choose_solver(cfg, 50000, 512, 10, need - 1) == 'sgd'
  config.data.memory_budget_gb = need / 2**30
  assert memory.budget_bytes(config.data.memory_budget_gb) == pytest.approx(
      need, abs=1
  )
  x, y = _blobs(n=200)
  small = probe.lbfgs_bytes(160, 6, 3)
  for budget, want in ((small, 'lbfgs'), (small - 1, 'sgd')):
    results = probe.linear_probe(
        x[:160],
        y[:160],
        x[160:],
        y[160:],
        num_classes=3,
        config=_probe_config(epochs=5),
        seed=0,
        budget_bytes=budget,
    )
    assert results['linear_probe/solver'] == want


def test_probe_config_errors_are_one_line():
  for field, value in (
      ('solver', 'adam'),
      ('protocol', 'finetune'),
      ('epochs', 0),
      ('momentum', 1.0),
  ):
    cfg = helpers.tiny_config().probe
    cfg[field] = value
    with pytest.raises(errors.ConfigError, match=f'probe.{field}=') as e:
      probe.check_config(cfg)
    assert '\n' not in str(e.value)


def test_augmented_protocol_trains_and_leaves_encoder_identical(
    folder, encoder
):
  model, variables = encoder
  snapshot = jax.tree.map(np.array, variables)
  config = helpers.tiny_config()
  config.probe.epochs, config.probe.batch_size = 2, 16
  results = augmented.linear_eval(
      model,
      variables,
      train_split=_load(folder, 'train', False),
      test_split=_load(folder, 'test', True),
      config=config,
      mesh=step_lib.make_mesh(),
      num_classes=3,
  )
  assert results['linear_probe/protocol'] == 'augmented'
  assert 0 <= results['linear_probe/test_accuracy'] <= 1
  assert np.isfinite(results['linear_probe/train_loss'])
  jax.tree.map(np.testing.assert_array_equal, snapshot, variables)


@pytest.mark.slow
def test_context_figures_equal_for_streamed_and_cached_splits(
    folder, encoder, tmp_path
):
  model, variables = encoder
  config = helpers.tiny_config()
  config.dataset, config.data_dir = 'folder', folder
  config.data.bad_images = 'skip'
  config.probe.random_init = False
  config.evals.knn.k = 5
  config.evals.pictures.tsne_points = 30
  config.evals.pictures.queries = 3
  config.evals.pictures.neighbours = 4
  figures = []
  for cache in (True, False):
    ctx = context_lib.Context(
        config=config,
        workdir=str(tmp_path / str(cache)),
        model=model,
        variables=variables,
        mesh=step_lib.make_mesh(),
        load=lambda split, cache, c=cache: _load(folder, split, c),
        restore=lambda step: variables,
    )
    results = evaluators.run(
        ctx, ['linear_probe', 'knn', 'embedding', 'pictures']
    )
    assert (ctx.probe_train.images is None) == (not cache)
    assert results['pictures/count'] >= 3
    figures.append(
        {k: v for k, v in results.items() if not k.startswith('pictures/')}
    )
  assert figures[0].keys() == figures[1].keys()
  for k, v in figures[0].items():
    if not isinstance(v, str):  # The solver's name.
      v = pytest.approx(v, rel=1e-5, abs=1e-6)
    assert figures[1][k] == v, k
