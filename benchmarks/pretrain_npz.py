"""Pretrains on CIFAR-10 read straight from the JPEG npz, then linear-probes.

  python benchmarks/pretrain_npz.py --npz=../shared/data/cifar10_jpeg_q75.npz \
      --config=configs/simclr_cifar10.py --config.num_epochs=30 \
      --config.optimizer.warmup_epochs=3 --config.dtype=bfloat16 --out=/tmp/gpu

For accelerator images without a prepared tfds dataset (or the TensorFlow
that tfds' builders need): the same compiled step
(``ssl_jax.training.step``), input pipeline batches, LR schedule and linear
probe as ``main.py``, but the data come from the npz (decoded once with PIL, as ``prepare_data`` does) and the
log goes to stdout and ``--out/results.json`` instead of TensorBoard. No
checkpoints: it is a measurement, not a resumable run.
"""

import io
import json
import os
import sys
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ssl_jax.data import batching  # pylint: disable=g-import-not-at-top,wrong-import-position
from ssl_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from ssl_jax.evaluation import probe  # pylint: disable=g-import-not-at-top,wrong-import-position
from ssl_jax.methods import base  # pylint: disable=g-import-not-at-top,wrong-import-position
from ssl_jax.training import run as run_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file.')
_NPZ = flags.DEFINE_string('npz', None, 'The CIFAR-10 JPEG npz.')
_OUT = flags.DEFINE_string('out', '', 'Directory for results.json.')


def load_npz(path: str) -> dict[str, input_pipeline.Split]:
  """The train and test splits of the npz, decoded to uint8 arrays."""
  splits = {}
  with np.load(path, allow_pickle=False) as npz:
    for name in ('train', 'test'):
      jpeg, offsets = npz[f'{name}_jpeg'], npz[f'{name}_offsets']
      images = np.stack([
          np.asarray(
              Image.open(
                  io.BytesIO(jpeg[offsets[i] : offsets[i + 1]].tobytes())
              ).convert('RGB')
          )
          for i in range(len(offsets) - 1)
      ])
      splits[name] = input_pipeline.Split(
          name, [], images, npz[f'{name}_label'].astype(np.int32)
      )
  return splits


def main(_):
  config = _CONFIG.value
  start = time.time()
  data = load_npz(_NPZ.value)
  print(
      f'decoded {len(data["train"])}+{len(data["test"])} images in '
      f'{time.time() - start:.1f}s',
      flush=True,
  )
  run = run_lib.build(config)
  method = run.method
  if (
      method.prepare_data is not base.train_split_only
      or method.train_batches is not base.shuffled_batches
      or method.epoch_start is not None
  ):
    sys.exit(
        f'pretrain_npz.py: method={config.method!r} brings its own data or '
        'epoch hooks; train it with main.py.'
    )
  mesh, model = run.mesh, run.model
  steps_per_epoch = method.steps_per_epoch(config, {'train': data['train']})
  num_steps = int(config.num_epochs * steps_per_epoch)
  schedule, tx = run.optimizer(steps_per_epoch)
  state = run.create_state(tx, jax.random.key(config.seed), data)
  step_fn = run.compile_step(tx, schedule)
  key = run.replicate(jax.random.key(config.seed + 1))
  sharding = run.data_sharding
  batches = batching.train_batches(
      data['train'],
      seed=config.seed,
      batch_size=config.batch_size,
      start_step=0,
      sharding=sharding,
      prefetch=4,
  )
  log, timed_from = [], None
  train_start = time.time()
  for i in range(num_steps):
    state, metrics = step_fn(state, next(batches), key)
    if i == 0:
      jax.block_until_ready(state)
      timed_from = (1, time.time())
      print(
          f'compiled and ran step 1 in {time.time() - train_start:.1f}s',
          flush=True,
      )
    if (i + 1) % config.log_every_steps == 0 or i + 1 == num_steps:
      m = {k: float(v) for k, v in jax.device_get(metrics).items()}
      rate = (
          (i + 1 - timed_from[0])
          * config.batch_size
          / max(time.time() - timed_from[1], 1e-9)
      )
      log.append(
          dict(
              step=i + 1,
              epoch=(i + 1) / steps_per_epoch,
              images_per_second=rate,
              **m,
          )
      )
      print(
          f'step {i + 1}/{num_steps} epoch {(i + 1) / steps_per_epoch:.1f} '
          f'loss {m["loss"]:.4f} {rate:.0f} img/s',
          flush=True,
      )
  batches.close()
  jax.block_until_ready(state)
  train_seconds = time.time() - train_start
  variables = method.eval_variables(state)
  fit = probe.probe_encoder(
      model,
      variables,
      train_split=data['train'],
      test_split=data['test'],
      config=config,
      mesh=mesh,
      num_classes=10,
  )
  results = {
      'device_kind': jax.devices()[0].device_kind,
      'devices': jax.device_count(),
      'method': config.method,
      'encoder': config.encoder,
      'dtype': config.dtype,
      'cpu_convolutions': run.config.cpu_convolutions,
      'batch_size': config.batch_size,
      'epochs': config.num_epochs,
      'steps': num_steps,
      'train_seconds': train_seconds,
      'train_images_per_second': log[-1]['images_per_second'],
      'linear_probe/test_accuracy': fit['linear_probe/test_accuracy'],
      'linear_probe/l2': fit['linear_probe/l2'],
      'wall_seconds': time.time() - start,
      'config': config.to_dict(),
      'log': log,
  }
  print(json.dumps({k: v for k, v in results.items() if k != 'log'}))
  if _OUT.value:
    os.makedirs(_OUT.value, exist_ok=True)
    with open(os.path.join(_OUT.value, 'results.json'), 'w') as f:
      json.dump(results, f, indent=1)


if __name__ == '__main__':
  flags.mark_flags_as_required(['config', 'npz'])
  app.run(main)
