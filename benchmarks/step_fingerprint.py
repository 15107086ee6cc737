"""Fingerprints of the CPU configs' compiled train steps, to compare two trees.

  python benchmarks/step_fingerprint.py --out=benchmarks/results/step_fingerprint_COMMIT.json

For each CPU config (its model, views, optimiser and global batch, on one CPU
device, with ``cpu_convolutions`` as the config chooses) this runs a few
compiled train steps on fixed random batches and records each step's loss
and a SHA-256 of the final parameters. Two commits (or two oneDNN builds)
whose fingerprints are equal train bit-identically, so figures measured with
one hold for the other; run it in each tree and compare the files.
"""

import argparse
import hashlib
import importlib
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = (
    'simclr_cifar10_cpu',
    'barlow_twins_cifar10_cpu',
    'vicreg_cifar10_cpu',
    'byol_cifar10_cpu',
    'moco_v3_cifar10_cpu',
    'dino_cifar10_cpu',
    'deepcluster_cifar10_cpu',
    'fixmatch_cifar10_cpu',
    'supervised_cifar10_cpu',
)


def fingerprint(name: str, steps: int) -> dict:
  """Runs ``steps`` compiled steps of config ``name``; returns its record."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  try:
    import cases  # pylint: disable=g-import-not-at-top

    compile_step, example_batch = cases.compile_step, cases.example_batch
  except ImportError:  # Trees from before benchmarks/cases.py.
    import suite  # pylint: disable=g-import-not-at-top

    compile_step, example_batch = suite._compile_step, suite._batch  # pylint: disable=protected-access
  try:
    module = importlib.import_module(f'ssl_jax.configs.{name}')
  except ImportError:  # Trees from before the configs moved into ssl_jax.
    module = importlib.import_module(f'configs.{name}')
  config = module.get_config()
  compiled, state, batch, key, _ = compile_step(config)
  sharding = jax.tree.map(lambda x: x.sharding, batch)
  losses = []
  for i in range(steps):
    batch = jax.device_put(
        example_batch(config, np.random.default_rng(i)), sharding
    )
    state, metrics = compiled(state, batch, key)
    losses.append(float(metrics['loss']))
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(state.params)):
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return {
      'config': name,
      'losses': losses,
      'params_sha256': digest.hexdigest(),
      'onednn_calls': (
          compiled.as_text().count('custom_call_target="ssl_jax_onednn_conv')
      ),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--configs', default=','.join(CONFIGS))
  parser.add_argument('--steps', type=int, default=3)
  parser.add_argument('--out', default='')
  args = parser.parse_args()
  sys.path[:0] = [ROOT, os.path.join(ROOT, 'benchmarks')]
  records = [fingerprint(n, args.steps) for n in args.configs.split(',')]
  for r in records:
    print(json.dumps(r))
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(records, f, indent=2)


if __name__ == '__main__':
  main()
