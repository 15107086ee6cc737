"""Folders of image files as random-access splits (``dataset='folder'``).

``data_dir`` holds one subfolder per split (``train``, ``test``,
``unlabelled``, any name a config's split fields use). In a split folder,
images inside a subfolder (at any depth) belong to the class named by that
subfolder; images directly in the split folder are unlabelled (label -1). The
classes of a dataset are the sorted names of the class subfolders of all its
splits, so every split numbers them alike. As in torchvision's
``ImageFolder``, only files with the extension of a format Pillow opens are
records (``.jpg``, ``.JPEG``, ``.png``, ...): others (``README.txt``,
``labels.csv``) are left out and counted in one log line per split, and hidden
files (``.DS_Store``) are ignored. A record that does not decode is a bad
record (``data.bad_images``).

Listing uses ``os.scandir``, which reads file types from the directory itself
(no ``stat`` per file), so 100,000 files list in well under a second. Decoding
uses Pillow: every format it reads, 16-bit and palette images, EXIF rotation,
and JPEG draft mode (DCT scaling) when images shrink to ``data.resize``.
"""

import dataclasses
import functools
import io
import os
from typing import Optional

from absl import logging
import numpy as np

from ssl_jax import errors
from ssl_jax.data import paths as paths_lib


@dataclasses.dataclass(frozen=True)
class Listing:
  """The files of one split folder.

  Attributes:
    root: the split folder.
    paths: file paths relative to ``root``, sorted.
    classes: per file, its class folder name ('' for unlabelled files).
    num_left_out: files that are not images by their extension, left out.
  """

  root: str
  paths: tuple[str, ...]
  classes: tuple[str, ...]
  num_left_out: int = 0


def _hidden(name: str) -> bool:
  # Dot files and the resource forks macOS's zip puts beside the images.
  return name.startswith('.') or name == '__MACOSX'


