"""NT-Xent against a naive loop, and across devices under shard_map."""

import functools

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
import numpy as np
import pytest

from ssl_jax import losses


def naive_nt_xent(z_a, z_b, temperature):
  """Double loop in float64 over the 2N anchors; returns (loss, accuracy)."""
  z = np.concatenate([z_a, z_b]).astype(np.float64)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  n2 = len(z)
  n = n2 // 2
  total, correct = 0.0, 0
  for i in range(n2):
    pos = (i + n) % n2
    sims = {k: z[i] @ z[k] / temperature for k in range(n2) if k != i}
    denom = sum(np.exp(s) for s in sims.values())
    total += -np.log(np.exp(sims[pos]) / denom)
    correct += int(max(sims, key=sims.get) == pos)
  return total / n2, correct / n2


@pytest.mark.parametrize(
    'n,d,temperature', [(4, 3, 0.1), (7, 16, 0.5), (16, 8, 1.0)]
)
def test_matches_naive_loop(n, d, temperature):
  rng = np.random.default_rng(n)
  z_a = rng.normal(size=(n, d)).astype(np.float32)
  z_b = (z_a + 0.7 * rng.normal(size=(n, d))).astype(np.float32)
  loss, acc = losses.nt_xent_and_accuracy(z_a, z_b, temperature)
  want_loss, want_acc = naive_nt_xent(z_a, z_b, temperature)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
  assert float(acc) == pytest.approx(want_acc)
  np.testing.assert_allclose(losses.nt_xent(z_a, z_b, temperature), loss)


def test_bf16_inputs_computed_in_float32():
  rng = np.random.default_rng(0)
  z_a, z_b = rng.normal(size=(2, 32, 16)).astype(np.float32)
  loss16 = losses.nt_xent(
      jnp.asarray(z_a, jnp.bfloat16), jnp.asarray(z_b, jnp.bfloat16), 0.1
  )
  assert loss16.dtype == jnp.float32
  want, _ = naive_nt_xent(
      np.asarray(jnp.asarray(z_a, jnp.bfloat16), np.float32),
      np.asarray(jnp.asarray(z_b, jnp.bfloat16), np.float32),
      0.1,
  )
  np.testing.assert_allclose(loss16, want, rtol=1e-5)


def test_scale_invariant_and_rejects_bad_inputs():
  rng = np.random.default_rng(1)
  z_a, z_b = rng.normal(size=(2, 8, 4)).astype(np.float32)
  np.testing.assert_allclose(
      losses.nt_xent(z_a, z_b, 0.2),
      losses.nt_xent(3 * z_a, 0.5 * z_b, 0.2),
      rtol=1e-5,
  )
  with pytest.raises(ValueError, match='temperature'):
    losses.nt_xent(z_a, z_b, 0.0)
  with pytest.raises(ValueError, match='equal shape'):
    losses.nt_xent(z_a, z_b[:4], 0.2)


def _sharded_setup():
  assert jax.device_count() == 8
  mesh = jax.make_mesh(
      (8,), ('data',), axis_types=(jax.sharding.AxisType.Auto,)
  )
  rng = np.random.default_rng(2)
  x_a, x_b = rng.normal(size=(2, 32, 6)).astype(np.float32)
  w = rng.normal(size=(6, 5)).astype(np.float32)
  want = jax.value_and_grad(lambda w: losses.nt_xent(x_a @ w, x_b @ w, 0.3))(w)
  return mesh, x_a, x_b, w, want


def test_sharded_gradient_of_local_loss_then_mean():
  """pmap-style (check_vma=False): negatives gathered, grad of local loss, pmean."""
  mesh, x_a, x_b, w, (want_loss, want_grad) = _sharded_setup()

  @functools.partial(
      jax.shard_map,
      mesh=mesh,
      in_specs=(P(), P('data'), P('data')),
      out_specs=(P(), P()),
      check_vma=False,
  )
  def sharded(w, xa, xb):
    local = lambda w: losses.nt_xent(xa @ w, xb @ w, 0.3, axis_name='data')
    loss, grad = jax.value_and_grad(local)(w)
    return jax.lax.pmean(loss, 'data'), jax.lax.pmean(grad, 'data')

  loss, grad = jax.jit(sharded)(w, x_a, x_b)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
  np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-6)
  # Without the gather each device would only see its 4 local pairs.
  local_only = np.mean([
      naive_nt_xent((x_a @ w)[i : i + 4], (x_b @ w)[i : i + 4], 0.3)[0]
      for i in range(0, 32, 4)
  ])
  assert abs(float(loss) - local_only) > 1e-3


def test_sharded_gradient_with_varying_axes_checks():
  """Default shard_map (check_vma=True): differentiate the pmean of the local loss.

  There JAX already sums the cotangents of replicated parameters over devices,
  so "grad of the local loss then pmean" would be 8x too large.
  """
  mesh, x_a, x_b, w, (want_loss, want_grad) = _sharded_setup()

  @functools.partial(
      jax.shard_map,
      mesh=mesh,
      in_specs=(P(), P('data'), P('data')),
      out_specs=(P(), P()),
  )
  def sharded(w, xa, xb):
    global_loss = lambda w: jax.lax.pmean(
        losses.nt_xent(xa @ w, xb @ w, 0.3, axis_name='data'), 'data'
    )
    return jax.value_and_grad(global_loss)(w)

  loss, grad = jax.jit(sharded)(w, x_a, x_b)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
  np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-6)


def naive_barlow_twins(z_a, z_b, lambd):
  z_a, z_b = z_a.astype(np.float64), z_b.astype(np.float64)
  n, d = z_a.shape
  na = (z_a - z_a.mean(0)) / np.sqrt(z_a.var(0) + 1e-5)
  nb = (z_b - z_b.mean(0)) / np.sqrt(z_b.var(0) + 1e-5)
  total = 0.0
  for i in range(d):
    for j in range(d):
      c = sum(na[k, i] * nb[k, j] for k in range(n)) / n
      total += (1 - c) ** 2 if i == j else lambd * c**2
  return total


def test_barlow_twins_matches_naive_loop():
  rng = np.random.default_rng(3)
  z_a = rng.normal(size=(12, 5)).astype(np.float32)
  z_b = (z_a + 0.5 * rng.normal(size=(12, 5))).astype(np.float32)
  np.testing.assert_allclose(
      losses.barlow_twins(z_a, z_b, 0.01),
      naive_barlow_twins(z_a, z_b, 0.01),
      rtol=1e-4,
  )
  with pytest.raises(ValueError, match='equal shape'):
    losses.barlow_twins(z_a, z_b[:3])


@pytest.mark.parametrize('check_vma', [True, False])
def test_barlow_twins_sharded_matches_single_device(check_vma):
  mesh, x_a, x_b, w, _ = _sharded_setup()
  want_loss, want_grad = jax.value_and_grad(
      lambda w: losses.barlow_twins(x_a @ w, x_b @ w, 0.01)
  )(w)

  @functools.partial(
      jax.shard_map,
      mesh=mesh,
      in_specs=(P(), P('data'), P('data')),
      out_specs=(P(), P()),
      check_vma=check_vma,
  )
  def sharded(w, xa, xb):
    loss_fn = lambda w: losses.barlow_twins(
        xa @ w, xb @ w, 0.01, axis_name='data'
    )
    loss, grad = jax.value_and_grad(loss_fn)(w)
    if not check_vma:
      grad = jax.lax.pmean(grad, 'data')
    return loss, grad

  loss, grad = jax.jit(sharded)(w, x_a, x_b)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
  np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-6)
