"""Tests for the two colour-op families (ssl_jax.data.color, crop)."""

import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ssl_jax import errors
from ssl_jax.data import augment
from ssl_jax.data import color
from ssl_jax.data import crop

# torchvision's outputs, made by benchmarks/parity/augment_parity.py.
FIXTURE = os.path.join(
    os.path.dirname(__file__), 'fixtures', 'augment_torchvision.npz'
)
TOLERANCE = 2 / 255
OPS = {
    'brightness': color.adjust_brightness,
    'contrast': color.adjust_contrast,
    'saturation': color.adjust_saturation,
    'hue': color.adjust_hue,
}


@pytest.fixture(scope='module')
def ref():
  with np.load(FIXTURE) as data:
    return dict(data)


def _float(images):
  return jnp.asarray(images, jnp.float32) / 255.0


def _close_to_uint8(ours, theirs):
  diff = np.max(np.abs(np.asarray(ours) * 255.0 - theirs))
  assert diff <= TOLERANCE * 255, diff


@pytest.mark.parametrize('name', sorted(OPS))
def test_component_matches_torchvision(ref, name):
  x = _float(ref['images'])
  op = jax.vmap(OPS[name], in_axes=(0, None))
  for factor, theirs in zip(ref[f'{name}_factors'], ref[name]):
    _close_to_uint8(op(x, factor), theirs)


def test_grayscale_solarize_blur_match_torchvision(ref):
  x = _float(ref['images'])
  keys = jax.random.split(jax.random.key(0), len(x))
  gray = jax.vmap(lambda k, im: color.random_grayscale(k, im, 1.0))(keys, x)
  _close_to_uint8(gray[..., 0], ref['grayscale'])
  threshold = color.SOLARIZE_THRESHOLD['torchvision']
  solarize = lambda k, im: color.random_solarize(k, im, 1.0, threshold)
  _close_to_uint8(jax.vmap(solarize)(keys, x), ref['solarize'])
  kernel, sigma = int(ref['blur_kernel']), float(ref['blur_sigma'])
  assert kernel == augment.blur_kernel_size(32)
  blur = jax.vmap(lambda im: augment.gaussian_blur(im, sigma, kernel))
  _close_to_uint8(blur(x), ref['blur'])


@pytest.mark.parametrize('interpolation', ['bilinear', 'bicubic'])
def test_resized_crop_matches_torchvision(ref, interpolation):
  x = _float(ref['images'])
  boxes = jnp.asarray(ref['crop_boxes'])
  resize = lambda im, b: crop.resized_crop(im, b, 24, interpolation)
  out = jnp.clip(jax.vmap(resize)(x, boxes), 0.0, 1.0)
  _close_to_uint8(out, ref[f'crop_{interpolation}24'])


def test_composite_matches_torchvision_in_drawn_order(ref):
  x = _float(ref['images'])
  ops = color.active_ops((1, 1, 1, 1), 3)
  out = jax.vmap(lambda im, o, f: color.apply_jitter(im, o, f, ops))(
      x, jnp.asarray(ref['jitter_order']), jnp.asarray(ref['jitter_factors'])
  )
  _close_to_uint8(out, ref['jitter'])


@pytest.mark.parametrize(
    'magnitudes', [(0.4, 0.4, 0.2, 0.1), (0.4, 0.0, 0.2, 0.0), (0, 0, 0, 0.3)]
)
def test_torchvision_jitter_applies_drawn_params(ref, magnitudes):
  # The jitter draws its parameters with jitter_params and applies them.
  image = _float(ref['images'][0])
  key = jax.random.key(4)
  out = color.torchvision_jitter(key, image, magnitudes, 1.0)
  ops = color.active_ops(magnitudes, 3)
  order, factors = color.jitter_params(jax.random.split(key)[1], magnitudes, 3)
  assert sorted(np.asarray(order).tolist()) == list(ops)
  b, c, s, h = magnitudes
  assert max(0, 1 - b) <= factors[0] <= 1 + b
  assert max(0, 1 - c) <= factors[1] <= 1 + c
  assert max(0, 1 - s) <= factors[2] <= 1 + s
  assert -h <= factors[3] <= h
  expected = image
  for op in np.asarray(order):
    expected = list(OPS.values())[op](expected, factors[op])
  np.testing.assert_allclose(out, expected, atol=1e-6)


def test_one_channel_torchvision_jitter():
  image = _float(np.arange(64, dtype=np.uint8).reshape(8, 8, 1) * 4)
  # Only brightness and contrast apply to one channel.
  assert color.active_ops((0.4, 0.4, 0.4, 0.1), 1) == (0, 1)
  out = color.torchvision_jitter(jax.random.key(0), image, (0.4,) * 4, 1.0)
  assert out.shape == image.shape
  assert not np.allclose(out, image)
  # All magnitudes 0: ColorJitter does nothing.
  same = color.torchvision_jitter(jax.random.key(0), image, (0,) * 4, 1.0)
  np.testing.assert_array_equal(same, image)


