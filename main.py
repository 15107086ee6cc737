"""Runs an experiment: ``python main.py --config=configs/X.py --workdir=DIR``.

With no flags it runs the offline quick start into ./workdirs/quickstart.
"""

import logging as std_logging
import os
import sys

# TensorFlow is optional; where it is installed, tfds' builders import it.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
from absl import logging  # pylint: disable=g-import-not-at-top
from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

from ssl_jax.tools import cli  # pylint: disable=g-import-not-at-top

_HERE = os.path.dirname(os.path.abspath(__file__))
# Exit codes: 2 a user error (config, data, workdir); 3 a non-finite step
# stopped the run; 75 (EX_TEMPFAIL) SIGTERM/SIGINT stopped it cleanly: rerun.
USER_ERROR_EXIT_CODE = cli.USER_ERROR_EXIT_CODE
NONFINITE_EXIT_CODE = 3
PREEMPTED_EXIT_CODE = 75
# Without --config=FILE, config_flags reads the --config.* overrides here.
with cli.flag_errors('ssl_jax'):
  _CONFIG = config_flags.DEFINE_config_file(
      'config',
      os.path.join(_HERE, 'configs', 'quickstart.py'),
      'Experiment config file.',
      lock_config=True,
  )
_WORKDIR = flags.DEFINE_string(
    'workdir',
    None,
    'Run directory (checkpoints, summaries, results.json). '
    'Default: ./workdirs/<config name>.',
)
_DISTRIBUTED = flags.DEFINE_enum(
    'distributed',
    'auto',
    ['auto', 'on', 'off'],
    'Join a multi-process run with jax.distributed: auto (when the three flags '
    'below are given or SLURM/Open MPI/a TPU pod launched several processes), '
    'on (always; jax auto-detects the cluster), off.',
)
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address',
    '',
    'host:port of process 0 (multi-process runs without a detected cluster).',
)
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', 0, 'Process count.')
_PROCESS_ID = flags.DEFINE_integer('process_id', -1, 'This process, 0-based.')
_CPU_DEVICES = flags.DEFINE_integer(
    'cpu_devices',
    0,
    'On a CPU-only machine, split the host into this many '
    'XLA devices (0: one), e.g. to try multi-device code; one device is the '
    'fastest (and the only one with oneDNN convolutions).',
)
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    'allow_config_change',
    False,
    'Resume a workdir whose saved config differs '
    'in structural fields (batch size, seed, ...); the arrays must still'
    ' match.',
)


def _quiet_libraries():
  """Keeps orbax's per-save INFO chatter out of the training log."""
  noisy = ('/orbax/', '/tensorstore/')
  logging.get_absl_handler().python_handler.addFilter(
      lambda r: r.levelno >= std_logging.WARNING
      or not any(n in r.pathname for n in noisy)
  )


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  _quiet_libraries()
  if _CPU_DEVICES.value > 0:  # Read by XLA when jax starts its CPU backend.
    os.environ['XLA_FLAGS'] = (
        os.environ.get('XLA_FLAGS', '')
        + f' --xla_force_host_platform_device_count={_CPU_DEVICES.value}'
    )
  # Imported late so that --help and flag errors do not pay for jax and tfds;
  # the config is checked before the training modules (and TF) are imported.
  import jax  # pylint: disable=g-import-not-at-top

  from ssl_jax.configs import default  # pylint: disable=g-import-not-at-top
  from ssl_jax.training import distributed  # pylint: disable=g-import-not-at-top
  from ssl_jax.training import validate  # pylint: disable=g-import-not-at-top

  try:
    distributed.initialize(
        _DISTRIBUTED.value,
        _COORDINATOR.value,
        _NUM_PROCESSES.value,
        _PROCESS_ID.value,
    )
  except ValueError as e:
    print(f'ssl_jax: error: {e}', file=sys.stderr)
    sys.exit(USER_ERROR_EXIT_CODE)
  try:
    validate.check_fields(_CONFIG.value, default.get_config())
    validate.validate(_CONFIG.value, jax.device_count(), jax.process_count())
  except validate.ConfigError as e:
    print(f'ssl_jax: error: {e}', file=sys.stderr)
    sys.exit(USER_ERROR_EXIT_CODE)
  from ssl_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  from ssl_jax.training import checkpoint  # pylint: disable=g-import-not-at-top
  from ssl_jax.training import guards  # pylint: disable=g-import-not-at-top
  from ssl_jax.training import train  # pylint: disable=g-import-not-at-top

  config_path = flags.FLAGS['config'].config_filename
  workdir = _WORKDIR.value or os.path.join(
      'workdirs', os.path.splitext(os.path.basename(config_path))[0]
  )
  logging.info('Config %s, workdir %s', config_path, os.path.abspath(workdir))
  try:
    results = train.train_and_evaluate(
        _CONFIG.value, workdir, _ALLOW_CONFIG_CHANGE.value
    )
  except (
      validate.ConfigError,
      input_pipeline.DataError,
      checkpoint.IncompatibleCheckpointError,
      checkpoint.CheckpointError,
  ) as e:
    print(f'ssl_jax: error: {e}', file=sys.stderr)
    sys.exit(USER_ERROR_EXIT_CODE)
  except guards.NonFiniteError as e:
    print(f'ssl_jax: error: {e}', file=sys.stderr)
    sys.exit(NONFINITE_EXIT_CODE)
  except guards.Preempted as e:
    print(f'ssl_jax: preempted: {e}', file=sys.stderr)
    sys.exit(PREEMPTED_EXIT_CODE)
  from ssl_jax.training import report_table  # pylint: disable=g-import-not-at-top

  # The few figures that matter; all of them are in results.json and
  # TensorBoard.
  if jax.process_index() == 0:
    print(report_table.run_summary(results, workdir))


if __name__ == '__main__':
  app.run(main, flags_parser=cli.flags_parser('ssl_jax'))
