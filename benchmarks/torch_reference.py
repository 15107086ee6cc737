"""Times a minimal PyTorch SimCLR train step, as a reference for the JAX step.

  /path/to/torch/venv/bin/python benchmarks/torch_reference.py --encoder=convnet \
      --batch_size=256 [--threads=2 --channels_last --dtype=bfloat16 --compile]

Needs only torch and numpy. As the JAX step that ``benchmarks/suite.py``
times: same encoder, projector, online probe, NT-Xent (T=0.5) over both views
as one 2B batch, per-image on-device augmentation of random uint8 images
inside the step. Prints one JSON line (``--selftest``: checks NT-Xent against
a naive double loop instead).

Differs from the JAX step: SGD (momentum 0.9, lr 0.1, wd 1e-6 on all params),
not LARS; torch's default init; the crop (flip folded in) is affine_grid +
bilinear grid_sample without antialiasing (JAX: scale_and_translate, antialias);
stride-2 3x3 convs and the ImageNet-stem max-pool pad (1, 1), not flax's SAME
(0, 1) (same FLOPs); jitter strength 1.0 (the JAX configs use 0.5; same
cost); no metrics or non-finite checks. The jitter is ssl_jax.data.augment's: scaled
brightness, per-channel-mean contrast, an HSV round trip per op, random order
per image, clip after each op, rec601 grayscale.
"""

import argparse
import json
import math
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


def conv_bn(cin, cout, k=3, stride=1):
  """Conv (no bias, 'same'-style padding) + BN (flax momentum 0.9)."""
  return [
      nn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
      nn.BatchNorm2d(cout, momentum=0.1),
  ]


class ConvNet(nn.Module):
  """4 x (conv3x3-BN-ReLU), 2x2 max-pools after the first three, GAP, dense."""

  def __init__(self, width=128, dense=128):
    super().__init__()
    self.convs = nn.ModuleList(
        nn.Sequential(*conv_bn(3 if i == 0 else width, width), nn.ReLU())
        for i in range(4)
    )
    self.dense = nn.Linear(width, dense)
    self.dim = dense

  def forward(self, x):
    for i, conv in enumerate(self.convs):
      x = conv(x)
      if i < 3 and min(x.shape[2:]) >= 2:
        x = F.max_pool2d(x, 2)
    return F.relu(self.dense(x.mean((2, 3))))


class Block(nn.Module):
  """BasicBlock (expansion 1) or Bottleneck (expansion 4)."""

  def __init__(self, cin, filters, stride, bottleneck):
    super().__init__()
    cout = filters * (4 if bottleneck else 1)
    pre = conv_bn(cin, filters, 1) + [nn.ReLU()] if bottleneck else []
    self.body = nn.Sequential(
        *pre,
        *conv_bn(filters if bottleneck else cin, filters, 3, stride),
        nn.ReLU(),
        *conv_bn(filters, cout, 1 if bottleneck else 3),
    )
    self.proj = (
        nn.Sequential(*conv_bn(cin, cout, 1, stride))
        if stride != 1 or cin != cout
        else nn.Identity()
    )

  def forward(self, x):
    return F.relu(self.proj(x) + self.body(x))


class ResNet(nn.Module):
  """ResNet-18/50 trunk (CIFAR or ImageNet stem) to pooled features."""

  def __init__(self, sizes, bottleneck, cifar_stem, width=64):
    super().__init__()
    stem = (
        (conv_bn(3, width) if cifar_stem else conv_bn(3, width, 7, 2))
        + [nn.ReLU()]
        + ([] if cifar_stem else [nn.MaxPool2d(3, 2, 1)])
    )
    blocks, cin = [], width
    for i, n in enumerate(sizes):
      for j in range(n):
        blocks.append(
            Block(cin, width * 2**i, 2 if i > 0 and j == 0 else 1, bottleneck)
        )
        cin = width * 2**i * (4 if bottleneck else 1)
    self.net = nn.Sequential(*stem, *blocks)
    self.dim = cin

  def forward(self, x):
    return self.net(x).mean((2, 3))


def nt_xent(z_a, z_b, temperature=0.5):
  """SimCLR loss over 2N anchors, as ``ssl_jax.losses.nt_xent_and_accuracy``."""
  z = torch.cat([z_a, z_b]).float()
  z = z * torch.rsqrt(torch.clamp((z * z).sum(-1, keepdim=True), min=1e-12))
  n, idx = z_a.shape[0], torch.arange(z_a.shape[0], device=z.device)
  logits = (z @ z.T / temperature).fill_diagonal_(-1e9)  # Mask self-pairs.
  return F.cross_entropy(logits, torch.cat([idx + n, idx]))


