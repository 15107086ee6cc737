"""Global batches: which examples each step reads, and how they reach devices.

The batch of step ``s`` is a pure function of ``(seed, s)``, so a resumed run
continues mid-epoch with exactly the batches it would have seen. Every process
computes the same global permutation and reads only its own slice of each
global batch, so the global batch does not depend on the number of processes
(the reason for not using ``tfds.split_for_jax_process``).

Where a split streams from its files with ``workers`` > 1, each step's
host batch is made whole in a grain worker process (``grain.MapDataset``
over the steps, mapped by the step's read on a copy of the split that
decodes in that process, ``mp_prefetch`` over ``workers`` processes): the
element is one step's process-local batch, so resuming at step ``k`` is
``MapDataset.range(k, ...)``. Host batches become global ``jax.Array`` s
through ``jax.make_array_from_process_local_data``, prepared ahead in a
background thread.
"""

import contextlib
import functools
import queue
import threading
from typing import Any, Callable, Iterator, Optional, Sequence

import grain
import jax
import numpy as np

from ssl_jax.data import decoding
from ssl_jax.data.input_pipeline import Split

# Steps a stream with no end asks grain for (MapDataset needs a length).
_ENDLESS = 1 << 62


def batch_indices(
    seed: int, step: int, num_examples: int, batch_size: int, stream: int = 0
) -> np.ndarray:
  """Indices of the global batch of ``step``: a pure function of its inputs.

  Each epoch is a fresh permutation seeded by ``(seed, epoch)``; the last
  incomplete batch of an epoch is dropped.

  Args:
    seed: the data seed.
    step: the global step.
    num_examples: size of the split.
    batch_size: the global batch size.
    stream: tells apart independent streams of one run (FixMatch's labelled
      and unlabelled batches); 0 is the main stream.

  Returns:
    int64 array [batch_size].
  """
  steps_per_epoch = num_examples // batch_size
  epoch, i = divmod(step, steps_per_epoch)
  perm = np.random.default_rng(
      [seed, epoch] + ([stream] if stream else [])
  ).permutation(num_examples)
  return perm[i * batch_size : (i + 1) * batch_size]


def process_slice(
    global_indices: np.ndarray,
    process_index: Optional[int] = None,
    process_count: Optional[int] = None,
) -> np.ndarray:
  """This process's contiguous part of a global batch's indices.

  Args:
    global_indices: the global batch's indices.
    process_index: this process's index (None: ``jax.process_index()``;
      pass it where the slice is taken in a worker process, which has no
      jax processes of its own).
    process_count: the process count (None: ``jax.process_count()``).

  Returns:
    The slice.
  """
  if process_index is None:
    process_index = jax.process_index()
  if process_count is None:
    process_count = jax.process_count()
  per_process = len(global_indices) // process_count
  lo = process_index * per_process
  return global_indices[lo : lo + per_process]


def global_batches(
    read_step: Callable[..., dict[str, np.ndarray]],
    *,
    start_step: int,
    sharding: jax.sharding.NamedSharding,
    prefetch: int = 2,
    stop_step: Optional[int] = None,
    splits: Optional[Sequence[Split]] = None,
) -> Iterator[dict[str, jax.Array]]:
  """Turns per-process host batches into global jax Arrays, prefetched.

  Args:
    read_step: ``step -> dict of numpy arrays``, this process's part of the
      global batch of that step; with ``splits``, ``(splits, step) -> ...``,
      picklable (a module-level function or a ``functools.partial`` of one),
      and free of jax calls: it runs in grain workers where a split reads in
      parallel (:func:`host_batches`).
    start_step: the first step to produce.
    sharding: sharding of the batch arrays over the data axis.
    prefetch: batches prepared ahead in a background thread.
    stop_step: the step before which to stop (None: never).
    splits: the splits ``read_step`` reads (None: it reads here).

  Yields:
    Dicts of global jax Arrays.
  """
  if splits is None:
    steps = (
        _count(start_step)
        if stop_step is None
        else range(start_step, stop_step)
    )
    host = (read_step(s) for s in steps)
  else:
    host = host_batches(read_step, splits, start_step, stop_step)
  yield from _prefetch(_to_global(host, sharding), prefetch)


