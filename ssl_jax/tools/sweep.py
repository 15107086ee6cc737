"""Runs a grid of configs one after another, each in its own workdir.

  python -m ssl_jax.tools.sweep --config=configs/X.py --workdir=DIR \\
      --grid=data.label_fraction=0.01,0.1,1.0 [--grid=fixmatch.mu=1,5] \\
      [--config.FIELD=VALUE ...]

Each point of the cartesian product of the grids trains in
``DIR/<field=value,...>``. A run whose workdir has results.json is skipped; an
interrupted one resumes from its checkpoints. ``DIR/sweep.json`` records every
run's workdir, overrides, status and duration. Compare the runs afterwards with
``python -m ssl_jax.tools.report DIR --out DIR/report.md``.
"""

import ast
import copy
import functools
import itertools
import json
import os
import re
import statistics
import sys
import time
from typing import Any, Callable, Optional, Sequence

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
from absl import logging  # pylint: disable=g-import-not-at-top
import ml_collections  # pylint: disable=g-import-not-at-top
from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

TrainFn = Callable[[ml_collections.ConfigDict, str], Any]


class SweepError(ValueError):
  """A user error in a --grid: the message names the field, value and fix."""


def _split_values(text: str) -> list[str]:
  """Splits on the commas that are not inside brackets."""
  values, depth, start = [], 0, 0
  for i, ch in enumerate(text):
    if ch in '([':
      depth += 1
    elif ch in ')]':
      depth -= 1
    elif ch == ',' and depth == 0:
      values.append(text[start:i])
      start = i + 1
  return [v.strip() for v in values + [text[start:]]]


def _field_type(
    config: ml_collections.ConfigDict, name: str
) -> tuple[type, Any]:
  """The declared type and current value of the dotted field ``name``."""
  node, parts = config, name.split('.')
  for part in parts:
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      raise SweepError(
          f'unknown config field {name!r} in --grid; every field '
          'is listed in configs/default.py.'
      )
    parent, node = node, node[part]
  if isinstance(node, ml_collections.ConfigDict):
    raise SweepError(
        f'{name!r} is a group of fields, not a value; grid one of '
        f'its fields, e.g. {name}.{next(iter(node.keys()), "x")}.'
    )
  return parent.get_type(parts[-1]), node


def _parse_value(name: str, text: str, kind: type, current: Any) -> Any:
  """``text`` as a value of the field's type ``kind``."""

  def bad(what):
    return SweepError(
        f'--grid value {text!r} for {name} is not {what} (the '
        f'field holds {current!r}); fix the value in --grid.'
    )

  if kind is bool:
    lowered = text.lower()
    if lowered not in ('true', 'false', '1', '0'):
      raise bad('a bool (true/false)')
    return lowered in ('true', '1')
  if kind in (int, float):
    try:
      return kind(text)
    except ValueError:
      raise bad('an int' if kind is int else 'a float') from None
  if kind in (tuple, list):
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = None
    if not isinstance(value, (tuple, list)):
      raise bad('a tuple such as (0.2,1.0)')
    kinds = {type(v) for v in current or ()}
    if kinds == {int} and not all(type(v) is int for v in value):
      raise bad('a tuple of ints')
    if (
        kinds
        and kinds <= {int, float}
        and not all(type(v) in (int, float) for v in value)
    ):
      raise bad('a tuple of numbers')
    if kinds == {float}:
      value = [float(v) for v in value]
    return tuple(value)
  if kind is not str:  # None-valued fields and other literals.
    try:
      return ast.literal_eval(text)
    except (ValueError, SyntaxError):
      return text
  if len(text) >= 2 and text[0] == text[-1] and text[0] in '\'"':
    return text[1:-1]
  return text


