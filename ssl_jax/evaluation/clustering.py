"""Clustering for DeepCluster: PCA whitening, k-means in JAX, uniform sampling.

k-means runs in JAX (jit, on whatever device holds the features) rather than
scikit-learn: each Lloyd iteration is one [N, k] matmul, which is fast on an
accelerator, and DeepCluster's empty-cluster rule (re-seed from a perturbed
non-empty centroid) is explicit here, whereas scikit-learn relocates empty
clusters by its own rule. PCA uses scikit-learn (one SVD per epoch, host).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from sklearn import decomposition


def pca_whiten_normalize(
    features: np.ndarray, dim: int, seed: int = 0
) -> np.ndarray:
  """PCA to ``dim`` whitened components, then L2 normalisation of each row.

  Args:
    features: float [N, D].
    dim: output dimensions (capped at min(N, D)).
    seed: seeds the randomised SVD solver where scikit-learn picks it.

  Returns:
    float32 [N, min(dim, N, D)] with unit rows.
  """
  dim = min(dim, *features.shape)
  pca = decomposition.PCA(dim, random_state=seed)
  x = pca.fit_transform(features.astype(np.float32))
  # Whitening; the floor keeps (near-)constant directions from blowing up.
  var = pca.explained_variance_
  x = x / np.sqrt(var + 1e-6 * max(var.max(), 1e-12))
  return (x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-8)).astype(
      np.float32
  )


def _assign(x, centroids):
  # argmin |x - c|^2 = argmax (x.c - |c|^2 / 2).
  scores = x @ centroids.T - 0.5 * jnp.sum(centroids**2, axis=1)
  return jnp.argmax(scores, axis=1)


def _update(x, assignments, centroids):
  k = centroids.shape[0]
  one_hot = jax.nn.one_hot(assignments, k, dtype=x.dtype)
  counts = one_hot.sum(0)
  sums = one_hot.T @ x
  # Empty clusters keep their centroid until re-seeded.
  new = jnp.where(
      counts[:, None] > 0, sums / jnp.maximum(counts, 1)[:, None], centroids
  )
  return new, counts


def reseed_empty(
    key: jax.Array,
    x: jax.Array,
    assignments: jax.Array,
    centroids: jax.Array,
    perturbation: float = 0.5,
):
  """Re-seeds every empty cluster from a perturbed non-empty centroid.

  For each empty cluster e, in turn: a donor cluster d holding at least two
  points is drawn with probability proportional to its size, and one of its
  points p at random. The two centroids are pushed apart along p - c_d:
  ``c_e = c_d + perturbation (p - c_d)``, ``c_d -= perturbation (p - c_d)``,
  and p moves to e. p is then strictly nearer c_e than any other centroid
  was, so e is no longer empty, and d keeps at least one point.

  Args:
    key: PRNG key.
    x: [N, D] points.
    assignments: [N] int cluster of each point.
    centroids: [k, D].
    perturbation: how far along p - c_d the new centroid is placed.

  Returns:
    ``(assignments, centroids, num_reseeded)``.
  """
  k = centroids.shape[0]

  def body(e, carry):
    assignments, centroids, count = carry
    sizes = jnp.bincount(assignments, length=k)
    is_empty = sizes[e] == 0
    key_d, key_p = jax.random.split(jax.random.fold_in(key, e))
    donor_weight = jnp.where(sizes > 1, sizes, 0).astype(jnp.float32)
    can = is_empty & (donor_weight.sum() > 0)
    d = jax.random.categorical(key_d, jnp.log(jnp.maximum(donor_weight, 1e-30)))
    member = assignments == d
    p = jax.random.categorical(key_p, jnp.where(member, 0.0, -jnp.inf))
    step = perturbation * (x[p] - centroids[d])
    centroids = jnp.where(
        can,
        centroids.at[e].set(centroids[d] + step).at[d].add(-step),
        centroids,
    )
    assignments = jnp.where(can, assignments.at[p].set(e), assignments)
    return assignments, centroids, count + can.astype(jnp.int32)

  return jax.lax.fori_loop(0, k, body, (assignments, centroids, jnp.int32(0)))


def kmeans_plus_plus(key: jax.Array, x: jax.Array, k: int) -> jax.Array:
  """k-means++ seeding: each new centroid is a point drawn with prob. ~ D^2.

  Args:
    key: PRNG key.
    x: [N, D] points.
    k: number of centroids.

  Returns:
    [k, D] initial centroids.
  """
  first_key, key = jax.random.split(key)
  first = x[jax.random.randint(first_key, (), 0, x.shape[0])]
  centroids = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(first)
  d2 = jnp.sum((x - first) ** 2, axis=1)

  def body(i, carry):
    centroids, d2 = carry
    # All-zero distances (duplicates only) fall back to a uniform draw.
    logits = jnp.where(d2.sum() > 0, jnp.log(jnp.maximum(d2, 1e-30)), 0.0)
    c = x[jax.random.categorical(jax.random.fold_in(key, i), logits)]
    return centroids.at[i].set(c), jnp.minimum(
        d2, jnp.sum((x - c) ** 2, axis=1)
    )

  return jax.lax.fori_loop(1, k, body, (centroids, d2))[0]


@functools.partial(jax.jit, static_argnames=('k', 'num_iters'))
def kmeans(
    key: jax.Array,
    x: jax.Array,
    k: int,
    num_iters: int = 30,
    init_centroids=None,
):
  """Lloyd's k-means with DeepCluster's empty-cluster re-seeding.

  Centroids start from k-means++ seeding (or ``init_centroids``). Each
  iteration assigns, re-seeds empty clusters (:func:`reseed_empty`) and
  recomputes the means; the returned assignments come from the last
  assignment after re-seeding, so every cluster holds at least one point
  whenever ``N >= k``.

  Args:
    key: PRNG key (initial centroids and re-seeding).
    x: float [N, D] points.
    k: number of clusters.
    num_iters: Lloyd iterations (at least 1).
    init_centroids: optional [k, D] starting centroids.

  Returns:
    ``(assignments int32 [N], centroids [k, D], total re-seedings)``.
  """
  init_key, key = jax.random.split(key)
  if init_centroids is None:
    init_centroids = kmeans_plus_plus(init_key, x, k)

  def body(i, carry):
    _, centroids, reseeded = carry
    assignments = _assign(x, centroids)
    assignments, centroids, n = reseed_empty(
        jax.random.fold_in(key, i), x, assignments, centroids
    )
    centroids, _ = _update(x, assignments, centroids)
    return assignments.astype(jnp.int32), centroids, reseeded + n

  start = (
      jnp.zeros(x.shape[0], jnp.int32),
      init_centroids.astype(x.dtype),
      jnp.int32(0),
  )
  return jax.lax.fori_loop(0, max(1, num_iters), body, start)


def uniform_cluster_indices(
    assignments: np.ndarray, num_samples: int, seed
) -> np.ndarray:
  """Indices that sample the non-empty clusters uniformly (DeepCluster).

  Each non-empty cluster contributes ``ceil(num_samples / nonempty)`` indices
  of its members (with replacement only where it is smaller than that); the
  result is shuffled and cut to ``num_samples``.

  Args:
    assignments: [N] cluster of each example.
    num_samples: how many indices to return.
    seed: anything ``np.random.default_rng`` accepts.

  Returns:
    int64 [num_samples].
  """
  rng = np.random.default_rng(seed)
  clusters = np.unique(assignments)
  per = -(-num_samples // len(clusters))
  out = []
  for c in clusters:
    members = np.flatnonzero(assignments == c)
    out.append(rng.choice(members, per, replace=len(members) < per))
  return rng.permutation(np.concatenate(out))[:num_samples]
