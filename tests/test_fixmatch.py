"""FixMatch: masking, no gradient through the weak view, the EMA update, data."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssl_jax.data import input_pipeline
from ssl_jax.methods import fixmatch
from ssl_jax.training import optim
from ssl_jax.training import step as step_lib
from tests import helpers


def _logits(seed=0, n=12, c=5, scale=3.0):
  return jnp.asarray(
      np.random.default_rng(seed).normal(size=(n, c)) * scale, jnp.float32
  )


def test_threshold_one_gives_zero_unlabelled_loss_even_when_softmax_rounds_to_one():
  weak = (
      _logits().at[0].set(jnp.array([200.0, 0, 0, 0, 0]))
  )  # softmax == 1.0 in f32.
  assert float(jax.nn.softmax(weak[0]).max()) == 1.0
  loss, aux = fixmatch.pseudo_label_loss(weak, _logits(1), 1.0)
  assert float(loss) == 0.0
  assert not np.any(np.asarray(aux['mask']))


def test_threshold_zero_keeps_every_pseudo_label():
  weak, strong = _logits(), _logits(1)
  loss, aux = fixmatch.pseudo_label_loss(weak, strong, 0.0)
  np.testing.assert_array_equal(aux['mask'], np.ones(12))
  want = optax.softmax_cross_entropy_with_integer_labels(
      strong, jnp.argmax(weak, -1)
  ).mean()
  np.testing.assert_allclose(loss, want, rtol=1e-6)


def test_threshold_masks_by_confidence_and_no_gradient_reaches_the_weak_view():
  weak, strong = _logits(), _logits(1)
  conf = np.asarray(jax.nn.softmax(weak).max(-1))
  tau = float(np.median(conf))
  _, aux = fixmatch.pseudo_label_loss(weak, strong, tau)
  np.testing.assert_array_equal(aux['mask'], (conf >= tau).astype(np.float32))
  g_weak = jax.grad(lambda w: fixmatch.pseudo_label_loss(w, strong, tau)[0])(
      weak
  )
  assert not np.any(np.asarray(g_weak))
  g_strong = jax.grad(lambda s: fixmatch.pseudo_label_loss(weak, s, tau)[0])(
      strong
  )
  assert np.any(np.asarray(g_strong))


@pytest.mark.slow
def test_train_step_updates_the_ema_of_params_and_batch_stats():
  config = helpers.tiny_config(
      method='fixmatch',
      dataset='cifar10',
      **{
          'fixmatch.mu': 2,
          'fixmatch.ema_decay': 0.9,
          'optimizer.warmup_epochs': 0,
      },
  )
  mesh = step_lib.make_mesh()
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  data = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
  model = fixmatch.METHOD.build_model(config, 10)
  schedule = optim.learning_rate_schedule(config, 10)
  tx = optim.make_optimizer(config, schedule)
  state = jax.device_put(
      step_lib.create_state(config, model, tx, jax.random.key(0), 3), replicated
  )
  before = jax.device_get(state)
  rng = np.random.default_rng(0)
  batch = {
      'image': rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8),
      'label': rng.integers(0, 10, (16,)).astype(np.int32),
      'unlabelled_image': rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8),
      'unlabelled_label': rng.integers(-1, 10, (32,)).astype(np.int32),
  }
  step = step_lib.compile_train_step(config, model, tx, schedule, mesh)
  state, metrics = step(
      state,
      jax.device_put(batch, data),
      jax.device_put(jax.random.key(1), replicated),
  )
  after, metrics = jax.device_get(state), jax.device_get(metrics)
  for part, ema in (
      ('params', 'ema_params'),
      ('batch_stats', 'ema_batch_stats'),
  ):
    want = jax.tree.map(
        lambda old, new: 0.9 * old + 0.1 * new,
        before.extra[ema],
        getattr(after, part),
    )
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(after.extra[ema])):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  assert not np.array_equal(
      after.params['head']['kernel'], before.params['head']['kernel']
  )
  for k in (
      'mask_rate',
      'pseudo_label_accuracy',
      'unlabelled_loss',
      'supervised_loss',
  ):
    assert np.isfinite(metrics[k]), k
  assert 0.0 <= metrics['mask_rate'] <= 1.0
  evaluated = fixmatch.eval_variables(after)
  assert evaluated['params'] is after.extra['ema_params']


def test_labelled_subset_is_class_balanced_and_seeded():
  labels = np.repeat(np.arange(10), 50).astype(np.int32)
  images = np.arange(500, dtype=np.uint8).reshape(500, 1, 1, 1)
  split = input_pipeline.Split('train', [], images, labels)
  sub = input_pipeline.labelled_subset(split, 0.1, seed=3)
  np.testing.assert_array_equal(np.bincount(sub.labels), [5] * 10)
  again = input_pipeline.labelled_subset(split, 0.1, seed=3)
  np.testing.assert_array_equal(sub.images, again.images)
  other = input_pipeline.labelled_subset(split, 0.1, seed=4)
  assert not np.array_equal(sub.images, other.images)
  assert input_pipeline.labelled_subset(split, 1.0, seed=3) is split


def test_too_few_labels_for_a_batch_is_a_clear_error():
  config = helpers.tiny_config(
      method='fixmatch', **{'data.label_fraction': 0.1}
  )
  split = input_pipeline.Split(
      'train',
      [],
      np.zeros((40, 32, 32, 3), np.uint8),
      np.arange(40, dtype=np.int32) % 10,
  )
  with pytest.raises(input_pipeline.DataError, match='label_fraction=0.1'):
    fixmatch.prepare_data(config, split, None)
