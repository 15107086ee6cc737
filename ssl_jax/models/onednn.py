"""oneDNN convolutions for XLA:CPU, as XLA FFI custom calls.

XLA:CPU runs 3x3 convolutions through Eigen at ~60 % of oneDNN's speed on
AVX-512 machines, and each kernel gradient also needs transposed copies of
its activations. ``ssl_jax/csrc/onednn_conv.cc`` wraps oneDNN's forward,
input-gradient and kernel-gradient convolutions (NHWC, HWIO, float32 or
bfloat16); this
module compiles it once per machine with the system C++ compiler against the
``onednn-cpu-gomp`` wheel and jaxlib's FFI headers, caches the library under
``$SSL_JAX_CACHE`` (default ``~/.cache/ssl_jax``) and registers the targets.

:func:`available` is False, and the encoders keep XLA's convolutions, where
any of that is missing (no wheel on this platform, no compiler), where the
build fails (a warning says why), or where ``SSL_JAX_ONEDNN=0``. Loading it sets
``OMP_WAIT_POLICY=PASSIVE`` unless the environment already sets it.
:func:`native_bf16` says whether bfloat16 convolutions should use it too.
"""

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from typing import Optional, Sequence

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

_SOURCE = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'csrc',
                       'onednn_conv.cc')
_TARGETS = {'forward': 'SslJaxOnednnConvForward',
            'input_grad': 'SslJaxOnednnConvInputGrad',
            'kernel_grad': 'SslJaxOnednnConvKernelGrad'}
_lock = threading.Lock()
_state = {}


def _onednn_prefix() -> Optional[str]:
  """The install prefix holding oneDNN's headers and ``libdnnl.so``."""
  for prefix in (os.environ.get('DNNL_ROOT'), sys.prefix):
    if prefix and os.path.exists(
        os.path.join(prefix, 'include', 'oneapi', 'dnnl', 'dnnl.hpp')) and (
            os.path.exists(os.path.join(prefix, 'lib', 'libdnnl.so'))):
      return prefix
  return None


def _build(prefix: str) -> str:
  """Compiles the custom calls (once per source, jaxlib and oneDNN) and
  returns the library's path."""
  compiler = os.environ.get('CXX') or shutil.which('g++') or shutil.which('c++')
  if compiler is None:
    raise RuntimeError('no C++ compiler found (set CXX or install g++)')
  with open(_SOURCE, 'rb') as f:
    source = f.read()
  digest = hashlib.sha256(source + jax.__version__.encode() +
                          prefix.encode()).hexdigest()[:16]
  cache = os.environ.get('SSL_JAX_CACHE',
                         os.path.join(os.path.expanduser('~'), '.cache',
                                      'ssl_jax'))
  out = os.path.join(cache, f'onednn_conv_{digest}.so')
  if os.path.exists(out):
    return out
  os.makedirs(cache, exist_ok=True)
  logging.info('Compiling the oneDNN convolutions into %s (once, ~5 s).', out)
  # Concurrent processes (multi-process tests) each build a private file and
  # rename it into place, which is atomic.
  fd, tmp = tempfile.mkstemp(suffix='.so', dir=cache)
  os.close(fd)
  cmd = [compiler, '-O2', '-std=c++17', '-shared', '-fPIC',
         '-I', jax.ffi.include_dir(), '-I', os.path.join(prefix, 'include'),
         _SOURCE, '-o', tmp, '-L', os.path.join(prefix, 'lib'), '-ldnnl',
         f'-Wl,-rpath,{os.path.join(prefix, "lib")}']
  result = subprocess.run(cmd, capture_output=True, text=True, check=False)
  if result.returncode != 0:
    os.unlink(tmp)
    raise RuntimeError(f'{" ".join(cmd)} failed:\n{result.stderr[-2000:]}')
  os.replace(tmp, out)
  return out


