"""Bad configs and bad invocations give one-line errors before any compile."""

import os
import subprocess
import sys

import pytest

from ssl_jax.training import validate
from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
    'field,value,match',
    [
        ('method', 'swav', "method='swav' is not registered"),
        ('encoder', 'vit', "encoder='vit' is not registered"),
        ('temperature', 0.0, 'temperature=0.0 must be > 0'),
        ('temperature', -1.0, 'temperature=-1.0 must be > 0'),
        ('batch_size', 12, 'batch_size=12 is not divisible by the 8 devices'),
        ('batch_size', 0, 'batch_size=0 must be a positive integer'),
        ('image_size', 64, 'image_size=64 is larger than the cifar10 images'),
        ('dataset', 'imagenet_typo', "dataset='imagenet_typo' is neither"),
        ('dataset', 'folder', 'dataset=folder needs --config.data_dir=DIR'),
        ('optimizer.name', 'rmsprop', "optimizer.name='rmsprop'"),
        ('optimizer.warmup_epochs', -1, r'warmup_epochs=-1(\.0)? must be >= 0'),
        (
            'augment.view1.blur_prob',
            1.5,
            r'augment.view1.blur_prob=1.5 must be a probability',
        ),
        ('augment.view2.crop_scale', (0.5, 0.2), 'crop_scale'),
        ('learning_rate', 0.0, 'learning_rate=0.0 must be > 0'),
        ('model.patch_size', 0, 'model.patch_size=0 must be a positive'),
        (
            'keep_checkpoints_every',
            6,
            'keep_checkpoints_every=6 is not a multiple',
        ),
        ('data.channels', 2, 'data.channels=2 must be 0'),
        ('data.labels_per_class', -1, 'data.labels_per_class=-1'),
    ],
)
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


def _main(*args, env_extra=None):
  env = helpers.subprocess_env(
      8, TF_CPP_MIN_LOG_LEVEL='3', JAX_LOG_COMPILES='1', **(env_extra or {})
  )
  return subprocess.run(
      [sys.executable, 'main.py', *args],
      cwd=ROOT,
      env=env,
      capture_output=True,
      text=True,
      timeout=120,
  )


_TYPO_FILE = """
from ssl_jax.configs import simclr_cifar10


def get_config():
  c = simclr_cifar10.get_config()
  c.projector.out_dims = 64
  return c
"""

