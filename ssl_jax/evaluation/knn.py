"""Weighted k-nearest-neighbour classification on cosine similarity.

The classifier of Wu et al. (2018), used by most self-supervised papers as a
probe with no training: each query takes its ``k`` most cosine-similar
training features, weights each by ``exp(similarity / temperature)`` and
votes for their classes. Written in JAX rather than scikit-learn because the
similarity matrix is one matmul per chunk of queries on whichever device holds
the features, where sklearn's brute-force search is CPU-only and unweighted by
temperature.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np


def _normalize(x):
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@functools.partial(jax.jit, static_argnames=('k', 'num_classes'))
def _vote(queries, bank, bank_labels, temperature, *, k, num_classes):
  sim = _normalize(queries) @ _normalize(bank).T
  top_sim, top_idx = jax.lax.top_k(sim, k)
  weights = jnp.exp(top_sim / temperature)
  onehot = jax.nn.one_hot(bank_labels[top_idx], num_classes)
  return jnp.einsum('qk,qkc->qc', weights, onehot)


def knn_scores(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    *,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk: int = 1024,
) -> np.ndarray:
  """Class scores of each test row from its k nearest training rows.

  Args:
    train_x: [N, D] features of the labelled bank.
    train_y: [N] int labels of the bank.
    test_x: [M, D] query features.
    num_classes: number of classes.
    k: neighbours per query (capped at N).
    temperature: softness of the similarity weights.
    chunk: queries per matmul (bounds memory at chunk x N).

  Returns:
    float32 [M, num_classes] vote weights; argmax is the prediction.
  """
  k = min(k, len(train_x))
  bank = jnp.asarray(train_x, jnp.float32)
  bank_labels = jnp.asarray(train_y, jnp.int32)
  out = []
  for lo in range(0, len(test_x), chunk):
    queries = np.asarray(test_x[lo : lo + chunk], np.float32)
    real = len(queries)
    if (
        real < chunk and lo
    ):  # One compiled shape for every chunk but a lone one.
      queries = np.concatenate(
          [queries, np.zeros((chunk - real, queries.shape[1]), np.float32)]
      )
    out.append(
        np.asarray(
            _vote(
                queries,
                bank,
                bank_labels,
                temperature,
                k=k,
                num_classes=num_classes,
            )
        )[:real]
    )
  return np.concatenate(out)


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
