"""The few figures that matter at the end of a run, as a small text table.

``main.py`` prints :func:`run_summary` when a run ends: the headline accuracy
next to its random-init reference, kNN, time and throughput, and where the
files are. Every figure stays in ``results.json`` and TensorBoard; the console
gets only this table.
"""

from collections.abc import Mapping
from collections.abc import Sequence
import os
from typing import Any, Optional

from ssl_jax.data import paths

# (results key, row label): the accuracies a run may report, headline first.
_ACCURACIES = (
    ('linear_probe/test_accuracy', 'linear probe (test)'),
    ('classifier/test_accuracy', 'classifier (test)'),
    ('knn/test_accuracy', 'kNN (test)'),
)
_REFERENCE = 'random_init/linear_probe/test_accuracy'


def _hms(seconds: float) -> str:
  seconds = int(round(seconds))
  return f'{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}'


def _yes_no(value: Any) -> str:
  return 'yes' if value else 'no'


def _figures(results: Mapping[str, Any]) -> list[tuple[str, str, str]]:
  """``(label, value, note)`` of every figure row ``results`` has."""
  rows = []
  for key, label in _ACCURACIES:
    if key in results:
      rows.append((label, f'{results[key]:.2%}', ''))
    if key == _ACCURACIES[0][0] and _REFERENCE in results:
      note = ''
      if key in results:
        gain = 100 * (results[key] - results[_REFERENCE])
        note = f'{gain:+.2f} points for the trained encoder'
      rows.append(
          ('random-init encoder (probe)', f'{results[_REFERENCE]:.2%}', note)
      )
  train_s = results.get('train/wall_seconds')
  eval_s = results.get('eval/wall_seconds')
  if train_s is not None:
    note = 'training'
    if eval_s is not None:
      note = f'training {_hms(train_s)}, evaluation {_hms(eval_s)}'
    rows.append(('wall time', _hms(train_s + (eval_s or 0.0)), note))
  if 'train/images_per_second' in results:
    rows.append((
        'images/s',
        f'{results["train/images_per_second"]:,.0f}',
        'training, past the compiling step',
    ))
  if 'train/steps' in results:
    first = results.get('train/first_step', 0)
    rows.append((
        'steps',
        f'{results["train/steps"]:,}',
        f'resumed at step {first:,}' if first else '',
    ))
  if 'data/host_crop' in results:
    rows.append((
        'host crops',
        _yes_no(results['data/host_crop']),
        'random-resized crops cut on the host',
    ))
  if 'data/cache_train' in results:
    rows.append((
        'train split cached',
        _yes_no(results['data/cache_train']),
        'decoded, in memory',
    ))
  for key, label, note in (
      ('data/skipped_images', 'skipped images', 'data.bad_images=skip'),
      ('train/skipped_steps', 'skipped steps', 'non-finite, nonfinite=skip'),
  ):
    if results.get(key):
      rows.append((label, f'{results[key]:,}', note))
  failed = sorted(k for k in results if k.endswith('/error'))
  if failed:
    rows.append((
        'errors',
        str(len(failed)),
        ', '.join(failed[:2])
        + (', ...' if len(failed) > 2 else '')
        + ' in results.json',
    ))
  return rows


def run_summary(
    results: Mapping[str, Any],
    workdir: str,
    pictures: Optional[Sequence[str]] = None,
) -> str:
  """The end-of-run table: one aligned row per figure ``results`` has.

  Args:
    results: a run's ``results.json`` dict; rows whose figures are absent are
      left out.
    workdir: the run directory (shown absolute).
    pictures: the PNG files to list (default: ``WORKDIR/eval/*.png``).

  Returns:
    The table, lines joined by newlines, without a trailing newline.
  """
  workdir = paths.abspath(workdir)
  if pictures is None:
    pictures = paths.glob(paths.join(workdir, 'eval', '*.png'))
  figures = _figures(results)
  places = [
      ('workdir', workdir),
      (
          'results.json',
          f'{paths.join(workdir, "results.json")} ({len(results)} figures)',
      ),
      ('TensorBoard', f'tensorboard --logdir={workdir}'),
  ]
  if pictures:
    places.append((
        'pictures',
        f'{os.path.dirname(pictures[0])}/: '
        + ', '.join(os.path.basename(p) for p in pictures),
    ))
  label_width = max(len(label) for label, *_ in figures + places)
  value_width = max((len(value) for _, value, _ in figures), default=0)
  lines = ['Run summary']
  for label, value, note in figures:
    lines.append(f'  {label:<{label_width}}  {value:<{value_width}}  {note}')
  for label, value in places:
    lines.append(f'  {label:<{label_width}}  {value}')
  return '\n'.join(line.rstrip() for line in lines)
