"""The benchmark suite: train-step speed, compile time, memory, MFU, a per-op
profile, augmentation, input pipeline, device scaling and an optional PyTorch
reference, as JSON.

  python benchmarks/suite.py --preset=cpu --out=/tmp/bench.json
  python benchmarks/suite.py --preset=gpu --torch_python=/path/to/venv/bin/python
  python benchmarks/suite.py --preset=cpu --parts=torch --rounds=3 \
      --torch_python=/path/to/venv/bin/python  # alternating JAX/PyTorch runs
  python benchmarks/suite.py --preset=gpu_core --parts=profile --steps=3

Run by hand, never as a timed test. Every measurement runs in its own
subprocess (its own peak memory and device count), on random uint8 images, so
no dataset is needed; the step includes on-device augmentation. Step times are
medians over ``--steps`` steps after ``--warmup`` steps. MFU is XLA's FLOP
count of the compiled step (``cost_analysis``) per second over the device's
peak: a datasheet figure for known accelerators, on CPU the measured rate of
a large float32 matmul (so CPU "MFU" is relative to what XLA:CPU reaches).
One JSON line per measurement goes to stdout; ``--out`` gets them all.
"""

import argparse
import json
import os
import subprocess
import sys

import cases  # pylint: disable=g-bad-import-order

from ssl_jax import methods
from ssl_jax.models import conv

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

METHODS = tuple(methods.METHODS)
ENCODERS = ('convnet', 'resnet18', 'resnet50')
# Global batch per resolution (GPU presets); CPU presets set their own.
BATCH = {32: 512, 96: 256, 224: 128}
PRESETS = {
    # Each case: (method, encoder, image_size, batch_size, dtype).
    'cpu': [
        ('simclr', 'convnet', 32, 256, 'float32'),
        ('simclr', 'resnet18', 32, 64, 'float32'),
        ('simclr', 'convnet', 32, 256, 'bfloat16'),
        ('barlow_twins', 'convnet', 32, 256, 'float32'),
        ('supervised', 'convnet', 32, 256, 'float32'),
        ('fixmatch', 'convnet', 32, 64, 'float32'),
        ('deepcluster', 'convnet', 32, 256, 'float32'),
    ],
    # bfloat16 on the CPU: oneDNN's AMX/AVX512-BF16 path where the CPU has it.
    'cpu_bf16': [
        ('simclr', 'convnet', 32, 256, 'bfloat16'),
        ('simclr', 'resnet18', 32, 64, 'bfloat16'),
    ],
    'gpu': [
        (m, e, s, BATCH[s], d)
        for m in METHODS
        for e in ENCODERS
        for s in (32, 96, 224)
        for d in ('float32', 'bfloat16')
        if not (e == 'convnet' and s == 224)
    ],
    # The core GPU figures: ResNet-18 at 32 and 96 px, ResNet-50 at 224 px,
    # each in float32 and bfloat16.
    'gpu_core': [
        ('simclr', e, s, BATCH[s], d)
        for e, s in (('resnet18', 32), ('resnet18', 96), ('resnet50', 224))
        for d in ('float32', 'bfloat16')
    ],
    'smoke': [('simclr', 'convnet', 16, 16, 'float32')],
}
# What --parts may name, in the order they run.
PARTS = ('step', 'profile', 'augment', 'input', 'scaling', 'torch')
# The SimCLR cases also timed in PyTorch (benchmarks/torch_reference.py).
TORCH_CASES = {
    'cpu': PRESETS['cpu'][:2],
    'cpu_bf16': PRESETS['cpu_bf16'],
    'gpu': PRESETS['gpu_core'],
    'gpu_core': PRESETS['gpu_core'],
    'smoke': PRESETS['smoke'],
}


CASES = {
    'step': cases.case_step,
    'augment': cases.case_augment,
    'input': cases.case_input,
    'profile': cases.case_profile,
}


