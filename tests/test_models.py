"""Encoders' shapes, the custom-gradient convolution and pool against lax/flax."""

import functools
import re

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import models
from ssl_jax.configs import default
from ssl_jax.models import conv
from ssl_jax.models import convnet
from ssl_jax.training import run as run_lib
from ssl_jax.training import step as step_lib
from tests import helpers


@pytest.mark.parametrize(
    'encoder,cifar_stem,size,dim',
    [
        ('convnet', True, 32, 128),
        ('resnet18', True, 16, 512),
        ('resnet18', False, 32, 512),
        ('resnet50', False, 32, 2048),
    ],
)
def test_encoder_output_shapes(encoder, cifar_stem, size, dim):
  c = default.get_config()
  c.encoder, c.model.cifar_stem = encoder, cifar_stem
  model = models.get_encoder(c)
  x = jnp.zeros((2, size, size, 3))
  variables = jax.eval_shape(
      functools.partial(model.init, train=False), jax.random.key(0), x
  )
  out = jax.eval_shape(
      functools.partial(model.apply, train=False), variables, x
  )
  assert out.shape == (2, dim)


@pytest.mark.slow
def test_convnet_widths_and_dense():
  c = default.get_config()
  c.encoder, c.model.conv_widths, c.model.dense = 'convnet', (4, 8, 8, 16), 0
  model = models.get_encoder(c)
  x = jnp.ones((3, 16, 16, 1))
  variables = model.init(jax.random.key(0), x, train=False)
  assert model.apply(variables, x, train=False).shape == (3, 16)


def test_projection_head():
  head = models.ProjectionHead(hidden_dims=(8, 8), out_dim=4, use_bn=True)
  x = jnp.ones((5, 6))
  variables = head.init(jax.random.key(0), x, train=False)
  assert head.apply(variables, x, train=False).shape == (5, 4)
  assert 'batch_stats' in variables


@pytest.mark.parametrize(
    'kwargs,dense_leaves,bn_params',
    [
        # SimCLR's last layer: no bias, BatchNorm with a scale, no centre.
        ({'out_bn': True, 'out_bn_scale': True}, {'kernel'}, {'scale'}),
        # MoCo v3's: affine-free BatchNorm.
        ({'out_bn': True}, {'kernel'}, None),
        # MoCo v3's ResNet predictor: no BatchNorm, no bias.
        ({'out_bias': False}, {'kernel'}, None),
        ({}, {'kernel', 'bias'}, None),
    ],
)
def test_projection_head_output_layer(kwargs, dense_leaves, bn_params):
  head = models.ProjectionHead(hidden_dims=(8,), out_dim=4, **kwargs)
  params = head.init(jax.random.key(0), jnp.ones((4, 5)))['params']
  assert set(params['Dense_1']) == dense_leaves
  assert (set(params['BatchNorm_1']) if 'BatchNorm_1' in params else None) == (
      bn_params
  )


def test_dino_head_uses_the_exact_gelu_as_dino_and_lightly():
  # DINO's DINOHead and lightly's DINOProjectionHead use torch's nn.GELU, the
  # erf form; flax's default (tanh) differs by up to ~5e-4 and broke the
  # step parity with lightly (docs/parity.md).
  from ssl_jax.models import heads  # pylint: disable=g-import-not-at-top

  head = heads.DINOHead(hidden_dims=(4,), bottleneck_dim=4, out_dim=3)
  x = jax.random.normal(jax.random.key(0), (6, 5))
  variables = head.init(jax.random.key(1), x)
  p = variables['params']

  def by_hand(gelu):
    h = gelu(x @ p['Dense_0']['kernel'] + p['Dense_0']['bias'])
    h = h @ p['Dense_1']['kernel'] + p['Dense_1']['bias']
    h = h / jnp.linalg.norm(h, axis=-1, keepdims=True)
    k = p['prototypes']['kernel']
    return h @ (k / jnp.linalg.norm(k, axis=0, keepdims=True))

  exact = functools.partial(jax.nn.gelu, approximate=False)
  np.testing.assert_allclose(
      head.apply(variables, x), by_hand(exact), rtol=1e-5, atol=1e-6
  )


