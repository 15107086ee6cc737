"""On-device image augmentations for self-supervised learning.

Everything here is pure JAX and meant to run inside a jitted train step: each
example gets its own PRNG key and the per-image ops are vmapped over the batch.
The default view follows the SimCLR recipe (random resized crop, flip, colour
jitter, grayscale, optional blur / noise / solarize). A view's ``color_ops``
picks the family of crop and colour ops: ``'simclr'`` (TF SimCLR's, the
default) or ``'torchvision'`` (torchvision's, as solo-learn and lightly
recipes run them); see ``color.py`` and ``crop.py``.

Per-image functions take float32 images of shape [H, W, C] with values in
[0, 1] (C = 1 or 3) and return images in the same range. Random ops draw a
Bernoulli sample and select between the op result and the identity with
`jnp.where`, which vmaps without turning into data-dependent control flow.
"""

from typing import Sequence, Tuple

import dm_pix as pix
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_dict

from ssl_jax import errors
from ssl_jax.data import color
from ssl_jax.data import crop

Array = jax.Array
PRNGKey = jax.Array


def view_config(**overrides) -> ml_collections.ConfigDict:
  """Returns the default settings for one augmented view (SimCLR recipe).

  Args:
    **overrides: field values replacing the defaults. Unknown names raise.

  Returns:
    A locked `ConfigDict`: existing fields can be changed, new ones cannot be
    added (so typos raise).
  """
  cfg = ml_collections.ConfigDict(
      dict(
          crop_scale=(0.08, 1.0),
          crop_ratio=(3.0 / 4.0, 4.0 / 3.0),
          # Resize of the crop: 'bilinear' or 'bicubic' (solo-learn's).
          crop_interpolation='bilinear',
          flip_prob=0.5,
          # SimCLR's colour jitter strength s: brightness, contrast and
          # saturation magnitudes 0.8 s, hue 0.2 s, unless set below.
          jitter_strength=1.0,
          # ColorJitter magnitudes; None: derived from jitter_strength.
          brightness=config_dict.placeholder(float),
          contrast=config_dict.placeholder(float),
          saturation=config_dict.placeholder(float),
          hue=config_dict.placeholder(float),
          jitter_prob=0.8,
          grayscale_prob=0.2,
          blur_prob=0.0,
          blur_sigma=(0.1, 2.0),
          noise_prob=0.0,
          noise_std=0.05,
          solarize_prob=0.0,
          jigsaw_grid=0,
          # 'simclr' (TF SimCLR ops) or 'torchvision' (torchvision's crop
          # draw and resize, ColorJitter ops, solarize at 128/255).
          color_ops='simclr',
      )
  )
  # ConfigDict.update silently adds unknown keys unless the dict is locked.
  cfg.lock()
  cfg.update(overrides)
  return cfg


def check_view(name: str, view: ml_collections.ConfigDict, side: int) -> None:
  """Raises a one-line ``errors.ConfigError`` on a bad value in ``view``.

  Args:
    name: the view's config path (``augment.view1``), for the message.
    view: a :func:`view_config`.
    side: the side of the views it makes.

  Raises:
    errors.ConfigError: a probability outside [0, 1], a jigsaw grid that does
      not divide ``side``, a crop scale outside (0, 1], a negative jitter
      magnitude, a hue outside [0, 0.5], an unknown ``crop_interpolation``
      or ``color_ops``.
  """
  for field in (
      'flip_prob',
      'jitter_prob',
      'grayscale_prob',
      'blur_prob',
      'noise_prob',
      'solarize_prob',
  ):
    value = view[field]
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
      raise errors.ConfigError(
          f'{name}.{field}={value!r} must be a probability in [0, 1].'
      )
  grid = view.jigsaw_grid
  if not (grid == 0 or (grid > 1 and side % grid == 0)):
    raise errors.ConfigError(
        f'{name}.jigsaw_grid={grid} must be 0 (off) or a divisor > 1 of the'
        f' view side {side}.'
    )
  lo, hi = view.crop_scale
  if not 0 < lo <= hi <= 1:
    raise errors.ConfigError(
        f'{name}.crop_scale={tuple(view.crop_scale)} must satisfy 0 < min <='
        ' max <= 1.'
    )
  for field in ('brightness', 'contrast', 'saturation'):
    value = view[field]
    if value is not None and not value >= 0:
      raise errors.ConfigError(
          f'{name}.{field}={value!r} must be >= 0 (None: from jitter_strength).'
      )
  if view.hue is not None and not 0 <= view.hue <= 0.5:
    raise errors.ConfigError(
        f'{name}.hue={view.hue!r} must be in [0, 0.5] (torchvision'
        " ColorJitter's range)."
    )
  if view.crop_interpolation not in ('bilinear', 'bicubic'):
    raise errors.ConfigError(
        f'{name}.crop_interpolation={view.crop_interpolation!r} must be'
        " 'bilinear' or 'bicubic'."
    )
  if view.color_ops not in color.FAMILIES:
    raise errors.ConfigError(
        f'{name}.color_ops={view.color_ops!r} must be one of'
        f' {", ".join(map(repr, color.FAMILIES))}.'
    )


