"""Two processes on localhost (gloo collectives, 4 CPU devices each) train as one.

The 2-process run must reach the state of a 1-process, 8-device run of the
same config (same global batches), and a SIGTERM that reaches only one of the
processes must stop both at the same step.
"""

import os
import signal
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from ssl_jax.training import checkpoint

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


def _env(devices):
  return dict(
      os.environ,
      JAX_PLATFORMS='cpu',
      TF_CPP_MIN_LOG_LEVEL='3',
      XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}',
  )


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _start_pair(workdir, *extra):
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
          env=_env(4),
          text=True,
          stdout=subprocess.PIPE,
          stderr=subprocess.PIPE,
      )
      for i in range(2)
  ]


def _state(workdir):
  return jax.device_get(checkpoint.restore_tree(workdir)[1])


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
  want, got = _state(one_process), _state(workdir)
  assert int(got['step']) == STEPS
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
