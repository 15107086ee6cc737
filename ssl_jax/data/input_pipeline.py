"""Reading: random-access tfds or folder sources -> uint8 images and labels.

The host only reads uint8 images; augmentation runs on device in the train
step. Reading is random access (``tfds.data_source``, array_record, or a
folder of image files: ``ssl_jax.data.folder``), so any example can be read
by index: ``ssl_jax.data.batching`` builds on that to make the
batch of each step a pure function of ``(seed, step)``. This module also picks
the class-balanced labelled subsets of the few-label settings.
"""

import dataclasses
import functools
import os
import time
from typing import Any, Iterator, Optional

from absl import logging
import numpy as np

from ssl_jax import errors
from ssl_jax.data import decoding
from ssl_jax.data import folder
from ssl_jax.data import tfds_data

DataError = errors.DataError


@functools.lru_cache(maxsize=32)
def dataset_info(dataset: str, data_dir: str = '') -> dict[str, Any]:
  """Facts about a dataset, read before any image of it is.

  Args:
    dataset: a tfds name (facts from its builder), ``'folder'`` (from the
      listing of ``data_dir``) or ``'sklearn_digits'``.
    data_dir: the tfds data_dir, or the dataset folder.

  Returns:
    ``{'image_shape': (H, W, C) (None: varies), 'num_classes',
    'class_names', 'splits': {name: size}}``; tfds splits are known only once
    the dataset is prepared in ``data_dir``.

  Raises:
    DataError: an unknown dataset name, or a folder that is missing or holds
      no image.
  """
  if dataset == 'sklearn_digits':
    return dict(
        image_shape=(16, 16, 1),
        num_classes=10,
        class_names=tuple(str(d) for d in range(10)),
        splits={'train': 1437, 'test': 360},
    )
  if dataset == 'folder':
    return folder.info(data_dir)
  return tfds_data.info(dataset, data_dir)


