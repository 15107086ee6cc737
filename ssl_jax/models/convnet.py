"""The small ConvNet: four 3x3 conv layers with BatchNorm, ReLU and pooling."""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.models import conv


@jax.custom_vjp
def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 stride-2 max-pool as a reshape and a max (odd edges are dropped).

  Same values as ``nn.max_pool(x, (2, 2), (2, 2))`` and the same gradient as
  ``jnp.max``: the window's gradient is split equally among the elements equal
  to its maximum (flat image regions do tie). The gradient is written out
  elementwise: XLA's select-and-scatter (``nn.max_pool``) made the SimCLR step
  ~25 % slower on CPU, and ``jnp.max``'s own gradient counts the ties with a
  reduction that XLA:CPU fused with the preceding layer's input-gradient
  convolution into one slow kernel (600 ms of a 2.8 s step).

  Args:
    x: [N, H, W, C].

  Returns:
    [N, H // 2, W // 2, C].
  """
  return _pool_fwd(x)[0]


def _windows(x):
  n, h, w, c = x.shape
  x = x[:, :h // 2 * 2, :w // 2 * 2]
  return x.reshape(n, h // 2, 2, w // 2, 2, c)


def _pool_fwd(x):
  y = _windows(x).max(axis=(2, 4))
  return y, (x, y)


def _pool_bwd(residuals, g):
  x, y = residuals
  n, h, w, c = x.shape
  windows = _windows(x)
  hit = (windows == y[:, :, None, :, None]).astype(x.dtype)
  # The tie count as three adds, not a reduction (see the docstring).
  count = (hit[:, :, 0, :, 0] + hit[:, :, 0, :, 1] + hit[:, :, 1, :, 0]
           + hit[:, :, 1, :, 1])
  dx = hit * (g / count)[:, :, None, :, None]
  dx = dx.reshape(n, h // 2 * 2, w // 2 * 2, c)
  if dx.shape != x.shape:  # Odd edges were dropped: they get no gradient.
    dx = jnp.pad(dx, ((0, 0), (0, h - dx.shape[1]), (0, w - dx.shape[2]),
                      (0, 0)))
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
  """
  widths: Sequence[int] = (128, 128, 128, 128)
  dense: int = 128
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9,
                                dtype=self.dtype)
    x = x.astype(self.dtype)
    for i, width in enumerate(self.widths):
      x = nn.Conv(width, (3, 3), use_bias=False, dtype=self.dtype,
                  conv_general_dilated=conv.conv_general_dilated)(x)
      x = nn.relu(norm()(x))
      if i < len(self.widths) - 1 and min(x.shape[1:3]) >= 2:
        x = max_pool_2x2(x)
    x = jnp.mean(x, axis=(1, 2))
    if self.dense:
      x = nn.relu(nn.Dense(self.dense, dtype=self.dtype)(x))
    return x
