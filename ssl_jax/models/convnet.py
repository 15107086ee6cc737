"""The small ConvNet: four 3x3 conv layers with BatchNorm, ReLU and pooling."""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from ssl_jax.models import conv


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
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = jnp.mean(x, axis=(1, 2))
    if self.dense:
      x = nn.relu(nn.Dense(self.dense, dtype=self.dtype)(x))
    return x
