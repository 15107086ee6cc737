"""The run-comparison report, from fake workdirs with known figures."""

import json
import os
import subprocess
import sys

import pytest

from ssl_jax.configs import default
from ssl_jax.tools import report

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write_run(path, results, **overrides):
  config = default.get_config()
  for name, value in overrides.items():
    node, (*parents, leaf) = config, name.split('.')
    for p in parents:
      node = node[p]
    node[leaf] = value
  os.makedirs(path)
  with open(os.path.join(path, 'config.json'), 'w') as f:
    f.write(config.to_json(indent=2))
  with open(os.path.join(path, 'results.json'), 'w') as f:
    json.dump(results, f)


@pytest.fixture
def runs_dir(tmp_path):
  root = tmp_path / 'runs'
  _write_run(
      root / 'simclr_run',
      {
          'linear_probe/test_accuracy': 0.71234,
          'random_init/linear_probe/test_accuracy': 0.35,
          'knn/test_accuracy': 0.6543,
          'finetune/frac=0.01/test_accuracy_mean': 0.52,
          'finetune/frac=0.01/test_accuracy_std': 0.0123,
          'frozen/frac=0.01/test_accuracy_mean': 0.48,
          'frozen/frac=0.01/test_accuracy_std': 0.01,
          'finetune/frac=0.1/test_accuracy_mean': 0.66,
          'finetune/frac=0.1/test_accuracy_std': 0.005,
          'frozen/frac=0.1/test_accuracy_mean': 0.6,
          'finetune/per_class=10/test_accuracy_mean': 0.4,
          'transfer/stl10/linear_probe/test_accuracy': 0.712,
          'transfer/stl10/finetune/test_accuracy': 0.803,
          'transfer/svhn/error': (
              'dataset svhn not found in ~/tensorflow_datasets'
          ),
          'embedding/silhouette': 0.1234,
          'embedding/kmeans_nmi': 0.5,
          'train/wall_seconds': 3725.4,
      },
      method='simclr',
  )
  for fraction, accuracy in ((0.1, 0.5), (1.0, 0.9)):
    _write_run(
        root / 'sweep' / f'label_fraction={fraction}',
        {
            'classifier/test_accuracy': accuracy,
            'linear_probe/test_accuracy': accuracy - 0.05,
            'train/wall_seconds': 59.6,
        },
        method='supervised',
        **{'data.label_fraction': fraction},
    )
  os.makedirs(root / 'sweep' / 'unfinished')
  with open(root / 'sweep' / 'unfinished' / 'config.json', 'w') as f:
    f.write('{}')
  return root


def _row(markdown, name):
  rows = [
      line for line in markdown.splitlines() if line.startswith(f'| {name} |')
  ]
  assert rows, name
  return [c.strip() for c in rows[0].strip('|').split('|')]


def test_find_runs_sorts_by_method_and_skips_unfinished(runs_dir):
  runs = report.find_runs([str(runs_dir)])
  assert [r.name for r in runs] == [
      'label_fraction=0.1',
      'label_fraction=1.0',
      'simclr_run',
  ]
  assert runs[0].config['data.label_fraction'] == 0.1
  assert runs[2].results['knn/test_accuracy'] == 0.6543


