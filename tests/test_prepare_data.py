"""Tests for ssl_jax.tools.prepare_data (CIFAR-10 npz -> tfds array_record)."""

import collections
import io
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from ssl_jax.tools import prepare_data

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_NPZ = Path(
    os.environ.get(
        'SSL_JAX_CIFAR_NPZ',
        REPO_ROOT.parent / 'shared/data/cifar10_jpeg_q75.npz',
    )
)
CIFAR_NAMES = (
    'airplane',
    'automobile',
    'bird',
    'cat',
    'deer',
    'dog',
    'frog',
    'horse',
    'ship',
    'truck',
)
SIZES = {'train': 30, 'test': 20}


def _jpeg_split(rng, n):
  """Returns (jpeg, offsets, label, file_index) for n images sorted by class."""
  label = np.sort(np.arange(n) % 10).astype(np.uint8)
  blobs = []
  for _ in range(n):
    pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format='JPEG', quality=75)
    blobs.append(buf.getvalue())
  offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
  jpeg = np.frombuffer(b''.join(blobs), dtype=np.uint8)
  return jpeg, offsets, label, np.arange(n, dtype=np.int16)


def _write_npz(path, drop_key=None, **overrides):
  rng = np.random.default_rng(123)
  arrays = {'label_names': np.array(CIFAR_NAMES)}
  for split, n in SIZES.items():
    jpeg, offsets, label, file_index = _jpeg_split(rng, n)
    arrays.update({
        f'{split}_jpeg': jpeg,
        f'{split}_offsets': offsets,
        f'{split}_label': label,
        f'{split}_file_index': file_index,
    })
  arrays.update(overrides)
  arrays.pop(drop_key, None)
  np.savez(path, **arrays)
  return path


def _decoded(npz_path, split):
  """PIL decode of every image of `split`, in npz order, and the labels."""
  with np.load(npz_path) as npz:
    jpeg, offsets = npz[f'{split}_jpeg'], npz[f'{split}_offsets']
    labels = npz[f'{split}_label']
  images = [
      prepare_data.decode_jpeg(jpeg[a:b].tobytes())
      for a, b in zip(offsets[:-1], offsets[1:])
  ]
  return np.stack(images), labels


def _read(data_dir, split):
  src = tfds.data_source(
      'cifar10', split=split, data_dir=os.fspath(data_dir), download=False
  )
  return [src[i] for i in range(len(src))]


@pytest.fixture(scope='module')
def npz_path(tmp_path_factory):
  return _write_npz(tmp_path_factory.mktemp('npz') / 'tiny.npz')


@pytest.fixture(scope='module')
def prepared(npz_path, tmp_path_factory):
  data_dir = tmp_path_factory.mktemp('tfds')
  path = prepare_data.prepare_cifar10_from_npz(
      os.fspath(npz_path), os.fspath(data_dir)
  )
  return data_dir, path


def _ids(examples):
  return [ex['id'].decode() for ex in examples]


@pytest.mark.parametrize('split', ['train', 'test'])
def test_roundtrip_pixels_labels_ids(npz_path, prepared, split):
  data_dir, path = prepared
  assert Path(path) == data_dir / 'cifar10' / '3.0.2'
  images, labels = _decoded(npz_path, split)
  examples = _read(data_dir, split)
  assert len(examples) == SIZES[split]
  ids = _ids(examples)
  assert sorted(ids) == [f'{split}_{i:05d}' for i in range(SIZES[split])]
  assert ids != sorted(ids)  # Shuffled, not in npz (class-sorted) order.
  read_labels = [int(ex['label']) for ex in examples]
  assert collections.Counter(read_labels) == collections.Counter(
      labels.tolist()
  )
  for ex in examples:
    i = int(ex['id'].decode().split('_')[1])
    assert ex['image'].dtype == np.uint8
    np.testing.assert_array_equal(ex['image'], images[i])
    assert int(ex['label']) == labels[i]


def test_builder_info(prepared):
  data_dir, _ = prepared
  builder = tfds.builder('cifar10', data_dir=os.fspath(data_dir))
  assert str(builder.info.version) == '3.0.2'
  assert builder.info.file_format.value == 'array_record'
  assert builder.info.features['label'].names == list(CIFAR_NAMES)
  assert builder.info.features['image'].shape == (32, 32, 3)
  assert {s: builder.info.splits[s].num_examples for s in SIZES} == SIZES


def test_fresh_process_reads(prepared):
  data_dir, _ = prepared
  code = (
      'import sys, tensorflow_datasets as tfds\n'
      'src = tfds.data_source("cifar10", split="test", '
      'data_dir=sys.argv[1], download=False)\n'
      'print(len(src), src[0]["image"].shape)\n'
  )
  out = subprocess.run(
      [sys.executable, '-c', code, os.fspath(data_dir)],
      capture_output=True,
      text=True,
      check=True,
      timeout=60,
  )
  assert out.stdout.split('\n')[0] == '20 (32, 32, 3)'


