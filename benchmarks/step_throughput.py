"""Prints the steady-state train-step throughput of a config as JSON.

  python benchmarks/step_throughput.py --config=configs/simclr_cifar10_cpu.py \
      --steps=10 [--config.batch_size=128]

Random uint8 images, so no dataset is needed; the step includes on-device
augmentation. Median over ``--steps`` steps after one compiling step.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ssl_jax import input_pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from ssl_jax import methods  # pylint: disable=g-import-not-at-top,wrong-import-position
from ssl_jax import optim  # pylint: disable=g-import-not-at-top,wrong-import-position
from ssl_jax import train  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file.')
_STEPS = flags.DEFINE_integer('steps', 10, 'Timed steps.')


def main(_):
  config = _CONFIG.value
  info = input_pipeline.DATASETS[config.dataset]
  mesh = train.make_mesh()
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  data = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
  model = methods.get(config.method).build_model(config, info['num_classes'])
  schedule = optim.learning_rate_schedule(config, 100)
  tx = optim.make_optimizer(config, schedule)
  state = jax.device_put(train.create_state(
      config, model, tx, jax.random.key(0), info['image_shape'][-1]), replicated)
  step = train.compile_train_step(config, model, tx, schedule, mesh)
  rng = np.random.default_rng(0)
  batch = {
      'image': rng.integers(0, 256, (config.batch_size,) + info['image_shape'],
                            dtype=np.uint8),
      'label': rng.integers(0, info['num_classes'], (config.batch_size,),
                            dtype=np.int32)}
  batch = jax.device_put(batch, data)
  key = jax.device_put(jax.random.key(1), replicated)
  t = time.time()
  state, m = step(state, batch, key)
  jax.block_until_ready(m)
  compile_s = time.time() - t
  times = []
  for _ in range(_STEPS.value):
    t = time.time()
    state, m = step(state, batch, key)
    jax.block_until_ready(m)
    times.append(time.time() - t)
  med = float(np.median(times))
  print(json.dumps({
      'method': config.method, 'encoder': config.encoder,
      'image_size': config.image_size, 'batch_size': config.batch_size,
      'devices': jax.device_count(), 'backend': jax.default_backend(),
      'first_step_seconds': round(compile_s, 2),
      'step_seconds_median': round(med, 4),
      'images_per_second': round(config.batch_size / med, 1),
      'views_per_second': round(2 * config.batch_size / med, 1)}))


if __name__ == '__main__':
  app.run(main)