def random_flip(key: PRNGKey, image: Array, prob: float = 0.5) -> Array:
  """Flips the image left-right with probability `prob`.

  Args:
    key: PRNG key.
    image: float image [H, W, C].
    prob: flip probability.

  Returns:
    The possibly flipped image.
  """
  return color.maybe_apply(key, prob, pix.flip_left_right, image)


def blur_kernel_size(side: int) -> int:
  """Returns the blur kernel side for images of side ``side``.

  About 10% of the side, odd and at least 3: 3 at 32 px, 9 at 96 px, 23 at
  224 px, the ``kernel_size`` torchvision recipes pass to GaussianBlur.

  Args:
    side: the larger image side.

  Returns:
    An odd kernel side.
  """
  return 2 * max(1, side // 20) + 1


def gaussian_blur(image: Array, sigma: Array, kernel_size: int) -> Array:
  """Gaussian blur as torchvision's ``gaussian_blur`` on float images.

  The image is reflect-padded by half the kernel, so borders are not
  darkened, and convolved with the normalised separable gaussian.

  Args:
    image: float image [H, W, C].
    sigma: gaussian standard deviation, in pixels.
    kernel_size: odd kernel side.

  Returns:
    The blurred image, same shape.
  """
  radius = kernel_size // 2
  padded = jnp.pad(
      image, ((radius, radius), (radius, radius), (0, 0)), mode='reflect'
  )
  return pix.gaussian_blur(padded, sigma, kernel_size, padding='VALID')


def blur_sigma(key: PRNGKey, sigma_range: Tuple[float, float]) -> Array:
  """Draws a blur sigma uniformly in ``sigma_range``.

  torchvision's GaussianBlur and solo-learn's draw it the same way.

  Args:
    key: PRNG key.
    sigma_range: (min, max) standard deviation, in pixels.

  Returns:
    A float32 scalar.
  """
  return jax.random.uniform(key, minval=sigma_range[0], maxval=sigma_range[1])


def random_blur(
    key: PRNGKey,
    image: Array,
    prob: float = 0.5,
    sigma_range: Tuple[float, float] = (0.1, 2.0),
) -> Array:
  """Gaussian blur with probability `prob` and sigma uniform in `sigma_range`.

  The kernel side is :func:`blur_kernel_size`.

  Args:
    key: PRNG key.
    image: float image [H, W, C].
    prob: blur probability.
    sigma_range: range of the gaussian standard deviation, in pixels.

  Returns:
    The possibly blurred image, same shape.
  """
  apply_key, sigma_key = jax.random.split(key)
  sigma = blur_sigma(sigma_key, sigma_range)
  kernel_size = blur_kernel_size(max(image.shape[:2]))
  blur = lambda x: gaussian_blur(x, sigma, kernel_size)
  return color.maybe_apply(apply_key, prob, blur, image)


def random_noise(
    key: PRNGKey, image: Array, prob: float = 0.5, std: float = 0.05
) -> Array:
  """Adds gaussian noise with standard deviation `std` with probability `prob`.

  Args:
    key: PRNG key.
    image: float image [H, W, C].
    prob: probability of adding noise.
    std: noise standard deviation.

  Returns:
    The possibly noisy image, clipped to [0, 1].
  """
  apply_key, noise_key = jax.random.split(key)
  noise = std * jax.random.normal(noise_key, image.shape, image.dtype)
  add_noise = lambda x: jnp.clip(x + noise, 0.0, 1.0)
  return color.maybe_apply(apply_key, prob, add_noise, image)


def jigsaw(key: PRNGKey, image: Array, grid: int) -> Array:
  """Cuts the image into a grid x grid array of tiles and shuffles them.

  Args:
    key: PRNG key.
    image: image [H, W, C] with H and W divisible by ``grid``.
    grid: tiles per side (0 or 1 leaves the image unchanged).

  Returns:
    The image with its tiles permuted (a uniformly random permutation).
  """
  if grid <= 1:
    return image
  h, w, c = image.shape
  if h % grid or w % grid:
    raise ValueError(f'jigsaw_grid={grid} must divide the view size {h}x{w}.')
  th, tw = h // grid, w // grid
  tiles = image.reshape(grid, th, grid, tw, c).transpose(0, 2, 1, 3, 4)
  tiles = tiles.reshape(grid * grid, th, tw, c)
  tiles = tiles[jax.random.permutation(key, grid * grid)]
  return (
      tiles.reshape(grid, grid, th, tw, c)
      .transpose(0, 2, 1, 3, 4)
      .reshape(h, w, c)
  )


def _to_float(image: Array) -> Array:
  """Maps uint8 images to float32 in [0, 1]; float images pass through."""
  if jnp.issubdtype(image.dtype, jnp.integer):
    return image.astype(jnp.float32) / 255.0
  return image.astype(jnp.float32)


def augment_image(
    key: PRNGKey,
    image: Array,
    cfg: ml_collections.ConfigDict,
    out_size: int,
    cropped: bool = False,
) -> Array:
  """Augments one image according to a view config.

  Args:
    key: PRNG key for this example.
    image: uint8 image [H, W, C] (C = 1 or 3).
    cfg: view config (see `view_config`); read as static Python values.
    out_size: side of the square output.
    cropped: the image is the view's random-resized crop already (cut on
      the host, ``host_crop``); the other ops follow as usual.

  Returns:
    float32 image [out_size, out_size, C] in [0, 1].
  """
  keys = jax.random.split(key, 8)
  family = cfg.color_ops
  resized_crop = (
      crop.torchvision_resized_crop
      if family == 'torchvision'
      else crop.random_resized_crop
  )
  x = _to_float(image)
  interpolation = cfg.crop_interpolation
  if not cropped:
    x = resized_crop(
        keys[0],
        x,
        out_size,
        tuple(cfg.crop_scale),
        tuple(cfg.crop_ratio),
        interpolation,
    )
  if interpolation == 'bicubic' and not cropped:
    # Bicubic overshoots; PIL's 8-bit images clamp, and the colour ops expect
    # [0, 1].
    x = jnp.clip(x, 0.0, 1.0)
  x = random_flip(keys[1], x, float(cfg.flip_prob))
  x = color.color_jitter(
      keys[2],
      x,
      color.jitter_magnitudes(cfg),
      float(cfg.jitter_prob),
      family,
  )
  x = color.random_grayscale(keys[3], x, float(cfg.grayscale_prob))
  x = random_blur(keys[4], x, float(cfg.blur_prob), tuple(cfg.blur_sigma))
  x = random_noise(keys[5], x, float(cfg.noise_prob), float(cfg.noise_std))
  x = color.random_solarize(
      keys[6],
      x,
      float(cfg.solarize_prob),
      color.SOLARIZE_THRESHOLD[family],
  )
  x = jigsaw(keys[7], x, int(cfg.jigsaw_grid))
  return jnp.clip(x, 0.0, 1.0)


def augment_batch(
    key: PRNGKey,
    images: Array,
    cfg: ml_collections.ConfigDict,
    out_size: int,
    cropped: bool = False,
) -> Array:
  """Augments a batch, with an independent key per example.

  Args:
    key: PRNG key for the batch.
    images: uint8 images [B, H, W, C].
    cfg: view config (static).
    out_size: side of the square output.
    cropped: the images are the view's crops already (see `augment_image`).

  Returns:
    float32 images [B, out_size, out_size, C] in [0, 1].
  """
  keys = jax.random.split(key, images.shape[0])
  return jax.vmap(lambda k, x: augment_image(k, x, cfg, out_size, cropped))(
      keys, images
  )


def make_views(
    key: PRNGKey,
    images: Array,
    view_cfgs: Sequence[ml_collections.ConfigDict],
    out_size: int,
) -> Tuple[Array, ...]:
  """Builds one augmented batch per view config.

  Args:
    key: PRNG key; view `i` uses `jax.random.fold_in(key, i)`.
    images: uint8 images [B, H, W, C], or one uint8 batch of host crops
      [B, S, S, C] per view (a tuple: those are each view's crop already).
    view_cfgs: one view config per view.
    out_size: side of the square outputs.

  Returns:
    A tuple of float32 arrays [B, out_size, out_size, C], one per view.
  """
  cropped = isinstance(images, (tuple, list))
  return tuple(
      augment_batch(
          jax.random.fold_in(key, i),
          images[i] if cropped else images,
          cfg,
          out_size,
          cropped,
      )
      for i, cfg in enumerate(view_cfgs)
  )


def preprocess_eval(images: Array, out_size: int) -> Array:
  """Deterministic evaluation preprocessing.

  Images already `out_size` x `out_size` are only rescaled to [0, 1]; others
  are center-cropped to their shorter side and resized to `out_size`.

  Args:
    images: uint8 images [B, H, W, C].
    out_size: side of the square outputs.

  Returns:
    float32 images [B, out_size, out_size, C] in [0, 1].
  """
  x = _to_float(images)
  batch, height, width, channels = x.shape
  if height == out_size and width == out_size:
    return x
  side = min(height, width)
  top, left = (height - side) // 2, (width - side) // 2
  x = x[:, top : top + side, left : left + side]
  x = jax.image.resize(x, (batch, out_size, out_size, channels), 'linear')
  return jnp.clip(x, 0.0, 1.0)
