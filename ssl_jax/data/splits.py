"""A split of a dataset: its records by index, decoded here or in workers.

A :class:`Split` holds its sources (random-access: ``tfds.data_source`` or
``folder.Source``) or the whole split decoded into RAM, and reads any
records by index: whole images, or (host crops) each view's crop cut from
the original image. Bad records raise or are counted (``data.bad_images``).
"""

import dataclasses
import multiprocessing
from typing import Any, Iterator, Optional

from absl import logging
import numpy as np

from ssl_jax import errors
from ssl_jax.data import decoding
from ssl_jax.data import folder
from ssl_jax.data import host_crop
from ssl_jax.data import tfds_data

DataError = errors.DataError


@dataclasses.dataclass
class Split:
  """A split held as a random-access source, optionally decoded into RAM.

  ``resize`` and ``channels`` (0: as stored) convert every image as it is
  read: a centre crop resized to ``resize`` px, and grayscale <-> RGB. A bad
  record (fails to decode, or does not fit ``image_shape``; None: any) raises
  a :class:`DataError`, or with ``bad_images='skip'`` joins ``skipped`` and is
  dropped (cached) or replaced by the next good record (uncached: batches stay
  full and a pure function of the step). Folder images and host crops are
  decoded by ``workers`` grain processes (1: in this process): a training
  or evaluation stream runs whole reads there (``batching.global_batches``
  with ``splits``, on :meth:`for_worker` copies), a lone read or a pass over
  the whole split maps its records there (``decoding.stream``).

  Host crops (``host_crop``): with ``crops`` (one ``CropSpec`` per view) a
  read returns each view's random-resized crop of the original image under
  ``'crops'``, drawn from ``(seed, step, record)``; with ``crop_fraction``
  each image is the central ``crop_fraction`` of its shorter side resized to
  ``resize`` (evaluation's 256 -> 224). Sources then give file paths or
  encoded bytes, decoded at the coarsest JPEG draft scale that serves.
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
  crops: tuple = ()
  crop_fraction: float = 0.0
  seed: int = 0
  skipped: set = dataclasses.field(default_factory=set, repr=False)

  @property
  def host_crops(self) -> bool:
    """Whether images are cut from the originals by ``host_crop``."""
    return bool(self.crops) or self.crop_fraction > 0

  def __len__(self):
    if self.images is not None:
      return len(self.images)
    return sum(len(s) for s in self.sources)

  def label_array(self) -> np.ndarray:
    """Every record's label, read without decoding images where possible.

    Returns:
      int32 [N] (-1: unlabelled).
    """
    if self.labels is not None:
      return self.labels
    parts = []
    for source in self.sources:
      if isinstance(source, (folder.Source, tfds_data.ClassSubset)):
        parts.append(np.asarray(source.labels, np.int32))
      else:
        parts.append(
            np.asarray([source[k]['label'] for k in range(len(source))])
        )
    return np.concatenate(parts).astype(np.int32)

  @property
  def parallel(self) -> bool:
    """Whether reads decode files in worker processes (``workers`` > 1)."""
    return self.images is None and self.workers > 1

  def for_worker(self) -> 'Split':
    """A copy that reads in the calling process (for a grain worker)."""
    return dataclasses.replace(self, workers=1, skipped=set(self.skipped))

  def count_skipped(self, indices) -> None:
    """Adds bad records skipped elsewhere (a worker's copy) to ``skipped``.

    Args:
      indices: the records; the first ever is logged, as :meth:`_bad` does.
    """
    new = {int(i) for i in indices} - self.skipped
    if new and not self.skipped:
      logging.warning(
          'Skipping bad %s (more are counted, not logged).',
          self._where(min(new)),
      )
    self.skipped.update(new)

  @property
  def num_skipped(self) -> int:
    """How many distinct bad records were skipped so far."""
    return len(self.skipped)

  def read(self, indices: np.ndarray, step: int = 0) -> dict[str, np.ndarray]:
    """The records ``indices`` as one host batch.

    Args:
      indices: records to read.
      step: the global step (draws the host crops; unused otherwise).

    Returns:
      ``{'image': uint8 [n,H,W,C], 'label': int32 [n]}``; with ``crops``,
      ``{'crops': (uint8 [n,S,S,C] per view), 'label'}``.
    """
    if self.images is not None:
      return {'image': self.images[indices], 'label': self.labels[indices]}
    indices = [int(i) for i in indices]
    examples = list(self._iter_examples(indices, step))
    # A bad record (now in ``skipped``) is replaced by the next good one.
    return _stack([
        e if e is not None else self._good_example(i, step)
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

  def iter_good(
      self, indices: np.ndarray, chunk: int
  ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """:meth:`read_good` of ``indices`` in chunks, from one worker pipeline.

    Args:
      indices: records to read.
      chunk: records per chunk.

    Yields:
      ``(the indices read, {'image', 'label'} of those)`` per chunk of
      ``chunk`` indices (bad records dropped).
    """
    if self.images is not None:
      for lo in range(0, len(indices), chunk):
        yield self.read_good(indices[lo : lo + chunk])
      return
    indices = [int(i) for i in indices]
    examples = self._iter_examples(indices)
    for lo in range(0, len(indices), chunk):
      part = indices[lo : lo + chunk]
      got = [(i, e) for i, e in zip(part, examples) if e is not None]
      if not got:
        yield self.read_good([])
        continue
      yield np.asarray([i for i, _ in got], np.int64), _stack(
          [e for _, e in got]
      )

  def _good_example(self, i: int, step: int = 0) -> tuple[np.ndarray, int]:
    for _ in range(len(self)):
      example = None
      if i not in self.skipped:
        example = next(self._iter_examples([i], step))
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

  def _iter_examples(self, indices, step: int = 0) -> Iterator[Any]:
    """Yields :meth:`_example` of each index, in order.

    Folder files decode in ``workers`` processes, streamed: this process
    checks finished records while the workers decode the next ones.

    Args:
      indices: the records.
      step: the global step (host crops only).

    Yields:
      ``(image, label)``, or None for a skipped bad record.
    """
    indices = list(indices)
    if self.host_crops:
      yield from self._host_examples(indices, step)
      return
    located = [self._locate(i) for i in indices]
    if not decoding.pays(len(indices), self.workers) or not all(
        isinstance(self.sources[j], folder.Source) for j, _ in located
    ):
      yield from map(self._example, indices)
      return
    tasks = [
        (self.sources[j].path(k), self.resize, self.channels)
        for j, k in located
    ]
    for i, result in zip(indices, decoding.stream(tasks, self.workers)):
      yield self._example(i, result)

  def _host_task(self, i: int, step: int) -> tuple[tuple, int]:
    """``(host_crop.load task, label)`` of record ``i``."""
    j, k = self._locate(i)
    source = self.sources[j]
    if isinstance(source, folder.Source):
      src, label = source.path(k), source.labels[k]
    else:  # tfds with SkipDecoding: the encoded image bytes.
      example = source[k]
      src, label = example['image'], example['label']
    if self.crops:
      return (src, self.crops, (self.seed, step, i), self.channels), label
    fraction = (self.resize, self.crop_fraction)
    return (src, fraction, None, self.channels), label

  def _host_examples(self, indices: list[int], step: int) -> Iterator[Any]:
    """:meth:`_iter_examples` for host crops (decoded in ``workers``)."""
    prepared = [self._host_task(i, step) for i in indices]
    tasks = [task for task, _ in prepared]
    results = [None] * len(tasks)
    if decoding.pays(len(tasks), self.workers):
      results = decoding.stream(tasks, self.workers, host_crop.load)
    for i, (task, label), result in zip(indices, prepared, results):
      crops, why = result or host_crop.load(task)
      if crops is None:
        yield self._bad(i, f'failed to decode ({why})')
      else:
        yield (crops if self.crops else crops[0]), int(label)

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
    return self._bad(i, why, fix)

  def _bad(self, i: int, why: str, fix: str = '') -> None:
    """Raises on bad record ``i``, or (``bad_images='skip'``) counts it.

    Args:
      i: the record.
      why: what is wrong with it.
      fix: a flag that would make it good, with its trailing ``', or '``.

    Returns:
      None (the record is skipped).

    Raises:
      DataError: ``bad_images`` is not ``'skip'``.
    """
    where = self._where(i)
    if self.bad_images != 'skip':
      raise DataError(
          f'{where} {why}; pass {fix}--config.data.bad_images=skip '
          'to skip and count bad records.'
      )
    # A grain worker's skips reach the parent with its batch, which logs them
    # (count_skipped).
    if not self.skipped and multiprocessing.parent_process() is None:
      logging.warning(
          'Skipping bad %s: %s (more are counted, not logged).', where, why
      )
    self.skipped.add(i)
    return None

  def _where(self, i: int) -> str:
    """Names record ``i``: its file, or its index in its source."""
    j, k = self._locate(i)
    if isinstance(self.sources[j], folder.Source):
      return f'file {self.sources[j].path(k)!r} (record {i} of {self.name!r})'
    return (
        f'record {i} of {self.dataset} split {self.name!r} (index {k} of '
        f'source {self.name.split("+")[j].strip()!r})'
    )


class _Failed(Exception):
  """A worker process's decoding error, as text."""


def _stack(examples) -> dict[str, Any]:
  labels = np.asarray([label for _, label in examples], np.int32)
  if isinstance(examples[0][0], list):  # One host crop per view.
    views = zip(*(crops for crops, _ in examples))
    return {'crops': tuple(map(np.stack, views)), 'label': labels}
  return {'image': np.stack([image for image, _ in examples]), 'label': labels}
