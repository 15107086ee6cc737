"""Global batches: which examples each step reads, and how they reach devices.

The batch of step ``s`` is a pure function of ``(seed, s)``, so a resumed run
continues mid-epoch with exactly the batches it would have seen. Every process
computes the same global permutation and reads only its own slice of each
global batch, so the global batch does not depend on the number of processes
(the reason for not using ``tfds.split_for_jax_process``). Host batches become
global ``jax.Array`` s through ``jax.make_array_from_process_local_data``,
prepared ahead in a background thread.
"""

import queue
import threading
from typing import Iterator, Optional

import jax
import numpy as np

from ssl_jax.data.input_pipeline import Split


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


def process_slice(global_indices: np.ndarray) -> np.ndarray:
  """This process's contiguous part of a global batch's indices."""
  per_process = len(global_indices) // jax.process_count()
  lo = jax.process_index() * per_process
  return global_indices[lo : lo + per_process]


def global_batches(
    read_step,
    *,
    start_step: int,
    sharding: jax.sharding.NamedSharding,
    prefetch: int = 2,
    stop_step: Optional[int] = None,
) -> Iterator[dict[str, jax.Array]]:
  """Turns per-process host batches into global jax Arrays, prefetched.

  Args:
    read_step: ``step -> dict of numpy arrays``, this process's part of the
      global batch of that step.
    start_step: the first step to produce.
    sharding: sharding of the batch arrays over the data axis.
    prefetch: batches prepared ahead in a background thread.
    stop_step: the step before which to stop (None: never).

  Yields:
    Dicts of global jax Arrays.
  """

  def to_global(local):
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, x), local
    )

  steps = (
      _count(start_step) if stop_step is None else range(start_step, stop_step)
  )
  yield from _prefetch((to_global(read_step(s)) for s in steps), prefetch)


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
  n = len(split)
  read = lambda step: split.read(
      process_slice(batch_indices(seed, step, n, batch_size)), step
  )
  yield from global_batches(
      read, start_step=start_step, sharding=sharding, prefetch=prefetch
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
