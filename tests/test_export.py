"""Exports: JAX bundles, torchvision and timm names, bad requests, and parity.

The parity tests load the exports into torchvision/timm with the loading code
of docs/export.md (run from the document itself) and compare embeddings with
ours; they skip where torch, torchvision or timm is not installed.
"""

import functools
import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from safetensors import numpy as st_numpy
from safetensors import safe_open

from ssl_jax import embed
from ssl_jax import errors
from ssl_jax import export
from ssl_jax import exporting
from ssl_jax.methods import base
from ssl_jax.models import resnet
from ssl_jax.training import checkpoint
from ssl_jax.training import run as run_lib
from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = os.path.join(ROOT, 'tests', 'fixtures', 'export_torch_names.json')
DOC = os.path.join(ROOT, 'docs', 'export.md')
TOLERANCE = 1e-4  # float32, the same images through both.

RESNET = dict(encoder='resnet18', image_size=32)
VIT = {'encoder': 'vit_tiny', 'image_size': 16, 'model.patch_size': 4}


def _make_workdir(path, seed=0, **overrides):
  """A workdir (config, dataset facts, one checkpoint) of random weights.

  Every parameter is perturbed and BatchNorm statistics drawn at random, so
  that a swapped or mis-transposed array changes the embeddings.
  """
  config = helpers.tiny_config(
      dataset='folder', data_dir=str(path / 'data_gone'), **overrides
  )
  side = config.image_size
  facts = dict(
      image_shape=(side, side, 3),
      num_classes=2,
      class_names=('a', 'b'),
      splits={'train': 32},
  )
  run = run_lib.build(config, dataset=facts)
  params, batch_stats = jax.device_get(run.init_variables(jax.random.key(seed)))
  rng = np.random.default_rng(seed)

  def perturb(path, p):
    # Kernels scaled, not shifted: features stay O(1) through the blocks.
    noise = rng.normal(0, 0.05, p.shape)
    kernel = getattr(path[-1], 'key', None) == 'kernel'
    return (p * (1 + noise) if kernel else p + noise).astype(p.dtype)

  def stats(path, x):
    if getattr(path[-1], 'key', None) == 'var':
      return rng.uniform(0.5, 2.0, x.shape).astype(x.dtype)
    return rng.normal(0, 0.1, x.shape).astype(x.dtype)

  # The layout of a run's checkpoint, without an optimiser state to build.
  state = base.TrainState(
      step=np.int32(3),
      params=jax.tree_util.tree_map_with_path(perturb, params),
      batch_stats=jax.tree_util.tree_map_with_path(stats, batch_stats),
      opt_state={},
      extra={},
  )
  workdir = str(path / 'run')
  checkpoint.save_config(workdir, config)
  with open(os.path.join(workdir, 'dataset.json'), 'w') as f:
    json.dump(facts, f)
  saver = checkpoint.Checkpointer(workdir, keep=1)
  saver.save(3, state)
  saver.close()
  return workdir


@pytest.fixture(scope='module')
def resnet_run(tmp_path_factory):
  return _make_workdir(
      tmp_path_factory.mktemp('resnet'),
      **RESNET,
      **{
          'model.cifar_stem': False,
          'model.input_mean': (0.4, 0.5, 0.6),
          'model.input_std': (0.2, 0.25, 0.3),
      },
  )


@pytest.fixture(scope='module')
def vit_run(tmp_path_factory):
  return _make_workdir(tmp_path_factory.mktemp('vit'), **VIT)


@functools.lru_cache
def _embedder(workdir):
  """One embedder per workdir or bundle: its compilations are reused."""
  return embed.load(workdir)


def _apply(model, variables, images):
  """docs/export.md's call, ``model.apply(variables, x, train=False)``, jitted."""
  apply = jax.jit(functools.partial(model.apply, train=False))
  return apply(variables, images / np.float32(255))


def _images(side, n=4, seed=1):
  return np.random.default_rng(seed).integers(
      0, 256, (n, side, side, 3), np.uint8
  )


def _names():
  with open(NAMES) as f:
    return json.load(f)


@pytest.mark.slow
def test_bundle_gives_the_workdirs_embeddings(vit_run, tmp_path):
  out = str(tmp_path / 'sub' / 'vit.safetensors')
  metadata = export.export(vit_run, 'jax', out)
  assert metadata['step'] == '3' and metadata['encoder'] == 'vit_tiny'
  images = _images(16)
  want = _embedder(vit_run)(images)
  np.testing.assert_allclose(embed.load(out)(images), want, atol=1e-6)
  # The one call for a user's own flax code, compiled as a separate program
  # (its own fusions), so rounding may differ in the last bits.
  model, variables = export.load_bundle(out)
  got = _apply(model, variables, images)
  np.testing.assert_allclose(got['features'], want, atol=1e-5)
  assert os.listdir(tmp_path / 'sub') == ['vit.safetensors']


