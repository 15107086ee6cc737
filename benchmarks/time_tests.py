"""Times the test suite (or a tier of it) and records the figures.

Runs ``python -m pytest`` with the given arguments in a subprocess and writes
its wall time, the CPU time of it and its children, the load average before
and after, the pytest summary line and the slowest tests (``--durations``) to
``benchmarks/results/test_suite_<name>_<commit>.json``. Run it on an otherwise
idle machine.

  python benchmarks/time_tests.py --name=full -- -q -n 2 --dist loadfile tests
  python benchmarks/time_tests.py --name=fast -- -q -n 2 -m "not slow" tests
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DURATION = re.compile(r'^(\d+\.\d+)s (call|setup|teardown)\s+(\S+)$')


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--name', required=True, help='e.g. full or fast')
  parser.add_argument('--durations', type=int, default=25)
  parser.add_argument('pytest_args', nargs='+')
  args = parser.parse_args()
  commit = subprocess.run(
      ['git', 'rev-parse', '--short', 'HEAD'],
      cwd=ROOT,
      capture_output=True,
      text=True,
      check=True,
  ).stdout.strip()
  command = [
      sys.executable,
      '-m',
      'pytest',
      *args.pytest_args,
      '-p',
      'no:cacheprovider',
      f'--durations={args.durations}',
  ]
  load_start = os.getloadavg()
  start = time.perf_counter()
  proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
  wall = time.perf_counter() - start
  usage = resource.getrusage(resource.RUSAGE_CHILDREN)
  lines = proc.stdout.splitlines()
  summary = next(
      (
          line.strip('= ')
          for line in reversed(lines)
          if ' in ' in line and 'passed' in line
      ),
      '',
  )
  slowest = [
      dict(seconds=float(m[1]), phase=m[2], test=m[3])
      for m in map(_DURATION.match, lines)
      if m
  ]
  record = dict(
      commit=commit,
      command='python -m pytest ' + ' '.join(args.pytest_args),
      returncode=proc.returncode,
      wall_seconds=round(wall, 1),
      cpu_seconds=round(usage.ru_utime + usage.ru_stime, 1),
      cpu_count=os.cpu_count(),
      load_average_at_start=load_start,
      load_average_at_end=os.getloadavg(),
      summary=summary,
      slowest=slowest,
  )
  out = os.path.join(
      ROOT, 'benchmarks', 'results', f'test_suite_{args.name}_{commit}.json'
  )
  with open(out, 'w') as f:
    json.dump(record, f, indent=1)
  print(json.dumps({k: v for k, v in record.items() if k != 'slowest'}))
  print('wrote', out)
  if proc.returncode:
    print(proc.stdout[-5000:], proc.stderr[-3000:], sep='\n')
  sys.exit(proc.returncode)


if __name__ == '__main__':
  main()
