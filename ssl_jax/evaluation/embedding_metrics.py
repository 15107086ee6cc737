"""Cluster-quality metrics of an embedding against the true labels.

Silhouette and Dunn index need all pairwise distances; they are computed in
JAX a chunk of rows at a time against all N points, so that N = 10,000+
never holds an N x N matrix in memory. Each chunk is one jitted call; the
last chunk is padded so that one compilation serves every chunk. The
k-means agreement reuses :func:`ssl_jax.evaluation.clustering.kmeans`.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from sklearn import metrics as skmetrics

from ssl_jax.evaluation import clustering


def _distances(xc, x):
  """Euclidean distances [c, N] in float32 via |x|^2 + |y|^2 - 2 x.y."""
  d2 = (
      jnp.sum(xc**2, axis=1)[:, None]
      + jnp.sum(x**2, axis=1)[None, :]
      - 2.0 * xc @ x.T
  )
  return jnp.sqrt(jnp.maximum(d2, 0.0))


def _self_mask(start, chunk, n):
  """[chunk, n] True where the row's global index equals the column."""
  rows = start + jnp.arange(chunk)
  return rows[:, None] == jnp.arange(n)[None, :]


@functools.partial(jax.jit, static_argnames=('num_clusters',))
def _silhouette_chunk(start, xc, lc, x, labels, *, num_clusters):
  """Silhouette values of the ``chunk`` rows ``xc`` (labels ``lc``)."""
  # The formula leaves ~sqrt(eps)|x| instead of 0 on the diagonal.
  d = jnp.where(
      _self_mask(start, xc.shape[0], x.shape[0]), 0.0, _distances(xc, x)
  )
  one_hot = jax.nn.one_hot(labels, num_clusters, dtype=d.dtype)
  sums = d @ one_hot  # [chunk, K]: total distance to each cluster.
  counts = one_hot.sum(0)
  own = jax.nn.one_hot(lc, num_clusters, dtype=jnp.bool_)
  own_count = counts[lc]
  a = jnp.sum(jnp.where(own, sums, 0.0), axis=1) / jnp.maximum(own_count - 1, 1)
  mean_other = jnp.where(
      own | (counts == 0)[None, :], jnp.inf, sums / jnp.maximum(counts, 1)
  )
  b = jnp.min(mean_other, axis=1)
  denom = jnp.maximum(a, b)
  # sklearn: 0 for singletons, and 0/0 (duplicate points) becomes 0.
  s = jnp.where(denom > 0, (b - a) / jnp.where(denom > 0, denom, 1.0), 0.0)
  return jnp.where(own_count > 1, s, 0.0)


@jax.jit
def _dunn_chunk(start, xc, lc, valid, x, labels):
  """(min inter-cluster, max intra-cluster) distance of the chunk's rows."""
  d = _distances(xc, x)
  same = lc[:, None] == labels[None, :]
  other_pair = ~_self_mask(start, xc.shape[0], x.shape[0]) & valid[:, None]
  inter = jnp.min(jnp.where(~same & other_pair, d, jnp.inf))
  intra = jnp.max(jnp.where(same & other_pair, d, 0.0))
  return inter, intra


def _centre(x):
  """float32 rows minus their mean.

  Distances do not change, and the |x|^2 + |y|^2 - 2 x.y formula loses less
  to cancellation near the origin.
  """
  x = np.asarray(x, np.float32)
  return x - x.mean(0, keepdims=True)


def _chunks(x, labels, chunk):
  """Yields (start, padded rows, padded labels, validity mask) per chunk."""
  n = x.shape[0]
  chunk = max(1, min(chunk, n))
  pad = -n % chunk
  xp = np.concatenate([x, np.zeros((pad, x.shape[1]), np.float32)])
  lp = np.concatenate([labels, np.zeros(pad, labels.dtype)])
  valid = np.arange(n + pad) < n
  for start in range(0, n, chunk):
    sl = slice(start, start + chunk)
    yield (
        np.int32(start),
        jnp.asarray(xp[sl]),
        jnp.asarray(lp[sl]),
        jnp.asarray(valid[sl]),
    )


def _dense_labels(labels):
  """Labels mapped to 0..K-1 (int32) and K."""
  uniques, dense = np.unique(np.asarray(labels), return_inverse=True)
  return dense.reshape(-1).astype(np.int32), len(uniques)


