"""Self-supervised losses as pure, importable JAX functions.

SimCLR's ``nt_xent``, ``barlow_twins``, BYOL's ``byol``, ``vicreg``,
``moco_v3`` and DINO's ``dino`` (with ``dino_center``). Every loss takes
per-device arrays. With ``axis_name=None`` the inputs are the
whole batch (under ``jax.jit`` a sharded global array is the whole batch). With
``axis_name`` set, the function must run inside ``shard_map``/``pmap`` over that
axis: it gathers what it needs from the other devices and returns the loss of
this device's anchors (``nt_xent``) or, for the others, the global-batch
loss itself. The gradient of the global-batch loss is then:

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


def _summer(axis_name: Optional[str]):
  """``x -> x`` summed over the devices of ``axis_name`` (identity if None)."""
  if axis_name is None:
    return lambda x: x
  return lambda x: jax.lax.psum(x, axis_name)


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
  reduce = _summer(axis_name)
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


def _mean(x: jax.Array, axis_name: Optional[str]) -> jax.Array:
  """The mean of ``x`` over this device's rows, or over every device's."""
  local = jnp.mean(x)
  return local if axis_name is None else jax.lax.pmean(local, axis_name)


def byol(
    p: jax.Array, z: jax.Array, axis_name: Optional[str] = None
) -> jax.Array:
  """BYOL's regression loss (Grill et al., 2020), one direction.

  ``mean_i (2 - 2 cos(p_i, z_i))``: the online prediction of one view against
  the target projection of the other, with no gradient into the target. The
  symmetric loss of a pair of views is ``byol(p_a, z_b) + byol(p_b, z_a)``.

  Args:
    p: [N, D] online predictions.
    z: [N, D] target projections (a stop-gradient is applied here).
    axis_name: if set, the device axis inside ``shard_map``/``pmap``: every
      device returns the mean over all devices' rows (see the module
      docstring for how to differentiate it).

  Returns:
    The float32 scalar loss, in [0, 4].
  """
  _check_pair('byol', p, z)
  p = _l2_normalize(p)
  z = _l2_normalize(jax.lax.stop_gradient(z))
  return _mean(2.0 - 2.0 * jnp.sum(p * z, axis=-1), axis_name)


def vicreg(
    z_a: jax.Array,
    z_b: jax.Array,
    sim_weight: float = 25.0,
    var_weight: float = 25.0,
    cov_weight: float = 1.0,
    axis_name: Optional[str] = None,
) -> jax.Array:
  """VICReg's variance-invariance-covariance loss (Bardes et al., 2022).

  With N the global batch and D the dimension, as the paper defines them:

  * invariance: ``mean over N and D of (z_a - z_b)^2``;
  * variance: for each view, ``mean_d max(0, 1 - sqrt(Var(z_d) + 1e-4))``
    with the unbiased variance over the batch; the two views' terms are
    averaged, as the authors' code does (``facebookresearch/vicreg``,
    ``std_loss = mean(relu(1 - std_x)) / 2 + mean(relu(1 - std_y)) / 2``)
    and lightly's ``VICRegLoss``; the paper's formula writes their sum;
  * covariance: for each view, the squared off-diagonal entries of the
    unbiased covariance matrix, summed and divided by D; the views add.

  Args:
    z_a: [N, D] embeddings of the first views.
    z_b: [N, D] embeddings of the second views.
    sim_weight: weight of the invariance term (the paper's lambda, 25).
    var_weight: weight of the variance term (mu, 25).
    cov_weight: weight of the covariance term (nu, 1).
    axis_name: if set, the device axis inside ``shard_map``/``pmap``: means,
      variances and covariances are over every device's rows and every
      device returns the global loss (see the module docstring).

  Returns:
    The float32 scalar loss.
  """
  _check_pair('vicreg', z_a, z_b)
  z_a, z_b = z_a.astype(jnp.float32), z_b.astype(jnp.float32)
  reduce = _summer(axis_name)
  n = reduce(jnp.asarray(z_a.shape[0], jnp.float32))
  d = z_a.shape[1]
  invariance = reduce(jnp.sum((z_a - z_b) ** 2)) / (n * d)

  def variance_and_covariance(z):
    centred = z - reduce(z.sum(0)) / n
    cov = reduce(
        jnp.matmul(centred.T, centred, precision=jax.lax.Precision.HIGHEST)
    ) / (n - 1)
    std = jnp.sqrt(jnp.diagonal(cov) + 1e-4)
    off = jnp.sum(cov**2) - jnp.sum(jnp.diagonal(cov) ** 2)
    return jnp.mean(jax.nn.relu(1.0 - std)), off / d

  var_a, cov_a = variance_and_covariance(z_a)
  var_b, cov_b = variance_and_covariance(z_b)
  return (
      sim_weight * invariance
      + var_weight * (var_a + var_b) / 2
      + cov_weight * (cov_a + cov_b)
  )


def moco_v3(
    q: jax.Array,
    k: jax.Array,
    temperature: float = 0.2,
    axis_name: Optional[str] = None,
) -> jax.Array:
  """MoCo v3's contrastive loss (Chen, Xie and He, 2021), one direction.

  InfoNCE of each query against every key of the global batch, its own key
  the positive, scaled by ``2 * temperature`` as in the paper's code. The
  symmetric loss of a pair of views is ``moco_v3(q_a, k_b) + moco_v3(q_b,
  k_a)``, with queries from the online network (predictor) and keys from
  the momentum network.

  Args:
    q: [N, D] queries.
    k: [N, D] keys (a stop-gradient is applied here); row i is the positive
      of query i.
    temperature: softmax temperature, > 0.
    axis_name: if set, the device axis inside ``shard_map``/``pmap``: keys
      are gathered from every device as negatives and every device returns
      the mean over all queries (see the module docstring).

  Returns:
    The float32 scalar loss.
  """
  _check_pair('moco_v3', q, k)
  if temperature <= 0:
    raise ValueError(f'temperature must be > 0, got {temperature}.')
  q = _l2_normalize(q)
  k = _l2_normalize(jax.lax.stop_gradient(k))
  n, offset, keys = q.shape[0], 0, k
  if axis_name is not None:
    keys = jax.lax.all_gather(k, axis_name, tiled=True)
    offset = jax.lax.axis_index(axis_name) * n
  logits = (
      jnp.matmul(q, keys.T, precision=jax.lax.Precision.HIGHEST) / temperature
  )
  labels = jnp.arange(n) + offset
  pos = jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
  ce = jax.nn.logsumexp(logits, axis=1) - pos
  return 2.0 * temperature * _mean(ce, axis_name)


def dino(
    student_logits: jax.Array,
    teacher_logits: jax.Array,
    center: jax.Array,
    student_temperature: float = 0.1,
    teacher_temperature: float = 0.04,
    axis_name: Optional[str] = None,
) -> jax.Array:
  """DINO's self-distillation loss (Caron et al., 2021).

  The teacher's outputs are centred and sharpened,
  ``softmax((t - center) / teacher_temperature)``, with no gradient; each
  student view is scored against each teacher view by cross-entropy with
  ``log_softmax(s / student_temperature)``, skipping the pairs where both
  see the same crop. The teacher sees the V_t global crops, which are the
  first V_t of the student's V_s crops (the rest are local crops).

  Args:
    student_logits: [V_s, N, K] the student's outputs for every crop.
    teacher_logits: [V_t, N, K] the teacher's outputs for the global crops.
    center: [K] the running centre of the teacher's outputs
      (:func:`dino_center` updates it).
    student_temperature: > 0.
    teacher_temperature: > 0 (warmed up by the caller).
    axis_name: if set, the device axis inside ``shard_map``/``pmap``: every
      device returns the mean over all devices' rows (see the module
      docstring).

  Returns:
    The float32 scalar loss: the mean over pairs of the mean over N.
  """
  v_s, v_t = student_logits.shape[0], teacher_logits.shape[0]
  if (
      student_logits.ndim != 3
      or teacher_logits.shape[1:] != student_logits.shape[1:]
      or v_t > v_s
  ):
    raise ValueError(
        'dino expects student [V_s, N, K] and teacher [V_t, N, K] logits with '
        f'V_t <= V_s, got {student_logits.shape} and {teacher_logits.shape}.'
    )
  teacher = jax.nn.softmax(
      (jax.lax.stop_gradient(teacher_logits).astype(jnp.float32) - center)
      / teacher_temperature,
      axis=-1,
  )
  student = jax.nn.log_softmax(
      student_logits.astype(jnp.float32) / student_temperature, axis=-1
  )
  # [V_t, V_s, N]: every teacher view against every student view.
  ce = -jnp.einsum('tnk,snk->tsn', teacher, student)
  keep = jnp.arange(v_t)[:, None] != jnp.arange(v_s)[None, :]
  per_row = jnp.sum(jnp.where(keep[..., None], ce, 0.0), axis=(0, 1))
  return _mean(per_row / jnp.sum(keep), axis_name)


def dino_center(
    teacher_logits: jax.Array,
    center: jax.Array,
    momentum: float = 0.9,
    axis_name: Optional[str] = None,
) -> jax.Array:
  """DINO's centre update: an EMA of the teacher's mean output.

  Args:
    teacher_logits: [V_t, N, K] the teacher's outputs.
    center: [K] the current centre.
    momentum: the EMA's weight on the current centre.
    axis_name: if set, the mean is over every device's rows.

  Returns:
    The new [K] centre (no gradient flows through it).
  """
  t = jax.lax.stop_gradient(teacher_logits).astype(jnp.float32)
  batch_mean = jnp.mean(t, axis=(0, 1))
  if axis_name is not None:
    batch_mean = jax.lax.pmean(batch_mean, axis_name)
  return momentum * center + (1.0 - momentum) * batch_mean
