"""ViT encoders: sizes, position embeddings at other sides, methods, evals."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import models
from ssl_jax.models import vit
from ssl_jax.training import train
from tests import helpers

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(__file__)), 'benchmarks')
)
import cases  # noqa: E402  # pylint: disable=g-import-not-at-top,wrong-import-position


def _params(encoder, image_size, patch_size):
  config = helpers.tiny_config(
      encoder=encoder,
      image_size=image_size,
      **{'model.patch_size': patch_size},
  )
  model = models.get_encoder(config)
  x = jnp.zeros((1, image_size, image_size, 3))
  return model, jax.eval_shape(lambda: model.init(jax.random.key(0), x))


@pytest.mark.parametrize(
    'encoder,width,millions',
    [('vit_tiny', 192, 5.36), ('vit_small', 384, 21.3)],
)
def test_sizes_match_the_published_models(encoder, width, millions):
  model, variables = _params(encoder, 32, 4)
  count = sum(np.prod(p.shape) for p in jax.tree.leaves(variables['params']))
  # ViT-Ti/S are 5.7M/22.1M at 224 px in 16 px patches (196 positions, a
  # 768-wide patch embedding); here 64 positions of 4x4x3 patches.
  assert count / 1e6 == pytest.approx(millions, rel=0.005)
  assert variables['params']['position_embedding'].shape == (1, 8, 8, width)
  out = jax.eval_shape(
      lambda v: model.apply(v, jnp.zeros((2, 32, 32, 3))), variables
  )
  assert out.shape == (2, width)
  assert 'batch_stats' not in variables


def test_other_input_sizes_resize_the_position_embeddings():
  model, _ = _params('vit_tiny', 16, 4)
  # ViT-Tiny's patching and position embedding; one narrow block is enough.
  model = model.clone(width=16, depth=1, num_heads=2)
  # Compiled whole: op by op, every op compiles on its own.
  variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
  x = jax.random.uniform(jax.random.key(1), (2, 8, 8, 3))
  out = jax.jit(model.apply)(variables, x)  # A 2x2 from the learned 4x4.
  # The same as a ViT learned for 8 px inputs given the resized embeddings.
  params = dict(variables['params'])
  params['position_embedding'] = jax.image.resize(
      params['position_embedding'], (1, 2, 2, 16), 'bicubic', antialias=False
  )
  np.testing.assert_allclose(
      out,
      jax.jit(model.clone(grid=2).apply)({'params': params}, x),
      rtol=1e-5,
      atol=1e-5,
  )
  with pytest.raises(ValueError, match='not a multiple of model.patch_size=4'):
    model.apply(variables, jnp.zeros((1, 10, 10, 3)))


@pytest.fixture
def two_block_vit_tiny(monkeypatch):
  """ViT-Tiny two blocks deep: every kind of parameter, a sixth of the compile.

  The blocks repeat, so two show what twelve would (a block's output feeding
  the next included); the sizes themselves are checked above.
  """
  width, _, heads = vit.SIZES['tiny']
  monkeypatch.setitem(vit.SIZES, 'tiny', (width, 2, heads))


@pytest.mark.slow
@pytest.mark.parametrize('method', ['supervised', 'moco_v3', 'dino'])
@pytest.mark.usefixtures('two_block_vit_tiny')
def test_methods_train_a_vit_under_jit(method):
  config = helpers.tiny_config(
      method=method,
      encoder='vit_tiny',
      # No weight decay: then only a gradient moves a parameter.
      **{'optimizer.warmup_epochs': 0, 'optimizer.weight_decay': 0.0},
  )
  config.optimizer.name = 'adamw'
  step, state, batch, key, _ = cases.compile_step(config)
  before = jax.device_get(state.params['encoder'])
  state, metrics = step(state, batch, key)
  assert np.isfinite(float(metrics['loss']))
  moved = jax.tree.map(
      lambda a, b: bool(np.any(a != b)),
      before,
      jax.device_get(state.params['encoder']),
  )
  assert all(jax.tree.leaves(moved))  # Every ViT parameter got a gradient.


@pytest.mark.slow
@pytest.mark.usefixtures('two_block_vit_tiny')
def test_a_vit_run_is_probed_and_fine_tuned(tmp_path):
  config = helpers.tiny_config(
      method='moco_v3',
      encoder='vit_tiny',
      dataset='sklearn_digits',
      image_size=8,
      batch_size=64,
      num_epochs=1,
      learning_rate=1e-3,
      **{
          'optimizer.name': 'adamw',
          'optimizer.warmup_epochs': 0.0,
          'checkpoint_every_steps': 100,
          'evals.finetune.enabled': True,
          'evals.finetune.label_fractions': (0.2,),
          'evals.finetune.seeds': (0,),
          'evals.finetune.num_steps': 3,
      },
  )
  results = train.train_and_evaluate(config, str(tmp_path / 'run'))
  for key in (
      'linear_probe/test_accuracy',
      'knn/test_accuracy',
      'finetune/frac=0.2/test_accuracy_mean',
      'frozen/frac=0.2/test_accuracy_mean',
  ):
    assert 0 <= results[key] <= 1, key


def test_moco_v3_patch_init_is_xavier_over_a_flattened_patch():
  model = vit.ViT(
      patch_size=4,
      width=64,
      depth=1,
      num_heads=2,
      grid=2,
      patch_init='xavier_uniform',
  )
  params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))[
      'params'
  ]
  kernel = np.asarray(params['patch_embedding']['kernel'])
  bound = np.sqrt(6.0 / (3 * 4 * 4 + 64))
  assert np.abs(kernel).max() <= bound
  assert np.abs(kernel).max() > 0.95 * bound  # Uniform, so it reaches it.
  np.testing.assert_allclose(kernel.std(), bound / np.sqrt(3), rtol=0.05)
  assert not np.any(params['patch_embedding']['bias'])


def _moco_v3_sincos(h, w, dim, temperature=10000.0):
  """MoCo v3's build_2d_sincos_position_embedding, written out in numpy.

  torch.meshgrid(grid_w, grid_h) indexes 'ij', so once flattened in the
  patch order (row-major) its 'w' coordinate is the row of a square grid.
  """
  grid_w, grid_h = np.meshgrid(np.arange(w), np.arange(h), indexing='ij')
  pos_dim = dim // 4
  omega = 1.0 / temperature ** (np.arange(pos_dim) / pos_dim)
  out_w = np.einsum('m,d->md', grid_w.flatten(), omega)
  out_h = np.einsum('m,d->md', grid_h.flatten(), omega)
  return np.concatenate(
      [np.sin(out_w), np.cos(out_w), np.sin(out_h), np.cos(out_h)], axis=1
  )


def test_sincos_position_embedding_is_moco_v3s():
  ours = np.asarray(vit.sincos_position_embedding(4, 4, 16))
  np.testing.assert_allclose(
      ours.reshape(16, 16), _moco_v3_sincos(4, 4, 16), atol=1e-6
  )
  model = vit.ViT(
      patch_size=4,
      width=16,
      depth=1,
      num_heads=2,
      grid=2,
      position_embedding='sincos',
  )
  variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
  assert 'position_embedding' not in variables['params']  # Fixed.
  out = jax.jit(model.apply)(variables, jnp.zeros((2, 16, 16, 3)))  # New grid.
  assert out.shape == (2, 16)
