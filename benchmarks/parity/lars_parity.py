"""Runs solo-learn's LARS and regenerates the fixture our LARS is tested on.

  /path/to/torch/venv/bin/python benchmarks/parity/lars_parity.py \
      --lars_py=/path/to/solo/utils/lars.py

``--lars_py`` is ``solo/utils/lars.py`` from the ``solo-learn==1.0.2`` wheel
(``pip download --no-deps solo-learn==1.0.2``, then unzip that one file): its
``LARSWrapper`` imports only torch, so only that file is loaded. The wrapper
goes around ``torch.optim.SGD`` (momentum 0.9), as solo-learn's recipes use
it, with ``exclude_bias_n_norm=True``, in clip mode and without, for a few
steps with a changing learning rate (a zero rate first, as a warm-up starts)
on layers whose trust ratio lands on both sides of the clip, a 1-D bias and
norm scale (excluded) and an all-zero kernel (no ratio).

It writes ``tests/fixtures/lars_solo_learn.npz`` (initial parameters, the
gradient of every step, the rates, the parameters after every step and
whether each layer was clipped) that ``tests/test_lars_parity.py`` replays
through ``ssl_jax.training.optim`` without torch. Where jax and ssl_jax are
importable too, it replays it here as well and prints the largest relative
difference, and writes it to ``benchmarks/results/lars_parity_<commit>.json``.
"""

import argparse
import importlib.util
import json
import os
import subprocess

import numpy as np
import torch

FIXTURE = os.path.join(
    os.path.dirname(__file__),
    '..',
    '..',
    'tests',
    'fixtures',
    'lars_solo_learn.npz',
)
SHAPES = {
    'conv/kernel': (3, 3, 4, 8),
    'dense/kernel': (16, 8),
    'dense/bias': (8,),
    'bn/scale': (8,),
    'zero/kernel': (4, 4),
}
RATES = (0.0, 0.5, 1.0, 0.8, 0.3, 0.05)
# Gradient norm per layer and step: small norms push eta * |w| / |g| above
# the rate (clipped), large ones below it (not clipped).
GRAD_NORMS = {
    'conv/kernel': (1.0, 30.0, 0.05, 30.0, 0.05, 30.0),
    'dense/kernel': (0.05, 0.05, 30.0, 0.05, 30.0, 0.05),
    'dense/bias': (1.0,) * 6,
    'bn/scale': (1.0,) * 6,
    'zero/kernel': (1.0,) * 6,
}
ETA = 0.02
WEIGHT_DECAY = 0.05
MOMENTUM = 0.9


