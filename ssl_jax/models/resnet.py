"""ResNet-18/50 encoders with CIFAR (3x3, stride 1, no max-pool) or ImageNet stems."""

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


class BasicBlock(nn.Module):
  """Two 3x3 convs with a residual connection (ResNet-18/34)."""

  filters: int
  strides: int = 1
  dtype: Any = jnp.float32
  convolutions: str = 'xla'

  @nn.compact
  def __call__(self, x, train: bool = True):
    norm = lambda **kw: nn.BatchNorm(
        use_running_average=not train, momentum=0.9, dtype=self.dtype, **kw
    )
    conv = lambda f, k, s, name=None: _conv_layer(self.convolutions)(
        f, (k, k), (s, s), dtype=self.dtype, name=name
    )
    residual = x
    y = nn.relu(norm()(conv(self.filters, 3, self.strides)(x)))
    y = norm()(conv(self.filters, 3, 1)(y))
    if residual.shape != y.shape:
      residual = norm(name='proj_bn')(
          conv(self.filters, 1, self.strides, name='proj_conv')(residual)
      )
    return nn.relu(residual + y)


class BottleneckBlock(nn.Module):
  """1x1-3x3-1x1 bottleneck with 4x expansion (ResNet-50)."""

  filters: int
  strides: int = 1
  dtype: Any = jnp.float32
  convolutions: str = 'xla'

  @nn.compact
  def __call__(self, x, train: bool = True):
    norm = lambda **kw: nn.BatchNorm(
        use_running_average=not train, momentum=0.9, dtype=self.dtype, **kw
    )
    conv = lambda f, k, s, name=None: _conv_layer(self.convolutions)(
        f, (k, k), (s, s), dtype=self.dtype, name=name
    )
    residual = x
    y = nn.relu(norm()(conv(self.filters, 1, 1)(x)))
    y = nn.relu(norm()(conv(self.filters, 3, self.strides)(y)))
    y = norm()(conv(self.filters * 4, 1, 1)(y))
    if residual.shape != y.shape:
      residual = norm(name='proj_bn')(
          conv(self.filters * 4, 1, self.strides, name='proj_conv')(residual)
      )
    return nn.relu(residual + y)


class ResNet(nn.Module):
  """A ResNet trunk returning globally average-pooled features.

  Attributes:
    stage_sizes: blocks per stage.
    block: the block class.
    cifar_stem: 3x3 stride-1 stem without max-pool (small images) instead of
      the 7x7 stride-2 stem with a 3x3 stride-2 max-pool.
    width: filters of the first stage (doubled each stage).
    dtype: computation dtype.
    convolutions: ``'xla'`` or ``'onednn'`` (see ``models/conv.py``).
  """

  stage_sizes: Sequence[int]
  block: Any
  cifar_stem: bool = True
  width: int = 64
  dtype: Any = jnp.float32
  convolutions: str = 'xla'

  @nn.compact
  def __call__(self, x, train: bool = True):
    x = x.astype(self.dtype)
    conv = _conv_layer(self.convolutions)
    if self.cifar_stem:
      x = conv(self.width, (3, 3), dtype=self.dtype, name='stem_conv')(x)
    else:
      x = conv(
          self.width,
          (7, 7),
          (2, 2),
          padding=[(3, 3), (3, 3)],
          dtype=self.dtype,
          name='stem_conv',
      )(x)
    x = nn.BatchNorm(
        use_running_average=not train,
        momentum=0.9,
        dtype=self.dtype,
        name='stem_bn',
    )(x)
    x = nn.relu(x)
    if not self.cifar_stem:
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding='SAME')
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        strides = 2 if i > 0 and j == 0 else 1
        x = self.block(
            self.width * 2**i, strides, self.dtype, self.convolutions
        )(x, train=train)
    return jnp.mean(x, axis=(1, 2))


def resnet18(**kwargs) -> ResNet:
  return ResNet(stage_sizes=(2, 2, 2, 2), block=BasicBlock, **kwargs)


def resnet50(**kwargs) -> ResNet:
  return ResNet(stage_sizes=(3, 4, 6, 3), block=BottleneckBlock, **kwargs)
