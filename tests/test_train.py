"""End to end on tfds mock data: train, checkpoint, resume exactly, probe, results."""

import json
import os
import shutil

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from ssl_jax import methods
from ssl_jax.data import input_pipeline
from ssl_jax.training import checkpoint
from ssl_jax.training import optim
from ssl_jax.training import step as step_lib
from ssl_jax.training import train
from tests import helpers

# 64 mock images, batch 16: 4 steps per epoch, 8 steps, checkpoints at 4 and 8.
NUM_EXAMPLES = 64


def _config():
  return helpers.tiny_config(
      **{'dataset': 'cifar10', 'optimizer.name': 'lars', 'learning_rate': 0.5}
  )


def _final_state(workdir, config):
  model = methods.get(config.method).build_model(config, 10)
  tx = optim.make_optimizer(config, optim.learning_rate_schedule(config, 4))
  mesh = step_lib.make_mesh()
  target = jax.device_put(
      step_lib.create_state(config, model, tx, jax.random.key(0), 3),
      jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()),
  )
  ckpt = checkpoint.Checkpointer(workdir, 3)
  state = jax.device_get(ckpt.restore_latest(target))
  ckpt.close()
  return state


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('full'))
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
    results = train.train_and_evaluate(_config(), workdir)
  return workdir, results


@pytest.mark.slow
def test_writes_results_and_checkpoints(uninterrupted):
  workdir, results = uninterrupted
  with open(os.path.join(workdir, 'results.json')) as f:
    saved = json.load(f)
  assert saved == pytest.approx(results)
  for key in (
      'linear_probe/test_accuracy',
      'random_init/linear_probe/test_accuracy',
      'train/images_per_second',
      'train/wall_seconds',
      'linear_probe/test_f1/macro_avg',
  ):
    assert np.isfinite(saved[key]), key
  assert saved['train/steps'] == 8 and saved['train/first_step'] == 0
  assert saved['train/num_params'] > 0
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['4', '8']
  assert os.path.exists(os.path.join(workdir, 'config.json'))
  assert any(f.startswith('events.out') for f in os.listdir(workdir))


@pytest.mark.slow
def test_resume_continues_step_lr_and_data_exactly(uninterrupted, tmp_path):
  full_dir, full_results = uninterrupted
  workdir = str(tmp_path / 'resumed')
  shutil.copytree(full_dir, workdir)
  shutil.rmtree(
      os.path.join(workdir, 'checkpoints', '8')
  )  # "Killed" after step 4.
  os.remove(os.path.join(workdir, 'results.json'))
  config = _config()
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
    results = train.train_and_evaluate(config, workdir)
  assert results['train/first_step'] == 4
  assert results['train/final_learning_rate'] == pytest.approx(
      float(optim.learning_rate_schedule(config, 4)(7))
  )
  want, got = _final_state(full_dir, config), _final_state(workdir, config)
  assert int(got.step) == 8
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    np.testing.assert_array_equal(a, b)
  assert (
      results['linear_probe/test_accuracy']
      == full_results['linear_probe/test_accuracy']
  )


@pytest.mark.slow
def test_incompatible_workdir_names_the_field(uninterrupted, tmp_path):
  workdir = str(tmp_path / 'w')
  shutil.copytree(uninterrupted[0], workdir)
  config = _config()
  config.model.conv_widths = (8, 8, 8, 16)
  with pytest.raises(
      checkpoint.IncompatibleCheckpointError, match=r'model\.conv_widths'
  ):
    checkpoint.check_config(workdir, config)


def test_batch_larger_than_split_is_a_clear_error(tmp_path):
  config = _config()
  config.batch_size = 128
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
    with pytest.raises(input_pipeline.DataError, match='batch_size=128'):
      train.train_and_evaluate(config, str(tmp_path))


@pytest.mark.slow
def test_init_from_loads_only_the_encoder_of_another_run(uninterrupted):
  full_dir, _ = uninterrupted
  simclr = _final_state(full_dir, _config())
  config = helpers.tiny_config(
      method='supervised', dataset='cifar10', init_from=full_dir
  )
  model = methods.get('supervised').build_model(config, 10)
  tx = optim.make_optimizer(config, optim.learning_rate_schedule(config, 4))
  state = step_lib.create_state(config, model, tx, jax.random.key(5), 3)
  for part in ('params', 'batch_stats'):
    got, want = (
        getattr(state, part)['encoder'],
        getattr(simclr, part)['encoder'],
    )
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_array_equal(a, b)
  assert int(state.step) == 0 and 'head' in state.params
  config.model.conv_widths = (8, 8, 8, 16)
  model = methods.get('supervised').build_model(config, 10)
  with pytest.raises(checkpoint.IncompatibleCheckpointError, match='encoder'):
    step_lib.create_state(config, model, tx, jax.random.key(5), 3)


def test_workdir_saved_before_a_field_existed_still_resumes(tmp_path):
  config = _config()
  checkpoint.save_config(str(tmp_path), config)
  os.makedirs(tmp_path / 'checkpoints')
  with open(tmp_path / 'config.json') as f:
    old = json.load(f)
  del old['data']['resize']  # A run saved before data.resize was added.
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump(old, f)
  checkpoint.check_config(str(tmp_path), config)  # No error.
  config.data.label_fraction = 0.5
  with pytest.raises(
      checkpoint.IncompatibleCheckpointError, match='data.label_fraction'
  ):
    checkpoint.check_config(str(tmp_path), config)


@pytest.mark.slow
def test_nonfinite_step_is_skipped_and_counted_when_asked(tmp_path):
  config = _config()
  config.nonfinite = 'skip'
  config.debug.nan_at_step = 5
  config.probe.enabled = False
  with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
    results = train.train_and_evaluate(config, str(tmp_path))
  assert results['train/skipped_steps'] == 1
  assert results['train/steps'] == 8
  state = _final_state(str(tmp_path), config)
  assert int(state.step) == 8
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(state.params))
