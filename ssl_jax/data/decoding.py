"""Pixels as training wants them, decoded in this process or in worker ones.

:func:`convert_image` centre-crops, resizes and converts channels.
:class:`Workers` decodes folder files in spawned processes: threads measured
slower than one thread (Pillow releases the GIL only inside its decoder; the
rest of each image's work is Python), while processes scale with the cores.
"""

import concurrent.futures
import concurrent.futures.process
import multiprocessing
import os
import signal
import threading
from typing import Any, Callable, Iterator

from absl import logging
import numpy as np

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


def _ignore_signals() -> None:
  # SIGINT/SIGTERM reach the whole process group; the parent handles them
  # (guards.StopRequest saves a checkpoint) and ends the workers itself.
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  signal.signal(signal.SIGTERM, signal.SIG_IGN)


class Workers:
  """One shared pool of spawned decoding processes (spawned, not forked: the
  parent runs jax's threads)."""

  _lock = threading.Lock()
  _pool = None
  _size = 0
  broken = False  # The workers failed: decode in this process from now on.

  @classmethod
  def map(
      cls, tasks: list, workers: int, fn: Callable[..., Any] = load_file
  ) -> Iterator[tuple[Any, str]]:
    """``fn`` of each task, in order, streamed from ``workers`` processes.

    Args:
      tasks: ``fn``'s tasks.
      workers: how many processes.
      fn: a module-level function (``load_file``, ``host_crop.load``).

    Returns:
      An iterator of ``load_file`` results; it raises
      ``BrokenProcessPool``/``RuntimeError`` where the workers fail.
    """
    with cls._lock:
      if cls._pool is None or cls._size != workers:
        if cls._pool is not None:
          cls._pool.shutdown(wait=False)  # Pending maps still finish.
        cls._pool = concurrent.futures.ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context('spawn'),
            initializer=_ignore_signals,
        )
        cls._size = workers
      pool = cls._pool
    chunk = max(1, min(64, len(tasks) // (4 * workers)))
    return pool.map(fn, tasks, chunksize=chunk)

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


def stream(
    tasks: list, workers: int, fn: Callable[..., Any] = load_file
) -> Iterator[Any]:
  """Yields ``fn``'s results from the workers, in order.

  Args:
    tasks: ``fn``'s tasks.
    workers: how many processes.
    fn: a module-level function returning ``(result or None, why)``.

  Yields:
    One item per task: its result, or None (after the workers failed) for
    the caller to decode that task itself.
  """
  done = 0
  try:
    for result in Workers.map(tasks, workers, fn):
      done += 1
      yield result
  except (concurrent.futures.process.BrokenProcessPool, RuntimeError) as e:
    Workers.give_up(e)
    yield from [None] * (len(tasks) - done)
