"""Our compiled train steps against PyTorch steps built from lightly's modules.

  /path/to/torch/venv/bin/python benchmarks/parity/step_parity.py \
      --lars_py=/path/to/solo/utils/lars.py [--methods=simclr,byol]

Needs torch, lightly 1.6.0, jax and ssl_jax in one environment. For each
method (``parity_cases.METHODS``) it builds our state from the shrunk
``<method>_cifar10`` config (``parity_cases.shrunk_config``), copies the
initial weights into a torch twin (``torch_twin.py``: our ConvNet, lightly's
heads), makes three steps of views with our augmentation, and runs three
optimiser steps on both sides with our LR schedule: lightly's losses, its
``update_momentum`` and ``cosine_schedule`` for the momentum targets,
solo-learn 1.0.2's ``LARSWrapper`` around ``torch.optim.SGD`` for LARS (its
one file ``--lars_py``, loaded alone: it imports only torch). It writes
``tests/fixtures/parity_<method>.npz`` (views, initial weights in our layout,
LRs and the torch side's per-step values) and
``benchmarks/results/step_parity_<commit>.json`` (the largest differences).
What is compared and why: docs/parity.md.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys

from lightly import loss as lightly_loss
from lightly.models import utils as lightly_utils
from lightly.utils import scheduler
import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__))]

import parity_cases  # noqa: E402  # pylint: disable=g-import-not-at-top,wrong-import-position
import torch_twin  # noqa: E402  # pylint: disable=g-import-not-at-top,wrong-import-position


def make_optimizer(config, twin, lars_wrapper):
  """solo-learn's ``LARSWrapper`` around ``SGD``, as its recipes build it.

  Args:
    config: the case's config (``optimizer``).
    twin: the torch model.
    lars_wrapper: the ``LARSWrapper`` class.

  Returns:
    The wrapped optimiser. Biases and norms (the 1-D tensors, which the
    wrapper leaves out) are a group of their own whose ``'scale'`` is
    ``optimizer.bias_norm_lr_scale``; the caller sets each group's rate.
  """
  o = config.optimizer
  weights = [p for p in twin.parameters() if p.requires_grad and p.ndim > 1]
  vectors = [p for p in twin.parameters() if p.requires_grad and p.ndim == 1]
  sgd = torch.optim.SGD(
      [
          {'params': weights, 'scale': 1.0},
          {'params': vectors, 'scale': o.bias_norm_lr_scale},
      ],
      lr=1.0,
      momentum=o.momentum,
      weight_decay=o.weight_decay,
      nesterov=False,
  )
  return lars_wrapper(
      sgd, eta=o.trust_coefficient, clip=o.clip_lr, exclude_bias_n_norm=True
  )


def _moco_v3(q, k, temperature):
  """MoCo v3's ``ctr`` (its paper's Algorithm 1): lightly has no such loss."""
  q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
  logits = q @ k.T / temperature
  labels = torch.arange(q.shape[0])
  return 2 * temperature * F.cross_entropy(logits, labels)


def make_loss(config):
  """``(online pair, target pair) -> loss`` from lightly's losses."""
  m = config.method
  if m == 'simclr':
    fn = lightly_loss.NTXentLoss(temperature=config.temperature)
    return lambda o, t: fn(*o)
  if m == 'barlow_twins':
    fn = lightly_loss.BarlowTwinsLoss(lambda_param=config.barlow.lambd)
    # solo-learn's scale_loss (lightly's loss has none).
    return lambda o, t: config.barlow.scale_loss * fn(*o)
  if m == 'vicreg':
    w = config.vicreg
    fn = lightly_loss.VICRegLoss(w.sim_weight, w.var_weight, w.cov_weight)
    return lambda o, t: fn(*o)
  if m == 'byol':
    ncs = lightly_loss.NegativeCosineSimilarity()
    # BYOL's 2 - 2 cos per direction, summed over both (its paper).
    return lambda o, t: (2 + 2 * ncs(o[0], t[1])) + (2 + 2 * ncs(o[1], t[0]))
  if m == 'moco_v3':
    tau = config.moco_v3.temperature
    return lambda o, t: _moco_v3(o[0], t[1], tau) + _moco_v3(o[1], t[0], tau)
  raise ValueError(m)