@dataclasses.dataclass
class Split:
  """A split held as a random-access source, optionally decoded into RAM.

  ``resize`` and ``channels`` (0: as stored) convert every image as it is
  read: a centre crop resized to ``resize`` px, and grayscale <-> RGB. A bad
  record (fails to decode, or does not fit ``image_shape``; None: any) raises
  a :class:`DataError`, or with ``bad_images='skip'`` joins ``skipped`` and is
  dropped (cached) or replaced by the next good record (uncached: batches stay
  full and a pure function of the step). Folder images are decoded by
  ``workers`` processes (1: in this process).
  """

  name: str
  sources: list
  images: Optional[np.ndarray] = None
  labels: Optional[np.ndarray] = None
  resize: int = 0
  channels: int = 0
  dataset: str = ''
  image_shape: Optional[tuple] = None
  bad_images: str = 'error'
  workers: int = 1
  skipped: set = dataclasses.field(default_factory=set, repr=False)

  def __len__(self):
    if self.images is not None:
      return len(self.images)
    return sum(len(s) for s in self.sources)

  @property
  def num_skipped(self) -> int:
    """How many distinct bad records were skipped so far."""
    return len(self.skipped)

  def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Returns ``{'image': uint8 [n,H,W,C], 'label': int32 [n]}`` for indices."""
    if self.images is not None:
      return {'image': self.images[indices], 'label': self.labels[indices]}
    indices = [int(i) for i in indices]
    examples = self._examples(indices)
    # A bad record (now in ``skipped``) is replaced by the next good one.
    return _stack([
        e if e is not None else self._good_example(i)
        for i, e in zip(indices, examples)
    ])

  def read_good(
      self, indices: np.ndarray
  ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Like :meth:`read`, but bad records are dropped instead of replaced.

    Args:
      indices: records to read.

    Returns:
      ``(the indices read, {'image', 'label'} of those)``.
    """
    if self.images is not None:
      return np.asarray(indices), self.read(indices)
    examples = self._examples([int(i) for i in indices])
    kept = [i for i, e in zip(indices, examples) if e is not None]
    good = [e for e in examples if e is not None]
    if not good:
      shape = (0,) + tuple(d or 0 for d in self.image_shape or (0, 0, 0))
      return np.zeros(0, np.int64), {
          'image': np.zeros(shape, np.uint8),
          'label': np.zeros(0, np.int32),
      }
    return np.asarray(kept, np.int64), _stack(good)

  def _good_example(self, i: int) -> tuple[np.ndarray, int]:
    for _ in range(len(self)):
      example = None if i in self.skipped else self._example(i)
      if example is not None:
        return example
      i = (i + 1) % len(self)
    raise DataError(f'every record of split {self.name!r} is bad.')

  def _locate(self, i: int) -> tuple[int, int]:
    """``(source, index in it)`` of record ``i``."""
    j, k = 0, i
    while k >= len(self.sources[j]):
      k, j = k - len(self.sources[j]), j + 1
    return j, k

  def _examples(self, indices: list[int]) -> list:
    """:meth:`_example` of each index (see :meth:`_iter_examples`)."""
    return list(self._iter_examples(indices))

  def _iter_examples(self, indices) -> Iterator[Any]:
    """Yields :meth:`_example` of each index, in order.

    Folder files decode in ``workers`` processes, streamed: this process
    checks finished records while the workers decode the next ones.

    Args:
      indices: the records.

    Yields:
      ``(image, label)``, or None for a skipped bad record.
    """
    indices = list(indices)
    located = [self._locate(i) for i in indices]
    if (
        self.workers <= 1
        or decoding.Workers.broken
        or len(indices) < 2 * self.workers
        or not all(
            isinstance(self.sources[j], folder.Source) for j, _ in located
        )
    ):
      yield from map(self._example, indices)
      return
    tasks = [
        (self.sources[j].path(k), self.resize, self.channels)
        for j, k in located
    ]
    for i, result in zip(indices, decoding.stream(tasks, self.workers)):
      yield self._example(i, result)

  def _example(
      self, i: int, loaded: Optional[tuple[Any, str]] = None
  ) -> Optional[tuple[np.ndarray, int]]:
    """Record ``i`` as (image, label), or None if it is bad and skipped.

    Args:
      i: the record.
      loaded: ``decoding.load_file``'s result for it, where a worker decoded
        it (None: decode it here).

    Returns:
      ``(image, label)``, or None for a bad record with ``bad_images='skip'``.
    """
    (j, k), fix, want = self._locate(i), '', self.image_shape
    try:
      if loaded is None:
        example = self.sources[j][k]
        image = decoding.convert_image(
            example['image'], self.resize, self.channels
        )
        label = example['label']
      elif loaded[0] is None:
        raise _Failed(loaded[1])
      else:
        image, label = loaded[0], self.sources[j].labels[k]
    except _Failed as e:
      why = f'failed to decode ({e})'
    except Exception as e:  # pylint: disable=broad-except
      why = f'failed to decode ({type(e).__name__}: {" ".join(str(e).split())})'
    else:
      if want is None or (
          image.ndim == len(want)
          and all(w is None or w == g for g, w in zip(image.shape, want))
      ):
        return image, int(label)
      why = f'has shape {image.shape}, expected {tuple(want)}'
      if want[-1] and image.shape[-1] != want[-1]:
        fix = f'--config.data.channels={want[-1]} to convert it, or '
      elif image.shape[:2] != tuple(want[:2]):
        fix = '--config.data.resize=SIDE to resize every image, or '
    where = (
        f'record {i} of {self.dataset} split {self.name!r} (index {k} of '
        f'source {self.name.split("+")[j].strip()!r})'
    )
    if isinstance(self.sources[j], folder.Source):
      where = f'file {self.sources[j].path(k)!r} (record {i} of {self.name!r})'
    if self.bad_images != 'skip':
      raise DataError(
          f'{where} {why}; pass {fix}--config.data.bad_images=skip '
          'to skip and count bad records.'
      )
    if not self.skipped:
      logging.warning(
          'Skipping bad %s: %s (more are counted, not logged).', where, why
      )
    self.skipped.add(i)
    return None


