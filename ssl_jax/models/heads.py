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
    out_bn: BatchNorm without bias on the output (MoCo v3's).
    out_bn_scale: that output BatchNorm learns a scale (google-research/
      simclr's last projection layer); MoCo v3's has none.
    out_bias: the output Dense layer has a bias (unless ``out_bn`` follows);
      MoCo v3's predictor has none.
    dtype: computation dtype.
  """

  hidden_dims: Sequence[int] = (2048,)
  out_dim: int = 128
  use_bn: bool = True
  out_bn: bool = False
  out_bn_scale: bool = False
  out_bias: bool = True
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
    x = nn.Dense(
        self.out_dim,
        use_bias=self.out_bias and not self.out_bn,
        dtype=self.dtype,
    )(x)
    if self.out_bn:
      x = nn.BatchNorm(
          use_running_average=not train,
          momentum=0.9,
          use_scale=self.out_bn_scale,
          use_bias=False,
          dtype=self.dtype,
      )(x)
    return x


class DINOHead(nn.Module):
  """DINO's head: an MLP to a bottleneck, l2-normalised, then K prototypes.

  The hidden layers use the exact (erf) GELU, as DINO's code and lightly's
  ``DINOProjectionHead`` do (torch's ``nn.GELU``). The prototype layer is
  weight-normalised (each prototype a unit vector direction,
  ``flax.linen.WeightNorm``); with ``norm_last_layer`` its scale is fixed at
  1, the setting DINO recommends for stability.

  Attributes:
    hidden_dims: widths of the hidden layers (GELU).
    bottleneck_dim: width of the normalised bottleneck.
    out_dim: number of prototypes K.
    use_bn: BatchNorm after each hidden layer (DINO's ResNet setting).
    norm_last_layer: fix the prototypes' norm at 1 (no learned scale).
    dtype: computation dtype.
  """

  hidden_dims: Sequence[int] = (2048, 2048)
  bottleneck_dim: int = 256
  out_dim: int = 4096
  use_bn: bool = False
  norm_last_layer: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    for width in self.hidden_dims:
      x = nn.Dense(width, dtype=self.dtype)(x)
      if self.use_bn:
        x = nn.BatchNorm(
            use_running_average=not train, momentum=0.9, dtype=self.dtype
        )(x)
      # Exact GELU (erf), as DINO's and lightly's heads (torch's nn.GELU);
      # flax's default tanh approximation differs by up to ~5e-4.
      x = nn.gelu(x, approximate=False)
    x = nn.Dense(self.bottleneck_dim, dtype=self.dtype)(x)
    x = x.astype(jnp.float32)
    x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    return nn.WeightNorm(
        nn.Dense(self.out_dim, use_bias=False, name='prototypes'),
        use_scale=not self.norm_last_layer,
    )(x)
