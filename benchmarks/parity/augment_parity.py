"""Parity of the 'torchvision' augmentation family with torchvision.

  /work/refvenv/bin/python benchmarks/parity/augment_parity.py

Needs jax, ssl_jax, torch, torchvision and scipy in one environment. Compares
ssl_jax.data's ops (``color_ops='torchvision'``) with
torchvision.transforms.v2 (and its PIL kernels, which solo-learn and lightly
run on PIL images, for reference; '_first64': on the 64 natural images only):

  (a) RandomResizedCrop boxes: area-fraction and aspect-ratio distributions
      (KS tests, 10,000 draws each), and the resized crop at fixed boxes;
  (b) brightness, contrast, saturation and hue at fixed factors;
  (c) grayscale; (d) solarize; (e) blur sigma draws and the blurred image;
  (f) the jitter's random order (chi-square over the 24 permutations) and
      the composite against torchvision's ops applied in the drawn order.

Images: 64 CIFAR-10 test images (every 156th, so all classes appear; the
archive is sorted by class) from ../shared/data/cifar10_jpeg_q75.npz when
present, else 64 synthetic ones; plus 8 uniform-noise images, which are
saturated and so stress hue. Writes every figure to
benchmarks/results/augment_parity_<commit>.json and regenerates
tests/fixtures/augment_torchvision.npz (8 images with torchvision's outputs),
which tests/test_color.py reads without torch.
"""

import io
import json
import os
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
import PIL.Image
import PIL.ImageOps
import scipy.stats
import torch
import torchvision
import torchvision.transforms as T
import torchvision.transforms.v2.functional as F

from ssl_jax.data import augment
from ssl_jax.data import color
from ssl_jax.data import crop

ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
CIFAR = os.path.join(ROOT, '..', 'shared', 'data', 'cifar10_jpeg_q75.npz')
RESULTS = os.path.join(ROOT, 'benchmarks', 'results')
FIXTURE = os.path.join(ROOT, 'tests', 'fixtures', 'augment_torchvision.npz')
DRAWS = 10_000
FACTORS = {
    'brightness': (0.2, 0.6, 1.4, 1.8),
    'contrast': (0.0, 0.2, 0.6, 1.4, 1.8),
    'saturation': (0.0, 0.2, 0.6, 1.4, 1.8),
    'hue': (-0.5, -0.3, -0.1, 0.05, 0.2, 0.45),
}
# Three per component go into the test fixture (keeps it small).
FIXTURE_FACTORS = {
    'brightness': (0.6, 1.4, 1.8),
    'contrast': (0.2, 0.6, 1.8),
    'saturation': (0.0, 0.6, 1.8),
    'hue': (-0.3, 0.05, 0.45),
}
OURS = {
    'brightness': color.adjust_brightness,
    'contrast': color.adjust_contrast,
    'saturation': color.adjust_saturation,
    'hue': color.adjust_hue,
}
THEIRS = {
    'brightness': F.adjust_brightness,
    'contrast': F.adjust_contrast,
    'saturation': F.adjust_saturation,
    'hue': F.adjust_hue,
}


def load_images() -> tuple[np.ndarray, str]:
  """Returns uint8 [72, 32, 32, 3] images and where the first 64 came from."""
  noise = np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), np.uint8)
  if os.path.exists(CIFAR):
    with np.load(CIFAR) as data:
      jpeg, offsets = data['test_jpeg'], data['test_offsets']
      images = []
      for i in np.arange(64) * 156:
        raw = jpeg[offsets[i] : offsets[i + 1]].tobytes()
        images.append(
            np.asarray(PIL.Image.open(io.BytesIO(raw)).convert('RGB'))
        )
    source = 'CIFAR-10 test images 0, 156, ..., 9828 (cifar10_jpeg_q75.npz)'
  else:
    # Smooth colour gradients with some texture, as real images have.
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    images = []
    for _ in range(64):
      a = rng.uniform(0, 1, (3, 3))
      img = a[:, 0] + a[:, 1] * yy[..., None] + a[:, 2] * xx[..., None]
      img = img / img.max() + rng.normal(0, 0.05, img.shape)
      images.append(np.clip(img * 255, 0, 255).astype(np.uint8))
    source = 'synthetic gradients (CIFAR-10 archive absent)'
  return np.concatenate([np.stack(images), noise]), source


def to_torch(x: np.ndarray) -> torch.Tensor:
  """float [..., H, W, C] -> torch [..., C, H, W]."""
  return torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, -3)))


