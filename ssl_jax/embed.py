"""Embeddings from a trained encoder, in Python and on the command line.

  python -m ssl_jax.embed --workdir=W --images=DIR --out=FILE.npz
  python -m ssl_jax.embed --workdir=W --split=test --out=FILE.npz \
      [--dataset=NAME --data_dir=D] [--step=N] [--batch_size=512]

``--images`` is a folder of images (directly in it: unlabelled; in class
subfolders: labelled by them); ``--split`` is a split of the run's dataset,
or of ``--dataset``. ``FILE.npz`` holds ``embeddings`` float32 [N, D] (the
encoder's pre-projection features, BatchNorm in inference mode; FixMatch: its
EMA parameters), ``paths`` (folders) or ``indices`` (tfds), ``labels`` (-1
where unknown) and ``class_names``. Every image is centre-cropped and
resized to the side the run read its own images at (``data.resize``, else
their stored size, else ``image_size``).
Files that do not decode are skipped and counted.

In Python, for use in other JAX code::

  from ssl_jax import embed
  embedder = embed.load('W')
  z = embedder(images)  # uint8 [N, H, W, C] -> float32 [N, D]
"""

import dataclasses
import functools
import json
import os
import time
from typing import Any, Optional

from absl import logging
import jax
import numpy as np

from ssl_jax import errors
from ssl_jax.data import decoding
from ssl_jax.data import folder
from ssl_jax.data import input_pipeline
from ssl_jax.evaluation import probe
from ssl_jax.tools import evaluate
from ssl_jax.training import run as run_lib


@dataclasses.dataclass(frozen=True)
class Embedder:
  """A workdir's evaluated encoder as ``uint8 images -> float32 embeddings``.

  Attributes:
    run: the run rebuilt from the workdir's config.
    variables: the encoder's variables, replicated over ``run.mesh``.
    step: the checkpoint step they come from.
    batch_size: images per compiled call (a multiple of the device count).
  """

  run: run_lib.Run
  variables: dict[str, Any]
  step: int
  batch_size: int

  @property
  def image_size(self) -> int:
    """The encoder's input side; other sizes are centre-cropped/resized."""
    return self.run.config.image_size

  def __call__(self, images: np.ndarray) -> np.ndarray:
    """Embeds images, jit-compiled and sharded over the run's devices.

    Args:
      images: uint8 [N, H, W, C] with the run's channels (``run.channels``),
        H and W at least ``image_size`` (larger ones are centre-cropped).

    Returns:
      float32 [N, D] pre-projection features.
    """
    images = np.asarray(images)
    if (
        images.dtype != np.uint8
        or images.ndim != 4
        or images.shape[-1] != self.run.channels
    ):
      raise errors.DataError(
          f'images are {images.dtype} {images.shape}; expected uint8 [N, H, '
          f'W, {self.run.channels}] (0-255, the channels this encoder was '
          'trained on).'
      )
    return probe.extract_features(
        self.run.model,
        self.variables,
        images,
        image_size=self.image_size,
        batch_size=self.batch_size,
        mesh=self.run.mesh,
    )


