"""Folder datasets: listing, decoding, bad files, facts, training and resume."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
from PIL import Image
import pytest

from ssl_jax import embed
from ssl_jax import errors
from ssl_jax.data import folder
from ssl_jax.data import input_pipeline
from ssl_jax.training import run as run_lib
from ssl_jax.training import train
from ssl_jax.training import validate
from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _save(path, array, mode=None, fmt=None):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array, mode).save(path, fmt)


@pytest.fixture
def mixed(tmp_path):
  """Labelled train (nested, mixed formats/sizes/modes, an empty class), unlabelled, test."""
  rng = np.random.default_rng(0)
  rgb = lambda h, w: rng.integers(0, 256, (h, w, 3), np.uint8)
  d = tmp_path / 'data'
  _save(str(d / 'train/cat/a.jpg'), rgb(20, 30))
  _save(str(d / 'train/cat/deeper/b.png'), rgb(40, 40))
  _save(str(d / 'train/dog/c.bmp'), rgb(24, 24))
  gray = rng.integers(0, 256, (16, 16), np.uint8)
  _save(str(d / 'train/dog/gray.png'), gray)
  rgba = rng.integers(0, 256, (18, 18, 4), np.uint8)
  _save(str(d / 'train/dog/alpha.png'), rgba)
  deep = (rng.integers(0, 65536, (16, 16))).astype(np.uint16)
  Image.fromarray(deep).save(str(d / 'train/dog/deep.tif'))
  os.makedirs(d / 'train/empty_class')
  (d / 'train/.DS_Store').write_bytes(b'\0')
  for i in range(3):
    _save(str(d / f'unlabelled/{i}.jpg'), rgb(30, 30))
  _save(str(d / 'test/cat/x.jpg'), rgb(20, 20))
  _save(str(d / 'test/dog/y.jpg'), rgb(20, 20))
  return str(d), gray, rgba, deep


def test_listing_labels_and_classes(mixed):
  data_dir = mixed[0]
  info = input_pipeline.dataset_info('folder', data_dir)
  assert info['class_names'] == ('cat', 'dog', 'empty_class')
  assert info['num_classes'] == 3
  assert info['splits'] == {'test': 2, 'train': 6, 'unlabelled': 3}
  # The splits' first images: 20x20 (test), 20x30 (train), 30x30 RGB.
  assert info['image_shape'] == (None, None, 3)
  train = folder.Source(
      os.path.join(data_dir, 'train'), ('cat', 'dog', 'empty_class')
  )
  assert train.listing.paths == (
      'cat/a.jpg',
      'cat/deeper/b.png',
      'dog/alpha.png',
      'dog/c.bmp',
      'dog/deep.tif',
      'dog/gray.png',
  )
  np.testing.assert_array_equal(train.labels, [0, 0, 1, 1, 1, 1])
  np.testing.assert_array_equal(
      folder.Source(os.path.join(data_dir, 'unlabelled')).labels, [-1, -1, -1]
  )


def test_modes_are_converted(mixed):
  data_dir, gray, rgba, deep = mixed
  np.testing.assert_array_equal(
      folder.decode(os.path.join(data_dir, 'train/dog/gray.png'))[..., 0], gray
  )
  np.testing.assert_array_equal(
      folder.decode(os.path.join(data_dir, 'train/dog/alpha.png')),
      rgba[..., :3],
  )
  got = folder.decode(os.path.join(data_dir, 'train/dog/deep.tif'))
  assert got.shape == (16, 16, 1) and got.dtype == np.uint8
  np.testing.assert_array_equal(got[..., 0], np.round(deep * (255 / 65535)))


@pytest.mark.parametrize('cache', [True, False])
def test_split_resized_to_rgb_and_combined_with_plus(mixed, cache):
  data_dir = mixed[0]
  split = input_pipeline.load_split(
      'folder',
      'train+unlabelled',
      data_dir,
      cache=cache,
      resize=12,
      channels=3,
  )
  assert len(split) == 9
  batch = split.read(np.arange(9))
  assert batch['image'].shape == (9, 12, 12, 3)
  np.testing.assert_array_equal(batch['label'], [0, 0, 1, 1, 1, 1, -1, -1, -1])


def test_mixed_sizes_without_resize_ask_for_it(mixed):
  with pytest.raises(
      errors.DataError, match='mixed sizes; set --config.data.re'
  ):
    input_pipeline.load_split('folder', 'train', mixed[0], channels=3)
  # A method that crops on device only needs one stored size...
  config = helpers.tiny_config(
      dataset='folder', data_dir=mixed[0], method='supervised'
  )
  with pytest.raises(validate.ConfigError, match='mixed sizes'):
    validate.validate(config, num_devices=8)
  # ...where SimCLR cuts its crops from each original on the host.
  config = helpers.tiny_config(dataset='folder', data_dir=mixed[0])
  config.data.channels = 3
  validate.validate(config, num_devices=8)


def test_odd_image_names_the_file_and_the_fix(tmp_path):
  data_dir = helpers.make_folder(tmp_path, size=20)
  odd = os.path.join(data_dir, 'train', 'class_1', 'odd.jpg')
  _save(odd, np.zeros((24, 20), np.uint8))
  with pytest.raises(errors.DataError) as e:
    input_pipeline.load_split('folder', 'train', data_dir)
  message = str(e.value)
  assert '\n' not in message
  assert f"file '{odd}' (record 16 of 'train') has shape (24, 20, 1)" in message
  assert '--config.data.channels=3 to convert it' in message


# In workers, one bad file is enough: both fail the same way, in Pillow.
@pytest.mark.parametrize(
    'bad,workers',
    [
        ('corrupt.jpg', 1),
        ('notes.png', 1),
        pytest.param('corrupt.jpg', 2, marks=pytest.mark.slow),
    ],
)
@pytest.mark.usefixtures('small_reads_in_workers')
def test_bad_file_is_named_or_skipped_and_counted(mixed, bad, workers):
  data_dir = mixed[0]
  path = os.path.join(data_dir, 'unlabelled', bad)
  with open(path, 'wb') as f:
    f.write(b'\xff\xd8\xff\xe0 truncated' if bad.endswith('jpg') else b'hi')
  with pytest.raises(
      errors.DataError, match=f"file '{path}'.*failed to decode"
  ):
    input_pipeline.load_split(
        'folder', 'unlabelled', data_dir, resize=30, workers=workers
    )
  for cache in (True, False):
    split = input_pipeline.load_split(
        'folder',
        'unlabelled',
        data_dir,
        cache=cache,
        resize=30,
        bad_images='skip',
        workers=workers,
    )
    images = split.read(np.arange(len(split)))['image']
    assert images.shape[1:] == (30, 30, 3)  # Uniform within the split.
    assert split.num_skipped == 1


@pytest.mark.usefixtures('small_reads_in_workers')
def test_worker_processes_read_what_one_process_reads(tmp_path):
  data_dir = helpers.make_folder(tmp_path, size=20)
  idx = np.random.default_rng(0).permutation(24)
  one, two = (
      input_pipeline.load_split(
          'folder', 'train', data_dir, cache=False, resize=16, workers=w
      )
      for w in (1, 2)
  )
  want, got = one.read(idx), two.read(idx)
  np.testing.assert_array_equal(want['image'], got['image'])
  np.testing.assert_array_equal(want['label'], got['label'])
  cached = input_pipeline.load_split(
      'folder', 'train', data_dir, resize=16, workers=2
  )
  np.testing.assert_array_equal(cached.read(idx)['image'], want['image'])


def test_missing_split_folder_is_one_line_naming_it(mixed):
  data_dir = mixed[0]
  with pytest.raises(errors.DataError) as e:
    input_pipeline.load_split('folder', 'validation', data_dir)
  message = str(e.value)
  assert '\n' not in message
  assert os.path.join(data_dir, 'validation') in message
  assert 'test, train, unlabelled' in message


def test_config_without_data_dir_is_a_config_error():
  config = helpers.tiny_config(dataset='folder', data_dir='')
  with pytest.raises(validate.ConfigError, match='needs --config.data_dir'):
    validate.validate(config, num_devices=8)


def test_listing_is_cached_and_fast(tmp_path):
  root = tmp_path / 'many' / 'train'
  os.makedirs(root)
  for i in range(5000):
    (root / f'{i:05d}.jpg').write_bytes(b'')
  listing = folder.list_split(str(root))
  assert len(listing.paths) == 5000 and listing.paths[0] == '00000.jpg'
  assert folder.list_split(str(root)) is listing


def _folder_config(data_dir, **overrides):
  return helpers.tiny_config(**{
      'dataset': 'folder',
      'data_dir': data_dir,
      'data.cache': False,  # Decoded per batch, in worker processes.
      'optimizer.name': 'lars',
      'learning_rate': 0.5,
      'checkpoint_every_steps': 4,
      'evals.embedding.enabled': False,
      **overrides,
  })


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """6 steps (3 per epoch) on a folder; checkpoints at 4 (mid-epoch) and 6."""
  base = tmp_path_factory.mktemp('folder_run')
  data_dir = helpers.make_folder(
      base / 'data', splits=(('train', 3, 16), ('test', 3, 4)), size=20
  )
  workdir = str(base / 'full')
  results = train.train_and_evaluate(_folder_config(data_dir), workdir)
  return data_dir, workdir, results


def _params(workdir, config):
  run = run_lib.build(config)
  variables = run.restore_variables(workdir)[1]
  return jax.device_get(variables)


@pytest.mark.slow
def test_trains_and_resumes_mid_epoch_bitwise(trained, tmp_path):
  data_dir, full_dir, full = trained
  assert full['train/steps'] == 6 and full['train/epochs'] == 2
  assert np.isfinite(full['linear_probe/test_accuracy'])
  workdir = str(tmp_path / 'resumed')
  shutil.copytree(full_dir, workdir)
  shutil.rmtree(os.path.join(workdir, 'checkpoints', '6'))  # Killed after 4.
  os.remove(os.path.join(workdir, 'results.json'))
  config = _folder_config(data_dir)
  resumed = train.train_and_evaluate(config, workdir)
  assert resumed['train/first_step'] == 4
  want, got = _params(full_dir, config), _params(workdir, config)
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    np.testing.assert_array_equal(a, b)
  assert (
      resumed['linear_probe/test_accuracy']
      == full['linear_probe/test_accuracy']
  )


@pytest.mark.slow
def test_one_device_matches_eight(trained, tmp_path):
  data_dir, full_dir, _ = trained
  assert jax.device_count() == 8
  workdir = str(tmp_path / 'one')
  script = (
      'import sys; sys.path.insert(0, sys.argv[1]);'
      'from tests import helpers, test_folder;'
      'from ssl_jax.training import train;'
      'import jax; assert jax.device_count() == 1;'
      'train.train_and_evaluate(test_folder._folder_config(sys.argv[2]), '
      'sys.argv[3])'
  )
  env = helpers.subprocess_env()
  subprocess.run(
      [sys.executable, '-c', script, ROOT, data_dir, workdir],
      check=True,
      env=env,
      cwd=ROOT,
  )
  config = _folder_config(data_dir)
  want, got = _params(full_dir, config), _params(workdir, config)
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)
  with open(os.path.join(workdir, 'results.json')) as f:
    assert json.load(f)['train/steps'] == 6


@pytest.mark.slow
def test_unlabelled_folder_trains_and_skips_the_evaluations(tmp_path):
  data_dir = helpers.make_folder(
      tmp_path / 'data', splits=(('train', 0, 32),), size=20
  )
  results = train.train_and_evaluate(
      _folder_config(data_dir), str(tmp_path / 'w')
  )
  assert results['train/steps'] == 4
  assert not any(k.startswith('linear_probe') for k in results)


@pytest.mark.slow
def test_embed_a_folder_and_a_split(trained, tmp_path):
  data_dir, workdir, _ = trained
  out = str(tmp_path / 'test.npz')
  summary = embed.embed_to_file(
      workdir, out, images=os.path.join(data_dir, 'test'), batch_size=5
  )
  got = np.load(out)
  assert got['embeddings'].shape == (12, summary['dim'])
  assert got['embeddings'].dtype == np.float32
  assert got['paths'][0] == os.path.join('class_0', '0.jpg')
  np.testing.assert_array_equal(got['labels'], np.repeat([0, 1, 2], 4))
  assert list(got['class_names']) == ['class_0', 'class_1', 'class_2']
  # The same images through the Python API and through a split of the run.
  embedder = embed.load(workdir)
  images = input_pipeline.load_split('folder', 'test', data_dir).images
  with pytest.raises(errors.DataError, match='expected uint8'):
    embedder(images / 255.0)
  np.testing.assert_allclose(
      embedder(images), got['embeddings'], rtol=1e-5, atol=1e-5
  )
  embed.embed_to_file(workdir, out, split='test')
  split = np.load(out)
  np.testing.assert_array_equal(split['indices'], np.arange(12))
  np.testing.assert_allclose(
      split['embeddings'], got['embeddings'], rtol=1e-5, atol=1e-5
  )


@pytest.mark.slow
def test_embed_command_line_skips_a_bad_file(trained, tmp_path):
  data_dir, workdir, _ = trained
  images = tmp_path / 'mine'
  shutil.copytree(os.path.join(data_dir, 'test', 'class_1'), images)
  (images / 'broken.jpg').write_text('not an image')
  out = str(tmp_path / 'mine.npz')
  done = subprocess.run(
      [
          sys.executable,
          '-m',
          'ssl_jax.embed',
          f'--workdir={workdir}',
          f'--images={images}',
          f'--out={out}',
      ],
      check=True,
      capture_output=True,
      text=True,
      cwd=ROOT,
  )
  assert '4 embeddings of dimension' in done.stdout
  assert '1 files skipped' in done.stdout
  got = np.load(out)
  assert (got['labels'] == -1).all() and len(got['paths']) == 4


@pytest.mark.slow
def test_script_without_main_guard_falls_back_to_one_process(tmp_path):
  data_dir = helpers.make_folder(tmp_path / 'data', size=20)
  script = tmp_path / 'unguarded.py'
  script.write_text(
      'import sys\n'
      f'sys.path.insert(0, {ROOT!r})\n'
      'from ssl_jax.data import decoding, input_pipeline\n'
      'decoding.MIN_TASKS = 0\n'
      'split = input_pipeline.load_split(\n'
      f'    "folder", "train", {data_dir!r}, cache=False, workers=2)\n'
      'print("read", split.read(list(range(24)))["image"].shape)\n'
  )
  # The spawned workers import the script and fail; only the parent reads.
  done = subprocess.run(
      [sys.executable, str(script)],
      capture_output=True,
      text=True,
      timeout=300,
      cwd=str(tmp_path),
  )
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.count('read (24, 20, 20, 3)') == 1
  assert "if __name__ == '__main__':" in done.stderr


@pytest.mark.slow
def test_embed_loads_where_the_training_data_is_gone(trained, tmp_path):
  data_dir, full_dir, _ = trained
  workdir = str(tmp_path / 'moved')
  shutil.copytree(full_dir, workdir)
  path = os.path.join(workdir, 'config.json')
  with open(path) as f:
    config = json.load(f)
  config['data_dir'] = str(tmp_path / 'gone')
  with open(path, 'w') as f:
    json.dump(config, f)
  images = input_pipeline.load_split('folder', 'test', data_dir).images
  want = embed.load(full_dir)(images)
  np.testing.assert_allclose(embed.load(workdir)(images), want, rtol=1e-6)


def test_loose_images_are_left_out_of_what_probes_fit_and_report(mixed):
  split = input_pipeline.load_split(
      'folder', 'train+unlabelled', mixed[0], resize=12, channels=3
  )
  labelled = input_pipeline.labelled_only(split)
  assert len(labelled) == 6 and (labelled.labels >= 0).all()
  alone = input_pipeline.load_split('folder', 'unlabelled', mixed[0], resize=12)
  with pytest.raises(errors.DataError, match='has no labelled images'):
    input_pipeline.labelled_only(alone)


def test_missing_data_dir_is_a_data_error(tmp_path):
  with pytest.raises(errors.DataError, match='needs --config.data_dir=DIR'):
    input_pipeline.load_split('folder', 'train', str(tmp_path / 'nope'))


def test_missing_probe_split_is_caught_before_training(tmp_path):
  data_dir = helpers.make_folder(tmp_path, splits=(('train', 2, 4),), size=16)
  config = helpers.tiny_config(dataset='folder', data_dir=data_dir)
  with pytest.raises(
      validate.ConfigError, match="split 'test' is not a folder"
  ):
    validate.validate(config, num_devices=8)
  unlabelled = helpers.make_folder(
      tmp_path / 'u', splits=(('train', 0, 8),), size=16
  )
  validate.validate(  # No classes: no evaluations, so no test split needed.
      helpers.tiny_config(dataset='folder', data_dir=unlabelled), num_devices=8
  )


def test_renumbered_classes_refuse_to_resume(tmp_path):
  facts = dict(image_shape=(8, 8, 3), class_names=('a', 'b'), splits={})
  train._save_dataset_facts(str(tmp_path), facts)  # pylint: disable=protected-access
  train._save_dataset_facts(str(tmp_path), facts)  # pylint: disable=protected-access
  with pytest.raises(errors.DataError, match='classes of the dataset changed'):
    train._save_dataset_facts(  # pylint: disable=protected-access
        str(tmp_path), dict(facts, class_names=('a', 'b', 'c'))
    )