def silhouette(x: np.ndarray, labels: np.ndarray, chunk: int = 1024) -> float:
  """Mean silhouette coefficient, Euclidean distance (as scikit-learn's).

  For each point, a is its mean distance to the other members of its
  cluster, b the smallest mean distance to the members of another cluster,
  and s = (b - a) / max(a, b), with s = 0 for a point alone in its cluster.

  Args:
    x: float [N, D] points.
    labels: [N] cluster (class) of each point; 2 <= #clusters <= N - 1.
    chunk: rows processed per jitted call (memory ~ chunk x N floats).

  Returns:
    The mean of s over all points.
  """
  dense, k = _dense_labels(labels)
  if not 2 <= k <= len(dense) - 1:
    raise ValueError(
        f'silhouette needs 2 <= #labels <= N - 1, got {k} '
        f'labels for N = {len(dense)}.'
    )
  x = _centre(x)
  x_all, l_all = jnp.asarray(x), jnp.asarray(dense)
  values = []
  for start, xc, lc, valid in _chunks(x, dense, chunk):
    s = _silhouette_chunk(start, xc, lc, x_all, l_all, num_clusters=k)
    values.append(np.asarray(s)[np.asarray(valid)])
  return float(np.concatenate(values).astype(np.float64).mean())


def dunn_index(x: np.ndarray, labels: np.ndarray, chunk: int = 1024) -> float:
  """Dunn index: smallest inter-cluster over largest intra-cluster distance.

  Point-to-point (single-linkage) form: the numerator is the smallest
  distance between two points of different clusters, the denominator the
  largest distance between two points of the same cluster.

  Args:
    x: float [N, D] points.
    labels: [N] cluster (class) of each point; at least 2 clusters.
    chunk: rows processed per jitted call (memory ~ chunk x N floats).

  Returns:
    The index (``inf`` where every cluster is a single point).
  """
  dense, k = _dense_labels(labels)
  if k < 2:
    raise ValueError('dunn_index needs at least 2 distinct labels.')
  x = _centre(x)
  x_all, l_all = jnp.asarray(x), jnp.asarray(dense)
  inter, intra = np.inf, 0.0
  for start, xc, lc, valid in _chunks(x, dense, chunk):
    i, a = _dunn_chunk(start, xc, lc, valid, x_all, l_all)
    inter, intra = min(inter, float(i)), max(intra, float(a))
  return inter / intra if intra > 0 else float('inf')


def _l2_normalize(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float32)
  return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-8)


def kmeans_agreement(
    x: np.ndarray, labels: np.ndarray, num_clusters: int, seed: int = 0
) -> dict[str, float]:
  """Agreement of k-means on the L2-normalised points with the true labels.

  Args:
    x: float [N, D] points (normalised here).
    labels: [N] true class of each point.
    num_clusters: k, usually the number of classes.
    seed: seeds k-means++ and empty-cluster re-seeding.

  Returns:
    ``{'kmeans_nmi': ..., 'kmeans_ari': ...}``: normalised mutual
    information and adjusted Rand index of the clusters against ``labels``.
  """
  assignments, _, _ = clustering.kmeans(
      jax.random.key(seed), jnp.asarray(_l2_normalize(x)), num_clusters
  )
  assignments = np.asarray(assignments)
  labels = np.asarray(labels).reshape(-1)
  return {
      'kmeans_nmi': float(
          skmetrics.normalized_mutual_info_score(labels, assignments)
      ),
      'kmeans_ari': float(skmetrics.adjusted_rand_score(labels, assignments)),
  }


def embedding_metrics(
    x: np.ndarray,
    labels: np.ndarray,
    *,
    num_classes: int,
    seed: int = 0,
    max_points: int = 10000,
    prefix: str = 'embedding/',
) -> dict[str, float]:
  """Silhouette, Dunn index and k-means agreement of an embedding.

  At most ``max_points`` points (a seeded uniform subset) are used. Features
  are L2-normalised first, so every metric is measured on the unit sphere:
  the geometry that the contrastive losses use.

  Args:
    x: float [N, D] features.
    labels: [N] true class of each feature.
    num_classes: k for the k-means agreement.
    seed: seeds the subset and k-means.
    max_points: largest number of points used.
    prefix: prepended to every key.

  Returns:
    ``{prefix + name: value}`` for names ``silhouette``, ``dunn``,
    ``kmeans_nmi``, ``kmeans_ari`` and ``num_points``.
  """
  labels = np.asarray(labels).reshape(-1)
  if len(labels) > max_points:
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(labels), max_points, replace=False))
    x, labels = np.asarray(x)[idx], labels[idx]
  x = _l2_normalize(x)
  out = {
      'silhouette': silhouette(x, labels),
      'dunn': dunn_index(x, labels),
      **kmeans_agreement(x, labels, num_classes, seed=seed),
      'num_points': float(len(labels)),
  }
  return {prefix + k: v for k, v in out.items()}