def load(
    workdir: str, step: Optional[int] = None, batch_size: int = 512
) -> Embedder:
  """Loads a finished run's encoder, from its workdir or an exported bundle.

  Args:
    workdir: a directory written by ``main.py``, or a file written by
      ``python -m ssl_jax.export --format=jax``.
    step: the checkpoint (default: the latest; a bundle holds one).
    batch_size: images per compiled call; rounded up to the device count.

  Returns:
    The :class:`Embedder`.
  """
  if os.path.isfile(workdir):
    from ssl_jax import export  # pylint: disable=g-import-not-at-top

    run, variables, step = export.bundle_run(workdir)
    devices = run.mesh.size
    batch_size = -(-batch_size // devices) * devices
    return Embedder(run, run.replicate(variables), step, batch_size)
  config = evaluate.load_config(workdir)
  try:
    run = run_lib.build(config)
  except errors.DataError:  # The data is elsewhere: the facts the run kept.
    path = os.path.join(workdir, 'dataset.json')
    if not os.path.exists(path):
      raise
    with open(path) as f:
      facts = json.load(f)
    facts['image_shape'] = tuple(facts['image_shape'])
    facts['class_names'] = tuple(facts['class_names'])
    run = run_lib.build(config, dataset=facts)
  step, variables = run.restore_variables(workdir, step)
  devices = run.mesh.size
  batch_size = -(-batch_size // devices) * devices
  return Embedder(run, run.replicate(variables), step, batch_size)


def embed_split(
    embedder: Embedder, split: input_pipeline.Split, chunk: int = 4096
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Embeds every good record of a split, logging progress with an ETA.

  Args:
    embedder: the encoder.
    split: any split (its bad records are skipped and counted).
    chunk: records decoded per host round.

  Returns:
    ``(indices kept, labels, embeddings)``.
  """
  kept, labels, out = [], [], []
  n, start = len(split), time.time()
  # One worker pipeline for the whole split (Split.iter_good).
  chunks = split.iter_good(np.arange(n), chunk)
  for lo, (idx, batch) in zip(range(0, n, chunk), chunks):
    kept.append(idx)
    labels.append(batch['label'])
    if len(idx):
      out.append(embedder(batch['image']))
    done = min(n, lo + chunk)
    rate = done / max(time.time() - start, 1e-9)
    logging.info(
        'embedded %d/%d images (%.0f img/s, ETA %.0fs)',
        done,
        n,
        rate,
        (n - done) / rate,
    )
  dim = out[0].shape[1] if out else 0
  return (
      np.concatenate(kept),
      np.concatenate(labels).astype(np.int32),
      np.concatenate(out) if out else np.zeros((0, dim), np.float32),
  )


def embed_to_file(
    workdir: str,
    out: str,
    *,
    images: str = '',
    split: str = '',
    dataset: str = '',
    data_dir: str = '',
    step: Optional[int] = None,
    batch_size: int = 512,
) -> dict[str, Any]:
  """Embeds a folder or a dataset split and writes ``out`` (.npz).

  Args:
    workdir: the run whose encoder embeds.
    out: the .npz file to write.
    images: a folder of images (or ``split``).
    split: a split of ``dataset`` (default: the run's dataset).
    dataset: a tfds name or 'folder' (default: the run's).
    data_dir: its data_dir (default: the run's when ``dataset`` is too).
    step: the checkpoint (default: the latest).
    batch_size: images per compiled call.

  Returns:
    A summary: ``num_images``, ``num_skipped``, ``dim``, ``seconds``,
    ``images_per_second``, ``step``.
  """
  if bool(images) == bool(split):
    raise errors.ConfigError('pass exactly one of --images=DIR and --split=S.')
  start = time.time()
  embedder = load(workdir, step, batch_size)
  config = embedder.run.config
  height, width, _ = embedder.run.dataset['image_shape']
  read = dict(
      # As the run read its own images: resized, else at their stored size.
      resize=config.data.resize
      or (height if height == width and height else config.image_size),
      channels=embedder.run.channels,
      bad_images='skip',
      workers=config.data.workers,
  )
  if images:
    if not os.path.isdir(images):
      raise errors.DataError(f'--images={images!r} is not a folder.')
    source = folder.Source(images.rstrip(os.sep), resize=read['resize'])
    data = input_pipeline.Split(
        images,
        [source],
        resize=read['resize'],
        channels=read['channels'],
        dataset='folder',
        bad_images='skip',
        workers=decoding.num_workers(config.data.workers),
    )
    names = source.classes
  else:
    dataset = dataset or config.dataset
    data_dir = data_dir or (
        config.data_dir if dataset == config.dataset else ''
    )
    data = input_pipeline.load_split(
        dataset, split, data_dir, cache=False, **read
    )
    names = input_pipeline.dataset_info(dataset, data_dir)['class_names']
  if not len(data):
    raise errors.DataError(f'{images or split!r} holds no files.')
  kept, labels, embeddings = embed_split(embedder, data)
  where = (
      {'paths': np.asarray([source.listing.paths[i] for i in kept])}
      if images
      else {'indices': kept}
  )
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    np.savez(
        out,
        embeddings=embeddings.astype(np.float32),
        labels=labels,
        class_names=np.asarray(names, str),
        **where,
    )
  seconds = time.time() - start
  return dict(
      num_images=len(kept),
      num_skipped=data.num_skipped,
      dim=embeddings.shape[1],
      seconds=seconds,
      images_per_second=len(kept) / seconds,
      step=embedder.step,
  )


def main(argv, *, flag_values):
  """The command line: embeds ``--images`` or ``--split`` into ``--out``.

  Args:
    argv: leftover arguments (none are accepted).
    flag_values: the parsed flags.
  """
  if len(argv) > 1:
    raise SystemExit(f'Unexpected arguments: {argv[1:]}')
  f = flag_values
  try:
    summary = embed_to_file(
        f.workdir,
        f.out,
        images=f.images,
        split=f.split,
        dataset=f.dataset,
        data_dir=f.data_dir,
        step=f.step,
        batch_size=f.batch_size,
    )
  except (errors.DataError, errors.ConfigError, ValueError) as e:
    raise SystemExit(f'ssl_jax.embed: error: {e}') from None
  print(
      f'{f.out}: {summary["num_images"]} embeddings of dimension '
      f'{summary["dim"]} (checkpoint step {summary["step"]}, '
      f'{summary["num_skipped"]} files skipped) in {summary["seconds"]:.1f} s, '
      f'{summary["images_per_second"]:.0f} images/s including loading.'
  )


def _define_flags():
  from absl import flags  # pylint: disable=g-import-not-at-top

  flags.DEFINE_string('workdir', None, 'Run directory.', required=True)
  flags.DEFINE_string('out', None, 'Output .npz file.', required=True)
  flags.DEFINE_string('images', '', 'A folder of images to embed.')
  flags.DEFINE_string('split', '', 'Or a split of the dataset to embed.')
  flags.DEFINE_string(
      'dataset', '', "The split's dataset (default: the run's)."
  )
  flags.DEFINE_string('data_dir', '', "Its data_dir (default: the run's).")
  flags.DEFINE_integer('step', None, 'Checkpoint step (default: latest).')
  flags.DEFINE_integer('batch_size', 512, 'Images per compiled call.')
  return flags.FLAGS


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top

  _flags = _define_flags()
  app.run(functools.partial(main, flag_values=_flags))
