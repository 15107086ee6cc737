"""SIGTERM mid-run: the step finishes, a checkpoint is saved, exit 75, rerun resumes."""

import json
import os
import signal
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_sigterm_saves_a_checkpoint_and_rerun_resumes(tmp_path):
  workdir = str(tmp_path / 'run')
  cmd = [sys.executable, 'main.py', '--config=configs/quickstart.py',
         f'--workdir={workdir}', '--config.num_epochs=40',
         '--config.log_every_steps=5', '--config.checkpoint_every_steps=1000',
         '--config.probe.random_init=False',
         '--config.evals.pictures.enabled=False']
  env = dict(os.environ, XLA_FLAGS='', JAX_PLATFORMS='cpu')
  proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True)
  seen = []
  for line in proc.stderr:  # absl logs to stderr.
    seen.append(line)
    if ' step 10/200 ' in line:
      proc.send_signal(signal.SIGTERM)
      break
  _, rest = proc.communicate(timeout=300)
  err = ''.join(seen) + rest
  assert proc.returncode == 75, err[-3000:]
  assert 'ssl_jax: preempted: SIGTERM received: stopped after step' in err
  saved = sorted(int(s) for s in os.listdir(os.path.join(workdir, 'checkpoints'))
                 if s.isdigit())
  assert len(saved) == 1 and 10 <= saved[0] < 200, saved
  assert not os.path.exists(os.path.join(workdir, 'results.json'))

  done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=600, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  with open(os.path.join(workdir, 'results.json')) as f:
    results = json.load(f)
  assert results['train/first_step'] == saved[0]
  assert results['train/steps'] == 200
