"""The linear probe: frozen encoder, choices on validation only."""

import jax
import ml_collections
import numpy as np
import pytest

from ssl_jax import methods
from ssl_jax.data import input_pipeline
from ssl_jax.evaluation import probe
from ssl_jax.training import step as step_lib
from tests import helpers


def _probe_config():
  return ml_collections.ConfigDict(
      dict(l2_grid=(1e-4, 1e-1), val_fraction=0.2, max_iters=100)
  )


def test_probe_learns_separable_features_and_reports_metrics():
  rng = np.random.default_rng(0)
  centers = rng.normal(size=(3, 5)) * 3
  y = rng.integers(0, 3, 300)
  x = centers[y] + rng.normal(size=(300, 5))
  results = probe.linear_probe(
      x[:200],
      y[:200],
      x[200:],
      y[200:],
      num_classes=3,
      config=_probe_config(),
      seed=0,
  )
  assert results['linear_probe/test_accuracy'] > 0.9
  assert results['linear_probe/l2'] in (1e-4, 1e-1)
  for k in (
      'test_top5_accuracy',
      'test_precision/macro_avg',
      'test_recall/0',
      'test_f1/2',
      'val_accuracy/l2=0.0001',
  ):
    assert 'linear_probe/' + k in results


def test_probe_never_sees_test_labels():
  """Shuffling the test labels changes the test figures but not the choice."""
  rng = np.random.default_rng(1)
  x, y = rng.normal(size=(200, 4)), rng.integers(0, 2, 200)
  x[:, 0] += 2 * y
  a = probe.linear_probe(
      x[:150],
      y[:150],
      x[150:],
      y[150:],
      num_classes=2,
      config=_probe_config(),
      seed=0,
  )
  b = probe.linear_probe(
      x[:150],
      y[:150],
      x[150:],
      rng.permutation(y[150:]),
      num_classes=2,
      config=_probe_config(),
      seed=0,
  )
  assert a['linear_probe/l2'] == b['linear_probe/l2']
  assert a['linear_probe/val_accuracy'] == b['linear_probe/val_accuracy']


@pytest.mark.slow
def test_probe_leaves_encoder_bit_identical():
  config = helpers.tiny_config()
  mesh = step_lib.make_mesh()
  model = methods.get('simclr').build_model(config, 10)
  params, batch_stats = methods.get('simclr').init(
      jax.random.key(0), config, np.zeros((1, 16, 16, 3), np.float32), model
  )
  variables = {'params': params, 'batch_stats': batch_stats}
  snapshot = jax.tree.map(np.array, variables)
  rng = np.random.default_rng(0)
  make = lambda n: input_pipeline.Split(
      's',
      [],
      rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8),
      rng.integers(0, 10, n).astype(np.int32),
  )
  train_split, test_split = make(40), make(24)
  results = probe.probe_encoder(
      model,
      variables,
      train_split=train_split,
      test_split=test_split,
      config=config,
      mesh=mesh,
      num_classes=10,
  )
  assert 0.0 <= results['linear_probe/test_accuracy'] <= 1.0
  for before, after in zip(
      jax.tree.leaves(snapshot), jax.tree.leaves(variables)
  ):
    assert np.array_equal(before, np.asarray(after))
  f1 = probe.extract_features(
      model,
      variables,
      test_split.images,
      image_size=16,
      batch_size=32,
      mesh=mesh,
  )
  f2 = probe.extract_features(
      model,
      variables,
      test_split.images,
      image_size=16,
      batch_size=8,
      mesh=mesh,
  )
  assert f1.shape == (24, 8)
  np.testing.assert_allclose(f1, f2, rtol=1e-5, atol=1e-6)