def _to_global(host, sharding):
  with contextlib.closing(host):  # Stops the grain workers, if any.
    for local in host:
      yield jax.tree.map(
          lambda x: jax.make_array_from_process_local_data(sharding, x),
          local,
      )


class _StepRead:
  """``read(splits, step)`` in a grain worker, with the records it skipped.

  Picklable (grain sends it to each worker once); the splits are
  :meth:`Split.for_worker` copies, decoding in the worker itself.
  """

  def __init__(self, read, splits: Sequence[Split]):
    self.read = read
    self.splits = tuple(s.for_worker() for s in splits)

  def __call__(self, step: int) -> dict:
    before = [set(s.skipped) for s in self.splits]
    batch = self.read(self.splits, int(step))
    skipped = tuple(
        np.asarray(sorted(s.skipped - b), np.int64)
        for s, b in zip(self.splits, before)
    )
    return {'batch': batch, 'skipped': skipped}


def host_batches(
    read: Callable[..., dict[str, np.ndarray]],
    splits: Sequence[Split],
    start_step: int,
    stop_step: Optional[int] = None,
) -> Iterator[dict[str, np.ndarray]]:
  """``read(splits, step)`` for each step, in grain workers where it pays.

  Where a split reads its files in parallel (``Split.parallel``), the steps
  are a ``grain.MapDataset.range`` mapped by ``read`` in ``max(workers)``
  processes (``decoding.grain_iter``), each making whole batches; the bad
  records a worker skipped join the split's ``skipped`` here. If the workers
  fail (not a ``DataError``), the remaining steps are read here.

  Args:
    read: ``(splits, step) -> dict of numpy arrays``, picklable, no jax calls.
    splits: the splits it reads.
    start_step: the first step.
    stop_step: the step before which to stop (None: never).

  Yields:
    The host batches, in step order.

  Raises:
    errors.DataError: a bad record (``bad_images='error'``), from a worker
      or from here.
  """
  splits = tuple(splits)
  stop = start_step + _ENDLESS if stop_step is None else stop_step
  workers = max(s.workers if s.parallel else 1 for s in splits)
  step = start_step
  if workers > 1 and not decoding.Workers.broken and stop > step:
    steps = grain.MapDataset.range(start_step, stop).map(
        _StepRead(read, splits)
    )
    try:
      with contextlib.closing(decoding.grain_iter(steps, workers)) as outs:
        for out in outs:
          for split, skipped in zip(splits, out['skipped']):
            split.count_skipped(skipped)
          step += 1
          yield out['batch']
      return
    except Exception as e:  # pylint: disable=broad-except
      decoding.Workers.give_up(e)  # Raises a DataError or ConfigError.
  while step < stop:
    yield read(splits, step)
    step += 1


def shuffled_read(
    splits: Sequence[Split],
    step: int,
    *,
    seed: int,
    batch_size: int,
    process_index: int,
    process_count: int,
    stream: int = 0,
) -> dict[str, np.ndarray]:
  """This process's part of step ``step``'s shuffled batch of ``splits[0]``.

  Args:
    splits: ``(split,)``.
    step: the global step.
    seed: the data seed.
    batch_size: the global batch size.
    process_index: this process's ``jax.process_index()``.
    process_count: ``jax.process_count()``.
    stream: see :func:`batch_indices`.

  Returns:
    ``split.read`` of this process's slice of :func:`batch_indices`.
  """
  (split,) = splits
  indices = batch_indices(seed, step, len(split), batch_size, stream)
  return split.read(process_slice(indices, process_index, process_count), step)


