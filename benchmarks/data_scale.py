"""Streaming large photos: host crop throughput on grain, peak RSS.

  python benchmarks/make_imagenet_like.py --out=/tmp/inet10k --num_images=10000
  python benchmarks/make_imagenet_like.py --out=/tmp/inet100k \
      --num_images=100000 --num_classes=1000
  python benchmarks/data_scale.py --data_dir=/tmp/inet10k \
      --rss_dirs=/tmp/inet10k,/tmp/inet100k

Every part does the work of an uncached SimCLR ImageNet step on the host:
each image of the batch of step ``s`` (``batching.batch_indices``) is
decoded and cut into two 224 px random-resized crops, scale (0.08, 1)
(``configs/simclr_imagenet.py``'s views through ``host_crop.load``), with
the crops of step ``s`` drawn from ``(seed, s, record)``:

* ``decode``: images/s in this process on one core (``workers`` 0), and
  through ``decoding.stream`` (records mapped by ``host_crop.load`` in one
  grain pipeline, as cache fills and whole-split passes read) at each
  ``--workers`` above 0;
* ``grain``: the pipeline training uses (``batching.host_batches`` with
  ``train_batches``' reader: a grain element is one step's batch, made
  whole in a worker) at each ``--workers`` above 1 (below 2 the training
  stream reads in this process: ``one_core``); batches checked equal to
  ``one_core``'s;
* ``rss``: peak resident memory of a fresh process and its grain workers
  (summed, sampled every 20 ms) while the training pipeline streams
  ``--rss_steps`` batches uncached from each of ``--rss_dirs``.

Rates leave out each path's first two batches per worker (start-up,
reported apart); files are read once before timing, so the OS page cache is
warm for every path alike. ``cores_per_accelerator`` is the ResNet-50
SimCLR bfloat16 step's images/s on one H200
(``results/h200_torch_and_r50bf16.jsonl``) over the one-core rate. Writes
``results/data_scale_<commit>.json``.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from ssl_jax.configs import simclr_imagenet  # noqa: E402  # pylint: disable=g-import-not-at-top,wrong-import-position
from ssl_jax.data import batching  # noqa: E402  # pylint: disable=g-import-not-at-top,wrong-import-position
from ssl_jax.data import decoding  # noqa: E402  # pylint: disable=g-import-not-at-top,wrong-import-position
from ssl_jax.data import host_crop  # noqa: E402  # pylint: disable=g-import-not-at-top,wrong-import-position
from ssl_jax.data import input_pipeline  # noqa: E402  # pylint: disable=g-import-not-at-top,wrong-import-position

H200_RECORDS = os.path.join(HERE, 'results', 'h200_torch_and_r50bf16.jsonl')
MB = 2**20


def crop_specs(size: int) -> tuple[host_crop.CropSpec, ...]:
  """The two host crops of SimCLR's ImageNet config at ``size`` px."""
  config = simclr_imagenet.get_config()
  views = (config.augment.view1, config.augment.view2)
  return tuple(host_crop.spec(view, size) for view in views)


def open_split(data_dir: str, crops, workers: int, seed: int):
  """``train`` of a folder, uncached, host crops, as training opens it."""
  return input_pipeline.load_split(
      'folder',
      'train',
      data_dir,
      cache=False,
      channels=3,
      workers=workers,
      crops=crops,
      seed=seed,
  )


def step_tasks(split, seed: int, steps: int, batch: int) -> list[list]:
  """Per step, ``[(host_crop.load task, label), ...]`` of its batch."""
  out = []
  for step in range(steps):
    indices = batching.batch_indices(seed, step, len(split), batch)
    # The tasks Split.read hands its workers.
    out.append([split._host_task(int(i), step) for i in indices])  # pylint: disable=protected-access
  return out


