"""BYOL, VICReg, MoCo v3 and DINO losses: naive references and 8 devices vs 1."""

import functools

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
import numpy as np
import pytest

from ssl_jax import losses


def _unit(x):
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def naive_byol(p, z):
  p, z = _unit(p.astype(np.float64)), _unit(z.astype(np.float64))
  return np.mean([2 - 2 * p[i] @ z[i] for i in range(len(p))])


def naive_vicreg(z_a, z_b, sim, var, cov):
  z_a, z_b = z_a.astype(np.float64), z_b.astype(np.float64)
  n, d = z_a.shape
  invariance = np.mean((z_a - z_b) ** 2)

  def terms(z):
    zc = z - z.mean(0)
    c = np.zeros((d, d))
    for i in range(d):
      for j in range(d):
        c[i, j] = sum(zc[k, i] * zc[k, j] for k in range(n)) / (n - 1)
    std = np.sqrt(np.var(z, axis=0, ddof=1) + 1e-4)
    off = sum(c[i, j] ** 2 for i in range(d) for j in range(d) if i != j)
    return np.mean(np.maximum(0, 1 - std)), off / d

  va, ca = terms(z_a)
  vb, cb = terms(z_b)
  return sim * invariance + var * (va + vb) / 2 + cov * (ca + cb)


def naive_moco_v3(q, k, temperature):
  q, k = _unit(q.astype(np.float64)), _unit(k.astype(np.float64))
  total = 0.0
  for i in range(len(q)):
    logits = [q[i] @ k[j] / temperature for j in range(len(k))]
    total += -np.log(np.exp(logits[i]) / np.sum(np.exp(logits)))
  return 2 * temperature * total / len(q)


def naive_dino(student, teacher, center, ts, tt):
  student, teacher = student.astype(np.float64), teacher.astype(np.float64)

  def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)

  terms = []
  for t in range(len(teacher)):
    pt = softmax((teacher[t] - center) / tt)
    for s in range(len(student)):
      if s == t:
        continue
      log_ps = np.log(softmax(student[s] / ts))
      terms.append(np.mean(-np.sum(pt * log_ps, axis=-1)))
  return np.mean(terms)


def _pair(seed, n=12, d=6):
  rng = np.random.default_rng(seed)
  z_a = rng.normal(size=(n, d)).astype(np.float32)
  return z_a, (z_a + 0.5 * rng.normal(size=(n, d))).astype(np.float32)


def test_byol_matches_naive_and_stops_the_target_gradient():
  p, z = _pair(0)
  np.testing.assert_allclose(losses.byol(p, z), naive_byol(p, z), rtol=1e-5)
  assert not np.any(jax.grad(lambda z: losses.byol(p, z))(z))
  assert float(losses.byol(p, 3 * p)) == pytest.approx(0.0, abs=1e-6)


def test_vicreg_matches_naive_with_the_paper_weights():
  z_a, z_b = _pair(1)
  np.testing.assert_allclose(
      losses.vicreg(z_a, z_b),
      naive_vicreg(z_a, z_b, 25.0, 25.0, 1.0),
      rtol=1e-5,
  )
  np.testing.assert_allclose(
      losses.vicreg(z_a, z_b, 1.0, 2.0, 3.0),
      naive_vicreg(z_a, z_b, 1.0, 2.0, 3.0),
      rtol=1e-5,
  )
  # Collapsed embeddings pay the whole variance hinge (std ~ 0.01 < 1).
  same = np.ones((8, 4), np.float32)
  np.testing.assert_allclose(
      losses.vicreg(same, same, 0.0, 1.0, 0.0), 1 - 1e-2, rtol=1e-5
  )


