"""Our side of the step-parity cases: configs, state, views and replay.

Torch-free, so that ``tests/test_step_parity.py`` replays the fixtures that
``benchmarks/parity/step_parity.py`` writes without torch. A case is one of
our ``<method>_cifar10`` configs shrunk to a small ConvNet, batch 8 and 16 px
views; the fixture keeps the config values that define the step (see
:func:`pinned`), so later edits of the configs do not change a fixture's
meaning.
"""

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssl_jax.configs import default
from ssl_jax.training import run as run_lib

METHODS = ('simclr', 'byol', 'barlow_twins', 'vicreg', 'moco_v3', 'dino')
STEPS = 3  # Optimiser steps compared.
STEPS_PER_EPOCH = 2  # With 2 epochs the schedules span 4 steps, so they move.
BATCH = 8
SIDE = 16  # Global views.
LOCAL_SIDE = 8  # DINO's local crops.
NUM_LOCAL = 2
WIDTH = 32  # Hidden widths of every head.
OUT = 16  # Projection width (DINO: the bottleneck).
PROTOTYPES = 64  # DINO's K.
CHANNELS = 3
# Values that are 0 in exact arithmetic, so both sides hold rounding noise
# (~1e-8) that no relative tolerance can compare: the tests check that they
# stay near 0 instead.
ZERO_IN_EXACT_ARITHMETIC = {
    # The predictor's first BatchNorm (after a bias-free Dense) removes any
    # constant added to its input: the projector's output bias gets no
    # gradient.
    'byol': ('params/projector/Dense_1/bias', 'target/projector/Dense_1/bias'),
    # The loss standardises each dimension over the batch: same.
    'barlow_twins': ('params/projector/Dense_2/bias',),
    # Invariance (view differences), variance and covariance (centred) are
    # all blind to a shift shared by both views: same.
    'vicreg': ('params/projector/Dense_2/bias',),
    # The predictor's input is the affine-free output BatchNorm's, zero-mean
    # per dimension; through a bias-free Dense its batch mean stays 0.
    'moco_v3': ('batch_stats/predictor/BatchNorm_0/mean',),
}
DATASET = {'num_classes': 10, 'image_shape': (32, 32, CHANNELS)}
FIXTURES = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), '..', '..', 'tests', 'fixtures'
)
# The config values that define a parity step; a fixture stores them.
PINNED = (
    'method',
    'encoder',
    'model',
    'projector',
    'optimizer',
    'learning_rate',
    'batch_size',
    'image_size',
    'num_epochs',
    'temperature',
    'online_probe',
    'dtype',
    'cpu_convolutions',
    'augment.train_size',
    'byol',
    'moco_v3',
    'barlow',
    'vicreg',
    'dino',
)


def fixture_path(method: str) -> str:
  """``tests/fixtures/parity_<method>.npz``."""
  return os.path.join(FIXTURES, f'parity_{method}.npz')


