"""Two processes on localhost (gloo collectives, 4 CPU devices each) train as one.

The 2-process run must reach the state of a 1-process, 8-device run of the
same config (same global batches), on scikit-learn's digits and on a folder
of image files (where each process must decode only its half of each
batch), and a SIGTERM that reaches only one of the processes must stop both
at the same step.
"""

import collections
import json
import os
import signal
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from ssl_jax.training import checkpoint
from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 22  # One epoch of 1,437 digits at batch 64.
FLAGS = (
    '--config=configs/quickstart.py',
    '--config.model.width=8',
    '--config.batch_size=64',
    '--config.num_epochs=1',
    '--config.optimizer.warmup_epochs=0.5',
    '--config.log_every_steps=2',
    '--config.checkpoint_every_steps=4',
    '--config.probe.enabled=False',
    '--config.evals.knn.enabled=False',
    '--config.evals.embedding.enabled=False',
    '--config.evals.pictures.enabled=False',
)


def _env(devices, **extra):
  return helpers.subprocess_env(devices, TF_CPP_MIN_LOG_LEVEL='3', **extra)


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _start_pair(workdir, *extra, env=None):
  port = _free_port()
  return [
      subprocess.Popen(
          [
              sys.executable,
              'main.py',
              *FLAGS,
              f'--workdir={workdir}',
              *extra,
              f'--coordinator_address=127.0.0.1:{port}',
              '--num_processes=2',
              f'--process_id={i}',
          ],
          cwd=ROOT,
          env=_env(4, **(env or {})),
          text=True,
          stdout=subprocess.PIPE,
          stderr=subprocess.PIPE,
      )
      for i in range(2)
  ]


def _state(workdir):
  return jax.device_get(checkpoint.restore_tree(workdir)[1])


def _assert_same_state(want_dir, got_dir, steps):
  want, got = _state(want_dir), _state(got_dir)
  assert int(got['step']) == steps
  for (path, a), b in zip(
      jax.tree_util.tree_flatten_with_path(want)[0], jax.tree.leaves(got)
  ):
    np.testing.assert_allclose(
        np.asarray(b),
        np.asarray(a),
        rtol=2e-4,
        atol=2e-6,
        err_msg=jax.tree_util.keystr(path),
    )


@pytest.fixture(scope='module')
def one_process(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('one'))
  proc = subprocess.run(
      [sys.executable, 'main.py', *FLAGS, f'--workdir={workdir}'],
      cwd=ROOT,
      env=_env(8),
      capture_output=True,
      text=True,
      timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir


@pytest.mark.slow
def test_two_processes_match_one_process_of_eight_devices(
    one_process, tmp_path
):
  workdir = str(tmp_path)
  procs = _start_pair(workdir)
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  assert 'Process 1 of 2 (explicit flags); 4 local of 8 devices.' in outs[1][1]
  # Only process 0 writes the results and the config.
  assert os.path.exists(os.path.join(workdir, 'results.json'))
  _assert_same_state(one_process, workdir, STEPS)


# Loaded at start-up (PYTHONPATH) by the folder runs: logs every file
# folder.decode reads during a training batch read, with the batch's step, to
# DECODE_LOG/<pid>.jsonl. Production code has no hook for it.
_SITECUSTOMIZE = """
import json, os, threading
from ssl_jax.data import folder, splits

_step, _lock = threading.local(), threading.Lock()
_log = os.path.join(os.environ['DECODE_LOG'], f'{os.getpid()}.jsonl')
_decode, _read = folder.decode, splits.Split.read

def decode(path, *args, **kwargs):
  step = getattr(_step, 'value', None)
  if step is not None:
    with _lock, open(_log, 'a') as f:
      f.write(json.dumps([step, path]) + '\\n')
  return _decode(path, *args, **kwargs)

def read(self, indices, step=0):
  _step.value = step
  try:
    return _read(self, indices, step)
  finally:
    _step.value = None

folder.decode, splits.Split.read = decode, read
"""
FOLDER_STEPS = 4  # 128 train images at batch 64, 2 epochs.


def _decode_logs(log_dir):
  """Per process: ``{step: [files decoded for that step's batch]}``."""
  out = []
  for name in sorted(os.listdir(log_dir)):
    steps = collections.defaultdict(list)
    with open(os.path.join(log_dir, name)) as f:
      for line in f:
        step, path = json.loads(line)
        steps[step].append(path)
    out.append(steps)
  return out


@pytest.mark.slow
def test_two_processes_read_a_folder_each_its_half_as_one_process(tmp_path):
  data_dir = helpers.make_folder(
      tmp_path / 'data',
      splits=(('train', 2, 64), ('test', 2, 4)),
      size=16,
      fmt='PNG',
  )
  hook = tmp_path / 'hook'
  hook.mkdir()
  (hook / 'sitecustomize.py').write_text(_SITECUSTOMIZE)
  flags = (
      '--config.dataset=folder',
      f'--config.data_dir={data_dir}',
      '--config.data.cache=False',
      '--config.data.workers=1',
      '--config.num_epochs=2',
  )
  logs = {n: tmp_path / f'log_{n}' for n in ('one', 'two')}
  for log in logs.values():
    log.mkdir()
  extra = dict(PYTHONPATH=os.pathsep.join([str(hook), ROOT]))
  procs = _start_pair(
      str(tmp_path / 'two'),
      *flags,
      env=dict(extra, DECODE_LOG=str(logs['two'])),
  )
  one = subprocess.run(
      [sys.executable, 'main.py', *FLAGS, *flags, f'--workdir={tmp_path}/one'],
      cwd=ROOT,
      env=_env(8, **extra, DECODE_LOG=str(logs['one'])),
      capture_output=True,
      text=True,
      timeout=600,
  )
  assert one.returncode == 0, one.stderr[-3000:]
  for p, (_, err) in zip(procs, [p.communicate(timeout=600) for p in procs]):
    assert p.returncode == 0, err[-3000:]
  _assert_same_state(str(tmp_path / 'one'), str(tmp_path / 'two'), FOLDER_STEPS)

  (single,) = _decode_logs(logs['one'])
  first, second = _decode_logs(logs['two'])
  for step in range(FOLDER_STEPS):
    assert len(single[step]) == 64, step
    assert len(first[step]) == len(second[step]) == 32, step
    assert not set(first[step]) & set(second[step]), step
    assert set(first[step]) | set(second[step]) == set(single[step]), step


@pytest.mark.slow
def test_sigterm_to_one_process_stops_both_at_the_same_step(tmp_path):
  workdir = str(tmp_path)
  procs = _start_pair(workdir, '--config.num_epochs=40')
  for line in procs[1].stderr:
    if ' step 6/' in line:
      procs[1].send_signal(signal.SIGTERM)
      break
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 75, err[-3000:]
  stopped = [
      [
          line
          for line in err.splitlines()
          if line.startswith('ssl_jax: preempted')
      ]
      for _, err in outs
  ]
  assert stopped[0] and stopped[0] == stopped[1], stopped
  saved = sorted(
      int(s)
      for s in os.listdir(os.path.join(workdir, 'checkpoints'))
      if s.isdigit()
  )
  assert f'stopped after step {saved[-1]}/' in stopped[0][0]
