"""LARS masks, the schedule as a pure function of the step, LR scaling."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssl_jax import models
from ssl_jax.configs import default
from ssl_jax.training import optim
from ssl_jax.training import validate
from tests import helpers


def _config(**opt):
  c = default.get_config()
  c.optimizer.update(opt)
  return c


def test_lars_masks_biases_and_norms():
  c = _config(
      name='lars', weight_decay=0.5, momentum=0.0, trust_coefficient=1e-3
  )
  tx = optim.make_optimizer(c, lambda step: 0.1)
  rng = np.random.default_rng(0)
  params = {
      'dense': {
          'kernel': jnp.asarray(rng.normal(size=(4, 3)), jnp.float32),
          'bias': jnp.zeros(3),
      },
      'bn': {'scale': jnp.ones(3), 'bias': jnp.zeros(3)},
      'zero_kernel': {'kernel': jnp.zeros((3, 2))},
  }
  grads = jax.tree.map(
      lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params
  )
  updates, _ = tx.update(grads, tx.init(params), params)
  # 1-D leaves: plain SGD step, no decay, no trust ratio; a zero bias moves.
  for path in (('dense', 'bias'), ('bn', 'scale'), ('bn', 'bias')):
    u, g = updates[path[0]][path[1]], grads[path[0]][path[1]]
    np.testing.assert_allclose(u, -0.1 * g, rtol=1e-6)
    assert np.all(u != 0)
  # Kernels: decay then trust ratio eta * |w| / |g + wd w|.
  w, g = params['dense']['kernel'], grads['dense']['kernel']
  d = g + 0.5 * w
  ratio = 1e-3 * jnp.linalg.norm(w) / jnp.linalg.norm(d)
  np.testing.assert_allclose(
      updates['dense']['kernel'], -0.1 * ratio * d, rtol=1e-5
  )
  # A zero-norm kernel still moves (trust ratio falls back to 1).
  assert np.all(updates['zero_kernel']['kernel'] != 0)


@pytest.mark.parametrize('name', ['lars', 'sgd', 'adam', 'adamw'])
def test_bias_norm_lr_scale_scales_only_1d_updates(name):
  rng = np.random.default_rng(1)
  params = {
      'kernel': jnp.asarray(rng.normal(size=(4, 3)), jnp.float32),
      'bias': jnp.asarray(rng.normal(size=3), jnp.float32),
      'scale': jnp.ones(3),
  }
  grads = jax.tree.map(
      lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params
  )

  def two_updates(scale):
    tx = optim.make_optimizer(
        _config(name=name, weight_decay=0.1, bias_norm_lr_scale=scale),
        lambda s: 0.1,
    )
    state = tx.init(params)
    out = []
    for _ in range(2):  # The second update sees the momentum / moments.
      updates, state = tx.update(grads, state, params)
      out.append(updates)
    return out

  for plain, scaled in zip(two_updates(1.0), two_updates(0.024)):
    np.testing.assert_allclose(scaled['kernel'], plain['kernel'], rtol=1e-6)
    for leaf in ('bias', 'scale'):
      np.testing.assert_allclose(scaled[leaf], 0.024 * plain[leaf], rtol=1e-5)
      assert np.all(plain[leaf] != 0)


def test_decay_mask_by_rank():
  mask = optim.decay_mask(
      {'k': jnp.ones((3, 3, 2, 4)), 'b': jnp.ones(4), 's': jnp.ones(4)}
  )
  assert mask == {'k': True, 'b': False, 's': False}


def test_decay_mask_leaves_out_the_attention_biases_of_a_vit():
  config = helpers.tiny_config(encoder='vit_tiny')
  model = models.get_encoder(config)
  params = jax.eval_shape(
      lambda: model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
  )['params']
  mask = optim.decay_mask(params)
  query = mask['block0']['MultiHeadDotProductAttention_0']['query']
  assert query == {'kernel': True, 'bias': False}  # bias is [heads, head_dim].
  assert mask['position_embedding'] and mask['cls']
  assert mask['patch_embedding'] == {'kernel': True, 'bias': False}
  assert not any(jax.tree.leaves(mask['norm']))


@pytest.mark.parametrize('name', ['sgd', 'adam', 'adamw'])
def test_other_optimizers_step(name):
  tx = optim.make_optimizer(
      _config(name=name, weight_decay=1e-4), lambda s: 0.1
  )
  params = {'kernel': jnp.ones((2, 2)), 'bias': jnp.zeros(2)}
  updates, _ = tx.update(params, tx.init(params), params)
  assert all(np.all(np.isfinite(u)) for u in jax.tree.leaves(updates))


def test_schedule_is_a_pure_function_of_the_step():
  c = default.get_config()
  c.batch_size, c.learning_rate, c.num_epochs = 512, 0.3, 10
  c.optimizer.lr_scaling, c.optimizer.warmup_epochs = 'linear', 2
  sched = optim.learning_rate_schedule(c, steps_per_epoch=100)
  peak = 0.3 * 512 / 256
  assert float(sched(0)) == 0.0
  np.testing.assert_allclose(sched(100), peak / 2, rtol=1e-6)
  np.testing.assert_allclose(sched(200), peak, rtol=1e-6)
  np.testing.assert_allclose(sched(600), peak / 2, rtol=1e-5)
  assert float(sched(1000)) == pytest.approx(0.0, abs=1e-7)
  # A fresh schedule (as after a restart) gives the same value at any step.
  again = optim.learning_rate_schedule(c, steps_per_epoch=100)
  steps = jnp.arange(0, 1000, 37)
  np.testing.assert_array_equal(jax.vmap(sched)(steps), jax.vmap(again)(steps))


def test_warmup_longer_than_the_run_warms_up_over_its_first_tenth():
  # A recipe's 10 warm-up epochs in a 1-epoch smoke run of 20 steps.
  c = default.get_config()
  c.batch_size, c.learning_rate, c.num_epochs = 256, 0.3, 1
  c.optimizer.lr_scaling, c.optimizer.warmup_epochs = 'linear', 10
  sched = optim.learning_rate_schedule(c, steps_per_epoch=20)
  assert float(sched(0)) == 0.0
  np.testing.assert_allclose(sched(2), 0.3, rtol=1e-6)
  assert 0 < float(sched(10)) < 0.3
  assert float(sched(20)) == pytest.approx(0.0, abs=1e-7)


def test_optax_count_resumes_schedule():
  """The optimiser's own step count lives in opt_state, which is checkpointed."""
  c = _config(name='sgd', weight_decay=0.0, momentum=0.0)
  sched = optax.linear_schedule(1.0, 0.0, 10)
  tx = optim.make_optimizer(c, sched)
  params = {'w': jnp.zeros(())}
  state = tx.init(params)
  for _ in range(4):
    _, state = tx.update({'w': jnp.ones(())}, state, params)
  u, _ = tx.update({'w': jnp.ones(())}, state, params)
  np.testing.assert_allclose(u['w'], -sched(4), rtol=1e-6)