def parse_grid(
    specs: Sequence[str], config: ml_collections.ConfigDict
) -> list[dict[str, Any]]:
  """Expands ``--grid`` specs into the overrides of every run.

  Args:
    specs: ``FIELD=V1,V2,...`` strings; each value is parsed with the type of
      the field in ``config`` (int, float, bool, str, or a tuple in
      parentheses such as ``(0.2,1.0)``).
    config: the base config.

  Returns:
    One ``{field: value}`` dict per point of the cartesian product, the last
    spec varying fastest.

  Raises:
    SweepError: a malformed spec, an unknown or repeated field, or a value
      that does not parse as the field's type.
  """
  axes, seen = [], set()
  for spec in specs:
    name, sep, rest = spec.partition('=')
    name = name.strip()
    if not sep or not name or not rest.strip():
      raise SweepError(
          f'--grid={spec!r} is not FIELD=V1,V2,...; e.g. '
          '--grid=data.label_fraction=0.01,0.1.'
      )
    if name in seen:
      raise SweepError(
          f'field {name!r} is in two --grid flags; give all its values in one.'
      )
    seen.add(name)
    kind, current = _field_type(config, name)
    texts = _split_values(rest)
    if any(not t for t in texts):
      raise SweepError(
          f'--grid={spec!r} has an empty value; remove the extra comma.'
      )
    values = [_parse_value(name, t, kind, current) for t in texts]
    axes.append([(name, v) for v in values])
  return [dict(point) for point in itertools.product(*axes)]


def apply_overrides(
    config: ml_collections.ConfigDict, overrides: dict[str, Any]
) -> ml_collections.ConfigDict:
  """Returns a copy of ``config`` with the dotted ``overrides`` set."""
  config = copy.deepcopy(config)
  for name, value in overrides.items():
    node = config
    *path, leaf = name.split('.')
    for part in path:
      node = node[part]
    try:
      node[leaf] = value
    except TypeError as e:
      raise SweepError(
          f'--grid value {value!r} for {name}: {e}; fix the value in --grid.'
      ) from None
  return config


def _format(value: Any) -> str:
  if isinstance(value, (tuple, list)):
    return '-'.join(_format(v) for v in value) or 'none'
  return str(value)


def run_names(grid: Sequence[dict[str, Any]]) -> list[str]:
  """Filesystem-safe workdir names such as ``label_fraction=0.1,mu=5``.

  Args:
    grid: the overrides of every run (as from :func:`parse_grid`).

  Returns:
    One distinct name per run; a field is shortened to its last component
    unless two fields of the grid share it.

  Raises:
    SweepError: two runs would share a workdir.
  """
  fields = list(dict.fromkeys(f for point in grid for f in point))
  tails = [f.rsplit('.', 1)[-1] for f in fields]
  short = {f: t if tails.count(t) == 1 else f for f, t in zip(fields, tails)}
  names = []
  for point in grid:
    name = ','.join(f'{short[f]}={_format(v)}' for f, v in point.items())
    names.append(re.sub(r'[^\w.,=+-]', '_', name) or 'base')
  if len(set(names)) != len(names):
    raise SweepError(
        'two grid points map to the same workdir name '
        f'({sorted(names)}); make the values distinct.'
    )
  return names


def _hms(seconds: float) -> str:
  s = int(seconds)
  return f'{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}'


def _write_json(path: str, obj: Any) -> None:
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(obj, f, indent=2)
  os.replace(tmp, path)


