"""Folder datasets at scale: listing, decoding and cached reading of 100k JPEGs.

  python benchmarks/folder_data.py --npz=../shared/data/cifar10_jpeg_q75.npz \
      --root=/tmp/folder100k --out=benchmarks/results/folder_data_COMMIT.json

Writes (once; reused afterwards) a folder dataset of ``--num_images`` JPEG
files per resolution under ``--root``: at 32 px the CIFAR-10 archive's own
JPEG bytes (train, then test, then train again, in one folder per class); at
96 px the same images resized and re-encoded (quality 90). Without ``--npz``,
random images. Then, per resolution, through ``ssl_jax.data`` as training
reads them:

* ``listing_seconds``: listing the split and the dataset facts, cold caches of
  this process (the OS page cache is whatever earlier runs left);
* ``uncached``: reading random batches of ``--batch`` as an uncached first
  epoch does, in this process, on one worker process per core
  (``data.workers=0``), and, for comparison, on a thread per core;
* ``cache_fill``: decoding the whole split into RAM (``data.cache=True``), in
  this process and on the worker processes;
* ``cached``: reading random batches from RAM afterwards;

against the demand of the ResNet-18 SimCLR step: this machine's, timed here at
32 and 96 px (``--step_batch``; ``--no_step`` skips it), and an H200's, read
from ``benchmarks/results/h200_suite_gpu_core.jsonl``.
"""

import argparse
import concurrent.futures
import io
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from ssl_jax.data import decoding  # noqa: E402  # pylint: disable=g-import-not-at-top,wrong-import-position
from ssl_jax.data import folder  # noqa: E402  # pylint: disable=g-import-not-at-top,wrong-import-position
from ssl_jax.data import input_pipeline  # noqa: E402  # pylint: disable=g-import-not-at-top,wrong-import-position