def test_report_tables_and_plots(runs_dir, tmp_path):
  png = runs_dir / 'simclr_run' / 'eval' / 'tsne.png'
  os.makedirs(png.parent)
  png.write_bytes(b'\x89PNG')
  out = tmp_path / 'out' / 'report.md'
  markdown = report.build_report(report.find_runs([str(runs_dir)]), str(out))

  assert report.RULE in markdown
  assert _row(markdown, 'simclr_run') == [
      'simclr_run',
      'simclr',
      'resnet18',
      'cifar10',
      '100',
      'none',
      '–',
      '71.23',
      '35.00',
      '65.43',
      '52.00 ± 1.23',
      '66.00 ± 0.50',
      '1:02:05',
  ]
  assert _row(markdown, 'label_fraction=0.1')[4:8] == [
      '100',
      '10 %',
      '50.00',
      '45.00',
  ]
  assert markdown.index('| label_fraction=1.0 |') < markdown.index(
      '| simclr_run |'
  )
  # Frozen vs fine-tuned, per setting.
  assert (
      '| simclr_run | frac=0.01 | 48.00 ± 1.00 | 52.00 ± 1.23 | +4.00 |'
      in markdown
  )
  assert '| simclr_run | frac=0.1 | 60.00 | 66.00 ± 0.50 | +6.00 |' in markdown
  assert '| simclr_run | per_class=10 | – | 40.00 | – |' in markdown
  # Transfer matrix and the missing dataset's reason.
  assert '| Run | stl10 | svhn |' in markdown
  assert '| simclr_run | 71.20 / 80.30 | missing |' in markdown
  assert '| label_fraction=0.1 | – | – |' in markdown
  assert 'dataset svhn not found' in markdown
  # Embedding metrics.
  assert '| Run | kmeans_nmi | silhouette |' in markdown
  assert '| simclr_run | 0.5000 | 0.1234 |' in markdown
  # Plots, linked relative to the report.
  files = out.parent / 'report_files'
  assert (files / 'label_fraction.png').stat().st_size > 1000
  assert (files / 'finetune_fraction.png').stat().st_size > 1000
  assert '](report_files/label_fraction.png)' in markdown
  assert '](report_files/finetune_fraction.png)' in markdown
  assert '](../runs/simclr_run/eval/tsne.png)' in markdown
  assert '| supervised/resnet18/cifar10 (classifier) | 0.1 | 50.00 | 1 |' in (
      markdown
  )


def test_one_fraction_only_draws_no_curve(runs_dir, tmp_path):
  runs = [
      r
      for r in report.find_runs([str(runs_dir)])
      if r.name != 'label_fraction=1.0'
  ]
  markdown = report.build_report(runs, str(tmp_path / 'r.md'))
  assert 'Accuracy vs label fraction' not in markdown
  assert not (tmp_path / 'r_files' / 'label_fraction.png').exists()


def test_dir_without_runs_is_an_error(tmp_path):
  (tmp_path / 'empty' / 'sub').mkdir(parents=True)
  with pytest.raises(report.ReportError, match='no finished run under .*empty'):
    report.find_runs([str(tmp_path / 'empty')])
  with pytest.raises(report.ReportError, match='not a directory'):
    report.find_runs([str(tmp_path / 'nowhere')])


def test_duplicate_folder_names_get_their_parent(tmp_path):
  for sweep_name in ('a', 'b'):
    _write_run(tmp_path / sweep_name / 'mu=1', {}, method='fixmatch')
  names = [r.name for r in report.find_runs([str(tmp_path)])]
  assert names == ['a/mu=1', 'b/mu=1']


@pytest.mark.slow
def test_cli(runs_dir, tmp_path):
  out = tmp_path / 'cli.md'
  command = [
      sys.executable,
      '-m',
      'ssl_jax.tools.report',
      str(runs_dir / 'sweep'),
      str(runs_dir / 'simclr_run'),
      f'--out={out}',
  ]
  done = subprocess.run(
      command, cwd=_REPO, capture_output=True, text=True, check=False
  )
  assert done.returncode == 0, done.stderr
  assert 'Compared 3 runs' in done.stdout
  text = out.read_text()
  assert text.startswith('# Run comparison')
  assert '| simclr_run |' in text and (tmp_path / 'cli_files').is_dir()
  command[3:5] = [str(tmp_path / 'cli_files')]
  done = subprocess.run(
      command, cwd=_REPO, capture_output=True, text=True, check=False
  )
  assert done.returncode == 2
  assert 'error: no finished run under' in done.stderr
