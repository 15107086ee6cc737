"""Writes a folder of JPEGs laid out, sized and compressed like ImageNet's.

  python benchmarks/make_imagenet_like.py --out=/tmp/inet100k \
      --num_images=100000 --num_classes=100

``OUT/train/nXXXXXXXX/nXXXXXXXX_K.JPEG`` and ``OUT/val/nXXXXXXXX/...``
(``dataset='folder'`` reads both as labelled splits), JPEG quality 90. Sizes
follow ImageNet's train set: most images have a 500 px longer side at 4:3 or
3:2 (median about 500x375), the others a longer side around 400 px; a quarter
are portrait; 2 % are large (1,000 to 3,000 px), where draft decoding
matters most. Content is a smooth random field in three octaves with a few
hard-edged shapes and fine grain: it compresses to about 2.3 bits per pixel
at quality 90 (ImageNet's files average about 4), neither noise nor flat.

Image ``k`` is a pure function of ``(seed, k)``; the split and class of ``k``
depend only on ``--num_images``, ``--num_classes`` and ``--val_fraction``.
Files are written by one process per core. ``OUT/imagenet_like.json``
records the arguments and file statistics and is written last: a folder
that has it with the same arguments is reused as it is.
"""

import argparse
import concurrent.futures
import io
import json
import os
import sys
import time

import numpy as np

MANIFEST = 'imagenet_like.json'
LARGE_FRACTION = 0.02
PORTRAIT_FRACTION = 0.25
# ImageNet's common aspect ratios (longer / shorter side), most often 4:3.
ASPECTS = (4 / 3, 3 / 2, 1.0, 5 / 4, 16 / 9)
ASPECT_WEIGHTS = (0.55, 0.2, 0.1, 0.1, 0.05)


def synset(c: int) -> str:
  """The folder name of class ``c``, shaped like a WordNet id."""
  return f'n{1000000 + 7919 * c:08d}'


def image_size(rng: np.random.Generator) -> tuple[int, int]:
  """``(height, width)`` drawn around ImageNet's size distribution.

  Args:
    rng: the image's generator.

  Returns:
    The size in pixels.
  """
  aspect = float(rng.choice(ASPECTS, p=ASPECT_WEIGHTS))
  u = rng.uniform()
  if u < LARGE_FRACTION:
    long_side = int(rng.integers(1000, 3001))
  elif u < 0.6:
    long_side = 500
  else:
    long_side = int(np.clip(rng.lognormal(np.log(400), 0.25), 150, 900))
  short_side = max(32, round(long_side / aspect))
  if rng.uniform() < PORTRAIT_FRACTION:
    return long_side, short_side
  return short_side, long_side


