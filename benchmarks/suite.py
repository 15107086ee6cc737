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
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Dense bf16 / fp32 peak FLOP/s by device kind (datasheets, no sparsity).
PEAK_FLOPS = {
    'H100': {'bfloat16': 989e12, 'float32': 67e12},
    'H200': {'bfloat16': 989e12, 'float32': 67e12},
    'A100': {'bfloat16': 312e12, 'float32': 19.5e12},
    'TPU v4': {'bfloat16': 275e12, 'float32': 275e12 / 2},
    'TPU v5 lite': {'bfloat16': 197e12, 'float32': 197e12 / 2},
    'TPU v5p': {'bfloat16': 459e12, 'float32': 459e12 / 2},
}
METHODS = ('simclr', 'barlow_twins', 'supervised', 'deepcluster', 'fixmatch')
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
    # The figures issue 6 asks for on a GPU: ResNet-18 at 32 and 96 px,
    # ResNet-50 at 224 px, each in float32 and bfloat16.
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


def _config(
    method, encoder, image_size, batch_size, dtype, cpu_convolutions='xla'
):
  """The experiment config of a case: configs/default.py plus the case."""
  sys.path.insert(0, ROOT)
  from ssl_jax.configs import default  # pylint: disable=g-import-not-at-top

  c = default.get_config()
  c.method, c.encoder, c.image_size, c.batch_size = (
      method,
      encoder,
      image_size,
      batch_size,
  )
  c.dtype = dtype
  c.cpu_convolutions = cpu_convolutions
  c.dataset = 'stl10' if image_size > 32 else 'cifar10'
  c.model.cifar_stem = image_size <= 64
  c.fixmatch.mu = 2
  return c


def _batch(config, rng, num_classes=10, channels=3):
  """A random global batch in the layout ``config.method`` trains on."""
  from ssl_jax import methods  # pylint: disable=g-import-not-at-top

  return methods.get(config.method).example_batch(
      config, rng, num_classes, channels
  )


