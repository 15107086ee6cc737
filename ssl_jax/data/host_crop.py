"""Random-resized crops cut on the host from each original image.

For datasets of large photos (ImageNet, users' own collections) a view's
random-resized crop is drawn from the image's original size, the JPEG is
decoded at the coarsest DCT scale (Pillow's draft mode: 1/2, 1/4, 1/8) that
still gives every crop of that image at least the output side, and each crop
is resized to its view's side with Pillow's antialiased filters. Colour,
blur and solarize stay on device in the compiled step (``shared.views_of``).
Small-image datasets (CIFAR, STL-10) crop on device instead.

The boxes follow the view's ``color_ops`` family as ``crop.py`` draws them
on device: ``'simclr'`` (one draw, sides clipped to the image, sub-pixel
coordinates) or ``'torchvision'`` (``RandomResizedCrop.get_params``: ten
tries of integer boxes, a central fallback). A record's crops are a pure
function of ``(seed, step, record)``, so a resumed run reads the same crops.
Written here rather than taken from a library because none decodes JPEGs at
a draft scale chosen from the crop boxes.
"""

import math
from typing import Any, NamedTuple, Optional, Sequence, Union

import numpy as np

from ssl_jax.data import decoding
from ssl_jax.data import folder

Source = Union[str, bytes]


class CropSpec(NamedTuple):
  """One view's crop, as its view config and side give it.

  Attributes:
    size: side of the square output.
    scale: range of the crop area as a fraction of the image area.
    ratio: range of the crop aspect ratio (width / height).
    interpolation: ``'bilinear'`` or ``'bicubic'``.
    family: ``'simclr'`` or ``'torchvision'`` (the view's ``color_ops``).
  """

  size: int
  scale: tuple[float, float]
  ratio: tuple[float, float]
  interpolation: str = 'bilinear'
  family: str = 'simclr'


def spec(view, size: int) -> CropSpec:
  """The :class:`CropSpec` of a view config at a side.

  Args:
    view: an ``augment.view_config``.
    size: the view's side.

  Returns:
    Its crop spec (plain Python values, picklable for worker processes).
  """
  return CropSpec(
      int(size),
      tuple(float(s) for s in view.crop_scale),
      tuple(float(r) for r in view.crop_ratio),
      str(view.crop_interpolation),
      str(view.color_ops),
  )


def resolve(
    host_crop: Optional[bool],
    image_shape: Sequence[Optional[int]],
    image_size: int,
    resize: int,
    supported: bool,
) -> bool:
  """Whether a run cuts its training crops on the host (``data.host_crop``).

  Left unset, host crops are on where the device could not crop from the
  stored images as they are: their sizes vary, or their shorter side is
  over twice ``image_size`` (device crops would move 4x the pixels they
  use); never where ``data.resize`` shrinks every image to one side first,
  or the method crops on device only.

  Args:
    host_crop: ``data.host_crop`` (None: choose).
    image_shape: the dataset's ``(H, W, C)`` (None: varies).
    image_size: ``config.image_size``.
    resize: ``data.resize``.
    supported: the method takes host crops (``Method.host_views``).

  Returns:
    The choice.
  """
  if host_crop is not None:
    return bool(host_crop)
  if resize or not supported:
    return False
  height, width = image_shape[:2]
  return height is None or width is None or min(height, width) > 2 * image_size


def record_rng(seed: int, step: int, record: int) -> np.random.Generator:
  """The generator of one record's crops at one step.

  Args:
    seed: the data seed.
    step: the global step.
    record: the record's index in its split.

  Returns:
    A numpy generator; its draws are a pure function of the arguments.
  """
  return np.random.default_rng([seed, 0xC409, step, record])


def draw_box(
    rng: np.random.Generator, height: int, width: int, crop: CropSpec
) -> tuple[float, float, float, float]:
  """A random-resized-crop box in an image of the given size.

  Args:
    rng: the record's generator.
    height: image height.
    width: image width.
    crop: the view's crop.

  Returns:
    ``(top, left, box height, box width)`` in pixels of the original image.
  """
  lo, hi = math.log(crop.ratio[0]), math.log(crop.ratio[1])
  if crop.family == 'torchvision':
    area = height * width
    for _ in range(10):
      target = area * rng.uniform(*crop.scale)
      aspect = math.exp(rng.uniform(lo, hi))
      w = round(math.sqrt(target * aspect))
      h = round(math.sqrt(target / aspect))
      if 0 < w <= width and 0 < h <= height:
        top = int(rng.integers(0, height - h + 1))
        left = int(rng.integers(0, width - w + 1))
        return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(crop.ratio):
      w, h = width, int(round(width / min(crop.ratio)))
    elif in_ratio > max(crop.ratio):
      w, h = int(round(height * max(crop.ratio))), height
    else:
      w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w
  target = height * width * rng.uniform(*crop.scale)
  aspect = math.exp(rng.uniform(lo, hi))
  h = min(max(math.sqrt(target / aspect), 1.0), height)
  w = min(max(math.sqrt(target * aspect), 1.0), width)
  return rng.uniform() * (height - h), rng.uniform() * (width - w), h, w


