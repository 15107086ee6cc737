"""Vision Transformers (Dosovitskiy et al., 2021): ViT-Tiny and ViT-Small.

Pre-norm blocks, a learned [CLS] token whose final LayerNorm output is the
representation, and learned position embeddings for the grid of
``image_size / patch_size`` patches, resized (bicubic) for inputs of another
size: DINO's local crops, or training views smaller than the evaluation
images; or MoCo v3's fixed 2-D sin-cos embeddings.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

PATCH_INITS = ('lecun_normal', 'xavier_uniform')
POSITION_EMBEDDINGS = ('learned', 'sincos')


def sincos_position_embedding(
    height: int, width: int, dim: int, temperature: float = 10000.0
) -> jax.Array:
  """MoCo v3's fixed 2-D sin-cos position embeddings for a patch grid.

  A quarter of the channels each: sin and cos of the row index, then of the
  column index, at frequencies ``temperature ** (-k / (dim / 4))``.

  Args:
    height: patch rows.
    width: patch columns.
    dim: the token width (a multiple of 4).
    temperature: the longest wavelength.

  Returns:
    float32 [1, height, width, dim].
  """
  if dim % 4:
    raise ValueError(
        f'sin-cos position embeddings need a width divisible by 4; got {dim}.'
    )
  omega = 1.0 / temperature ** (jnp.arange(dim // 4) / (dim // 4))
  rows = jnp.arange(height, dtype=jnp.float32)[:, None, None] * omega
  cols = jnp.arange(width, dtype=jnp.float32)[None, :, None] * omega
  rows = jnp.broadcast_to(rows, (height, width, dim // 4))
  cols = jnp.broadcast_to(cols, (height, width, dim // 4))
  emb = jnp.concatenate(
      [jnp.sin(rows), jnp.cos(rows), jnp.sin(cols), jnp.cos(cols)], axis=-1
  )
  return emb[None]


# name -> (width, depth, heads); the MLP is 4x the width.
SIZES = {
    'tiny': (192, 12, 3),
    'small': (384, 12, 6),
}


class EncoderBlock(nn.Module):
  """LayerNorm -> self-attention -> residual; LayerNorm -> MLP -> residual.

  Attributes:
    num_heads: attention heads.
    mlp_dim: hidden width of the MLP (exact GELU, as in ViT and DINO).
    dtype: computation dtype.
  """

  num_heads: int
  mlp_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    y = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype)(x)
    y = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads,
        dtype=self.dtype,
        deterministic=True,
        force_fp32_for_softmax=True,
    )(y)
    x = x + y
    y = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype)(x)
    y = nn.gelu(nn.Dense(self.mlp_dim, dtype=self.dtype)(y), approximate=False)
    return x + nn.Dense(x.shape[-1], dtype=self.dtype)(y)


class ViT(nn.Module):
  """A ViT encoder: images [B, H, W, C] -> [CLS] features [B, width].

  Attributes:
    patch_size: side of the square patches; H and W must be multiples of it.
    width: token width.
    depth: number of blocks.
    num_heads: attention heads per block.
    grid: patches per side the position embeddings are learned for
      (``image_size // patch_size``).
    patch_init: the patch embedding's initialisation: ``'lecun_normal'``
      (flax's default for a convolution) or ``'xavier_uniform'`` (MoCo v3's:
      uniform in +-sqrt(6 / (C * P * P + width)), the kernel taken as a
      linear map from a flattened patch, zero bias).
    position_embedding: ``'learned'`` (a parameter for the ``grid``,
      resized for other grids) or ``'sincos'`` (MoCo v3's fixed 2-D sin-cos,
      computed for the input's grid; no parameter).
    dtype: computation dtype (parameters stay float32).
  """

  patch_size: int = 4
  width: int = 192
  depth: int = 12
  num_heads: int = 3
  grid: int = 8
  patch_init: str = 'lecun_normal'
  position_embedding: str = 'learned'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    del train  # No BatchNorm or dropout.
    b, h, w, _ = x.shape
    p = self.patch_size
    if h % p or w % p:
      raise ValueError(
          f'ViT: image side {h}x{w} is not a multiple of model.patch_size={p};'
          ' choose a patch size that divides the image and crop sizes.'
      )
    if self.position_embedding not in POSITION_EMBEDDINGS:
      raise ValueError(
          f'ViT: position_embedding={self.position_embedding!r}; use one of'
          f' {POSITION_EMBEDDINGS}.'
      )
    if self.patch_init not in PATCH_INITS:
      raise ValueError(
          f'ViT: patch_init={self.patch_init!r}; use one of {PATCH_INITS}.'
      )
    init = {}
    if self.patch_init == 'xavier_uniform':
      # flax's xavier on a conv kernel counts the window in both fans; MoCo v3
      # counts fan_out = width, as for a linear layer on a flattened patch.
      init = dict(
          kernel_init=nn.initializers.variance_scaling(
              1.0, 'fan_avg', 'uniform', in_axis=(0, 1, 2), out_axis=-1
          ),
          bias_init=nn.initializers.zeros,
      )
    x = nn.Conv(
        self.width,
        (p, p),
        strides=(p, p),
        padding='VALID',
        dtype=self.dtype,
        name='patch_embedding',
        **init,
    )(x.astype(self.dtype))
    gh, gw = h // p, w // p
    if self.position_embedding == 'sincos':
      pos = sincos_position_embedding(gh, gw, self.width)
    else:
      pos = self.param(
          'position_embedding',
          nn.initializers.normal(stddev=0.02),
          (1, self.grid, self.grid, self.width),
      )
      if (gh, gw) != (self.grid, self.grid):
        # No antialiasing: the grid is interpolated, as torch's interpolate
        # does in the reference ViTs, not low-pass filtered when it shrinks.
        pos = jax.image.resize(
            pos, (1, gh, gw, self.width), 'bicubic', antialias=False
        )
    x = (x + pos.astype(self.dtype)).reshape(b, gh * gw, self.width)
    cls = self.param(
        'cls', nn.initializers.normal(stddev=1e-6), (1, 1, self.width)
    )
    x = jnp.concatenate(
        [jnp.broadcast_to(cls.astype(self.dtype), (b, 1, self.width)), x],
        axis=1,
    )
    block = functools.partial(
        EncoderBlock,
        num_heads=self.num_heads,
        mlp_dim=4 * self.width,
        dtype=self.dtype,
    )
    for i in range(self.depth):
      x = block(name=f'block{i}')(x)
    return nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name='norm')(x[:, 0])


def vit(
    size: str,
    *,
    patch_size: int,
    image_size: int,
    dtype: Any,
    patch_init: str = 'lecun_normal',
    position_embedding: str = 'learned',
) -> ViT:
  """ViT-Tiny or ViT-Small for ``image_size`` inputs in ``patch_size`` patches.

  Args:
    size: ``'tiny'`` (192 wide, 3 heads) or ``'small'`` (384 wide, 6 heads);
      both 12 blocks deep.
    patch_size: side of the square patches.
    image_size: the side the position embeddings are learned for.
    dtype: computation dtype.
    patch_init: the patch embedding's initialisation (:class:`ViT`).
    position_embedding: ``'learned'`` or ``'sincos'`` (:class:`ViT`).

  Returns:
    The :class:`ViT` module.
  """
  width, depth, heads = SIZES[size]
  return ViT(
      patch_size=patch_size,
      width=width,
      depth=depth,
      num_heads=heads,
      grid=max(1, image_size // patch_size),
      patch_init=patch_init,
      position_embedding=position_embedding,
      dtype=dtype,
  )
