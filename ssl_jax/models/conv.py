"""The encoders' convolutions: XLA's, or oneDNN's on CPU; CPU compiler options.

``config.cpu_convolutions`` picks the implementation every encoder passes to
``nn.Conv`` (:func:`implementation`):

* ``'xla'`` (the default): ``lax.conv_general_dilated`` everywhere.
* ``'onednn'``: on the CPU backend, on a single device, 2-D NHWC/HWIO
  convolutions run through oneDNN (``models/onednn.py``) for the forward pass
  and both gradients: in float32 where the output map has at least
  :data:`ONEDNN_MIN_PIXELS` pixels, and in bfloat16 at every size where the
  CPU has bfloat16 arithmetic. Everything else, and GPU and TPU always, stays
  on ``lax.conv_general_dilated``. Every gradient is a linear function of the
  saved input and kernel (no forward decision is re-derived), tested against
  ``jax.grad`` of ``lax.conv_general_dilated`` alone and inside compiled real
  models at the configs' shapes.

:func:`resolve` turns the configured choice into what a mesh will run,
loading oneDNN first (so tracing never builds it).
"""

import functools
from typing import Callable, Optional, Sequence

from absl import logging
import jax
from jax import lax
import jax.numpy as jnp

from ssl_jax.models import onednn

_DIMS = ('NHWC', 'HWIO', 'NHWC')

CONVOLUTIONS = ('xla', 'onednn')

# XLA:CPU (jaxlib 0.10) hands lone convolutions, dots and reductions to
# YNNPACK, whose convolutions (and especially their kernel gradients) are
# slower than XLA's own Eigen kernels at this project's 3x3 layers, so only
# dots and reductions stay on it (the same as XLA_FLAGS=
# --xla_cpu_experimental_ynn_fusion_type=-individual_convolution). Every jit
# that runs an encoder passes ``compiler_options(mesh)``.
CPU_COMPILER_OPTIONS = {
    'xla_cpu_experimental_ynn_fusion_type': (
        'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE'
    )
}


def compiler_options(mesh: jax.sharding.Mesh) -> Optional[dict[str, str]]:
  """XLA options for programs on ``mesh``: :data:`CPU_COMPILER_OPTIONS` on CPU."""
  if mesh.devices.flat[0].platform == 'cpu':
    return dict(CPU_COMPILER_OPTIONS)
  return None


def _pads(padding, kernel_hw, strides, in_hw):
  if not isinstance(padding, str):
    return tuple(tuple(p) for p in padding)
  return tuple(lax.padtype_to_pads(in_hw, kernel_hw, strides, padding))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _onednn_conv(x, kernel, strides, pads):
  return onednn.conv(x, kernel, strides, pads)


def _onednn_conv_fwd(x, kernel, strides, pads):
  return onednn.conv(x, kernel, strides, pads), (x, kernel)


def _onednn_conv_bwd(strides, pads, residuals, g):
  x, kernel = residuals
  return (
      onednn.input_grad(g, kernel, x.shape, strides, pads),
      onednn.kernel_grad(x, g, kernel.shape, strides, pads),
  )


_onednn_conv.defvjp(_onednn_conv_fwd, _onednn_conv_bwd)

# In float32, oneDNN beats Eigen where the output has at least this many
# pixels per image (ResNet-18's 32x32 to 8x8 stages); on 4x4 maps Eigen is
# faster.
ONEDNN_MIN_PIXELS = 64


def _single_device() -> bool:
  # XLA's SPMD partitioner cannot split a custom call over the batch: it
  # would gather the global batch onto every device. So meshes of several
  # (fake) CPU devices keep XLA's convolutions.
  return jax.device_count() == 1


def _use_onednn(lhs, rhs, strides, pads):
  if lhs.dtype != rhs.dtype or lhs.dtype not in (jnp.float32, jnp.bfloat16):
    return False
  if lhs.dtype == jnp.bfloat16:
    # With bf16 arithmetic oneDNN wins at every size, 4x4 maps included (3x3
    # 512->512 forward and both gradients: 56 against XLA's 89 ms).
    return _single_device() and onednn.native_bf16()
  _, out_h, out_w, _ = lax.conv_general_shape_tuple(
      lhs.shape, rhs.shape, strides, pads, _DIMS
  )
  return out_h * out_w >= ONEDNN_MIN_PIXELS and _single_device()