def selftest():
  """Checks nt_xent against a naive double loop on 6 random embeddings."""
  z = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
  zn = z.double() / z.double().norm(dim=1, keepdim=True)
  sim = lambda i, k: math.exp(float(zn[i] @ zn[k]) / 0.5)
  total = 0.0
  for i in range(6):  # The positive of row i is row (i + 3) % 6.
    total -= math.log(
        sim(i, (i + 3) % 6) / sum(sim(i, k) for k in range(6) if k != i)
    )
  got, want = float(nt_xent(z[:3], z[3:], 0.5)), total / 6
  assert abs(got - want) < 1e-5, (got, want)
  return {'selftest': 'nt_xent', 'ok': True, 'loss': got, 'naive': want}


def hsv_adjust(y, op, hue, sat):
  """Hue shift (op 3) or saturation (op 2) of [B, 3, H, W] as dm_pix does it."""
  r, g, b = y.unbind(1)
  v = torch.maximum(torch.maximum(r, g), b)
  rng = v - torch.minimum(torch.minimum(r, g), b)
  s = torch.where(v > 0, rng / torch.where(v > 0, v, 1.0), 0.0)
  norm = 1.0 / (6.0 * torch.where(rng > 0, rng, 1.0))
  h = torch.where(v == g, norm * (b - r) + 2 / 6, norm * (r - g) + 4 / 6)
  h = torch.where(v == r, norm * (g - b), h)
  h = torch.where(rng > 0, h, 0.0) + (h < 0).float()
  h = torch.where(op == 3, h + hue, h)
  s = torch.where(op == 2, (s * sat).clamp(0, 1), s)
  dh = torch.remainder(h, 1.0) * 6.0
  rgb = [(dh - 3).abs() - 1, 2 - (dh - 2).abs(), 2 - (dh - 4).abs()]
  return torch.stack([v * (1 - s + s * c.clamp(0, 1)) for c in rgb], 1)