def shrunk_config(method: str) -> ml_collections.ConfigDict:
  """``ssl_jax/configs/<method>_cifar10.py`` at the parity shape.

  The recipe's loss and momentum settings, weight decay and LARS clip stay;
  the shape shrinks (a ConvNet of widths 8-8-16-16, batch 8, 16 px views,
  heads 32 wide; DINO: 2 local crops of 8 px, 64 prototypes); LARS is
  solo-learn's (``lars_variant='solo_learn'``) with trust coefficient 0.02
  (its CIFAR recipes'); the LR is the recipe's at batch 256, without warm-up
  (so every step moves); DINO freezes its prototypes for the first epoch
  (its recipe's 1); there is no online probe (lightly's models have none).

  Args:
    method: one of :data:`METHODS`.

  Returns:
    The config.
  """
  module = __import__(f'ssl_jax.configs.{method}_cifar10', fromlist=['x'])
  c = module.get_config()
  c.encoder = 'convnet'
  c.model.conv_widths = (8, 8, 16, 16)
  c.model.dense = 0
  c.image_size = SIDE
  c.augment.train_size = 0
  c.batch_size = BATCH
  c.num_epochs = 2
  c.cpu_convolutions = 'xla'
  c.dtype = 'float32'
  c.online_probe = False
  c.optimizer.warmup_epochs = 0
  c.optimizer.lr_scaling = 'none'
  if c.optimizer.name != 'lars':
    raise ValueError(f'{method}: parity runs LARS, got {c.optimizer.name}.')
  c.optimizer.lars_variant = 'solo_learn'
  c.optimizer.trust_coefficient = 0.02
  c.projector.hidden_dims = (WIDTH,) * len(c.projector.hidden_dims)
  c.projector.out_dim = OUT
  for section in ('byol', 'moco_v3'):
    p = c[section]
    p.predictor_hidden_dims = (WIDTH,) * len(p.predictor_hidden_dims)
  c.dino.hidden_dims = (WIDTH,) * len(c.dino.hidden_dims)
  c.dino.bottleneck_dim = OUT
  c.dino.out_dim = PROTOTYPES
  c.dino.num_local_crops = NUM_LOCAL
  c.dino.local_size = LOCAL_SIDE
  # DINO's recipe: the prototypes frozen for the first epoch (2 of 3 steps).
  c.dino.freeze_last_layer_epochs = 1.0
  return c


def pinned(config: ml_collections.ConfigDict) -> str:
  """The :data:`PINNED` values of ``config`` as JSON."""
  out = {}
  for name in PINNED:
    node = config
    for part in name.split('.'):
      node = node[part]
    out[name] = (
        node.to_dict() if isinstance(node, ml_collections.ConfigDict) else node
    )
  return json.dumps(out)


def _assign(node, key, value):
  if isinstance(value, dict):
    for k, v in value.items():
      _assign(node[key], k, v)
    return
  if isinstance(value, list):  # JSON has no tuples.
    value = tuple(value)
  node[key] = value


def config_from(pinned_json: str) -> ml_collections.ConfigDict:
  """The default config with a fixture's pinned values.

  Args:
    pinned_json: :func:`pinned`'s string.

  Returns:
    The config of the fixture's step.
  """
  c = default.get_config()
  for name, value in json.loads(pinned_json).items():
    *path, leaf = name.split('.')
    node = c
    for part in path:
      node = node[part]
    _assign(node, leaf, value)
  return c


def build(config: ml_collections.ConfigDict):
  """Builds a case as ``ssl_jax.training`` builds a run.

  Args:
    config: the case's config.

  Returns:
    ``(run, state at step 0, compiled step, LR schedule, optimiser)``.
  """
  run = run_lib.build(config, dataset=DATASET)
  schedule, tx = run.optimizer(STEPS_PER_EPOCH)
  data = {'train': np.zeros(STEPS_PER_EPOCH * config.batch_size)}
  state = run.create_state(tx, jax.random.key(config.seed), data)
  return run, state, run.compile_step(tx, schedule), schedule, tx


def flatten(tree: Any, prefix: str = '') -> dict[str, np.ndarray]:
  """A nested dict of arrays as ``{prefix + 'a/b': float32 leaf}``.

  Args:
    tree: the nested dict (params, batch stats).
    prefix: prepended to every name.

  Returns:
    The flat dict, on the host.
  """
  out = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    name = '/'.join(str(getattr(k, 'key', k)) for k in path)
    out[prefix + name] = np.asarray(jax.device_get(leaf), np.float32)
  return out


def unflatten_like(tree: Any, flat: dict[str, np.ndarray], prefix: str):
  """The inverse of :func:`flatten` on ``tree``'s structure.

  Args:
    tree: the nested dict whose structure is kept.
    flat: the arrays by name.
    prefix: the names' prefix in ``flat``.

  Returns:
    ``tree`` with each leaf replaced by ``flat[prefix + its name]`` where
    ``flat`` has it.
  """

  def pick(path, leaf):
    name = prefix + '/'.join(str(getattr(k, 'key', k)) for k in path)
    return jnp.asarray(flat[name]) if name in flat else leaf

  return jax.tree_util.tree_map_with_path(pick, jax.device_get(tree))


