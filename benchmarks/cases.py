"""The benchmark suite's measurements, each run in its own process by suite.py.

Each ``case_*`` function builds the real compiled train step (through
``ssl_jax.training.run``), the augmentation or the input pipeline of one case
``(method, encoder, image_size, batch_size, dtype)`` and returns its JSON
record.
"""

import os
import resource
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


def config_of(
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


def example_batch(config, rng, num_classes=10, channels=3):
  """A random global batch in the layout ``config.method`` trains on."""
  from ssl_jax import methods  # pylint: disable=g-import-not-at-top

  return methods.get(config.method).example_batch(
      config, rng, num_classes, channels
  )


def median(times):
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
  return 2 * n**3 / median(times), 'measured float32 2048^3 matmul'


def compile_step(config, num_classes=10, channels=3, mesh=None):
  """The compiled train step of ``config`` and its inputs.

  Args:
    config: the experiment config.
    num_classes: classes of the stand-in dataset.
    channels: image channels of the stand-in dataset.
    mesh: the device mesh (default: every device).

  Returns:
    ``(compiled step, state, batch, key, compile seconds)``.
  """
  import dataclasses  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from ssl_jax.training import run as run_lib  # pylint: disable=g-import-not-at-top

  run = run_lib.build(config, mesh=mesh)
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
      example_batch(config, np.random.default_rng(0), num_classes, channels),
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

  config = config_of(*args.case, args.cpu_convolutions)
  compiled, state, batch, key, compile_s = compile_step(config)
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
  med = median(times)
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

  config = config_of(*args.case, args.cpu_convolutions)
  views = (config.augment.view1, config.augment.view2)
  fn = jax.jit(lambda k, x: augment.make_views(k, x, views, config.image_size))
  x = jax.device_put(example_batch(config, np.random.default_rng(0))['image'])
  jax.block_until_ready(fn(jax.random.key(0), x))
  times = []
  for i in range(args.steps):
    t = time.perf_counter()
    jax.block_until_ready(fn(jax.random.key(i), x))
    times.append(time.perf_counter() - t)
  med = median(times)
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

  config = config_of(*args.case, args.cpu_convolutions)
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

  config = config_of(*args.case, args.cpu_convolutions)
  compiled, state, batch, key, _ = compile_step(config)
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
