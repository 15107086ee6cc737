"""Weighted k-nearest-neighbour classification on cosine similarity.

The classifier of Wu et al. (2018), used by most self-supervised papers as a
probe with no training: each query takes its ``k`` most cosine-similar
training features, weights each by ``exp(similarity / temperature)`` and
votes for their classes. Written in JAX rather than scikit-learn because the
similarity matrix is one matmul per chunk on whichever device holds the
features, where sklearn's brute-force search is CPU-only and unweighted by
temperature.

Neither the bank nor the similarity matrix has to fit on a device: the bank
goes to the device one chunk at a time (each chunk once), and every chunk of
queries keeps a running top-k, merged with each bank chunk's similarities by
``jax.lax.top_k`` over ``k + bank_chunk`` candidates. Device memory is then
about ``query_chunk x bank_chunk`` similarities plus two bank chunks (the next
is copied while the current one is merged), whatever the bank's size. A
search of several bank chunks that runs long logs its progress.
"""

import functools
import time

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

# A search that runs longer than this logs its progress (and its time).
_LOG_EVERY_SECONDS = 10.0


def _normalize(x):
  x = x.astype(jnp.float32)
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@functools.partial(jax.jit, donate_argnums=(0, 1))
def _merge(top_sim, top_idx, queries, bank, bank_valid, offset):
  """Running top-k of ``queries`` updated with one chunk of the bank."""
  sim = _normalize(queries) @ _normalize(bank).T
  sim = jnp.where(bank_valid[None, :], sim, -jnp.inf)
  idx = offset + jnp.arange(bank.shape[0], dtype=jnp.int32)
  sim = jnp.concatenate([top_sim, sim], axis=1)
  idx = jnp.concatenate(
      [top_idx, jnp.broadcast_to(idx, sim.shape[:1] + idx.shape)], axis=1
  )
  top_sim, pos = jax.lax.top_k(sim, top_sim.shape[1])
  return top_sim, jnp.take_along_axis(idx, pos, axis=1)


def _pad(x: np.ndarray, rows: int) -> np.ndarray:
  if len(x) == rows:
    return x
  return np.concatenate([x, np.zeros((rows - len(x),) + x.shape[1:], x.dtype)])


def nearest(
    queries: np.ndarray,
    bank: np.ndarray,
    k: int,
    *,
    query_chunk: int = 1024,
    bank_chunk: int = 65536,
) -> tuple[np.ndarray, np.ndarray]:
  """The ``k`` most cosine-similar bank rows of each query, chunked.

  Args:
    queries: [M, D] (any float dtype, bfloat16 included).
    bank: [N, D], N >= k.
    k: neighbours per query.
    query_chunk: queries per matmul.
    bank_chunk: bank rows per matmul (and on the device at a time).

  Returns:
    ``(similarities float32 [M, k], indices int32 [M, k])``, most similar
    first.
  """
  n, m = len(bank), len(queries)
  query_chunk, bank_chunk = min(query_chunk, m), min(bank_chunk, n)
  starts = range(0, m, query_chunk)
  # One compiled shape: the last chunk of each is padded (padded bank rows
  # are masked out; padded query rows are cut off at the end).
  q_chunks = [
      jnp.asarray(_pad(queries[lo : lo + query_chunk], query_chunk))
      for lo in starts
  ]
  tops = [
      (
          jnp.full((query_chunk, k), -jnp.inf, jnp.float32),
          jnp.zeros((query_chunk, k), jnp.int32),
      )
      for _ in starts
  ]

  def put(lo):
    chunk = bank[lo : lo + bank_chunk]
    valid = jnp.asarray(np.arange(bank_chunk) < len(chunk))
    return jnp.asarray(_pad(chunk, bank_chunk)), valid

  los = range(0, n, bank_chunk)
  start = last_log = time.time()
  upcoming = put(0)
  for done, lo in enumerate(los, 1):
    chunk, valid = upcoming
    tops = [
        _merge(*top, q, chunk, valid, jnp.int32(lo))
        for top, q in zip(tops, q_chunks)
    ]
    if done == len(los):
      break
    upcoming = put(los[done])  # Copied while the merges run.
    # Waiting for each chunk makes the times those of work done, not queued.
    jax.block_until_ready(tops)
    if time.time() - last_log > _LOG_EVERY_SECONDS:
      last_log = time.time()
      logging.info(
          'kNN of %d queries: %d/%d bank rows, ETA %.0fs',
          m,
          lo + bank_chunk,
          n,
          (len(los) - done) * (last_log - start) / done,
      )
  sims = np.concatenate([np.asarray(s) for s, _ in tops])[:m]
  idx = np.concatenate([np.asarray(i) for _, i in tops])[:m]
  if time.time() - start > _LOG_EVERY_SECONDS:
    logging.info(
        'kNN of %d queries over %d bank rows in %.1fs',
        m,
        n,
        time.time() - start,
    )
  return sims, idx


def knn_scores(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    *,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk: int = 1024,
    bank_chunk: int = 65536,
) -> np.ndarray:
  """Class scores of each test row from its k nearest training rows.

  Args:
    train_x: [N, D] features of the labelled bank.
    train_y: [N] int labels of the bank.
    test_x: [M, D] query features.
    num_classes: number of classes.
    k: neighbours per query (capped at N).
    temperature: softness of the similarity weights.
    chunk: queries per matmul.
    bank_chunk: bank rows per matmul; device memory is about
      ``chunk x bank_chunk`` similarities.

  Returns:
    float32 [M, num_classes] vote weights; argmax is the prediction.
  """
  k = min(k, len(train_x))
  sims, idx = nearest(
      test_x, train_x, k, query_chunk=chunk, bank_chunk=bank_chunk
  )
  weights = np.exp(sims.astype(np.float64) / temperature)
  cells = (
      np.arange(len(test_x))[:, None] * num_classes + np.asarray(train_y)[idx]
  )
  scores = np.bincount(
      cells.ravel(), weights.ravel(), minlength=len(test_x) * num_classes
  )
  return scores.reshape(len(test_x), num_classes).astype(np.float32)


def knn_accuracy(
    train_x,
    train_y,
    test_x,
    test_y,
    *,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
) -> float:
  """Top-1 accuracy of :func:`knn_scores` on labelled queries.

  Args:
    train_x: [N, D] bank features.
    train_y: [N] bank labels.
    test_x: [M, D] query features.
    test_y: [M] query labels.
    num_classes: number of classes.
    k: neighbours per query.
    temperature: softness of the similarity weights.

  Returns:
    The fraction of queries whose highest-scoring class is their label.
  """
  scores = knn_scores(
      train_x,
      train_y,
      test_x,
      num_classes=num_classes,
      k=k,
      temperature=temperature,
  )
  return float(np.mean(scores.argmax(1) == np.asarray(test_y)))
