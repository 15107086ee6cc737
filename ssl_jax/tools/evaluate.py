"""Evaluates a finished run's checkpoint with any evaluators:

  python -m ssl_jax.tools.evaluate --workdir=DIR [--evals=configs/evals/full.py]
      [--evals.knn.k=20 ...] [--only=knn,embedding] [--step=N]
      [--config.data_dir=DIR --config.data.bad_images=skip ...]

merges its figures into ``DIR/results.json`` (and
``DIR/eval/results_step{N}.json``) and writes PNGs to ``DIR/eval/``.
``--config.FIELD=VALUE`` overrides a field of the run's saved config (any
field of ``configs/default.py``, typed and validated as by ``main.py``), so the
fixes error messages suggest work here too.
"""

from collections.abc import Mapping
import functools
import json
import os
import sys
import time
from typing import Any, Optional

import jax
import ml_collections

from ssl_jax import errors
from ssl_jax.configs import default
from ssl_jax.evaluation import evaluators
from ssl_jax.tools import cli
from ssl_jax.training import checkpoint
from ssl_jax.training import run as run_lib
from ssl_jax.training import summary
from ssl_jax.training import train
from ssl_jax.training import validate

_PROG = 'ssl_jax.tools.evaluate'
_LISTED_IN = (
    'configs/default.py (--config.*) or configs/evals/default.py (--evals.*)'
)


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run saved in ``workdir/config.json``, over today's defaults.

  Args:
    workdir: a run directory.

  Returns:
    The run's config; fields added since it ran take their defaults.

  Raises:
    errors.DataError: there is no ``config.json``.
    errors.ConfigError: it has fields no registered method or evaluator
      defines.
  """
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise errors.DataError(
        f'{path} does not exist; pass the --workdir of a run of main.py.'
    )
  config = default.get_config()
  with open(path) as f:
    saved = checkpoint.flatten(json.load(f))
  unknown = sorted(
      k for k in saved if k not in checkpoint.flatten(config.to_dict())
  )
  if unknown:
    raise errors.ConfigError(
        f'{path} has fields this installation does not define ({unknown[0]!r}'
        f'{" and more" if len(unknown) > 1 else ""}): a method or evaluator '
        'registered by other code; call evaluate_workdir() from a program '
        'that registers it first.'
    )
  config.update_from_flattened_dict(
      {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()}
  )
  return config


def evaluate_workdir(
    workdir: str,
    evals: Optional[ml_collections.ConfigDict] = None,
    step: Optional[int] = None,
    names: Optional[list[str]] = None,
    overrides: Optional[Mapping[str, Any]] = None,
) -> dict[str, Any]:
  """Runs evaluators on a finished run's checkpoint and merges its results.json.

  Args:
    workdir: a run directory holding ``config.json`` and checkpoints.
    evals: replaces the run's ``config.evals`` (default: keep the run's).
    step: the checkpoint to evaluate (default: the latest).
    names: evaluators to run (default: those ``evals`` enables; the linear
      probe only when named, as training already ran it).
    overrides: ``{'data.bad_images': 'skip', ...}``: fields of the run's
      config to change (after ``evals``, so ``evals.*`` fields apply too).

  Returns:
    The new figures (also merged into ``workdir/results.json`` and written to
    ``workdir/eval/results_step{step}.json``).

  Raises:
    errors.ConfigError: the config, with ``overrides``, is invalid.
  """
  config = load_config(workdir)
  if evals is not None:
    config.evals = evals
  config.update_from_flattened_dict(dict(overrides or {}))
  # As main.py does, before any checkpoint or image is read.
  validate.validate(config, jax.device_count(), jax.process_count())
  names = names or [
      n for n in evaluators.enabled(config) if n != 'linear_probe'
  ]
  evaluators.check_names(names)  # Before the checkpoint is restored.
  start = time.time()
  run = run_lib.build(config)
  step, variables = run.restore_variables(workdir, step)
  # TensorBoard's "eval" run beside the training curves.
  writer = summary.create(
      os.path.join(workdir, 'eval'), just_logging=jax.process_index() != 0
  )
  ctx = train.evaluation_context(
      run, workdir, run.replicate(variables), step, writer=writer
  )
  results = evaluators.run(ctx, names)
  # Every figure to TensorBoard; main() prints the accuracies.
  writer.write_scalars(
      step,
      {k: v for k, v in results.items() if isinstance(v, (int, float))},
      log_keys=(),
  )
  writer.close()
  results['eval/wall_seconds'] = time.time() - start
  results['eval/step'] = step
  if jax.process_index() == 0:
    os.makedirs(ctx.out_dir, exist_ok=True)
    train.write_json(
        os.path.join(ctx.out_dir, f'results_step{step}.json'), results
    )
    merged = {}
    main_path = os.path.join(workdir, 'results.json')
    if os.path.exists(main_path):
      with open(main_path) as f:
        merged = json.load(f)
    # An error an evaluator recorded before is gone once it ran again.
    merged = {
        k: v
        for k, v in merged.items()
        if not (k.endswith('/error') and k.split('/')[0] in names)
    }
    merged.update(results)
    train.write_json(main_path, merged)
  return results


def main(argv, *, flag_values, evals_flag):
  """The command line: evaluates ``--workdir`` with ``--evals``."""
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise SystemExit(f'Unexpected arguments: {argv[1:]}')
  flag = flag_values
  names = [n for n in flag.only.split(',') if n] if flag.only else None
  try:
    results = evaluate_workdir(
        flag.workdir,
        evals_flag.value,
        flag.step,
        names,
        overrides=config_flags.get_override_values(flag['config']),
    )
  except (errors.DataError, ValueError) as e:
    print(f'{_PROG}: error: {e}', file=sys.stderr)
    sys.exit(cli.USER_ERROR_EXIT_CODE)
  for k in sorted(results):
    if isinstance(results[k], float) and k.endswith(
        ('accuracy', 'accuracy_mean', 'silhouette', 'dunn', 'kmeans_nmi')
    ):
      print(f'{k}: {results[k]:.4f}')
    elif k.endswith('/error'):  # With its fix, a flag this command takes.
      print(f'{k}: {results[k]}')


def _define_flags():
  """This command line's flags (defined only when it runs)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  flags.DEFINE_string(
      'workdir', None, 'Run directory to evaluate.', required=True
  )
  flags.DEFINE_integer('step', None, 'Checkpoint step (default: latest).')
  flags.DEFINE_string(
      'only',
      '',
      'Comma-separated evaluators to run (default: '
      f'those --evals enables), from {list(evaluators.EVALUATORS)}.',
  )
  evals = config_flags.DEFINE_config_file(
      'evals',
      os.path.join(
          os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
          'configs',
          'evals',
          'default.py',
      ),
      'Evaluations config file (configs/evals/*.py or configs/transfer/*.py).',
  )
  # Typed by configs/default.py; only the fields given override config.json.
  config_flags.DEFINE_config_dict(
      'config',
      default.get_config(),
      "Overrides of the run's saved config: --config.FIELD=VALUE for any "
      'field of configs/default.py (--config.data_dir=DIR, '
      '--config.data.bad_images=skip, --config.data.workers=N).',
      lock_config=True,
  )
  return flags.FLAGS, evals


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top

  # config_flags reads the overrides when defining flags or parsing them.
  with cli.flag_errors(_PROG, _LISTED_IN):
    _flags, _evals = _define_flags()
  app.run(
      functools.partial(main, flag_values=_flags, evals_flag=_evals),
      flags_parser=cli.flags_parser(_PROG, _LISTED_IN),
  )