def test_deterministic_and_idempotent(npz_path, prepared, tmp_path, capsys):
  data_dir, path = prepared
  other = prepare_data.prepare_cifar10_from_npz(
      os.fspath(npz_path), os.fspath(tmp_path)
  )
  for split in SIZES:
    assert _ids(_read(data_dir, split)) == _ids(_read(tmp_path, split))
  records = sorted(Path(path).glob('*.array_record-*'))
  assert [p.read_bytes() for p in records] == [
      (Path(other) / p.name).read_bytes() for p in records
  ]
  mtimes = [p.stat().st_mtime_ns for p in records]
  capsys.readouterr()
  again = prepare_data.prepare_cifar10_from_npz(
      os.fspath(npz_path), os.fspath(data_dir)
  )
  assert again == path
  assert 'already prepared' in capsys.readouterr().out
  assert [p.stat().st_mtime_ns for p in records] == mtimes


def test_max_examples_per_split(npz_path, tmp_path):
  prepare_data.prepare_cifar10_from_npz(
      os.fspath(npz_path), os.fspath(tmp_path), max_examples_per_split=7
  )
  for split, n in SIZES.items():
    ids = _ids(_read(tmp_path, split))
    keep = prepare_data.split_permutation(n, split)[:7]
    assert sorted(ids) == sorted(f'{split}_{i:05d}' for i in keep)
  with pytest.raises(prepare_data.DataDirMismatchError, match='delete it'):
    prepare_data.prepare_cifar10_from_npz(
        os.fspath(npz_path), os.fspath(tmp_path)
    )


def test_missing_key_names_key(tmp_path):
  bad = _write_npz(tmp_path / 'bad.npz', drop_key='test_offsets')
  with pytest.raises(prepare_data.NpzFormatError, match='test_offsets'):
    prepare_data.prepare_cifar10_from_npz(
        os.fspath(bad), os.fspath(tmp_path / 'out')
    )
  assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize(
    'override,match',
    [
        ({'train_offsets': np.arange(5, dtype=np.int64)}, 'train_offsets'),
        ({'test_label': np.full(20, 10, np.uint8)}, 'test_label'),
    ],
)
def test_inconsistent_content(tmp_path, override, match):
  bad = _write_npz(tmp_path / 'bad.npz', **override)
  with pytest.raises(prepare_data.NpzFormatError, match=match):
    prepare_data.load_cifar10_npz(os.fspath(bad))


def test_missing_file(tmp_path):
  with pytest.raises(FileNotFoundError, match='nope.npz'):
    prepare_data.load_cifar10_npz(os.fspath(tmp_path / 'nope.npz'))


def test_cli_bad_npz_exits_2(tmp_path):
  bad = _write_npz(tmp_path / 'bad.npz', drop_key='label_names')
  env = dict(os.environ, PYTHONPATH=os.fspath(REPO_ROOT))
  out = subprocess.run(
      [
          sys.executable,
          '-m',
          'ssl_jax.tools.prepare_data',
          f'--npz={bad}',
          f'--data_dir={tmp_path / "out"}',
      ],
      capture_output=True,
      text=True,
      env=env,
      timeout=60,
  )
  assert out.returncode == 2
  assert out.stderr.strip().splitlines() == [
      f'error: {bad}: missing key(s) label_names'
  ]


@pytest.mark.skipif(
    not REAL_NPZ.is_file(),
    reason=f'real CIFAR-10 npz not found at {REAL_NPZ} (set SSL_JAX_CIFAR_NPZ)',
)
def test_real_npz_subset(tmp_path):
  prepare_data.prepare_cifar10_from_npz(
      os.fspath(REAL_NPZ), os.fspath(tmp_path), max_examples_per_split=200
  )
  with np.load(REAL_NPZ) as npz:
    jpeg, offsets = npz['train_jpeg'], npz['train_offsets']
    labels = npz['train_label']
  examples = _read(tmp_path, 'train')
  assert len(examples) == 200
  assert len(_read(tmp_path, 'test')) == 200
  assert len({int(ex['label']) for ex in examples}) == 10
  for ex in examples:
    i = int(ex['id'].decode().split('_')[1])
    jpeg_bytes = jpeg[offsets[i] : offsets[i + 1]].tobytes()
    np.testing.assert_array_equal(
        ex['image'], prepare_data.decode_jpeg(jpeg_bytes)
    )
    assert int(ex['label']) == labels[i]