def test_magnitudes_from_fields():
  assert color.jitter_magnitudes(augment.view_config()) == (0.8, 0.8, 0.8, 0.2)
  view = augment.view_config(jitter_strength=0.5)
  assert color.jitter_magnitudes(view) == (0.4, 0.4, 0.4, 0.1)
  for i, name in enumerate(('brightness', 'contrast', 'saturation', 'hue')):
    view = augment.view_config(jitter_strength=0.5, **{name: 0.3})
    expected = [0.4, 0.4, 0.4, 0.1]
    expected[i] = 0.3
    assert color.jitter_magnitudes(view) == tuple(expected)


@pytest.mark.parametrize('family', color.FAMILIES)
def test_brightness_field_changes_only_brightness(family):
  # With the other magnitudes 0 the jitter only scales the image.
  x = _float(np.random.default_rng(0).integers(0, 256, (16, 16, 3), np.uint8))
  x = x * 0.5  # No clipping at factors up to 2.
  cfg = augment.view_config(
      brightness=0.6, contrast=0.0, saturation=0.0, hue=0.0, color_ops=family
  )
  magnitudes = color.jitter_magnitudes(cfg)
  for seed in range(4):
    out = color.color_jitter(jax.random.key(seed), x, magnitudes, 1.0, family)
    ratio = np.asarray(out)[x > 0.05] / np.asarray(x)[x > 0.05]
    assert 0.4 - 1e-5 <= ratio.min() and ratio.max() <= 1.6 + 1e-5
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-4)


@pytest.mark.parametrize('family', color.FAMILIES)
def test_saturation_field_changes_only_saturation(family):
  # Saturation alone keeps each pixel's gray level (torchvision: exactly; the
  # HSV op keeps V, so compare the max channel).
  rng = np.random.default_rng(1)
  x = 0.25 + 0.5 * _float(rng.integers(0, 256, (16, 16, 3), np.uint8))
  cfg = augment.view_config(
      brightness=0.0, contrast=0.0, saturation=0.5, hue=0.0, color_ops=family
  )
  out = color.color_jitter(
      jax.random.key(2), x, color.jitter_magnitudes(cfg), 1.0, family
  )
  assert not np.allclose(out, x)
  if family == 'torchvision':
    gray = lambda im: np.asarray(im) @ np.array([0.2989, 0.587, 0.114])
    # The weights sum to 0.9999, hence the looser tolerance.
    np.testing.assert_allclose(gray(out), gray(x), atol=1e-4)
  else:
    np.testing.assert_allclose(out.max(-1), x.max(-1), atol=1e-5)


# Outputs of color_jitter(jax.random.key(KEY), image, STRENGTH, 1.0) as it
# was before the per-component fields (commit 5081364), on _RAMP.
_SIMCLR_BEFORE = [
    (
        0,
        0.5,
        [
            0.154431,
            0.162234,
            0.190420,
            0.217698,
            0.225501,
            0.253687,
            0.280965,
            0.288768,
            0.316953,
            0.344232,
            0.352035,
            0.380220,
            0.407499,
            0.415301,
            0.443487,
            0.470765,
            0.478568,
            0.506754,
            0.534032,
            0.541835,
            0.570021,
            0.597299,
            0.605102,
            0.633287,
            0.660566,
            0.668369,
            0.696554,
            0.723832,
            0.731635,
            0.759821,
            0.787099,
            0.794902,
            0.823088,
            0.850366,
            0.858169,
            0.886354,
            0.908836,
            0.920214,
            0.932309,
            0.926812,
            0.928080,
            0.932309,
            0.926812,
            0.928080,
            0.932309,
            0.926812,
            0.928080,
            0.932309,
        ],
    ),
    (
        1,
        1.0,
        [
            0.283680,
            0.337137,
            0.306008,
            0.312532,
            0.365989,
            0.334860,
            0.341385,
            0.394842,
            0.363713,
            0.370237,
            0.423694,
            0.392565,
            0.399089,
            0.452546,
            0.421417,
            0.427942,
            0.481399,
            0.450270,
            0.456794,
            0.510251,
            0.479122,
            0.485646,
            0.539103,
            0.507974,
            0.514499,
            0.567956,
            0.536827,
            0.543351,
            0.596808,
            0.565679,
            0.572203,
            0.625660,
            0.594531,
            0.601056,
            0.654513,
            0.623384,
            0.629908,
            0.683365,
            0.652236,
            0.658760,
            0.712217,
            0.681088,
            0.687613,
            0.741070,
            0.709941,
            0.716465,
            0.753417,
            0.736763,
        ],
    ),
]
_RAMP = (jnp.arange(48, dtype=jnp.float32).reshape(4, 4, 3) * 5 + 7) / 255.0