def load_example(item: tuple) -> dict:
  """One record's crops and label (grain's map; also in this process).

  Args:
    item: ``(host_crop.load task, label)``.

  Returns:
    ``{'crops': (uint8 [S, S, C] per view), 'label': int32}``.

  Raises:
    RuntimeError: the file does not decode (generated files always do).
  """
  task, label = item
  crops, why = host_crop.load(task)
  if crops is None:
    raise RuntimeError(f'{task[0]}: {why}')
  return {'crops': tuple(crops), 'label': np.int32(label)}


def _stack(examples: list) -> dict:
  return {
      'crops': tuple(map(np.stack, zip(*(e['crops'] for e in examples)))),
      'label': np.asarray([e['label'] for e in examples], np.int32),
  }


def _timed(batches, batch: int, warmup: int) -> tuple[dict, dict]:
  """Times each batch of an iterator; returns (figures, first batch).

  The first ``warmup`` batches are start-up, two per worker: workers start
  one after another, and grain's early ones fill their one-batch buffers
  while the last still starts; timing them would count that work as free.
  """
  seconds, first = [], None
  start = time.perf_counter()
  for b in batches:
    now = time.perf_counter()
    seconds.append(now - start)
    start = now
    first = b if first is None else first
  warmup = min(warmup, len(seconds) - 1)
  steady = np.asarray(seconds[warmup:])
  figures = dict(
      images_per_second=round(batch * len(steady) / steady.sum(), 2),
      startup_seconds=round(sum(seconds[:warmup]), 4),
      startup_batches=warmup,
      batch_seconds_median=round(float(np.median(steady)), 4),
      batch_seconds_p90=round(float(np.percentile(steady, 90)), 4),
      batch_seconds_max=round(float(steady.max()), 4),
      batches_timed=len(steady),
  )
  return figures, first


def record_batches(tasks: list[list], workers: int):
  """Yields each step's batch: in this process (0) or ``decoding.stream``.

  With workers, every step's records go through one ``decoding.stream``
  pipeline, as a pass over a whole split does (a pipeline per batch would
  time the workers' start-up, not their decoding).
  """
  if workers == 0:
    for items in tasks:
      yield _stack([load_example(item) for item in items])
    return
  flat = [item for items in tasks for item in items]
  results = decoding.stream([t for t, _ in flat], workers, host_crop.load)
  examples = []
  for (task, label), result in zip(flat, results):
    if result is None or result[0] is None:  # The workers failed.
      raise RuntimeError(f'decoding workers: {task[0]}: {result}')
    examples.append({'crops': tuple(result[0]), 'label': np.int32(label)})
    if len(examples) == len(tasks[0]):
      yield _stack(examples)
      examples = []


def stream_batches(split, seed: int, steps: int, batch: int):
  """Yields steps ``0..steps-1`` as training reads them (``split.workers``)."""
  batches = batching.host_batches(
      batching.shuffled_reader(seed, batch), (split,), 0, steps
  )
  try:
    yield from batches
  finally:
    batches.close()


def _same(a: dict, b: dict) -> bool:
  return all(np.array_equal(x, y) for x, y in zip(a['crops'], b['crops'])) and (
      np.array_equal(a['label'], b['label'])
  )


def throughput(args, crops) -> dict:
  """Parts ``decode`` and ``grain``."""
  split = open_split(args.data_dir, crops, 1, args.seed)
  tasks = step_tasks(split, args.seed, args.steps, args.batch)
  for items in tasks:  # Warm the page cache alike for every path.
    for task, _ in items:
      with open(task[0], 'rb') as f:
        f.read()
  out = dict(data_dir=args.data_dir, num_files=len(split))
  # Every path's first batch is checked against this one.
  reference = _stack([load_example(item) for item in tasks[0]])
  for workers in args.workers if 'decode' in args.parts else ():
    figures, first = _timed(
        record_batches(tasks, workers), args.batch, 2 * max(1, workers)
    )
    name = 'one_core' if workers == 0 else f'records_{workers}_workers'
    figures['same_batches'] = _same(first, reference)
    out[name] = figures
    print(json.dumps({name: figures}), flush=True)
  if 'grain' in args.parts:
    import grain  # pylint: disable=g-import-not-at-top

    out['grain_version'] = getattr(grain, '__version__', 'unknown')
    for workers in [w for w in args.workers if w > 1]:
      split = open_split(args.data_dir, crops, workers, args.seed)
      figures, first = _timed(
          stream_batches(split, args.seed, args.steps, args.batch),
          args.batch,
          2 * workers,
      )
      name = f'stream_{workers}_workers'
      figures['same_batches'] = _same(first, reference)
      out[name] = figures
      print(json.dumps({name: figures}), flush=True)
      records = out.get(f'records_{workers}_workers')
      if records:  # Whole batches per worker vs records mapped one by one.
        out.setdefault('stream_over_records_rate', {})[str(workers)] = round(
            figures['images_per_second'] / records['images_per_second'], 3
        )
  return out


