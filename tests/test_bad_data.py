"""Bad records in a real (tiny) tfds cifar10: named errors, or skipped and counted."""

import io
import os

from array_record.python import array_record_module
import jax
import numpy as np
from PIL import Image
import pytest
from tensorflow_datasets.proto import tf_example_pb2

from ssl_jax.data import batching
from ssl_jax.data import input_pipeline
from ssl_jax.tools import prepare_data
from ssl_jax.training import validate
from tests import helpers
from tests import test_prepare_data

N = test_prepare_data.SIZES['train']  # 30 records.
TRUNCATED, WRONG_SIZE, GRAY, RGBA = 3, 7, 15, N - 1  # tfds indices.
BAD = {TRUNCATED, WRONG_SIZE, RGBA}  # GRAY: tfds repeats it to RGB itself.
_rng = np.random.default_rng(0)
GRAY_PIXELS = _rng.integers(0, 256, (32, 32), np.uint8)
RGBA_PIXELS = _rng.integers(0, 256, (32, 32, 4), np.uint8)


def _png(pixels):
  buf = io.BytesIO()
  Image.fromarray(pixels).save(buf, format='PNG')
  return buf.getvalue()


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  """A prepared cifar10 whose train split has 3 bad records and a gray one."""
  root = tmp_path_factory.mktemp('bad_data')
  npz = test_prepare_data._write_npz(root / 'tiny.npz')  # pylint: disable=protected-access
  path = prepare_data.prepare_cifar10_from_npz(
      os.fspath(npz), os.fspath(root / 'tfds')
  )
  (shard,) = [f for f in os.listdir(path) if f.startswith('cifar10-train.')]
  shard = os.path.join(path, shard)
  reader = array_record_module.ArrayRecordReader(shard)
  records = reader.read_all()
  reader.close()
  new_images = {
      TRUNCATED: lambda png: png[: len(png) // 2],
      WRONG_SIZE: lambda _: _png(np.zeros((31, 32, 3), np.uint8)),
      GRAY: lambda _: _png(GRAY_PIXELS),
      RGBA: lambda _: _png(RGBA_PIXELS),
  }
  writer = array_record_module.ArrayRecordWriter(shard, 'group_size:1')
  for i, record in enumerate(records):
    example = tf_example_pb2.Example.FromString(record)
    if i in new_images:
      png = example.features.feature['image'].bytes_list.value
      png[0] = new_images[i](png[0])
    writer.write(example.SerializeToString())
  writer.close()
  return os.fspath(root / 'tfds')


def _load(data_dir, **kwargs):
  return input_pipeline.load_split('cifar10', 'train', data_dir, **kwargs)


def _good_images(data_dir):
  """The images of the good records, in order, read one by one."""
  split = _load(data_dir, cache=False)
  return split.read([i for i in range(N) if i not in BAD])


@pytest.mark.parametrize('cache', [True, False])
def test_error_names_the_first_bad_record_and_the_fix(data_dir, cache):
  with pytest.raises(input_pipeline.DataError) as e:
    _load(data_dir, cache=cache).read(np.arange(N))
  message = str(e.value)
  assert '\n' not in message
  assert message.startswith(
      f"record {TRUNCATED} of cifar10 split 'train' "
      f"(index {TRUNCATED} of source 'train') failed to "
      'decode (OSError: '
  )
  assert message.endswith(
      'pass --config.data.bad_images=skip to skip and count bad records.'
  )


def test_error_wrong_shape_and_channels(data_dir):
  split = _load(data_dir, cache=False)
  with pytest.raises(
      input_pipeline.DataError,
      match=r'record 7 .* has shape \(31, 32, 3\), expected '
      r'\(32, 32, 3\); pass --config.data.resize=SIDE to resize every image, '
      r'or --config.data.bad_images=skip',
  ):
    split.read([WRONG_SIZE])
  with pytest.raises(
      input_pipeline.DataError,
      match=r'has shape \(32, 32, 4\), expected \(32, 32, 3\); '
      'pass --config.data.channels=3 to convert it, or '
      '--config.data.bad_images=skip',
  ):
    split.read([RGBA])
  assert split.num_skipped == 0


def test_skip_cached_drops_and_counts(data_dir):
  split = _load(data_dir, bad_images='skip')
  good = _good_images(data_dir)
  assert split.num_skipped == 3 and split.skipped == BAD
  assert len(split) == N - 3
  assert split.images.shape == (N - 3, 32, 32, 3)
  np.testing.assert_array_equal(split.images, good['image'])
  np.testing.assert_array_equal(split.labels, good['label'])


def test_skip_uncached_reads_the_next_good_record(data_dir):
  split = _load(data_dir, cache=False, bad_images='skip')
  assert len(split) == N and split.num_skipped == 0
  first = split.read(np.arange(N))
  again = split.read(np.arange(N)[::-1])
  assert first['image'].shape == (N, 32, 32, 3)
  assert split.num_skipped == 3 and split.skipped == BAD
  for name in ('image', 'label'):
    np.testing.assert_array_equal(again[name][::-1], first[name])
    for bad, replacement in ((TRUNCATED, 4), (WRONG_SIZE, 8), (RGBA, 0)):
      np.testing.assert_array_equal(first[name][bad], first[name][replacement])


def test_grayscale_is_rgb_and_channels3_converts_rgba(data_dir):
  gray = _load(data_dir, bad_images='skip').images[GRAY - 2]  # 3, 7 dropped.
  np.testing.assert_array_equal(gray, np.repeat(GRAY_PIXELS[..., None], 3, -1))
  split = _load(data_dir, bad_images='skip', channels=3)
  assert split.skipped == {TRUNCATED, WRONG_SIZE}
  np.testing.assert_array_equal(split.images[-1], RGBA_PIXELS[..., :3])
  luma = _load(data_dir, bad_images='skip', channels=1)
  assert luma.skipped == {TRUNCATED, WRONG_SIZE}
  assert luma.images.shape == (N - 2, 32, 32, 1)


def test_one_channel_image_in_rgb_split_is_wrong_channel_count():
  """tfds repeats gray to RGB itself; other sources may not."""
  source = [
      {'image': np.zeros((32, 32, 1), np.uint8), 'label': 1},
      {'image': np.ones((32, 32, 3), np.uint8), 'label': 2},
  ]
  split = input_pipeline.Split(
      'train', [source], dataset='cifar10', image_shape=(32, 32, 3)
  )
  with pytest.raises(input_pipeline.DataError, match='data.channels=3'):
    split.read([0])
  split.bad_images = 'skip'
  assert split.read([0, 1])['label'].tolist() == [2, 2]
  assert split.num_skipped == 1


def test_error_from_the_prefetch_thread_keeps_its_message(data_dir):
  split = _load(data_dir, cache=False)
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:2]), ('data',))
  sharding = jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec('data')
  )
  batches = batching.train_batches(
      split, seed=0, batch_size=N, start_step=0, sharding=sharding
  )
  with pytest.raises(
      input_pipeline.DataError,
      match=r"^record \d+ of cifar10 split 'train' .*"
      r'bad_images=skip to skip and count bad records\.$',
  ):
    next(batches)


def test_empty_split_is_an_error(data_dir):
  with pytest.raises(
      input_pipeline.DataError,
      match=r"split 'train\[:0\]' of dataset 'cifar10' in "
      r'data_dir .* is empty or unknown',
  ):
    input_pipeline.load_split('cifar10', 'train[:0]', data_dir)


def test_config_field_is_validated():
  validate.validate(helpers.tiny_config(**{'data.bad_images': 'skip'}), 8)
  with pytest.raises(
      validate.ConfigError,
      match="data.bad_images='drop' must be 'error' or 'skip'",
  ):
    validate.validate(helpers.tiny_config(**{'data.bad_images': 'drop'}), 8)
