"""Compares finished runs: ``python -m ssl_jax.tools.report DIR... --out REPORT.md``.

Each DIR is a run's workdir or a folder of them, searched recursively for
folders that hold both ``config.json`` and ``results.json``. The report is one
markdown file with the comparison tables; its plots go to ``<out stem>_files/``
beside it. Every figure is read from the runs' results.json and config.json.
"""

import collections
import dataclasses
import datetime
import functools
import glob
import json
import math
import os
import re
import statistics
import sys
from typing import Any, Optional, Sequence
from urllib import parse

from absl import app
from absl import flags
from absl import logging

from ssl_jax import methods
from ssl_jax.evaluation import pictures

RULE = (
    'Nothing is selected on the test split: probe L2 and all other '
    'choices are made on a validation part carved from train; test '
    'figures are reported once.'
)
MISSING = '–'

# Config fields that do not change a run's figures. With data.label_fraction
# (the x axis) and seed (averaged over) they are ignored when runs are grouped
# into label-fraction curves; every other field must match within a curve.
_CURVE_IGNORED = frozenset({
    'data.label_fraction',
    'seed',
    'data_dir',
    'data.cache',
    'data.prefetch',
    'log_every_steps',
    'checkpoint_every_steps',
    'keep_checkpoints',
    'probe.batch_size',
})
_SETTING = re.compile(
    r'^(finetune|frozen)/((frac|per_class)='
    r'(\d+(?:\.\d*)?(?:e-?\d+)?))/test_accuracy(_mean)?$'
)
_TRANSFER = re.compile(r'^transfer/([^/]+)/')


class ReportError(ValueError):
  """A user error: a DIR that is missing or holds no finished run."""


@dataclasses.dataclass(frozen=True)
class Run:
  """A finished run: its config is flattened to dotted field names."""

  name: str  # The folder name, with parents where two runs share one.
  path: str
  config: dict[str, Any]
  results: dict[str, Any]

  @property
  def method(self) -> str:
    return str(self.config.get('method', '?'))


def _flatten(d: dict[str, Any], prefix: str = '') -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    out.update(
        _flatten(v, f'{prefix}{k}.') if isinstance(v, dict) else {prefix + k: v}
    )
  return out


def _load(path: str) -> Optional[tuple[dict[str, Any], dict[str, Any]]]:
  loaded = []
  for name in ('config.json', 'results.json'):
    try:
      with open(os.path.join(path, name)) as f:
        loaded.append(json.load(f))
    except (OSError, ValueError) as e:
      loaded.append(e)
    if not isinstance(loaded[-1], dict):
      logging.warning(
          'Skipping %s: %s is not a JSON object (%s).', path, name, loaded[-1]
      )
      return None
  return _flatten(loaded[0]), loaded[1]


def _unique_names(paths: Sequence[str]) -> list[str]:
  """Folder names; paths below the runs' common folder where two clash."""
  names = [os.path.basename(p) for p in paths]
  if len(set(names)) == len(names):
    return names
  common = os.path.commonpath(paths)
  return [os.path.relpath(p, common).replace(os.sep, '/') for p in paths]


def find_runs(dirs: Sequence[str]) -> list[Run]:
  """Finds the finished runs in and under ``dirs``.

  Args:
    dirs: run workdirs or folders that contain them (at any depth).

  Returns:
    The runs, each once, sorted by method (supervised, simclr, barlow_twins,
    deepcluster, fixmatch, others), then dataset, encoder and name.

  Raises:
    ReportError: a DIR does not exist or holds no finished run.
  """
  found = {}
  for top in dirs:
    if not os.path.isdir(top):
      raise ReportError(
          f'{top!r} is not a directory; give run workdirs or '
          'folders that contain them.'
      )
    count = 0
    for root, subdirs, files in os.walk(top):
      subdirs[:] = sorted(d for d in subdirs if d != 'checkpoints')
      if 'config.json' not in files or 'results.json' not in files:
        if 'config.json' in files:
          logging.warning(
              'Skipping %s: no results.json (unfinished run?).', root
          )
        continue
      # A run's own fine-tunes and transfers (below its eval/) are parts of
      # its figures, not rows of their own.
      subdirs[:] = []
      path = os.path.abspath(root)
      loaded = found.get(path) or _load(path)
      if loaded is not None:
        found[path] = loaded
        count += 1
    if not count:
      raise ReportError(
          f'no finished run under {top!r}: no folder there holds '
          'both config.json and results.json.'
      )
  runs = [
      Run(name, path, *found[path])
      for name, path in zip(_unique_names(list(found)), found)
  ]
  rank = {m: i for i, m in enumerate(methods.METHODS)}  # Registry order.
  return sorted(
      runs,
      key=lambda r: (
          rank.get(r.method, len(rank)),
          r.method,
          str(r.config.get('dataset')),
          str(r.config.get('encoder')),
          r.name,
      ),
  )


