"""Random resized crops, in the two families of ``color_ops``.

* ``'simclr'``: one draw of area and aspect ratio, the crop sides clipped to
  the image, continuous (sub-pixel) coordinates.
* ``'torchvision'``: ``RandomResizedCrop.get_params`` (up to 10 tries,
  integer boxes, a central fallback crop) and torchvision's antialiased
  bilinear resize of the cropped box.

Images are float [H, W, C]; everything is pure JAX and vmaps.
"""

import math
from typing import Tuple

import jax
import jax.numpy as jnp

Array = jax.Array
PRNGKey = jax.Array

# RandomResizedCrop.get_params draws at most this many boxes.
TRIES = 10


def random_resized_crop(
    key: PRNGKey,
    image: Array,
    out_size: int,
    scale: Tuple[float, float] = (0.08, 1.0),
    ratio: Tuple[float, float] = (3 / 4, 4 / 3),
    interpolation: str = 'bilinear',
) -> Array:
  """Crops a random region and resizes it to `out_size` x `out_size`.

  The crop area is a uniform fraction in `scale` of the image area and its
  aspect ratio (width / height) is log-uniform in `ratio`; the crop sides are
  clipped to the image, so no retry loop is needed. Crop coordinates are
  continuous (sub-pixel).

  Args:
    key: PRNG key.
    image: float image [H, W, C].
    out_size: side of the square output.
    scale: range of the crop area as a fraction of the image area.
    ratio: range of the crop aspect ratio (width / height).
    interpolation: ``'bilinear'`` or ``'bicubic'`` (Keys, a = -0.5).

  Returns:
    Float image [out_size, out_size, C].
  """
  height, width, channels = image.shape
  area_key, ratio_key, y_key, x_key = jax.random.split(key, 4)
  area = (
      height
      * width
      * jax.random.uniform(area_key, minval=scale[0], maxval=scale[1])
  )
  log_ratio = jax.random.uniform(
      ratio_key, minval=math.log(ratio[0]), maxval=math.log(ratio[1])
  )
  aspect = jnp.exp(log_ratio)
  crop_h = jnp.clip(jnp.sqrt(area / aspect), 1.0, height)
  crop_w = jnp.clip(jnp.sqrt(area * aspect), 1.0, width)
  top = jax.random.uniform(y_key) * (height - crop_h)
  left = jax.random.uniform(x_key) * (width - crop_w)
  # dm-pix has no crop-and-resize with traced (random) crop boxes, so map the
  # box onto the output grid with scale_and_translate. antialias=True because
  # crops larger than out_size are downsampled and would otherwise alias; at
  # scale 1 it reduces to the identity.
  scale_yx = jnp.stack([out_size / crop_h, out_size / crop_w])
  translation = -jnp.stack([top, left]) * scale_yx
  return jax.image.scale_and_translate(
      image,
      (out_size, out_size, channels),
      (0, 1),
      scale_yx,
      translation,
      method='linear' if interpolation == 'bilinear' else 'cubic',
      antialias=True,
  )


def _fallback_box(
    height: int, width: int, ratio: Tuple[float, float]
) -> Tuple[int, int, int, int]:
  """Returns get_params' central box for when no try fits (static)."""
  in_ratio = width / height
  if in_ratio < min(ratio):
    w, h = width, int(round(width / min(ratio)))
  elif in_ratio > max(ratio):
    w, h = int(round(height * max(ratio))), height
  else:
    w, h = width, height
  return (height - h) // 2, (width - w) // 2, h, w


