"""Our compiled train steps against PyTorch steps built from lightly's modules.

The fixtures ``tests/fixtures/parity_<method>.npz`` are written by
``benchmarks/parity/step_parity.py`` (see ``docs/parity.md``); this file
replays them without torch.
"""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax.data import augment
from ssl_jax.methods import dino
from ssl_jax.methods import shared
from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'benchmarks', 'parity'))
import parity_cases  # noqa: E402  # pylint: disable=g-import-not-at-top,wrong-import-position

# The methods whose fixture is committed (all of parity_cases.METHODS once
# each passes).
PARITY_METHODS = parity_cases.METHODS
RTOL = 1e-4
# float32 rounding in either framework is relative to a tensor's scale (its
# values are sums over many terms), so an element far below its tensor's
# largest magnitude cannot agree to RTOL of itself: those get an absolute
# tolerance of ATOL_OF_MAX times the tensor's largest magnitude. It only
# matters for elements under a tenth of that largest magnitude.
ATOL_OF_MAX = 1e-5


def _copy(state):
  # The compiled step donates its state: each run gets its own buffers.
  return jax.tree.map(jnp.copy, state)


@pytest.mark.slow
def test_ready_views_train_like_the_views_augmented_inside():
  # DINO: global and local views from one 'views' tuple (two-view methods
  # take the same path through shared.views_of).
  config = helpers.tiny_config(**{
      'method': 'dino',
      'optimizer.warmup_epochs': 0,
      'dino.hidden_dims': (16,),
      'dino.bottleneck_dim': 8,
      'dino.out_dim': 32,
      'dino.num_local_crops': 2,
      'dino.local_size': 8,
  })
  run, state, step = helpers.compiled_step(config)
  images, batch = helpers.random_batch(run)
  base_key = jax.random.key(3)
  key = jax.random.fold_in(base_key, 0)  # The key of step 0.
  size = shared.train_view_size(config)
  pair = (config.augment.view1, config.augment.view2)
  images = jnp.asarray(images)
  augmented = lambda cfgs, side: jax.jit(
      lambda k, x: augment.make_views(k, x, cfgs, side)
  )
  global_key, local_key = jax.random.split(key)
  local = (config.dino.local_view,) * 2
  views = augmented(pair, size)(global_key, images) + augmented(
      local, dino.local_size(config)
  )(local_key, images)
  ready = jax.device_put(
      {'views': views, 'label': batch['label']}, run.data_sharding
  )
  key = run.replicate(base_key)
  want, want_metrics = step(_copy(state), batch, key)
  got, got_metrics = step(state, ready, key)
  np.testing.assert_allclose(
      float(got_metrics['loss']), float(want_metrics['loss']), rtol=1e-6
  )
  # The views augmented here and inside the step are compiled apart and
  # differ in their last bits; after one update that is ~1e-7 absolute.
  for a, b in zip(jax.tree.leaves(got.params), jax.tree.leaves(want.params)):
    np.testing.assert_allclose(
        np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6
    )


def test_views_of_names_the_views_it_lacks():
  with pytest.raises(ValueError, match='views 2 to 3 are wanted'):
    shared.views_of({'views': (0, 1)}, None, (None, None), 16, first=2)


def _assert_close(got, want, what):
  want = np.asarray(want)
  np.testing.assert_allclose(
      np.asarray(got),
      want,
      rtol=RTOL,
      atol=ATOL_OF_MAX * float(np.abs(want).max()),
      err_msg=what,
  )


@pytest.mark.slow
@pytest.mark.parametrize('method', PARITY_METHODS)
def test_three_steps_match_the_torch_step_from_lightly_modules(method):
  """Losses, parameters, running means, targets and DINO's centre."""
  fixture = dict(np.load(parity_cases.fixture_path(method)))
  zero = parity_cases.ZERO_IN_EXACT_ARITHMETIC.get(method, ())
  records = parity_cases.replay(fixture)
  assert len(records) == parity_cases.STEPS
  for t, rec in enumerate(records):
    want, got = parity_cases.expected(fixture, t), parity_cases.named(rec)
    np.testing.assert_allclose(rec['lr'], fixture['lr'][t], rtol=1e-6)
    np.testing.assert_allclose(got.pop('loss'), want.pop('loss'), rtol=RTOL)
    assert ('center' in want) == (method == 'dino')
    for name, value in want.items():
      if name in zero:
        # Rounding noise on both sides (parity_cases says why it is 0).
        assert np.abs(value).max() < 1e-6 and np.abs(got[name]).max() < 1e-6
      else:
        _assert_close(got[name], value, f'step {t} {name}')
