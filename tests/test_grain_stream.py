"""The streamed training pipeline on grain: same batches, resumable, bounded.

A folder split read uncached with ``workers=2`` streams each step's batch
from grain worker processes (``batching.host_batches``); with ``workers=1``
the same reads run in this process. Tiny folders, a few steps.
"""

import functools
import os
import time

import jax
import numpy as np
import psutil
import pytest

from ssl_jax import errors
from ssl_jax import methods
from ssl_jax.data import batching
from ssl_jax.data import decoding
from ssl_jax.data import host_crop
from ssl_jax.data import input_pipeline
from ssl_jax.data import memory
from ssl_jax.training import step as step_lib
from tests import helpers

SEED, BATCH = 3, 8
CROPS = (host_crop.CropSpec(16, (0.08, 1.0), (3 / 4, 4 / 3), 'bilinear'),) * 2


def _split(data_dir, workers, **kwargs):
  return input_pipeline.load_split(
      'folder', 'train', data_dir, cache=False, workers=workers, **kwargs
  )


def _read(split, start, stop):
  batches = batching.host_batches(
      batching.shuffled_reader(SEED, BATCH), (split,), start, stop
  )
  try:
    return list(batches)
  finally:
    batches.close()


def _workers() -> list:
  """This process's live worker processes (not multiprocessing's tracker)."""
  return [
      p
      for p in psutil.Process().children(recursive=True)
      if p.is_running()
      and p.status() != psutil.STATUS_ZOMBIE
      and 'resource_tracker' not in ' '.join(p.cmdline())
  ]


def _equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
  return helpers.make_folder(
      tmp_path_factory.mktemp('grain') / 'data', splits=(('train', 2, 8),)
  )


def test_two_workers_give_the_batches_of_one_process_and_resume(folder):
  here = _read(_split(folder, 1, resize=12), 0, 4)
  split = _split(folder, 2, resize=12)
  assert split.parallel
  there = _read(split, 0, 4)
  assert len(there) == 4 and there[0]['image'].shape == (BATCH, 12, 12, 3)
  _equal(here, there)
  # Resuming at step 2 (the second epoch) gives steps 2 and 3 of the run.
  _equal(_read(split, 2, 4), there[2:])
  assert not _workers() and not decoding.Workers.broken


def test_host_crops_through_train_batches_match_one_process(folder):
  sharding = jax.sharding.NamedSharding(
      step_lib.make_mesh(), step_lib.P('data')
  )

  def first(workers, start):
    split = _split(folder, workers, crops=CROPS, seed=SEED, channels=3)
    batches = batching.train_batches(
        split,
        seed=SEED,
        batch_size=BATCH,
        start_step=start,
        sharding=sharding,
        prefetch=1,
    )
    got = [jax.device_get(next(batches)) for _ in range(2)]
    batches.close()
    return got

  here, there = first(1, 1), first(2, 1)
  assert [c.shape for c in there[0]['crops']] == [(BATCH, 16, 16, 3)] * 2
  _equal(here, there)
  assert not _workers()


@pytest.mark.parametrize('bad_images', ['skip', 'error'])
def test_a_bad_file_read_in_a_worker_is_counted_or_one_line(
    tmp_path, bad_images
):
  data_dir = helpers.make_folder(tmp_path / 'data', splits=(('train', 2, 8),))
  bad = os.path.join(data_dir, 'train', 'class_1', '3.jpg')
  with open(bad, 'wb') as f:
    f.write(b'\xff\xd8\xff\xe0 truncated')
  split = _split(data_dir, 2, resize=12, bad_images=bad_images)
  if bad_images == 'error':
    with pytest.raises(errors.DataError) as e:
      _read(split, 0, 2)
    assert '\n' not in str(e.value)
    assert f"file '{bad}'" in str(e.value) and 'bad_images=skip' in str(e.value)
  else:
    batches = _read(split, 0, 2)  # Two steps: one epoch, every record.
    assert all(len(b['label']) == BATCH for b in batches)  # Replaced.
    assert split.skipped == {11}  # class_0's 8 files, then class_1/3.jpg.
  assert not _workers() and not decoding.Workers.broken  # Not a fall-back.


def _marked_read(splits, step, *, marks):
  """A step's batch, leaving a file per step made (what grain holds)."""
  with open(os.path.join(marks, str(step)), 'w'):
    pass
  del splits
  return {'x': np.full((4,), step, np.int64)}


@pytest.mark.slow
def test_closing_stops_the_workers_and_memory_counts_what_grain_holds(
    folder, tmp_path
):
  split = _split(folder, 2, resize=12)
  marks = tmp_path / 'marks'
  marks.mkdir()
  read = functools.partial(_marked_read, marks=str(marks))
  batches = batching.host_batches(read, (split,), 5)
  assert [int(next(batches)['x'][0]) for _ in range(3)] == [5, 6, 7]
  assert len(_workers()) == 2
  # Every step made but not consumed is held somewhere in grain: wait until
  # the workers have filled every buffer, then count.
  held, deadline = -1, time.time() + 60
  while time.time() < deadline:
    time.sleep(2)
    now = len(os.listdir(marks)) - 3
    if now == held:
      break
    held = now
  assert 0 < held <= memory.batches_held(0, 2) - 2
  batches.close()
  assert not _workers()


@pytest.mark.slow
def test_fixmatch_streams_both_splits_through_the_workers_alike(folder):
  config = helpers.tiny_config(method='fixmatch', batch_size=2)
  config.fixmatch.mu = 2
  sharding = jax.sharding.NamedSharding(
      step_lib.make_mesh(jax.devices()[:1]), step_lib.P('data')
  )

  def steps(workers):
    data = {
        'labelled': _split(folder, workers, resize=12),
        'train': _split(folder, workers, resize=12),
    }
    assert data['train'].parallel == (workers > 1)
    batches = methods.get('fixmatch').train_batches(
        state=None, start_step=3, config=config, data=data, sharding=sharding
    )
    got = [jax.device_get(next(batches)) for _ in range(2)]
    batches.close()
    return got

  here, there = steps(1), steps(2)
  assert there[0]['unlabelled_image'].shape == (4, 12, 12, 3)
  _equal(here, there)
  assert not _workers()
