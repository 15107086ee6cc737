"""Reruns the CPU proof and every row of the method comparison on real CIFAR-10.

  python benchmarks/cpu_proofs.py --npz=../shared/data/cifar10_jpeg_q75.npz
  python benchmarks/cpu_proofs.py --table   # the README's rows, from the files

Each row is one ``main.py`` run of a committed CPU config on 2 CPU cores (the
README's "CPU proof" and "Method comparison" sections), from the CIFAR-10 JPEG
archive prepared into a tfds data_dir. Each writes
``benchmarks/results/cpu_proof_<row>_<commit>.json``: the command, the commit,
the whole ``results.json`` of the run and the row's target with whether it was
met. A row whose file exists for this commit is skipped (so a killed
invocation resumes); ``--force`` reruns it. A dirty work tree is refused, so
every file names code that exists. Rows run one at a time and take 5-30
minutes each: run nothing else heavy meanwhile.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, 'results')

# name: (config, extra flags, what the row shows, labels used in training).
ROWS = {
    'supervised_full': (
        'supervised_cifar10_cpu',
        ('--config.num_epochs=6', '--config.probe.enabled=False'),
        'supervised',
        '100 %',
    ),
    'supervised_10pct': (
        'supervised_cifar10_cpu',
        ('--config.data.label_fraction=0.1', '--config.num_epochs=80'),
        'supervised',
        '10 %',
    ),
    'simclr': (
        'simclr_cifar10_cpu',
        (),
        'SimCLR (the CPU proof)',
        'none (probe: 100 %)',
    ),
    'barlow_twins': (
        'barlow_twins_cifar10_cpu',
        (),
        'Barlow Twins',
        'none (probe: 100 %)',
    ),
    'vicreg': (
        'vicreg_cifar10_cpu',
        (),
        'VICReg',
        'none (probe: 100 %)',
    ),
    'byol': (
        'byol_cifar10_cpu',
        (),
        'BYOL',
        'none (probe: 100 %)',
    ),
    'moco_v3': (
        'moco_v3_cifar10_cpu',
        (),
        'MoCo v3',
        'none (probe: 100 %)',
    ),
    'dino': (
        'dino_cifar10_cpu',
        (),
        'DINO (2 global + 2 local crops)',
        'none (probe: 100 %)',
    ),
    'deepcluster': (
        'deepcluster_cifar10_cpu',
        (),
        'DeepCluster',
        'none (probe: 100 %)',
    ),
    'fixmatch': (
        'fixmatch_cifar10_cpu',
        (),
        'FixMatch (EMA)',
        '10 % (+ all images unlabelled)',
    ),
}
# Minimum probe gain over the random-init probe (points), where a row has one.
GAIN_TARGETS = {
    'simclr': 14.0,
    'barlow_twins': 10.0,
    'vicreg': 10.0,
    'byol': 10.0,
    'moco_v3': 10.0,
    'dino': 10.0,
    'deepcluster': 5.0,
}
BUDGET_SECONDS = 30 * 60


def _git(*args):
  return subprocess.run(
      ['git', *args], cwd=ROOT, capture_output=True, text=True, check=True
  ).stdout.strip()


def _path(row, commit):
  return os.path.join(RESULTS, f'cpu_proof_{row}_{commit}.json')


def headline(row, results):
  """The row's test accuracy: the classifier's where it has one, else the probe's."""
  return results.get(
      'classifier/test_accuracy', results.get('linear_probe/test_accuracy')
  )


def targets(records):
  """Each row's target as ``{row: (description, met or None)}``."""
  out = {}
  for row, minimum in GAIN_TARGETS.items():
    if row in records:
      r = records[row]['results']
      gain = 100 * (
          r['linear_probe/test_accuracy']
          - r['random_init/linear_probe/test_accuracy']
      )
      ok = gain >= minimum and r['train/wall_seconds'] <= BUDGET_SECONDS
      text = f'probe gain >= {minimum:g} points in <= 30 min'
      if row == 'simclr':
        ok = ok and r['linear_probe/test_accuracy'] >= 0.63
        text = 'probe >= 63 % and ' + text
      out[row] = (text, ok)
  if 'fixmatch' in records:
    fm = headline('fixmatch', records['fixmatch']['results'])
    sup = records.get('supervised_10pct')
    out['fixmatch'] = (
        'above supervised with the same 10 %',
        None
        if sup is None
        else fm > headline('supervised_10pct', sup['results']),
    )
  return out


