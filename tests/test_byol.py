"""BYOL: the target's momentum schedule and its EMA update inside the step."""

import jax
import numpy as np
import pytest

from ssl_jax.methods import momentum
from tests import helpers


def test_momentum_is_a_cosine_from_base_to_one():
  tau = lambda s: float(momentum.target_momentum(s, 100, 0.99))
  assert tau(0) == pytest.approx(0.99)
  assert tau(50) == pytest.approx(0.995)
  assert tau(100) == pytest.approx(1.0)
  assert tau(200) == pytest.approx(1.0)  # Never past 1.
  assert tau(30) < tau(31)


@pytest.mark.slow
def test_step_moves_the_target_by_the_ema_of_the_new_online_weights():
  config = helpers.tiny_config(
      method='byol',
      **{'byol.base_momentum': 0.9, 'optimizer.warmup_epochs': 0},
  )
  run, state, step = helpers.compiled_step(config)
  assert int(state.extra['num_steps']) == 8  # 2 epochs of 4 steps.
  before = jax.device_get(state.extra['target_params'])
  _, batch = helpers.random_batch(run)
  state, metrics = step(state, batch, run.replicate(jax.random.key(1)))
  tau = float(metrics['target_momentum'])
  assert tau == pytest.approx(0.9)  # Step 0 of 8.
  after = jax.device_get(state.extra['target_params'])
  online = jax.device_get(state.params)
  for old, new, p in zip(
      jax.tree.leaves(before), jax.tree.leaves(after), jax.tree.leaves(online)
  ):
    np.testing.assert_allclose(
        new, tau * old + (1 - tau) * p, rtol=1e-5, atol=1e-6
    )
  assert any(
      not np.allclose(a, b)
      for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after))
  )
