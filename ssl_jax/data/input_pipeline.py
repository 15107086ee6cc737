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
from typing import Any, Optional

from absl import logging
import numpy as np

from ssl_jax import errors
from ssl_jax.data import decoding
from ssl_jax.data import folder
from ssl_jax.data import imagenet
from ssl_jax.data import memory
from ssl_jax.data import tfds_data
from ssl_jax.data.splits import Split

DataError = errors.DataError


@functools.lru_cache(maxsize=32)
def dataset_info(
    dataset: str, data_dir: str = '', classes: str = ''
) -> dict[str, Any]:
  """Facts about a dataset, read before any image of it is.

  Args:
    dataset: a tfds name (facts from its builder), ``'folder'`` (from the
      listing of ``data_dir``) or ``'sklearn_digits'``.
    data_dir: the tfds data_dir, or the dataset folder.
    classes: ``data.classes``, a subset of the classes ('': all): the facts
      then name only those classes, in sorted order.

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
  info = (
      folder.info(data_dir)
      if dataset == 'folder'
      else tfds_data.info(dataset, data_dir)
  )
  subset = imagenet.class_subset(classes)
  if subset is None:
    return info
  missing = sorted(set(subset) - set(info['class_names']))
  if missing:
    raise DataError(
        f'data.classes={classes!r} names {len(missing)} classes that dataset '
        f'{dataset!r} lacks (first: {missing[0]!r}); name classes it has, or '
        'leave data.classes empty.'
    )
  return dict(
      info,
      num_classes=len(subset),
      class_names=subset,
      all_class_names=info['class_names'],
  )


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
    cache: Optional[bool] = True,
    resize: int = 0,
    channels: int = 0,
    bad_images: str = 'error',
    workers: int = 1,
    *,
    crops: tuple = (),
    crop_fraction: float = 0.0,
    seed: int = 0,
    classes: str = '',
    memory_budget_gb: float = 0.0,
) -> Split:
  """Opens a split (``'a+b'`` concatenates) and optionally decodes it into RAM.

  Args:
    dataset: a tfds name, ``'folder'`` or ``'sklearn_digits'``.
    split: split name(s) joined by ``+`` (for folders, split folder names).
    data_dir: the tfds data_dir (never downloads), or the dataset folder.
    cache: decode every image once into a uint8 array in host memory (None:
      where it fits ``memory_budget_gb``, see ``memory.choose_cache``).
    resize: centre-crop and resize every image to this side (0: keep).
    channels: convert every image to 1 or 3 channels (0: keep).
    bad_images: a record that fails to decode or has the wrong shape raises
      (``'error'``), or is dropped and counted (``'skip'``, see :class:`Split`).
    workers: processes decoding folder images (0: one per CPU core; more
      than 1 needs the calling script under ``if __name__ == '__main__':``).
    crops: host random-resized crops, one ``host_crop.CropSpec`` per view.
    crop_fraction: > 0: host centre crops of this share of the shorter side,
      resized to ``resize``.
    seed: the data seed the host crops are drawn from.
    classes: ``data.classes``: a subset of the classes ('' : all).
    memory_budget_gb: ``data.memory_budget_gb``.

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
    info = dataset_info(dataset, data_dir, classes)  # Checks data_dir.
    shape, host = info['image_shape'], bool(crops) or crop_fraction > 0
    if dataset == 'folder':
      sources = [
          folder.Source(
              os.path.join(data_dir, s.strip()),
              info['class_names'],
              0 if host else resize,
              only_classes=bool(classes),
          )
          for s in split.split('+')
      ]
    else:
      names = [s.strip() for s in split.split('+')]
      sources = [
          tfds_data.source(dataset, s, data_dir, raw_images=host) for s in names
      ]
      if classes:
        sources = [
            tfds_data.ClassSubset(source, info, dataset, s, data_dir)
            for source, s in zip(sources, names)
        ]
    if not resize and not crops and None in shape[:2]:
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
        image_shape=None if crops else shape,
        bad_images=bad_images,
        workers=(
            decoding.num_workers(workers) if dataset == 'folder' or host else 1
        ),
        crops=tuple(crops),
        crop_fraction=crop_fraction,
        seed=seed,
    )
    cache = memory.choose_cache(
        cache,
        split,
        len(result),
        None if crops else shape,
        memory_budget_gb,
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
  idx = labelled_indices(split.label_array(), fraction, seed, per_class)
  data = split.read(idx)
  what = (
      f'{per_class} per class' if per_class > 0 else f'{fraction:g} of labels'
  )
  return Split(f'{split.name}[{what}]', [], data['image'], data['label'])