def _spawn(part, case, args, devices=0, python=None, script=None, extra=()):
  """Runs one measurement in a fresh process; returns its JSON record."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  if devices:
    env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={devices}'
  cmd = [python or sys.executable, script or __file__, *extra]
  if script is None:
    cmd += [
        f'--_part={part}',
        f'--_case={json.dumps(case)}',
        f'--steps={args.steps}',
        f'--warmup={args.warmup}',
        f'--cpu_convolutions={args.cpu_convolutions}',
    ]
    if part == 'profile' and args.trace_dir:
      cmd.append(
          '--trace_dir='
          + os.path.join(
              os.path.abspath(args.trace_dir), '_'.join(map(str, case))
          )
      )
  proc = subprocess.run(
      cmd,
      cwd=ROOT,
      env=env,
      capture_output=True,
      text=True,
      timeout=args.timeout,
  )
  lines = [line for line in proc.stdout.splitlines() if line.startswith('{')]
  if proc.returncode or not lines:
    return {'part': part, 'case': case, 'error': proc.stderr.strip()[-500:]}
  return json.loads(lines[-1])


def _torch_pair(case, args, records):
  """The PyTorch reference of a SimCLR case beside the JAX figure.

  With ``--rounds=1`` the JAX figure is the step measured earlier in this run
  (or measured now). With more rounds, JAX and PyTorch run alternately, each
  in a fresh process, and the medians are compared, so that drift in a
  shared machine's speed hits both sides alike.
  """
  _, encoder, size, batch, dtype = case
  torch_args = dict(
      python=args.torch_python,
      script=os.path.join(HERE, 'torch_reference.py'),
      extra=(
          f'--encoder={encoder}',
          f'--image_size={size}',
          f'--batch_size={batch}',
          f'--dtype={dtype}',
          f'--steps={args.steps}',
          f'--warmup={args.warmup}',
          '--channels_last',
      ),
  )
  earlier = next(
      (
          r
          for r in records
          if r.get('part') == 'step'
          and [
              r.get(k)
              for k in (
                  'method',
                  'encoder',
                  'image_size',
                  'batch_size',
                  'dtype',
              )
          ]
          == list(case)
      ),
      None,
  )
  mine = [earlier] if earlier and args.rounds <= 1 else []
  refs = []
  for _ in range(max(args.rounds, 1)):
    refs.append(_spawn('torch', None, args, **torch_args))
    if args.rounds > 1 or not mine:
      mine.append(_spawn('step', case, args))
  ref = dict(refs[-1], part='torch')
  theirs = [r['images_per_second'] for r in refs if 'images_per_second' in r]
  ours = [r['images_per_second'] for r in mine if 'images_per_second' in r]
  if theirs and ours:
    ref['images_per_second'] = cases.median(theirs)
    ref['jax_images_per_second'] = cases.median(ours)
    ref['jax_over_torch'] = round(cases.median(ours) / cases.median(theirs), 2)
    if args.rounds > 1:
      ref['rounds'] = {
          'torch_images_per_second': theirs,
          'jax_images_per_second': ours,
      }
  return ref


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--preset', default='cpu', choices=sorted(PRESETS))
  parser.add_argument(
      '--parts',
      default='step,augment,input,scaling,torch',
      help=f'Any of {", ".join(PARTS)} (profile: per-op time of each case).',
  )
  parser.add_argument('--steps', type=int, default=10)
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument(
      '--rounds',
      type=int,
      default=1,
      help=(
          'JAX/PyTorch alternations per torch case (>1: '
          'fresh alternating runs, medians compared).'
      ),
  )
  parser.add_argument(
      '--torch_python',
      default='',
      help='A python with torch installed (optional).',
  )
  parser.add_argument(
      '--trace_dir',
      default='',
      help=(
          "Keep the profile part's traces here (one folder "
          'per case; default: a temporary folder).'
      ),
  )
  parser.add_argument(
      '--cpu_convolutions',
      default='onednn',
      choices=conv.CONVOLUTIONS,
      help=(
          "config.cpu_convolutions of every case (XLA's are used wherever "
          "oneDNN's do not apply: GPU/TPU, several devices, not installed)."
      ),
  )
  parser.add_argument('--out', default='')
  parser.add_argument('--timeout', type=int, default=1800)
  parser.add_argument('--_part', default='', help=argparse.SUPPRESS)
  parser.add_argument('--_case', default='', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args._part:  # pylint: disable=protected-access
    args.case = json.loads(args._case)  # pylint: disable=protected-access
    print(json.dumps(CASES[args._part](args)))  # pylint: disable=protected-access
    return
  parts, records = args.parts.split(','), []
  unknown = sorted(set(parts) - set(PARTS))
  if unknown:
    parser.error(
        f'--parts={args.parts}: unknown {", ".join(unknown)}; give '
        f'any of {", ".join(PARTS)}.'
    )
  cases = PRESETS[args.preset]
  first = cases[0]

  def emit(record):
    records.append(record)
    print(json.dumps(record), flush=True)

  if 'step' in parts:
    for case in cases:
      emit(_spawn('step', case, args))
  if 'profile' in parts:
    for case in cases:
      emit(_spawn('profile', case, args))
  if 'augment' in parts:
    emit(_spawn('augment', first, args))
  if 'input' in parts:
    record = _spawn('input', first, args)
    step = next(
        (r for r in records if r.get('part') == 'step' and 'error' not in r),
        None,
    )
    if step and 'images_per_second' in record:
      record['step_demand_images_per_second'] = step['images_per_second']
      record['headroom'] = round(
          record['images_per_second'] / step['images_per_second'], 1
      )
    emit(record)
  if 'scaling' in parts:
    for n in (1, 2, 4, 8):
      record = _spawn('step', first, args, devices=n)
      record['part'] = 'scaling'
      emit(record)
  if 'torch' in parts and args.torch_python:
    for case in TORCH_CASES[args.preset]:
      emit(_torch_pair(case, args, records))
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(records, f, indent=1)


if __name__ == '__main__':
  main()