class RssSampler(threading.Thread):
  """The peak RSS of this process plus all its descendants, sampled."""

  def __init__(self, interval: float = 0.02):
    super().__init__(daemon=True)
    import psutil  # pylint: disable=g-import-not-at-top

    self._me = psutil.Process()
    self._interval = interval
    self._done = threading.Event()
    self.peak = self.now()

  def children(self) -> list:
    return self._me.children(recursive=True)

  def now(self) -> int:
    total = self._me.memory_info().rss
    for child in self.children():
      try:
        total += child.memory_info().rss
      except Exception:  # pylint: disable=broad-except
        pass  # A worker that ended between listing and reading.
    return total

  def run(self):
    while not self._done.wait(self._interval):
      self.peak = max(self.peak, self.now())

  def stop(self) -> int:
    self._done.set()
    self.join()
    return max(self.peak, self.now())


def rss_child(args, crops) -> dict:
  """Streams ``--rss_steps`` batches of ``--_rss_dir``; its memory figures."""
  sampler = RssSampler()
  sampler.start()
  start_rss = sampler.now()
  data_dir = args._rss_dir  # pylint: disable=protected-access
  split = open_split(data_dir, crops, args.rss_workers, args.seed)
  listed_rss = sampler.now()
  seconds, descendants = [], 0
  start = time.perf_counter()
  for _ in stream_batches(split, args.seed, args.rss_steps, args.batch):
    seconds.append(time.perf_counter() - start)
    descendants = max(descendants, len(sampler.children()))
    start = time.perf_counter()
  peak = sampler.stop()
  steady = seconds[1:] or seconds  # The first batch starts the workers.
  return dict(
      num_files=len(split),
      workers=args.rss_workers,
      descendant_processes=descendants,
      steps=args.rss_steps,
      batch=args.batch,
      rss_after_imports_mb=round(start_rss / MB, 1),
      rss_after_listing_mb=round(listed_rss / MB, 1),
      peak_rss_with_workers_mb=round(peak / MB, 1),
      peak_rss_main_process_mb=round(
          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
      ),
      first_batch_seconds=round(seconds[0], 3),
      images_per_second=round(len(steady) * args.batch / sum(steady), 2),
  )