class _Failed(Exception):
  """A worker process's decoding error, as text."""


def _stack(examples) -> dict[str, np.ndarray]:
  return {
      'image': np.stack([image for image, _ in examples]),
      'label': np.asarray([label for _, label in examples], np.int32),
  }


def _sklearn_digits(split: str) -> Split:
  """The 1,797 8x8 handwritten digits bundled with scikit-learn, at 16x16."""
  from sklearn import datasets  # pylint: disable=g-import-not-at-top

  digits = datasets.load_digits()
  images = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
  images = images.repeat(2, axis=1).repeat(2, axis=2)[..., None]
  labels = digits.target.astype(np.int32)
  perm = np.random.default_rng(0).permutation(len(labels))
  cut = int(0.8 * len(labels))
  idx = {'train': perm[:cut], 'test': perm[cut:]}.get(split)
  if idx is None:
    raise DataError(
        f"sklearn_digits has splits 'train' and 'test', not {split!r}."
    )
  return Split(split, [], images[idx], labels[idx])


def load_split(
    dataset: str,
    split: str,
    data_dir: str = '',
    cache: bool = True,
    resize: int = 0,
    channels: int = 0,
    bad_images: str = 'error',
    workers: int = 1,
) -> Split:
  """Opens a split (``'a+b'`` concatenates) and optionally decodes it into RAM.

  Args:
    dataset: a tfds name, ``'folder'`` or ``'sklearn_digits'``.
    split: split name(s) joined by ``+`` (for folders, split folder names).
    data_dir: the tfds data_dir (never downloads), or the dataset folder.
    cache: decode every image once into a uint8 array in host memory.
    resize: centre-crop and resize every image to this side (0: keep).
    channels: convert every image to 1 or 3 channels (0: keep).
    bad_images: a record that fails to decode or has the wrong shape raises
      (``'error'``), or is dropped and counted (``'skip'``, see :class:`Split`).
    workers: processes decoding folder images (0: one per CPU core; more
      than 1 needs the calling script under ``if __name__ == '__main__':``).

  Returns:
    A :class:`Split`; ``num_skipped`` counts the bad records skipped.

  Raises:
    DataError: the dataset is not prepared, the split is empty, or (with
      ``bad_images='error'``) a record is bad.
  """
  if dataset == 'sklearn_digits':
    result = _sklearn_digits(split)
    if resize or channels:
      result.images = np.stack(
          [decoding.convert_image(x, resize, channels) for x in result.images]
      )
  else:
    shape = dataset_info(dataset, data_dir)['image_shape']  # Checks data_dir.
    if dataset == 'folder':
      classes = folder.class_names(data_dir)
      sources = [
          folder.Source(os.path.join(data_dir, s.strip()), classes, resize)
          for s in split.split('+')
      ]
    else:
      sources = [
          tfds_data.source(dataset, s.strip(), data_dir)
          for s in split.split('+')
      ]
    if not resize and None in shape[:2]:
      raise DataError(
          f'the images of dataset {dataset!r} have mixed sizes; set '
          '--config.data.resize=SIDE to centre-crop and resize each as read.'
      )
    if not channels and shape[2] is None:
      raise DataError(
          f'the images of dataset {dataset!r} mix grayscale and colour; set '
          '--config.data.channels=3 (or 1) to convert each as read.'
      )
    shape = (resize or shape[0], resize or shape[1], channels or shape[2])
    result = Split(
        split,
        sources,
        resize=resize,
        channels=channels,
        dataset=dataset,
        image_shape=shape,
        bad_images=bad_images,
        workers=decoding.num_workers(workers) if dataset == 'folder' else 1,
    )
    if len(result) and cache:
      result = _decode_all(result)
  if not len(result):
    raise DataError(f'split {split!r} of dataset {dataset!r} is empty.')
  return result


