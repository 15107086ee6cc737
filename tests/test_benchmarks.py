"""The benchmark suite runs end to end (a smoke case; no speed is asserted)."""

import json
import os
import subprocess
import sys

import pytest

from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))
import op_profile  # noqa: E402  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.mark.slow
def test_suite_smoke_prints_every_part(tmp_path):
  out = tmp_path / 'bench.json'
  env = helpers.subprocess_env()
  proc = subprocess.run(
      [
          sys.executable,
          'benchmarks/suite.py',
          '--preset=smoke',
          '--parts=step,profile,augment,input',
          '--steps=1',
          '--warmup=0',
          f'--trace_dir={tmp_path / "traces"}',
          f'--out={out}',
      ],
      cwd=ROOT,
      env=env,
      capture_output=True,
      text=True,
      timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  records = json.loads(out.read_text())
  assert [r['part'] for r in records] == ['step', 'profile', 'augment', 'input']
  assert not any('error' in r for r in records), records
  step = records[0]
  for key in (
      'images_per_second',
      'compile_seconds',
      'gflops_per_step',
      'mfu',
      'peak_host_memory_mb',
  ):
    assert step[key] > 0, key
  assert records[3]['headroom'] > 0
  profile = records[1]
  assert profile['source'] == 'host threads'
  assert profile['trace_dir'].startswith(str(tmp_path / 'traces'))
  assert profile['ms_per_step'] > 0 and profile['top_ops']
  assert sum(share for _, share in profile['by_kind'].values()) == (
      pytest.approx(1.0, abs=0.01)
  )


def _event(pid, name, dur, **args):
  return {
      'ph': 'X',
      'pid': pid,
      'tid': 1,
      'name': name,
      'ts': 0,
      'dur': dur,
      'args': args,
  }


def test_op_profile_keeps_device_ops_keyed_by_hlo_op():
  events = [
      {
          'ph': 'M',
          'pid': 1,
          'name': 'process_name',
          'args': {'name': '/host:CPU'},
      },
      {
          'ph': 'M',
          'pid': 7,
          'name': 'process_name',
          'args': {'name': '/device:GPU:0'},
      },
      _event(1, 'fusion.1', 9000),  # Host-side launch: not counted.
      _event(7, 'sm90_xmma_fprop_kernel', 3000, hlo_op='convolution.3'),
      _event(7, 'sm90_xmma_fprop_kernel', 1000, hlo_op='convolution.3'),
      _event(7, 'loop_add_fusion', 2000, hlo_op='loop_add_fusion.2'),
      _event(7, 'reduce', 2000, hlo_op='input_reduce_fusion'),
  ]
  summary = op_profile.summarise(events, steps=2)
  assert summary['source'] == 'device'
  assert summary['ms_per_step'] == 4.0
  assert summary['top_ops'][0] == ['convolution.3', 'convolution', 2.0, 0.5]
  assert summary['by_kind'] == {
      'convolution': [2.0, 0.5],
      'elementwise fusion': [1.0, 0.25],
      'reduction': [1.0, 0.25],
  }


def test_op_profile_on_cpu_counts_hlo_ops_not_runtime_events():
  events = [
      _event(1, 'ThunkExecutor::Execute', 5000),
      _event(1, '$api.py:2479 block_until_ready', 5000),
      _event(1, 'PjitFunction(jit(train_step))', 5000),
      _event(1, 'ffi_call.53', 3000),
      _event(2, 'transpose_copy_fusion.17', 1000),
  ]
  summary = op_profile.summarise(events, steps=1)
  assert summary['source'] == 'host threads'
  assert [op for op, *_ in summary['top_ops']] == [
      'ffi_call.53',
      'transpose_copy_fusion.17',
  ]
  assert summary['by_kind'] == {
      'custom call': [3.0, 0.75],
      'copy / transpose': [1.0, 0.25],
  }


def test_folder_data_benchmark_smoke(tmp_path):
  out = tmp_path / 'folder.json'
  proc = subprocess.run(
      [
          sys.executable,
          'benchmarks/folder_data.py',
          f'--root={tmp_path / "data"}',
          '--num_images=300',
          '--px=32',
          '--batch=64',
          '--rounds=4',
          '--no_step',
          f'--out={out}',
      ],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  record = json.loads(out.read_text())['32px']
  assert record['num_files'] == 300 and record['image_shape'] == [32, 32, 3]
  for key in (
      'uncached_one_process_images_per_second',
      'uncached_workers_images_per_second',
      'uncached_threads_images_per_second',
      'cache_fill_workers_images_per_second',
      'cached_images_per_second',
  ):
    assert record[key] > 0
