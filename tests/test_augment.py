"""Tests for ssl_jax.data.augment."""

import dm_pix as pix
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ssl_jax.data import augment
from ssl_jax.data import color
from ssl_jax.data import crop

# Everything on, probabilities 1: exercises every branch.
ALL_ON = dict(
    flip_prob=1.0,
    jitter_prob=1.0,
    grayscale_prob=1.0,
    blur_prob=1.0,
    noise_prob=1.0,
    solarize_prob=1.0,
)
# Every op off and the crop the identity: output must equal input / 255.
ALL_OFF = dict(
    crop_scale=(1.0, 1.0),
    crop_ratio=(1.0, 1.0),
    flip_prob=0.0,
    jitter_prob=0.0,
    grayscale_prob=0.0,
    blur_prob=0.0,
    noise_prob=0.0,
    solarize_prob=0.0,
)


# A frozen (hashable) config can be a static argument, so equal configs share
# one compilation across tests.
_augment_jit = jax.jit(augment.augment_batch, static_argnums=(2, 3))


def _augment(key, images, cfg, out_size):
  return _augment_jit(
      key, images, ml_collections.FrozenConfigDict(cfg), out_size
  )


def _images(batch=8, size=32, channels=3, seed=0):
  rng = np.random.default_rng(seed)
  return jnp.asarray(
      rng.integers(0, 256, (batch, size, size, channels), dtype=np.uint8)
  )


# Output equal to the input size is also covered by test_all_off_is_identity.
@pytest.mark.parametrize('channels,out_size', [(3, 24), (1, 32)])
def test_shapes_and_dtype(channels, out_size):
  images = _images(channels=channels)
  cfg = augment.view_config()
  out = _augment(jax.random.key(0), images, cfg, out_size)
  assert out.shape == (8, out_size, out_size, channels)
  assert out.dtype == jnp.float32


@pytest.mark.slow
@pytest.mark.parametrize('channels', [1, 3])
def test_value_range_all_ops_on(channels):
  images = _images(channels=channels)
  cfg = augment.view_config(**ALL_ON)
  for seed in range(4):
    out = np.asarray(_augment(jax.random.key(seed), images, cfg, 24))
    assert np.all(np.isfinite(out))
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_determinism_and_key_dependence():
  images = _images()
  cfg = augment.view_config()
  out_a = _augment(jax.random.key(1), images, cfg, 24)
  out_b = _augment(jax.random.key(1), images, cfg, 24)
  out_c = _augment(jax.random.key(2), images, cfg, 24)
  np.testing.assert_array_equal(out_a, out_b)
  assert not np.allclose(out_a, out_c)


def test_per_example_keys():
  # The same image repeated must get different augmentations per example.
  images = jnp.repeat(_images(batch=1), 8, axis=0)
  out = _augment(jax.random.key(0), images, augment.view_config(), 24)
  for i in range(1, 8):
    assert not np.allclose(out[0], out[i])


@pytest.mark.slow
def test_jit_matches_eager():
  images = _images()
  cfg = augment.view_config(**ALL_ON)
  key = jax.random.key(3)
  eager = augment.augment_batch(key, images, cfg, 24)
  jitted = _augment(key, images, cfg, 24)
  np.testing.assert_allclose(eager, jitted, atol=1e-5)


def test_raw_uint32_key():
  images = _images()
  cfg = augment.view_config(**ALL_ON)
  # Compiled whole: op by op, every op compiles on its own.
  augmented = jax.jit(lambda k: augment.augment_batch(k, images, cfg, 24))
  out_a = augmented(jax.random.PRNGKey(0))
  out_b = augmented(jax.random.PRNGKey(1))
  assert out_a.shape == (8, 24, 24, 3)
  assert not np.allclose(out_a, out_b)


def test_make_views():
  images = _images()
  cfgs = [augment.view_config(), augment.view_config(**ALL_ON)]
  key = jax.random.key(0)
  views = augment.make_views(key, images, cfgs, 24)
  assert len(views) == 2
  for i, cfg in enumerate(cfgs):
    np.testing.assert_array_equal(
        views[i],
        augment.augment_batch(jax.random.fold_in(key, i), images, cfg, 24),
    )


@pytest.mark.slow
def test_identity_crop():
  image = _images(batch=1)[0].astype(jnp.float32) / 255.0
  for seed in range(3):
    out = crop.random_resized_crop(
        jax.random.key(seed), image, 32, scale=(1.0, 1.0), ratio=(1.0, 1.0)
    )
    np.testing.assert_allclose(out, image, atol=1e-5)


def test_crop_stays_inside_image():
  # A constant image must stay constant whatever the crop (no zero padding).
  image = jnp.full((32, 32, 3), 0.7, jnp.float32)
  for seed in range(5):
    out = crop.random_resized_crop(jax.random.key(seed), image, 24)
    np.testing.assert_allclose(out, 0.7, atol=1e-5)


def test_flip():
  image = _images(batch=1)[0].astype(jnp.float32) / 255.0
  out = augment.random_flip(jax.random.key(0), image, 1.0)
  np.testing.assert_array_equal(out, image[:, ::-1])


def test_grayscale_channels_equal():
  image = _images(batch=1)[0].astype(jnp.float32) / 255.0
  out = color.random_grayscale(jax.random.key(0), image, 1.0)
  assert out.shape == image.shape
  np.testing.assert_allclose(out[..., 0], out[..., 1])
  np.testing.assert_allclose(out[..., 0], out[..., 2])


@pytest.mark.parametrize('channels', [1, 3])
def test_all_off_is_identity(channels):
  images = _images(channels=channels)
  cfg = augment.view_config(**ALL_OFF)
  out = augment.augment_batch(jax.random.key(0), images, cfg, 32)
  np.testing.assert_allclose(out, images / 255.0, atol=1e-5)


def test_jitter_step_matches_pix():
  image = _images(batch=1)[0].astype(jnp.float32) / 255.0
  b, c, s, h = 1.3, 0.7, 1.4, 0.15
  expected = [
      image * b,
      pix.adjust_contrast(image, c),
      pix.adjust_saturation(image, s),
      pix.adjust_hue(image, h),
  ]
  for op, ref in enumerate(expected):
    out = color._simclr_step(image, jnp.int32(op), b, c, s, h)
    np.testing.assert_allclose(out, jnp.clip(ref, 0.0, 1.0), atol=1e-5)


def test_jitter_changes_grayscale_image():
  image = _images(batch=1, channels=1)[0].astype(jnp.float32) / 255.0
  out = color.simclr_jitter(jax.random.key(0), image, (0.8, 0.8, 0.8, 0.2), 1.0)
  assert out.shape == image.shape
  assert not np.allclose(out, image)


def test_preprocess_eval():
  images = _images()
  np.testing.assert_allclose(
      augment.preprocess_eval(images, 32), images / 255.0, atol=1e-6
  )
  rect = _images(batch=2, size=32)[:, :, :28]  # [2, 32, 28, 3]
  out = augment.preprocess_eval(rect, 24)
  assert out.shape == (2, 24, 24, 3)
  assert out.dtype == jnp.float32
  assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
  # Resizing to the shorter side leaves just the central crop.
  np.testing.assert_allclose(
      augment.preprocess_eval(rect, 28), rect[:, 2:30] / 255.0, atol=1e-5
  )


def test_view_config():
  cfg = augment.view_config(jitter_strength=0.5)
  assert cfg.jitter_strength == 0.5
  assert tuple(cfg.crop_scale) == (0.08, 1.0)
  with pytest.raises(KeyError):
    augment.view_config(jitter_strenght=0.5)
