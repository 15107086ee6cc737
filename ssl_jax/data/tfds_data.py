"""tfds datasets: facts from their builders, prepared splits by index."""

import time
from typing import Any

from absl import logging
import numpy as np

from ssl_jax import errors


def info(dataset: str, data_dir: str = '') -> dict[str, Any]:
  """Facts of a tfds dataset from its builder (see ``dataset_info``).

  Args:
    dataset: the tfds name.
    data_dir: the tfds data_dir ('': tfds' default).

  Returns:
    ``{'image_shape', 'num_classes', 'class_names', 'splits'}``; split sizes
    only once the dataset is prepared in ``data_dir``.

  Raises:
    errors.DataError: no tfds dataset has that name, or it lacks an
      ``image`` or ``label`` feature.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  try:
    builder = tfds.builder(dataset, data_dir=data_dir or None)
  except tfds.core.registered.DatasetNotFoundError:
    raise errors.DataError(
        f"dataset={dataset!r} is neither a tfds dataset nor 'folder' or "
        "'sklearn_digits'; use a name from `tfds.list_builders()`, or "
        '--config.dataset=folder --config.data_dir=DIR for your own images.'
    ) from None
  features = builder.info.features
  if 'image' not in features or 'label' not in features:
    raise errors.DataError(
        f'dataset {dataset!r} has features {sorted(features)}; ssl_jax reads '
        "'image' and 'label'."
    )
  return dict(
      image_shape=tuple(features['image'].shape),
      num_classes=features['label'].num_classes,
      class_names=tuple(features['label'].names),
      splits={k: v.num_examples for k, v in builder.info.splits.items()},
  )


def source(dataset: str, split: str, data_dir: str, raw_images: bool = False):
  """A prepared split as a random-access source (``tfds.data_source``).

  Args:
    dataset: the tfds name.
    split: one split name (tfds syntax, e.g. ``'train[:10%]'``).
    data_dir: the tfds data_dir ('': tfds' default); never downloads.
    raw_images: give each ``'image'`` as its encoded bytes (host crops
      decode them at a JPEG draft scale).

  Returns:
    The source: ``len()`` and ``[i] -> {'image', 'label', ...}``.

  Raises:
    errors.DataError: the dataset is not prepared there (naming the command
      that prepares it), or the split is empty or unknown.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  try:
    return tfds.data_source(
        dataset,
        split=split,
        data_dir=data_dir or None,
        download=False,
        decoders={'image': tfds.decode.SkipDecoding()} if raw_images else None,
    )
  except Exception as e:  # tfds raises several types for "not prepared".
    where = data_dir or '~/tensorflow_datasets'
    try:
      prepared = tfds.builder(dataset, data_dir=data_dir or None).is_prepared()
    except Exception:  # pylint: disable=broad-except
      prepared = False
    if prepared:  # tfds says "Paths sequence can not be of 0 length" if empty.
      raise errors.DataError(
          f'split {split!r} of dataset {dataset!r} in data_dir '
          f'{where!r} is empty or unknown ({type(e).__name__}: '
          f'{" ".join(str(e).split())}).'
      ) from None
    fix = (
        'python -m ssl_jax.tools.prepare_data --npz=cifar10_jpeg_q75.npz '
        f'--data_dir={where}'
        if dataset == 'cifar10'
        else (
            f'python -m ssl_jax.tools.prepare_data --dataset={dataset}'
            f' --data_dir={where}'
        )
    )
    raise errors.DataError(
        f'dataset {dataset!r} split {split!r} is not prepared (array_record) in'
        f' data_dir {where!r} ({type(e).__name__}). Prepare it with: {fix}, or'
        ' pass --config.data_dir=DIR where it is.'
    ) from None


class ClassSubset:
  """A tfds source restricted to the classes ``data.classes`` names.

  Finding a class's records means reading every record's label once (with
  the images left encoded); the labels are renumbered in the subset's
  sorted order.

  Args:
    source: a ``tfds.data_source`` split.
    info: ``dataset_info`` with the subset (``class_names``) and the
      dataset's own ``all_class_names``.
    dataset: the tfds name.
    split: the split of ``source``.
    data_dir: the tfds data_dir.
  """

  def __init__(
      self, source, info: dict[str, Any], dataset: str, split: str, data_dir
  ):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    self.source = source
    position = {name: i for i, name in enumerate(info['class_names'])}
    new_label = np.asarray(
        [position.get(n, -1) for n in info['all_class_names']], np.int64
    )
    labels_only = tfds.data_source(
        dataset,
        split=split,
        data_dir=data_dir or None,
        download=False,
        decoders={'image': tfds.decode.SkipDecoding()},
    )
    start, labels = time.time(), np.empty(len(labels_only), np.int64)
    for i in range(len(labels_only)):
      labels[i] = labels_only[i]['label']
      if i and i % 100_000 == 0:
        logging.info(
            'Reading labels for data.classes: %d/%d, ETA %.0fs',
            i,
            len(labels),
            (len(labels) - i) * (time.time() - start) / i,
        )
    mapped = new_label[labels]
    self.indices = np.flatnonzero(mapped >= 0)
    self.labels = mapped[self.indices].astype(np.int32)

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, i: int) -> dict[str, Any]:
    return dict(self.source[int(self.indices[i])], label=int(self.labels[i]))
