"""DINO: teacher temperature warm-up, multi-crop, teacher and centre EMAs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import errors
from ssl_jax import losses
from ssl_jax.methods import dino
from tests import helpers


def test_teacher_temperature_warms_up_linearly_then_stays():
  d = dino.defaults()  # 0.04 to 0.07.
  t = lambda step, warmup: float(dino.teacher_temperature(step, warmup, d))
  assert t(0, 10) == pytest.approx(0.04)
  assert t(5, 10) == pytest.approx(0.055)
  assert t(10, 10) == pytest.approx(0.07)
  assert t(30, 10) == pytest.approx(0.07)
  assert t(0, 0) == pytest.approx(0.07)  # No warm-up.


def _config(**overrides):
  return helpers.tiny_config(
      method='dino',
      **{
          'dino.hidden_dims': (16,),
          'dino.bottleneck_dim': 8,
          'dino.out_dim': 32,
          'dino.num_local_crops': 3,
          'dino.local_size': 8,
          'dino.base_momentum': 0.9,
          'dino.center_momentum': 0.5,
          'dino.warmup_teacher_epochs': 1.0,
          'optimizer.warmup_epochs': 0,
          **overrides,
      },
  )


def test_views_encoded_count_the_local_crops():
  assert dino.images_per_step(_config()) == (16, 5 * 16)


@pytest.mark.slow
def test_step_moves_the_teacher_and_centres_on_its_global_crops():
  config = _config()
  run, state, step = helpers.compiled_step(config)
  assert int(state.extra['warmup_steps']) == 4  # 1 epoch of 4 steps.
  assert state.extra['center'].shape == (32,)
  # A teacher unlike the student, so that the centre tells them apart.
  state, teacher = helpers.with_unlike_target(run, state)
  images, batch = helpers.random_batch(run)
  key = jax.random.key(1)
  state, metrics = step(state, batch, run.replicate(key))
  assert float(metrics['teacher_temperature']) == pytest.approx(0.04)
  assert float(metrics['target_momentum']) == pytest.approx(0.9)
  assert 0 < float(metrics['teacher_entropy']) <= np.log(32) + 1e-4

  # The centre: half the teacher's mean output on the two global crops
  # (centre momentum 0.5 from zeros), recomputed outside the step.
  global_key, _ = jax.random.split(jax.random.fold_in(key, 0))  # Step 0.
  views = helpers.make_views(
      global_key,
      jnp.asarray(images),
      (config.augment.view1, config.augment.view2),
      16,
  )
  out, _ = helpers.train_apply(run.model)(teacher, jnp.concatenate(views))
  np.testing.assert_allclose(
      jax.device_get(state.extra['center']),
      0.5 * np.mean(np.asarray(out['projection']), axis=0),
      rtol=1e-3,
      atol=1e-5,
  )
  # The teacher: the EMA of the student's new weights.
  after = jax.device_get(state.extra['target_params'])
  online = jax.device_get(state.params)
  for old, new, p in zip(
      jax.tree.leaves(teacher['params']),
      jax.tree.leaves(after),
      jax.tree.leaves(online),
  ):
    np.testing.assert_allclose(new, 0.9 * old + 0.1 * p, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_without_local_crops_the_step_still_trains():
  config = _config(**{'dino.num_local_crops': 0})
  run, state, step = helpers.compiled_step(config)
  batch = jax.device_put(
      run.method.example_batch(config, np.random.default_rng(0), 10, 3),
      run.data_sharding,
  )
  state, metrics = step(state, batch, run.replicate(jax.random.key(1)))
  assert np.isfinite(float(metrics['loss']))


def _ready_views(run, config, seed=0):
  """A batch of ready views: 2 global 16 px crops and 3 local 8 px ones."""
  rng = np.random.default_rng(seed)
  views = tuple(
      rng.uniform(size=(16, side, side, 3)).astype(np.float32)
      for side in (16, 16, 8, 8, 8)
  )
  labels = rng.integers(0, 10, (16,), np.int32)
  return views, jax.device_put(
      {'views': views, 'label': labels}, run.data_sharding
  )


@pytest.fixture(scope='module')
def bn_frozen_step():
  """A head with BatchNorm, no centre EMA and a last layer frozen one epoch.

  The two tests below check different parts of it, so they share one compile
  (the freeze changes updates, never the loss of the first step).

  Returns:
    ``(config, run, state, step)``: copy ``state`` before stepping it (the
    step donates it).
  """
  config = _config(**{
      'dino.use_bn': True,
      'dino.center_momentum': 0.0,
      'dino.freeze_last_layer_epochs': 1.0,
  })
  return config, *helpers.compiled_step(config, steps_per_epoch=2)


@pytest.mark.slow
def test_head_batchnorm_normalises_all_crops_at_once(bn_frozen_step):
  """DINO's wrapper runs the head once on every crop's features."""
  config, run, state, step = bn_frozen_step
  state = jax.tree.map(jnp.copy, state)
  views, batch = _ready_views(run, config)
  variables = jax.device_get(
      {'params': state.params, 'batch_stats': state.batch_stats}
  )
  teacher = jax.device_get(momentum_target(state))
  _, metrics = step(state, batch, run.replicate(jax.random.key(1)))

  apply = helpers.train_apply(run.model)

  def loss_with(student):
    t_out, _ = apply(teacher, jnp.concatenate(views[:2]))
    t = t_out['projection'].reshape(2, 16, -1)
    return float(losses.dino(student, t, jnp.zeros(32), 0.1, 0.04))

  once, _ = apply(
      variables,
      jnp.concatenate(views[:2]),
      more_crops=jnp.concatenate(views[2:]),
  )
  apart = [
      apply(variables, jnp.concatenate(group))[0]['projection']
      for group in (views[:2], views[2:])
  ]
  want = loss_with(once['projection'].reshape(5, 16, -1))
  other = loss_with(jnp.concatenate(apart).reshape(5, 16, -1))
  assert float(metrics['loss']) == pytest.approx(want, rel=1e-4)
  assert abs(want - other) > 1e-3  # Normalising apart is another loss.


def momentum_target(state):
  return {
      'params': state.extra['target_params'],
      'batch_stats': state.extra['target_batch_stats'],
  }


@pytest.mark.slow
def test_last_layer_is_frozen_for_its_epochs_then_trains(bn_frozen_step):
  config, run, state, step = bn_frozen_step
  state = jax.tree.map(jnp.copy, state)
  _, batch = _ready_views(run, config)
  key = run.replicate(jax.random.key(1))

  moved = []
  for _ in range(3):
    before = jax.device_get(state.params)
    state, _ = step(state, batch, key)
    after = jax.device_get(state.params)
    moved.append(
        not np.array_equal(
            before['projector']['prototypes']['kernel'],
            after['projector']['prototypes']['kernel'],
        )
    )
    # The rest of the head trains from the first step.
    assert not np.array_equal(
        before['projector']['Dense_0']['kernel'],
        after['projector']['Dense_0']['kernel'],
    )
  assert moved == [False, False, True]
  assert dino.frozen_params(_config()) == ()


def test_bad_freeze_epochs_is_one_line():
  with pytest.raises(errors.ConfigError, match='freeze_last_layer_epochs'):
    dino.check_config(_config(**{'dino.freeze_last_layer_epochs': -1.0}))