def available() -> bool:
  """Whether the oneDNN custom calls are built and registered (CPU only).

  Returns:
    True when convolutions can use :func:`conv`, building the library on the
    first call; False where oneDNN, a compiler or the opt-in is missing.
  """
  with _lock:
    if 'ok' in _state:
      return _state['ok']
    _state['ok'] = False
    if os.environ.get('SSL_JAX_ONEDNN', '1') == '0':
      return False
    prefix = _onednn_prefix()
    if prefix is None:
      return False
    # libgomp reads this when libdnnl loads it. By default its threads spin for
    # milliseconds after each convolution, taking a core from the XLA ops that
    # follow; passive waiting made the ResNet-18 step ~10 % faster (median of
    # 7 alternating process pairs, 2 cores).
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    try:
      lib = ctypes.cdll.LoadLibrary(_build(prefix))
      for name, symbol in _TARGETS.items():
        jax.ffi.register_ffi_target(
            f'ssl_jax_onednn_conv_{name}',
            jax.ffi.pycapsule(getattr(lib, symbol)), platform='cpu')
    except (OSError, RuntimeError) as e:
      logging.warning('oneDNN convolutions unavailable, XLA\'s are used: %s',
                      e)
      return False
    _state['bf16'] = bool(lib.SslJaxOnednnNativeBf16())
    _state['ok'] = True
    return True


def native_bf16() -> bool:
  """Whether bfloat16 convolutions should use oneDNN too.

  Returns:
    True where :func:`available` and the CPU has bfloat16 arithmetic
    (AVX512-BF16 or AMX), on which oneDNN's bfloat16 convolutions run
    2.6-6.4x faster than its float32 ones; without it oneDNN would emulate
    bfloat16, so XLA's convolutions are kept.
  """
  return available() and _state.get('bf16', False)


def _attrs(strides, pads):
  return dict(sh=np.int64(strides[0]), sw=np.int64(strides[1]),
              pt=np.int64(pads[0][0]), pb=np.int64(pads[0][1]),
              pl=np.int64(pads[1][0]), pr=np.int64(pads[1][1]))


def _call(name, shape, *args, strides, pads):
  if not available():
    raise RuntimeError('oneDNN convolutions are unavailable here (see '
                       'ssl_jax.models.onednn.available and its warning).')
  if len({a.dtype for a in args}) != 1 or args[0].dtype not in (
      jnp.float32, jnp.bfloat16):
    raise TypeError(f'oneDNN convolutions take two float32 or two bfloat16 '
                    f'arrays, got {[str(a.dtype) for a in args]}.')
  return jax.ffi.ffi_call(f'ssl_jax_onednn_conv_{name}',
                          jax.ShapeDtypeStruct(shape, args[0].dtype),
                          vmap_method='sequential')(*args,
                                                    **_attrs(strides, pads))


def conv(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
         pads: Sequence[Sequence[int]]) -> jax.Array:
  """NHWC x HWIO convolution, forward only (see ``models.conv``).

  Args:
    x: input [N, H, W, C], float32 or bfloat16.
    kernel: [KH, KW, C, O], of ``x``'s dtype.
    strides: (sh, sw).
    pads: ((top, bottom), (left, right)).

  Returns:
    [N, OH, OW, O].
  """
  shape = lax.conv_general_shape_tuple(x.shape, kernel.shape, strides, pads,
                                       ('NHWC', 'HWIO', 'NHWC'))
  return _call('forward', tuple(int(d) for d in shape), x, kernel,
               strides=strides, pads=pads)


def input_grad(g: jax.Array, kernel: jax.Array, x_shape: Sequence[int],
               strides: Sequence[int], pads) -> jax.Array:
  """The gradient of :func:`conv` in ``x``, given the output gradient ``g``."""
  return _call('input_grad', tuple(x_shape), g, kernel, strides=strides,
               pads=pads)


def kernel_grad(x: jax.Array, g: jax.Array, kernel_shape: Sequence[int],
                strides: Sequence[int], pads) -> jax.Array:
  """The gradient of :func:`conv` in ``kernel``, given ``g``."""
  return _call('kernel_grad', tuple(kernel_shape), x, g, strides=strides,
               pads=pads)
