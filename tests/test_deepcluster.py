"""DeepCluster: the epoch hook re-clusters, re-seeds empty clusters, resets the head."""

import shutil

import flax.linen as nn
import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from ssl_jax import methods
from ssl_jax.data import input_pipeline
from ssl_jax.methods import deepcluster
from ssl_jax.training import checkpoint
from ssl_jax.training import optim
from ssl_jax.training import step as step_lib
from ssl_jax.training import train
from tests import helpers


def _setup(k=6, n=32):
  config = helpers.tiny_config(
      method='deepcluster',
      dataset='cifar10',
      **{
          'optimizer.name': 'adam',
          'deepcluster.num_clusters': k,
          'deepcluster.pca_dim': 4,
      },
  )
  rng = np.random.default_rng(0)
  # Only 3 distinct images: k-means with k=6 must leave clusters empty.
  distinct = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
  images = distinct[np.arange(n) % 3]
  split = input_pipeline.Split(
      'train', [], images, (np.arange(n) % 3).astype(np.int32)
  )
  model = deepcluster.build_model(config, 10)
  tx = optim.make_optimizer(config, optim.learning_rate_schedule(config, 2))
  state = step_lib.create_state(
      config, model, tx, jax.random.key(0), 3, {'train': split}
  )
  # Non-zero optimiser moments everywhere, so the reset is visible.
  state = state.replace(
      opt_state=jax.tree.map(
          lambda x: x + 1 if x.dtype.kind == 'f' else x, state.opt_state
      )
  )
  return config, model, split, state


@pytest.mark.slow
def test_epoch_start_reseeds_empty_clusters_and_reinitialises_head():
  config, model, split, state = _setup()
  mesh = step_lib.make_mesh()
  new, metrics = deepcluster.epoch_start(
      state, 3, model=model, config=config, data={'train': split}, mesh=mesh
  )
  assignments = np.asarray(new.extra['assignments'])
  assert np.all(np.bincount(assignments, minlength=6) > 0)
  assert metrics['deepcluster/reseeded_clusters'] >= 3
  assert metrics['deepcluster/nonempty_clusters'] == 6
  assert 0.0 <= metrics['deepcluster/nmi_labels'] <= 1.0
  assert 0.0 <= metrics['deepcluster/nmi_previous_epoch'] <= 1.0
  # The head is a fresh Dense init from the epoch's key; the encoder is untouched.
  key = jax.random.fold_in(
      jax.random.fold_in(jax.random.key(config.seed), 3), 1
  )
  fresh = nn.Dense(6).init(key, np.zeros((1, 8)))['params']
  for name in ('kernel', 'bias'):
    np.testing.assert_array_equal(new.params['head'][name], fresh[name])
  assert not np.array_equal(
      new.params['head']['kernel'], state.params['head']['kernel']
  )
  for a, b in zip(
      jax.tree.leaves(new.params['encoder']),
      jax.tree.leaves(state.params['encoder']),
  ):
    np.testing.assert_array_equal(a, b)
  # Optimiser moments: zero for the head, kept for everything else.
  old_leaves = jax.tree_util.tree_flatten_with_path(state.opt_state)[0]
  new_leaves = jax.tree.leaves(new.opt_state)
  in_head = lambda path: any(getattr(p, 'key', None) == 'head' for p in path)
  assert any(in_head(path) for path, _ in old_leaves)
  for (path, old), got in zip(old_leaves, new_leaves):
    if in_head(path):
      assert not np.any(np.asarray(got)), path
    else:
      np.testing.assert_array_equal(got, old)


@pytest.mark.slow
def test_train_batches_sample_clusters_uniformly_and_end_with_the_epoch():
  config, _, split, state = _setup(k=2, n=64)
  assignments = np.array([0] * 56 + [1] * 8, np.int32)
  state = state.replace(extra={'assignments': assignments})
  mesh = step_lib.make_mesh()
  sharding = jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec('data')
  )
  batches = list(
      deepcluster.train_batches(
          state=state,
          start_step=4,
          config=config,
          data={'train': split},
          sharding=sharding,
      )
  )
  assert len(batches) == 4  # Steps 4..7: the second epoch of 4 steps of 16.
  pseudo = np.concatenate([np.asarray(b['pseudo_label']) for b in batches])
  np.testing.assert_array_equal(np.bincount(pseudo), [32, 32])


def test_more_clusters_than_images_is_a_clear_error():
  config, model, split, state = _setup(k=6, n=5)
  with pytest.raises(input_pipeline.DataError, match='num_clusters=6'):
    deepcluster.epoch_start(
        state,
        0,
        model=model,
        config=config,
        data={'train': split},
        mesh=step_lib.make_mesh(),
    )


def test_registered():
  assert methods.get('deepcluster') is deepcluster.METHOD


@pytest.mark.slow
def test_resume_mid_epoch_continues_exactly(tmp_path):
  config = helpers.tiny_config(
      method='deepcluster',
      dataset='cifar10',
      checkpoint_every_steps=2,
      **{
          'deepcluster.num_clusters': 4,
          'deepcluster.pca_dim': 4,
          'probe.enabled': False,
      },
  )
  full, resumed = str(tmp_path / 'full'), str(tmp_path / 'resumed')
  with tfds.testing.mock_data(num_examples=64):  # 4 steps/epoch, 8 steps.
    train.train_and_evaluate(config, full)
    shutil.copytree(full, resumed)
    shutil.rmtree(
        tmp_path / 'resumed' / 'checkpoints' / '8'
    )  # Killed at step 6.
    results = train.train_and_evaluate(config, resumed)
  assert results['train/first_step'] == 6

  def final(workdir):
    model = deepcluster.build_model(config, 10)
    tx = optim.make_optimizer(config, optim.learning_rate_schedule(config, 4))
    mesh = step_lib.make_mesh()
    split = input_pipeline.Split(
        'train', [], np.zeros((64, 32, 32, 3), np.uint8), np.zeros(64, np.int32)
    )
    target = jax.device_put(
        step_lib.create_state(
            config, model, tx, jax.random.key(0), 3, {'train': split}
        ),
        jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()),
    )
    ckpt = checkpoint.Checkpointer(workdir, 3)
    state = jax.device_get(ckpt.restore_latest(target))
    ckpt.close()
    return state

  want, got = final(full), final(resumed)
  assert int(got.step) == 8
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    np.testing.assert_array_equal(a, b)