def peak_memory(args) -> dict:
  """Part ``rss``: a fresh process per folder (this script, ``--_rss_dir``)."""
  out = {}
  for data_dir in args.rss_dirs:
    proc = subprocess.run(
        [
            sys.executable,
            os.path.abspath(__file__),
            f'--_rss_dir={data_dir}',
            f'--rss_workers={args.rss_workers}',
            f'--rss_steps={args.rss_steps}',
            f'--batch={args.batch}',
            f'--size={args.size}',
            f'--seed={args.seed}',
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
      raise RuntimeError(f'rss run on {data_dir} failed:\n{proc.stderr}')
    out[data_dir] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps({data_dir: out[data_dir]}), flush=True)
  peaks = [r['peak_rss_with_workers_mb'] for r in out.values()]
  out['peak_growth_mb_first_to_last_dir'] = round(peaks[-1] - peaks[0], 1)
  return out


def h200_demand() -> dict:
  """The ResNet-50 SimCLR bfloat16 step on one H200, from its record."""
  with open(H200_RECORDS) as f:
    for line_number, line in enumerate(f, 1):
      r = json.loads(line)
      if (r.get('part'), r.get('method'), r.get('encoder'), r.get('dtype')) == (
          'step',
          'simclr',
          'resnet50',
          'bfloat16',
      ):
        return dict(
            images_per_second=r['images_per_second'],
            device_kind=r['device_kind'],
            image_size=r['image_size'],
            batch_size=r['batch_size'],
            source=f'{os.path.relpath(H200_RECORDS, ROOT)}:{line_number}',
        )
  raise RuntimeError(f'no ResNet-50 bfloat16 SimCLR step in {H200_RECORDS}')


def machine() -> dict:
  """Cores, CPU model and load, so that a busy machine shows in the record."""
  model = platform.processor()
  try:
    with open('/proc/cpuinfo') as f:
      model = next(
          (
              ln.split(':', 1)[1].strip()
              for ln in f
              if ln.startswith('model name')
          ),
          model,
      )
  except OSError:
    pass
  import PIL  # pylint: disable=g-import-not-at-top

  return dict(
      cpu_count=os.cpu_count(),
      usable_cores=decoding.num_workers(0),
      cpu_model=model,
      load_average_at_start=list(os.getloadavg()),
      python=platform.python_version(),
      pillow=PIL.__version__,
  )


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data_dir', default='/tmp/inet10k')
  parser.add_argument('--rss_dirs', default='/tmp/inet10k,/tmp/inet100k')
  parser.add_argument('--parts', default='decode,grain,rss')
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--steps', type=int, default=40)
  parser.add_argument('--rss_steps', type=int, default=50)
  parser.add_argument('--workers', default='0,1,2', help='0: this process')
  parser.add_argument('--rss_workers', type=int, default=2)
  parser.add_argument('--size', type=int, default=224)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--out', default='auto', help="auto: results/; '': none")
  parser.add_argument('--_rss_dir', default='', help=argparse.SUPPRESS)
  args = parser.parse_args()
  crops = crop_specs(args.size)
  if args._rss_dir:  # pylint: disable=protected-access
    print(json.dumps(rss_child(args, crops)))
    return
  args.parts = args.parts.split(',')
  unknown = set(args.parts) - {'decode', 'grain', 'rss'}
  if unknown:
    parser.error(f'--parts: unknown {sorted(unknown)}; use decode,grain,rss')
  args.workers = [int(w) for w in args.workers.split(',')]
  args.rss_dirs = [d for d in args.rss_dirs.split(',') if d]
  commit = subprocess.run(
      ['git', 'rev-parse', '--short', 'HEAD'],
      cwd=ROOT,
      capture_output=True,
      text=True,
      check=False,
  ).stdout.strip()
  record = dict(
      commit=commit,
      command=' '.join([os.path.relpath(sys.executable, ROOT)] + sys.argv),
      machine=machine(),
      crops=[c._asdict() for c in crops],
      batch=args.batch,
      steps=args.steps,
  )
  if 'decode' in args.parts or 'grain' in args.parts:
    record['throughput'] = throughput(args, crops)
  if 'rss' in args.parts:
    record['rss'] = peak_memory(args)
  demand = h200_demand()
  record['h200_resnet50_simclr_bf16'] = demand
  one_core = record.get('throughput', {}).get('one_core')
  if one_core:
    record['cores_per_accelerator'] = round(
        demand['images_per_second'] / one_core['images_per_second'], 1
    )
  record['machine']['load_average_at_end'] = list(os.getloadavg())
  print(json.dumps(record, indent=1))
  out = args.out
  if out == 'auto':
    out = os.path.join(HERE, 'results', f'data_scale_{commit}.json')
  if out:
    with open(out, 'w') as f:
      json.dump(record, f, indent=1)


if __name__ == '__main__':
  main()