def _median(times):
  times = sorted(times)
  return times[len(times) // 2]


def _peak_flops(device, dtype):
  """The device's peak FLOP/s and where the figure comes from."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  for name, peaks in PEAK_FLOPS.items():
    if name.lower() in device.device_kind.lower():
      return peaks[dtype], f'datasheet {name} {dtype}'
  n = 2048
  a = jnp.ones((n, n), jnp.float32)
  mm = jax.jit(lambda x: x @ x)
  mm(a).block_until_ready()
  times = []
  for _ in range(5):
    t = time.perf_counter()
    mm(a).block_until_ready()
    times.append(time.perf_counter() - t)
  return 2 * n**3 / _median(times), 'measured float32 2048^3 matmul'


def _compile_step(config, num_classes=10, channels=3):
  """The compiled train step of ``config`` and its inputs, on all devices."""
  import dataclasses  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from ssl_jax.training import run as run_lib  # pylint: disable=g-import-not-at-top

  run = run_lib.build(config)
  if run.num_classes != num_classes or run.channels != channels:
    run = dataclasses.replace(
        run,
        model=run.method.build_model(run.config, num_classes),
        dataset=dict(run.dataset, num_classes=num_classes),
        channels=channels,
    )
  schedule, tx = run.optimizer(100)
  # A stand-in train split: methods size their extra state by its length.
  state = run.create_state(
      tx, jax.random.key(0), {'train': np.zeros(config.batch_size)}
  )
  step = run.compile_step(tx, schedule)
  batch = jax.device_put(
      _batch(config, np.random.default_rng(0), num_classes, channels),
      run.data_sharding,
  )
  key = run.replicate(jax.random.key(1))
  t = time.perf_counter()
  compiled = step.lower(state, batch, key).compile()
  return compiled, state, batch, key, time.perf_counter() - t


def case_step(args):
  """Times one train step case; returns its JSON record."""
  import jax  # pylint: disable=g-import-not-at-top

  from ssl_jax import methods  # pylint: disable=g-import-not-at-top

  config = _config(*args.case, args.cpu_convolutions)
  compiled, state, batch, key, compile_s = _compile_step(config)
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  # XLA counts the FLOPs of one device's program; the step runs on all.
  flops = float((cost or {}).get('flops', 0.0)) * jax.device_count()
  times = []
  for i in range(args.warmup + args.steps):
    t = time.perf_counter()
    state, metrics = compiled(state, batch, key)
    jax.block_until_ready(metrics)
    if i >= args.warmup:
      times.append(time.perf_counter() - t)
  med = _median(times)
  device = jax.devices()[0]
  peak, peak_source = _peak_flops(device, config.dtype)
  images, views = methods.get(config.method).images_per_step(config)
  stats = device.memory_stats() or {}
  return {
      'part': 'step',
      'method': config.method,
      'encoder': config.encoder,
      'image_size': config.image_size,
      'batch_size': config.batch_size,
      'dtype': config.dtype,
      'devices': jax.device_count(),
      'device_kind': device.device_kind,
      'compile_seconds': round(compile_s, 2),
      'step_seconds_median': round(med, 5),
      'images_per_second': round(images / med, 1),
      'views_per_second': round(views / med, 1),
      # XLA's cost analysis does not count custom calls: where this is > 0,
      # FLOPs and MFU below leave out the oneDNN convolutions.
      'onednn_convolutions': (
          compiled.as_text().count('custom_call_target="ssl_jax_onednn_conv')
      ),
      'gflops_per_step': round(flops / 1e9, 2),
      'achieved_tflops': round(flops / med / 1e12, 4),
      # On CPU the measured peak is the whole host's (fake devices share it).
      'mfu': round(
          flops
          / med
          / peak
          / (1 if device.platform == 'cpu' else jax.device_count()),
          4,
      ),
      'peak_flops_source': peak_source,
      'peak_host_memory_mb': round(
          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
      ),
      'peak_device_memory_mb': round(stats.get('peak_bytes_in_use', 0) / 2**20),
      'loss': float(metrics['loss']),
  }


def case_augment(args):
  """Augmentation alone (two SimCLR views), microseconds per image."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from ssl_jax.data import augment  # pylint: disable=g-import-not-at-top

  config = _config(*args.case, args.cpu_convolutions)
  views = (config.augment.view1, config.augment.view2)
  fn = jax.jit(lambda k, x: augment.make_views(k, x, views, config.image_size))
  x = jax.device_put(_batch(config, np.random.default_rng(0))['image'])
  jax.block_until_ready(fn(jax.random.key(0), x))
  times = []
  for i in range(args.steps):
    t = time.perf_counter()
    jax.block_until_ready(fn(jax.random.key(i), x))
    times.append(time.perf_counter() - t)
  med = _median(times)
  return {
      'part': 'augment',
      'image_size': config.image_size,
      'batch_size': config.batch_size,
      'microseconds_per_image': round(med / config.batch_size * 1e6, 2),
      'images_per_second': round(config.batch_size / med, 1),
  }


def case_input(args):
  """The host input pipeline alone: cached split -> sharded global batches."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from ssl_jax.data import batching  # pylint: disable=g-import-not-at-top,g-multiple-import
  from ssl_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top,g-multiple-import
  from ssl_jax.training import step as step_lib  # pylint: disable=g-import-not-at-top,g-multiple-import

  config = _config(*args.case, args.cpu_convolutions)
  rng = np.random.default_rng(0)
  s = config.image_size
  split = input_pipeline.Split(
      'synthetic',
      [],
      rng.integers(0, 256, (20 * config.batch_size, s, s, 3), dtype=np.uint8),
      rng.integers(0, 10, (20 * config.batch_size,), dtype=np.int32),
  )
  sharding = jax.sharding.NamedSharding(
      step_lib.make_mesh(), jax.sharding.PartitionSpec('data')
  )
  batches = batching.train_batches(
      split,
      seed=0,
      batch_size=config.batch_size,
      start_step=0,
      sharding=sharding,
      prefetch=2,
  )
  jax.block_until_ready(next(batches))
  n = max(args.steps, 10)
  t = time.perf_counter()
  for _ in range(n):
    jax.block_until_ready(next(batches))
  elapsed = time.perf_counter() - t
  batches.close()
  return {
      'part': 'input',
      'image_size': s,
      'batch_size': config.batch_size,
      'images_per_second': round(n * config.batch_size / elapsed, 1),
  }


def case_profile(args):
  """Per-op time of a few traced steps (``op_profile.summarise``)."""
  import tempfile  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top
  import op_profile  # pylint: disable=g-import-not-at-top

  config = _config(*args.case, args.cpu_convolutions)
  compiled, state, batch, key, _ = _compile_step(config)
  for _ in range(max(args.warmup, 1)):
    state, metrics = compiled(state, batch, key)
  jax.block_until_ready(metrics)
  steps = min(args.steps, 3)
  with tempfile.TemporaryDirectory(prefix='ssl_jax_trace_') as tmp:
    log_dir = args.trace_dir or tmp  # Without --trace_dir, deleted after.
    with jax.profiler.trace(log_dir, create_perfetto_trace=True):
      t = time.perf_counter()
      for _ in range(steps):
        state, metrics = compiled(state, batch, key)
      jax.block_until_ready(metrics)
      wall_ms = (time.perf_counter() - t) * 1e3 / steps
    summary = op_profile.summarise(op_profile.read_trace(log_dir), steps)
  return dict(
      {
          'part': 'profile',
          'method': config.method,
          'encoder': config.encoder,
          'image_size': config.image_size,
          'batch_size': config.batch_size,
          'dtype': config.dtype,
          'device_kind': jax.devices()[0].device_kind,
          'traced_steps': steps,
          'wall_ms_per_step': round(wall_ms, 1),
          'trace_dir': args.trace_dir or None,
      },
      **summary,
  )


CASES = {
    'step': case_step,
    'augment': case_augment,
    'input': case_input,
    'profile': case_profile,
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
    ref['images_per_second'] = _median(theirs)
    ref['jax_images_per_second'] = _median(ours)
    ref['jax_over_torch'] = round(_median(ours) / _median(theirs), 2)
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
      choices=('xla', 'onednn'),
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
