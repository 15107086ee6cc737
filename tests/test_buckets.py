"""Data folders and workdirs at fsspec URLs, as in buckets.

No bucket is reachable from tests: fsspec's in-memory filesystem
(``memory://``) stands in for one. Checkpoints are written by orbax, whose
tensorstore writes local files or ``gs://`` only, so the training run keeps
its workdir at a ``file://`` URL and reads its data from ``memory://``.
"""

import json
import os
import shutil
import time
import uuid

import fsspec
import jax
import numpy as np
from PIL import Image
import pytest

from ssl_jax import errors
from ssl_jax.data import folder
from ssl_jax.data import input_pipeline
from ssl_jax.data import paths
from ssl_jax.evaluation import pictures
from ssl_jax.training import checkpoint
from ssl_jax.training import run as run_lib
from ssl_jax.training import summary
from ssl_jax.training import train
from tests import helpers


@pytest.fixture
def bucket():
  """A fresh ``memory://`` bucket, emptied afterwards."""
  root = f'memory://bucket-{uuid.uuid4().hex}'
  yield root
  fs = fsspec.filesystem('memory')
  if fs.exists(root):
    fs.rm(root, recursive=True)


def _upload(local: str, url: str) -> str:
  """Copies a local folder to ``url`` file by file, as ``gsutil cp -r``."""
  for top, _, files in os.walk(local):
    for name in files:
      rel = os.path.relpath(os.path.join(top, name), local)
      with open(os.path.join(top, name), 'rb') as src:
        with paths.open(paths.join(url, *rel.split(os.sep)), 'wb') as dst:
          dst.write(src.read())
  return url


@pytest.fixture
def dataset(tmp_path, bucket):
  """A folder of 8x8 PNGs (train) and JPEGs (test), locally and in a bucket."""
  local = str(tmp_path / 'data')
  helpers.make_folder(local, splits=(('train', 2, 3),), size=8, fmt='PNG')
  helpers.make_folder(
      local, splits=(('test', 2, 2),), size=8, seed=1, fmt='JPEG'
  )
  return local, _upload(local, paths.join(bucket, 'data'))


def test_paths_lists_and_tells_folders_in_a_bucket(dataset):
  _, url = dataset
  assert sorted(paths.listdir_typed(url)) == [('test', True), ('train', True)]
  assert sorted(paths.listdir_typed(paths.join(url, 'train', 'class_0'))) == [
      (f'{i}.png', False) for i in range(3)
  ]
  assert paths.isdir(url) and not paths.isdir(paths.join(url, 'val'))
  assert paths.exists(paths.join(url, 'test', 'class_1', '1.jpg'))


def test_folder_info_and_source_read_a_bucket_as_its_local_copy(dataset):
  local, url = dataset
  assert folder.info(url) == folder.info(local)
  assert folder.info(url)['splits'] == {'train': 6, 'test': 4}
  for split in ('train', 'test'):
    want = folder.Source(os.path.join(local, split))
    got = folder.Source(paths.join(url, split))
    assert got.listing.paths == want.listing.paths
    np.testing.assert_array_equal(got.labels, want.labels)
    for i in range(len(want)):
      np.testing.assert_array_equal(got[i]['image'], want[i]['image'])


@pytest.mark.parametrize('cache', [True, False])
def test_load_split_reads_a_bucket_as_its_local_copy(dataset, cache):
  local, url = dataset
  want, got = (
      input_pipeline.load_split(
          'folder', 'train+test', data_dir, cache=cache, workers=1
      )
      for data_dir in (local, url)
  )
  assert len(got) == len(want) == 10
  index = np.arange(10)
  for key, value in want.read(index).items():
    np.testing.assert_array_equal(got.read(index)[key], value, err_msg=key)


def test_missing_split_in_a_bucket_names_the_splits_it_has(dataset):
  _, url = dataset
  with pytest.raises(errors.DataError, match='holds the splits test'):
    folder.list_split(paths.join(url, 'val'))
  with pytest.raises(errors.DataError, match='data_dir'):
    folder.info(paths.join(url, 'nothing_here'))