def test_vicreg_averages_the_views_variance_terms_as_the_authors_code():
  # facebookresearch/vicreg: std_loss = mean(relu(1 - std_x)) / 2 +
  # mean(relu(1 - std_y)) / 2 (lightly's VICRegLoss too): one collapsed view
  # pays half its hinge, not all of it.
  rng = np.random.default_rng(0)
  spread = rng.normal(0.0, 3.0, (64, 4)).astype(np.float32)  # std > 1: free.
  collapsed = np.ones((64, 4), np.float32)  # std = sqrt(1e-4) = 0.01.
  np.testing.assert_allclose(
      losses.vicreg(spread, collapsed, 0.0, 1.0, 0.0),
      (1 - 1e-2) / 2,
      rtol=1e-5,
  )


def test_moco_v3_matches_naive_and_stops_the_key_gradient():
  q, k = _pair(2)
  np.testing.assert_allclose(
      losses.moco_v3(q, k, 0.2), naive_moco_v3(q, k, 0.2), rtol=1e-5
  )
  assert not np.any(jax.grad(lambda k: losses.moco_v3(q, k, 0.2))(k))
  with pytest.raises(ValueError, match='temperature'):
    losses.moco_v3(q, k, 0.0)


def test_dino_matches_naive_skipping_same_crop_pairs():
  rng = np.random.default_rng(3)
  student = rng.normal(size=(4, 5, 7)).astype(np.float32)  # 2 global + 2 local
  teacher = rng.normal(size=(2, 5, 7)).astype(np.float32)
  center = rng.normal(size=(7,)).astype(np.float32) * 0.1
  np.testing.assert_allclose(
      losses.dino(student, teacher, center, 0.1, 0.04),
      naive_dino(student, teacher, center, 0.1, 0.04),
      rtol=1e-5,
  )
  grad = jax.grad(lambda t: losses.dino(student, t, center))(teacher)
  assert not np.any(grad)
  new = losses.dino_center(teacher, center, 0.9)
  np.testing.assert_allclose(
      new, 0.9 * center + 0.1 * teacher.mean(axis=(0, 1)), rtol=1e-5
  )
  with pytest.raises(ValueError, match='V_t <= V_s'):
    losses.dino(teacher, student, center)


def _mesh():
  assert jax.device_count() == 8
  return jax.make_mesh(
      (8,), ('data',), axis_types=(jax.sharding.AxisType.Auto,)
  )


# Each loss as ``(w, x_a, x_b, axis_name) -> scalar``, of linear maps of inputs.
_LOSSES = {
    'byol': lambda w, a, b, ax: losses.byol(a @ w, b @ w, axis_name=ax),
    'vicreg': lambda w, a, b, ax: losses.vicreg(a @ w, b @ w, axis_name=ax),
    'moco_v3': lambda w, a, b, ax: losses.moco_v3(
        a @ w, b @ (w + 0.1), 0.2, axis_name=ax
    ),
    'dino': lambda w, a, b, ax: losses.dino(
        jnp.stack([a @ w, b @ w, (a - b) @ w]),
        jnp.stack([b @ (w + 0.1), a @ (w + 0.1)]),
        jnp.linspace(-0.1, 0.1, w.shape[1]),
        axis_name=ax,
    ),
}


@pytest.mark.parametrize('check_vma', [True, False])
@pytest.mark.parametrize('name', sorted(_LOSSES))
def test_eight_devices_match_one_on_the_global_batch(name, check_vma):
  fn = _LOSSES[name]
  rng = np.random.default_rng(4)
  x_a, x_b = rng.normal(size=(2, 32, 6)).astype(np.float32)
  w = rng.normal(size=(6, 5)).astype(np.float32)
  want_loss, want_grad = jax.value_and_grad(fn)(w, x_a, x_b, None)

  @functools.partial(
      jax.shard_map,
      mesh=_mesh(),
      in_specs=(P(), P('data'), P('data')),
      out_specs=(P(), P()),
      check_vma=check_vma,
  )
  def sharded(w, xa, xb):
    # Every loss returns the global value on every device.
    loss, grad = jax.value_and_grad(lambda w: fn(w, xa, xb, 'data'))(w)
    if not check_vma:
      grad = jax.lax.pmean(grad, 'data')
    return loss, grad

  loss, grad = jax.jit(sharded)(w, x_a, x_b)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
  np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-6)
