"""The data-at-scale benchmark and its folder generator run end to end.

Tiny sizes; no speed is asserted, only that each path ran, produced the
batches one process produces, and wrote a complete record.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*argv):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  proc = subprocess.run(
      [sys.executable, *argv],
      cwd=ROOT,
      env=env,
      capture_output=True,
      text=True,
      timeout=300,
      check=False,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


@pytest.mark.slow
def test_folder_is_imagenet_shaped_and_benchmark_records_every_part(tmp_path):
  data = tmp_path / 'inet'
  _run(
      'benchmarks/make_imagenet_like.py',
      f'--out={data}',
      '--num_images=24',
      '--num_classes=3',
      '--val_fraction=0.25',
      '--processes=1',
  )
  train = sorted(os.listdir(data / 'train'))
  assert train == ['n01000000', 'n01007919', 'n01015838']
  files = [f for c in train for f in os.listdir(data / 'train' / c)]
  assert len(files) == 18 and all(f.endswith('.JPEG') for f in files)
  manifest = json.loads((data / 'imagenet_like.json').read_text())
  assert manifest['splits'] == {'train': 18, 'val': 6}
  assert 0.5 < manifest['bits_per_pixel'] < 8  # Neither flat nor noise.
  # A second call with the same arguments reuses the folder as it is.
  before = (data / 'imagenet_like.json').stat().st_mtime_ns
  _run(
      'benchmarks/make_imagenet_like.py',
      f'--out={data}',
      '--num_images=24',
      '--num_classes=3',
      '--val_fraction=0.25',
  )
  assert (data / 'imagenet_like.json').stat().st_mtime_ns == before

  out = tmp_path / 'data_scale.json'
  _run(
      'benchmarks/data_scale.py',
      f'--data_dir={data}',
      f'--rss_dirs={data}',
      '--parts=decode,grain,rss',
      '--batch=4',
      '--steps=2',
      '--rss_steps=2',
      '--workers=0,2',
      '--rss_workers=2',
      f'--out={out}',
  )
  record = json.loads(out.read_text())
  assert record['machine']['cpu_count'] > 0 and record['commit']
  assert [c['scale'] for c in record['crops']] == [[0.08, 1.0]] * 2
  for name in ('one_core', 'records_2_workers', 'stream_2_workers'):
    figures = record['throughput'][name]
    assert figures['images_per_second'] > 0, name
    assert figures['batch_seconds_median'] > 0, name
    assert figures['same_batches'], name
  assert set(record['throughput']['stream_over_records_rate']) == {'2'}
  rss = record['rss'][str(data)]
  assert rss['num_files'] == 18 and rss['descendant_processes'] >= 2
  assert rss['peak_rss_with_workers_mb'] >= rss['rss_after_imports_mb'] > 0
  demand = record['h200_resnet50_simclr_bf16']
  assert demand['device_kind'] == 'NVIDIA H200'
  assert record['cores_per_accelerator'] == round(
      demand['images_per_second']
      / record['throughput']['one_core']['images_per_second'],
      1,
  )
