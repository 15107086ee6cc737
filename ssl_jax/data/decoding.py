"""Pixels as training wants them, decoded in this process or in worker ones.

:func:`convert_image` centre-crops, resizes and converts channels.
:func:`grain_iter` runs a grain pipeline in spawned worker processes, the
one worker mechanism: training and evaluation streams map whole steps'
batches through it (``batching``), whole-split passes map records through
:func:`stream`. Processes, not threads: threads measured slower than one
thread (Pillow releases the GIL only inside its decoder; the rest of each
image's work is Python).
"""

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from typing import Any, Callable, Iterator

from absl import flags
from absl import logging
import grain
import numpy as np

from ssl_jax import errors
from ssl_jax.data import folder


def convert_image(image, resize: int = 0, channels: int = 0) -> np.ndarray:
  """A uint8 HWC image, centre-cropped and resized, with the channels asked for.

  Args:
    image: uint8 [H, W] or [H, W, C].
    resize: output side (0: keep the size).
    channels: 1 or 3 (0: keep); grayscale is repeated to RGB, RGB is
      averaged with ITU-R 601 luma weights, alpha is dropped.

  Returns:
    uint8 [resize, resize, channels] (or the kept size/channels).
  """
  image = np.asarray(image, np.uint8)
  image = image[..., None] if image.ndim == 2 else image
  if channels and image.shape[-1] != channels:
    if image.shape[-1] < 3:  # Gray (+ alpha).
      image = np.repeat(image[..., :1], channels, axis=-1)
    elif channels == 3:  # RGBA.
      image = image[..., :3]
    else:
      luma = image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114])
      image = np.round(luma)[..., None].astype(np.uint8)
  if resize and image.shape[:2] != (resize, resize):
    # PIL: one image at a time, whatever its size (pets and caltech101 vary).
    from PIL import Image  # pylint: disable=g-import-not-at-top

    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[top : top + side, left : left + side]
    out = Image.fromarray(crop[..., 0] if crop.shape[-1] == 1 else crop).resize(
        (resize, resize), Image.BILINEAR
    )
    image = np.asarray(out, np.uint8).reshape(resize, resize, -1)
  return image


def load_file(task: tuple[str, int, int]) -> tuple[Any, str]:
  """Decodes and converts one file (in a worker process).

  Args:
    task: ``(path, resize, channels)``.

  Returns:
    ``(uint8 image, '')``, or ``(None, why)`` if the file does not decode.
  """
  path, resize, channels = task
  try:
    return convert_image(folder.decode(path, resize), resize, channels), ''
  except Exception as e:  # pylint: disable=broad-except
    return None, f'{type(e).__name__}: {" ".join(str(e).split())}'


def num_workers(workers: int) -> int:
  """Decoding processes for ``data.workers``.

  Args:
    workers: a count, or 0 for one per core this process may use.

  Returns:
    The count.
  """
  if workers > 0:
    return workers
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # macOS and Windows have no affinity masks.
    return os.cpu_count() or 1


def worker_init(index: int, count: int) -> None:
  """Runs first in each grain worker process (``mp_prefetch``'s init).

  SIGINT/SIGTERM reach the whole process group; the parent handles them
  (guards.StopRequest saves a checkpoint) and closes the workers itself. A
  parent killed outright (SIGKILL) cannot close them, so each worker also
  ends when it is orphaned.

  Args:
    index: the worker's index (unused).
    count: the number of workers (unused).
  """
  del index, count
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  signal.signal(signal.SIGTERM, signal.SIG_IGN)
  parent = os.getppid()

  def exit_with_parent():
    while os.getppid() == parent:
      time.sleep(1)
    os._exit(0)  # pylint: disable=protected-access

  threading.Thread(target=exit_with_parent, daemon=True).start()


