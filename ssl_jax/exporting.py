"""PyTorch names for the encoders' variables: torchvision ResNets, timm ViTs.

The functions here are pure NumPy: they take an encoder's flax variables
(``params`` and ``batch_stats`` of the encoder alone, as
``python -m ssl_jax.export`` reads them) and return flat ``{name: array}``
dicts in the layout the PyTorch library's modules hold, which
``safetensors.numpy`` writes and ``load_state_dict(strict=True)`` reads.
:mod:`ssl_jax.export` is the command line and the file writing.
"""

from typing import Any, Iterator

import numpy as np

from ssl_jax import errors
from ssl_jax.models import resnet
from ssl_jax.models import vit

# format -> {our encoder: the library's model of that architecture}.
TORCH_MODELS = {
    'torchvision': {'resnet18': 'resnet18', 'resnet50': 'resnet50'},
    'timm': {
        'vit_tiny': 'vit_tiny_patch16_224',
        'vit_small': 'vit_small_patch16_224',
    },
}

_STAGE_SIZES = {
    'resnet18': resnet.resnet18().stage_sizes,
    'resnet50': resnet.resnet50().stage_sizes,
}
_BLOCKS = {'resnet18': 'BasicBlock', 'resnet50': 'BottleneckBlock'}


def flatten(tree: dict[str, Any], prefix: str = '') -> dict[str, np.ndarray]:
  """``{'a': {'b': x}}`` -> ``{'a/b': x}`` (arrays as NumPy).

  Args:
    tree: nested dicts of arrays.
    prefix: prepended to every key.

  Returns:
    The flat dict.
  """
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(flatten(v, f'{prefix}{k}/'))
    else:
      out[f'{prefix}{k}'] = np.asarray(v)
  return out


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
  """The inverse of :func:`flatten`."""
  out = {}
  for key, v in flat.items():
    node = out
    *path, leaf = key.split('/')
    for p in path:
      node = node.setdefault(p, {})
    node[leaf] = v
  return out


def check_encoder(fmt: str, encoder: str) -> str:
  """The library's model name for ``encoder`` in ``fmt``.

  Args:
    fmt: ``'torchvision'`` or ``'timm'``.
    encoder: ``config.encoder`` of the run.

  Returns:
    The torchvision function or timm model name.

  Raises:
    errors.ConfigError: ``fmt`` has no model of this architecture.
  """
  supported = TORCH_MODELS[fmt]
  if encoder not in supported:
    others = [f for f, names in TORCH_MODELS.items() if encoder in names]
    fix = (
        f'use --format={others[0]}'
        if others
        else 'use --format=jax (a standalone JAX bundle of any encoder)'
    )
    raise errors.ConfigError(
        f'--format={fmt} maps only the encoders {sorted(supported)}; this '
        f'run has encoder={encoder!r}: {fix}.'
    )
  return supported[encoder]


def _conv(kernel: np.ndarray) -> np.ndarray:
  # flax HWIO -> torch OIHW.
  return np.ascontiguousarray(
      np.asarray(kernel, np.float32).transpose(3, 2, 0, 1)
  )


def _linear(kernel: np.ndarray) -> np.ndarray:
  # flax [in, out] -> torch [out, in].
  return np.ascontiguousarray(np.asarray(kernel, np.float32).T)


def _batch_norm(
    name: str, params: dict[str, Any], stats: dict[str, Any]
) -> Iterator[tuple[str, np.ndarray]]:
  yield f'{name}.weight', params['scale']
  yield f'{name}.bias', params['bias']
  yield f'{name}.running_mean', stats['mean']
  yield f'{name}.running_var', stats['var']
  # torch counts updates only for momentum=None; strict loading wants the key.
  yield f'{name}.num_batches_tracked', np.zeros((), np.int64)


