"""Extending ssl_jax from outside it, with no edit anywhere in the package.

A method (a small BYOL: an EMA target network through the shared two-view
step), an encoder and an evaluator are defined in this file and registered;
the normal code then validates, trains, evaluates, re-evaluates, reports and
benchmarks them.
"""

import os
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ssl_jax import errors
from ssl_jax import methods
from ssl_jax import models
from ssl_jax.configs import default
from ssl_jax.evaluation import evaluators
from ssl_jax.methods import base
from ssl_jax.methods import shared
from ssl_jax.tools import evaluate as evaluate_tool
from ssl_jax.tools import report
from ssl_jax.training import checkpoint
from ssl_jax.training import run as run_lib
from ssl_jax.training import train
from ssl_jax.training import validate
from tests import helpers

sys.path.insert(
    0,
    os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        'benchmarks',
    ),
)
import cases  # noqa: E402  # pylint: disable=g-import-not-at-top,wrong-import-position


class TinyEncoder(nn.Module):
  """One 3x3 convolution, BatchNorm, ReLU and global average pooling."""

  width: int = 8
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    x = nn.Conv(self.width, (3, 3), dtype=self.dtype)(x.astype(self.dtype))
    x = nn.BatchNorm(use_running_average=not train, dtype=self.dtype)(x)
    return nn.relu(x).mean(axis=(1, 2))


class TinyByolModel(nn.Module):
  """Encoder, projector, predictor and online probe."""

  encoder: nn.Module
  num_classes: int

  @nn.compact
  def __call__(self, x, train: bool = True):
    features = self.encoder(x, train=train)
    projection = nn.Dense(8, name='projector')(features)
    prediction = nn.Dense(8, name='predictor')(nn.relu(projection))
    probe_logits = nn.Dense(self.num_classes, name='probe')(
        jax.lax.stop_gradient(features)
    )
    return {
        'features': features,
        'projection': projection,
        'prediction': prediction,
        'probe_logits': probe_logits,
    }


def tiny_byol_defaults() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.target_decay = 0.9
  return c


def tiny_byol_check(config):
  if not 0 <= config.tiny_byol.target_decay < 1:
    raise errors.ConfigError(
        'tiny_byol.target_decay='
        f'{config.tiny_byol.target_decay!r} must be in '
        '[0, 1).'
    )


def tiny_byol_init_extra(config, params, batch_stats, data):
  del config, data
  return {
      'target': {
          'params': jax.tree.map(jnp.copy, params),
          'batch_stats': jax.tree.map(jnp.copy, batch_stats),
      }
  }


def _normalized_mse(p, t):
  p = p / jnp.linalg.norm(p, axis=-1, keepdims=True)
  t = t / jnp.linalg.norm(t, axis=-1, keepdims=True)
  return jnp.mean(2 - 2 * jnp.sum(p * t, axis=-1))


def byol_loss(p_a, p_b, t_a, t_b):
  """Each view's prediction against the other view's target projection."""
  return _normalized_mse(p_a, t_b) + _normalized_mse(p_b, t_a), {}


def tiny_byol_step(state, batch, key, *, model, tx, config, schedule):
  state, metrics = shared.two_view_step(
      state,
      batch,
      key,
      model=model,
      tx=tx,
      config=config,
      schedule=schedule,
      embedding_loss=byol_loss,
      target_variables=lambda s: s.extra['target'],
      online_output='prediction',
      target_output='projection',
  )
  target = shared.ema_update(
      state.extra['target'],
      {'params': state.params, 'batch_stats': state.batch_stats},
      config.tiny_byol.target_decay,
  )
  return state.replace(extra={'target': target}), metrics


TINY_BYOL = base.Method(
    name='tiny_byol',
    build_model=lambda config, num_classes: TinyByolModel(
        models.get_encoder(config), num_classes
    ),
    train_step=tiny_byol_step,
    section='tiny_byol',
    defaults=tiny_byol_defaults,
    check_config=tiny_byol_check,
    init_extra=tiny_byol_init_extra,
    eval_variables=lambda state: state.extra['target'],
    images_per_step=shared.two_views_per_image,
)


def feature_norm(ctx):
  """Mean L2 norm of the test features."""
  yield 'feature_norm/mean', float(
      np.linalg.norm(ctx.test_features, axis=1).mean()
  )


def feature_norm_settings():
  c = ml_collections.ConfigDict()
  c.enabled = False
  return c


@pytest.fixture
def registered():
  methods.register(TINY_BYOL)
  models.register_encoder(
      'tiny',
      lambda c: TinyEncoder(width=c.model.width, dtype=jnp.dtype(c.dtype)),
  )
  evaluators.register('feature_norm', feature_norm, feature_norm_settings)
  yield
  del methods.METHODS['tiny_byol']
  del models.ENCODERS['tiny']
  del evaluators.EVALUATORS['feature_norm']
  del evaluators.SETTINGS['feature_norm']


