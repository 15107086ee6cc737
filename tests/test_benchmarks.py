"""The benchmark suite runs end to end (a smoke case; no speed is asserted)."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_suite_smoke_prints_every_part(tmp_path):
  out = tmp_path / 'bench.json'
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop('XLA_FLAGS', None)
  proc = subprocess.run(
      [sys.executable, 'benchmarks/suite.py', '--preset=smoke',
       '--parts=step,augment,input', '--steps=1', '--warmup=0',
       f'--out={out}'], cwd=ROOT, env=env, capture_output=True, text=True,
      timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  records = json.loads(out.read_text())
  assert [r['part'] for r in records] == ['step', 'augment', 'input']
  assert not any('error' in r for r in records), records
  step = records[0]
  for key in ('images_per_second', 'compile_seconds', 'gflops_per_step', 'mfu',
              'peak_host_memory_mb'):
    assert step[key] > 0, key
  assert records[2]['headroom'] > 0