@pytest.mark.parametrize(
    'kernel,strides,padding,channels',
    [
        (3, 1, 'SAME', 3),
        (3, 2, 'SAME', 4),
        (1, 2, 'SAME', 5),
        (7, 2, ((3, 3), (3, 3)), 3),
        (3, 1, 'VALID', 2),
        (3, 1, 'SAME', 8),
        # Strided, wide: XLA's kernel gradient, the phase-split input gradient.
        (3, 2, 'SAME', 8),
        (1, 2, 'SAME', 72),
        (5, 3, ((2, 1), (0, 3)), 8),
        (2, 2, ((1, 0), (0, 2)), 16),
    ],
)
def test_fast_conv_gradients_match_lax(kernel, strides, padding, channels):
  rng = np.random.default_rng(kernel + strides)
  x = jnp.asarray(rng.normal(size=(4, 9, 9, channels)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(kernel, kernel, channels, 6)), jnp.float32)
  dims = lax.conv_dimension_numbers(x.shape, w.shape, ('NHWC', 'HWIO', 'NHWC'))

  def loss(fn, x, w):
    y = fn(x, w, (strides, strides), padding, dimension_numbers=dims)
    return jnp.sum(jnp.sin(y))

  want = jax.grad(functools.partial(loss, lax.conv_general_dilated), (0, 1))(
      x, w
  )
  got = jax.jit(
      jax.grad(functools.partial(loss, conv.conv_general_dilated), (0, 1))
  )(x, w)
  for g, e in zip(got, want):
    np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(
      conv.conv_general_dilated(
          x, w, (strides, strides), padding, dimension_numbers=dims
      ),
      lax.conv_general_dilated(
          x, w, (strides, strides), padding, dimension_numbers=dims
      ),
      rtol=1e-5,
      atol=1e-5,
  )


def test_fast_conv_inside_flax_matches_plain_conv():
  x = jnp.asarray(
      np.random.default_rng(0).normal(size=(2, 8, 8, 3)), jnp.float32
  )
  fast = nn.Conv(4, (3, 3), conv_general_dilated=conv.conv_general_dilated)
  plain = nn.Conv(4, (3, 3))
  params = plain.init(jax.random.key(0), x)
  loss = lambda m, p: jnp.sum(m.apply(p, x) ** 2)
  np.testing.assert_allclose(
      jax.grad(functools.partial(loss, fast))(params)['params']['kernel'],
      jax.grad(functools.partial(loss, plain))(params)['params']['kernel'],
      rtol=1e-4,
      atol=1e-4,
  )


@pytest.mark.slow
@pytest.mark.parametrize('shape', [(3, 8, 8, 5), (2, 7, 9, 4)])
def test_max_pool_2x2_matches_flax_values_and_gradients(shape):
  x = jax.random.normal(jax.random.key(0), shape)
  x = jnp.where(x < 0.3, 0.0, x)  # Ties, as after a ReLU.
  want_fn = lambda x: nn.max_pool(x, (2, 2), (2, 2))
  np.testing.assert_array_equal(convnet.max_pool_2x2(x), want_fn(x))
  g = jax.random.normal(jax.random.key(1), want_fn(x).shape)
  got = jax.jit(lambda x, g: jax.vjp(convnet.max_pool_2x2, x)[1](g)[0])(x, g)
  np.testing.assert_array_equal(got, jax.vjp(want_fn, x)[1](g)[0])


