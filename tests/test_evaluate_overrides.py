"""The evaluate tool takes the run's --config.* overrides, and its fixes work.

A transfer target's error records a fix; rerunning the evaluate tool with
exactly the flags the message names must succeed.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from ssl_jax import errors
from ssl_jax.tools import evaluate
from ssl_jax.training import train
from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  config = helpers.tiny_config(
      dataset='sklearn_digits',
      batch_size=64,
      num_epochs=1,
      checkpoint_every_steps=100,
      **{'optimizer.warmup_epochs': 0.0, 'probe.enabled': False},
  )
  for name in ('knn', 'embedding', 'pictures'):
    config.evals[name].enabled = False
  path = str(tmp_path_factory.mktemp('overrides') / 'run')
  train.train_and_evaluate(config, path)
  return path


def _evaluate(*flags):
  return subprocess.run(
      [sys.executable, '-m', 'ssl_jax.tools.evaluate', *flags],
      cwd=ROOT,
      env=helpers.subprocess_env(),
      capture_output=True,
      text=True,
      timeout=600,
      check=False,
  )


@pytest.mark.slow
def test_overrides_are_validated_before_any_work(workdir):
  with pytest.raises(errors.ConfigError, match='data.workers=-1 must be >= 0'):
    evaluate.evaluate_workdir(
        workdir, names=['knn'], overrides={'data.workers': -1}
    )


@pytest.mark.slow
def test_transfer_errors_name_flags_that_then_work(workdir, tmp_path):
  data_dir = helpers.make_folder(tmp_path / 'target', size=20)
  train_dir = os.path.join(data_dir, 'train')
  with open(os.path.join(train_dir, 'README.txt'), 'w') as f:
    f.write('Photos of three classes.\n')  # Left out: not an image.
  with open(os.path.join(train_dir, 'class_0', 'broken.jpg'), 'wb') as f:
    f.write(b'\xff\xd8\xff\xe0 truncated')
  common = [
      f'--workdir={workdir}',
      '--evals=configs/transfer/mnist.py',
      f'--evals.transfer.data_dir={data_dir}',
      '--evals.transfer.finetune=False',
  ]
  first = _evaluate(*common, "--evals.transfer.targets=('folder', 'mnist')")
  assert first.returncode == 0, first.stderr[-3000:]
  with open(os.path.join(workdir, 'results.json')) as f:
    recorded = json.load(f)
  folder_error = recorded['transfer/folder/error']
  assert 'broken.jpg' in folder_error and 'README' not in folder_error
  assert f'transfer/folder/error: {folder_error}' in first.stdout
  # mnist is not prepared there: its fix names where targets are read.
  mnist_error = recorded['transfer/mnist/error']
  assert '--config.evals.transfer.data_dir=DIR' in mnist_error
  assert '--config.data_dir' not in mnist_error

  fixes = re.findall(r'--config\.[\w.]+=[\w.]+', folder_error)
  assert fixes == ['--config.data.bad_images=skip'], folder_error
  again = _evaluate(*common, "--evals.transfer.targets=('folder',)", *fixes)
  assert again.returncode == 0, again.stderr[-3000:]
  with open(os.path.join(workdir, 'results.json')) as f:
    merged = json.load(f)
  assert 'transfer/folder/error' not in merged  # Ran again: gone.
  assert 0 <= merged['transfer/folder/linear_probe/test_accuracy'] <= 1
  # 24 image files (README.txt is none); a cached split drops the bad one.
  assert merged['transfer/folder/num_train'] in (23, 24)