@pytest.mark.parametrize('key,strength,before', _SIMCLR_BEFORE)
def test_simclr_fields_unset_equal_jitter_strength(key, strength, before):
  view = augment.view_config(jitter_strength=strength)
  magnitudes = color.jitter_magnitudes(view)
  out = color.color_jitter(jax.random.key(key), _RAMP, magnitudes, 1.0)
  np.testing.assert_allclose(np.ravel(out), before, atol=2e-6)
  # Setting every field to its derived value changes nothing.
  explicit = augment.view_config(
      jitter_strength=7.0,  # Ignored: every component is set.
      brightness=0.8 * strength,
      contrast=0.8 * strength,
      saturation=0.8 * strength,
      hue=0.2 * strength,
  )
  assert color.jitter_magnitudes(explicit) == magnitudes


def _box_possible(box, side, scale, ratio):
  """Whether a rounded box can come from a draw in scale x ratio."""
  top, left, h, w = box
  if top < 0 or left < 0 or top + h > side or left + w > side:
    return False
  # sqrt(A r) rounds to w and sqrt(A / r) to h.
  area_lo, area_hi = (w - 0.5) * (h - 0.5), (w + 0.5) * (h + 0.5)
  ratio_lo, ratio_hi = (w - 0.5) / (h + 0.5), (w + 0.5) / (h - 0.5)
  return (
      area_lo <= scale[1] * side**2 + 1e-6
      and area_hi >= scale[0] * side**2 - 1e-6
      and ratio_lo <= ratio[1]
      and ratio_hi >= ratio[0]
  )


@pytest.mark.parametrize('side,scale', [(32, (0.08, 1.0)), (96, (0.2, 0.5))])
def test_torchvision_crop_box_in_range(side, scale):
  ratio = (3 / 4, 4 / 3)
  keys = jax.random.split(jax.random.key(side), 2000)
  boxes = np.asarray(
      jax.vmap(lambda k: crop.torchvision_crop_box(k, side, side, scale))(keys)
  )
  assert all(_box_possible(b, side, scale, ratio) for b in boxes)
  area = boxes[:, 2] * boxes[:, 3] / side**2
  assert area.min() < scale[0] + 0.05 and area.max() > scale[1] - 0.1
  log_ratio = np.log(boxes[:, 3] / boxes[:, 2])
  assert abs(np.mean(log_ratio)) < 0.02


def test_torchvision_crop_fallback():
  # No try fits a 4 x 40 image at these ratios: get_params' central crop,
  # the full height and width clamped to the largest ratio.
  box = crop.torchvision_crop_box(jax.random.key(0), 4, 40, (0.9, 1.0))
  assert np.asarray(box).tolist() == [0, 17, 4, 5]
  image = jnp.full((4, 40, 3), 0.3)
  out = crop.torchvision_resized_crop(jax.random.key(0), image, 8)
  np.testing.assert_allclose(out, 0.3, atol=1e-6)


def test_torchvision_view_runs_jitted():
  images = jnp.asarray(
      np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), np.uint8)
  )
  cfg = augment.view_config(
      color_ops='torchvision',
      crop_interpolation='bicubic',
      blur_prob=1.0,
      solarize_prob=1.0,
      jitter_prob=1,
  )
  run = jax.jit(augment.augment_batch, static_argnums=(2, 3))
  out = run(jax.random.key(0), images, ml_collections.FrozenConfigDict(cfg), 24)
  assert out.shape == (4, 24, 24, 3)
  assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


@pytest.mark.parametrize(
    'field,value,message',
    [
        (
            'brightness',
            -0.1,
            (
                'augment.view1.brightness=-0.1 must be >= 0 (None: from'
                ' jitter_strength).'
            ),
        ),
        (
            'contrast',
            -1.0,
            (
                'augment.view1.contrast=-1.0 must be >= 0 (None: from'
                ' jitter_strength).'
            ),
        ),
        (
            'saturation',
            math.nan,
            (
                'augment.view1.saturation=nan must be >= 0 (None: from'
                ' jitter_strength).'
            ),
        ),
        (
            'hue',
            0.7,
            (
                'augment.view1.hue=0.7 must be in [0, 0.5] (torchvision'
                " ColorJitter's range)."
            ),
        ),
        (
            'hue',
            -0.1,
            (
                'augment.view1.hue=-0.1 must be in [0, 0.5] (torchvision'
                " ColorJitter's range)."
            ),
        ),
        (
            'crop_interpolation',
            'nearest',
            (
                "augment.view1.crop_interpolation='nearest' must be 'bilinear'"
                " or 'bicubic'."
            ),
        ),
        (
            'color_ops',
            'pil',
            (
                "augment.view1.color_ops='pil' must be one of 'simclr',"
                " 'torchvision'."
            ),
        ),
    ],
)
def test_check_view_messages(field, value, message):
  view = augment.view_config(**{field: value})
  with pytest.raises(errors.ConfigError) as raised:
    augment.check_view('augment.view1', view, 32)
  assert str(raised.value) == message


def test_check_view_accepts_the_fields():
  view = augment.view_config(
      brightness=0.4, contrast=0.0, saturation=0.2, hue=0.5, color_ops='simclr'
  )
  augment.check_view('augment.view1', view, 32)
  augment.check_view('augment.view1', augment.view_config(), 32)