@functools.cache
def _image_extensions() -> frozenset[str]:
  """Lowercase extensions (``.jpg``) of the formats Pillow can open."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  # Also lists formats Pillow only writes (.pdf): those are no records.
  return frozenset(
      ext.lower()
      for ext, fmt in Image.registered_extensions().items()
      if fmt in Image.OPEN
  )


def _walk(top: str, rel: str = ''):
  """Yields the relative path of every file below ``top``, sorted."""
  entries = sorted(
      e
      for e in paths_lib.listdir_typed(paths_lib.join(top, rel))
      if not _hidden(e[0])
  )
  for name, is_dir in entries:
    path = os.path.join(rel, name) if rel else name
    if is_dir:
      yield from _walk(top, path)
    else:
      yield path


@functools.lru_cache(maxsize=64)
def list_split(root: str) -> Listing:
  """Lists a split folder (cached per path for the life of the process).

  Files whose extension is not that of an image format Pillow opens are left
  out (counted in ``Listing.num_left_out`` and logged once).

  Args:
    root: the split folder.

  Returns:
    Its :class:`Listing`.

  Raises:
    DataError: the folder does not exist.
  """
  if not paths_lib.isdir(root):
    parent = os.path.dirname(root.rstrip(os.sep)) or '.'
    have = split_names(parent) if paths_lib.isdir(parent) else ()
    raise errors.DataError(
        f'split folder {root!r} does not exist (dataset=folder; '
        + (
            f'{parent!r} holds the splits {", ".join(have)}'
            if have
            else f'{parent!r} holds no split folders'
        )
        + '); set --config.data_dir=DIR to the folder holding one subfolder'
        ' per split, or use split names it has.'
    )
  images, others = [], []
  extensions = _image_extensions()
  for path in _walk(root):  # By name only: no file is opened or stat'ed.
    is_image = os.path.splitext(path)[1].lower() in extensions
    (images if is_image else others).append(path)
  if others:
    logging.info(
        'Left out %d non-image files of split %r (%s%s)',
        len(others),
        os.path.basename(root.rstrip('/' + os.sep)),
        ', '.join(others[:3]),
        ', ...' if len(others) > 3 else '',
    )
  classes = tuple(p.split(os.sep, 1)[0] if os.sep in p else '' for p in images)
  return Listing(root, tuple(images), classes, len(others))


def split_names(data_dir: str) -> tuple[str, ...]:
  """The subfolders of a folder (its splits, or a split's classes).

  Args:
    data_dir: a folder.

  Returns:
    The names of its non-hidden subfolders, sorted.
  """
  return tuple(
      sorted(
          name
          for name, is_dir in paths_lib.listdir_typed(data_dir)
          if is_dir and not _hidden(name)
      )
  )


def class_names(data_dir: str) -> tuple[str, ...]:
  """The dataset's classes.

  Args:
    data_dir: the dataset folder.

  Returns:
    The sorted class folder names over all its splits.
  """
  names = set()
  for split in split_names(data_dir):
    names.update(split_names(os.path.join(data_dir, split)))
  return tuple(sorted(names))


def decode(path: str, resize: int = 0) -> np.ndarray:
  """An image file as uint8 [H, W, 1] (gray) or [H, W, 3] (colour).

  Args:
    path: any file Pillow reads.
    resize: the side the image will be shrunk to (0: none); JPEGs then decode
      at the smallest DCT scale that keeps both sides at least this large.

  Returns:
    The pixels: gray (``L``, ``1``, ``LA``, 16-bit, float) as one channel,
    every other mode as RGB (alpha dropped, palettes expanded). 16-bit
    values are scaled by 255/65535, float ones clipped to [0, 255].
  """
  from PIL import ImageOps  # pylint: disable=g-import-not-at-top

  with open_image(path) as img:
    if resize and img.format == 'JPEG':
      img.draft(img.mode, (resize, resize))
    return pixels(ImageOps.exif_transpose(img))


def open_image(src):
  """Opens an image file (local path or URL) or encoded bytes with Pillow.

  Args:
    src: a path, a fsspec URL, or the file's bytes.

  Returns:
    The open (lazily decoded) Pillow image.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top

  if isinstance(src, bytes):
    return Image.open(io.BytesIO(src))
  if paths_lib.is_url(src):  # One request; Pillow then seeks in memory.
    with paths_lib.open(src, 'rb') as f:
      return Image.open(io.BytesIO(f.read()))
  return Image.open(src)


def pixels(img) -> np.ndarray:
  """An open Pillow image's pixels as ``decode`` returns them.

  Args:
    img: a Pillow image.

  Returns:
    uint8 [H, W, 1] (gray modes) or [H, W, 3] (every other mode).
  """
  mode = img.mode
  if mode in ('L', 'RGB'):
    return _hwc(np.asarray(img, np.uint8))
  if mode in ('1', 'LA'):
    return _hwc(np.asarray(img.convert('L'), np.uint8))
  if mode.startswith('I'):  # 16-bit (Pillow opens some as 32-bit 'I').
    x = np.asarray(img, np.float64) * (255.0 / 65535.0)
    return _hwc(np.clip(np.round(x), 0, 255).astype(np.uint8))
  if mode == 'F':  # Float pixels: taken as 0-255 values.
    return _hwc(np.clip(np.round(np.asarray(img)), 0, 255).astype(np.uint8))
  return _hwc(np.asarray(img.convert('RGB'), np.uint8))


def to_supported_mode(img):
  """An open image in ``L`` or ``RGB``, the modes Pillow resizes in 8 bits.

  Args:
    img: a Pillow image.

  Returns:
    The image itself, or a converted copy with ``pixels``' values.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top

  if img.mode in ('L', 'RGB'):
    return img
  x = pixels(img)
  return Image.fromarray(x[..., 0] if x.shape[-1] == 1 else x)


def _hwc(x: np.ndarray) -> np.ndarray:
  return x[..., None] if x.ndim == 2 else x


class Source:
  """A split folder as a random-access source of ``{'image', 'label'}``.

  Args:
    root: the split folder.
    classes: the class names labels index (default: its own class folders).
    resize: the side images will be shrunk to (0: none), for JPEG draft mode.
    only_classes: keep only the files of ``classes`` (``data.classes``);
      other class folders and loose files are left out.
  """

  def __init__(
      self,
      root: str,
      classes: Optional[tuple[str, ...]] = None,
      resize: int = 0,
      only_classes: bool = False,
  ):
    listing = list_split(root)
    self.classes = split_names(root) if classes is None else classes
    if only_classes:
      keep = set(self.classes)
      kept = [
          (p, c) for p, c in zip(listing.paths, listing.classes) if c in keep
      ]
      paths, names = zip(*kept) if kept else ((), ())
      listing = Listing(listing.root, tuple(paths), tuple(names))
    self.listing = listing
    index = {c: i for i, c in enumerate(self.classes)}
    self.labels = np.asarray(
        [index[c] if c else -1 for c in self.listing.classes], np.int32
    )
    self.resize = resize

  def __len__(self) -> int:
    return len(self.listing.paths)

  def path(self, i: int) -> str:
    """The file of record ``i``.

    Args:
      i: the record.

    Returns:
      Its path.
    """
    return os.path.join(self.listing.root, self.listing.paths[i])

  def __getitem__(self, i: int) -> dict:
    return {'image': decode(self.path(i), self.resize), 'label': self.labels[i]}


def info(data_dir: str) -> dict:
  """Facts of a folder dataset, from its listing and its first good image.

  Args:
    data_dir: the dataset folder.

  Returns:
    ``{'image_shape', 'num_classes', 'class_names', 'splits'}``; the image
    shape is that of the first image of every split, None where they differ.

  Raises:
    DataError: ``data_dir`` is not set, missing, or holds no image.
  """
  if not data_dir or not paths_lib.isdir(data_dir):
    raise errors.DataError(
        'dataset=folder needs --config.data_dir=DIR, a folder with one '
        f'subfolder per split (train/, test/, ...); got {data_dir!r}.'
    )
  splits = {
      s: len(list_split(os.path.join(data_dir, s)).paths)
      for s in split_names(data_dir)
  }
  shapes = {_first_shape(data_dir, s) for s in splits if splits[s]} - {None}
  if not shapes:
    raise errors.DataError(
        'no decodable image among the first files of the split folders of '
        f'{data_dir!r} ({", ".join(splits) or "none"}).'
    )
  # Where the splits' first images disagree, a size or the channels vary.
  shape = tuple(
      dims.pop() if len(dims) == 1 else None for dims in map(set, zip(*shapes))
  )
  names = class_names(data_dir)
  return dict(
      image_shape=shape,
      num_classes=len(names),
      class_names=names,
      splits=splits,
  )


def _first_shape(data_dir: str, split: str) -> Optional[tuple]:
  """Shape of the first of the first 32 files of a split that decodes."""
  listing = list_split(os.path.join(data_dir, split))
  for rel in listing.paths[:32]:
    try:
      return decode(os.path.join(listing.root, rel)).shape
    except Exception:  # pylint: disable=broad-except
      continue
  return None
