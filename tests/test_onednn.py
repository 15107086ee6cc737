"""The oneDNN convolution custom calls against XLA's convolutions."""

import functools
import importlib
import os
import subprocess
import sys

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import models
from ssl_jax.models import conv
from ssl_jax.models import onednn
from ssl_jax.models import resnet
from ssl_jax.training import run as run_lib
from ssl_jax.training import step as step_lib
from tests import helpers

pytestmark = pytest.mark.skipif(
    not onednn.load(),
    reason=(
        'oneDNN custom calls unavailable (needs pip install -e ".[onednn]" '
        'and a C++ compiler; x86-64 Linux)'
    ),
)

_DIMS = ('NHWC', 'HWIO', 'NHWC')


def _python(code, env, check=True):
  """Runs ``python -c code`` from the repository root."""
  return subprocess.run(
      [sys.executable, '-c', code],
      env=env,
      capture_output=True,
      text=True,
      timeout=120,
      check=check,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
  )


_GEOMETRIES = [  # (input shape, kernel shape, strides, padding)
    ((3, 9, 9, 5), (3, 3, 5, 6), (1, 1), 'SAME'),
    ((2, 10, 7, 4), (3, 3, 4, 8), (2, 2), 'SAME'),
    ((2, 9, 9, 4), (1, 1, 4, 6), (2, 2), 'VALID'),
    ((2, 15, 15, 3), (7, 7, 3, 4), (2, 2), ((3, 3), (3, 3))),
    ((2, 8, 8, 4), (3, 3, 4, 4), (1, 2), ((0, 1), (2, 0))),
]


