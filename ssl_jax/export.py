"""Exports a trained encoder for PyTorch (torchvision, timm) or standalone JAX.

  python -m ssl_jax.export --workdir=W --format=FORMAT --out=FILE.safetensors
      [--step=N]

Formats (every file is safetensors, no pickle; ``docs/export.md`` shows how
each is loaded):

* ``torchvision``: ResNet-18/50 as a ``torchvision.models.resnet18/50``
  ``state_dict`` without ``fc`` (the loading model sets
  ``fc = nn.Identity()``).
* ``timm``: ViT-Tiny/Small under timm's ``VisionTransformer`` names.
* ``jax``: any built-in encoder: its ``params/...`` and ``batch_stats/...``
  and the config that rebuilds it; :func:`load_bundle` reads it, and so
  does ``ssl_jax.embed.load(FILE)``.

The file's metadata (strings) hold ``format``, ``encoder``, ``image_size``,
``channels``, ``input_mean``/``input_std`` (JSON lists: the loading side
normalises [0, 1] images by them; empty: no normalisation), ``step`` and
``ssl_jax_commit``. Features are the encoder's, in inference mode (FixMatch:
its EMA parameters), as ``ssl_jax.embed`` computes them.
"""

import functools
import json
import os
import subprocess
import tempfile
from typing import Any, Optional

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from ssl_jax import errors
from ssl_jax import exporting
from ssl_jax import models
from ssl_jax.configs import default
from ssl_jax.data import paths

FORMATS = ('torchvision', 'timm', 'jax')
# What identifies a jax bundle in its metadata.
BUNDLE_FORMAT = 'ssl_jax.jax'
# The config fields a bundle keeps: what rebuilds the encoder and what
# ssl_jax.embed needs to read images as the run did.
BUNDLE_FIELDS = (
    'encoder',
    'model',
    'image_size',
    'dtype',
    'data.resize',
    'data.channels',
)


class Features(nn.Module):
  """``encoder(x, train)`` as ``{'features': ...}``, with its variable names.

  The method models' outputs are dicts with ``'features'``; this gives a
  bundled encoder the same interface, so ``ssl_jax.embed`` and the
  evaluation code take either.

  Attributes:
    network: the encoder module (not named ``encoder``: the scope it shares
      must not clash with :class:`models.normalize.InputNormalized`'s).
  """

  network: nn.Module

  def setup(self):
    nn.share_scope(self, self.network)

  def __call__(self, x, train: bool = False):
    return {'features': self.network(x, train=train)}