@pytest.mark.slow
def test_resnet_bundle_keeps_batch_stats_and_normalisation(
    resnet_run, tmp_path
):
  out = str(tmp_path / 'resnet.safetensors')
  export.export(resnet_run, 'jax', out)
  with safe_open(out, 'np') as f:
    metadata = f.metadata()
    keys = set(f.keys())
  assert 'batch_stats/stem_bn/var' in keys
  assert 'params/BasicBlock_7/proj_conv/kernel' not in keys
  assert 'params/BasicBlock_2/proj_conv/kernel' in keys
  assert json.loads(metadata['input_mean']) == [0.4, 0.5, 0.6]
  model, variables = export.load_bundle(out)
  saved = jax.device_get(_embedder(resnet_run).variables)
  for part in ('params', 'batch_stats'):
    jax.tree.map(
        np.testing.assert_array_equal, variables[part], saved[part]['encoder']
    )
  images = _images(32)
  got = _apply(model, variables, images)
  np.testing.assert_allclose(
      got['features'], _embedder(resnet_run)(images), atol=1e-5
  )


@pytest.mark.parametrize('encoder', ['resnet18', 'resnet50'])
def test_torchvision_names_and_shapes(encoder):
  module = getattr(resnet, encoder)(cifar_stem=False)
  shapes = jax.eval_shape(
      lambda: module.init(
          jax.random.key(0), np.zeros((1, 32, 32, 3)), train=False
      )
  )
  zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
  got = exporting.torchvision_resnet(
      encoder, zeros['params'], zeros['batch_stats']
  )
  want = _names()[encoder]
  assert {k: list(v.shape) for k, v in got.items()} == want


def test_timm_names_and_shapes(vit_run, tmp_path):
  out = str(tmp_path / 'vit_timm.safetensors')
  metadata = export.export(vit_run, 'timm', out)
  assert metadata['model'] == 'vit_tiny_patch16_224'
  got = st_numpy.load_file(out)
  assert {k: list(v.shape) for k, v in got.items()} == _names()[
      'vit_tiny_p4_s16'
  ]
  assert all(v.dtype == np.float32 for v in got.values())


@pytest.mark.parametrize(
    'fmt, make, fix',
    [
        ('onnx', 'resnet', 'use one of'),
        ('timm', 'resnet', 'use --format=torchvision'),
        ('torchvision', 'vit', 'use --format=timm'),
        ('torchvision', 'convnet', 'use --format=jax'),
        ('jax', 'empty', 'holds no checkpoint'),
        ('jax', 'missing', 'config.json does not exist'),
        ('jax', 'unwritable', 'cannot be written'),
    ],
)
def test_bad_requests_are_one_line_and_write_nothing(
    fmt, make, fix, resnet_run, vit_run, tmp_path
):
  workdir = {'resnet': resnet_run, 'vit': vit_run}.get(make, '')
  out_dir = tmp_path / 'out'
  out_dir.mkdir()
  if make == 'convnet':  # The encoder is checked before the checkpoint.
    workdir = str(tmp_path / 'convnet')
    checkpoint.save_config(workdir, helpers.tiny_config())
  elif make == 'empty':
    workdir = str(tmp_path / 'empty')
    checkpoint.save_config(workdir, helpers.tiny_config())
  elif make == 'missing':
    workdir = str(tmp_path / 'nothing_here')
  elif make == 'unwritable':  # A file where --out needs a folder.
    workdir = resnet_run
    (out_dir / 'x').write_text('')
  before = sorted(os.listdir(out_dir))
  with pytest.raises((errors.ConfigError, errors.DataError)) as e:
    export.export(workdir, fmt, str(out_dir / 'x' / 'enc.safetensors'))
  assert fix in str(e.value) and '\n' not in str(e.value)
  assert sorted(os.listdir(out_dir)) == before


def test_command_line_error_is_one_line(tmp_path):
  out = tmp_path / 'x.safetensors'
  done = subprocess.run(
      [
          sys.executable,
          '-m',
          'ssl_jax.export',
          f'--workdir={tmp_path}',
          '--format=jax',
          f'--out={out}',
      ],
      capture_output=True,
      text=True,
      cwd=ROOT,
      check=False,
  )
  assert done.returncode != 0
  assert done.stderr.strip().splitlines() == [
      f'ssl_jax.export: error: {tmp_path / "config.json"} does not exist; '
      'pass the --workdir of a run of main.py.'
  ]
  assert not out.exists()


def test_a_failed_write_leaves_nothing(vit_run, tmp_path, monkeypatch):
  from safetensors import numpy as st  # pylint: disable=g-import-not-at-top

  def disk_full(tensors, filename, metadata=None):
    with open(filename, 'wb') as f:
      f.write(b'partial')
    raise OSError(28, 'No space left on device')

  monkeypatch.setattr(st, 'save_file', disk_full)
  with pytest.raises(OSError, match='No space'):
    export.export(vit_run, 'jax', str(tmp_path / 'out' / 'vit.safetensors'))
  assert not os.listdir(tmp_path / 'out')