def test_max_pool_2x2_gives_a_tie_to_its_first_maximum():
  x = (
      jnp.zeros((1, 4, 2, 1))
      .at[0, 1, 1, 0]
      .set(-1.0)
      .at[0, 2:, :, 0]
      .set([[3.0, 3.0], [1.0, 2.0]])
  )
  g = jnp.array([[[[2.0]], [[5.0]]]])
  got = jax.vjp(convnet.max_pool_2x2, x)[1](g)[0]
  np.testing.assert_array_equal(
      got[0, :, :, 0], [[2, 0], [0, 0], [5, 0], [0, 0]]
  )


# The ConvNet widths of the configs: the CPU ones, the quick start and the
# default; view sizes 16-32 px, with odd map sizes (30 -> 15 -> 7, 28 -> 7 -> 3).
@pytest.mark.slow
@pytest.mark.parametrize(
    'widths,size',
    [
        ((48, 96, 192, 384), 16),
        ((48, 96, 192, 384), 20),
        ((48, 96, 192, 384), 24),
        ((48, 96, 192, 384), 28),
        ((48, 96, 192, 384), 30),
        ((48, 96, 192, 384), 32),
        ((128, 128, 128, 128), 24),
        ((32, 64, 128, 256), 16),
    ],
)
def test_convnet_gradients_in_compiled_step_match_flax_max_pool(
    monkeypatch, widths, size
):
  """The jit-compiled model's gradient, as in a train step, against nn.max_pool's.

  Inside one compiled program XLA may recompute a layer's output in several
  fusions with different rounding; a pooling gradient that re-found each
  window's maximum by equality there gave NaNs at these sizes.
  """
  model = convnet.ConvNet(widths=widths, dense=0)
  x = jax.random.uniform(jax.random.key(0), (16, size, size, 3))
  variables = jax.jit(model.init)(jax.random.key(1), x)

  def loss(params, x):
    out, _ = model.apply(
        {'params': params, 'batch_stats': variables['batch_stats']},
        x,
        mutable=['batch_stats'],
    )
    return jnp.sum(jnp.sin(out))

  options = conv.compiler_options(step_lib.make_mesh())
  grad = lambda: jax.jit(jax.grad(loss), compiler_options=options)(
      variables['params'], x
  )
  got = grad()
  monkeypatch.setattr(
      convnet, 'max_pool_2x2', lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))
  )
  want = grad()
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(
        g, w, rtol=1e-3, atol=1e-4 * float(np.abs(w).max())
    )


def test_cpu_compiler_options_keep_convolutions_off_ynnpack():
  """The CPU options compile; convolutions stay XLA's own, reductions YNNPACK's."""
  options = conv.compiler_options(step_lib.make_mesh())
  assert options == conv.CPU_COMPILER_OPTIONS
  # Big enough for XLA to consider YNNPACK (compiled only, never run).
  x, w = jnp.ones((64, 16, 16, 128)), jnp.ones((3, 3, 128, 128))
  fn = lambda x, w: (
      lax.conv_general_dilated(
          x, w, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')
      ),
      jnp.sum(x, axis=0),
  )

  def compiled(options):
    text = jax.jit(fn, compiler_options=options).lower(x, w).compile().as_text()
    plain_conv = re.search(r'\n  %\S+ = \S+ convolution\(', text) is not None
    return text.count('"kind":"__ynn_fusion"'), plain_conv

  assert compiled(options) == (1, True)  # YNNPACK runs only the sum.
  assert compiled(None) == (2, False)  # By default it also takes the conv.


def test_cpu_convolutions_resolve_to_what_the_mesh_runs():
  config = helpers.tiny_config(cpu_convolutions='onednn')
  assert jax.device_count() > 1  # A custom call cannot be batch-sharded.
  run = run_lib.build(config)
  assert run.config.cpu_convolutions == 'xla'
  assert config.cpu_convolutions == 'onednn'  # The user's config is kept.
  assert conv.resolve('xla', step_lib.make_mesh(jax.devices()[:1])) == 'xla'
  with pytest.raises(ValueError, match="cpu_convolutions='cuda'"):
    conv.implementation('cuda')