def _jpegs(npz: str, n: int, px: int):
  """Yields ``(class, jpeg bytes)`` for n images."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  if npz:
    data = np.load(npz)
    parts = [
        (data[f'{s}_jpeg'], data[f'{s}_offsets'], data[f'{s}_label'])
        for s in ('train', 'test')
    ]
    items = [(b, o, y, i) for b, o, y in parts for i in range(len(y))]
  else:
    items = []
  rng = np.random.default_rng(0)
  for k in range(n):
    if items:
      blob, offsets, labels, i = items[k % len(items)]
      raw, label = blob[offsets[i] : offsets[i + 1]].tobytes(), int(labels[i])
      if px == 32:
        yield label, raw
        continue
      image = Image.open(io.BytesIO(raw)).convert('RGB')
    else:
      label = k % 10
      image = Image.fromarray(rng.integers(0, 256, (px, px, 3), np.uint8))
    out = io.BytesIO()
    image.resize((px, px), Image.BILINEAR).save(out, 'JPEG', quality=90)
    yield label, out.getvalue()


def make(root: str, npz: str, n: int, px: int) -> str:
  """The dataset folder ``root/px{px}`` with n train JPEGs (written once)."""
  data_dir = os.path.join(root, f'px{px}')
  done = os.path.join(data_dir, 'COMPLETE')
  if os.path.exists(done):
    return data_dir
  start, made = time.time(), set()
  for k, (label, raw) in enumerate(_jpegs(npz, n, px)):
    d = os.path.join(data_dir, 'train', f'class_{label}')
    if d not in made:
      os.makedirs(d, exist_ok=True)
      made.add(d)
    with open(os.path.join(d, f'{k:06d}.jpg'), 'wb') as f:
      f.write(raw)
    if (k + 1) % 20000 == 0:
      print(f'  wrote {k + 1}/{n} files at {px} px', file=sys.stderr)
  open(done, 'w').close()
  print(f'wrote {n} files in {time.time() - start:.0f} s', file=sys.stderr)
  return data_dir


def _rate(read, n_images: int, batches) -> float:
  start = time.time()
  for idx in batches:
    read(idx)
  return n_images / (time.time() - start)


def measure(data_dir: str, batch: int, rounds: int) -> dict:
  """Listing, uncached and cached reading of ``data_dir/train``."""
  folder.list_split.cache_clear()
  input_pipeline.dataset_info.cache_clear()
  start = time.time()
  info = input_pipeline.dataset_info('folder', data_dir)
  listing = time.time() - start
  n = info['splits']['train']
  rng = np.random.default_rng(0)
  batches = [rng.choice(n, batch, replace=False) for _ in range(rounds)]
  out = dict(
      num_files=n,
      image_shape=list(info['image_shape']),
      listing_seconds=listing,
      decode_workers=decoding.num_workers(0),
  )
  for workers in (1, 0):  # One process, then one per core.
    split = input_pipeline.load_split(
        'folder', 'train', data_dir, cache=False, workers=workers
    )
    split.read(batches[0])  # Starts the worker processes.
    name = 'one_process' if workers == 1 else 'workers'
    out[f'uncached_{name}_images_per_second'] = _rate(
        split.read, batch * (rounds - 1), batches[1:]
    )
  # The alternative not taken: the one-process decoding on a thread per core.
  one = input_pipeline.load_split('folder', 'train', data_dir, cache=False)
  with concurrent.futures.ThreadPoolExecutor(out['decode_workers']) as pool:
    threaded = lambda idx: list(pool.map(one._example, [int(i) for i in idx]))  # pylint: disable=protected-access
    out['uncached_threads_images_per_second'] = _rate(
        threaded, batch * rounds, batches
    )
  for workers in (1, 0):
    start = time.time()
    cached = input_pipeline.load_split(
        'folder', 'train', data_dir, cache=True, workers=workers
    )
    fill = time.time() - start
    name = 'one_process' if workers == 1 else 'workers'
    out[f'cache_fill_{name}_seconds'] = fill
    out[f'cache_fill_{name}_images_per_second'] = n / fill
  out['cache_megabytes'] = cached.images.nbytes / 2**20
  out['cached_images_per_second'] = _rate(cached.read, batch * rounds, batches)
  return out


def step_demand(px: int, batch: int, data_dir: str) -> float:
  """Images/s of this machine's compiled ResNet-18 SimCLR step at px."""
  sys.path.insert(0, HERE)
  import cases  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top

  from ssl_jax.configs import simclr_cifar10  # pylint: disable=g-import-not-at-top
  from ssl_jax.configs import simclr_folder  # pylint: disable=g-import-not-at-top

  config = (simclr_cifar10 if px == 32 else simclr_folder).get_config()
  config.batch_size = batch
  config.data_dir = data_dir
  step, state, data, key, _ = cases.compile_step(
      config, num_classes=10, channels=3
  )
  state, _ = step(state, data, key)
  jax.block_until_ready(state)
  times = []
  for _ in range(3):
    start = time.time()
    state, _ = step(state, data, key)
    jax.block_until_ready(state)
    times.append(time.time() - start)
  return batch / float(np.median(times))


def h200_demand() -> dict:
  """ResNet-18 SimCLR step img/s on one H200, from the suite's records."""
  out = {}
  with open(os.path.join(HERE, 'results', 'h200_suite_gpu_core.jsonl')) as f:
    for line in f:
      r = json.loads(line)
      if r.get('encoder') == 'resnet18':
        out[f'{r["image_size"]}px_{r["dtype"]}'] = r['images_per_second']
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--npz', default='')
  parser.add_argument('--root', default='/tmp/folder100k')
  parser.add_argument('--num_images', type=int, default=100_000)
  parser.add_argument('--px', default='32,96')
  parser.add_argument('--batch', type=int, default=512)
  parser.add_argument('--rounds', type=int, default=20)
  parser.add_argument('--step_batch', type=int, default=64)
  parser.add_argument('--no_step', action='store_true')
  parser.add_argument('--out', default='')
  args = parser.parse_args()
  record = dict(
      command=' '.join(sys.argv),
      cpu_count=os.cpu_count(),
      h200_step_images_per_second=h200_demand(),
  )
  for px in (int(p) for p in args.px.split(',')):
    data_dir = make(args.root, args.npz, args.num_images, px)
    record[f'{px}px'] = measure(data_dir, args.batch, args.rounds)
    if not args.no_step:
      record[f'{px}px']['cpu_step_images_per_second'] = step_demand(
          px, args.step_batch, data_dir
      )
    print(json.dumps({f'{px}px': record[f'{px}px']}, indent=1), flush=True)
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(record, f, indent=1)


if __name__ == '__main__':
  main()