def grain_iter(dataset, workers: int, buffer: int = 1) -> Iterator[Any]:
  """Iterates a ``grain.MapDataset`` in order, in ``workers`` processes.

  Each worker computes every ``workers``-th element in its own
  loop (``ReadOptions(num_threads=1, prefetch_buffer_size=0)``: one element
  in the making) and keeps ``buffer`` finished ones in shared memory; the
  parent's grain thread keeps ``buffer`` more per worker, so at most
  ``workers * (2 * buffer + 2)`` elements are held (``memory.batches_held``).
  grain's defaults (16 threads, 500 elements ahead) would hold hundreds.

  Args:
    dataset: a ``grain.MapDataset`` whose transformations pickle (module-level
      callables); elements hold numpy arrays.
    workers: processes (spawned: they import the main script).
    buffer: finished elements kept per worker (``per_worker_buffer_size``).

  Yields:
    The elements, in order. Closing the generator stops the workers.

  Raises:
    Whatever a worker raised, with its type and message (grain adds a note).
  """
  if not flags.FLAGS.is_parsed():  # grain's workers read its absl flags.
    flags.FLAGS.mark_as_parsed()
  iterator = iter(
      dataset.to_iter_dataset(
          grain.ReadOptions(num_threads=1, prefetch_buffer_size=0)
      ).mp_prefetch(
          grain.MultiprocessingOptions(
              num_workers=workers, per_worker_buffer_size=buffer
          ),
          worker_init_fn=worker_init,
      )
  )
  try:
    yield from iterator
  finally:
    iterator.close()


class Workers:
  """Whether grain's worker processes failed in this process.

  After a failure (e.g. a script without a main guard, whose spawned workers
  import it and stop) every read decodes in this process.
  """

  broken = False

  @classmethod
  def give_up(cls, error: Exception) -> None:
    """Decodes in this process from now on, saying why once.

    Args:
      error: why the workers failed.

    Raises:
      The error again in a spawned worker that imports a script without a
      main guard, so that its parent falls back instead of the worker
      running the whole script.
    """
    if isinstance(error, (errors.DataError, errors.ConfigError)):
      raise error  # A user's data or config, not the workers: say it.
    if multiprocessing.current_process().name != 'MainProcess':
      raise error
    if not cls.broken:
      logging.warning(
          'Decoding images in this process from now on: the worker processes '
          'failed (%s: %s). If this script reads folder datasets outside '
          "`if __name__ == '__main__':`, move it there (the workers are "
          'spawned and import it) or set data.workers=1.',
          type(error).__name__,
          ' '.join(str(error).split()),
      )
    cls.broken = True


# Fewer files than this decode in the calling process: starting a pass's
# grain workers (spawned processes importing this package) takes seconds,
# more than decoding a few hundred files here.
MIN_TASKS = 512


def pays(tasks: int, workers: int) -> bool:
  """Whether ``tasks`` files go through a pass of ``workers`` processes.

  Args:
    tasks: files to decode.
    workers: ``data.workers``, resolved.

  Returns:
    True where there are workers, they have not failed (:class:`Workers`),
    and the files are enough to repay starting them.
  """
  return (
      workers > 1
      and not Workers.broken
      and tasks >= max(MIN_TASKS, 2 * workers)
  )


def _own_memory(result: Any) -> Any:
  """``result`` with its arrays copied out of grain's shared memory.

  Decoded records outlive the pass (a cached split keeps them), and grain's
  shared-memory arrays left at interpreter exit print errors as they close.
  """
  if isinstance(result, np.ndarray):
    return np.array(result)
  if isinstance(result, (tuple, list)):
    return type(result)(_own_memory(x) for x in result)
  return result


def stream(
    tasks: list, workers: int, fn: Callable[..., Any] = load_file
) -> Iterator[Any]:
  """Yields ``fn``'s results from one grain pipeline, in order.

  Records are mapped one by one and sent back in chunks of up to 64, so
  that small images do not pay one round trip each.

  Args:
    tasks: ``fn``'s tasks.
    workers: how many processes.
    fn: a module-level function returning ``(result or None, why)``.

  Yields:
    One item per task: its result, or None (after the workers failed) for
    the caller to decode that task itself.
  """
  chunk = max(1, min(64, len(tasks) // (4 * workers)))
  dataset = grain.MapDataset.source(tasks).map(fn).batch(chunk, batch_fn=list)
  done = 0
  try:
    with contextlib.closing(grain_iter(dataset, workers)) as chunks:
      for results in chunks:
        done += len(results)
        yield from map(_own_memory, results)
  except Exception as e:  # pylint: disable=broad-except
    Workers.give_up(e)
    yield from [None] * (len(tasks) - done)