def _decode_all(split: Split) -> Split:
  """The split decoded into RAM, without the bad records it skipped."""
  n, start = len(split), time.time()
  images, labels, kept = None, np.zeros(n, np.int32), 0
  examples = split._iter_examples(range(n))  # pylint: disable=protected-access
  for done, example in enumerate(examples, 1):
    if example is not None:
      if images is None:  # Filled in place: one copy of the pixels.
        images = np.empty((n,) + example[0].shape, np.uint8)
      images[kept], labels[kept] = example
      kept += 1
    # Progress with ETA only where it takes a while.
    if n > 16384 and (done % 8192 == 0 or done == n):
      rate = done / (time.time() - start)
      logging.info(
          'Decoding %s: %d/%d images, ETA %.0fs',
          split.name,
          done,
          n,
          (n - done) / rate,
      )
  if not kept:
    raise DataError(f'every record of split {split.name!r} is bad.')
  return dataclasses.replace(split, images=images[:kept], labels=labels[:kept])


def labelled_only(split: Split) -> Split:
  """The records of a cached split that have a label (>= 0).

  Args:
    split: a cached split (folders may mix labelled and loose images).

  Returns:
    ``split`` itself if every record is labelled, else a new cached split.

  Raises:
    DataError: no record of the split has a label.
  """
  keep = split.labels >= 0
  if keep.all():
    return split
  if not keep.any():
    raise DataError(
        f'split {split.name!r} of {split.dataset or "the dataset"} has no '
        'labelled images, and the evaluations need labels: put its images in '
        'class folders, or name labelled splits in --config.data.'
        'probe_train_split and --config.data.probe_test_split.'
    )
  return Split(
      f'{split.name}[labelled]',
      [],
      split.images[keep],
      split.labels[keep],
      dataset=split.dataset,
  )


def labelled_indices(
    labels: np.ndarray, fraction: float, seed: int, per_class: int = 0
) -> np.ndarray:
  """Sorted indices of a class-balanced subset, chosen by seed.

  Args:
    labels: [N] int labels (negative: unlabelled, never chosen).
    fraction: the share of each class kept, in (0, 1].
    seed: selects the subset (the same seed gives the same indices).
    per_class: if > 0, keep this many images of each class instead (all of
      a class that has fewer).

  Returns:
    int64 indices with at least one image of every class present.
  """
  rng = np.random.default_rng([seed, 7])
  keep = []
  for c in np.unique(labels[labels >= 0]):
    members = np.flatnonzero(labels == c)
    n = per_class if per_class > 0 else max(1, round(fraction * len(members)))
    keep.append(rng.permutation(members)[:n])
  return np.sort(np.concatenate(keep))


def labelled_subset(
    split: Split, fraction: float, seed: int, per_class: int = 0
) -> Split:
  """A class-balanced subset holding ``fraction`` of each class, chosen by seed.

  Args:
    split: a labelled split.
    fraction: in (0, 1]; 1 (with ``per_class=0``) returns ``split`` itself.
    seed: selects the subset (the same seed gives the same images).
    per_class: if > 0, this many images per class instead of a fraction.

  Returns:
    A cached :class:`Split` with at least one image of every class present.
  """
  if fraction >= 1 and per_class <= 0:
    return split
  if split.labels is not None:
    labels = split.labels
  elif all(isinstance(s, folder.Source) for s in split.sources):
    labels = np.concatenate([s.labels for s in split.sources])
  else:
    labels = split.read(np.arange(len(split)))['label']
  idx = labelled_indices(labels, fraction, seed, per_class)
  data = split.read(idx)
  what = (
      f'{per_class} per class' if per_class > 0 else f'{fraction:g} of labels'
  )
  return Split(f'{split.name}[{what}]', [], data['image'], data['label'])
