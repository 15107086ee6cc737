"""The host pipeline: deterministic, restartable order; clear errors offline."""

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from ssl_jax.data import batching
from ssl_jax.data import input_pipeline
from ssl_jax.training import step as step_lib


def test_batch_indices_pure_and_cover_each_epoch():
  a = [batching.batch_indices(3, s, 100, 16) for s in range(12)]
  b = [batching.batch_indices(3, s, 100, 16) for s in range(12)]
  assert all(np.array_equal(x, y) for x, y in zip(a, b))
  epoch0 = np.concatenate(a[:6])  # 100 // 16 = 6 steps per epoch.
  assert len(set(epoch0.tolist())) == 96
  assert not np.array_equal(a[0], a[6])  # A new permutation each epoch.
  assert not np.array_equal(a[0], batching.batch_indices(4, 0, 100, 16))


def test_train_batches_resume_mid_epoch():
  split = input_pipeline.Split(
      'x',
      [],
      np.arange(40, dtype=np.uint8).reshape(40, 1, 1, 1),
      np.arange(40, dtype=np.int32),
  )
  mesh = step_lib.make_mesh()
  sharding = jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec('data')
  )
  full = batching.train_batches(
      split, seed=0, batch_size=8, start_step=0, sharding=sharding, prefetch=2
  )
  labels = [np.asarray(next(full)['label']) for _ in range(7)]
  resumed = batching.train_batches(
      split, seed=0, batch_size=8, start_step=4, sharding=sharding, prefetch=0
  )
  for want in labels[4:]:
    np.testing.assert_array_equal(np.asarray(next(resumed)['label']), want)


def test_missing_dataset_is_one_clear_line(tmp_path):
  with pytest.raises(input_pipeline.DataError) as e:
    input_pipeline.load_split('cifar10', 'train', str(tmp_path))
  message = str(e.value)
  assert '\n' not in message
  assert 'cifar10' in message and str(tmp_path) in message
  assert 'python -m ssl_jax.tools.prepare_data' in message


def test_mock_tfds_split_concatenation_and_labels():
  with tfds.testing.mock_data(num_examples=6):
    split = input_pipeline.load_split('stl10', 'unlabelled+train')
  assert len(split) == 12
  assert (
      split.images.shape == (12, 96, 96, 3) and split.images.dtype == np.uint8
  )
  assert split.labels.dtype == np.int32


def test_uncached_reads_match_cached():
  with tfds.testing.mock_data(num_examples=10):
    cached = input_pipeline.load_split('cifar10', 'train', cache=True)
    lazy = input_pipeline.load_split('cifar10', 'train', cache=False)
    idx = np.array([3, 0, 9])
    np.testing.assert_array_equal(
        lazy.read(idx)['image'], cached.read(idx)['image']
    )


def test_sklearn_digits_fixed_split():
  train_split = input_pipeline.load_split('sklearn_digits', 'train')
  test_split = input_pipeline.load_split('sklearn_digits', 'test')
  assert len(train_split) + len(test_split) == 1797
  assert train_split.images.shape[1:] == (16, 16, 1)
  with pytest.raises(input_pipeline.DataError, match='validation'):
    input_pipeline.load_split('sklearn_digits', 'validation')
