"""Encoders and heads; encoders are selected by name from :data:`ENCODERS`."""

from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from ssl_jax.models import convnet
from ssl_jax.models import heads
from ssl_jax.models import normalize
from ssl_jax.models import resnet
from ssl_jax.models import vit
from ssl_jax.models import wide_resnet

ProjectionHead = heads.ProjectionHead

# name -> (config -> flax module mapping images [B, H, W, C] to features
# [B, D], in config.dtype, on config.cpu_convolutions).
ENCODERS: dict[str, Callable[[ml_collections.ConfigDict], nn.Module]] = {
    'convnet': lambda c: convnet.ConvNet(
        widths=tuple(c.model.conv_widths) or (c.model.width,) * 4,
        dense=c.model.dense,
        **_common(c),
    ),
    'resnet18': lambda c: resnet.resnet18(
        cifar_stem=c.model.cifar_stem, **_common(c)
    ),
    'resnet50': lambda c: resnet.resnet50(
        cifar_stem=c.model.cifar_stem, **_common(c)
    ),
    'wrn28_2': lambda c: wide_resnet.wrn(28, 2, **_common(c)),
    'wrn45_2': lambda c: wide_resnet.wrn45_2(**_common(c)),
    # ViTs have no convolutions but the patch embedding (XLA's, always).
    'vit_tiny': lambda c: _vit('tiny', c),
    'vit_small': lambda c: _vit('small', c),
}


def _common(config: ml_collections.ConfigDict) -> dict[str, Any]:
  return dict(
      dtype=jnp.dtype(config.dtype), convolutions=config.cpu_convolutions
  )


_VITS = ('vit_tiny', 'vit_small')


def _vit(size: str, config: ml_collections.ConfigDict) -> nn.Module:
  return vit.vit(
      size,
      patch_size=config.model.patch_size,
      image_size=config.image_size,
      dtype=jnp.dtype(config.dtype),
      patch_init=config.model.patch_init,
      position_embedding=config.model.position_embedding,
  )


def is_vit(config: ml_collections.ConfigDict) -> bool:
  """Whether ``config.encoder`` is one of the ViTs (it has a patch embedding).

  Args:
    config: the experiment config.

  Returns:
    True for ``vit_tiny`` and ``vit_small``.
  """
  return config.encoder in _VITS


def input_multiple(config: ml_collections.ConfigDict) -> int:
  """Image sides the encoder of ``config`` takes are multiples of this.

  Args:
    config: the experiment config.

  Returns:
    ``model.patch_size`` for the ViTs, 1 for the convolutional encoders.
  """
  return config.model.patch_size if is_vit(config) else 1


def register_encoder(
    name: str, build: Callable[[ml_collections.ConfigDict], nn.Module]
) -> None:
  """Adds an encoder defined outside ssl_jax (``config.encoder=name``).

  Args:
    name: its new key in :data:`ENCODERS`.
    build: ``config -> module``; the module takes ``(x, train)`` and maps
      images [B, H, W, C] to features [B, D], computing in ``config.dtype``
      (and may use ``config.model`` and ``config.cpu_convolutions``).
  """
  if name in ENCODERS:
    raise ValueError(f'an encoder named {name!r} is already registered.')
  ENCODERS[name] = build


def get_encoder(config: ml_collections.ConfigDict) -> nn.Module:
  """Builds the encoder named by ``config.encoder`` from ``config.model``.

  Args:
    config: the experiment config.

  Returns:
    A flax module mapping images [B, H, W, C] to features [B, D]; it takes a
    ``train`` keyword that switches BatchNorm to batch statistics. With
    ``model.input_mean`` set, images are normalised by it and
    ``model.input_std`` first (:class:`normalize.InputNormalized`).
  """
  if config.encoder not in ENCODERS:
    raise ValueError(
        f'encoder={config.encoder!r} is not registered; use one of'
        f' {sorted(ENCODERS)}.'
    )
  encoder = ENCODERS[config.encoder](config)
  if config.model.input_mean:
    return normalize.InputNormalized(
        encoder, tuple(config.model.input_mean), tuple(config.model.input_std)
    )
  return encoder


def get_projector(config: ml_collections.ConfigDict) -> nn.Module:
  """Builds the projection head from ``config.projector``."""
  p = config.projector
  return heads.ProjectionHead(
      hidden_dims=tuple(p.hidden_dims),
      out_dim=p.out_dim,
      use_bn=p.use_bn,
      out_bn=p.out_bn,
      out_bn_scale=p.out_bn_scale,
      dtype=jnp.dtype(config.dtype),
  )