def run_row(row, args, commit):
  """Runs one row through main.py; writes and returns its record."""
  config, extra = ROWS[row][:2]
  workdir = os.path.join(args.workroot, f'{row}_{commit}')
  if os.path.exists(workdir):  # A fresh run: no resume from an earlier try.
    subprocess.run(['rm', '-rf', workdir], check=True)
  cmd = [
      sys.executable,
      'main.py',
      f'--config=configs/{config}.py',
      f'--workdir={workdir}',
      f'--config.data_dir={args.data_dir}',
      *extra,
  ]
  print(f'[{time.strftime("%H:%M:%S")}] {row}: {" ".join(cmd[1:])}', flush=True)
  start = time.time()
  log_path = workdir + '.log'
  os.makedirs(args.workroot, exist_ok=True)
  with open(log_path, 'w') as log:
    proc = subprocess.run(
        cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False
    )
  if proc.returncode:
    with open(log_path) as f:
      tail = f.read()[-3000:]
    sys.exit(f'{row} failed (exit {proc.returncode}); log {log_path}:\n{tail}')
  with open(os.path.join(workdir, 'results.json')) as f:
    results = json.load(f)
  record = {
      'row': row,
      'what': ROWS[row][2],
      'commit': commit,
      'command': (
          'python '
          + ' '.join(
              cmd[1:3] + ['--workdir=W', '--config.data_dir=D'] + list(extra)
          )
      ),
      'machine': f'{os.cpu_count()} CPU cores',
      'process_wall_seconds': round(time.time() - start, 1),
      'results': results,
  }
  with open(_path(row, commit), 'w') as f:
    json.dump(record, f, indent=1, sort_keys=True)
  print(
      f'[{time.strftime("%H:%M:%S")}] {row}: test accuracy '
      f'{headline(row, results):.2%}, train wall '
      f'{results["train/wall_seconds"] / 60:.1f} min -> {_path(row, commit)}',
      flush=True,
  )
  return record


def table(commit):
  """The README's comparison rows (markdown) from this commit's files."""
  records = {}
  for row in ROWS:
    path = _path(row, commit)
    if os.path.exists(path):
      with open(path) as f:
        records[row] = json.load(f)
  met = targets(records)
  lines = [
      (
          '| method | labels in training | epochs | train wall | img/s | '
          '**test accuracy** | linear probe | random-init probe | probe gain | '
          'macro F1 | target | results file |'
      ),
      '|' + '---|' * 12,
  ]
  pct = lambda v: '' if v is None else f'{100 * v:.2f} %'
  for row, record in records.items():
    r = record['results']
    probe = r.get('linear_probe/test_accuracy')
    rand = r.get('random_init/linear_probe/test_accuracy')
    f1 = r.get(
        'classifier/test_f1/macro_avg', r.get('linear_probe/test_f1/macro_avg')
    )
    target = met.get(row)
    lines.append(
        ' | '.join([
            f'| {ROWS[row][2]}',
            ROWS[row][3],
            f'{r["train/epochs"]:.2f}',
            f'{r["train/wall_seconds"] / 60:.1f} min',
            f'{r.get("train/images_per_second", 0):.0f}',
            f'**{pct(headline(row, r))}**',
            pct(probe) or 'not run',
            pct(rand),
            ''
            if probe is None or rand is None
            else f'{100 * (probe - rand):+.2f}',
            '' if f1 is None else f'{100 * f1:.1f}',
            ''
            if target is None
            else (
                f'{target[0]}:'
                f' {"met" if target[1] else "MISSED" if target[1] is False else "n/a"}'
            ),
            f'`{os.path.relpath(_path(row, commit), ROOT)}` |',
        ])
    )
  return '\n'.join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument(
      '--npz',
      default=os.path.join(
          ROOT, '..', 'shared', 'data', 'cifar10_jpeg_q75.npz'
      ),
  )
  parser.add_argument('--data_dir', default='/tmp/ssl_jax_tfds')
  parser.add_argument('--workroot', default='/tmp/ssl_jax_cpu_proofs')
  parser.add_argument(
      '--rows',
      default=','.join(ROWS),
      help=f'comma-separated, from {list(ROWS)}',
  )
  parser.add_argument('--force', action='store_true')
  parser.add_argument(
      '--table',
      action='store_true',
      help='print the markdown rows of --commit and exit',
  )
  parser.add_argument(
      '--commit', default=None, help='with --table: the commit (default HEAD)'
  )
  args = parser.parse_args()
  commit = args.commit or _git('rev-parse', '--short', 'HEAD')
  if args.table:
    print(table(commit))
    return
  rows = args.rows.split(',')
  for row in rows:
    if row not in ROWS:
      parser.error(f'--rows: unknown row {row!r}; choose from {list(ROWS)}')
  if _git('status', '--porcelain', '--untracked-files=no'):
    sys.exit(
        'cpu_proofs: the work tree has uncommitted changes; commit them '
        'first so that each results file names the code it ran.'
    )
  if not glob.glob(
      os.path.join(args.data_dir, 'cifar10', '*', 'dataset_info.json')
  ):
    if not os.path.exists(args.npz):
      sys.exit(f'cpu_proofs: no CIFAR-10 archive at {args.npz!r}; pass --npz.')
    subprocess.run(
        [
            sys.executable,
            '-m',
            'ssl_jax.tools.prepare_data',
            f'--npz={args.npz}',
            f'--data_dir={args.data_dir}',
        ],
        cwd=ROOT,
        check=True,
    )
  for row in rows:
    if os.path.exists(_path(row, commit)) and not args.force:
      print(f'{row}: {_path(row, commit)} exists; skipped (--force reruns).')
      continue
    run_row(row, args, commit)
  print(table(commit))


if __name__ == '__main__':
  main()