# With PyTorch: the documented loading code, and the same embeddings.


def _doc_example(name, **inputs):
  """Runs docs/export.md's code block that starts ``# Example: name``."""
  with open(DOC) as f:
    blocks = re.findall(r'```python\n(.*?)```', f.read(), re.S)
  code = [b for b in blocks if b.startswith(f'# Example: {name}\n')]
  assert len(code) == 1, f'docs/export.md has no single example {name!r}'
  scope = dict(inputs)
  exec(code[0], scope)  # pylint: disable=exec-used
  return scope


def _torch_features(name, path, images, **extra):
  torch = pytest.importorskip('torch')
  x = torch.tensor(images.transpose(0, 3, 1, 2) / np.float32(255))
  with torch.no_grad():
    scope = _doc_example(name, path=path, images=x, **extra)
  return scope['features'].numpy()


def test_torchvision_loads_strictly_and_embeds_as_ours(resnet_run, tmp_path):
  pytest.importorskip('torchvision')
  out = str(tmp_path / 'resnet18.safetensors')
  export.export(resnet_run, 'torchvision', out)
  images = _images(32)
  want = _embedder(resnet_run)(images)
  padding = _doc_example('pad_like_ssl_jax')['pad_like_ssl_jax']
  got = _torch_features('torchvision', out, images, pad_like_ssl_jax=padding)
  diff = np.abs(got - want).max()
  print(f'torchvision resnet18: max abs difference {diff:.2e}')
  assert diff < TOLERANCE
  # Without the padding of our strided layers, torchvision computes another
  # function: the example is not a tautology.
  plain = _torch_features(
      'torchvision', out, images, pad_like_ssl_jax=lambda m: m
  )
  plain_diff = np.abs(plain - want).max()
  print(f'torchvision resnet18 without pad_like_ssl_jax: {plain_diff:.2e}')
  assert plain_diff > 100 * TOLERANCE


@pytest.mark.slow
def test_torchvision_cifar_stem(tmp_path):
  pytest.importorskip('torchvision')
  workdir = _make_workdir(tmp_path, seed=2, encoder='resnet18', image_size=16)
  out = str(tmp_path / 'cifar.safetensors')
  export.export(workdir, 'torchvision', out)
  images = _images(16)
  padding = _doc_example('pad_like_ssl_jax')['pad_like_ssl_jax']
  got = _torch_features('torchvision', out, images, pad_like_ssl_jax=padding)
  diff = np.abs(got - embed.load(workdir)(images)).max()
  print(f'torchvision resnet18 (CIFAR stem): max abs difference {diff:.2e}')
  assert diff < TOLERANCE


def test_timm_embeds_as_ours(vit_run, tmp_path):
  pytest.importorskip('timm')
  out = str(tmp_path / 'vit.safetensors')
  export.export(vit_run, 'timm', out)
  images = _images(16)
  got = _torch_features('timm', out, images)
  diff = np.abs(got - _embedder(vit_run)(images)).max()
  print(f'timm vit_tiny: max abs difference {diff:.2e}')
  assert diff < TOLERANCE


@pytest.mark.slow
def test_timm_sincos_positions(tmp_path):
  pytest.importorskip('timm')
  workdir = _make_workdir(
      tmp_path, seed=3, **VIT, **{'model.position_embedding': 'sincos'}
  )
  out = str(tmp_path / 'sincos.safetensors')
  export.export(workdir, 'timm', out)
  images = _images(16)
  got = _torch_features('timm', out, images)
  diff = np.abs(got - embed.load(workdir)(images)).max()
  print(f'timm vit_tiny (sin-cos positions): max abs difference {diff:.2e}')
  assert diff < TOLERANCE


def test_fixture_names_are_the_libraries(tmp_path):
  """Regenerates the names fixture's content from torchvision and timm."""
  torchvision = pytest.importorskip('torchvision')
  timm = pytest.importorskip('timm')
  want = {}
  for name in ('resnet18', 'resnet50'):
    model = getattr(torchvision.models, name)(weights=None)
    want[name] = {
        k: list(v.shape)
        for k, v in model.state_dict().items()
        if not k.startswith('fc.')
    }
  vit = timm.create_model(
      'vit_tiny_patch16_224',
      pretrained=False,
      num_classes=0,
      img_size=16,
      patch_size=4,
      no_embed_class=True,
  )
  want['vit_tiny_p4_s16'] = {
      k: list(v.shape) for k, v in vit.state_dict().items()
  }
  if os.environ.get('SSL_JAX_WRITE_FIXTURES'):
    models = [
        f'  {json.dumps(model)}: {{\n'
        + ',\n'.join(f'    {json.dumps(k)}: {v}' for k, v in names.items())
        + '\n  }'
        for model, names in want.items()
    ]
    with open(NAMES, 'w') as f:
      f.write('{\n' + ',\n'.join(models) + '\n}\n')
  assert _names() == want