def _is_number(v: Any) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def _pct(v: Any, std: Any = None) -> str:
  """A fraction as a percentage (with ``± std`` where given)."""
  if not _is_number(v):
    return MISSING
  text = 'NaN' if math.isnan(v) else f'{100 * v:.2f}'
  return f'{text} ± {_pct(std)}' if _is_number(std) else text


def _duration(seconds: Any) -> str:
  if not _is_number(seconds) or not math.isfinite(seconds):
    return MISSING
  s = int(round(seconds))
  return f'{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}'


def _plain(v: Any) -> str:
  return MISSING if v is None else f'{v:g}' if isinstance(v, float) else str(v)


def _cell(text: str) -> str:
  return text.replace('|', r'\|').replace('\n', ' ')


def _section(
    title: str, note: str, header: Sequence[str], rows: Sequence[Sequence[str]]
) -> list[str]:
  """A markdown section with one table; nothing when there are no rows."""
  if not rows:
    return []
  table = [header, ['---'] * len(header)] + [list(map(_cell, r)) for r in rows]
  return (
      [f'## {title}', '']
      + ([note, ''] if note else [])
      + ['| ' + ' | '.join(row) + ' |' for row in table]
      + ['']
  )


def _settings(run: Run) -> list[tuple[str, str, float]]:
  """(``frac=0.01``, ``frac``, 0.01) per few-label setting; fractions first."""
  found = {
      (m[2], m[3], float(m[4])) for m in map(_SETTING.match, run.results) if m
  }
  return sorted(found, key=lambda s: (s[1] != 'frac', s[2], s[0]))


def _mean_std(run: Run, prefix: str) -> tuple[Any, Any]:
  """``prefix``'s test accuracy: (mean, std), or (value, None) if single."""
  r, key = run.results, prefix + 'test_accuracy'
  return r.get(key + '_mean', r.get(key)), r.get(key + '_std')


def _finetune_at(run: Run, fraction: float) -> str:
  for setting, kind, value in _settings(run):
    if kind == 'frac' and math.isclose(value, fraction):
      return _pct(*_mean_std(run, f'finetune/{setting}/'))
  return MISSING


def _uses_labels(method: str) -> bool:
  """Whether pretraining reads labels (unknown methods: assume it does)."""
  return method not in methods.METHODS or methods.METHODS[method].uses_labels


def _main_table(runs: Sequence[Run]) -> list[str]:
  header = [
      'Run',
      'Method',
      'Encoder',
      'Dataset',
      'Epochs',
      'Labels',
      'Classifier',
      'Linear probe',
      'Random-init probe',
      'kNN',
      'Fine-tune 1 %',
      'Fine-tune 10 %',
      'Wall time',
  ]
  rows = []
  for run in runs:
    c, r = run.config, run.results
    fraction = c.get('data.label_fraction')
    rows.append([
        run.name,
        run.method,
        *(_plain(c.get(f)) for f in ('encoder', 'dataset', 'num_epochs')),
        (
            'none'
            if not _uses_labels(run.method)
            else f'{100 * fraction:g} %'
            if _is_number(fraction)
            else MISSING
        ),
        _pct(r.get('classifier/test_accuracy')),
        _pct(r.get('linear_probe/test_accuracy')),
        _pct(r.get('random_init/linear_probe/test_accuracy')),
        _pct(r.get('knn/test_accuracy')),
        _finetune_at(run, 0.01),
        _finetune_at(run, 0.1),
        _duration(r.get('train/wall_seconds')),
    ])
  return _section('Main comparison', '', header, rows)


def _few_label_table(runs: Sequence[Run]) -> list[str]:
  rows = []
  for run in runs:
    for setting, _, _ in _settings(run):
      frozen, tuned = (
          _mean_std(run, f'{m}/{setting}/') for m in ('frozen', 'finetune')
      )
      gain = (
          f'{100 * (tuned[0] - frozen[0]):+.2f}'
          if _is_number(frozen[0]) and _is_number(tuned[0])
          else MISSING
      )
      rows.append([run.name, setting, _pct(*frozen), _pct(*tuned), gain])
  return _section(
      'Frozen linear probe vs fine-tuning on few labels',
      'Test accuracy (%), mean ± std over label draws; both use the same '
      'labelled images. Gain: fine-tuned minus frozen, in points.',
      ['Run', 'Labels', 'Frozen', 'Fine-tuned', 'Gain'],
      rows,
  )


