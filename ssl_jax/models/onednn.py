"""oneDNN convolutions for XLA:CPU, as XLA FFI custom calls (optional).

``ssl_jax/csrc/onednn_conv.cc`` wraps oneDNN's forward, input-gradient and
kernel-gradient convolutions (NHWC, HWIO, float32 or bfloat16). XLA:CPU's own
convolutions are slower on x86-64 (``docs/benchmarks.md``), so the CPU
configs choose these with ``config.cpu_convolutions='onednn'``.

Install oneDNN with ``pip install -e .[onednn]`` (Intel's ``onednn`` and
``onednn-devel`` wheels, x86-64 Linux), then build once per machine with

  python -m ssl_jax.tools.build_onednn

(or let the first run that asks for them build it: ``training.run.build``
calls :func:`load` before any model is traced). The library is compiled with
the system C++ compiler against oneDNN and jaxlib's FFI headers and cached
under ``$SSL_JAX_CACHE`` (default ``~/.cache/ssl_jax``). oneDNN is looked for
under ``$DNNL_ROOT``, else in this Python's prefix.

:func:`load` returns False, with a warning that says why, where any of that
is missing (no wheel on this platform, no compiler, a failed build, no CPU
engine); runs then use XLA's convolutions and record that they did.
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

_SOURCE = os.path.join(
    os.path.dirname(os.path.dirname(__file__)), 'csrc', 'onednn_conv.cc'
)
_TARGETS = {
    'forward': 'SslJaxOnednnConvForward',
    'input_grad': 'SslJaxOnednnConvInputGrad',
    'kernel_grad': 'SslJaxOnednnConvKernelGrad',
}
_lock = threading.Lock()
_state = {}


def _onednn_prefix() -> Optional[str]:
  """The install prefix holding oneDNN's headers and ``libdnnl.so``."""
  for prefix in (os.environ.get('DNNL_ROOT'), sys.prefix):
    if (
        prefix
        and os.path.exists(
            os.path.join(prefix, 'include', 'oneapi', 'dnnl', 'dnnl.hpp')
        )
        and (os.path.exists(os.path.join(prefix, 'lib', 'libdnnl.so')))
    ):
      return prefix
  return None


def _build(prefix: str) -> str:
  """Compiles the custom calls (once per source, jaxlib and oneDNN version and
  location) and returns the library's path."""
  compiler = os.environ.get('CXX') or shutil.which('g++') or shutil.which('c++')
  if compiler is None:
    raise RuntimeError('no C++ compiler found (set CXX or install g++)')
  with open(_SOURCE, 'rb') as f:
    source = f.read()
  version_header = os.path.join(
      prefix, 'include', 'oneapi', 'dnnl', 'dnnl_version.h'
  )
  with open(version_header, 'rb') as f:
    dnnl_version = f.read()
  digest = hashlib.sha256(
      source + dnnl_version + jax.__version__.encode() + prefix.encode()
  ).hexdigest()[:16]
  cache = os.environ.get(
      'SSL_JAX_CACHE',
      os.path.join(os.path.expanduser('~'), '.cache', 'ssl_jax'),
  )
  out = os.path.join(cache, f'onednn_conv_{digest}.so')
  if os.path.exists(out):
    return out
  os.makedirs(cache, exist_ok=True)
  logging.info('Compiling the oneDNN convolutions into %s (once, ~5 s).', out)
  # Concurrent processes (multi-process tests) each build a private file and
  # rename it into place, which is atomic.
  fd, tmp = tempfile.mkstemp(suffix='.so', dir=cache)
  os.close(fd)
  cmd = [
      compiler,
      '-O2',
      '-std=c++17',
      '-shared',
      '-fPIC',
      '-I',
      jax.ffi.include_dir(),
      '-I',
      os.path.join(prefix, 'include'),
      _SOURCE,
      '-o',
      tmp,
      '-L',
      os.path.join(prefix, 'lib'),
      '-ldnnl',
      f'-Wl,-rpath,{os.path.join(prefix, "lib")}',
      # DT_RPATH rather than DT_RUNPATH: it also serves libdnnl's own
      # dependencies (libtbb, libsycl, ...), and libdnnl has no RUNPATH.
      '-Wl,--disable-new-dtags',
  ]
  result = subprocess.run(cmd, capture_output=True, text=True, check=False)
  if result.returncode != 0:
    os.unlink(tmp)
    raise RuntimeError(f'{" ".join(cmd)} failed:\n{result.stderr[-2000:]}')
  os.replace(tmp, out)
  return out