def _config(**overrides):
  return helpers.tiny_config(**{
      'method': 'tiny_byol',
      'encoder': 'tiny',
      'model.width': 8,
      'dataset': 'sklearn_digits',
      'batch_size': 64,
      'num_epochs': 1,
      'optimizer.warmup_epochs': 0.0,
      'checkpoint_every_steps': 100,
      'evals.feature_norm.enabled': True,
      **overrides,
  })


def test_registered_pieces_validate_with_their_own_settings(registered):
  del registered
  config = _config()
  validate.check_fields(config, default.get_config())
  validate.validate(config, jax.device_count())
  config.tiny_byol.target_decay = 1.0
  with pytest.raises(errors.ConfigError, match='tiny_byol.target_decay=1.0'):
    validate.validate(config, jax.device_count())


@pytest.mark.slow
def test_registered_method_trains_evaluates_reports_and_benchmarks(
    registered, tmp_path
):
  del registered
  config = _config()
  workdir = str(tmp_path / 'run')
  results = train.train_and_evaluate(config, workdir)
  assert np.isfinite(results['train/final_loss'])
  assert results['train/steps'] > 0
  # Evaluated through the method's eval_variables (the target network).
  assert 0 <= results['linear_probe/test_accuracy'] <= 1
  assert results['feature_norm/mean'] > 0

  # The target moved towards the online network, and stayed distinct.
  run = run_lib.build(config)
  _, target = run.restore_variables(workdir)
  initial, _ = run.init_variables(
      jax.random.split(jax.random.key(config.seed))[0]
  )
  online = checkpoint.restore_tree(workdir)[1]['params']
  kernel = lambda p: np.asarray(p['encoder']['Conv_0']['kernel'])
  assert not np.allclose(kernel(target['params']), kernel(initial))
  assert not np.allclose(kernel(target['params']), kernel(online))

  # Re-evaluated later from the workdir by the command line's code.
  again = evaluate_tool.evaluate_workdir(workdir, names=['feature_norm'])
  assert again['feature_norm/mean'] == pytest.approx(
      results['feature_norm/mean'], rel=1e-4
  )

  # The report: unsupervised, so no label fraction.
  runs = report.find_runs([str(tmp_path)])
  text = report.build_report(runs, str(tmp_path / 'report.md'))
  row = next(line for line in text.splitlines() if '| tiny_byol |' in line)
  assert '| none |' in row

  # The benchmark suite compiles and runs its step from the method alone.
  compiled, state, batch, key, _ = cases.compile_step(config, 10, 1)
  _, metrics = compiled(state, batch, key)
  assert np.isfinite(float(metrics['loss']))
  assert TINY_BYOL.images_per_step(config) == (64, 128)


@pytest.mark.slow
def test_target_network_gets_no_gradient(registered):
  """The online update equals the gradient with the target held constant."""
  del registered
  config = _config(**{
      'optimizer.name': 'sgd',
      'optimizer.momentum': 0.0,
      'optimizer.weight_decay': 0.0,
      'online_probe': False,
  })
  run = run_lib.build(config)
  schedule, tx = run.optimizer(10)
  state = run.create_state(tx, jax.random.key(0), {})
  # A target different from the online network.
  state = state.replace(
      extra={
          'target': jax.tree.map(
              lambda x: x * 0.5 + 0.01, state.extra['target']
          )
      }
  )
  batch = TINY_BYOL.example_batch(config, np.random.default_rng(0), 10, 1)
  key = jax.random.key(3)
  new, _ = jax.jit(
      lambda s: tiny_byol_step(
          s,
          batch,
          key,
          model=run.model,
          tx=tx,
          config=config,
          schedule=schedule,
      )
  )(state)

  views = helpers.make_views(
      key,
      batch['image'],
      (config.augment.view1, config.augment.view2),
      shared.train_view_size(config),
  )
  x = jnp.concatenate(views)
  apply = helpers.train_apply(run.model)
  target_out, _ = apply(state.extra['target'], x)
  t_a, t_b = jnp.split(target_out['projection'], 2)

  def loss(params):
    out, _ = apply({'params': params, 'batch_stats': state.batch_stats}, x)
    p_a, p_b = jnp.split(out['prediction'], 2)
    return byol_loss(p_a, p_b, t_a, t_b)[0]

  grads = jax.grad(loss)(state.params)
  lr = schedule(0)
  expected = jax.tree.map(lambda p, g: p - lr * g, state.params, grads)
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
      jax.device_get(new.params)['encoder'],
      jax.device_get(expected)['encoder'],
  )
