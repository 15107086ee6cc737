"""Every committed config loads, validates, compiles and trains finite steps.

Each experiment config in ``configs/`` runs two jit-compiled train steps at its
own image size, training-view size, encoder, widths and dtype on random images;
only the global batch is shrunk (to 2, on one device: the smallest batch every
batch-normalising loss accepts) and the dataset replaced by random uint8 images
of the dataset's shape, through the same compiled step the benchmarks time
(``benchmarks/suite.py``). Sharding over several devices is the business of
``test_methods.py`` and ``test_train_step.py``; here one device keeps the
real-shape compute of the largest recipes to a quarter. The ImageNet recipes
run the same check from an ImageNet-layout folder in
``test_imagenet_configs.py``. New config files are picked up without editing
this test.
"""

import importlib
import os
import sys

import jax
import numpy as np
import pytest

from ssl_jax import methods
from ssl_jax.configs import default
from ssl_jax.configs.evals import default as evals_default
from ssl_jax.data import input_pipeline
from ssl_jax.training import step as step_lib
from ssl_jax.training import validate
from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))
import cases  # noqa: E402  # pylint: disable=g-import-not-at-top,wrong-import-position

# Modules in configs/ that are not experiments: shared pieces.
_NOT_EXPERIMENTS = ('__init__', 'default', 'cifar10_cpu_common', 'recipe_parts')
# Two images: Barlow Twins and VICReg normalise over the batch.
_BATCH = 2


def _modules(folder, skip):
  names = sorted(
      f[:-3]
      for f in os.listdir(os.path.join(ROOT, folder))
      if f.endswith('.py') and f[:-3] not in skip
  )
  return [f'{folder.replace("/", ".")}.{n}' for n in names]


EXPERIMENTS = _modules('ssl_jax/configs', _NOT_EXPERIMENTS)
# The ImageNet recipes train at their real shapes from a folder, through their
# data path, in test_imagenet_configs.py: compiled once there, not here too.
ON_RANDOM_BATCHES = [m for m in EXPERIMENTS if 'imagenet' not in m]
EVALS = _modules('ssl_jax/configs/evals', ('__init__',)) + _modules(
    'ssl_jax/configs/transfer', ('__init__', 'common')
)


def test_every_experiment_config_is_covered():
  # The list is read from the folder; this guards the reading itself.
  assert len(EXPERIMENTS) >= 17
  for method in methods.METHODS:
    assert any(method in name for name in EXPERIMENTS), method


@pytest.mark.slow
@pytest.mark.parametrize('module', ON_RANDOM_BATCHES)
def test_config_trains_two_finite_steps_under_jit(module, tmp_path):
  config = importlib.import_module(module).get_config()
  if config.dataset == 'folder':  # A folder of the config's kind of images.
    d = config.data
    config.data_dir = helpers.make_folder(
        tmp_path,
        splits=((d.train_split, 3, 8), (d.probe_test_split, 3, 4)),
        size=40,
    )
  validate.check_fields(config, default.get_config())
  validate.validate(config, jax.device_count())
  mesh = step_lib.make_mesh(jax.devices()[:1])
  config.batch_size = _BATCH  # Shapes as real but the batch.
  validate.validate(config, mesh.size)
  info = input_pipeline.dataset_info(config.dataset, config.data_dir)
  shape = dict(
      num_classes=info['num_classes'],
      channels=config.data.channels or info['image_shape'][-1],
  )
  # The benchmarks' step: the one train.py compiles, on random uint8 batches.
  step, state, batch, key, _ = cases.compile_step(config, **shape, mesh=mesh)
  params0 = jax.device_get(state.params)
  sharding = jax.sharding.NamedSharding(mesh, step_lib.P('data'))
  rng = np.random.default_rng(1)
  for _ in range(2):
    state, metrics = step(state, batch, key)
    batch = jax.device_put(cases.example_batch(config, rng, **shape), sharding)
    metrics = jax.device_get(metrics)
    for name in ('loss', 'grad_norm', 'param_norm'):
      assert np.isfinite(metrics[name]), (module, name, metrics[name])
    assert not metrics['nonfinite'], module
  assert int(state.step) == 2
  assert metrics['grad_norm'] > 0, module
  moved = jax.tree.map(
      lambda a, b: float(np.abs(a - b).max()),
      jax.device_get(state.params),
      params0,
  )
  assert max(jax.tree.leaves(moved)) > 0, module
  # Every parameter is finite after the two updates.
  assert all(
      np.isfinite(x).all()
      for x in jax.tree.leaves(jax.device_get(state.params))
  ), module


@pytest.mark.parametrize('module', EVALS)
def test_eval_config_has_the_default_fields(module):
  evals = importlib.import_module(module).get_config()
  config = default.get_config()
  config.evals = evals
  validate.check_fields(config, default.get_config())
  assert set(evals.keys()) == set(evals_default.get_config().keys())
