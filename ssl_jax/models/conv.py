"""Convolutions with faster CPU paths, and the CPU compiler options.

On the CPU backend, 2-D NHWC/HWIO convolutions take one of two custom-VJP
paths:
- oneDNN (``models/onednn.py``) for the forward pass and both gradients,
  where it is built, on a single device: in float32 where the output map has
  at least ``_ONEDNN_MIN_PIXELS`` pixels, and in bfloat16 at every size where
  the CPU has bfloat16 arithmetic (``onednn.native_bf16``). In float32 it runs
  ResNet's 3x3 layers 1.2-2.7x faster than XLA:CPU's Eigen kernels and needs
  none of the transposed activation copies XLA makes for each kernel
  gradient; in bfloat16 (AMX) 1.6-13x faster than XLA's bfloat16 ones.
- Otherwise XLA's own kernels, with two fixes where they are weak: a
  few-channel layer (the RGB stem: kh*kw*c <= 64) gets its kernel gradient as
  one [N, K*K*C] x [N, O] im2col matmul (1.7x faster), and a strided layer
  gets its input gradient as stride**2 stride-1 phase convolutions instead of
  one convolution over a zero-dilated gradient (~2x).
Gradients are exact up to float summation order and tested against
``jax.grad`` of ``lax.conv_general_dilated``. GPU and TPU always get
``lax.conv_general_dilated``. Pass it to flax as
``nn.Conv(..., conv_general_dilated=conv_general_dilated)``."""

import functools
import os
from typing import Optional, Sequence

import jax
from jax import lax
import jax.numpy as jnp

from ssl_jax.models import onednn

_DIMS = ('NHWC', 'HWIO', 'NHWC')

# XLA:CPU (jaxlib 0.10) hands lone convolutions, dots and reductions to
# YNNPACK. Its convolutions run this project's 3x3 layers ~1.3x slower than
# XLA's own (Eigen) kernels and their kernel gradients 3x slower, so only dots
# and reductions stay on it (the same as XLA_FLAGS=
# --xla_cpu_experimental_ynn_fusion_type=-individual_convolution). The
# ConvNet SimCLR step is ~1.6x faster for it (benchmarks/suite.py). Every jit
# that runs an encoder passes ``compiler_options(mesh)``.
CPU_COMPILER_OPTIONS = {
    'xla_cpu_experimental_ynn_fusion_type':
        'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE'}


def compiler_options(mesh: jax.sharding.Mesh) -> Optional[dict[str, str]]:
  """XLA options for programs on ``mesh``: :data:`CPU_COMPILER_OPTIONS` on CPU."""
  if mesh.devices.flat[0].platform == 'cpu':
    return dict(CPU_COMPILER_OPTIONS)
  return None


# Kernel sizes (K*K*C) whose gradient is one im2col matmul; larger ones are
# left to XLA.
_IM2COL_MAX = 64


def _pads(padding, kernel_hw, strides, in_hw):
  if not isinstance(padding, str):
    return tuple(tuple(p) for p in padding)
  return tuple(lax.padtype_to_pads(in_hw, kernel_hw, strides, padding))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv(x, kernel, strides, pads):
  return lax.conv_general_dilated(x, kernel, strides, pads,
                                  dimension_numbers=_DIMS)


def _conv_fwd(x, kernel, strides, pads):
  return _conv(x, kernel, strides, pads), (x, kernel)