def with_weights(run, state, tx, flat: dict[str, np.ndarray]):
  """``state`` with the fixture's initial weights, its target a copy of them.

  Args:
    run: the case's run.
    state: its step-0 state.
    tx: its optimiser (its state restarts on the new weights).
    flat: ``'init/params/...'`` and ``'init/batch_stats/...'`` arrays.

  Returns:
    The replicated state.
  """
  params = unflatten_like(state.params, flat, 'init/params/')
  batch_stats = unflatten_like(state.batch_stats, flat, 'init/batch_stats/')
  extra = dict(state.extra)
  if 'target_params' in extra:
    extra['target_params'] = jax.tree.map(jnp.copy, params)
    extra['target_batch_stats'] = jax.tree.map(jnp.copy, batch_stats)
  return run.replicate(
      state.replace(
          params=params,
          batch_stats=batch_stats,
          opt_state=tx.init(params),
          extra=extra,
      )
  )


def views(config: ml_collections.ConfigDict, step: int) -> tuple[Any, ...]:
  """Step ``step``'s views, made by our augmentation with fixed seeds.

  Args:
    config: the case's config (its view settings; DINO's local crops).
    step: the step, which seeds the images and the augmentation.

  Returns:
    ``(views, labels)``: float32 [B,S,S,C] views in [0, 1] (DINO: 2 global,
    then the local crops) and int32 [B] labels.
  """
  from ssl_jax.data import augment  # pylint: disable=g-import-not-at-top
  from ssl_jax.methods import dino  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(100 + step)
  images = rng.integers(0, 256, (BATCH, SIDE, SIDE, CHANNELS), np.uint8)
  labels = rng.integers(0, DATASET['num_classes'], (BATCH,), np.int32)
  key = jax.random.fold_in(jax.random.key(7), step)
  pair = (config.augment.view1, config.augment.view2)
  out = augment.make_views(key, jnp.asarray(images), pair, SIDE)
  if config.method == 'dino':
    local = (config.dino.local_view,) * config.dino.num_local_crops
    out += augment.make_views(
        jax.random.fold_in(key, 99),
        jnp.asarray(images),
        local,
        dino.local_size(config),
    )
  return tuple(np.asarray(v, np.float32) for v in out), labels


def replay(fixture: dict[str, np.ndarray], built=None) -> list[dict[str, Any]]:
  """Runs our compiled step on a fixture's views; returns per-step records.

  Args:
    fixture: the loaded ``.npz`` (``config``, ``init/...``, ``step<t>/...``).
    built: :func:`build`'s tuple for the fixture's config (built if None).

  Returns:
    One dict per step: ``loss``, ``params``, ``target``, ``batch_stats``
    (flat ``{name: array}``) and ``center`` (DINO; else None).
  """
  config = config_from(str(fixture['config']))
  run, state, step, _, tx = built or build(config)
  state = with_weights(run, state, tx, fixture)
  key = run.replicate(jax.random.key(0))  # Unused: the views are ready.
  records = []
  for t in range(int(fixture['steps'])):
    count = int(fixture[f'step{t}/num_views'])
    batch = {
        'views': tuple(fixture[f'step{t}/view{i}'] for i in range(count)),
        'label': fixture[f'step{t}/label'],
    }
    state, metrics = step(state, jax.device_put(batch, run.data_sharding), key)
    extra = jax.device_get(state.extra)
    records.append({
        'loss': float(metrics['loss']),
        'lr': float(metrics['learning_rate']),
        'params': flatten(state.params),
        'batch_stats': flatten(state.batch_stats),
        'target': flatten(extra.get('target_params', {})),
        'center': np.asarray(extra['center']) if 'center' in extra else None,
    })
  return records


