"""Bad configs and bad invocations give one-line errors before any compile."""

import os
import subprocess
import sys

import pytest

from ssl_jax import validate
from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('field,value,match', [
    ('method', 'byol', "method='byol' is not registered"),
    ('encoder', 'vit', "encoder='vit' is not registered"),
    ('temperature', 0.0, 'temperature=0.0 must be > 0'),
    ('temperature', -1.0, 'temperature=-1.0 must be > 0'),
    ('batch_size', 12, 'batch_size=12 is not divisible by the 8 devices'),
    ('batch_size', 0, 'batch_size=0 must be a positive integer'),
    ('image_size', 64, 'image_size=64 is larger than the cifar10 images'),
    ('dataset', 'imagenette', "dataset='imagenette' is not supported"),
    ('optimizer.name', 'rmsprop', "optimizer.name='rmsprop'"),
    ('optimizer.warmup_epochs', 5, r'warmup_epochs=5(\.0)? must be in'),
    ('augment.view1.blur_prob', 1.5, r'augment.view1.blur_prob=1.5 must be a probability'),
    ('augment.view2.crop_scale', (0.5, 0.2), 'crop_scale'),
    ('learning_rate', 0.0, 'learning_rate=0.0 must be > 0'),
    ('keep_checkpoints_every', 6, 'keep_checkpoints_every=6 is not a multiple'),
    ('data.channels', 2, 'data.channels=2 must be 0'),
    ('data.labels_per_class', -1, 'data.labels_per_class=-1'),
])
def test_bad_field(field, value, match):
  config = helpers.tiny_config(dataset='cifar10', num_epochs=2)
  node = config
  *path, leaf = field.split('.')
  for p in path:
    node = node[p]
  node[leaf] = value
  with pytest.raises(validate.ConfigError, match=match) as e:
    validate.validate(config, num_devices=8)
  assert '\n' not in str(e.value)


def test_good_config_passes():
  validate.validate(helpers.tiny_config(dataset='cifar10'), num_devices=8)


def _main(*args):
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='3')
  env.pop('XLA_FLAGS', None)
  return subprocess.run([sys.executable, 'main.py', *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=120)


def test_cli_unknown_field_is_rejected(tmp_path):
  proc = _main('--config=configs/simclr_cifar10.py', f'--workdir={tmp_path}',
               '--config.temprature=0.1')
  assert proc.returncode == 2
  assert proc.stderr.strip() == (
      "ssl_jax: error: unknown config field 'temprature' (did you mean "
      "'temperature'?); every field is listed in configs/default.py.")


def test_cli_missing_dataset_is_one_line(tmp_path):
  proc = _main('--config=configs/simclr_cifar10.py', f'--workdir={tmp_path}/w',
               f'--config.data_dir={tmp_path}/nothing')
  assert proc.returncode == 2
  errors = [l for l in proc.stderr.splitlines() if l.startswith('ssl_jax: error:')]
  assert len(errors) == 1 and 'cifar10' in errors[0] and 'prepare_data' in errors[0]
  assert 'Traceback' not in proc.stderr


def test_cli_bad_value_is_one_line(tmp_path):
  proc = _main('--config=configs/simclr_cifar10.py', f'--workdir={tmp_path}/w',
               '--config.temperature=0')
  assert proc.returncode == 2
  assert 'ssl_jax: error: temperature=0' in proc.stderr
  assert 'Traceback' not in proc.stderr
