"""Encoders and heads, selected by name from a plain dict registry."""

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from ssl_jax.models import convnet
from ssl_jax.models import heads
from ssl_jax.models import resnet
from ssl_jax.models import wide_resnet

ProjectionHead = heads.ProjectionHead

ENCODERS = {
    'convnet': lambda m: convnet.ConvNet(
        widths=tuple(m.conv_widths) or (m.width,) * 4, dense=m.dense),
    'resnet18': lambda m: resnet.resnet18(cifar_stem=m.cifar_stem),
    'resnet50': lambda m: resnet.resnet50(cifar_stem=m.cifar_stem),
    'wrn28_2': lambda m: wide_resnet.wrn(28, 2),
    'wrn45_2': lambda m: wide_resnet.wrn45_2(),
}


def get_encoder(config: ml_collections.ConfigDict) -> nn.Module:
  """Builds the encoder named by ``config.encoder`` from ``config.model``.

  Args:
    config: the experiment config.

  Returns:
    A flax module mapping images [B, H, W, C] to features [B, D]; it takes a
    ``train`` keyword that switches BatchNorm to batch statistics.
  """
  if config.encoder not in ENCODERS:
    raise ValueError(f'encoder={config.encoder!r} is not registered; use one of'
                     f' {sorted(ENCODERS)}.')
  return ENCODERS[config.encoder](config.model).clone(
      dtype=jnp.dtype(config.dtype))


def get_projector(config: ml_collections.ConfigDict) -> nn.Module:
  """Builds the projection head from ``config.projector``."""
  p = config.projector
  return heads.ProjectionHead(hidden_dims=tuple(p.hidden_dims), out_dim=p.out_dim,
                              use_bn=p.use_bn, dtype=jnp.dtype(config.dtype))
