"""The torch twin of a parity case's model: our ConvNet, lightly's heads.

Used by ``step_parity.py`` (see there and docs/parity.md). Names and layouts
map every compared torch tensor to our parameter tree's.
"""

from lightly.models.modules import heads as lightly_heads
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


class ConvNetTwin(nn.Module):
  """``ssl_jax.models.convnet.ConvNet`` in torch (NHWC in, as ours)."""

  def __init__(self, widths, channels=3):
    super().__init__()
    ins = (channels,) + tuple(widths[:-1])
    self.convs = nn.ModuleList(
        nn.Conv2d(i, o, 3, padding=1, bias=False) for i, o in zip(ins, widths)
    )
    # flax's BatchNorm(momentum=0.9, epsilon=1e-5) is torch's momentum 0.1.
    self.norms = nn.ModuleList(
        nn.BatchNorm2d(w, eps=1e-5, momentum=0.1) for w in widths
    )

  def forward(self, x):
    x = x.permute(0, 3, 1, 2)
    for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
      x = F.relu(norm(conv(x)))
      if i < len(self.convs) - 1 and min(x.shape[2:]) >= 2:
        x = F.max_pool2d(x, 2)
    return x.mean(dim=(2, 3))


class Twin(nn.Module):
  """Encoder, projector and optional predictor: ``shared.TwoViewModel``."""

  def __init__(self, encoder, projector, predictor=None):
    super().__init__()
    self.encoder, self.projector, self.predictor = encoder, projector, predictor

  def forward(self, x):
    z = self.projector(self.encoder(x))
    out = {'projection': z}
    if self.predictor is not None:
      out['prediction'] = self.predictor(z)
    return out


def _generic_head(
    in_dim,
    hidden_dims,
    out_dim,
    use_bn,
    out_bn,
    out_bn_scale=False,
    out_bias=True,
):
  """lightly's ``ProjectionHead`` with the blocks of our ``ProjectionHead``.

  ``out_bn_scale``: the output BatchNorm learns a scale and no shift
  (google-research/simclr's), a torch affine BatchNorm whose shift is frozen
  at 0. ``out_bias``: the output layer has a bias (unless ``out_bn``).
  """
  blocks, d = [], in_dim
  for h in hidden_dims:
    blocks.append((d, h, nn.BatchNorm1d(h) if use_bn else None, nn.ReLU()))
    d = h
  out_norm = None
  if out_bn:
    out_norm = nn.BatchNorm1d(out_dim, affine=out_bn_scale)
    if out_bn_scale:
      out_norm.bias.requires_grad_(False)
  blocks.append((d, out_dim, out_norm, None, out_bias and not out_bn))
  return lightly_heads.ProjectionHead(blocks)


def build_twin(config):
  """The torch twin of ``config``'s model, from lightly's heads where they fit.

  Args:
    config: the case's config.

  Returns:
    ``(twin, notes)``: the module and which lightly head each part is.
  """
  p, feat = config.projector, config.model.conv_widths[-1]
  encoder = ConvNetTwin(config.model.conv_widths)
  m, notes = config.method, {}
  plain = p.use_bn and not p.out_bn
  if m == 'dino':
    d = config.dino
    assert len(set(d.hidden_dims)) == 1 and len(d.hidden_dims) == 2
    projector = lightly_heads.DINOProjectionHead(
        feat,
        d.hidden_dims[0],
        d.bottleneck_dim,
        d.out_dim,
        batch_norm=d.use_bn,
        # Whole epochs: lightly counts them (DINO's recipe freezes 1).
        freeze_last_layer=int(d.freeze_last_layer_epochs),
        norm_last_layer=d.norm_last_layer,
    )
    assert d.freeze_last_layer_epochs == int(d.freeze_last_layer_epochs)
    notes['projector'] = 'DINOProjectionHead'
    return Twin(encoder, projector), notes
  hidden = tuple(p.hidden_dims)
  if m == 'byol' and plain and len(hidden) == 1:
    projector = lightly_heads.BYOLProjectionHead(feat, hidden[0], p.out_dim)
    notes['projector'] = 'BYOLProjectionHead'
  elif (
      m == 'barlow_twins'
      and plain
      and len(set(hidden)) == 1
      and len(hidden) == 2
  ):
    projector = lightly_heads.BarlowTwinsProjectionHead(
        feat, hidden[0], p.out_dim
    )
    notes['projector'] = 'BarlowTwinsProjectionHead'
  elif m == 'vicreg' and plain and len(set(hidden)) == 1:
    projector = lightly_heads.VICRegProjectionHead(
        feat, hidden[0], p.out_dim, num_layers=len(hidden) + 1
    )
    notes['projector'] = 'VICRegProjectionHead'
  else:
    projector = _generic_head(
        feat, hidden, p.out_dim, p.use_bn, p.out_bn, p.out_bn_scale
    )
    notes['projector'] = 'ProjectionHead (blocks as ours)'
  predictor = None
  if m in ('byol', 'moco_v3'):
    hidden = tuple(config[m].predictor_hidden_dims)
    out_bn = config[m].get('predictor_out_bn', False)
    out_bias = config[m].get('predictor_out_bias', True)
    if len(hidden) == 1 and not out_bn and out_bias:
      predictor = lightly_heads.BYOLPredictionHead(
          p.out_dim, hidden[0], p.out_dim
      )
      notes['predictor'] = 'BYOLPredictionHead'
    else:
      predictor = _generic_head(
          p.out_dim, hidden, p.out_dim, True, out_bn, out_bias=out_bias
      )
      notes['predictor'] = 'ProjectionHead (blocks as ours)'
  return Twin(encoder, projector, predictor), notes