def torchvision_crop_box(
    key: PRNGKey,
    height: int,
    width: int,
    scale: Tuple[float, float] = (0.08, 1.0),
    ratio: Tuple[float, float] = (3 / 4, 4 / 3),
) -> Array:
  """Draws a box as torchvision's ``RandomResizedCrop.get_params`` does.

  Each of the 10 tries draws an area fraction uniform in ``scale`` and a
  log-uniform aspect ratio (width / height) in ``ratio``, and rounds the sides
  to integers; the first try that fits in the image is taken, at a uniformly
  random integer offset. All tries are drawn at once and the first fit is
  selected, so there is no loop on traced values.

  Args:
    key: PRNG key.
    height: image height.
    width: image width.
    scale: range of the crop area as a fraction of the image area.
    ratio: range of the crop aspect ratio (width / height).

  Returns:
    int32 [4]: top, left, height, width.
  """
  area_key, ratio_key, top_key, left_key = jax.random.split(key, 4)
  area = (
      height
      * width
      * jax.random.uniform(area_key, (TRIES,), minval=scale[0], maxval=scale[1])
  )
  aspect = jnp.exp(
      jax.random.uniform(
          ratio_key,
          (TRIES,),
          minval=math.log(ratio[0]),
          maxval=math.log(ratio[1]),
      )
  )
  # jnp.round rounds half to even, as Python's round does.
  ws = jnp.round(jnp.sqrt(area * aspect)).astype(jnp.int32)
  hs = jnp.round(jnp.sqrt(area / aspect)).astype(jnp.int32)
  fits = (ws > 0) & (ws <= width) & (hs > 0) & (hs <= height)
  first = jnp.argmax(fits)
  h, w = hs[first], ws[first]
  top = jax.random.randint(top_key, (), 0, height - h + 1)
  left = jax.random.randint(left_key, (), 0, width - w + 1)
  drawn = jnp.stack([top, left, h, w]).astype(jnp.int32)
  fallback = jnp.asarray(_fallback_box(height, width, ratio), jnp.int32)
  return jnp.where(jnp.any(fits), drawn, fallback)


def _filter(distance: Array, interpolation: str) -> Array:
  """torch's antialiasing filters: triangle, or Keys' cubic with a = -0.5."""
  if interpolation == 'bilinear':
    return jnp.maximum(0.0, 1.0 - distance)
  a = -0.5
  near = ((a + 2.0) * distance - (a + 3.0)) * distance * distance + 1.0
  far = ((a * distance - 5.0 * a) * distance + 8.0 * a) * distance - 4.0 * a
  return jnp.where(distance < 1.0, near, jnp.where(distance < 2.0, far, 0.0))


def _resize_weights(
    start: Array, length: Array, size: int, out: int, interpolation: str
) -> Array:
  """Weights [out, size] of torch's antialiased resize of a box.

  The box is rows ``start`` .. ``start + length - 1``. Each output row is the
  filter centred on its position in the box, widened by the downscale
  factor and normalised over the rows inside the box (so the box edges clamp,
  as resizing the cropped array does).
  """
  length = length.astype(jnp.float32)
  scale = length / out
  centres = start + (jnp.arange(out, dtype=jnp.float32) + 0.5) * scale
  rows = jnp.arange(size)
  distance = jnp.abs(rows + 0.5 - centres[:, None]) / jnp.maximum(scale, 1.0)
  weights = _filter(distance, interpolation)
  inside = (rows >= start) & (rows < start + length)
  weights = jnp.where(inside, weights, 0.0)
  return weights / jnp.sum(weights, axis=1, keepdims=True)


def resized_crop(
    image: Array, box: Array, out_size: int, interpolation: str = 'bilinear'
) -> Array:
  """torchvision's ``resized_crop`` (antialias=True) on a traced box.

  jax.image.scale_and_translate would also read the pixels just outside the
  box, and a dynamic slice cannot have a traced size, so the resize is two
  weight matrices built from the box.

  Args:
    image: float image [H, W, C].
    box: int32 [4]: top, left, height, width, inside the image.
    out_size: side of the square output.
    interpolation: ``'bilinear'`` or ``'bicubic'``.

  Returns:
    Float image [out_size, out_size, C]; bicubic can overshoot the input's
    range, as torchvision's float kernel does.
  """
  height, width, _ = image.shape
  rows = _resize_weights(box[0], box[2], height, out_size, interpolation)
  cols = _resize_weights(box[1], box[3], width, out_size, interpolation)
  return jnp.einsum(
      'oh,hwc,pw->opc',
      rows,
      image,
      cols,
      precision=jax.lax.Precision.HIGHEST,
  )


def torchvision_resized_crop(
    key: PRNGKey,
    image: Array,
    out_size: int,
    scale: Tuple[float, float] = (0.08, 1.0),
    ratio: Tuple[float, float] = (3 / 4, 4 / 3),
    interpolation: str = 'bilinear',
) -> Array:
  """torchvision's ``RandomResizedCrop(out_size, scale, ratio, interpolation)``.

  Args:
    key: PRNG key.
    image: float image [H, W, C].
    out_size: side of the square output.
    scale: range of the crop area as a fraction of the image area.
    ratio: range of the crop aspect ratio (width / height).
    interpolation: ``'bilinear'`` or ``'bicubic'``.

  Returns:
    Float image [out_size, out_size, C].
  """
  height, width, _ = image.shape
  box = torchvision_crop_box(key, height, width, scale, ratio)
  return resized_crop(image, box, out_size, interpolation)
