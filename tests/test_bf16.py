"""bfloat16 mixed precision: bf16 activations, float32 state, the same trajectory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import methods
from ssl_jax.training import optim
from ssl_jax.training import step as step_lib
from tests import helpers


def _trajectory(dtype, method='simclr', steps=6):
  config = helpers.tiny_config(
      dtype=dtype,
      method=method,
      **{
          'optimizer.name': 'adam',
          'optimizer.lr_scaling': 'none',
          'learning_rate': 1e-3,
      },
  )
  model = methods.get(method).build_model(config, 10)
  schedule = optim.learning_rate_schedule(config, 10)
  tx = optim.make_optimizer(config, schedule)
  mesh = step_lib.make_mesh()
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  state = jax.device_put(
      step_lib.create_state(config, model, tx, jax.random.key(0), 3), replicated
  )
  step = step_lib.compile_train_step(config, model, tx, schedule, mesh)
  rng = np.random.default_rng(0)
  losses = []
  for _ in range(steps):
    batch = {
        'image': rng.integers(0, 256, (16, 16, 16, 3), dtype=np.uint8),
        'label': rng.integers(0, 10, (16,), dtype=np.int32),
    }
    state, metrics = step(state, batch, jax.random.key(1))
    losses.append(float(metrics['loss']))
  return np.asarray(losses), state, model


@pytest.mark.slow
@pytest.mark.parametrize('method', ['simclr', 'supervised'])
def test_bf16_follows_the_fp32_loss_trajectory(method):
  fp32, _, _ = _trajectory('float32', method)
  bf16, state, model = _trajectory('bfloat16', method)
  assert np.all(np.isfinite(bf16))
  assert np.abs(np.diff(fp32)).max() > 1e-3  # The loss moves...
  np.testing.assert_allclose(bf16, fp32, rtol=0.03)  # ...and bf16 follows it.
  # Mixed precision: the state stays float32, the activations are bfloat16.
  for tree in (state.params, state.batch_stats, state.opt_state):
    dtypes = {
        x.dtype
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(x.dtype, jnp.floating)
    }
    assert dtypes == {jnp.dtype(jnp.float32)}, dtypes
  out = model.apply(
      {'params': state.params, 'batch_stats': state.batch_stats},
      jnp.zeros((2, 16, 16, 3)),
      train=False,
  )
  assert out['features'].dtype == jnp.bfloat16