def from_torch(x: torch.Tensor) -> np.ndarray:
  """torch [..., C, H, W] -> numpy [..., H, W, C]."""
  return np.moveaxis(x.numpy(), -3, -1)


def maxdiff(a, b) -> float:
  return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b))))


def ks(a: np.ndarray, b: np.ndarray) -> dict:
  result = scipy.stats.ks_2samp(a, b)
  return {
      'statistic': float(result.statistic),
      'pvalue': float(result.pvalue),
      'mean_ours': float(np.mean(a)),
      'mean_torchvision': float(np.mean(b)),
  }


def crops(images: np.ndarray) -> tuple[dict, dict]:
  """(a): box distributions and resized crops at fixed boxes."""
  out, fixture = {'distributions': []}, {}
  ratio = (3 / 4, 4 / 3)
  for side in (32, 96):
    for scale in ((0.08, 1.0), (0.2, 1.0)):
      keys = jax.random.split(jax.random.key(side + int(scale[0] * 100)), DRAWS)
      draw = jax.jit(
          jax.vmap(
              lambda k, n=side, s=scale: crop.torchvision_crop_box(k, n, n, s)
          )
      )
      ours = np.asarray(draw(keys)).astype(np.float64)
      torch.manual_seed(side)
      dummy = torch.empty(3, side, side)
      theirs = np.array(
          [
              T.RandomResizedCrop.get_params(dummy, scale, ratio)
              for _ in range(DRAWS)
          ],
          np.float64,
      )
      record = {'side': side, 'scale': scale}
      for name, (a, b) in {
          'area_fraction': (
              ours[:, 2] * ours[:, 3] / side**2,
              theirs[:, 2] * theirs[:, 3] / side**2,
          ),
          'aspect_ratio': (
              ours[:, 3] / ours[:, 2],
              theirs[:, 3] / theirs[:, 2],
          ),
          'top_fraction': (
              ours[:, 0] / np.maximum(side - ours[:, 2], 1),
              theirs[:, 0] / np.maximum(side - theirs[:, 2], 1),
          ),
      }.items():
        record[name] = ks(a, b)
      inside = (ours[:, 0] + ours[:, 2] <= side) & (
          ours[:, 1] + ours[:, 3] <= side
      )
      record['all_boxes_inside'] = bool(inside.all() and (ours >= 0).all())
      out['distributions'].append(record)
  # The resize: our weight matrices on the full image vs torchvision on the
  # cropped tensor, at boxes drawn for each image (32 px up- and 24 px
  # down-sampling, and a fixed small box).
  boxes = np.array(
      jax.vmap(lambda k: crop.torchvision_crop_box(k, 32, 32))(
          jax.random.split(jax.random.key(7), len(images))
      )
  )
  boxes[0] = (3, 5, 9, 12)
  x = images.astype(np.float32) / 255.0
  resize = {}
  modes = {
      'bilinear': T.InterpolationMode.BILINEAR,
      'bicubic': T.InterpolationMode.BICUBIC,
  }
  for interpolation, mode in modes.items():
    for size in (32, 24):
      ours = np.asarray(
          jax.jit(
              jax.vmap(
                  lambda im, b, n=size, i=interpolation: crop.resized_crop(
                      im, b, n, i
                  )
              )
          )(x, jnp.asarray(boxes))
      )
      theirs = np.stack([
          from_torch(
              F.resized_crop(
                  to_torch(x[i]),
                  *map(int, boxes[i]),
                  [size, size],
                  interpolation=mode,
                  antialias=True,
              )
          )
          for i in range(len(x))
      ])
      # solo-learn's path: PIL images, 8-bit.
      pil = np.stack([
          np.asarray(
              F.resized_crop(
                  PIL.Image.fromarray(images[i]),
                  *map(int, boxes[i]),
                  [size, size],
                  interpolation=mode,
              )
          )
          for i in range(len(x))
      ])
      key = f'{interpolation}_out{size}'
      resize[f'{key}_max_abs_diff'] = maxdiff(ours, theirs)
      resize[f'{key}_pil_uint8_max_abs_diff_255'] = maxdiff(
          np.clip(ours, 0, 1) * 255, pil
      )
      resize[f'{key}_pil_uint8_max_abs_diff_255_first64'] = maxdiff(
          np.clip(ours[:64], 0, 1) * 255, pil[:64]
      )
      if size == 24:
        fixture['crop_boxes'] = boxes[:8]
        fixture[f'crop_{interpolation}24'] = to_uint8(theirs[:8])
  out['resized_crop'] = resize
  return out, fixture