def augment(images, size, strength=1.0):
  """SimCLR view: uint8 [B, H, W, 3] -> float32 [B, 3, size, size] in [0, 1]."""
  b, h, w, _ = images.shape
  dev, bc = images.device, (b, 1, 1, 1)
  u = lambda lo=0.0, hi=1.0: lo + (hi - lo) * torch.rand(b, device=dev)
  x = images.permute(0, 3, 1, 2).float() / 255.0
  # Random resized crop + flip: the output's [-1, 1] square maps to the box.
  area = h * w * u(0.08, 1.0)
  aspect = torch.exp(u(math.log(3 / 4), math.log(4 / 3)))
  ch = torch.sqrt(area / aspect).clamp(1.0, h)
  cw = torch.sqrt(area * aspect).clamp(1.0, w)
  top, left = u() * (h - ch), u() * (w - cw)
  flip, zero = torch.where(u() < 0.5, -1.0, 1.0), torch.zeros_like(cw)
  theta = torch.stack(
      [
          cw / w * flip,
          zero,
          (2 * left + cw) / w - 1,
          zero,
          ch / h,
          (2 * top + ch) / h - 1,
      ],
      1,
  ).view(b, 2, 3)
  grid = F.affine_grid(theta, (b, 3, size, size), align_corners=False)
  x = F.grid_sample(x, grid, 'bilinear', 'border', align_corners=False)
  # Colour jitter with p=0.8, the four ops in a random order per image.
  lo, hi = max(0.0, 1 - 0.8 * strength), 1 + 0.8 * strength
  bright, contrast, sat = (u(lo, hi).view(bc) for _ in range(3))
  hue = u(-0.2 * strength, 0.2 * strength).view(b, 1, 1)
  order = torch.argsort(torch.rand(b, 4, device=dev), 1)
  y = x
  for i in range(4):
    op = order[:, i].view(bc)
    hsv = hsv_adjust(y, op[:, 0], hue, sat[:, 0])
    mean = y.mean((2, 3), keepdim=True)
    y = torch.where(
        op == 0,
        y * bright,
        torch.where(op == 1, contrast * (y - mean) + mean, hsv),
    ).clamp(0, 1)
  x = torch.where((u() < 0.8).view(bc), y, x)
  luma = torch.tensor([0.2989, 0.5870, 0.1140], device=dev).view(1, 3, 1, 1)
  gray = (x * luma).sum(1, keepdim=True).expand_as(x)
  return torch.where((u() < 0.2).view(bc), gray, x).clamp(0, 1)


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument(
      '--encoder',
      default='convnet',
      choices=['convnet', 'resnet18', 'resnet50'],
  )
  p.add_argument('--image_size', type=int, default=32, help='>=96: 7x7 stem')
  p.add_argument('--batch_size', type=int, default=256)
  p.add_argument('--steps', type=int, default=10, help='Timed steps (>= 1).')
  p.add_argument('--warmup', type=int, default=2, help='Untimed steps.')
  p.add_argument('--threads', type=int, default=0, help='0: torch default.')
  p.add_argument('--channels_last', action='store_true')
  p.add_argument(
      '--device', default='cuda' if torch.cuda.is_available() else 'cpu'
  )
  p.add_argument('--dtype', default='float32', choices=['float32', 'bfloat16'])
  p.add_argument('--compile', action='store_true', help='torch.compile forward')
  p.add_argument('--selftest', action='store_true')
  a = p.parse_args()
  if a.threads:
    torch.set_num_threads(a.threads)
  if a.selftest:
    print(json.dumps(selftest()))
    return
  torch.manual_seed(0)
  dev, size = torch.device(a.device), a.image_size
  fmt = torch.channels_last if a.channels_last else torch.contiguous_format
  encoder = (
      ConvNet()
      if a.encoder == 'convnet'
      else ResNet(
          [2, 2, 2, 2] if a.encoder == 'resnet18' else [3, 4, 6, 3],
          a.encoder == 'resnet50',
          cifar_stem=size < 96,
      )
  )
  projector = nn.Sequential(
      nn.Linear(encoder.dim, 2048, bias=False),
      nn.BatchNorm1d(2048),
      nn.ReLU(),
      nn.Linear(2048, 128),
  )
  probe = nn.Linear(encoder.dim, 10)
  model = nn.ModuleDict(dict(encoder=encoder, projector=projector, probe=probe))
  model.to(dev, memory_format=fmt)  # Modules start in train mode.
  num_params = sum(q.numel() for q in model.parameters())
  opt = torch.optim.SGD(
      model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-6
  )
  rng = np.random.default_rng(0)
  images = torch.from_numpy(
      rng.integers(0, 256, (a.batch_size, size, size, 3), dtype=np.uint8)
  ).to(dev)
  labels = torch.from_numpy(rng.integers(0, 10, a.batch_size)).to(dev)
  autocast = torch.autocast(
      dev.type, torch.bfloat16, enabled=a.dtype == 'bfloat16'
  )

  def forward(imgs, lbls):
    x = torch.cat([augment(imgs, size) for _ in range(2)])
    with autocast:
      feats = encoder(x.contiguous(memory_format=fmt))
      z = projector(feats)
    loss = nt_xent(*z.float().chunk(2))  # float32, as in JAX.
    return loss, F.cross_entropy(probe(feats.detach().float()), lbls.repeat(2))

  fwd = torch.compile(forward) if a.compile else forward

  def step():
    loss, probe_loss = fwd(images, labels)
    opt.zero_grad(set_to_none=True)
    (loss + probe_loss).backward()
    opt.step()
    if dev.type == 'cuda':
      torch.cuda.synchronize()
    return loss.detach(), probe_loss.detach()

  times = []  # The first step is reported alone; the last --steps are timed.
  for _ in range(max(a.warmup, 1) + a.steps):
    t = time.perf_counter()
    loss, probe_loss = step()
    times.append(time.perf_counter() - t)
  med = float(np.median(times[-a.steps :]))
  print(
      json.dumps(
          dict(
              framework='pytorch',
              torch_version=torch.__version__,
              device=dev.type,
              encoder=a.encoder,
              image_size=size,
              batch_size=a.batch_size,
              threads=torch.get_num_threads(),
              dtype=a.dtype,
              optimizer='sgd',
              channels_last=a.channels_last,
              compile=a.compile,
              num_params=num_params,
              first_step_seconds=round(times[0], 3),
              step_seconds_median=round(med, 4),
              images_per_second=round(a.batch_size / med, 1),
              views_per_second=round(2 * a.batch_size / med, 1),
              loss=round(loss.item(), 4),
              probe_loss=round(probe_loss.item(), 4),
          )
      )
  )


if __name__ == '__main__':
  main()
