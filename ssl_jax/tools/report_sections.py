"""The report's tables and curves, each built from the runs' own files."""

import collections
import glob
import json
import math
import os
import re
import statistics
from typing import Any, Sequence
from urllib import parse

from ssl_jax import methods
from ssl_jax.evaluation import pictures
from ssl_jax.tools.runs import Run

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
    'cpu_convolutions',
})
_SETTING = re.compile(
    r'^(finetune|frozen)/((frac|per_class)='
    r'(\d+(?:\.\d*)?(?:e-?\d+)?))/test_accuracy(_mean)?$'
)
_TRANSFER = re.compile(r'^transfer/([^/]+)/')


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


def main_table(runs: Sequence[Run]) -> list[str]:
  """The main comparison: one row per run, headline test figures."""
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


def few_label_table(runs: Sequence[Run]) -> list[str]:
  """Fine-tuned and frozen-probe accuracy at each label setting."""
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


def transfer_table(runs: Sequence[Run]) -> list[str]:
  """Probe (and fine-tune) accuracy on each transfer target."""
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


def embedding_table(runs: Sequence[Run]) -> list[str]:
  """Silhouette, Dunn and k-means NMI/ARI of the test embeddings."""
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


def curve_section(
    runs: Sequence[Run], files_dir: str, out_dir: str
) -> list[str]:
  """Accuracy against label fraction: curves over runs, and per run."""
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


def run_figures(runs: Sequence[Run], out_dir: str) -> list[str]:
  """Links to the PNGs each run wrote."""
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