def load() -> bool:
  """Builds (once per machine) and registers the custom calls; idempotent.

  Call it before tracing a model that uses them (``training.run.build``
  does); tracing itself never builds anything.

  Returns:
    True when convolutions can use :func:`conv`; False where oneDNN, a
    compiler or a CPU engine is missing (a warning says which).
  """
  with _lock:
    if 'ok' in _state:
      return _state['ok']
    _state['ok'] = False
    prefix = _onednn_prefix()
    if prefix is None:
      logging.warning(
          "oneDNN convolutions unavailable, XLA's are used: no "
          'oneDNN under $DNNL_ROOT or %s; pip install -e '
          '".[onednn]" (x86-64 Linux).',
          sys.prefix,
      )
      return False
    # The `onednn` wheels are SYCL builds whose CPU engine is the OpenCL CPU
    # runtime beside libdnnl; its ICD file points at a path of Intel's build
    # machine, so the OpenCL loader is pointed at the runtime itself.
    intelocl = os.path.join(prefix, 'lib', 'libintelocl.so')
    if os.path.exists(intelocl):
      icds = os.environ.get('OCL_ICD_FILENAMES', '')
      if intelocl not in icds.split(':'):
        os.environ['OCL_ICD_FILENAMES'] = ':'.join(
            filter(None, [intelocl, icds])
        )
    try:
      lib = ctypes.cdll.LoadLibrary(_build(prefix))
      if not lib.SslJaxOnednnEngineOk():
        raise RuntimeError('oneDNN found no CPU engine (its SYCL CPU device)')
      for name, symbol in _TARGETS.items():
        jax.ffi.register_ffi_target(
            f'ssl_jax_onednn_conv_{name}',
            jax.ffi.pycapsule(getattr(lib, symbol)),
            platform='cpu',
        )
    except (OSError, RuntimeError) as e:
      logging.warning("oneDNN convolutions unavailable, XLA's are used: %s", e)
      return False
    _state['bf16'] = bool(lib.SslJaxOnednnNativeBf16())
    _state['ok'] = True
    return True


def loaded() -> bool:
  """Whether :func:`load` succeeded (never builds or loads anything)."""
  return _state.get('ok', False)


def native_bf16() -> bool:
  """Whether bfloat16 convolutions should use oneDNN too.

  Returns:
    True where :func:`loaded` and the CPU has bfloat16 arithmetic
    (AVX512-BF16 or AMX), on which oneDNN's bfloat16 convolutions run
    2.6-6.4x faster than its float32 ones; without it oneDNN would emulate
    bfloat16, so XLA's convolutions are kept.
  """
  return loaded() and _state.get('bf16', False)


def _attrs(strides, pads):
  return dict(
      sh=np.int64(strides[0]),
      sw=np.int64(strides[1]),
      pt=np.int64(pads[0][0]),
      pb=np.int64(pads[0][1]),
      pl=np.int64(pads[1][0]),
      pr=np.int64(pads[1][1]),
  )


def _call(name, shape, *args, strides, pads):
  if not loaded():
    raise RuntimeError(
        'the oneDNN convolutions are not loaded; call '
        'ssl_jax.models.onednn.load() before tracing.'
    )
  if len({a.dtype for a in args}) != 1 or args[0].dtype not in (
      jnp.float32,
      jnp.bfloat16,
  ):
    raise TypeError(
        'oneDNN convolutions take two float32 or two bfloat16 '
        f'arrays, got {[str(a.dtype) for a in args]}.'
    )
  return jax.ffi.ffi_call(
      f'ssl_jax_onednn_conv_{name}',
      jax.ShapeDtypeStruct(shape, args[0].dtype),
      vmap_method='sequential',
  )(*args, **_attrs(strides, pads))


def conv(
    x: jax.Array,
    kernel: jax.Array,
    strides: Sequence[int],
    pads: Sequence[Sequence[int]],
) -> jax.Array:
  """NHWC x HWIO convolution, forward only (see ``models.conv``).

  Args:
    x: input [N, H, W, C], float32 or bfloat16.
    kernel: [KH, KW, C, O], of ``x``'s dtype.
    strides: (sh, sw).
    pads: ((top, bottom), (left, right)).

  Returns:
    [N, OH, OW, O].
  """
  shape = lax.conv_general_shape_tuple(
      x.shape, kernel.shape, strides, pads, ('NHWC', 'HWIO', 'NHWC')
  )
  return _call(
      'forward',
      tuple(int(d) for d in shape),
      x,
      kernel,
      strides=strides,
      pads=pads,
  )


def input_grad(
    g: jax.Array,
    kernel: jax.Array,
    x_shape: Sequence[int],
    strides: Sequence[int],
    pads,
) -> jax.Array:
  """The gradient of :func:`conv` in ``x``, given the output gradient ``g``."""
  return _call(
      'input_grad', tuple(x_shape), g, kernel, strides=strides, pads=pads
  )


def kernel_grad(
    x: jax.Array,
    g: jax.Array,
    kernel_shape: Sequence[int],
    strides: Sequence[int],
    pads,
) -> jax.Array:
  """The gradient of :func:`conv` in ``kernel``, given ``g``."""
  return _call(
      'kernel_grad', tuple(kernel_shape), x, g, strides=strides, pads=pads
  )
