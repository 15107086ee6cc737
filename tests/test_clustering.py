"""k-means with empty-cluster re-seeding, PCA whitening, uniform cluster sampling."""

import jax
import jax.numpy as jnp
import numpy as np
from sklearn import cluster as skcluster
from sklearn import metrics as skmetrics

from ssl_jax.evaluation import clustering


def _blobs(n_per=20, k=4, dim=5, seed=0):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(k, dim)) * 10
  x = np.concatenate([c + rng.normal(size=(n_per, dim)) for c in centres])
  return x.astype(np.float32), np.repeat(np.arange(k), n_per)


def test_forced_empty_cluster_is_reseeded_and_all_clusters_nonempty():
  x, _ = _blobs()
  k = 6
  # Centroid 5 sits far from every point, so its first assignment is empty;
  # centroid 4 duplicates centroid 0, which also leaves one of them empty.
  init = np.concatenate(
      [x[[0, 20, 40, 60, 0]], np.full((1, 5), 1e3, np.float32)]
  )
  assignments, centroids, reseeded = clustering.kmeans(
      jax.random.key(0), jnp.asarray(x), k, num_iters=1, init_centroids=init
  )
  assert int(reseeded) >= 2
  assert np.all(np.bincount(np.asarray(assignments), minlength=k) > 0)
  assert np.all(np.isfinite(np.asarray(centroids)))
  assignments, _, _ = clustering.kmeans(
      jax.random.key(0), jnp.asarray(x), k, num_iters=10, init_centroids=init
  )
  assert np.all(np.bincount(np.asarray(assignments), minlength=k) > 0)


def test_reseed_leaves_full_assignments_alone():
  x, labels = _blobs()
  centroids = jnp.asarray(np.stack([x[labels == c].mean(0) for c in range(4)]))
  a, c, n = clustering.reseed_empty(
      jax.random.key(1),
      jnp.asarray(x),
      jnp.asarray(labels, jnp.int32),
      centroids,
  )
  assert int(n) == 0
  np.testing.assert_array_equal(a, labels)
  np.testing.assert_array_equal(c, centroids)


def test_kmeans_matches_sklearn_lloyd_from_the_same_start():
  x, labels = _blobs(n_per=50, k=5)
  for seed in range(3):
    init = x[np.random.default_rng(seed).choice(len(x), 5, replace=False)]
    ours, centroids, _ = clustering.kmeans(
        jax.random.key(seed),
        jnp.asarray(x),
        5,
        num_iters=30,
        init_centroids=init,
    )
    theirs = skcluster.KMeans(
        5, init=init, n_init=1, algorithm='lloyd', max_iter=30, tol=0
    ).fit(x)
    assert (
        skmetrics.adjusted_rand_score(theirs.labels_, np.asarray(ours)) == 1.0
    )
    np.testing.assert_allclose(
        np.sort(np.asarray(centroids), axis=0),
        np.sort(theirs.cluster_centers_, axis=0),
        rtol=1e-4,
        atol=1e-4,
    )
  # With k-means++ seeding it finds well-separated blobs.
  found = [
      skmetrics.adjusted_rand_score(
          labels,
          np.asarray(
              clustering.kmeans(
                  jax.random.key(s), jnp.asarray(x), 5, num_iters=30
              )[0]
          ),
      )
      for s in range(5)
  ]
  assert min(found) == 1.0


def test_pca_whiten_normalize_gives_unit_rows():
  x = np.random.default_rng(0).normal(size=(100, 20)) * np.arange(1, 21)
  out = clustering.pca_whiten_normalize(x, 8)
  assert out.shape == (100, 8) and out.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
  assert clustering.pca_whiten_normalize(x[:5], 8).shape == (5, 5)


def test_uniform_cluster_indices_balance_clusters():
  assignments = np.array([0] * 90 + [1] * 9 + [3] * 1)  # Cluster 2 is empty.
  idx = clustering.uniform_cluster_indices(assignments, 300, [0, 1])
  assert idx.shape == (300,)
  np.testing.assert_array_equal(
      np.bincount(assignments[idx]), [100, 100, 0, 100]
  )
  np.testing.assert_array_equal(
      idx, clustering.uniform_cluster_indices(assignments, 300, [0, 1])
  )
  assert not np.array_equal(
      idx, clustering.uniform_cluster_indices(assignments, 300, [0, 2])
  )
