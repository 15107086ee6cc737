"""Checkpoints under faults: truncated files, failed saves, other shapes, no pickle."""

import os
import pathlib
import re
import resource
import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssl_jax import methods
from ssl_jax.methods.base import TrainState
from ssl_jax.training import checkpoint
from tests import helpers

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _state(value: float, size: int = 1000) -> TrainState:
  params = {'w': jnp.full((size,), value), 'b': jnp.zeros(3)}
  return TrainState(
      step=jnp.asarray(int(value), jnp.int32),
      params=params,
      batch_stats={'mean': jnp.ones(2)},
      opt_state=optax.adam(1e-3).init(params),
  )


def _saved(workdir, *values):
  ckpt = checkpoint.Checkpointer(workdir, keep=5)
  for v in values:
    ckpt.save(int(v), _state(v))
  ckpt.close()


def _truncate_largest_file(step_dir: pathlib.Path) -> None:
  largest = max(
      (p for p in step_dir.rglob('*') if p.is_file()),
      key=lambda p: p.stat().st_size,
  )
  with open(largest, 'r+b') as f:
    f.truncate(largest.stat().st_size // 2)


def test_truncated_latest_falls_back_to_the_previous(tmp_path, caplog):
  _saved(tmp_path, 1.0, 2.0)
  _truncate_largest_file(tmp_path / 'checkpoints' / '2')
  ckpt = checkpoint.Checkpointer(tmp_path, keep=5)
  restored = ckpt.restore_latest(_state(0.0))
  assert int(restored.step) == 1
  np.testing.assert_array_equal(restored.params['w'], np.full(1000, 1.0))
  assert ckpt.latest_step() == 1
  assert 'The checkpoint of step 2 is unreadable' in caplog.text
  aside = os.listdir(tmp_path / 'checkpoints_unreadable')
  assert len(aside) == 1 and aside[0].startswith('2.')
  # Training goes on and saves step 2 again.
  ckpt.save(2, _state(2.0))
  ckpt.close()
  assert checkpoint.Checkpointer(tmp_path, keep=5).latest_step() == 2


def test_no_readable_checkpoint_is_a_clear_error(tmp_path):
  _saved(tmp_path, 1.0, 2.0)
  for step in ('1', '2'):
    _truncate_largest_file(tmp_path / 'checkpoints' / step)
  with pytest.raises(
      checkpoint.CheckpointError,
      match=r'no readable checkpoint .* steps \[2, 1\]',
  ):
    checkpoint.Checkpointer(tmp_path, keep=5).restore_latest(_state(0.0))


def test_other_shapes_are_incompatible_not_corrupt(tmp_path):
  _saved(tmp_path, 1.0)
  with pytest.raises(
      checkpoint.IncompatibleCheckpointError,
      match=r'holds other arrays .* params/w: \(\(1000,\), '
      r"dtype\('float32'\)\) -> \(\(10,\)",
  ):
    checkpoint.Checkpointer(tmp_path, keep=5).restore_latest(_state(0.0, 10))
  assert os.listdir(tmp_path / 'checkpoints') == ['1']  # Not set aside.


def test_failed_save_is_reported_and_the_previous_checkpoint_kept(
    tmp_path, caplog
):
  """A real write error: files may not grow past 64 KiB (EFBIG, like ENOSPC)."""
  ckpt = checkpoint.Checkpointer(tmp_path, keep=5)
  ckpt.save(1, _state(1.0))
  ckpt.close()
  ckpt = checkpoint.Checkpointer(tmp_path, keep=5)
  big = _state(2.0, size=100_000)
  # 400 KB of parameters that do not compress.
  big = big.replace(
      params=dict(
          big.params, w=jax.random.normal(jax.random.key(0), (100_000,))
      )
  )
  limits = resource.getrlimit(resource.RLIMIT_FSIZE)
  handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
  resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, limits[1]))
  try:
    ckpt.save(2, big)
    with pytest.raises(
        checkpoint.CheckpointError,
        match=r'step 2 could not be saved .* newest complete one '
        r'is step 1\. Free disk space and rerun',
    ):
      ckpt.close()
  finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, limits)
    signal.signal(signal.SIGXFSZ, handler)
  assert ckpt.failed_saves == 1
  assert 'Saving a checkpoint (at or before step 2) failed' in caplog.text
  assert 'File too large' in caplog.text
  again = checkpoint.Checkpointer(tmp_path, keep=5)
  assert again.latest_step() == 1
  assert int(again.restore_latest(_state(0.0)).step) == 1
  again.save(2, big)  # With room again, the next save succeeds.
  again.close()
  assert checkpoint.Checkpointer(tmp_path, keep=5).latest_step() == 2


def test_no_module_uses_pickle():
  """Checkpoints are data (orbax arrays + JSON), never code."""
  pattern = re.compile(
      r'^\s*(import|from)\s+(c?pickle|dill|cloudpickle|joblib'
      r'|shelve)\b|allow_pickle\s*=\s*True|\.pkl\b',
      re.M,
  )
  files = [
      ROOT / 'main.py',
      *ROOT.glob('ssl_jax/**/*.py'),
      *ROOT.glob('configs/**/*.py'),
      *ROOT.glob('benchmarks/**/*.py'),
  ]
  assert len(files) > 30
  offenders = [
      str(f.relative_to(ROOT)) for f in files if pattern.search(f.read_text())
  ]
  assert not offenders, offenders
  assert pattern.search('import pickle\n') and pattern.search(
      'np.load(f, allow_pickle=True)'
  )


def test_checkpoints_are_pruned_to_keep(tmp_path):
  ckpt = checkpoint.Checkpointer(tmp_path, keep=2)
  for step in (1, 2, 3, 4):
    ckpt.save(step, _state(float(step)))
  ckpt.close()
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['3', '4']


def test_a_methods_structural_fields_block_resuming_under_other_values(
    tmp_path,
):
  config = helpers.tiny_config(method='deepcluster')
  checkpoint.save_config(str(tmp_path), config)
  os.makedirs(tmp_path / 'checkpoints')
  structural = methods.get('deepcluster').structural_fields
  changed = config.copy_and_resolve_references()
  changed.deepcluster.num_clusters += 1
  with pytest.raises(
      checkpoint.IncompatibleCheckpointError, match='deepcluster.num_clusters'
  ):
    checkpoint.check_config(str(tmp_path), changed, structural=structural)
  # Not structural for another method's run, and a free field stays free.
  checkpoint.check_config(str(tmp_path), changed)
  changed.deepcluster.kmeans_iters += 1
  changed.deepcluster.num_clusters -= 1
  checkpoint.check_config(str(tmp_path), changed, structural=structural)
