"""Wide ResNets with pre-activation (BN-LeakyReLU(0.1)-Conv) basic blocks."""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from ssl_jax.models import conv as conv_lib


def _conv_layer(convolutions: str):
  """``nn.Conv`` without bias, on the ``convolutions`` implementation."""
  return functools.partial(
      nn.Conv,
      use_bias=False,
      conv_general_dilated=conv_lib.implementation(convolutions),
  )


def _bn_act(x, train, dtype, name=None):
  x = nn.BatchNorm(
      use_running_average=not train, momentum=0.9, dtype=dtype, name=name
  )(x)
  return nn.leaky_relu(x, 0.1)


class PreActBlock(nn.Module):
  """BN-LReLU-Conv3x3-BN-LReLU-Conv3x3 with an identity or 1x1-conv shortcut."""

  filters: int
  strides: int = 1
  dtype: Any = jnp.float32
  convolutions: str = 'xla'

  @nn.compact
  def __call__(self, x, train: bool = True):
    conv = _conv_layer(self.convolutions)
    y = _bn_act(x, train, self.dtype)
    shortcut = x
    if x.shape[-1] != self.filters or self.strides != 1:
      shortcut = conv(
          self.filters,
          (1, 1),
          (self.strides, self.strides),
          dtype=self.dtype,
          name='shortcut',
      )(y)
    y = conv(
        self.filters, (3, 3), (self.strides, self.strides), dtype=self.dtype
    )(y)
    y = _bn_act(y, train, self.dtype)
    y = conv(self.filters, (3, 3), dtype=self.dtype)(y)
    return shortcut + y


class WideResNet(nn.Module):
  """An initial 3x3 conv, groups of pre-activation blocks, BN-LReLU, global pool.

  Attributes:
    blocks_per_group: basic blocks in each group.
    widths: base widths of the groups, multiplied by ``widen_factor``.
    widen_factor: k in WRN-d-k.
    dtype: computation dtype.
    convolutions: ``'xla'`` or ``'onednn'`` (see ``models/conv.py``).
  """

  blocks_per_group: int
  widths: Sequence[int] = (16, 32, 64)
  widen_factor: int = 2
  dtype: Any = jnp.float32
  convolutions: str = 'xla'

  @nn.compact
  def __call__(self, x, train: bool = True):
    x = _conv_layer(self.convolutions)(
        16, (3, 3), dtype=self.dtype, name='stem_conv'
    )(x.astype(self.dtype))
    for i, width in enumerate(self.widths):
      for j in range(self.blocks_per_group):
        strides = 2 if i > 0 and j == 0 else 1
        x = PreActBlock(
            width * self.widen_factor, strides, self.dtype, self.convolutions
        )(x, train=train)
    x = _bn_act(x, train, self.dtype, name='final_bn')
    return jnp.mean(x, axis=(1, 2))


def wrn(depth: int, widen_factor: int, **kwargs) -> WideResNet:
  """WRN-depth-k with three groups: depth = 6 n + 4."""
  if (depth - 4) % 6:
    raise ValueError(f'WRN depth must be 6n+4 (e.g. 28), got {depth}.')
  return WideResNet(
      blocks_per_group=(depth - 4) // 6, widen_factor=widen_factor, **kwargs
  )


def wrn45_2(**kwargs) -> WideResNet:
  """The STL-10 report's WRN-45-2: 4 groups of 5 basic blocks, width factor 2."""
  return WideResNet(
      blocks_per_group=5, widths=(16, 32, 64, 128), widen_factor=2, **kwargs
  )