def torch_run(config, flat, steps, lars_wrapper, schedules):
  """Runs the torch side of a case.

  Args:
    config: the case's config.
    flat: our initial weights (``init/...``).
    steps: each step's views (NHWC float32 arrays).
    lars_wrapper: solo-learn's ``LARSWrapper`` class.
    schedules: :func:`schedules`' per-step values.

  Returns:
    ``(records, notes)``: per step, the loss and every compared tensor in
    our layout and names; and which lightly head each part is.
  """
  twin, notes = torch_twin.build_twin(config)
  torch_twin.load_weights(twin, flat)
  twin.train()
  target = None
  if config.method in ('byol', 'moco_v3', 'dino'):
    # A second twin with the same weights (a deepcopy fails on the
    # weight-normalised DINO head), without gradients, as lightly's examples.
    target, _ = torch_twin.build_twin(config)
    torch_twin.load_weights(target, flat)
    lightly_utils.deactivate_requires_grad(target)
  opt = make_optimizer(config, twin, lars_wrapper)
  b, m = config.batch_size, config.method
  if m == 'dino':
    d = config.dino
    dino_loss = lightly_loss.DINOLoss(
        output_dim=d.out_dim,
        student_temp=d.student_temperature,
        center_momentum=d.center_momentum,
    )
  else:
    loss_fn = make_loss(config)
  records = []
  for t, views in enumerate(steps):
    views = [torch.from_numpy(v).to(torch.get_default_dtype()) for v in views]
    if config.model.get('input_mean'):
      # Ours normalises first thing in the encoder; the references, in their
      # data pipelines (torchvision's Normalize): the same arithmetic.
      mean = torch.tensor(config.model.input_mean, dtype=torch.float32)
      std = torch.tensor(config.model.input_std, dtype=torch.float32)
      views = [(v - mean) / std for v in views]
    for group in opt.param_groups:
      group['lr'] = schedules['lr'][t] * group['scale']
    if m == 'dino':
      globals_, locals_ = torch.cat(views[:2]), torch.cat(views[2:])
      with torch.no_grad():
        teacher = list(target(globals_)['projection'].chunk(2))
      # DINO's MultiCropWrapper: the backbone per crop size, then the head
      # once on the features of all crops (as ours).
      features = torch.cat([twin.encoder(globals_), twin.encoder(locals_)])
      student = list(twin.projector(features).chunk(len(views)))
      loss = dino_loss(
          teacher, student, teacher_temp=schedules['teacher_temperature'][t]
      )
    else:
      x = torch.cat(views)
      pair = None
      if target is not None:
        with torch.no_grad():
          pair = target(x)['projection'].split(b)
      online = 'prediction' if target is not None else 'projection'
      loss = loss_fn(twin(x)[online].split(b), pair)
    opt.zero_grad()
    loss.backward()
    if m == 'dino':
      # No gradient (so no update, decay or momentum) for the prototypes in
      # the first freeze_last_layer epochs, as lightly's DINO example does.
      epoch = t // parity_cases.STEPS_PER_EPOCH
      twin.projector.cancel_last_layer_gradients(current_epoch=epoch)
    opt.step()
    if target is not None:
      # After the optimiser step, as BYOL, MoCo v3 and DINO do; lightly's
      # examples update before the next forward pass, the same sequence.
      lightly_utils.update_momentum(twin, target, m=schedules['momentum'][t])
    rec = {'loss': np.float32(loss.item())}
    for name, tensor, layout in torch_twin.named_tensors(twin):
      rec[name] = torch_twin.to_ours(tensor, layout)
    if target is not None:
      for name, tensor, layout in torch_twin.named_tensors(target):
        if name.startswith('params/'):
          rec['target/' + name[len('params/') :]] = torch_twin.to_ours(
              tensor, layout
          )
    if m == 'dino':
      rec['center'] = dino_loss.center.detach().numpy().reshape(-1).copy()
    records.append(rec)
  return records, notes


def schedules(config, state, schedule):
  """The per-step values both sides use.

  Args:
    config: the case's config.
    state: our step-0 state (on the host).
    schedule: our LR schedule.

  Returns:
    ``{'lr'}`` (ours), with ``'momentum'`` (lightly's ``cosine_schedule``,
    checked against ours) for momentum targets and
    ``'teacher_temperature'`` (ours) for DINO.
  """
  from ssl_jax.methods import dino  # pylint: disable=g-import-not-at-top
  from ssl_jax.methods import momentum  # pylint: disable=g-import-not-at-top

  steps = range(parity_cases.STEPS)
  out = {'lr': np.asarray([float(schedule(t)) for t in steps], np.float32)}
  extra = state.extra
  if 'num_steps' in extra:
    k = int(extra['num_steps'])
    base = config[config.method].base_momentum
    # lightly's cosine_schedule reaches 1 at max_steps - 1, BYOL's and
    # DINO's at the last step K: max_steps = K + 1 is theirs (and ours).
    out['momentum'] = np.asarray(
        [scheduler.cosine_schedule(t, k + 1, base, 1.0) for t in steps]
    )
    ours = [float(momentum.target_momentum(t, k, base)) for t in steps]
    np.testing.assert_allclose(out['momentum'], ours, rtol=1e-6)
  if config.method == 'dino':
    out['teacher_temperature'] = np.asarray([
        float(dino.teacher_temperature(t, extra['warmup_steps'], config.dino))
        for t in steps
    ])
  return out


