"""The ImageNet recipes: each names its reference and trains from a folder.

Each ImageNet config in ``configs/`` validates as it is on a folder in
ImageNet's layout (``train/<wnid>/``, ``val/<wnid>/``, mixed-size JPEGs: 3
classes, or all of ImageNet-100's and one more for the ImageNet-100 recipes),
then runs two jit-compiled train steps
through the path ``train.train_and_evaluate`` takes (its data read with host
random-resized crops, its optimiser, its compiled step) at the recipe's own
view sizes, with the global batch shrunk to 2 images on one device. This is
these recipes' real-shape check; ``test_configs.py`` leaves them to it.
"""

import importlib
import os
import re

import jax
import numpy as np
from PIL import Image
import pytest

from ssl_jax.configs import default
from ssl_jax.data import imagenet
from ssl_jax.training import run as run_lib
from ssl_jax.training import step as step_lib
from ssl_jax.training import validate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(
    f[:-3]
    for f in os.listdir(os.path.join(ROOT, 'ssl_jax', 'configs'))
    if 'imagenet' in f and f.endswith('.py')
)
# The first lines of a recipe's docstring: 'Reference: owner/repo, file ...
# @ commit.' (the commit as recipes.md's table of references gives it).
REFERENCE = re.compile(
    r'^Reference: (?P<repo>[\w.-]+/[\w.-]+), (?P<file>\S+).* @ '
    r'(?P<commit>[0-9a-f]{12,40})\.$',
    re.M,
)
# A wnid that is not in ImageNet-100 (ImageNet's 'goldfish').
OTHER = 'n01443537'


def _reference_commits():
  """``{repository: commit}`` from docs/recipes.md's table of references."""
  with open(os.path.join(ROOT, 'docs', 'recipes.md')) as f:
    text = f.read()
  rows = re.findall(
      r'^\| \[([\w.-]+/[\w.-]+)\]\(\S+\) \| `([0-9a-f]{40})` \|', text, re.M
  )
  return dict(rows)


def _config(name):
  return importlib.import_module(f'ssl_jax.configs.{name}').get_config()


def _imagenet_folder(root, wnids, per_class):
  """Mixed-size JPEGs: ``per_class`` per class in train/, 1 in val/."""
  rng = np.random.default_rng(0)
  for split, count in (('train', per_class), ('val', 1)):
    for k, wnid in enumerate(wnids):
      os.makedirs(os.path.join(root, split, wnid))
      for i in range(count):
        h, w = rng.integers(70, 160, 2)
        small = rng.normal(
            60 + 120 * k / len(wnids), 40, (h // 8 + 2, w // 8 + 2, 3)
        )
        img = Image.fromarray(small.clip(0, 255).astype(np.uint8))
        img.resize((int(w), int(h)), Image.BICUBIC).save(
            os.path.join(root, split, wnid, f'{i}.JPEG'), quality=90
        )
  return str(root)


def test_the_recipes_are_found():
  assert CONFIGS == [
      'byol_imagenet',
      'byol_imagenet100',
      'dino_vit_imagenet',
      'moco_v3_imagenet100',
      'simclr_imagenet',
  ]


@pytest.mark.parametrize('name', CONFIGS)
def test_docstring_names_its_reference_and_command(name):
  doc = importlib.import_module(f'ssl_jax.configs.{name}').__doc__
  found = REFERENCE.search(doc)
  assert found, f'{name}: no "Reference: owner/repo, file @ commit." line'
  commits = _reference_commits()
  assert found['repo'] in commits, (name, found['repo'], sorted(commits))
  assert commits[found['repo']].startswith(found['commit']), name
  assert f'python main.py --config=configs/{name}.py' in doc
  assert '--config.data_dir=DIR' in doc


@pytest.mark.parametrize('name', CONFIGS)
def test_reads_imagenet_as_its_reference(name):
  c = _config(name)
  assert (c.dataset, c.data.train_split) == ('folder', 'train')
  assert (c.data.probe_train_split, c.data.probe_test_split) == ('train', 'val')
  assert c.data.channels == 3 and c.data.host_crop is True
  assert not c.model.cifar_stem and c.image_size == 224
  assert c.data.eval_crop_fraction == 0.875  # Resize 256, centre crop 224.
  assert c.data.classes == ('imagenet100' if '100' in name else '')
  assert c.optimizer.warmup_epochs < c.num_epochs


@pytest.mark.slow
@pytest.mark.parametrize('name', CONFIGS)
def test_trains_two_steps_from_an_imagenet_folder(name, tmp_path):
  config = _config(name)
  assert OTHER not in imagenet.IMAGENET100
  if config.data.classes:  # The subset, and a class it leaves out.
    wnids, per_class = imagenet.IMAGENET100 + (OTHER,), 1
  else:
    wnids, per_class = imagenet.IMAGENET100[:2] + (OTHER,), 8
  config.data_dir = _imagenet_folder(tmp_path / 'inet', wnids, per_class)
  num_classes = len(wnids) - 1 if config.data.classes else len(wnids)
  validate.check_fields(config, default.get_config())
  validate.validate(config, jax.device_count())  # As committed.
  # Shapes as real but the batch: 2 images on one device.
  config.batch_size = 2
  config.data.workers = 1
  mesh = step_lib.make_mesh(jax.devices()[:1])
  validate.validate(config, mesh.size)
  run = run_lib.build(config, mesh=mesh)
  assert run.host_crop and run.num_classes == num_classes
  method = run.method
  data = method.prepare_data(config, run.load_train(), run.load)
  steps_per_epoch = method.steps_per_epoch(config, data)
  schedule, tx = run.optimizer(steps_per_epoch)
  state = run.create_state(tx, jax.random.key(0), data)
  params0 = jax.device_get(state.params)
  step = run.compile_step(tx, schedule)
  batches = method.train_batches(
      state=state,
      start_step=0,
      config=config,
      data=data,
      sharding=run.data_sharding,
  )
  key = run.replicate(jax.random.key(1))
  try:
    for _ in range(2):
      batch = next(batches)
      crops = batch['crops']
      assert len(crops) == len(method.host_views(config))
      assert crops[0].shape == (config.batch_size, 224, 224, 3)
      assert crops[0].dtype == np.uint8
      state, metrics = step(state, batch, key)
      metrics = jax.device_get(metrics)
      for field in ('loss', 'grad_norm', 'param_norm'):
        assert np.isfinite(metrics[field]), (name, field, metrics[field])
      assert not metrics['nonfinite'], name
  finally:
    batches.close()
  assert int(state.step) == 2
  moved = jax.tree.map(
      lambda a, b: float(np.abs(a - b).max()),
      jax.device_get(state.params),
      params0,
  )
  assert max(jax.tree.leaves(moved)) > 0, name