def picture(rng: np.random.Generator, height: int, width: int):
  """A photo-like RGB Pillow image.

  Args:
    rng: the image's generator.
    height: its height.
    width: its width.

  Returns:
    A Pillow image.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from PIL import ImageChops  # pylint: disable=g-import-not-at-top
  from PIL import ImageDraw  # pylint: disable=g-import-not-at-top

  long_side = max(height, width)
  # The octaves are summed at a quarter of the size, then enlarged once:
  # four times cheaper than full size, and they are smooth anyway.
  wh, ww = max(4, height // 4), max(4, width // 4)
  field = np.zeros((wh, ww, 3), np.float32)
  for cells, amplitude in ((2, 70.0), (8, 35.0), (40, 14.0)):
    gh = max(2, round(cells * height / long_side))
    gw = max(2, round(cells * width / long_side))
    noise = amplitude * rng.standard_normal((3, gh, gw), dtype=np.float32)
    field += np.stack(
        [
            np.asarray(Image.fromarray(n, 'F').resize((ww, wh), Image.BICUBIC))
            for n in noise
        ],
        axis=-1,
    )
  field += 110 + rng.uniform(-30, 30, 3).astype(np.float32)
  img = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))
  img = img.resize((width, height), Image.BICUBIC)
  draw = ImageDraw.Draw(img)
  for _ in range(int(rng.integers(2, 7))):
    x0, y0 = rng.uniform(-0.1, 1.0) * width, rng.uniform(-0.1, 1.0) * height
    side = rng.uniform(0.03, 0.25) * long_side
    box = (x0, y0, x0 + side, y0 + side * rng.uniform(0.3, 1.5))
    draw.ellipse(box, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
  # Fine grain, the same in each channel (as sensor luminance noise).
  amp = 8
  grain = Image.fromarray(
      rng.integers(0, 2 * amp + 1, (height, width), dtype=np.uint8)
  )
  return ImageChops.add(img, Image.merge('RGB', (grain,) * 3), 1.0, -amp)


def placement(k: int, args) -> tuple[str, str]:
  """``(split, class folder)`` of image ``k``: the last ``val_fraction`` of
  the images are ``val``; classes take turns."""
  num_val = round(args.num_images * args.val_fraction)
  split = 'val' if k >= args.num_images - num_val else 'train'
  return split, synset(k % args.num_classes)


def write_range(job: tuple) -> list[tuple[int, int, int]]:
  """Writes images ``start..stop-1`` (in a worker process).

  Args:
    job: ``(out, seed, start, stop, args as a dict)``.

  Returns:
    ``(height, width, bytes)`` per image written.
  """
  out, seed, start, stop, arg_dict = job
  args = argparse.Namespace(**arg_dict)
  stats = []
  for k in range(start, stop):
    rng = np.random.default_rng([seed, k])
    height, width = image_size(rng)
    buffer = io.BytesIO()
    picture(rng, height, width).save(buffer, 'JPEG', quality=90)
    split, cls = placement(k, args)
    path = os.path.join(out, split, cls, f'{cls}_{k}.JPEG')
    with open(path, 'wb') as f:
      f.write(buffer.getvalue())
    stats.append((height, width, buffer.tell()))
  return stats


def make(args) -> dict:
  """Writes the folder (or reuses a complete one with the same arguments).

  Args:
    args: the parsed flags.

  Returns:
    The manifest: arguments and file statistics.
  """
  wanted = {
      k: getattr(args, k)
      for k in ('num_images', 'num_classes', 'val_fraction', 'seed')
  }
  manifest_path = os.path.join(args.out, MANIFEST)
  if os.path.exists(manifest_path):
    with open(manifest_path) as f:
      manifest = json.load(f)
    if manifest['args'] == wanted:
      return manifest
    sys.exit(
        f'--out={args.out} holds a folder made with {manifest["args"]}; '
        'pass another --out, or delete it first.'
    )
  for k in range(min(args.num_images, args.num_classes)):
    for split in ('train', 'val'):
      os.makedirs(os.path.join(args.out, split, synset(k)), exist_ok=True)
  start = time.time()
  chunk = 500
  jobs = [
      (args.out, args.seed, lo, min(lo + chunk, args.num_images), wanted)
      for lo in range(0, args.num_images, chunk)
  ]
  stats = []
  with concurrent.futures.ProcessPoolExecutor(args.processes or None) as pool:
    for done, part in enumerate(pool.map(write_range, jobs), 1):
      stats.extend(part)
      if done % 20 == 0:
        print(f'  wrote {len(stats)}/{args.num_images}', file=sys.stderr)
  h, w, nbytes = (np.asarray(x, np.float64) for x in zip(*stats))
  num_val = round(args.num_images * args.val_fraction)
  manifest = dict(
      args=wanted,
      splits=dict(train=args.num_images - num_val, val=num_val),
      total_megabytes=round(nbytes.sum() / 2**20, 1),
      mean_kilobytes=round(nbytes.mean() / 1024, 1),
      bits_per_pixel=round(float((8 * nbytes / (h * w)).mean()), 2),
      median_height=float(np.median(h)),
      median_width=float(np.median(w)),
      portrait_fraction=round(float((h > w).mean()), 3),
      max_side=int(max(h.max(), w.max())),
      write_seconds=round(time.time() - start, 1),
  )
  with open(manifest_path, 'w') as f:
    json.dump(manifest, f, indent=1)
  return manifest


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--out', required=True)
  parser.add_argument('--num_images', type=int, default=10_000)
  parser.add_argument('--num_classes', type=int, default=100)
  parser.add_argument('--val_fraction', type=float, default=0.02)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument(
      '--processes', type=int, default=0, help='writers (0: one per core)'
  )
  args = parser.parse_args()
  if args.num_images < 1 or args.num_classes < 1:
    sys.exit('--num_images and --num_classes must be at least 1.')
  if not 0 <= args.val_fraction < 1:
    sys.exit(f'--val_fraction={args.val_fraction} must be in [0, 1).')
  print(json.dumps(make(args), indent=1))


if __name__ == '__main__':
  main()