def _transfer_table(runs: Sequence[Run]) -> list[str]:
  datasets = sorted({
      m.group(1)
      for run in runs
      for k in run.results
      for m in [_TRANSFER.match(k)]
      if m
  })
  rows, errors = [], []
  for run in runs:
    if not any(_TRANSFER.match(k) for k in run.results):
      continue
    row = [run.name]
    for d in datasets:
      r, prefix = run.results, f'transfer/{d}/'
      if prefix + 'error' in r:
        row.append('missing')
        errors.append(f'- {run.name}, {d}: {_cell(str(r[prefix + "error"]))}')
        continue
      probe, tuned = (
          _pct(r.get(f'{prefix}{m}/test_accuracy'))
          for m in ('linear_probe', 'finetune')
      )
      row.append(probe if tuned == MISSING else f'{probe} / {tuned}')
    rows.append(row)
  lines = _section(
      'Transfer',
      'Test accuracy (%) on each target dataset: linear probe on '
      'frozen features, or "probe / fine-tune" where the run fine-tuned too.',
      ['Run'] + datasets,
      rows if datasets else [],
  )
  return lines + (['Missing datasets:', ''] + errors + [''] if errors else [])


def _embedding_table(runs: Sequence[Run]) -> list[str]:
  names = sorted({
      k.split('/', 1)[1]
      for run in runs
      for k in run.results
      if k.startswith('embedding/') and k != 'embedding/num_points'
  })
  rows = [
      [run.name]
      + [
          f'{v:.4f}' if _is_number(v) else MISSING
          for v in (run.results.get(f'embedding/{n}') for n in names)
      ]
      for run in runs
  ]
  return _section(
      'Embedding quality (test features)',
      '',
      ['Run'] + names,
      rows if names else [],
  )


def label_fraction_curves(
    runs: Sequence[Run],
) -> list[tuple[str, list[tuple[float, float, float, int]]]]:
  """Groups runs that differ only in label fraction (and seed) into curves.

  Args:
    runs: the runs.

  Returns:
    ``(label, points)`` per curve with at least two label fractions; points
    are ``(fraction, mean accuracy, std over seeds, number of runs)`` by
    fraction. The accuracy is classifier/test_accuracy, else
    linear_probe/test_accuracy.
  """
  groups = collections.defaultdict(list)
  for run in runs:
    fraction = run.config.get('data.label_fraction')
    metric = next(
        (
            m
            for m in ('classifier', 'linear_probe')
            if _is_number(run.results.get(f'{m}/test_accuracy'))
        ),
        None,
    )
    if metric is None or not _is_number(fraction):
      continue
    key = tuple(
        sorted(
            (k, json.dumps(v))
            for k, v in run.config.items()
            if k not in _CURVE_IGNORED
        )
    )
    groups[(key, metric)].append(
        (float(fraction), run.results[f'{metric}/test_accuracy'])
    )
  groups = {k: v for k, v in groups.items() if len(dict(v)) >= 2}
  if not groups:
    return []
  configs = [dict(key) for key, _ in groups]
  # Curves are named by method/encoder/dataset and the fields that differ.
  names = ('method', 'encoder', 'dataset')
  differing = sorted(
      {
          f
          for c in configs
          for f in set(c) | set(configs[0])
          if c.get(f) != configs[0].get(f)
      }
      - set(names)
  )[:3]
  curves = []
  for (key, metric), values in groups.items():
    config = {k: json.loads(v) for k, v in key}
    label = ' '.join(
        ['/'.join(str(config.get(f)) for f in names)]
        + [f'{f}={config.get(f)}' for f in differing]
        + [f'({metric})']
    )
    by_fraction = collections.defaultdict(list)
    for f, v in values:
      by_fraction[f].append(v)
    points = [
        (f, statistics.fmean(vs), statistics.pstdev(vs), len(vs))
        for f, vs in sorted(by_fraction.items())
    ]
    curves.append((label, points))
  return sorted(curves)


def _link(target: str, out_dir: str) -> str:
  rel = os.path.relpath(target, out_dir).replace(os.sep, '/')
  return parse.quote(rel, safe="/=,.-_+()'")