def named_tensors(twin):
  """``[(our name, tensor, layout)]`` for the parameters and running means.

  Layouts: ``'conv'`` (ours HWIO, torch OIHW), ``'dense'`` (ours [in, out],
  torch [out, in]) and ``'vector'``. Running variances are left out: torch
  keeps the unbiased batch variance, flax the biased one.
  """
  out = []
  for i, (conv, norm) in enumerate(zip(twin.encoder.convs, twin.encoder.norms)):
    out.append((f'params/encoder/Conv_{i}/kernel', conv.weight, 'conv'))
    out += _norm(f'encoder/BatchNorm_{i}', norm)
  for part in ('projector', 'predictor'):
    head = getattr(twin, part)
    if head is None:
      continue
    dense = norm_count = 0
    for layer in head.layers:
      if isinstance(layer, nn.Linear):
        name = f'{part}/Dense_{dense}'
        out.append((f'params/{name}/kernel', layer.weight, 'dense'))
        if layer.bias is not None:
          out.append((f'params/{name}/bias', layer.bias, 'vector'))
        dense += 1
      elif isinstance(layer, nn.BatchNorm1d):
        out += _norm(f'{part}/BatchNorm_{norm_count}', layer)
        norm_count += 1
    if hasattr(head, 'last_layer'):  # DINO's weight-normalised prototypes.
      assert not head.last_layer.weight_g.requires_grad
      out.append((
          f'params/{part}/prototypes/kernel',
          head.last_layer.weight_v,
          'dense',
      ))
  return out


def _norm(name, norm):
  """:func:`named_tensors`' entries of one BatchNorm."""
  out = [(f'batch_stats/{name}/mean', norm.running_mean, 'vector')]
  if norm.affine:
    out.append((f'params/{name}/scale', norm.weight, 'vector'))
    if norm.bias.requires_grad:  # A frozen zero shift: ours has no bias.
      out.append((f'params/{name}/bias', norm.bias, 'vector'))
  return out


def to_ours(t, layout):
  """A torch tensor as our array (see :func:`named_tensors`' layouts)."""
  a = t.detach().numpy().astype(np.float32)
  return {'conv': lambda: a.transpose(2, 3, 1, 0), 'dense': lambda: a.T}.get(
      layout, lambda: a
  )()


def from_ours(a, layout):
  """Our array as a torch tensor (see :func:`named_tensors`' layouts)."""
  a = np.asarray(a, np.float32)
  a = {'conv': lambda: a.transpose(3, 2, 0, 1), 'dense': lambda: a.T}.get(
      layout, lambda: a
  )()
  return torch.from_numpy(np.array(a))  # A writable copy.


def load_weights(twin, flat):
  """Copies our ``init/...`` arrays into the twin."""
  with torch.no_grad():
    for name, tensor, layout in named_tensors(twin):
      tensor.copy_(from_ours(flat['init/' + name], layout))
