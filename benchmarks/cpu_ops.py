"""The hand-written CPU ops against the library ops they replace, per train step.

  python benchmarks/cpu_ops.py --out=benchmarks/results/cpu_ops_COMMIT.json

Two hand-written ops replace library ops: oneDNN convolutions
(``models/conv.py``, ``models/onednn.py``; one-device CPU only) instead of
``lax.conv_general_dilated``, and the ConvNet's ``max_pool_2x2`` (a custom VJP
on every backend) instead of ``nn.max_pool``. Each stays only where it makes
the whole step faster, so this times the compiled train step of real configs
(at their encoder, widths, view size and dtype; the batch may be shrunk) with
each op switched back to the library's in turn:

* ``all``: both ops (``cpu_convolutions='onednn'``, as the CPU configs choose);
* ``no_onednn``: XLA's convolutions;
* ``flax_max_pool``: ``nn.max_pool``;
* ``library``: both library ops;
* ``ynnpack``: both ops, but XLA's default CPU options, which hand
  convolutions to YNNPACK (``conv.CPU_COMPILER_OPTIONS`` keeps them off it).

Each (case, variant) runs in its own one-device process, ``--rounds`` times in
alternation; the figure is the median step time over all rounds. Run by hand
on an otherwise idle machine, never as a timed test.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

VARIANTS = ('all', 'no_onednn', 'flax_max_pool', 'library', 'ynnpack')
# (name, config file, global batch): the CPU configs' steps and the ResNet-18
# recipe's at a CPU-sized batch.
CASES = (
    ('simclr_convnet_cpu', 'configs/simclr_cifar10_cpu.py', 256),
    ('supervised_convnet_cpu', 'configs/supervised_cifar10_cpu.py', 256),
    ('simclr_resnet18_cifar', 'configs/simclr_cifar10.py', 64),
)


def _switch(variant):
  """Puts the library ops back in place of the hand-written ones."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top

  from ssl_jax.models import conv  # pylint: disable=g-import-not-at-top
  from ssl_jax.models import convnet  # pylint: disable=g-import-not-at-top

  if variant in ('flax_max_pool', 'library'):
    convnet.max_pool_2x2 = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))
  if variant == 'ynnpack':
    conv.compiler_options = lambda mesh: None


def _measure(config_path, batch_size, variant, steps, warmup):
  """Times one compiled step in this process; returns its record."""
  sys.path.insert(0, ROOT)
  sys.path.insert(0, HERE)
  import importlib  # pylint: disable=g-import-not-at-top

  import cases  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top

  _switch(variant)
  module = 'ssl_jax.' + config_path[: -len('.py')].replace('/', '.')
  config = importlib.import_module(module).get_config()
  config.batch_size = batch_size
  config.cpu_convolutions = (
      'xla' if variant in ('no_onednn', 'library') else 'onednn'
  )
  compiled, state, batch, key, _ = cases.compile_step(config)
  text = compiled.as_text()
  times = []
  for i in range(warmup + steps):
    t = time.perf_counter()
    state, metrics = compiled(state, batch, key)
    jax.block_until_ready(metrics)
    if i >= warmup:
      times.append(time.perf_counter() - t)
  return {
      'step_seconds': times,
      'loss': float(metrics['loss']),
      'onednn_calls': text.count('custom_call_target="ssl_jax_onednn_conv'),
      'device_kind': jax.devices()[0].device_kind,
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--cases', default=','.join(c[0] for c in CASES))
  parser.add_argument('--variants', default=','.join(VARIANTS))
  parser.add_argument('--steps', type=int, default=6)
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--rounds', type=int, default=2)
  parser.add_argument('--out', default=None)
  parser.add_argument('--_run', default=None, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args._run:
    path, batch, variant = json.loads(args._run)
    print(json.dumps(_measure(path, batch, variant, args.steps, args.warmup)))
    return
  cases = {c[0]: c for c in CASES}
  for name in args.cases.split(','):
    if name not in cases:
      parser.error(
          f'--cases: unknown case {name!r}; choose from {sorted(cases)}'
      )
  variants = args.variants.split(',')
  for v in variants:
    if v not in VARIANTS:
      parser.error(f'--variants: unknown variant {v!r}; choose from {VARIANTS}')
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  env.pop('XLA_FLAGS', None)  # One device: the oneDNN path needs it.
  commit = subprocess.run(
      ['git', 'rev-parse', '--short', 'HEAD'],
      cwd=ROOT,
      capture_output=True,
      text=True,
      check=False,
  ).stdout.strip()
  records = []
  for name in args.cases.split(','):
    _, path, batch = cases[name]
    times = {v: [] for v in variants}
    extra = {}
    for r in range(args.rounds):
      for v in variants:
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                '--_run',
                json.dumps([path, batch, v]),
                f'--steps={args.steps}',
                f'--warmup={args.warmup}',
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        lines = [
            line for line in proc.stdout.splitlines() if line.startswith('{')
        ]
        if proc.returncode or not lines:
          sys.exit(f'{name}/{v} failed:\n{proc.stderr[-2000:]}')
        rec = json.loads(lines[-1])
        times[v] += rec.pop('step_seconds')
        extra[v] = rec
        print(
            f'{name} round {r + 1} {v}: '
            f'{sorted(times[v])[len(times[v]) // 2]:.3f} s',
            flush=True,
        )
    for v in variants:
      med = sorted(times[v])[len(times[v]) // 2]
      records.append({
          'case': name,
          'config': path,
          'batch_size': batch,
          'variant': v,
          'step_seconds_median': round(med, 4),
          'images_per_second': round(batch / med, 1),
          'samples': len(times[v]),
          'commit': commit,
          **extra[v],
      })
      print(json.dumps(records[-1]), flush=True)
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(records, f, indent=1)


if __name__ == '__main__':
  main()