def _load_lars(path):
  spec = importlib.util.spec_from_file_location('solo_lars', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.LARSWrapper


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  params = {}
  for name, shape in SHAPES.items():
    if name.startswith('zero'):
      params[name] = np.zeros(shape, np.float32)
    elif name == 'bn/scale':
      params[name] = np.ones(shape, np.float32)
    else:
      params[name] = rng.normal(size=shape).astype(np.float32)
  grads = []
  for step in range(len(RATES)):
    g = {}
    for name, shape in SHAPES.items():
      d = rng.normal(size=shape)
      g[name] = (d / np.linalg.norm(d) * GRAD_NORMS[name][step]).astype(
          np.float32
      )
    grads.append(g)
  return params, grads


def run_solo_learn(lars_wrapper, params, grads, clip):
  """Returns the parameters after each step and which steps clipped."""
  tensors = {n: torch.tensor(p, requires_grad=True) for n, p in params.items()}
  opt = lars_wrapper(
      torch.optim.SGD(
          list(tensors.values()),
          lr=RATES[0],
          momentum=MOMENTUM,
          weight_decay=WEIGHT_DECAY,
      ),
      eta=ETA,
      clip=clip,
      exclude_bias_n_norm=True,
  )
  after, clipped = [], []
  for step, lr in enumerate(RATES):
    for group in opt.param_groups:
      group['lr'] = lr
    flags = {}
    for name, t in tensors.items():
      t.grad = torch.tensor(grads[step][name])
      w_norm = float(np.linalg.norm(params_now(t)))
      g_norm = float(np.linalg.norm(grads[step][name]))
      ratio = ETA * w_norm / (g_norm + WEIGHT_DECAY * w_norm + 1e-8)
      flags[name] = t.ndim > 1 and w_norm > 0 and ratio > lr
    opt.step()
    after.append({n: t.detach().numpy().copy() for n, t in tensors.items()})
    clipped.append(flags)
  return after, clipped


def params_now(t):
  return t.detach().numpy()


def _flatten(prefix, tree_list):
  out = {}
  for step, tree in enumerate(tree_list):
    for name, value in tree.items():
      out[f'{prefix}/{step}/{name}'] = np.asarray(value)
  return out


def replay_jax(fixture):
  """Our LARS on the fixture: the largest absolute and relative differences.

  The relative one is over entries of magnitude >= 1e-3, where float32
  rounding of a near-zero entry does not dominate it.
  """
  from tests import test_lars_parity  # pylint: disable=g-import-not-at-top

  worst_abs = worst_rel = 0.0
  for clip in (False, True):
    ours = test_lars_parity.replay(fixture, clip)
    for step, tree in enumerate(ours):
      for name, value in tree.items():
        want = fixture[f'{"clip" if clip else "noclip"}/{step}/{name}']
        diff = np.abs(value - want)
        worst_abs = max(worst_abs, float(diff.max()))
        big = np.abs(want) >= 1e-3
        if big.any():
          worst_rel = max(
              worst_rel, float((diff[big] / np.abs(want[big])).max())
          )
  return {'max_abs_diff': worst_abs, 'max_rel_diff': worst_rel}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--lars_py', required=True)
  parser.add_argument('--out', default=FIXTURE)
  args = parser.parse_args()
  torch.set_default_dtype(torch.float32)
  lars_wrapper = _load_lars(args.lars_py)
  params, grads = _inputs()
  arrays = {f'init/{n}': p for n, p in params.items()}
  arrays.update(_flatten('grad', grads))
  arrays['rates'] = np.asarray(RATES, np.float32)
  arrays['hparams'] = np.asarray([ETA, WEIGHT_DECAY, MOMENTUM], np.float32)
  summary = {}
  for clip in (False, True):
    after, clipped = run_solo_learn(lars_wrapper, params, grads, clip)
    tag = 'clip' if clip else 'noclip'
    arrays.update(_flatten(tag, after))
    if clip:
      for step, flags in enumerate(clipped):
        for name, flag in flags.items():
          arrays[f'clipped/{step}/{name}'] = np.asarray(flag)
      summary['clipped_layer_steps'] = int(
          sum(f for flags in clipped for f in flags.values())
      )
      summary['unclipped_kernel_steps'] = int(
          sum(
              (not f) and n in ('conv/kernel', 'dense/kernel')
              for flags in clipped
              for n, f in flags.items()
          )
      )
  np.savez_compressed(args.out, **arrays)
  summary['fixture'] = os.path.relpath(args.out)
  summary['fixture_bytes'] = os.path.getsize(args.out)
  summary['torch'] = torch.__version__
  try:
    summary['ours_vs_solo_learn'] = replay_jax(dict(np.load(args.out)))
  except ImportError as e:
    summary['jax_replay'] = f'skipped: {e}'
  commit = subprocess.check_output(
      ['git', 'rev-parse', '--short', 'HEAD'],
      cwd=os.path.dirname(os.path.abspath(__file__)),
      text=True,
  ).strip()
  summary['commit'] = commit
  print(json.dumps(summary, indent=1))
  if 'ours_vs_solo_learn' in summary:
    path = os.path.join(
        os.path.dirname(__file__),
        '..',
        'results',
        f'lars_parity_{commit}.json',
    )
    with open(path, 'w') as f:
      json.dump(summary, f, indent=1)


if __name__ == '__main__':
  main()
