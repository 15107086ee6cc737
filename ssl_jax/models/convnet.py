"""The small ConvNet: four 3x3 conv layers with BatchNorm, ReLU and pooling."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class ConvNet(nn.Module):
  """Conv-BN-ReLU x4 with 2x2 max-pools after the first three, then a dense layer.

  At 32 px the feature maps are 32, 16, 8 and 4 pixels wide; the last one is
  average-pooled. ``dense=0`` drops the dense layer and returns the pooled
  ``width``-dimensional conv features.

  Attributes:
    width: channels of every conv layer.
    dense: width of the final dense layer (0 for none).
    dtype: computation dtype.
  """
  width: int = 128
  dense: int = 128
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9,
                                dtype=self.dtype)
    x = x.astype(self.dtype)
    for i in range(4):
      x = nn.Conv(self.width, (3, 3), use_bias=False, dtype=self.dtype)(x)
      x = nn.relu(norm()(x))
      if i < 3 and min(x.shape[1:3]) >= 2:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = jnp.mean(x, axis=(1, 2))
    if self.dense:
      x = nn.relu(nn.Dense(self.dense, dtype=self.dtype)(x))
    return x
