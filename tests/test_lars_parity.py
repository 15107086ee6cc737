"""Our LARS against the references' LARS, step by step with a changing rate.

solo-learn's ``LARSWrapper`` (clip mode and not) is pinned by a fixture that
``benchmarks/parity/lars_parity.py`` makes by running it; google-research/
simclr's form is written out here in numpy, as its ``lars_optimizer.py`` does
it, since its TensorFlow optimizer is not a dependency.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.configs import default
from ssl_jax.training import optim

FIXTURE = os.path.join(
    os.path.dirname(__file__), 'fixtures', 'lars_solo_learn.npz'
)


def _unflatten(flat):
  tree = {}
  for name, value in flat.items():
    layer, leaf = name.split('/')
    tree.setdefault(layer, {})[leaf] = jnp.asarray(value)
  return tree


def _flat(tree):
  return {
      f'{layer}/{k}': np.asarray(v)
      for layer, d in tree.items()
      for k, v in d.items()
  }


def _lars_config(variant, clip, eta, weight_decay, momentum):
  c = default.get_config()
  c.optimizer.update(
      name='lars',
      lars_variant=variant,
      clip_lr=clip,
      trust_coefficient=eta,
      weight_decay=weight_decay,
      momentum=momentum,
  )
  return c


def replay(fixture, clip):
  """Runs ``optim.make_optimizer`` over the fixture's gradients and rates.

  Args:
    fixture: the arrays of ``lars_solo_learn.npz``.
    clip: solo-learn's clip mode.

  Returns:
    The flat parameters after each step.
  """
  eta, weight_decay, momentum = (float(v) for v in fixture['hparams'])
  rates = jnp.asarray(fixture['rates'])
  config = _lars_config('solo_learn', clip, eta, weight_decay, momentum)
  optim.check_config(config.optimizer)
  tx = optim.make_optimizer(config, lambda count: rates[count])
  names = [k[len('init/') :] for k in fixture if k.startswith('init/')]
  params = _unflatten({n: fixture[f'init/{n}'] for n in names})
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, grads):
    updates, opt_state = tx.update(grads, opt_state, params)
    return jax.tree.map(jnp.add, params, updates), opt_state

  out = []
  for s in range(len(rates)):
    grads = _unflatten({n: fixture[f'grad/{s}/{n}'] for n in names})
    params, opt_state = step(params, opt_state, grads)
    out.append(_flat(params))
  return out


@pytest.fixture(scope='module')
def fixture():
  return dict(np.load(FIXTURE))


@pytest.mark.parametrize('clip', [False, True])
def test_solo_learn_lars_matches_reference(fixture, clip):
  tag = 'clip' if clip else 'noclip'
  for s, params in enumerate(replay(fixture, clip)):
    for name, value in params.items():
      np.testing.assert_allclose(
          value,
          fixture[f'{tag}/{s}/{name}'],
          rtol=1e-5,
          atol=1e-7,
          err_msg=f'{tag} step {s} {name}',
      )


def test_fixture_covers_both_sides_of_the_clip(fixture):
  flags = [
      bool(fixture[k])
      for k in fixture
      if k.startswith('clipped/')
      and k.endswith('kernel')
      and not k.endswith('zero/kernel')
  ]
  assert any(flags) and not all(flags)
  # The two modes differ, so the clip is exercised, not a no-op.
  assert not np.allclose(
      fixture['clip/5/dense/kernel'], fixture['noclip/5/dense/kernel']
  )


def _simclr_lars_reference(params, grads, rates, eta, weight_decay, momentum):
  """google-research/simclr's LARS (classic momentum), in float64 numpy.

  Biases and norm parameters get neither decay nor the trust ratio; for the
  others ``g <- g + wd w``, ``r = eta |w| / |g|`` (1 where a norm is 0), and
  ``v <- m v + lr r g``, ``w <- w - v``.
  """
  params = {k: v.astype(np.float64) for k, v in params.items()}
  velocity = {k: np.zeros_like(v) for k, v in params.items()}
  history = []
  for g_step, lr in zip(grads, rates):
    for name, w in params.items():
      g = g_step[name].astype(np.float64)
      ratio = 1.0
      if w.ndim > 1:
        g = g + weight_decay * w
        w_norm, g_norm = np.linalg.norm(w), np.linalg.norm(g)
        if w_norm > 0 and g_norm > 0:
          ratio = eta * w_norm / g_norm
      velocity[name] = momentum * velocity[name] + lr * ratio * g
      params[name] = w - velocity[name]
    history.append(dict(params))
  return history


def test_simclr_lars_matches_google_research_form():
  rng = np.random.default_rng(3)
  shapes = {
      'conv/kernel': (3, 3, 2, 4),
      'dense/kernel': (6, 5),
      'dense/bias': (5,),
      'bn/scale': (4,),
      'zero/kernel': (3, 3),
  }
  params = {
      n: (
          (np.zeros(s) if n.startswith('zero') else rng.normal(size=s)).astype(
              np.float32
          )
      )
      for n, s in shapes.items()
  }
  rates = np.asarray([0.0, 0.4, 1.0, 0.7, 0.2], np.float32)
  grads = [
      {
          n: (
              rng.normal(scale=10.0 ** rng.uniform(-2, 1), size=s).astype(
                  np.float32
              )
          )
          for n, s in shapes.items()
      }
      for _ in rates
  ]
  eta, weight_decay, momentum = 1e-3, 0.05, 0.9
  want = _simclr_lars_reference(
      params, grads, rates, eta, weight_decay, momentum
  )
  config = _lars_config('simclr', False, eta, weight_decay, momentum)
  tx = optim.make_optimizer(config, lambda count: jnp.asarray(rates)[count])
  tree = _unflatten(params)
  state = tx.init(tree)
  for s, g in enumerate(grads):
    updates, state = tx.update(_unflatten(g), state, tree)
    tree = jax.tree.map(jnp.add, tree, updates)
    for name, value in _flat(tree).items():
      np.testing.assert_allclose(
          value,
          want[s][name],
          rtol=2e-5,
          atol=1e-7,
          err_msg=f'step {s} {name}',
      )


def test_variants_differ():
  """The two forms are not the same optimiser (a changing rate and decay)."""
  rng = np.random.default_rng(4)
  params = {
      'dense': {'kernel': jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)}
  }
  rates = jnp.asarray([0.5, 1.0, 0.2])
  out = {}
  for variant in optim.LARS_VARIANTS:
    tx = optim.make_optimizer(
        _lars_config(variant, False, 1e-3, 0.05, 0.9), lambda c: rates[c]
    )
    tree, state = params, tx.init(params)
    for _ in range(3):
      grads = jax.tree.map(lambda p: 0.3 * p + 1.0, tree)
      updates, state = tx.update(grads, state, tree)
      tree = jax.tree.map(jnp.add, tree, updates)
    out[variant] = tree['dense']['kernel']
  assert not np.allclose(out['simclr'], out['solo_learn'], rtol=1e-4)