def conv_general_dilated(
    lhs,
    rhs,
    window_strides: Sequence[int],
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision=None,
    preferred_element_type=None,
):
  """Drop-in for ``lax.conv_general_dilated`` with oneDNN's on CPU.

  When jax's default backend is the CPU, 2-D NHWC/HWIO convolutions without
  dilation or feature groups run through oneDNN (float32, or bfloat16 on
  CPUs with bfloat16 arithmetic; large enough maps, one device). Anything
  else, and everything on GPU/TPU, is passed to ``lax.conv_general_dilated``
  unchanged. :func:`ssl_jax.models.onednn.load` must have succeeded.

  Args:
    lhs: input [N, H, W, C].
    rhs: kernel [KH, KW, C, O].
    window_strides: strides.
    padding: ``'SAME'``, ``'VALID'`` or explicit pairs.
    lhs_dilation: must be None or ones for the fast path.
    rhs_dilation: must be None or ones for the fast path.
    dimension_numbers: must be NHWC/HWIO/NHWC (or None with 4-D NHWC inputs
      given by flax) for the fast path.
    feature_group_count: must be 1 for the fast path.
    batch_group_count: must be 1 for the fast path.
    precision: passed through on the XLA path.
    preferred_element_type: passed through on the XLA path.

  Returns:
    The convolution output [N, H', W', O].
  """
  dims_ok = dimension_numbers is None or (
      lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
      == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _DIMS)
  )
  eligible = (
      jax.default_backend() == 'cpu'
      and lhs.ndim == 4
      and dimension_numbers is not None
      and dims_ok
      and feature_group_count == 1
      and batch_group_count == 1
      and all(d == 1 for d in lhs_dilation or (1, 1))
      and all(d == 1 for d in rhs_dilation or (1, 1))
      and preferred_element_type is None
  )
  if eligible:
    strides = tuple(int(s) for s in window_strides)
    pads = _pads(padding, rhs.shape[:2], strides, lhs.shape[1:3])
    if _use_onednn(lhs, rhs, strides, pads):
      if not onednn.loaded():
        raise RuntimeError(
            "cpu_convolutions='onednn' but the oneDNN library is not loaded: "
            'call ssl_jax.models.onednn.load() before tracing (training.run.'
            "build does), or use cpu_convolutions='xla'."
        )
      return _onednn_conv(lhs, rhs, strides, pads)
  return lax.conv_general_dilated(
      lhs,
      rhs,
      window_strides,
      padding,
      lhs_dilation=lhs_dilation,
      rhs_dilation=rhs_dilation,
      dimension_numbers=dimension_numbers,
      feature_group_count=feature_group_count,
      batch_group_count=batch_group_count,
      precision=precision,
      preferred_element_type=preferred_element_type,
  )


def implementation(name: str) -> Callable[..., jax.Array]:
  """The ``conv_general_dilated`` that encoders give ``nn.Conv``.

  Args:
    name: ``'xla'`` or ``'onednn'`` (``config.cpu_convolutions``).

  Returns:
    ``lax.conv_general_dilated`` or :func:`conv_general_dilated`.
  """
  if name not in CONVOLUTIONS:
    raise ValueError(f'cpu_convolutions={name!r}; use one of {CONVOLUTIONS}.')
  return lax.conv_general_dilated if name == 'xla' else conv_general_dilated


def resolve(name: str, mesh: jax.sharding.Mesh) -> str:
  """What ``cpu_convolutions=name`` runs on ``mesh``; loads oneDNN if needed.

  Args:
    name: the configured ``cpu_convolutions``.
    mesh: the run's device mesh.

  Returns:
    ``'onednn'`` where it was asked for, the process has one CPU device
    and oneDNN loads; ``'xla'`` otherwise (logged when it differs from
    ``name``).
  """
  if name != 'onednn':
    return 'xla'
  # The same rule as tracing applies (conv_general_dilated): the CPU backend
  # and one device in the process, as a custom call cannot be split over a
  # batch-sharded mesh, and GPUs and TPUs have their own convolutions.
  if jax.default_backend() != 'cpu' or not _single_device():
    logging.info(
        "cpu_convolutions='onednn' applies to a process with one CPU device; "
        "this one (%d %s devices, a mesh of %d) uses XLA's.",
        jax.device_count(),
        jax.default_backend(),
        mesh.devices.size,
    )
    return 'xla'
  return 'onednn' if onednn.load() else 'xla'
