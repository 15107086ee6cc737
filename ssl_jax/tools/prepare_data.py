"""Prepares TFDS datasets in array_record format for `tfds.data_source`.

CIFAR-10 is built offline from a local npz of JPEG bytes (see
shared/data/README.md): each image is decoded once with PIL and stored
losslessly as PNG under the standard tfds name `cifar10` (version 3.0.2, same
features as tfds' own builder), so that afterwards

  tfds.data_source('cifar10', split='train', data_dir=data_dir, download=False)

works in any process and returns exactly the PIL-decoded pixels. Other datasets
with public downloads (e.g. `stl10`) go through tfds' own builders.

Each CIFAR-10 split is permuted with a fixed seed before writing (and
`max_examples_per_split` keeps a prefix of that permutation); tfds then
reorders examples by a deterministic hash of their key (the npz index), so the
on-disk order is shuffled and identical on every build. The `id` feature,
`f'{split}_{i:05d}'`, gives the npz index `i` of each example.

Usage:

  python -m ssl_jax.tools.prepare_data --npz=PATH --data_dir=DIR \
      [--max_examples_per_split=N]
  python -m ssl_jax.tools.prepare_data --dataset=stl10 --data_dir=DIR
"""

import contextlib
import functools
import io
import os
import sys
import tempfile
import time
from typing import Any, Dict, Optional
import zipfile

from absl import app
from absl import flags
from absl import logging
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds
from tensorflow_datasets.image_classification import cifar

CIFAR10_NAME = 'cifar10'
CIFAR10_VERSION = '3.0.2'
NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
SPLITS = ('train', 'test')
PERMUTATION_SEED = 0
NPZ_KEYS = tuple(
    f'{s}_{k}' for s in SPLITS for k in ('jpeg', 'offsets', 'label')
) + ('label_names',)


class NpzFormatError(ValueError):
  """The npz file is missing keys or has inconsistent content."""


class DataDirMismatchError(ValueError):
  """`data_dir` holds a cifar10 build with other split sizes."""


def load_cifar10_npz(npz_path: str) -> Dict[str, np.ndarray]:
  """Loads and validates the CIFAR-10 JPEG npz.

  Args:
    npz_path: path to the npz (keys `{split}_jpeg`, `{split}_offsets`,
      `{split}_label` for split in train/test, and `label_names`).

  Returns:
    Dict from key (those in `NPZ_KEYS`) to numpy array.

  Raises:
    FileNotFoundError: if `npz_path` does not exist.
    NpzFormatError: if the file is not a readable npz, lacks a key, or has
      inconsistent offsets, labels or label names.
  """
  if not os.path.isfile(npz_path):
    raise FileNotFoundError(f'npz file not found: {npz_path}')
  if not zipfile.is_zipfile(npz_path):
    raise NpzFormatError(f'{npz_path}: not an npz (zip) file')
  try:
    with np.load(npz_path, allow_pickle=False) as npz:
      arrays = {k: npz[k] for k in NPZ_KEYS if k in npz.files}
  except (OSError, ValueError, zipfile.BadZipFile) as e:
    raise NpzFormatError(f'{npz_path}: not a readable npz ({e})') from e
  missing = [k for k in NPZ_KEYS if k not in arrays]
  if missing:
    raise NpzFormatError(f'{npz_path}: missing key(s) {", ".join(missing)}')
  names = arrays['label_names']
  if names.shape != (NUM_CLASSES,):
    raise NpzFormatError(
        f'{npz_path}: label_names has shape {names.shape}, '
        f'expected ({NUM_CLASSES},)'
    )
  for split in SPLITS:
    jpeg, offsets, label = (
        arrays[f'{split}_{k}'] for k in ('jpeg', 'offsets', 'label')
    )
    n = label.shape[0]
    if label.ndim != 1 or offsets.shape != (n + 1,):
      raise NpzFormatError(
          f'{npz_path}: {split}_offsets has shape {offsets.shape}, expected '
          f'({n + 1},) for {n} labels in {split}_label'
      )
    if n and (
        offsets[0] != 0
        or offsets[-1] != jpeg.size
        or np.any(np.diff(offsets) <= 0)
    ):
      raise NpzFormatError(
          f'{npz_path}: {split}_offsets must increase from 0 to '
          f'len({split}_jpeg)={jpeg.size}'
      )
    if n and (label.min() < 0 or label.max() >= NUM_CLASSES):
      raise NpzFormatError(
          f'{npz_path}: {split}_label outside 0..{NUM_CLASSES - 1}'
      )
  return arrays