def _oriented_size(img) -> tuple[int, int]:
  """``(height, width)`` after the EXIF rotation ``decode`` applies."""
  width, height = img.size
  if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # Turned by 90 degrees.
    width, height = height, width
  return height, width


def _crops(
    img, boxes: Sequence[tuple], sizes: Sequence[int], filters: Sequence[str]
) -> list[np.ndarray]:
  """Each box of an open image, resized to its side, as uint8 [S, S, C]."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from PIL import ImageOps  # pylint: disable=g-import-not-at-top

  height, width = _oriented_size(img)
  # The coarsest draft scale whose every crop is still at least its side.
  need = max(
      min(1.0, max(s / max(b[2], 1e-6), s / max(b[3], 1e-6)))
      for b, s in zip(boxes, sizes)
  )
  if img.format == 'JPEG' and need < 1.0:
    raw_w, raw_h = img.size
    img.draft(img.mode, (math.ceil(raw_w * need), math.ceil(raw_h * need)))
  img = ImageOps.exif_transpose(img)
  img = folder.to_supported_mode(img)
  fy, fx = img.size[1] / height, img.size[0] / width
  out = []
  for (top, left, h, w), side, how in zip(boxes, sizes, filters):
    resample = Image.BICUBIC if how == 'bicubic' else Image.BILINEAR
    crop = img.resize(
        (side, side),
        resample,
        box=(left * fx, top * fy, (left + w) * fx, (top + h) * fy),
    )
    out.append(folder.pixels(crop))
  return out


def random_crops(
    src: Source,
    crops: Sequence[CropSpec],
    rng: np.random.Generator,
    channels: int = 0,
) -> list[np.ndarray]:
  """Each view's random-resized crop of one image.

  Args:
    src: an image file's path or its encoded bytes.
    crops: one spec per view.
    rng: the record's generator (:func:`record_rng`).
    channels: convert to 1 or 3 channels (0: as stored).

  Returns:
    One uint8 [size, size, C] array per view.
  """
  with folder.open_image(src) as img:
    height, width = _oriented_size(img)
    boxes = [draw_box(rng, height, width, c) for c in crops]
    out = _crops(
        img,
        boxes,
        [c.size for c in crops],
        [c.interpolation for c in crops],
    )
  return [decoding.convert_image(x, 0, channels) for x in out]


def center_crop(
    src: Source, size: int, fraction: float = 0.875, channels: int = 0
) -> np.ndarray:
  """The evaluation view: the shorter side resized to ``size / fraction``,
  then the central ``size`` x ``size`` (256 -> 224 at 224 px).

  Args:
    src: an image file's path or its encoded bytes.
    size: output side.
    fraction: the share of the shorter side kept.
    channels: convert to 1 or 3 channels (0: as stored).

  Returns:
    uint8 [size, size, C].
  """
  with folder.open_image(src) as img:
    height, width = _oriented_size(img)
    side = min(height, width) * fraction
    box = ((height - side) / 2, (width - side) / 2, side, side)
    (out,) = _crops(img, [box], [size], ['bilinear'])
  return decoding.convert_image(out, 0, channels)


def load(task: tuple) -> tuple[Any, str]:
  """One record's host views (in a worker process, or in this one).

  Args:
    task: ``(src, crops, (seed, step, record), channels)`` for random crops,
      or ``(src, (size, fraction), None, channels)`` for the centre crop.

  Returns:
    ``(list of uint8 crops, '')``, or ``(None, why)`` where the file does not
    decode (truncated, not an image).
  """
  src, what, key, channels = task
  try:
    if key is None:
      return [center_crop(src, what[0], what[1], channels)], ''
    return random_crops(src, what, record_rng(*key), channels), ''
  except Exception as e:  # pylint: disable=broad-except
    return None, f'{type(e).__name__}: {" ".join(str(e).split())}'
