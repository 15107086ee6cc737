"""The end of a run: a short table on the console, every figure in files."""

import glob
import json
import os
import subprocess
import sys

import pytest

from ssl_jax.training import report_table
from ssl_jax.training import summary
from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = {
    'linear_probe/test_accuracy': 0.9125,
    'random_init/linear_probe/test_accuracy': 0.75,
    'knn/test_accuracy': 0.875,
    'train/wall_seconds': 3725.0,
    'eval/wall_seconds': 65.0,
    'train/images_per_second': 12345.6,
    'train/steps': 1200,
    'train/first_step': 600,
    'data/host_crop': 1,
    'data/cache_train': 0,
    'data/skipped_images': 3,
    'train/skipped_steps': 0,
    'transfer/mnist/error': 'dataset mnist is not prepared ...',
    'linear_probe/test_f1/macro_avg': 0.9,  # Not a row: results.json only.
}


def _rows(table):
  """``{label: rest of the line}``: labels are the first two-space column."""
  rows = {}
  for line in table.splitlines()[1:]:
    label, rest = line.strip().split('  ', 1)
    rows[label] = rest.strip()
  return rows


def test_table_shows_the_figures_that_matter(tmp_path):
  workdir = str(tmp_path / 'run')
  os.makedirs(os.path.join(workdir, 'eval'))
  for name in ('tsne.png', 'neighbours.png'):
    open(os.path.join(workdir, 'eval', name), 'wb').close()
  table = report_table.run_summary(RESULTS, workdir)
  assert table.splitlines()[0] == 'Run summary'
  rows = _rows(table)
  assert rows['linear probe (test)'] == '91.25%'
  assert rows['random-init encoder (probe)'].split() == [
      '75.00%',
      '+16.25',
      'points',
      'for',
      'the',
      'trained',
      'encoder',
  ]
  assert rows['kNN (test)'] == '87.50%'
  # 1:02:05 of training and 0:01:05 of evaluation.
  assert rows['wall time'].split()[0] == '1:03:10'
  assert rows['images/s'].startswith('12,346')
  assert rows['steps'].split()[:1] == ['1,200'] and 'resumed at step 600' in (
      rows['steps']
  )
  assert rows['host crops'].startswith('yes')
  assert rows['train split cached'].startswith('no')
  assert rows['skipped images'].startswith('3')
  assert 'skipped steps' not in rows  # Zero: left out.
  assert rows['errors'].startswith('1') and 'transfer/mnist/error' in (
      rows['errors']
  )
  assert rows['workdir'] == workdir
  assert rows['results.json'] == (
      f'{os.path.join(workdir, "results.json")} ({len(RESULTS)} figures)'
  )
  assert rows['pictures'] == (
      f'{os.path.join(workdir, "eval")}/: neighbours.png, tsne.png'
  )
  assert 'f1' not in table
  # The figures' values start in one column.
  lines = table.splitlines()[1:]
  starts = {line.index(v) for line, v in zip(lines, ['91.25%', '75.00%'])}
  assert len(starts) == 1


def test_rows_without_figures_are_left_out(tmp_path):
  results = {'train/wall_seconds': 10.0, 'classifier/test_accuracy': 0.5}
  rows = _rows(report_table.run_summary(results, str(tmp_path)))
  assert list(rows) == [
      'classifier (test)',
      'wall time',
      'workdir',
      'results.json',
      'TensorBoard',
  ]
  assert rows['wall time'].split() == ['0:00:10', 'training']


def test_console_lines_stay_short_and_files_get_everything(
    tmp_path, monkeypatch
):
  lines = []
  monkeypatch.setattr(
      summary.logging, 'info', lambda fmt, *args: lines.append(fmt % args)
  )
  many = {f'metric_{i:02d}': float(i) for i in range(20)}
  logdir = str(tmp_path / 'run')
  with summary.create(logdir) as writer:
    writer.write_hparams({f'h{i}': i for i in range(50)})
    writer.write_scalars(1, many)
    writer.write_scalars(2, many, log_keys=('metric_03', 'metric_19', 'x'))
    writer.write_scalars(3, many, log_keys=())
  assert lines == [
      '50 hyperparameters (TensorBoard HParams tab)',
      '[1] '
      + ', '.join(f'metric_{i:02d}={float(i):.6g}' for i in range(8))
      + ' (+12 more in TensorBoard)',
      '[2] metric_03=3, metric_19=19 (+18 more in TensorBoard)',
  ]
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top

  (path,) = glob.glob(os.path.join(logdir, 'events.out.tfevents.*'))
  acc = event_accumulator.EventAccumulator(path)
  acc.Reload()
  assert set(acc.Tags()['scalars']) == set(many)
  assert [e.step for e in acc.Scalars('metric_19')] == [1, 2, 3]


@pytest.mark.slow
def test_main_ends_with_the_table_and_no_metric_dump(tmp_path):
  workdir = str(tmp_path / 'run')
  done = subprocess.run(
      [
          sys.executable,
          'main.py',
          f'--workdir={workdir}',
          '--config.num_epochs=1',
          '--config.optimizer.warmup_epochs=0',
          '--config.log_every_steps=2',
          '--config.evals.pictures.enabled=False',
      ],
      cwd=ROOT,
      env=helpers.subprocess_env(),
      capture_output=True,
      text=True,
      timeout=900,
      check=False,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  with open(os.path.join(workdir, 'results.json')) as f:
    results = json.load(f)
  assert done.stdout.strip() == report_table.run_summary(results, workdir)
  rows = _rows(done.stdout.strip())
  assert {'linear probe (test)', 'random-init encoder (probe)'} <= set(rows)
  # Every figure is in results.json; no log line carries more than a few.
  assert len(results) > 50
  longest = max(done.stderr.splitlines(), key=len)
  assert len(longest) < 300, longest
  assert 'step 5/5  epoch 1.00  loss ' in done.stderr
