"""Heads that sit on top of an encoder."""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp


class ProjectionHead(nn.Module):
  """An MLP projector: (Dense [-> BN] -> ReLU) per hidden layer, then Dense.

  Attributes:
    hidden_dims: widths of the hidden layers (empty for a linear projector).
    out_dim: output width.
    use_bn: BatchNorm after each hidden dense layer (global over devices).
    dtype: computation dtype.
  """

  hidden_dims: Sequence[int] = (2048,)
  out_dim: int = 128
  use_bn: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    for width in self.hidden_dims:
      x = nn.Dense(width, use_bias=not self.use_bn, dtype=self.dtype)(x)
      if self.use_bn:
        x = nn.BatchNorm(
            use_running_average=not train, momentum=0.9, dtype=self.dtype
        )(x)
      x = nn.relu(x)
    return nn.Dense(self.out_dim, dtype=self.dtype)(x)
