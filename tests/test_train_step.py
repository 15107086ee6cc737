"""The compiled SimCLR step: 8 devices equal 1 device on the same global batch."""

import jax
import numpy as np
import pytest

from ssl_jax import methods
from ssl_jax.training import optim
from ssl_jax.training import step as step_lib
from tests import helpers


def _run_step(devices, config, batch):
  mesh = step_lib.make_mesh(devices)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  data = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
  model = methods.get(config.method).build_model(config, 10)
  schedule = optim.learning_rate_schedule(config, steps_per_epoch=10)
  tx = optim.make_optimizer(config, schedule)
  state = jax.device_put(
      step_lib.create_state(config, model, tx, jax.random.key(0), 3), replicated
  )
  before = jax.device_get(state)
  step = step_lib.compile_train_step(config, model, tx, schedule, mesh)
  state, metrics = step(
      state,
      jax.device_put(batch, data),
      jax.device_put(jax.random.key(7), replicated),
  )
  return before, jax.device_get(state), jax.device_get(metrics)


@pytest.mark.slow
def test_eight_devices_equal_one_device():
  assert jax.device_count() == 8
  # SGD without momentum: the update is -lr * grad, so params compare gradients.
  config = helpers.tiny_config(**{
      'optimizer.name': 'sgd',
      'optimizer.momentum': 0.0,
      'optimizer.weight_decay': 0.0,
      'optimizer.warmup_epochs': 0,
      'image_size': 16,
  })
  rng = np.random.default_rng(0)
  batch = {
      'image': rng.integers(0, 256, (16, 16, 16, 3), dtype=np.uint8),
      'label': rng.integers(-1, 10, (16,)).astype(np.int32),
  }
  before, one, m_one = _run_step(jax.devices()[:1], config, batch)
  _, eight, m_eight = _run_step(jax.devices(), config, batch)
  assert int(one.step) == int(eight.step) == 1
  for k in ('loss', 'contrastive_accuracy', 'online_probe/loss', 'grad_norm'):
    np.testing.assert_allclose(m_eight[k], m_one[k], rtol=1e-5, err_msg=k)
  lr = float(m_one['learning_rate'])
  grads_one = jax.tree.map(lambda b, a: (b - a) / lr, before.params, one.params)
  grads_eight = jax.tree.map(
      lambda b, a: (b - a) / lr, before.params, eight.params
  )
  for g1, g8 in zip(jax.tree.leaves(grads_one), jax.tree.leaves(grads_eight)):
    np.testing.assert_allclose(g8, g1, rtol=2e-3, atol=2e-5)
  # BatchNorm statistics are global: the same on both meshes.
  for s1, s8 in zip(
      jax.tree.leaves(one.batch_stats), jax.tree.leaves(eight.batch_stats)
  ):
    np.testing.assert_allclose(s8, s1, rtol=1e-4, atol=1e-6)
  assert any(np.abs(g).max() > 0 for g in jax.tree.leaves(grads_one))


@pytest.mark.slow
def test_bn_statistics_cover_both_views():
  """The first BN's running mean is the mean over all 2B augmented views."""
  config = helpers.tiny_config(
      **{'optimizer.name': 'sgd', 'optimizer.warmup_epochs': 0}
  )
  rng = np.random.default_rng(1)
  batch = {
      'image': rng.integers(0, 256, (16, 16, 16, 3), dtype=np.uint8),
      'label': np.zeros(16, np.int32),
  }
  before, after, _ = _run_step(jax.devices(), config, batch)
  from ssl_jax.data import augment  # pylint: disable=g-import-not-at-top

  key = jax.random.fold_in(jax.random.key(7), 0)
  views = augment.make_views(
      key, batch['image'], (config.augment.view1, config.augment.view2), 16
  )
  x = np.concatenate(views)
  kernel = before.params['encoder']['Conv_0']['kernel']
  y = jax.lax.conv_general_dilated(
      x, kernel, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')
  )
  want = 0.1 * np.asarray(y).mean(axis=(0, 1, 2))  # momentum 0.9 from zeros.
  got = after.batch_stats['encoder']['BatchNorm_0']['mean']
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
  half = 0.1 * np.asarray(y[:16]).mean(axis=(0, 1, 2))
  assert not np.allclose(got, half, rtol=1e-3)