def run_method(method, lars_wrapper):
  """Runs one case on both sides and writes its fixture.

  Args:
    method: one of ``parity_cases.METHODS``.
    lars_wrapper: solo-learn's ``LARSWrapper`` class.

  Returns:
    The method's entry of the results JSON.
  """
  import jax  # pylint: disable=g-import-not-at-top

  config = parity_cases.config_from(
      parity_cases.pinned(parity_cases.shrunk_config(method))
  )
  built = parity_cases.build(config)
  _, state, _, schedule, _ = built
  host = jax.device_get(state)
  fixture = {
      'config': np.asarray(parity_cases.pinned(config)),
      'steps': np.asarray(parity_cases.STEPS),
  }
  fixture.update(parity_cases.flatten(host.params, 'init/params/'))
  fixture.update(parity_cases.flatten(host.batch_stats, 'init/batch_stats/'))
  steps = []
  for t in range(parity_cases.STEPS):
    views, labels = parity_cases.views(config, t)
    steps.append(views)
    fixture[f'step{t}/num_views'] = np.asarray(len(views))
    fixture[f'step{t}/label'] = labels
    for i, v in enumerate(views):
      fixture[f'step{t}/view{i}'] = v
  sched = schedules(config, host, schedule)
  fixture.update(sched)
  # The torch step in float64 gives the expected values; the float32 one
  # is measured against it too. The float32 torch step drifts from float64
  # by up to 2e-5 of a tensor's scale (Barlow Twins' third step; 9e-3 for
  # BYOL's at batch 16) where ours stays within ~6e-6: comparing with float32
  # torch would compare with its rounding (docs/parity.md).
  torch.set_default_dtype(torch.float64)
  try:
    records, notes = torch_run(config, fixture, steps, lars_wrapper, sched)
  finally:
    torch.set_default_dtype(torch.float32)
  records32, _ = torch_run(config, fixture, steps, lars_wrapper, sched)
  for t, rec in enumerate(records):
    for name, value in rec.items():
      fixture[f'expect/step{t}/{name}'] = np.asarray(value, np.float32)
  path = parity_cases.fixture_path(method)
  np.savez_compressed(path, **fixture)
  ours = parity_cases.replay(fixture, built)
  rows = parity_cases.compare(fixture, ours, method)
  for t, row in enumerate(rows):
    row['of_tensor_max_vs_torch_float64'] = {
        'ours': _worst(parity_cases.named(ours[t]), records[t], method),
        'torch_float32': _worst(records32[t], records[t], method),
    }
  return {
      'method': method,
      'fixture': os.path.relpath(path, ROOT),
      'fixture_bytes': os.path.getsize(path),
      'torch_modules': notes,
      'losses_torch_float64': [float(r['loss']) for r in records],
      'steps': rows,
  }


def _worst(got, exact, method):
  """``max |got - exact| / max |exact|`` over the compared tensors."""
  zero = parity_cases.ZERO_IN_EXACT_ARITHMETIC.get(method, ())
  worst = 0.0
  for name, value in exact.items():
    if name == 'loss' or name in zero:
      continue
    value = np.asarray(value, np.float64)
    diff = np.abs(np.asarray(got[name], np.float64) - value).max()
    worst = max(worst, float(diff / max(np.abs(value).max(), 1e-30)))
  return worst


def _load_lars(path):
  """solo-learn's ``LARSWrapper`` from its one file."""
  spec = importlib.util.spec_from_file_location('solo_lars', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.LARSWrapper


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument(
      '--lars_py', default='/work/refsrc/solo/solo/utils/lars.py'
  )
  parser.add_argument('--methods', default=','.join(parity_cases.METHODS))
  parser.add_argument('--out', default='')
  args = parser.parse_args()
  torch.use_deterministic_algorithms(True)
  torch.backends.cuda.matmul.allow_tf32 = False
  torch.backends.cudnn.allow_tf32 = False
  torch.set_default_dtype(torch.float32)
  lars_wrapper = _load_lars(args.lars_py)
  commit = subprocess.check_output(
      ['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, text=True
  ).strip()
  import lightly  # pylint: disable=g-import-not-at-top

  summary = {
      'commit': commit,
      'torch': torch.__version__,
      'lightly': lightly.__version__,
      'lars': 'solo-learn 1.0.2 LARSWrapper',
      'methods': [run_method(m, lars_wrapper) for m in args.methods.split(',')],
  }
  print(json.dumps(summary, indent=1))
  out = args.out or os.path.join(
      ROOT, 'benchmarks', 'results', f'step_parity_{commit}.json'
  )
  with open(out, 'w') as f:
    json.dump(summary, f, indent=1)


if __name__ == '__main__':
  main()