def to_uint8(x: np.ndarray) -> np.ndarray:
  return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def components(images: np.ndarray) -> tuple[dict, dict]:
  """(b): each jitter op at fixed factors; PIL kernels for reference."""
  x = images.astype(np.float32) / 255.0
  out, fixture = {}, {}
  for name, factors in FACTORS.items():
    ours_fn = jax.jit(jax.vmap(OURS[name], in_axes=(0, None)))
    record = {}
    for f in factors:
      ours = np.asarray(ours_fn(x, jnp.float32(f)))
      theirs = from_torch(THEIRS[name](to_torch(x), f))
      pil = np.stack([
          np.asarray(THEIRS[name](PIL.Image.fromarray(im), f)) for im in images
      ])
      record[str(f)] = {
          'max_abs_diff': maxdiff(ours, theirs),
          'max_abs_diff_255': maxdiff(ours, theirs) * 255,
          'pil_uint8_max_abs_diff_255': maxdiff(ours * 255, pil),
          'pil_uint8_max_abs_diff_255_first64': maxdiff(
              ours[:64] * 255, pil[:64]
          ),
          'pil_uint8_mean_abs_diff_255': float(
              np.mean(np.abs(ours * 255 - pil))
          ),
      }
    out[name] = record
    fx = FIXTURE_FACTORS[name]
    fixture[f'{name}_factors'] = np.asarray(fx, np.float32)
    fixture[name] = np.stack(
        [to_uint8(from_torch(THEIRS[name](to_torch(x[:8]), f))) for f in fx]
    )
  return out, fixture


def grayscale_solarize(images: np.ndarray) -> tuple[dict, dict]:
  """(c), (d)."""
  x = images.astype(np.float32) / 255.0
  keys = jax.random.split(jax.random.key(0), len(x))
  gray = np.asarray(
      jax.vmap(lambda k, im: color.random_grayscale(k, im, 1.0))(keys, x)
  )
  gray_tv = from_torch(F.rgb_to_grayscale(to_torch(x), num_output_channels=3))
  gray_pil = np.stack(
      [np.asarray(PIL.Image.fromarray(im).convert('L')) for im in images]
  )
  threshold = color.SOLARIZE_THRESHOLD['torchvision']
  sol = np.asarray(
      jax.vmap(lambda k, im: color.random_solarize(k, im, 1.0, threshold))(
          keys, x
      )
  )
  sol_tv = from_torch(F.solarize(to_torch(images), 128)).astype(np.float32)
  sol_pil = np.stack([
      np.asarray(PIL.ImageOps.solarize(PIL.Image.fromarray(im), 128))
      for im in images
  ])
  # The 'simclr' family's 0.5: the same on 8-bit inputs; on any float input
  # within 1/255 of 128/255.
  sol_half = np.asarray(
      jax.vmap(lambda k, im: color.random_solarize(k, im, 1.0, 0.5))(keys, x)
  )
  ramp = jnp.linspace(0.0, 1.0, 100_001)[:, None, None]
  ramp_diff = jnp.max(
      jnp.abs(
          color.random_solarize(keys[0], ramp, 1.0, 0.5)
          - (color.random_solarize(keys[0], ramp, 1.0, threshold))
      )
  )
  out = {
      'grayscale': {
          'max_abs_diff': maxdiff(gray, gray_tv),
          'pil_uint8_max_abs_diff_255': maxdiff(gray[..., 0] * 255, gray_pil),
      },
      'solarize': {
          'threshold': threshold,
          'max_abs_diff_vs_uint8_torchvision_255': maxdiff(sol * 255, sol_tv),
          'max_abs_diff_vs_pil_255': maxdiff(sol * 255, sol_pil),
          'simclr_threshold_0.5_max_abs_diff_255_on_8bit': maxdiff(
              sol_half * 255, sol_tv
          ),
          'simclr_threshold_0.5_max_abs_diff_255_on_float_ramp': float(
              ramp_diff * 255
          ),
      },
  }
  fixture = {
      'grayscale': to_uint8(gray_tv[:8, ..., 0]),
      'solarize': sol_tv[:8].astype(np.uint8),
  }
  return out, fixture


