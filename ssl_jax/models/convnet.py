"""The small ConvNet: four 3x3 conv layers with BatchNorm, ReLU and pooling."""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.models import conv


@jax.custom_vjp
def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 stride-2 max-pool whose gradient uses the forward pass's choice.

  Same values and gradient as ``nn.max_pool(x, (2, 2), (2, 2))``: each
  window's gradient goes to one element, its first maximum in row-major
  order; odd edges are dropped. The forward pass records which element that
  is (an int8 per window) and the backward pass scatters into it, so every
  window sends its gradient to exactly one element whatever XLA recomputes.
  (Comparing the input with the pooled output again in the backward pass
  does not work under jit: XLA may recompute either with other rounding, and
  windows then match nothing.) Written by hand because XLA:CPU's
  select-and-scatter (``nn.max_pool``'s gradient) makes the CPU-config
  ConvNet SimCLR step ~1.5x slower (``benchmarks/cpu_ops.py``).

  Args:
    x: [N, H, W, C].

  Returns:
    [N, H // 2, W // 2, C].
  """
  return _pool_fwd(x)[0]


def _windows(x):
  n, h, w, c = x.shape
  x = x[:, : h // 2 * 2, : w // 2 * 2]
  return x.reshape(n, h // 2, 2, w // 2, 2, c)


def _pool_fwd(x):
  win = _windows(x)
  a, b = win[:, :, 0, :, 0], win[:, :, 0, :, 1]
  c, d = win[:, :, 1, :, 0], win[:, :, 1, :, 1]
  top, bottom = jnp.maximum(a, b), jnp.maximum(c, d)
  # Strict comparisons: the first maximum wins, as in select-and-scatter.
  top_index = jnp.where(b > a, 1, 0)
  bottom_index = jnp.where(d > c, 3, 2)
  index = jnp.where(bottom > top, bottom_index, top_index).astype(jnp.int8)
  return jnp.maximum(top, bottom), (index, x.shape)


def _pool_bwd(residuals, g):
  index, shape = residuals
  n, h, w, c = shape
  slots = jnp.arange(4, dtype=jnp.int8).reshape(1, 1, 2, 1, 2, 1)
  chosen = index[:, :, None, :, None] == slots
  dx = jnp.where(chosen, g[:, :, None, :, None], 0).astype(g.dtype)
  dx = dx.reshape(n, h // 2 * 2, w // 2 * 2, c)
  if dx.shape != shape:  # Odd edges were dropped: they get no gradient.
    dx = jnp.pad(
        dx, ((0, 0), (0, h - dx.shape[1]), (0, w - dx.shape[2]), (0, 0))
    )
  return (dx,)


max_pool_2x2.defvjp(_pool_fwd, _pool_bwd)


class ConvNet(nn.Module):
  """Conv-BN-ReLU x4 with 2x2 max-pools after the first three, then a dense layer.

  At 32 px the feature maps are 32, 16, 8 and 4 pixels wide; the last one is
  average-pooled. ``dense=0`` drops the dense layer and returns the pooled
  last conv layer's pooled features.

  Attributes:
    widths: channels of the four conv layers.
    dense: width of the final dense layer (0 for none).
    dtype: computation dtype.
    convolutions: ``'xla'`` or ``'onednn'`` (see ``models/conv.py``).
  """

  widths: Sequence[int] = (128, 128, 128, 128)
  dense: int = 128
  dtype: Any = jnp.float32
  convolutions: str = 'xla'

  @nn.compact
  def __call__(self, x, train: bool = True):
    norm = lambda: nn.BatchNorm(
        use_running_average=not train, momentum=0.9, dtype=self.dtype
    )
    x = x.astype(self.dtype)
    for i, width in enumerate(self.widths):
      x = nn.Conv(
          width,
          (3, 3),
          use_bias=False,
          dtype=self.dtype,
          conv_general_dilated=conv.implementation(self.convolutions),
      )(x)
      x = nn.relu(norm()(x))
      if i < len(self.widths) - 1 and min(x.shape[1:3]) >= 2:
        x = max_pool_2x2(x)
    x = jnp.mean(x, axis=(1, 2))
    if self.dense:
      x = nn.relu(nn.Dense(self.dense, dtype=self.dtype)(x))
    return x