def shuffled_reader(seed: int, batch_size: int) -> Callable[..., Any]:
  """:func:`shuffled_read` bound to this process: a picklable step read.

  Args:
    seed: the data seed.
    batch_size: the global batch size.

  Returns:
    ``(splits, step) -> dict of numpy arrays``, for :func:`host_batches` or
    :func:`global_batches`.
  """
  return functools.partial(
      shuffled_read,
      seed=seed,
      batch_size=batch_size,
      process_index=jax.process_index(),
      process_count=jax.process_count(),
  )


def train_batches(
    split: Split,
    *,
    seed: int,
    batch_size: int,
    start_step: int,
    sharding: jax.sharding.NamedSharding,
    prefetch: int = 2,
) -> Iterator[dict[str, jax.Array]]:
  """Yields global batches for steps ``start_step, start_step + 1, ...``.

  A split streaming from its files with ``workers`` > 1 is read by a grain
  pipeline whose element is one step's batch (:func:`host_batches`).

  Args:
    split: the training split.
    seed: the data seed.
    batch_size: the global batch size (divisible by the process count).
    start_step: the first step to produce (the restored step on resume).
    sharding: sharding of the batch arrays over the data axis.
    prefetch: batches prepared ahead in a background thread.

  Yields:
    ``{'image': uint8 [B,H,W,C], 'label': int32 [B]}`` global jax Arrays
    (host crops: ``{'crops': (uint8 [B,S,S,C] per view), 'label'}``).
  """
  yield from global_batches(
      shuffled_reader(seed, batch_size),
      start_step=start_step,
      sharding=sharding,
      prefetch=prefetch,
      splits=(split,),
  )


def _count(start):
  while True:
    yield start
    start += 1


def _prefetch(iterator, size: int):
  """Runs ``iterator`` in a daemon thread, ``size`` items ahead.

  Closing the returned generator stops and joins the thread, so no thread is
  left touching devices while the interpreter shuts down.
  """
  if size <= 0:
    yield from iterator
    return
  q = queue.Queue(maxsize=size)
  stop = threading.Event()
  end = object()  # Marks a finished (finite) iterator.

  def put(item) -> bool:
    while not stop.is_set():
      try:
        q.put(item, timeout=0.1)
        return True
      except queue.Full:
        pass
    return False

  def worker():
    try:
      for item in iterator:
        if not put(item):
          return
      put(end)
    except Exception as e:  # pylint: disable=broad-except
      put(e)
    finally:
      close = getattr(iterator, 'close', None)
      if close is not None:  # Stops grain's workers in this thread.
        close()

  thread = threading.Thread(target=worker, daemon=True)
  thread.start()
  try:
    while True:
      item = q.get()
      if item is end:
        return
      if isinstance(item, Exception):
        raise item
      yield item
  finally:
    stop.set()
    thread.join(timeout=60)


def eval_batches(
    images: np.ndarray, batch_size: int, sharding: jax.sharding.NamedSharding
) -> Iterator[tuple[jax.Array, int]]:
  """Yields ``(global uint8 batch, number of real rows)`` in order, padded.

  Every process holds all ``images``; each contributes its slice of the batch.

  Args:
    images: uint8 [N, H, W, C].
    batch_size: the global batch (divisible by the device count).
    sharding: the data-axis sharding.

  Yields:
    A padded [batch_size, H, W, C] array and how many leading rows are real.
  """
  per_process = batch_size // jax.process_count()
  lo = jax.process_index() * per_process
  for start in range(0, len(images), batch_size):
    chunk = images[start : start + batch_size]
    real = len(chunk)
    if real < batch_size:
      pad = np.zeros((batch_size - real,) + chunk.shape[1:], chunk.dtype)
      chunk = np.concatenate([chunk, pad])
    yield (
        jax.make_array_from_process_local_data(
            sharding, chunk[lo : lo + per_process]
        ),
        real,
    )