def decode_jpeg(jpeg_bytes: bytes) -> np.ndarray:
  """Decodes JPEG bytes to an RGB uint8 array with PIL (the reference decode).

  Args:
    jpeg_bytes: encoded image.

  Returns:
    uint8 array of shape (height, width, 3).
  """
  with Image.open(io.BytesIO(jpeg_bytes)) as img:
    return np.asarray(img.convert('RGB'), dtype=np.uint8)


def split_permutation(
    num_examples: int, split: str, seed: int = PERMUTATION_SEED
) -> np.ndarray:
  """Returns the fixed-seed permutation of npz indices used for `split`.

  Args:
    num_examples: number of examples of the split in the npz.
    split: `train` or `test` (each gets its own permutation).
    seed: base seed.

  Returns:
    int array, a permutation of `range(num_examples)`.
  """
  split_id = SPLITS.index(split)
  return np.random.default_rng([seed, split_id]).permutation(num_examples)


def _png_bytes(image: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format='PNG')
  return buf.getvalue()


class _Cifar10FromNpz(cifar.Cifar10, skip_registration=True):
  """tfds' `cifar10` builder, fed from the local JPEG npz (no download)."""

  name = CIFAR10_NAME  # On disk as <data_dir>/cifar10/3.0.2/.
  # Recorded in dataset_info.json; fixed so `-m` runs don't write `__main__`.
  __module__ = 'ssl_jax.tools.prepare_data'

  def __init__(
      self,
      *,
      arrays: Dict[str, np.ndarray],
      max_examples_per_split: Optional[int],
      **kwargs: Any,
  ):
    self._arrays = arrays
    self._max_examples = max_examples_per_split
    self.split_seconds = {}  # Wall time spent generating each split.
    super().__init__(**kwargs)

  def _split_generators(self, dl_manager):
    del dl_manager  # Everything comes from the npz.
    names = [str(n) for n in self._arrays['label_names']]
    self.info.features['label'].names = names
    return {split: self._generate_examples(split) for split in SPLITS}

  def _generate_examples(self, split):  # pytype: disable=signature-mismatch
    jpeg = self._arrays[f'{split}_jpeg']
    offsets = self._arrays[f'{split}_offsets']
    labels = self._arrays[f'{split}_label']
    order = split_permutation(labels.shape[0], split)[: self._max_examples]
    start = time.time()
    for i in order:
      image = decode_jpeg(jpeg[offsets[i] : offsets[i + 1]].tobytes())
      if image.shape != IMAGE_SHAPE:
        raise ValueError(
            f'{split} image {i} has shape {image.shape}, expected {IMAGE_SHAPE}'
        )
      # Key = index in the npz: unique and stable. tfds reorders examples by
      # a (deterministic) hash of the key when writing.
      yield int(i), {
          'id': f'{split}_{i:05d}',
          'image': _png_bytes(image),
          'label': int(labels[i]),
      }
    self.split_seconds[split] = time.time() - start


@contextlib.contextmanager
def _quiet_tfds():
  """Hides tfds' absl warnings/info and its stdout chatter; errors still raise.

  tfds warns about the not-yet-existing version folder and prints a misleading
  "Downloading and preparing dataset Unknown size" for this offline build.

  Yields:
    Nothing.
  """
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.ERROR)
  try:
    with open(os.devnull, 'w') as devnull, contextlib.redirect_stdout(devnull):
      yield
  finally:
    logging.set_verbosity(verbosity)


def _split_counts(builder: tfds.core.DatasetBuilder) -> Dict[str, int]:
  return {s: builder.info.splits[s].num_examples for s in SPLITS}


def prepare_cifar10_from_npz(
    npz_path: str, data_dir: str, max_examples_per_split: Optional[int] = None
) -> str:
  """Builds tfds `cifar10` (array_record) in `data_dir` from the JPEG npz.

  Does nothing (besides checking split sizes) if already prepared.

  Args:
    npz_path: the CIFAR-10 JPEG npz (see shared/data/README.md).
    data_dir: tfds data directory; the dataset goes to
      `data_dir/cifar10/3.0.2/`.
    max_examples_per_split: if set, keep the first N examples of each split's
      fixed permutation (`split_permutation`).

  Returns:
    The directory of the prepared dataset.

  Raises:
    FileNotFoundError: if `npz_path` does not exist.
    NpzFormatError: if the npz lacks a key or has inconsistent content.
    DataDirMismatchError: if `data_dir` already holds cifar10 with other split
      sizes than requested.
  """
  return _prepare_cifar10(npz_path, data_dir, max_examples_per_split)[0]