def test_config_results_and_tensorboard_go_to_a_bucket(bucket):
  workdir = paths.join(bucket, 'run')
  config = helpers.tiny_config()
  checkpoint.save_config(workdir, config)
  train.write_json(paths.join(workdir, 'results.json'), {'a': 1.5})
  with paths.open(paths.join(workdir, 'results.json')) as f:
    assert json.load(f) == {'a': 1.5}
  # A saved run (config and checkpoints) refuses a structurally new config.
  paths.makedirs(paths.join(workdir, 'checkpoints', '1'))
  with paths.open(paths.join(workdir, 'checkpoints', '1', 'x'), 'wb') as f:
    f.write(b'.')
  config.seed += 1
  with pytest.raises(checkpoint.IncompatibleCheckpointError, match='seed'):
    checkpoint.check_config(workdir, config)

  writer = summary.create(workdir)
  writer.write_scalars(1, {'loss': 2.0})
  # flush() uploads what tensorboardX's logger thread has taken from its
  # queue (its own flushes come only every 30 s).
  deadline = time.time() + 20
  while not pictures.read_scalars(workdir) and time.time() < deadline:
    writer.flush()
    time.sleep(0.05)
  assert pictures.read_scalars(workdir) == {'loss': [(1, 2.0)]}
  writer.write_scalars(2, {'loss': 1.0})
  writer.close()
  series = pictures.read_scalars(workdir)
  assert series == {'loss': [(1, 2.0), (2, 1.0)]}
  png = paths.join(workdir, 'eval', 'curves.png')
  rgb = pictures.curves(series, png)
  with paths.open(png, 'rb') as f, Image.open(f) as img:
    assert img.size == rgb.shape[1::-1]


def test_workdir_orbax_cannot_write_is_one_line_naming_it(bucket):
  with pytest.raises(checkpoint.CheckpointError, match='memory://.*gs://'):
    checkpoint.make_workdir(paths.join(bucket, 'run'))


def _config(data_dir, **overrides):
  return helpers.tiny_config(**{
      'dataset': 'folder',
      'data_dir': data_dir,
      'data.cache': False,
      'data.workers': 1,  # Spawned workers would not see memory://.
      'image_size': 8,
      'batch_size': 8,
      'num_epochs': 2,  # One step per epoch: 8 train images.
      'checkpoint_every_steps': 1,
      'log_every_steps': 1,
      'probe.max_iters': 5,
      'evals.embedding.enabled': False,
      'evals.knn.every_steps': 0,
      **overrides,
  })


@pytest.mark.slow
def test_trains_from_a_bucket_into_a_url_workdir_and_resumes(tmp_path, bucket):
  local = str(tmp_path / 'data')
  helpers.make_folder(
      local, splits=(('train', 2, 4), ('test', 2, 2)), size=8, fmt='PNG'
  )
  url = _upload(local, paths.join(bucket, 'data'))
  workdir = str(tmp_path / 'run')
  run = run_lib.build(_config(url))
  full = train.train_and_evaluate(_config(url), 'file://' + workdir)
  assert full['train/steps'] == 2
  with open(os.path.join(workdir, 'results.json')) as f:
    assert json.load(f)['train/steps'] == 2
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['1', '2']
  assert any(f.startswith('events.out') for f in os.listdir(workdir))
  want = jax.device_get(run.restore_variables('file://' + workdir)[1])

  shutil.rmtree(os.path.join(workdir, 'checkpoints', '2'))  # Killed after 1.
  os.remove(os.path.join(workdir, 'results.json'))
  resumed = train.train_and_evaluate(_config(url), 'file://' + workdir)
  assert resumed['train/first_step'] == 1
  with open(os.path.join(workdir, 'results.json')) as f:
    assert json.load(f)['train/first_step'] == 1
  step, got = run.restore_variables('file://' + workdir)
  assert step == 2
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(jax.device_get(got))):
    np.testing.assert_array_equal(a, b)
