"""Faults injected into real runs (subprocesses of main.py) and their outcomes.

Every run is the quick start shrunk to 88 steps; the uninterrupted run is the
reference that interrupted runs must reproduce bit for bit.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from ssl_jax.training import checkpoint
from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 88  # 4 epochs of 1,437 digits at batch 64.
FLAGS = (
    '--config=configs/quickstart.py',
    '--config.model.width=8',
    '--config.batch_size=64',
    '--config.num_epochs=4',
    '--config.optimizer.warmup_epochs=1',
    '--config.log_every_steps=1',
    '--config.checkpoint_every_steps=4',
    '--config.keep_checkpoints=100',
    '--config.probe.enabled=False',
    '--config.evals.knn.enabled=False',
    '--config.evals.embedding.enabled=False',
    '--config.evals.pictures.enabled=False',
)
ENV = helpers.subprocess_env(TF_CPP_MIN_LOG_LEVEL='3')


def _cmd(workdir, *extra):
  return [sys.executable, 'main.py', *FLAGS, f'--workdir={workdir}', *extra]


def _run(workdir, *extra):
  return subprocess.run(
      _cmd(workdir, *extra),
      cwd=ROOT,
      env=ENV,
      capture_output=True,
      text=True,
      timeout=600,
  )


def _run_until(workdir, step, sig, delay=0.0):
  """Starts a run and sends ``sig`` once it has logged ``step``; returns (rc, log)."""
  proc = subprocess.Popen(
      _cmd(workdir),
      cwd=ROOT,
      env=ENV,
      text=True,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
  )
  seen = []
  for line in proc.stderr:  # absl logs to stderr.
    seen.append(line)
    if f' step {step}/{STEPS} ' in line:
      time.sleep(delay)
      proc.send_signal(sig)
      break
  _, rest = proc.communicate(timeout=600)
  return proc.returncode, ''.join(seen) + rest


def _steps(workdir):
  return sorted(
      int(s)
      for s in os.listdir(os.path.join(workdir, 'checkpoints'))
      if s.isdigit()
  )


def _state(workdir, step=None):
  return jax.device_get(checkpoint.restore_tree(workdir, step)[1])


def _assert_bitwise_equal(a, b):
  flat_a = jax.tree_util.tree_flatten_with_path(a)[0]
  flat_b = jax.tree_util.tree_flatten_with_path(b)[0]
  assert [p for p, _ in flat_a] == [p for p, _ in flat_b]
  differ = [
      jax.tree_util.keystr(p)
      for (p, x), (_, y) in zip(flat_a, flat_b)
      if np.asarray(x).tobytes() != np.asarray(y).tobytes()
  ]
  assert not differ, f'{len(differ)} arrays differ, e.g. {differ[:3]}'


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('reference'))
  proc = _run(workdir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir


@pytest.mark.slow
def test_sigterm_stops_saves_and_resumes_bitwise(reference, tmp_path):
  workdir = str(tmp_path)
  rc, log = _run_until(workdir, 10, signal.SIGTERM)
  assert rc == 75, log[-3000:]
  assert 'ssl_jax: preempted: SIGTERM received: stopped after step' in log
  saved = _steps(workdir)
  assert saved and 10 <= saved[-1] < STEPS, saved
  assert not os.path.exists(os.path.join(workdir, 'results.json'))
  stopped_at = saved[-1]

  done = _run(workdir)
  assert done.returncode == 0, done.stderr[-3000:]
  with open(os.path.join(workdir, 'results.json')) as f:
    results = json.load(f)
  assert results['train/first_step'] == stopped_at
  _assert_bitwise_equal(_state(workdir), _state(reference))


@pytest.mark.slow
def test_kill9_three_times_then_resume_is_bitwise_equal(reference, tmp_path):
  seed = random.randrange(10**6)
  rng = random.Random(seed)
  # One kill in each third of the run, at a random moment after that step.
  kills = [rng.randrange(lo, hi) for lo, hi in ((3, 29), (30, 58), (59, 86))]
  workdir = str(tmp_path)
  for step in kills:
    rc, log = _run_until(
        workdir, step, signal.SIGKILL, delay=rng.uniform(0, 0.2)
    )
    assert rc == -signal.SIGKILL, (seed, kills, log[-3000:])
  done = _run(workdir)
  assert done.returncode == 0, (seed, kills, done.stderr[-3000:])
  with open(os.path.join(workdir, 'results.json')) as f:
    results = json.load(f)
  assert 0 < results['train/first_step'] <= kills[-1] + 8, (seed, kills)
  _assert_bitwise_equal(_state(workdir), _state(reference))


@pytest.mark.slow
def test_injected_nan_stops_and_keeps_the_last_good_checkpoint(
    reference, tmp_path
):
  workdir = str(tmp_path)
  proc = _run(workdir, '--config.debug.nan_at_step=13')
  assert proc.returncode == 3, proc.stderr[-3000:]
  errors = [
      line for line in proc.stderr.splitlines() if line.startswith('ssl_jax:')
  ]
  assert len(errors) == 1, proc.stderr[-3000:]
  assert errors[0].startswith(
      'ssl_jax: error: non-finite values at step 13 (loss=nan, grad_norm=nan, '
      'param_norm=nan)'
  ), errors[0]
  # Steps 4, 8 and 12 were saved; step 16 would hold the poisoned state.
  assert _steps(workdir) == [4, 8, 12]
  _assert_bitwise_equal(_state(workdir, 12), _state(reference, 12))