# (config file, override, the whole error line after 'ssl_jax: error: ').
_BAD = [
    (
        'simclr_cifar10',
        '--config.temprature=0.1',
        (
            "unknown config field 'temprature' (did you mean 'temperature'?);"
            ' every field is listed in configs/default.py.'
        ),
    ),
    (
        'typo_file',
        '',
        (
            "unknown config field 'projector.out_dims' (did you mean"
            " 'projector.out_dim'?); every field is listed in"
            ' configs/default.py.'
        ),
    ),
    (
        'simclr_cifar10',
        '--config.batch_size=1.5',
        (
            '--config.batch_size=1.5: invalid literal for int() with base 10:'
            " '1.5'; each field takes the type of its default in"
            ' configs/default.py.'
        ),
    ),
    (
        'simclr_cifar10',
        '--config.online_probe=maybe',
        (
            "--config.online_probe=maybe: ('Non-boolean argument to boolean"
            " flag', 'maybe'); each field takes the type of its default in"
            ' configs/default.py.'
        ),
    ),
    (
        'simclr_cifar10',
        '--config.batch_size=0',
        'batch_size=0 must be a positive integer.',
    ),
    (
        'simclr_cifar10',
        '--config.batch_size=500',
        (
            'batch_size=500 is not divisible by the 8 devices; use a multiple'
            ' of 8, e.g. 496.'
        ),
    ),
    (
        'simclr_cifar10',
        '--config.temperature=0',
        'temperature=0.0 must be > 0 (SimCLR uses 0.1-0.5).',
    ),
    (
        'simclr_cifar10',
        '--config.num_epochs=-1',
        'num_epochs=-1.0 must be > 0 (fractions are allowed).',
    ),
    (
        'simclr_cifar10',
        '--config.image_size=40',
        (
            'image_size=40 is larger than the cifar10 images (32 px); use '
            '--config.image_size=32 or less, or --config.data.resize=40.'
        ),
    ),
    (
        'simclr_cifar10',
        '--config.augment.train_size=48',
        (
            'augment.train_size=48 must be 0 (use image_size) or a side in [1,'
            ' 32].'
        ),
    ),
    (
        'simclr_cifar10',
        '--config.augment.view1.blur_prob=1.5',
        'augment.view1.blur_prob=1.5 must be a probability in [0, 1].',
    ),
    (
        'fixmatch_cifar10',
        '--config.fixmatch.threshold=-0.1',
        'fixmatch.threshold=-0.1 must be in [0, 1].',
    ),
    (
        'simclr_cifar10',
        '--config.method=swav',
        (
            "method='swav' is not registered; use one of ['barlow_twins', "
            "'byol', 'deepcluster', 'dino', 'fixmatch', 'moco_v3', 'simclr', "
            "'supervised', 'vicreg']."
        ),
    ),
    (
        'simclr_cifar10',
        '--config.encoder=vit',
        (
            "encoder='vit' is not registered; use one of ['convnet',"
            " 'resnet18', 'resnet50', 'vit_small', 'vit_tiny', 'wrn28_2',"
            " 'wrn45_2']."
        ),
    ),
    (
        'moco_v3_vit_cifar10',
        '--config.model.patch_size=5',
        (
            'image_size=32 is not a multiple of model.patch_size=5; choose a'
            " patch size that divides it (encoder='vit_small')."
        ),
    ),
    (
        'dino_vit_cifar10',
        '--config.dino.local_size=10',
        (
            'dino.local_size=10 gives local crops of side 10: it must be >= 0'
            ' and a multiple of model.patch_size=4.'
        ),
    ),
    (
        'dino_cifar10',
        '--config.dino.teacher_temperature=0',
        (
            'dino.teacher_temperature=0.0 must be > 0 (DINO: student 0.1,'
            ' teacher 0.04 to 0.07).'
        ),
    ),
    (
        'dino_cifar10',
        '--config.dino.local_view.crop_scale=(0.5,0.1)',
        (
            'dino.local_view.crop_scale=(0.5, 0.1) must satisfy 0 < min <='
            ' max <= 1.'
        ),
    ),
    (
        'moco_v3_cifar10',
        '--config.moco_v3.base_momentum=1.0',
        'moco_v3.base_momentum=1.0 must be in [0, 1), e.g. 0.99 or 0.996.',
    ),
    (
        'simclr_cifar10',
        '--config.optimizer.warmup_epochs=-1',
        'optimizer.warmup_epochs=-1.0 must be >= 0.',
    ),
    (
        'simclr_cifar10',
        '--config.nonfinite=ignore',
        "nonfinite='ignore' must be 'stop' or 'skip'.",
    ),
    (
        'simclr_cifar10',
        '--config.data.label_fraction=1.5',
        'data.label_fraction=1.5 must be in (0, 1].',
    ),
    (
        'simclr_cifar10',
        '--config.dataset=imagenet_typo',
        (
            "dataset='imagenet_typo' is neither a tfds dataset nor 'folder' or"
            " 'sklearn_digits'; use a name from `tfds.list_builders()`, or"
            ' --config.dataset=folder --config.data_dir=DIR for your own'
            ' images.'
        ),
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    'config_file,override,error', _BAD, ids=[b[1] or b[0] for b in _BAD]
)
def test_cli_bad_config_is_one_line_before_any_compile(
    tmp_path, config_file, override, error
):
  if config_file == 'typo_file':
    path = tmp_path / 'typo.py'
    path.write_text(_TYPO_FILE)
  else:
    path = f'configs/{config_file}.py'
  # data_dir holds nothing: an error about data would mean data was read first.
  proc = _main(
      f'--config={path}',
      f'--workdir={tmp_path}/w',
      f'--config.data_dir={tmp_path}/nothing',
      *filter(None, [override]),
  )
  assert proc.returncode == 2, proc.stderr[-2000:]
  lines = [
      line for line in proc.stderr.splitlines() if line.startswith('ssl_jax:')
  ]
  assert lines == [f'ssl_jax: error: {error}'], proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr
  assert 'Compiling' not in proc.stderr  # JAX_LOG_COMPILES logs every compile.
  assert not os.path.exists(f'{tmp_path}/w')


def test_log_compiles_would_show_a_compile():
  """The 'no compile' assertion above can fail: a compile is logged."""
  env = dict(os.environ, JAX_PLATFORMS='cpu', JAX_LOG_COMPILES='1')
  proc = subprocess.run(
      [sys.executable, '-c', 'import jax; jax.jit(lambda x: x + 1)(1)'],
      env=env,
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert 'Compiling' in proc.stderr


@pytest.mark.slow
def test_cli_missing_dataset_is_one_line(tmp_path):
  proc = _main(
      '--config=configs/simclr_cifar10.py',
      f'--workdir={tmp_path}/w',
      f'--config.data_dir={tmp_path}/nothing',
  )
  assert proc.returncode == 2
  errors = [
      line
      for line in proc.stderr.splitlines()
      if line.startswith('ssl_jax: error:')
  ]
  assert (
      len(errors) == 1
      and 'cifar10' in errors[0]
      and 'prepare_data' in errors[0]
  )
  assert 'Traceback' not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize('where', ['proc', 'file_in_the_way'])
def test_cli_workdir_that_cannot_be_created_is_one_line(tmp_path, where):
  if where == 'proc':
    workdir = (  # As under a read-only mount, even as root.
        '/proc/ssl_jax_nope/w'
    )
  else:
    (tmp_path / 'file').write_text('')
    workdir = f'{tmp_path}/file/w'
  proc = _main(
      '--config=configs/simclr_cifar10.py',
      f'--workdir={workdir}',
      f'--config.data_dir={tmp_path}/nothing',
  )
  assert proc.returncode == 2, proc.stderr[-2000:]
  errors = [
      line for line in proc.stderr.splitlines() if line.startswith('ssl_jax:')
  ]
  assert len(errors) == 1, proc.stderr[-2000:]
  assert errors[0].startswith(
      f"ssl_jax: error: workdir '{workdir}' cannot be created or written ("
  )
  assert errors[0].endswith('); choose a writable --workdir.')
  assert 'Traceback' not in proc.stderr


@pytest.mark.slow
def test_cli_incompatible_workdir_names_fields_unless_allowed(tmp_path):
  from ssl_jax.configs import simclr_cifar10  # pylint: disable=g-import-not-at-top

  workdir = tmp_path / 'w'
  (workdir / 'checkpoints').mkdir(parents=True)
  (workdir / 'config.json').write_text(simclr_cifar10.get_config().to_json())
  args = (
      '--config=configs/simclr_cifar10.py',
      f'--workdir={workdir}',
      f'--config.data_dir={tmp_path}/nothing',
      '--config.seed=1',
      '--config.batch_size=256',
  )
  proc = _main(*args)
  assert proc.returncode == 2
  errors = [
      line for line in proc.stderr.splitlines() if line.startswith('ssl_jax:')
  ]
  assert errors == [
      f"ssl_jax: error: workdir '{workdir}' holds a checkpoint of a different "
      'config (batch_size: 512 -> 256, seed: 0 -> 1); use a new --workdir, the '
      'original values, or --allow_config_change to resume anyway.'
  ]
  # Allowed: the check passes (and the run goes on to the missing data).
  proc = _main(*args, '--allow_config_change')
  errors = [
      line for line in proc.stderr.splitlines() if line.startswith('ssl_jax:')
  ]
  assert len(errors) == 1 and 'is not prepared' in errors[0], proc.stderr[
      -2000:
  ]
  warning = [
      line
      for line in proc.stderr.splitlines()
      if 'Resuming with changed fields:' in line
  ]
  assert (
      len(warning) == 1 and 'batch_size' in warning[0] and 'seed' in warning[0]
  )
