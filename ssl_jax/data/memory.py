"""Host memory: the budget a run's data may use, and what fits in it.

``data.cache`` left unset caches a split decoded in RAM only where it fits
``data.memory_budget_gb`` (0: half of this machine's physical memory);
otherwise the split streams from its files through grain's worker
processes, and host memory stays flat whatever the dataset's size: a stream
holds :func:`batches_held` batches.
"""

import math
import os
from typing import Optional, Sequence

from absl import logging

from ssl_jax import errors

GIB = 1 << 30


def budget_bytes(memory_budget_gb: float) -> int:
  """The host memory budget in bytes.

  Args:
    memory_budget_gb: ``data.memory_budget_gb`` (0: half of physical RAM).

  Returns:
    The budget.
  """
  if memory_budget_gb > 0:
    return int(memory_budget_gb * GIB)
  try:
    total = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
  except (ValueError, OSError, AttributeError):  # Not POSIX: assume 16 GiB.
    total = 16 * GIB
  return total // 2


def choose_cache(
    cache: Optional[bool],
    name: str,
    num_images: int,
    shape: Optional[Sequence[Optional[int]]],
    memory_budget_gb: float,
) -> bool:
  """Whether to decode a split into RAM: ``cache``, or by size where unset.

  Args:
    cache: ``data.cache`` (None: choose by size).
    name: the split, for the log line.
    num_images: its size.
    shape: the decoded image shape, None (or None sides) where images are
      cut afresh each read (host crops) and cannot be cached.
    memory_budget_gb: ``data.memory_budget_gb``.

  Returns:
    True to cache. The choice made for an unset ``cache`` is logged.
  """
  if cache is not None:
    return bool(cache)
  budget = budget_bytes(memory_budget_gb)
  if shape is None or None in shape:
    logging.info(
        'data.cache unset: streaming split %r (%d images) from its files: '
        'each read cuts new crops from the originals.',
        name,
        num_images,
    )
    return False
  need = num_images * math.prod(shape)
  chosen = need <= budget
  logging.info(
      'data.cache unset: %s split %r (%d images x %s = %.2f GiB decoded, '
      'budget data.memory_budget_gb = %.2f GiB).',
      'caching' if chosen else 'streaming',
      name,
      num_images,
      'x'.join(map(str, shape)),
      need / GIB,
      budget / GIB,
  )
  return chosen


def batches_held(prefetch: int, workers: int) -> int:
  """Host batches a training stream holds at most.

  This process holds the batch being stepped on, ``prefetch`` global batches
  ahead and one being made global. With ``workers`` > 1 each grain worker
  (``decoding.grain_iter``, one buffered batch per stage) holds one batch in
  the making and one finished in shared memory, and grain's thread in this
  process one queued and one being fetched from it: 4 per worker. With one
  worker the batch is read here, the one being made global.

  Args:
    prefetch: ``data.prefetch``.
    workers: ``data.workers`` as resolved (``Split.workers``).

  Returns:
    The count.
  """
  return prefetch + 2 + (4 * workers if workers > 1 else 0)


def check_stream_budget(
    per_process_batch: int,
    view_pixels: int,
    prefetch: int,
    memory_budget_gb: float,
    workers: int = 1,
) -> int:
  """Raises where the budget cannot hold the batches a stream keeps ready.

  Args:
    per_process_batch: images per process per step.
    view_pixels: uint8 values per image across its views (``S*S*C`` each).
    prefetch: ``data.prefetch``.
    memory_budget_gb: ``data.memory_budget_gb``.
    workers: the split's decoding processes (see :func:`batches_held`).

  Returns:
    The bytes the stream needs.

  Raises:
    errors.ConfigError: the budget is smaller than that.
  """
  held = batches_held(prefetch, workers)
  need = per_process_batch * view_pixels * held
  budget = budget_bytes(memory_budget_gb)
  if need > budget:
    raise errors.ConfigError(
        f'data.memory_budget_gb={memory_budget_gb:g} ({budget / GIB:.3g} GiB)'
        f' cannot hold the {held} batches a stream keeps ready '
        f'({need / GIB:.3g} GiB); raise --config.data.memory_budget_gb to at '
        f'least {math.ceil(need / GIB * 100) / 100:g}, or lower '
        '--config.batch_size, --config.data.prefetch or --config.data.workers.'
    )
  return need
