"""The step guard: non-finite detection, skipping, the messages, stop requests."""

import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.methods.base import TrainState
from ssl_jax.training import guards


def _step_fn(state, batch, key):
  """A toy step: loss = sum(w * x), plain SGD."""
  del key
  loss, grad = jax.value_and_grad(lambda w: jnp.sum(w * batch))(state.params)
  return (
      state.replace(step=state.step + 1, params=state.params - 0.1 * grad),
      {'loss': loss, 'grad_norm': jnp.linalg.norm(grad)},
  )


def _state():
  return TrainState(
      step=jnp.asarray(3, jnp.int32),
      params=jnp.ones(4),
      batch_stats={},
      opt_state=(),
  )


@pytest.mark.parametrize('mode', ['stop', 'skip'])
def test_finite_step_is_untouched(mode):
  state = _state()
  want, want_metrics = _step_fn(state, jnp.ones(4), None)
  got, metrics = guards.guarded_step(
      state, jnp.ones(4), None, step_fn=_step_fn, nonfinite=mode
  )
  np.testing.assert_array_equal(got.params, want.params)
  assert int(got.step) == 4 and float(metrics['nonfinite']) == 0.0
  assert float(metrics['loss']) == float(want_metrics['loss'])


def test_poisoned_step_stop_mode_returns_the_bad_state_flagged():
  got, metrics = guards.guarded_step(
      _state(), jnp.ones(4), None, step_fn=_step_fn, poison_step=3
  )
  assert float(metrics['nonfinite']) == 1.0
  assert np.isnan(got.params).all() and np.isnan(float(metrics['loss']))


def test_poisoned_step_skip_mode_keeps_the_state_and_advances_the_step():
  state = _state()
  got, metrics = guards.guarded_step(
      state,
      jnp.ones(4),
      None,
      step_fn=_step_fn,
      nonfinite='skip',
      poison_step=3,
  )
  assert float(metrics['nonfinite']) == 1.0
  np.testing.assert_array_equal(got.params, state.params)
  assert int(got.step) == 4
  # Another step is not poisoned.
  got, metrics = guards.guarded_step(
      state,
      jnp.ones(4),
      None,
      step_fn=_step_fn,
      nonfinite='skip',
      poison_step=7,
  )
  assert float(metrics['nonfinite']) == 0.0


def test_inf_parameters_after_a_finite_loss_are_caught():
  def exploding(state, batch, key):
    new, metrics = _step_fn(state, batch, key)
    return new.replace(params=new.params * jnp.inf), metrics

  _, metrics = guards.guarded_step(
      _state(), jnp.ones(4), None, step_fn=exploding
  )
  assert float(metrics['nonfinite']) == 1.0


def test_check_finite_names_the_first_bad_step_and_quantity():
  good = {'loss': 1.0, 'grad_norm': 2.0, 'param_norm': 3.0, 'nonfinite': 0.0}
  bad = {
      'loss': 1.0,
      'grad_norm': float('inf'),
      'param_norm': 3.0,
      'nonfinite': 1.0,
  }
  assert guards.check_finite([good, good], 10, 'stop') == 0
  assert guards.check_finite([good, bad, bad], 10, 'skip') == 2
  with pytest.raises(
      guards.NonFiniteError,
      match=r'^non-finite values at step 11 \(grad_norm=inf\); '
      'stopped without saving it',
  ):
    guards.check_finite([good, bad, bad], 10, 'stop')


def test_stop_request_single_process():
  stop = guards.StopRequest()
  try:
    assert stop.should_stop(synced=False) == ''
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.should_stop(synced=False) == 'SIGTERM'
  finally:
    stop.restore()
  assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