def _phase_range(size, lo, stride, phase):
  """The q with ``0 <= stride * q + phase - lo < size`` as ``[qa, qb)``."""
  return -((phase - lo) // stride), -((phase - lo - size) // stride)


def _strided_input_grad(g, kernel, strides, pads, x_hw):
  """The input gradient of a strided conv as stride**2 stride-1 convs.

  XLA computes it as one convolution over ``g`` dilated with zeros, which
  wastes (1 - 1/stride**2) of its work (4x slower than the forward conv on
  CPU for stride 2). Input pixel ``m = s*q + phase - lo`` only meets the
  kernel taps ``phase + s*j``, so each phase is a small stride-1 correlation
  of ``g`` with those taps, flipped; the phases are then interleaved.

  Args:
    g: output gradient [N, OH, OW, O].
    kernel: [KH, KW, C, O].
    strides: (sh, sw).
    pads: ((lo, hi), (lo, hi)) of the forward conv.
    x_hw: the input's (H, W).

  Returns:
    dx [N, H, W, C].
  """
  n, c = g.shape[0], kernel.shape[2]
  ranges = [[_phase_range(x_hw[d], pads[d][0], strides[d], p)
             for p in range(strides[d])] for d in range(2)]
  qa = [min(r[0] for r in ranges[d]) for d in range(2)]
  qb = [max(r[1] for r in ranges[d]) for d in range(2)]
  rows = []
  for ph in range(strides[0]):
    cols = []
    for pw in range(strides[1]):
      sub = kernel[ph::strides[0], pw::strides[1]]
      taps = sub.shape[:2]
      if 0 in taps:  # No tap of this phase: its pixels get no gradient.
        cols.append(jnp.zeros((n, qb[0] - qa[0], qb[1] - qa[1], c), g.dtype))
        continue
      sub = jnp.flip(sub, (0, 1)).transpose(0, 1, 3, 2)
      # out[o] = sum_u gpad[o + u] sub[u] at o = q - qa (see the docstring).
      padding = []
      for d in range(2):
        low = taps[d] - 1 - qa[d]
        high = (qb[d] - qa[d]) - g.shape[1 + d] - low + taps[d] - 1
        padding.append((low, high))
      cols.append(lax.conv_general_dilated(g, sub, (1, 1), padding,
                                           dimension_numbers=_DIMS))
    rows.append(jnp.stack(cols, axis=3))
  full = jnp.stack(rows, axis=2)  # [N, QH, sh, QW, sw, C]
  full = full.reshape(n, strides[0] * (qb[0] - qa[0]),
                      strides[1] * (qb[1] - qa[1]), c)
  # Row p of ``full`` is padded input row m + lo = s * qa + p.
  top = pads[0][0] - strides[0] * qa[0]
  left = pads[1][0] - strides[1] * qa[1]
  return full[:, top:top + x_hw[0], left:left + x_hw[1]]


def _conv_bwd(strides, pads, residuals, g):
  x, kernel = residuals
  conv = lambda x_, k_: lax.conv_general_dilated(x_, k_, strides, pads,
                                                 dimension_numbers=_DIMS)
  if max(strides) > 1:
    dx = _strided_input_grad(g, kernel, strides, pads, x.shape[1:3])
  else:
    (dx,) = jax.vjp(lambda x_: conv(x_, kernel), x)[1](g)
  kh, kw, c, o = kernel.shape
  if kh * kw * c > _IM2COL_MAX:
    (dkernel,) = jax.vjp(lambda k_: conv(x, k_), kernel)[1](g)
    return dx.astype(x.dtype), dkernel
  out_h, out_w = g.shape[1:3]
  xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  windows = [lax.slice(xp, (0, i, j, 0),
                       (xp.shape[0], i + (out_h - 1) * strides[0] + 1,
                        j + (out_w - 1) * strides[1] + 1, c),
                       (1, strides[0], strides[1], 1))
             for i in range(kh) for j in range(kw)]
  patches = jnp.concatenate(windows, axis=-1).reshape(-1, kh * kw * c)
  dkernel = jnp.matmul(patches.T, g.reshape(-1, o),
                       preferred_element_type=jnp.float32)
  return dx.astype(x.dtype), dkernel.reshape(kh, kw, c, o).astype(kernel.dtype)


_conv.defvjp(_conv_fwd, _conv_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _onednn_conv(x, kernel, strides, pads):
  return onednn.conv(x, kernel, strides, pads)


def _onednn_conv_fwd(x, kernel, strides, pads):
  return onednn.conv(x, kernel, strides, pads), (x, kernel)


def _onednn_conv_bwd(strides, pads, residuals, g):
  x, kernel = residuals
  return (onednn.input_grad(g, kernel, x.shape, strides, pads),
          onednn.kernel_grad(x, g, kernel.shape, strides, pads))


_onednn_conv.defvjp(_onednn_conv_fwd, _onednn_conv_bwd)

# In float32, oneDNN beats Eigen where the output has at least this many
# pixels per image (ResNet-18's 32x32 to 8x8 stages); on 4x4 maps Eigen is
# faster.
_ONEDNN_MIN_PIXELS = int(os.environ.get('SSL_JAX_ONEDNN_MIN_PIXELS', 64))


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
      lhs.shape, rhs.shape, strides, pads, _DIMS)
  return (out_h * out_w >= _ONEDNN_MIN_PIXELS and _single_device()
          and onednn.available())


def conv_general_dilated(lhs, rhs, window_strides: Sequence[int], padding,
                         lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count: int = 1,
                         batch_group_count: int = 1, precision=None,
                         preferred_element_type=None):
  """Drop-in for ``lax.conv_general_dilated`` with faster CPU paths.

  When jax's default backend is the CPU, 2-D NHWC/HWIO convolutions without
  dilation or feature groups run through oneDNN (float32, or bfloat16 on
  CPUs with bfloat16 arithmetic; large enough maps, one device, library
  built) or else, for few-channel (``kh * kw * c <= 64``)
  or strided layers, through the custom VJP above. Anything else, and
  everything on GPU/TPU (whose convolution libraries do not have XLA:CPU's
  weak spots), is passed to ``lax.conv_general_dilated`` unchanged.

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
    precision: passed through on the fallback path.
    preferred_element_type: passed through on the fallback path.

  Returns:
    The convolution output [N, H', W', O].
  """
  dims_ok = dimension_numbers is None or (
      lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
      == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _DIMS))
  eligible = (jax.default_backend() == 'cpu' and lhs.ndim == 4
              and dimension_numbers is not None and dims_ok
              and feature_group_count == 1 and batch_group_count == 1
              and all(d == 1 for d in (lhs_dilation or (1, 1)))
              and all(d == 1 for d in (rhs_dilation or (1, 1)))
              and preferred_element_type is None)
  if eligible:
    strides = tuple(int(s) for s in window_strides)
    pads = _pads(padding, rhs.shape[:2], strides, lhs.shape[1:3])
    if _use_onednn(lhs, rhs, strides, pads):
      return _onednn_conv(lhs, rhs, strides, pads)
    if (rhs.shape[0] * rhs.shape[1] * rhs.shape[2] <= _IM2COL_MAX
        or max(strides) > 1):
      return _conv(lhs, rhs, strides, pads)
  return lax.conv_general_dilated(
      lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
      rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
      feature_group_count=feature_group_count,
      batch_group_count=batch_group_count, precision=precision,
      preferred_element_type=preferred_element_type)