def torchvision_resnet(
    encoder: str, params: dict[str, Any], batch_stats: dict[str, Any]
) -> dict[str, np.ndarray]:
  """A ResNet's variables under ``torchvision.models.resnet18/50`` names.

  Every key of torchvision's ``state_dict`` but ``fc.*``: the encoder has no
  classifier, so the loading model sets ``fc = torch.nn.Identity()`` first.
  BatchNorm ``scale``/``bias``/``mean``/``var`` become ``weight``/``bias``/
  ``running_mean``/``running_var`` (epsilon 1e-5 in both).

  Args:
    encoder: ``'resnet18'`` or ``'resnet50'``.
    params: the encoder's parameters.
    batch_stats: its BatchNorm statistics.

  Returns:
    ``{torchvision name: float32 array}`` (int64 ``num_batches_tracked``).
  """
  check_encoder('torchvision', encoder)
  out = {'conv1.weight': _conv(params['stem_conv']['kernel'])}
  out.update(_batch_norm('bn1', params['stem_bn'], batch_stats['stem_bn']))
  block = 0
  for stage, num_blocks in enumerate(_STAGE_SIZES[encoder]):
    for j in range(num_blocks):
      ours = f'{_BLOCKS[encoder]}_{block}'
      p, s, name = params[ours], batch_stats[ours], f'layer{stage + 1}.{j}'
      # BasicBlock: two 3x3 convs; BottleneckBlock: 1x1, 3x3 (strided as in
      # torchvision >= 0.3, "ResNet v1.5"), 1x1.
      for n in range(3 if encoder == 'resnet50' else 2):
        out[f'{name}.conv{n + 1}.weight'] = _conv(p[f'Conv_{n}']['kernel'])
        out.update(
            _batch_norm(
                f'{name}.bn{n + 1}', p[f'BatchNorm_{n}'], s[f'BatchNorm_{n}']
            )
        )
      if 'proj_conv' in p:
        out[f'{name}.downsample.0.weight'] = _conv(p['proj_conv']['kernel'])
        out.update(
            _batch_norm(f'{name}.downsample.1', p['proj_bn'], s['proj_bn'])
        )
      block += 1
  return {
      k: v if v.dtype == np.int64 else np.asarray(v, np.float32)
      for k, v in out.items()
  }


def timm_vit(
    params: dict[str, Any],
    *,
    patch_size: int,
    image_size: int,
    position_embedding: str,
) -> dict[str, np.ndarray]:
  """A ViT's parameters under timm's ``VisionTransformer`` names.

  For ``timm.create_model(name, num_classes=0, img_size=image_size,
  patch_size=patch_size, no_embed_class=True)``: our position embeddings
  cover the patches only (the [CLS] token has none), which is timm's
  ``no_embed_class``. The attention's separate query/key/value projections
  are fused into timm's ``qkv`` (rows: q, k, v; heads in order within each).
  Fixed sin-cos position embeddings become the parameter ``pos_embed``.

  Args:
    params: the encoder's parameters.
    patch_size: ``model.patch_size``.
    image_size: ``image_size``, the side the position embeddings are for.
    position_embedding: ``model.position_embedding``.

  Returns:
    ``{timm name: float32 array}``.
  """
  kernel = params['patch_embedding']['kernel']
  width = kernel.shape[-1]
  grid = image_size // patch_size
  if position_embedding == 'sincos':
    pos = np.asarray(vit.sincos_position_embedding(grid, grid, width))
  else:
    pos = params['position_embedding']
  out = {
      'cls_token': params['cls'],
      'pos_embed': np.reshape(pos, (1, grid * grid, width)),
      'patch_embed.proj.weight': _conv(kernel),
      'patch_embed.proj.bias': params['patch_embedding']['bias'],
      'norm.weight': params['norm']['scale'],
      'norm.bias': params['norm']['bias'],
  }
  depth = sum(k.startswith('block') for k in params)
  for i in range(depth):
    p, name = params[f'block{i}'], f'blocks.{i}'
    attn = p['MultiHeadDotProductAttention_0']
    out[f'{name}.attn.qkv.weight'] = np.concatenate([
        _linear(np.reshape(attn[t]['kernel'], (width, width)))
        for t in ('query', 'key', 'value')
    ])
    out[f'{name}.attn.qkv.bias'] = np.concatenate([
        np.reshape(attn[t]['bias'], (width,)) for t in ('query', 'key', 'value')
    ])
    out[f'{name}.attn.proj.weight'] = _linear(
        np.reshape(attn['out']['kernel'], (width, width))
    )
    out[f'{name}.attn.proj.bias'] = attn['out']['bias']
    for ours, theirs in (('LayerNorm_0', 'norm1'), ('LayerNorm_1', 'norm2')):
      out[f'{name}.{theirs}.weight'] = p[ours]['scale']
      out[f'{name}.{theirs}.bias'] = p[ours]['bias']
    for ours, theirs in (('Dense_0', 'fc1'), ('Dense_1', 'fc2')):
      out[f'{name}.mlp.{theirs}.weight'] = _linear(p[ours]['kernel'])
      out[f'{name}.mlp.{theirs}.bias'] = p[ours]['bias']
  return {
      k: np.ascontiguousarray(np.asarray(v, np.float32)) for k, v in out.items()
  }
