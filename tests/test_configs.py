"""Every committed config loads, validates, compiles and trains finite steps.

Each experiment config in ``configs/`` runs two jit-compiled train steps at its
own image size, training-view size, encoder, widths and dtype on random images;
only the global batch is shrunk (to the 8 test devices) and the dataset
replaced by random uint8 images of the dataset's shape. New config files are
picked up without editing this test.
"""

import importlib
import os

import jax
import numpy as np
import pytest

from configs import default
from configs.evals import default as evals_default
from ssl_jax import input_pipeline
from ssl_jax import methods
from ssl_jax import optim
from ssl_jax import step as step_lib
from ssl_jax import validate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Modules in configs/ that are not experiments: shared pieces.
_NOT_EXPERIMENTS = ('__init__', 'default', 'cifar10_cpu_common')


def _modules(folder, skip):
  names = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, folder))
                 if f.endswith('.py') and f[:-3] not in skip)
  return [f'{folder.replace("/", ".")}.{n}' for n in names]


EXPERIMENTS = _modules('configs', _NOT_EXPERIMENTS)
EVALS = (_modules('configs/evals', ('__init__',))
         + _modules('configs/transfer', ('__init__', 'common')))


def test_every_experiment_config_is_covered():
  # The list is read from the folder; this guards the reading itself.
  assert len(EXPERIMENTS) >= 17
  for method in methods.METHODS:
    assert any(method in name for name in EXPERIMENTS), method


def _batch(config, rng, channels, num_classes):
  b, s = config.batch_size, config.image_size
  images = lambda n: rng.integers(0, 256, (n, s, s, channels), dtype=np.uint8)
  labels = lambda n: rng.integers(0, num_classes, (n,), dtype=np.int32)
  batch = {'image': images(b), 'label': labels(b)}
  if config.method == 'fixmatch':
    n = config.fixmatch.mu * b
    batch.update(unlabelled_image=images(n), unlabelled_label=labels(n))
  if config.method == 'deepcluster':
    batch['pseudo_label'] = labels(b) % config.deepcluster.num_clusters
  return batch


@pytest.mark.parametrize('module', EXPERIMENTS)
def test_config_trains_two_finite_steps_under_jit(module):
  config = importlib.import_module(module).get_config()
  validate.check_fields(config, default.get_config())
  validate.validate(config, jax.device_count())
  full_batch = config.batch_size
  config.batch_size = jax.device_count()  # 1 image per device; shapes as real.
  validate.validate(config, jax.device_count())
  info = input_pipeline.DATASETS[config.dataset]
  channels = config.data.channels or info['image_shape'][-1]
  method = methods.get(config.method)
  mesh = step_lib.make_mesh()
  model = method.build_model(config, info['num_classes'])
  steps_per_epoch = 50  # Only the LR schedule's shape depends on it.
  schedule = optim.learning_rate_schedule(config, steps_per_epoch)
  tx = optim.make_optimizer(config, schedule)
  # The methods' own state sees a train split of one real global batch.
  fake_data = {'train': np.zeros(full_batch),
               'labelled': np.zeros(full_batch),
               'unlabelled': np.zeros(full_batch)}
  state = step_lib.replicate(step_lib.create_state(
      config, model, tx, jax.random.key(0), channels, fake_data), mesh)
  params0 = jax.device_get(state.params)
  step = step_lib.compile_train_step(config, model, tx, schedule, mesh)
  sharding = jax.sharding.NamedSharding(mesh, step_lib.P('data'))
  key = step_lib.replicate(jax.random.key(1), mesh)
  rng = np.random.default_rng(0)
  for _ in range(2):
    batch = jax.device_put(
        _batch(config, rng, channels, info['num_classes']), sharding)
    state, metrics = step(state, batch, key)
    metrics = jax.device_get(metrics)
    for name in ('loss', 'grad_norm', 'param_norm'):
      assert np.isfinite(metrics[name]), (module, name, metrics[name])
    assert not metrics['nonfinite'], module
  assert int(state.step) == 2
  assert metrics['grad_norm'] > 0, module
  moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()),
                       jax.device_get(state.params), params0)
  assert max(jax.tree.leaves(moved)) > 0, module
  # Every parameter is finite after the two updates.
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(
      jax.device_get(state.params))), module


@pytest.mark.parametrize('module', EVALS)
def test_eval_config_has_the_default_fields(module):
  evals = importlib.import_module(module).get_config()
  config = default.get_config()
  config.evals = evals
  validate.check_fields(config, default.get_config())
  assert set(evals.keys()) == set(evals_default.get_config().keys())