def run_sweep(
    config: ml_collections.ConfigDict,
    workdir: str,
    grid_specs: Sequence[str],
    train_fn: Optional[TrainFn] = None,
) -> list[dict[str, Any]]:
  """Trains every grid point in turn and records the outcome.

  Args:
    config: the base config.
    workdir: the sweep directory; each run goes to a subfolder.
    grid_specs: ``FIELD=V1,V2,...`` strings (see :func:`parse_grid`).
    train_fn: called as ``train_fn(config, run_workdir)``; default
      ``ssl_jax.training.train.train_and_evaluate`` (imported only then, so that flag
      errors and tests do not pay for jax).

  Returns:
    One record per run, also written to ``workdir/sweep.json``: ``workdir``,
    ``overrides``, ``status`` (done, skipped or failed), ``seconds`` and, for
    a failed run, ``error``.

  Raises:
    SweepError: a bad grid, before anything runs.
  """
  grid = parse_grid(grid_specs, config)
  names = run_names(grid)
  configs = [apply_overrides(config, o) for o in grid]
  if train_fn is None:
    # pylint: disable=g-import-not-at-top
    import jax

    from ssl_jax.training import train
    from ssl_jax.training import validate
    # pylint: enable=g-import-not-at-top
    for name, run_config in zip(names, configs):
      try:
        validate.validate(run_config, jax.device_count(), jax.process_count())
      except validate.ConfigError as e:
        raise SweepError(f'run {name}: {e}') from None
    train_fn = train.train_and_evaluate
  os.makedirs(workdir, exist_ok=True)
  run_dirs = [os.path.join(workdir, n) for n in names]
  finished = [os.path.exists(os.path.join(d, 'results.json')) for d in run_dirs]
  records, durations, start = [], [], time.time()
  for i, (overrides, run_config, run_dir) in enumerate(
      zip(grid, configs, run_dirs)
  ):
    record = {'workdir': run_dir, 'overrides': overrides}
    if finished[i]:
      logging.info(
          'run %d/%d %s: skipping, finished', i + 1, len(grid), names[i]
      )
      records.append(dict(record, status='skipped', seconds=0.0))
      continue
    todo = sum(not f for f in finished[i:])
    eta = _hms(statistics.fmean(durations) * todo) if durations else 'unknown'
    logging.info(
        'run %d/%d %s: elapsed %s, ETA %s',
        i + 1,
        len(grid),
        names[i],
        _hms(time.time() - start),
        eta,
    )
    run_start = time.time()
    try:
      train_fn(run_config, run_dir)
      record['status'] = 'done'
    except Exception as e:  # pylint: disable=broad-except
      logging.exception('run %d/%d %s failed', i + 1, len(grid), names[i])
      record.update(status='failed', error=f'{type(e).__name__}: {e}')
    record['seconds'] = time.time() - run_start
    if record['status'] == 'done':
      durations.append(record['seconds'])
    records.append(record)
    # Rewritten after every run, so an interrupted sweep leaves its record.
    _write_json(os.path.join(workdir, 'sweep.json'), records)
  _write_json(os.path.join(workdir, 'sweep.json'), records)
  counts = {
      s: sum(r['status'] == s for r in records)
      for s in ('done', 'skipped', 'failed')
  }
  logging.info('sweep finished in %s: %s', _hms(time.time() - start), counts)
  return records


def _define_flags():
  """This command line's flags (defined only when it runs)."""
  config = config_flags.DEFINE_config_file(
      'config',
      None,
      'Experiment config file (the base of every run).',
      lock_config=True,
  )
  workdir = flags.DEFINE_string(
      'workdir', None, 'Sweep directory; run i goes to WORKDIR/<overrides>.'
  )
  grid = flags.DEFINE_multi_string(
      'grid',
      [],
      'FIELD=V1,V2,... (repeatable; the cartesian product runs), '
      'e.g. --grid=data.label_fraction=0.01,0.1 --grid=fixmatch.mu=1,5. Tuples '
      'in parentheses: --grid=augment.view1.crop_scale=(0.2,1.0),(0.5,1.0).',
  )
  flags.mark_flag_as_required('config')
  return config, workdir, grid


def main(argv: Sequence[str], *, config_flag, workdir_flag, grid_flag) -> None:
  """The command line: runs the grid and prints where its record is."""
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not workdir_flag.value or not grid_flag.value:
    raise app.UsageError('--workdir and at least one --grid are required.')
  try:
    records = run_sweep(config_flag.value, workdir_flag.value, grid_flag.value)
  except SweepError as e:
    print(f'ssl_jax.tools.sweep: error: {e}', file=sys.stderr)
    sys.exit(2)
  failed = [r for r in records if r['status'] == 'failed']
  for r in failed:
    print(f'failed: {r["workdir"]}: {r["error"]}', file=sys.stderr)
  record = os.path.abspath(os.path.join(workdir_flag.value, 'sweep.json'))
  print(
      f'{len(records) - len(failed)}/{len(records)} runs finished; '
      f'record: {record}'
  )
  if failed:
    sys.exit(1)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a mistyped --config.FIELD as a one-line error."""
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as e:  # ConfigDict's "no such field".
    field = re.search(r"([A-Za-z_][\w.]*)\\?'", str(e))
    print(
        'ssl_jax.tools.sweep: error: unknown config field '
        f'{field.group(1) if field else str(e)!r} in --config.FIELD; every '
        'field is listed in configs/default.py.',
        file=sys.stderr,
    )
    sys.exit(2)


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')  # TF is imported by tfds.
  _c, _w, _g = _define_flags()
  app.run(
      functools.partial(main, config_flag=_c, workdir_flag=_w, grid_flag=_g),
      flags_parser=_parse_flags,
  )