def _curve_section(
    runs: Sequence[Run], files_dir: str, out_dir: str
) -> list[str]:
  curves = label_fraction_curves(runs)
  path = os.path.join(files_dir, 'label_fraction.png')
  if curves:
    pictures.accuracy_vs_fraction(
        [(label, [p[:3] for p in pts], '-') for label, pts in curves],
        path,
        xlabel='labelled fraction of the training set',
    )
  lines = _section(
      'Accuracy vs label fraction',
      'Runs whose configs differ only in data.label_fraction (and seed, '
      'averaged: ± is the std over seeds).'
      + (
          f'\n\n![accuracy vs label fraction]({_link(path, out_dir)})'
          if curves
          else ''
      ),
      ['Curve', 'Label fraction', 'Test accuracy', 'Runs'],
      [
          [label, f'{f:g}', _pct(m, s if n > 1 else None), str(n)]
          for label, pts in curves
          for f, m, s, n in pts
      ],
  )
  tuned = []
  for run in runs:
    for mode, style in (('finetune', '-'), ('frozen', '--')):
      points = [
          (value, *_mean_std(run, f'{mode}/{setting}/'))
          for setting, kind, value in _settings(run)
          if kind == 'frac'
      ]
      points = [
          (x, m, s if _is_number(s) else 0.0)
          for x, m, s in points
          if _is_number(m)
      ]
      if points:
        tuned.append((f'{run.name} [{mode}]', points, style))
  if tuned:
    path = os.path.join(files_dir, 'finetune_fraction.png')
    pictures.accuracy_vs_fraction(
        tuned, path, xlabel='labelled fraction (fine-tuning)'
    )
    lines += [
        '## Fine-tuning vs label fraction',
        '',
        (
            'Per run: fine-tuned (solid) and frozen linear probe (dashed) '
            'on the same labels, mean ± std over label draws.'
        ),
        '',
        f'![fine-tuning vs label fraction]({_link(path, out_dir)})',
        '',
    ]
  return lines


def _run_figures(runs: Sequence[Run], out_dir: str) -> list[str]:
  lines = []
  for run in runs:
    pngs = sorted(glob.glob(os.path.join(run.path, '*.png'))) + sorted(
        glob.glob(os.path.join(run.path, 'eval', '*.png'))
    )
    if pngs:
      lines += [f'### {run.name}', '']
      lines += [f'![{os.path.basename(p)}]({_link(p, out_dir)})' for p in pngs]
      lines.append('')
  return ['## Figures written by the runs', ''] + lines if lines else []


def build_report(
    runs: Sequence[Run], out_path: str, sources: Sequence[str] = ()
) -> str:
  """Builds the markdown report and writes its plots.

  Args:
    runs: the runs to compare (as from :func:`find_runs`).
    out_path: where the markdown will be written; links are relative to its
      folder and plots go to ``<out stem>_files/`` beside it.
    sources: the folders the runs were found in, named in the header.

  Returns:
    The markdown text.
  """
  out_dir = os.path.dirname(os.path.abspath(out_path))
  files_dir = os.path.join(
      out_dir, os.path.splitext(os.path.basename(out_path))[0] + '_files'
  )
  methods = list(dict.fromkeys(r.method for r in runs))
  datasets = list(dict.fromkeys(str(r.config.get('dataset')) for r in runs))
  when = datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')
  lines = [
      '# Run comparison',
      '',
      f'{len(runs)} runs ({", ".join(methods)} on {", ".join(datasets)})'
      + (f' from {", ".join(f"`{s}`" for s in sources)}' if sources else '')
      + f'; generated {when} by `python -m ssl_jax.tools.report`.',
      '',
      f'**{RULE}**',
      '',
      (
          "Figures are test accuracy (%) from each run's results.json; "
          f'`{MISSING}` means the run did not report it. Classifier: the '
          "method's own head (supervised, FixMatch, DeepCluster). Fine-tune: "
          'mean ± std over label draws. Wall time: train/wall_seconds.'
      ),
      '',
  ]
  lines += _main_table(runs)
  lines += _few_label_table(runs)
  lines += _transfer_table(runs)
  lines += _embedding_table(runs)
  lines += _curve_section(runs, files_dir, out_dir)
  lines += _run_figures(runs, out_dir)
  return '\n'.join(lines).rstrip('\n') + '\n'


def main(argv: Sequence[str], *, out_flag) -> None:
  """The command line: finds the runs under argv and writes the report."""
  if len(argv) < 2:
    raise app.UsageError('Give at least one run workdir or folder of runs.')
  try:
    runs = find_runs(argv[1:])
  except ReportError as e:
    print(f'ssl_jax.tools.report: error: {e}', file=sys.stderr)
    sys.exit(2)
  text = build_report(runs, out_flag.value, sources=argv[1:])
  os.makedirs(os.path.dirname(os.path.abspath(out_flag.value)), exist_ok=True)
  with open(out_flag.value, 'w') as f:
    f.write(text)
  print(f'Compared {len(runs)} runs: {os.path.abspath(out_flag.value)}')


if __name__ == '__main__':
  app.run(
      functools.partial(
          main,
          out_flag=flags.DEFINE_string(
              'out',
              'report.md',
              'Markdown file to write; its plots go to <out stem>_files/'
              ' beside it.',
          ),
      )
  )