def test_lr_scaling():
  assert optim.scaled_learning_rate(0.3, 4096, 'linear') == pytest.approx(4.8)
  assert optim.scaled_learning_rate(0.075, 4096, 'sqrt') == pytest.approx(4.8)
  assert optim.scaled_learning_rate(1e-3, 4096, 'none') == 1e-3
  with pytest.raises(ValueError, match='lr_scaling'):
    optim.scaled_learning_rate(1.0, 1, 'cubic')


@pytest.mark.parametrize(
    'fields,match',
    [
        ({'lars_variant': 'lamb'}, "optimizer.lars_variant='lamb'"),
        ({'clip_lr': True}, 'optimizer.clip_lr=True needs'),
        (
            {'clip_lr': True, 'lars_variant': 'solo_learn', 'name': 'sgd'},
            "optimizer.clip_lr=True needs .*name='sgd'",
        ),
        ({'weight_decay': -1e-4}, 'optimizer.weight_decay=-0.0001 must be'),
        ({'momentum': 1.0}, r'optimizer.momentum=1.0 must be in \[0, 1\)'),
        ({'trust_coefficient': 0.0}, 'optimizer.trust_coefficient=0.0'),
        ({'decay_bias_and_norm': True}, 'decay_bias_and_norm=True applies'),
    ],
)
def test_bad_optimizer_setting_is_one_line(fields, match):
  config = helpers.tiny_config(dataset='cifar10', num_epochs=2)
  config.optimizer.update(fields)
  with pytest.raises(validate.ConfigError, match=match) as e:
    validate.validate(config, num_devices=8)
  assert '\n' not in str(e.value)


def test_solo_learn_clip_lr_config_is_valid():
  config = helpers.tiny_config(dataset='cifar10', num_epochs=2)
  config.optimizer.update(lars_variant='solo_learn', clip_lr=True)
  validate.validate(config, num_devices=8)


