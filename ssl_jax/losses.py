"""Self-supervised losses as pure, importable JAX functions.

Every loss takes per-device arrays. With ``axis_name=None`` the inputs are the
whole batch (under ``jax.jit`` a sharded global array is the whole batch). With
``axis_name`` set, the function must run inside ``shard_map``/``pmap`` over that
axis: it gathers what it needs from the other devices and returns the loss of
this device's anchors. The gradient of the global-batch loss is then:

* under ``pmap`` or ``shard_map(..., check_vma=False)``: the gradient of the
  local value, averaged over devices with ``lax.pmean``; never the gradient of
  a ``psum`` of it;
* under ``shard_map`` with its default ``check_vma=True``: the gradient of
  ``lax.pmean(local_value, axis)``. There JAX already sums the cotangents of
  replicated parameters over devices, so a ``pmean`` of local gradients would
  be ``axis_size`` times too large.

Both are tested against one device on the global batch.
"""

from typing import Optional

import jax
import jax.numpy as jnp

_MASK_VALUE = -1e9  # Finite rather than -inf so masked logits never create NaN.


def _l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  x = x.astype(jnp.float32)
  return x * jax.lax.rsqrt(
      jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), eps)
  )


def _check_pair(name: str, z_a: jax.Array, z_b: jax.Array) -> None:
  if z_a.shape != z_b.shape or z_a.ndim != 2:
    raise ValueError(
        f'{name} expects two [N, D] arrays of equal shape, got '
        f'{z_a.shape} and {z_b.shape}.'
    )


def _nt_xent_logits(z_a, z_b, temperature, axis_name):
  """Returns masked logits [2n, 2N] and the column of each row's positive."""
  _check_pair('nt_xent', z_a, z_b)
  if temperature <= 0:
    raise ValueError(f'temperature must be > 0, got {temperature}.')
  z_a, z_b = _l2_normalize(z_a), _l2_normalize(z_b)
  n = z_a.shape[0]
  if axis_name is None:
    all_a, all_b, offset = z_a, z_b, 0
  else:
    all_a = jax.lax.all_gather(z_a, axis_name, tiled=True)
    all_b = jax.lax.all_gather(z_b, axis_name, tiled=True)
    offset = jax.lax.axis_index(axis_name) * n
  big_n = all_a.shape[0]
  anchors = jnp.concatenate([z_a, z_b], axis=0)
  candidates = jnp.concatenate([all_a, all_b], axis=0)
  logits = (
      jnp.matmul(anchors, candidates.T, precision=jax.lax.Precision.HIGHEST)
      / temperature
  )
  rows = jnp.arange(n) + offset
  self_col = jnp.concatenate([rows, rows + big_n])
  pos_col = jnp.concatenate([rows + big_n, rows])
  cols = jnp.arange(2 * big_n)
  logits = jnp.where(cols[None, :] == self_col[:, None], _MASK_VALUE, logits)
  return logits, pos_col


def nt_xent_and_accuracy(
    z_a: jax.Array,
    z_b: jax.Array,
    temperature: float = 0.1,
    axis_name: Optional[str] = None,
) -> tuple[jax.Array, jax.Array]:
  """SimCLR's NT-Xent loss and its contrastive top-1 accuracy.

  Args:
    z_a: [N, D] embeddings of the first views (any float dtype).
    z_b: [N, D] embeddings of the second views; row i of ``z_b`` is the
      positive of row i of ``z_a``.
    temperature: softmax temperature, > 0.
    axis_name: if set, the device axis inside ``shard_map``/``pmap``; the
      negatives of each local anchor then come from every device.

  Returns:
    ``(loss, accuracy)``: float32 scalars, the means over the 2N anchors (the
    local 2n anchors when ``axis_name`` is set). Each anchor's softmax runs
    over the other 2N - 1 embeddings (itself excluded); accuracy is the
    fraction of anchors whose positive has the highest similarity.
  """
  logits, pos_col = _nt_xent_logits(z_a, z_b, temperature, axis_name)
  pos_logit = jnp.take_along_axis(logits, pos_col[:, None], axis=1)[:, 0]
  loss = jnp.mean(jax.nn.logsumexp(logits, axis=1) - pos_logit)
  accuracy = jnp.mean(
      (jnp.argmax(logits, axis=1) == pos_col).astype(jnp.float32)
  )
  return loss, accuracy


def nt_xent(
    z_a: jax.Array,
    z_b: jax.Array,
    temperature: float = 0.1,
    axis_name: Optional[str] = None,
) -> jax.Array:
  """SimCLR's normalised temperature-scaled cross-entropy (NT-Xent) loss.

  Embeddings are L2-normalised in float32 inside, so the similarities are
  cosine similarities even for bfloat16 inputs.

  Args:
    z_a: [N, D] embeddings of the first views.
    z_b: [N, D] embeddings of the second views; row i of ``z_b`` is the
      positive of row i of ``z_a``.
    temperature: softmax temperature, > 0.
    axis_name: if set, the device axis inside ``shard_map``/``pmap``; the
      negatives then come from every device and the result is the mean over
      this device's anchors (``lax.pmean`` it for the global loss).

  Returns:
    The float32 scalar mean of the loss over all 2N anchors.
  """
  return nt_xent_and_accuracy(z_a, z_b, temperature, axis_name)[0]


def barlow_twins(
    z_a: jax.Array,
    z_b: jax.Array,
    lambd: float = 0.0051,
    axis_name: Optional[str] = None,
) -> jax.Array:
  """Barlow Twins' redundancy-reduction loss (Zbontar et al., 2021).

  Each embedding dimension is standardised with the global batch mean and
  biased standard deviation (BatchNorm without affine), the cross-correlation
  is ``C = z_a_n^T z_b_n / N_global``, and the loss is
  ``sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2``.

  Args:
    z_a: [N, D] embeddings of the first views.
    z_b: [N, D] embeddings of the second views.
    lambd: weight of the off-diagonal (redundancy) term.
    axis_name: if set, the device axis inside ``shard_map``/``pmap``: the
      statistics and the cross-correlation are summed over all devices, and
      every device returns the same global loss (see the module docstring
      for how to differentiate it).

  Returns:
    The float32 scalar loss.
  """
  _check_pair('barlow_twins', z_a, z_b)
  z_a, z_b = z_a.astype(jnp.float32), z_b.astype(jnp.float32)
  reduce = (
      (lambda x: x)
      if axis_name is None
      else (lambda x: jax.lax.psum(x, axis_name))
  )
  n = reduce(jnp.asarray(z_a.shape[0], jnp.float32))

  def standardise(z):
    mean = reduce(z.sum(0)) / n
    var = reduce(((z - mean) ** 2).sum(0)) / n
    return (z - mean) * jax.lax.rsqrt(var + 1e-5)

  c = (
      reduce(
          jnp.matmul(
              standardise(z_a).T,
              standardise(z_b),
              precision=jax.lax.Precision.HIGHEST,
          )
      )
      / n
  )
  on_diag = jnp.sum((1.0 - jnp.diagonal(c)) ** 2)
  off_diag = jnp.sum(c**2) - jnp.sum(jnp.diagonal(c) ** 2)
  return on_diag + lambd * off_diag