def _commit() -> str:
  """The git commit of this ssl_jax checkout, or 'unknown' (an install)."""
  try:
    done = subprocess.run(
        ['git', 'rev-parse', 'HEAD'],
        cwd=os.path.dirname(os.path.abspath(__file__)),
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return done.stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return 'unknown'


def _check_out(out: str) -> str:
  """``out`` as a local path whose folder exists or can be made, writable."""
  if paths.is_url(out):
    raise errors.ConfigError(
        f'--out={out!r}: exports are written to local files; write one '
        'locally and copy it.'
    )
  out = os.path.abspath(out)
  if os.path.isdir(out):
    raise errors.ConfigError(
        f'--out={out!r} is a folder; pass a file name such as '
        f'{os.path.join(out, "encoder.safetensors")!r}.'
    )
  parent = os.path.dirname(out)
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
    raise errors.ConfigError(
        f'--out={out!r} cannot be written ({parent!r} is not a writable '
        'folder); choose an --out in a folder you can write.'
    )
  return out


def _check_checkpoint(workdir: str, step: Optional[int]) -> None:
  directory = paths.join(paths.abspath(workdir), 'checkpoints')
  steps = []
  if paths.isdir(directory):
    steps = sorted(
        int(name)
        for name, is_dir in paths.listdir_typed(directory)
        if is_dir and name.isdigit()
    )
  if not steps:
    raise errors.DataError(
        f'workdir {workdir!r} holds no checkpoint ({directory!r} is missing '
        'or empty); pass the --workdir of a run that has saved one.'
    )
  if step is not None and step not in steps:
    raise errors.DataError(
        f'--step={step}: workdir {workdir!r} has checkpoints of steps '
        f'{steps}; pass one of them, or no --step for the latest.'
    )


def _write(out: str, tensors: dict[str, np.ndarray], metadata: dict[str, str]):
  """Writes a temporary file beside ``out`` and renames it: never partial."""
  from safetensors import numpy as st_numpy  # pylint: disable=g-import-not-at-top

  os.makedirs(os.path.dirname(out), exist_ok=True)
  fd, tmp = tempfile.mkstemp(
      dir=os.path.dirname(out),
      prefix=f'.{os.path.basename(out)}.',
      suffix='.tmp',
  )
  os.close(fd)
  try:
    st_numpy.save_file(tensors, tmp, metadata=metadata)
    # mkstemp makes the file private; give it the mode a plain open would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, out)
  except BaseException:
    os.remove(tmp)
    raise


def _bundle_config(config: ml_collections.ConfigDict) -> dict[str, Any]:
  flat = {}
  for field in BUNDLE_FIELDS:
    node = config
    for part in field.split('.'):
      node = node[part]
    flat[field] = node.to_dict() if hasattr(node, 'to_dict') else node
  return flat


def export(
    workdir: str, fmt: str, out: str, step: Optional[int] = None
) -> dict[str, str]:
  """Writes the encoder of ``workdir`` to ``out`` in format ``fmt``.

  Every problem the request can have is found before the checkpoint is
  read, and the file appears only once complete.

  Args:
    workdir: a run directory written by ``main.py``.
    fmt: one of :data:`FORMATS`.
    out: the safetensors file to write (its folder is made if missing).
    step: the checkpoint (default: the latest).

  Returns:
    The metadata written with the file.

  Raises:
    errors.ConfigError: an unknown format, one that cannot hold this
      encoder, or an ``out`` that cannot be written.
    errors.DataError: the workdir has no config or no such checkpoint.
  """
  from ssl_jax import embed  # pylint: disable=g-import-not-at-top
  from ssl_jax.tools import evaluate  # pylint: disable=g-import-not-at-top

  if fmt not in FORMATS:
    raise errors.ConfigError(
        f'--format={fmt!r} is not an export format; use one of {FORMATS}.'
    )
  config = evaluate.load_config(workdir)
  library_model = (
      exporting.check_encoder(fmt, config.encoder) if fmt != 'jax' else ''
  )
  if config.encoder not in models.ENCODERS:
    raise errors.ConfigError(
        f'encoder={config.encoder!r} is not registered here; export from a '
        'program that registers it first (models.register_encoder).'
    )
  out = _check_out(out)
  _check_checkpoint(workdir, step)

  embedder = embed.load(workdir, step)
  run = embedder.run
  variables = jax.device_get(embedder.variables)
  params = variables['params']['encoder']
  batch_stats = variables.get('batch_stats', {}).get('encoder', {})
  m = config.model
  metadata = {
      'format': BUNDLE_FORMAT if fmt == 'jax' else fmt,
      'encoder': config.encoder,
      'image_size': str(config.image_size),
      'channels': str(run.channels),
      'input_mean': json.dumps(list(m.input_mean)),
      'input_std': json.dumps(list(m.input_std)),
      'step': str(embedder.step),
      'ssl_jax_commit': _commit(),
  }
  if fmt == 'torchvision':
    tensors = exporting.torchvision_resnet(config.encoder, params, batch_stats)
    metadata.update(model=library_model, cifar_stem=json.dumps(m.cifar_stem))
  elif fmt == 'timm':
    tensors = exporting.timm_vit(
        params,
        patch_size=m.patch_size,
        image_size=config.image_size,
        position_embedding=m.position_embedding,
    )
    metadata.update(
        model=library_model,
        create_model_kwargs=json.dumps(
            dict(
                num_classes=0,
                img_size=config.image_size,
                patch_size=m.patch_size,
                in_chans=run.channels,
                no_embed_class=True,
            )
        ),
    )
  else:
    tensors = exporting.flatten({'params': params, 'batch_stats': batch_stats})
    dataset = {
        k: run.dataset[k] for k in ('image_shape', 'num_classes', 'class_names')
    }
    metadata.update(
        config=json.dumps(_bundle_config(config)),
        dataset=json.dumps(dataset),
    )
  _write(out, tensors, metadata)
  return metadata


def _read_bundle(path: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
  from safetensors import numpy as st_numpy  # pylint: disable=g-import-not-at-top
  from safetensors import safe_open  # pylint: disable=g-import-not-at-top

  try:
    with safe_open(path, 'np') as f:
      metadata = f.metadata() or {}
  except Exception as e:  # pylint: disable=broad-except
    raise errors.DataError(
        f'{path!r} is not a safetensors file ({e}); pass a file written by '
        'python -m ssl_jax.export --format=jax.'
    ) from None
  if metadata.get('format') != BUNDLE_FORMAT:
    raise errors.DataError(
        f'{path!r} is a {metadata.get("format", "foreign")!r} export, not a '
        'JAX bundle; pass a file written with --format=jax, or a workdir.'
    )
  return st_numpy.load_file(path), metadata


def bundle_config(metadata: dict[str, str]) -> ml_collections.ConfigDict:
  """The default config with a bundle's saved fields over it.

  Args:
    metadata: the bundle's safetensors metadata.

  Returns:
    A config that builds the bundled encoder (XLA convolutions).
  """
  config = default.get_config()
  for field, value in json.loads(metadata['config']).items():
    node = config
    *path, leaf = field.split('.')
    for part in path:
      node = node[part]
    if isinstance(value, dict):
      node[leaf].update(value)
    else:
      node[leaf] = value
  config.cpu_convolutions = 'xla'
  return config


def _from_bundle(path: str):
  tensors, metadata = _read_bundle(path)
  model = Features(models.get_encoder(bundle_config(metadata)))
  variables = exporting.unflatten(tensors)
  variables.setdefault('batch_stats', {})
  return model, variables, metadata


def load_bundle(path: str) -> tuple[nn.Module, dict[str, Any]]:
  """A JAX bundle's encoder and variables, for any flax code.

  ``model.apply(variables, images, train=False)['features']`` maps float
  images [N, S, S, C] in [0, 1] (S the bundle's ``image_size``) to the
  encoder's features [N, D]; normalisation by ``input_mean``/``input_std``
  happens inside, as in training.

  Args:
    path: a file written by ``python -m ssl_jax.export --format=jax``.

  Returns:
    ``(model, {'params': ..., 'batch_stats': ...})``.

  Raises:
    errors.DataError: ``path`` is not such a file.
  """
  model, variables, _ = _from_bundle(path)
  return model, variables


def bundle_run(path: str) -> tuple[Any, dict[str, Any], int]:
  """What ``ssl_jax.embed.load`` needs from a bundle: a run and its variables.

  Args:
    path: a JAX bundle.

  Returns:
    ``(run, variables, step)``: a :class:`ssl_jax.training.run.Run` whose
    model is the bundled encoder (:class:`Features`), on every device.

  Raises:
    errors.DataError: ``path`` is not a JAX bundle.
  """
  from ssl_jax import methods  # pylint: disable=g-import-not-at-top
  from ssl_jax.training import run as run_lib  # pylint: disable=g-import-not-at-top
  from ssl_jax.training import step as step_lib  # pylint: disable=g-import-not-at-top

  model, variables, metadata = _from_bundle(path)
  config = bundle_config(metadata)
  dataset = json.loads(metadata['dataset'])
  # None: the dataset's images vary in size.
  dataset['image_shape'] = tuple(dataset['image_shape'] or ()) or None
  dataset['class_names'] = tuple(dataset['class_names'] or ())
  run = run_lib.Run(
      config=config,
      method=methods.get(config.method),
      model=model,
      mesh=step_lib.make_mesh(),
      dataset=dataset,
      channels=int(metadata['channels']),
  )
  return run, variables, int(metadata['step'])


def main(argv, *, flag_values):
  """The command line: writes ``--out`` and prints one line.

  Args:
    argv: leftover arguments (none are accepted).
    flag_values: the parsed flags.
  """
  if len(argv) > 1:
    raise SystemExit(f'Unexpected arguments: {argv[1:]}')
  f = flag_values
  try:
    metadata = export(f.workdir, f.format, f.out, f.step)
  except (errors.DataError, errors.ConfigError, ValueError) as e:
    raise SystemExit(f'ssl_jax.export: error: {e}') from None
  print(
      f'{f.out}: {metadata["encoder"]} (step {metadata["step"]}) as '
      f'{f.format}; see docs/export.md to load it.'
  )


def _define_flags():
  from absl import flags  # pylint: disable=g-import-not-at-top

  flags.DEFINE_string('workdir', None, 'Run directory.', required=True)
  flags.DEFINE_string(
      'format', None, f'One of {", ".join(FORMATS)}.', required=True
  )
  flags.DEFINE_string('out', None, 'Output .safetensors file.', required=True)
  flags.DEFINE_integer('step', None, 'Checkpoint step (default: latest).')
  return flags.FLAGS


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top

  _flags = _define_flags()
  app.run(functools.partial(main, flag_values=_flags))
