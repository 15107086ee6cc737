"""Silhouette, Dunn index and k-means agreement against reference values."""

import numpy as np
import pytest
from sklearn import metrics as skmetrics

from ssl_jax.evaluation import embedding_metrics


def _random_set(n=200, k=5, dim=8, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, dim)).astype(np.float32)
  labels = rng.integers(0, k, n)
  x += 2.0 * rng.normal(size=(k, dim)).astype(np.float32)[labels]
  return x, labels


def _blobs(n_per=30, k=4, dim=6, seed=0):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(k, dim)) * 20
  x = np.concatenate([c + rng.normal(size=(n_per, dim)) for c in centres])
  return x.astype(np.float32), np.repeat(np.arange(k), n_per)


def _naive_dunn(x, labels):
  x = x.astype(np.float64)
  inter, intra = np.inf, 0.0
  for i in range(len(x)):
    for j in range(i + 1, len(x)):
      d = np.linalg.norm(x[i] - x[j])
      if labels[i] == labels[j]:
        intra = max(intra, d)
      else:
        inter = min(inter, d)
  return inter / intra


@pytest.mark.parametrize('chunk', [1024, 64, 37])
def test_silhouette_matches_sklearn(chunk):
  x, labels = _random_set()
  got = embedding_metrics.silhouette(x, labels, chunk=chunk)
  want = skmetrics.silhouette_score(x.astype(np.float64), labels)
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_silhouette_with_singleton_cluster_and_sparse_labels():
  x, labels = _random_set(n=50, k=3, seed=1)
  labels = labels * 7  # Non-contiguous label values.
  labels[10] = 99  # A cluster of one point.
  got = embedding_metrics.silhouette(x, labels, chunk=16)
  want = skmetrics.silhouette_score(x.astype(np.float64), labels)
  np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize('chunk', [1024, 23])
def test_dunn_matches_naive_loop(chunk):
  x, labels = _random_set(n=60, k=4, seed=2)
  got = embedding_metrics.dunn_index(x, labels, chunk=chunk)
  np.testing.assert_allclose(got, _naive_dunn(x, labels), rtol=1e-4)


def test_dunn_separated_blobs_above_one():
  x, labels = _blobs()
  assert embedding_metrics.dunn_index(x, labels) > 1.0


def test_kmeans_agreement_on_separated_blobs():
  x, labels = _blobs()
  out = embedding_metrics.kmeans_agreement(x, labels, num_clusters=4)
  assert set(out) == {'kmeans_nmi', 'kmeans_ari'}
  assert out['kmeans_nmi'] > 0.99
  assert out['kmeans_ari'] > 0.99


def test_embedding_metrics_keys_and_max_points():
  x, labels = _blobs(n_per=25)
  out = embedding_metrics.embedding_metrics(
      x, labels, num_classes=4, max_points=60, prefix='eval/'
  )
  assert set(out) == {
      'eval/silhouette',
      'eval/dunn',
      'eval/kmeans_nmi',
      'eval/kmeans_ari',
      'eval/num_points',
  }
  assert out['eval/num_points'] == 60
  assert all(isinstance(v, float) and np.isfinite(v) for v in out.values())
  assert out['eval/silhouette'] > 0.5
  full = embedding_metrics.embedding_metrics(x, labels, num_classes=4)
  assert full['embedding/num_points'] == 100