def _onednn_and_lax(shape, kernel, strides, padding, dtype):
  """oneDNN's (y, dx, dkernel) on random ``dtype`` values, and float32
  ``lax.conv_general_dilated`` with its VJP on the same values."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=shape), dtype)
  w = jnp.asarray(rng.normal(size=kernel), dtype)
  pads = conv._pads(padding, kernel[:2], strides, shape[1:3])
  plain = lambda x, w: lax.conv_general_dilated(
      x, w, strides, pads, dimension_numbers=_DIMS
  )
  y, vjp = jax.vjp(plain, x.astype(jnp.float32), w.astype(jnp.float32))
  g = jnp.asarray(rng.normal(size=y.shape), dtype)
  got = (
      jax.jit(lambda x, w: onednn.conv(x, w, strides, pads))(x, w),
      onednn.input_grad(g, w, x.shape, strides, pads),
      onednn.kernel_grad(x, g, w.shape, strides, pads),
  )
  return got, (y, *vjp(g.astype(jnp.float32)))


@pytest.mark.parametrize('shape,kernel,strides,padding', _GEOMETRIES)
def test_onednn_forward_and_gradients_match_lax(
    shape, kernel, strides, padding
):
  (y, dx, dw), (want_y, want_dx, want_dw) = _onednn_and_lax(
      shape, kernel, strides, padding, jnp.float32
  )
  np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(dx, want_dx, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(dw, want_dw, rtol=1e-5, atol=1e-3)


def _loss(fn, x, w):
  y = fn(x, w, (1, 1), 'SAME', dimension_numbers=_DIMS)
  return jnp.sum(jnp.sin(y))


def test_conv_general_dilated_takes_onednn_path_on_one_device(monkeypatch):
  monkeypatch.setattr(conv, '_single_device', lambda: True)
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(2, 8, 8, 16)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(3, 3, 16, 8)), jnp.float32)
  grad = jax.jit(
      jax.grad(functools.partial(_loss, conv.conv_general_dilated), (0, 1))
  )
  assert grad.lower(x, w).as_text().count('ssl_jax_onednn_conv') == 3
  want = jax.grad(functools.partial(_loss, lax.conv_general_dilated), (0, 1))(
      x, w
  )
  for got, expected in zip(grad(x, w), want):
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
  # Below the size threshold, XLA's convolutions are kept.
  small = x[:, :4, :4]
  assert (
      'ssl_jax_onednn'
      not in jax.jit(functools.partial(_loss, conv.conv_general_dilated))
      .lower(small, w)
      .as_text()
  )


@pytest.mark.parametrize('native', [True, False])
def test_bf16_takes_onednn_only_with_native_bf16(monkeypatch, native):
  monkeypatch.setattr(conv, '_single_device', lambda: True)
  monkeypatch.setitem(onednn._state, 'bf16', native)
  w = jnp.ones((3, 3, 16, 8), jnp.bfloat16)
  for side in (8, 4):  # 4x4 maps too: the float32 size threshold is not used.
    x = jnp.ones((2, side, side, 16), jnp.bfloat16)
    text = (
        jax.jit(
            jax.grad(
                functools.partial(_loss, conv.conv_general_dilated), (0, 1)
            )
        )
        .lower(x, w)
        .as_text()
    )
    assert text.count('ssl_jax_onednn_conv') == (3 if native else 0)


@pytest.mark.slow
def test_native_bf16_follows_onednn_isa():
  # ONEDNN_MAX_CPU_ISA caps the ISA oneDNN uses: below AVX512-BF16 it would
  # emulate bfloat16, so bf16 convolutions stay on XLA.
  code = (
      'from ssl_jax.models import onednn; '
      'print("native", onednn.load(), onednn.native_bf16())'
  )
  for isa, native in (('AVX512_CORE', False), ('AVX2', False)):
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA=isa)
    result = _python(code, env)
    assert f'native True {native}' in result.stdout, (isa, result.stdout)


@pytest.mark.skipif(
    not onednn.native_bf16(),
    reason=(
        'this CPU has no bfloat16 arithmetic '
        "(AVX512-BF16 or AMX), so bf16 keeps XLA's convolutions"
    ),
)
@pytest.mark.parametrize('shape,kernel,strides,padding', _GEOMETRIES[:3])
def test_onednn_bf16_matches_float32_to_bf16_rounding(
    shape, kernel, strides, padding
):
  # The reference: the same bf16 values, convolved in float32.
  got, wanted = _onednn_and_lax(shape, kernel, strides, padding, jnp.bfloat16)
  for value, want in zip(got, wanted):
    assert value.dtype == jnp.bfloat16
    # Accumulated in float32, then rounded once to bf16 (8 mantissa bits).
    err = np.abs(np.asarray(value, np.float32) - np.asarray(want))
    assert np.all(err <= 2.0**-8 * np.abs(np.asarray(want)) + 1e-2), err.max()


def test_several_devices_keep_xla_convolutions():
  assert jax.device_count() > 1  # tests/conftest.py: 8 fake CPU devices.
  x = jnp.ones((2, 8, 8, 16))
  w = jnp.ones((3, 3, 16, 8))
  assert (
      'ssl_jax_onednn'
      not in jax.jit(functools.partial(_loss, conv.conv_general_dilated))
      .lower(x, w)
      .as_text()
  )


def _train(config, steps):
  run = run_lib.build(config, step_lib.make_mesh(jax.devices()[:1]))
  assert run.config.cpu_convolutions == config.cpu_convolutions
  schedule, tx = run.optimizer(100)
  state = run.create_state(
      tx, jax.random.key(0), {'train': np.zeros(config.batch_size)}
  )
  step = run.compile_step(tx, schedule)
  rng = np.random.default_rng(0)
  key = run.replicate(jax.random.key(1))
  hlo = None
  for _ in range(steps):
    images = rng.integers(
        0,
        256,
        (config.batch_size, config.image_size, config.image_size, 3),
        np.uint8,
    )
    batch = {'image': images, 'label': np.zeros(config.batch_size, np.int32)}
    if hlo is None:
      hlo = step.lower(state, batch, key).as_text()
    state, metrics = step(state, batch, key)
  return state, float(metrics['loss']), hlo


def _train_both(monkeypatch, config, steps):
  """``steps`` steps with oneDNN on one device, then with XLA's convolutions."""
  monkeypatch.setattr(conv, '_single_device', lambda: True)
  config = config.copy_and_resolve_references()
  config.cpu_convolutions = 'onednn'
  with_onednn, loss_onednn, hlo = _train(config, steps)
  assert 'ssl_jax_onednn' in hlo
  config.cpu_convolutions = 'xla'
  with_xla, loss_xla, hlo = _train(config, steps)
  assert 'ssl_jax_onednn' not in hlo
  return with_onednn, loss_onednn, with_xla, loss_xla