def test_weight_decay_schedule_is_dinos_cosine():
  c = _config(weight_decay=0.04, weight_decay_end=0.4)
  c.num_epochs = 10
  wd = optim.weight_decay_schedule(c, steps_per_epoch=5)
  total = 50
  for step in (0, 7, 25, 49, 50, 80):
    t = min(step, total)
    want = 0.4 + 0.5 * (0.04 - 0.4) * (1 + np.cos(np.pi * t / total))
    np.testing.assert_allclose(float(wd(step)), want, rtol=1e-5)
  assert optim.weight_decay_schedule(_config(), 5) == 1e-6


@pytest.mark.parametrize('name', ['lars', 'adamw', 'sgd'])
def test_scheduled_decay_is_applied_at_each_step(name):
  """The decay a step applies is the schedule's value at that step."""
  c = _config(name=name, weight_decay=0.1, weight_decay_end=0.5, momentum=0.0)
  c.num_epochs = 1
  rng = np.random.default_rng(5)
  params = {'w': {'kernel': jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)}}
  # LARS normalises the step, so it needs a gradient for the decay to show.
  grad = 0.0 if name != 'lars' else 0.3
  zero = {'w': {'kernel': jnp.full((3, 2), grad)}}
  outs = {}
  for end in (0.1, 0.5):
    c.optimizer.weight_decay_end = end
    tx = optim.make_optimizer(c, lambda s: 1.0, steps_per_epoch=4)
    state = tx.init(params)
    for _ in range(3):
      updates, state = tx.update(zero, state, params)
    outs[end] = updates['w']['kernel']
  if name == 'lars':
    assert not np.allclose(outs[0.5], outs[0.1], rtol=1e-3)
  else:
    # A zero gradient moves the weights by the decay alone: more decay, more
    # movement, once the schedule has left its start.
    assert np.all(np.abs(outs[0.5]) > np.abs(outs[0.1]))


def test_clip_each_by_norm_clips_leaf_by_leaf():
  tx = optim.clip_each_by_norm(3.0)
  grads = {'a': jnp.full((4,), 10.0), 'b': jnp.full((4,), 0.5)}
  out, _ = tx.update(grads, tx.init(grads))
  np.testing.assert_allclose(
      np.linalg.norm(out['a']), 3.0 * 20.0 / (20.0 + 1e-6), rtol=1e-6
  )
  np.testing.assert_allclose(out['b'], grads['b'])  # Under the norm: kept.


def test_frozen_rule_trains_nothing_then_starts_fresh_state():
  """A delayed leaf: no update, no decay, then Adam as if its first step."""
  c = _config(name='adamw', weight_decay=0.1)
  params = {
      'head': {'last_layer': {'kernel': jnp.ones((2, 2))}},
      'body': {'kernel': jnp.ones((2, 2))},
  }
  tx = optim.make_optimizer(
      c,
      lambda s: 0.1,
      steps_per_epoch=2,
      frozen=(('last_layer', 1.0), ('never', math.inf)),
  )
  state = tx.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  moved = []
  for _ in range(3):
    updates, state = tx.update(grads, state, params)
    moved.append(np.abs(updates['head']['last_layer']['kernel']).max())
    assert np.abs(updates['body']['kernel']).max() > 0
  assert moved[0] == 0 and moved[1] == 0
  # First real step of a fresh AdamW: lr * (m_hat / sqrt(v_hat) + wd * w).
  np.testing.assert_allclose(moved[2], 0.1 * (1.0 + 0.1), rtol=1e-4)
  # A rule that matches nothing leaves the rest untouched.
  frozen = optim.make_optimizer(
      c, lambda s: 0.1, steps_per_epoch=2, frozen=(('body', math.inf),)
  )
  updates, _ = frozen.update(grads, frozen.init(params), params)
  assert np.all(updates['body']['kernel'] == 0)


def test_decay_bias_and_norm_decays_every_leaf():
  params = {'kernel': jnp.ones((2, 2)), 'bias': jnp.ones(2)}
  zero = jax.tree.map(jnp.zeros_like, params)
  for every in (False, True):
    c = _config(name='adamw', weight_decay=0.1, decay_bias_and_norm=every)
    tx = optim.make_optimizer(c, lambda s: 1.0)
    updates, _ = tx.update(zero, tx.init(params), params)
    assert np.all(updates['kernel'] != 0)
    assert np.all(updates['bias'] != 0) == every