def blur(images: np.ndarray) -> tuple[dict, dict]:
  """(e): sigma draws and the blurred image at fixed sigmas."""
  keys = jax.random.split(jax.random.key(3), DRAWS)
  ours = np.asarray(jax.vmap(lambda k: augment.blur_sigma(k, (0.1, 2.0)))(keys))
  torch.manual_seed(3)
  theirs = np.array([T.GaussianBlur.get_params(0.1, 2.0) for _ in range(DRAWS)])
  out = {'sigma_0.1_2.0': ks(ours, theirs), 'image': {}}
  x = images.astype(np.float32) / 255.0
  kernel_32 = augment.blur_kernel_size(32)
  for kernel in (kernel_32, 9):
    for sigma in (0.1, 0.5, 1.0, 2.0):
      mine = np.asarray(
          jax.vmap(
              lambda im, s=sigma, k=kernel: augment.gaussian_blur(im, s, k)
          )(x)
      )
      ref = from_torch(F.gaussian_blur(to_torch(x), [kernel, kernel], [sigma]))
      out['image'][f'kernel{kernel}_sigma{sigma}'] = maxdiff(mine, ref)
  fixture = {
      'blur_kernel': np.int32(kernel_32),
      'blur_sigma': np.float32(1.0),
      'blur': to_uint8(
          from_torch(F.gaussian_blur(to_torch(x[:8]), [kernel_32] * 2, [1.0]))
      ),
  }
  return out, fixture


def order(images: np.ndarray) -> tuple[dict, dict]:
  """(f): permutation frequencies and the composite in the drawn order."""
  fns = ('brightness', 'contrast', 'saturation', 'hue')
  out = {}
  magnitudes = (0.4, 0.4, 0.2, 0.1)
  draws = 24_000
  keys = jax.random.split(jax.random.key(5), draws)
  orders = np.asarray(
      jax.vmap(lambda k: color.jitter_params(k, magnitudes, 3)[0])(keys)
  )
  codes = orders @ np.array([64, 16, 4, 1])
  _, counts = np.unique(codes, return_counts=True)
  chi = scipy.stats.chisquare(counts)
  out['permutations'] = {
      'draws': draws,
      'distinct': int(len(counts)),
      'min_count': int(counts.min()),
      'max_count': int(counts.max()),
      'chi2': float(chi.statistic),
      'pvalue': float(chi.pvalue),
  }
  x = images.astype(np.float32) / 255.0
  ops = color.active_ops((1, 1, 1, 1), 3)
  composite = {}
  fixture = {}
  for mags in (
      (0.4, 0.4, 0.2, 0.1),
      (0.8, 0.8, 0.8, 0.2),
      (0.8, 0.8, 0.8, 0.5),
  ):
    keys = jax.random.split(jax.random.key(6), len(x))
    params = jax.vmap(lambda k, m=mags: color.jitter_params(k, m, 3))(keys)
    ours = np.asarray(
        jax.vmap(lambda im, o, f: color.apply_jitter(im, o, f, ops))(x, *params)
    )
    theirs = []
    for i in range(len(x)):
      img = to_torch(x[i])
      for op in np.asarray(params[0][i]):
        img = THEIRS[fns[op]](img, float(params[1][i][op]))
      theirs.append(from_torch(img))
    theirs = np.stack(theirs)
    composite[str(mags)] = maxdiff(ours, theirs)
    if mags == (0.8, 0.8, 0.8, 0.2):
      fixture = {
          'jitter_order': np.asarray(params[0][:8]),
          'jitter_factors': np.asarray(params[1][:8]),
          'jitter': to_uint8(theirs[:8]),
      }
  out['composite_max_abs_diff'] = composite
  return out, fixture


def main():
  commit = subprocess.check_output(
      ['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, text=True
  ).strip()
  images, source = load_images()
  start = time.time()
  results = {
      'commit': commit,
      'torch': torch.__version__,
      'torchvision': torchvision.__version__,
      'jax': jax.__version__,
      'images': f'{source}; plus 8 uniform-noise images (seed 1)',
      'tolerance_255': 2,
  }
  fixture = {'images': images[:8]}
  for name, fn in (
      ('a_crop', crops),
      ('b_jitter_components', components),
      ('cd_grayscale_solarize', grayscale_solarize),
      ('e_blur', blur),
      ('f_order', order),
  ):
    results[name], part = fn(images)
    fixture.update(part)
    print(name, json.dumps(results[name]), flush=True)
  results['seconds'] = round(time.time() - start, 1)
  path = os.path.join(RESULTS, f'augment_parity_{commit}.json')
  with open(path, 'w') as f:
    json.dump(results, f, indent=2)
  np.savez_compressed(FIXTURE, **fixture)
  print('wrote', path, FIXTURE, os.path.getsize(FIXTURE), 'bytes')


if __name__ == '__main__':
  main()