@pytest.mark.slow
@pytest.mark.parametrize(
    'cifar_stem,dtype',
    [
        (True, 'float32'),
        (False, 'float32'),
        pytest.param(
            True,
            'bfloat16',
            marks=pytest.mark.skipif(
                not onednn.native_bf16(),
                reason='no bfloat16 arithmetic on this CPU',
            ),
        ),
    ],
)
def test_simclr_resnet_steps_with_onednn_match_xla(
    monkeypatch, cifar_stem, dtype
):
  config = helpers.tiny_config(
      encoder='resnet18',
      batch_size=8,
      dtype=dtype,
      **{'model.cifar_stem': cifar_stem},
  )
  # A narrow ResNet with every block type: stem, strided and 1x1 shortcuts.
  monkeypatch.setitem(
      models.ENCODERS,
      'resnet18',
      lambda c: resnet.ResNet(
          stage_sizes=(1, 1, 1),
          block=resnet.BasicBlock,
          cifar_stem=c.model.cifar_stem,
          width=8,
          dtype=jnp.dtype(c.dtype),
          convolutions=c.cpu_convolutions,
      ),
  )
  monkeypatch.setattr(conv, 'ONEDNN_MIN_PIXELS', 1)
  with_onednn, loss_onednn, with_xla, loss_xla = _train_both(
      monkeypatch, config, 3
  )
  # bf16 activations round differently in the two (XLA:CPU converts around
  # float32 convolutions); parameters and their updates stay float32.
  rtol, atol = (1e-4, 2e-4) if dtype == 'float32' else (2e-2, 2e-3)
  np.testing.assert_allclose(loss_onednn, loss_xla, rtol=rtol)
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(
          a, b, rtol=max(rtol, 2e-3), atol=atol
      ),
      with_onednn.params,
      with_xla.params,
  )


@pytest.mark.slow
@pytest.mark.parametrize(
    'config_name', ['simclr_cifar10_cpu', 'simclr_cifar10']
)
def test_onednn_inside_real_configs_matches_xla(monkeypatch, config_name):
  """The configs' own models and shapes (ConvNet at 24 px, ResNet-18 at 32 px)."""
  config = importlib.import_module(
      f'ssl_jax.configs.{config_name}'
  ).get_config()
  config.batch_size = 8
  with_onednn, loss_onednn, with_xla, loss_xla = _train_both(
      monkeypatch, config, 2
  )
  assert np.isfinite(loss_onednn)
  np.testing.assert_allclose(loss_onednn, loss_xla, rtol=1e-4)
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4),
      with_onednn.params,
      with_xla.params,
  )


def test_failed_build_warns_and_keeps_xla(tmp_path):
  env = dict(os.environ, SSL_JAX_CACHE=str(tmp_path), CXX='false')
  code = 'from ssl_jax.models import onednn; print("available", onednn.load())'
  result = _python(code, env)
  assert 'available False' in result.stdout
  assert 'oneDNN convolutions unavailable' in result.stderr
  assert not list(tmp_path.glob('*.so'))  # No half-built library is left.


def test_only_the_onednn_choice_emits_custom_calls(monkeypatch):
  monkeypatch.setattr(conv, '_single_device', lambda: True)
  x = jnp.ones((2, 8, 8, 16))
  w = jnp.ones((3, 3, 16, 8))
  for name, calls in (('xla', 0), ('onednn', 1)):
    text = (
        jax.jit(functools.partial(_loss, conv.implementation(name)))
        .lower(x, w)
        .as_text()
    )
    assert text.count('ssl_jax_onednn_conv') == calls, name


def test_tracing_before_load_is_a_one_line_error_and_builds_nothing(tmp_path):
  code = (
      'import jax.numpy as jnp; from ssl_jax.models import conv; '
      'conv._single_device = lambda: True; '
      'conv.conv_general_dilated(jnp.ones((1, 8, 8, 4)), '
      "jnp.ones((3, 3, 4, 4)), (1, 1), 'SAME', "
      "dimension_numbers=('NHWC', 'HWIO', 'NHWC'))"
  )
  env = dict(os.environ, SSL_JAX_CACHE=str(tmp_path))
  result = _python(code, env, check=False)
  assert result.returncode != 0
  assert 'call ssl_jax.models.onednn.load() before tracing' in result.stderr
  assert not list(tmp_path.iterdir())