def _prepare_cifar10(npz_path, data_dir, max_examples_per_split):
  """Implements `prepare_cifar10_from_npz`; also returns seconds per split."""
  if max_examples_per_split is not None and max_examples_per_split < 1:
    raise ValueError(
        f'max_examples_per_split must be >= 1, got {max_examples_per_split}'
    )
  arrays = load_cifar10_npz(npz_path)
  expected = {
      s: len(arrays[f'{s}_label'][:max_examples_per_split]) for s in SPLITS
  }
  with _quiet_tfds():
    builder = _Cifar10FromNpz(
        arrays=arrays,
        max_examples_per_split=max_examples_per_split,
        data_dir=data_dir,
        version=CIFAR10_VERSION,
        file_format='array_record',
    )
    already_prepared = builder.is_prepared()
  path = os.fspath(builder.data_dir)
  if already_prepared:
    got = _split_counts(builder)
    if got != expected:
      raise DataDirMismatchError(
          f'{path} already holds cifar10 with split sizes {got}, but '
          f'{expected} were requested; delete it to rebuild.'
      )
    print(f'cifar10 already prepared at {path}, nothing to do.')
    return path, {}
  # Nothing is downloaded: keep tfds' empty downloads/ dir out of data_dir.
  with tempfile.TemporaryDirectory() as download_dir, _quiet_tfds():
    builder.download_and_prepare(
        download_dir=download_dir,
        download_config=tfds.download.DownloadConfig(try_download_gcs=False),
    )
  got = _split_counts(builder)
  if got != expected:  # Would be a bug in the builder: not a user error.
    raise AssertionError(f'{path}: wrote split sizes {got}, not {expected}')
  return path, builder.split_seconds


def prepare_tfds_dataset(name: str, data_dir: str) -> str:
  """Downloads and prepares a public tfds dataset (needs network access).

  Args:
    name: tfds name, optionally with config/version, e.g. `stl10`.
    data_dir: tfds data directory.

  Returns:
    The directory of the prepared dataset.
  """
  builder = tfds.builder(name, data_dir=data_dir)
  builder.download_and_prepare(file_format='array_record')
  return os.fspath(builder.data_dir)


def _silence_tfds() -> None:
  """CLI only: hides tfds INFO/WARNING logs, TF C++ logs and progress bars."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # If TF gets imported.
  logging.set_verbosity(logging.ERROR)
  tfds.disable_progress_bar()


def _define_flags():
  """This command line's flags (defined only when it runs)."""
  return dict(
      npz=flags.DEFINE_string(
          'npz', None, 'CIFAR-10 JPEG npz to build cifar10.'
      ),
      dataset=flags.DEFINE_string(
          'dataset',
          None,
          'Public tfds dataset to download and prepare, e.g. stl10.',
      ),
      data_dir=flags.DEFINE_string('data_dir', None, 'tfds data directory.'),
      max_examples=flags.DEFINE_integer(
          'max_examples_per_split',
          None,
          'Keep at most N examples per split.',
          lower_bound=1,
      ),
  )


def main(argv, *, npz, dataset, data_dir, max_examples) -> None:
  """The command line: prepares one dataset and prints its split sizes."""
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not data_dir.value or bool(npz.value) == bool(dataset.value):
    print(
        'error: pass --data_dir and exactly one of --npz, --dataset',
        file=sys.stderr,
    )
    sys.exit(2)
  _silence_tfds()
  start = time.time()
  split_seconds = {}
  try:
    if npz.value:
      path, split_seconds = _prepare_cifar10(
          npz.value, data_dir.value, max_examples.value
      )
    else:
      path = prepare_tfds_dataset(dataset.value, data_dir.value)
  except (FileNotFoundError, NpzFormatError, DataDirMismatchError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  total = time.time() - start
  splits = tfds.builder_from_directory(path).info.splits
  for split in sorted(splits):
    seconds = split_seconds.get(split, total)  # Total if not split-timed.
    print(f'{split}: {splits[split].num_examples} examples, {seconds:.1f} s')
  print(f'done in {total:.1f} s: {path}')


if __name__ == '__main__':
  app.run(functools.partial(main, **_define_flags()))