def expected(fixture: dict[str, Any], t: int) -> dict[str, np.ndarray]:
  """Step ``t``'s torch values by name.

  Args:
    fixture: the fixture.
    t: the step.

  Returns:
    ``loss``, ``center`` (DINO) and the ``params/...``, ``batch_stats/...``
    (running means) and ``target/...`` arrays.
  """
  p = f'expect/step{t}/'
  return {k[len(p) :]: v for k, v in fixture.items() if k.startswith(p)}


def named(record: dict[str, Any]) -> dict[str, Any]:
  """A :func:`replay` record under :func:`expected`'s names.

  Args:
    record: one step's record.

  Returns:
    ``{'loss', 'center', 'params/...', 'batch_stats/...', 'target/...'}``.
  """
  out = {'loss': record['loss'], 'center': record['center']}
  for kind in ('params', 'batch_stats', 'target'):
    out.update({f'{kind}/{k}': v for k, v in record[kind].items()})
  return out


def _errors(got, want, init):
  """Largest relative differences of ``got`` from ``want``.

  Args:
    got: ``{name: array}`` (ours).
    want: ``{name: array}`` (torch's), the names compared.
    init: ``{name: array}`` the initial values, where there are any.

  Returns:
    ``max_rel_elementwise`` (``|a - b| / |b|`` where ``b != 0``),
    ``max_rel_of_tensor_max`` (``max |a - b| / max |b|`` per tensor) and,
    with initial values, ``max_rel_of_update`` (``max |a - b|`` over the
    largest change from the initial value): the largest over the tensors.
  """
  elem = norm = update = 0.0
  for name, b in want.items():
    a, b = np.asarray(got[name], np.float64), np.asarray(b, np.float64)
    diff = np.abs(a - b)
    nz = np.abs(b) > 0
    if nz.any():
      elem = max(elem, float(np.max(diff[nz] / np.abs(b[nz]))))
    norm = max(norm, float(diff.max() / max(np.abs(b).max(), 1e-30)))
    if name in init:
      delta = np.abs(b - init[name]).max()
      update = max(update, float(diff.max() / max(delta, 1e-30)))
  out = {'max_rel_elementwise': elem, 'max_rel_of_tensor_max': norm}
  if init:
    out['max_rel_of_update'] = update
  return out


def compare(
    fixture: dict[str, Any], records: list[dict[str, Any]], method: str
) -> list[dict[str, Any]]:
  """Per-step relative errors of our :func:`replay` against the fixture.

  Args:
    fixture: the fixture.
    records: :func:`replay`'s records.
    method: the case (for :data:`ZERO_IN_EXACT_ARITHMETIC`).

  Returns:
    One row per step: the loss's relative error and :func:`_errors` of
    ``params``, ``running_mean``, ``target`` and ``center`` (where there
    are any), and the largest magnitude of the values that are 0 in exact
    arithmetic, on either side.
  """
  zero = ZERO_IN_EXACT_ARITHMETIC.get(method, ())
  init = {k[5:]: v for k, v in fixture.items() if k.startswith('init/')}
  rows = []
  for t, rec in enumerate(records):
    want, got = expected(fixture, t), named(rec)
    loss = float(want.pop('loss'))
    row = {'step': t, 'loss': abs(got['loss'] - loss) / abs(loss)}
    groups = {'params': 'params/', 'running_mean': 'batch_stats/'}
    groups.update({'target': 'target/', 'center': 'center'})
    for group, prefix in groups.items():
      part = {
          k: v
          for k, v in want.items()
          if k.startswith(prefix) and k not in zero
      }
      if part:
        # A target moves by (1 - momentum) of the online change, under its
        # own rounding: its change is no yardstick, so none is reported.
        yardstick = init if group in ('params', 'running_mean') else {}
        row[group] = _errors(got, part, yardstick)
    if zero:
      row['zero_in_exact_arithmetic_max_abs'] = max(
          float(np.abs(side[k]).max()) for k in zero for side in (got, want)
      )
    rows.append(row)
  return rows
