"""DINO: teacher temperature warm-up, multi-crop, teacher and centre EMAs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.data import augment
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
  views = augment.make_views(
      global_key,
      jnp.asarray(images),
      (config.augment.view1, config.augment.view2),
      16,
  )
  out, _ = run.model.apply(
      teacher, jnp.concatenate(views), train=True, mutable=['batch_stats']
  )
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


def test_without_local_crops_the_step_still_trains():
  config = _config(**{'dino.num_local_crops': 0})
  run, state, step = helpers.compiled_step(config)
  batch = jax.device_put(
      run.method.example_batch(config, np.random.default_rng(0), 10, 3),
      run.data_sharding,
  )
  state, metrics = step(state, batch, run.replicate(jax.random.key(1)))
  assert np.isfinite(float(metrics['loss']))
