"""Checkpoints: an orbax CheckpointManager over the whole TrainState, plus the config.

orbax writes each step to a temporary directory and renames it when complete,
so a run killed mid-save never leaves a half-written checkpoint as the latest.
"""

import json
import os
import time
from typing import Any, Optional, Sequence

from absl import logging
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from ssl_jax.data import paths

# Fields whose change makes a checkpoint unusable (shapes or data order differ).
STRUCTURAL_FIELDS = (
    'method',
    'encoder',
    'model',
    'projector',
    'dataset',
    'data.train_split',
    'data.label_fraction',
    'data.labels_per_class',
    'data.resize',
    'data.channels',
    'batch_size',
    'seed',
    'optimizer.name',
    # Each of these changes the optimiser state's structure: 1.0 or not, the
    # LARS form, a decay schedule or a constant, clipping or not.
    'optimizer.bias_norm_lr_scale',
    'optimizer.lars_variant',
    'optimizer.weight_decay_end',
    'optimizer.clip_grad_norm',
)


# orbax's tensorstore writes arrays to local files or, for gs://, to GCS.
_WORKDIR_SCHEMES = ('', 'gs')


class IncompatibleCheckpointError(ValueError):
  """The workdir holds a run of a different config."""


def flatten(d: dict, prefix: str = '') -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = list(v) if isinstance(v, tuple) else v
  return out


def check_config(
    workdir: str,
    config: ml_collections.ConfigDict,
    allow_changes: bool = False,
    structural: Sequence[str] = (),
) -> None:
  """Checks ``config`` against the one saved beside the workdir's checkpoints.

  Args:
    workdir: the run's directory.
    config: the config of this run.
    allow_changes: only warn when structural fields differ (the checkpoint
      must still hold arrays of the same shapes).
    structural: more structural fields: the method's own
      (``Method.structural_fields``).

  Raises:
    IncompatibleCheckpointError: a structural field differs from the saved run.
  """
  path = paths.join(workdir, 'config.json')
  new = flatten(json.loads(config.to_json()))
  if paths.exists(path) and paths.isdir(paths.join(workdir, 'checkpoints')):
    with paths.open(path) as f:
      old = flatten(json.load(f))
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    # A field the saved run did not have yet (added since) is not a conflict.
    bad = [
        k
        for k in diff
        if k in old
        and any(
            k == f or k.startswith(f + '.')
            for f in (*STRUCTURAL_FIELDS, *structural)
        )
    ]
    if bad and not allow_changes:
      details = ', '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in bad)
      raise IncompatibleCheckpointError(
          f'workdir {workdir!r} holds a checkpoint of a different config '
          f'({details}); use a new --workdir, the original values, or '
          '--allow_config_change to resume anyway.'
      )
    if diff:
      logging.warning('Resuming with changed fields: %s', ', '.join(diff))


def make_workdir(workdir: str) -> None:
  """Creates ``workdir`` (and its parents) before any data is read.

  Raises:
    CheckpointError: it cannot be created or written (read-only mount, a file
      in the way, no permission, a URL scheme orbax cannot write), named in
      one line.
  """
  if paths.scheme(workdir) not in _WORKDIR_SCHEMES:
    raise CheckpointError(
        f'workdir {workdir!r}: orbax writes checkpoints to local paths and '
        f'{", ".join(s + "://" for s in _WORKDIR_SCHEMES if s)} URLs only; '
        'choose such a --workdir.'
    )
  try:
    paths.makedirs(workdir)
    if not paths.is_url(workdir) and not os.access(
        paths.local(workdir), os.W_OK | os.X_OK
    ):
      raise PermissionError(13, 'not writable')
  except (OSError, ImportError) as e:  # ImportError: no gcsfs for gs://.
    raise CheckpointError(
        f'workdir {workdir!r} cannot be created or written '
        f'({getattr(e, "strerror", None) or e}); choose a writable '
        '--workdir.'
    ) from None


def save_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Writes ``workdir/config.json`` atomically."""
  paths.makedirs(workdir)
  paths.write_atomic(
      paths.join(workdir, 'config.json'), config.to_json(indent=2)
  )


def load_encoder(
    source_workdir: str, params: Any, batch_stats: Any
) -> tuple[Any, Any]:
  """Replaces the encoder weights with those of another run's checkpoint.

  Used to fine-tune (supervised, FixMatch) from a self-supervised run: only
  the ``encoder`` subtrees of params and batch_stats are taken; heads, the
  optimiser state and the step stay as initialised.

  Args:
    source_workdir: the workdir of the run to start from.
    params: freshly initialised parameters, with an ``encoder`` subtree.
    batch_stats: the matching BatchNorm statistics.

  Returns:
    ``(params, batch_stats)`` with their ``encoder`` subtrees loaded.

  Raises:
    IncompatibleCheckpointError: no checkpoint there, or the encoders differ.
  """
  directory = paths.join(paths.abspath(source_workdir), 'checkpoints')
  step = None
  if paths.isdir(directory):
    with ocp.CheckpointManager(directory) as manager:
      step = manager.latest_step()
      if step is not None:
        restored = manager.restore(step, args=ocp.args.StandardRestore())
  if step is None:
    raise IncompatibleCheckpointError(
        f'init_from={source_workdir!r} holds no checkpoint in {directory!r}; '
        'pass the --workdir of a finished run.'
    )
  out = {}
  for part, mine_tree in (('params', params), ('batch_stats', batch_stats)):
    new, old = mine_tree.get('encoder'), restored.get(part, {}).get('encoder')
    if new is None and old is None:  # No BatchNorm in the encoder (ViTs).
      out[part] = mine_tree
      continue
    mine = jax.tree.map(lambda x: x.shape, new)
    theirs = jax.tree.map(lambda x: x.shape, old) if old is not None else None
    if mine != theirs:
      raise IncompatibleCheckpointError(
          f'init_from={source_workdir!r}: its {part} encoder does not match'
          " this config's encoder; use the same --config.encoder and"
          ' --config.model.'
      )
    out[part] = dict(
        mine_tree,
        encoder=jax.tree.map(
            lambda a, b: jax.numpy.asarray(a, b.dtype), old, new
        ),
    )
  logging.info('Loaded the encoder of %s (step %d)', source_workdir, step)
  return out['params'], out['batch_stats']


def restore_tree(
    workdir: str, step: Optional[int] = None
) -> tuple[int, dict[str, Any]]:
  """Reads a run's checkpoint as a plain pytree, without building its state.

  Args:
    workdir: the run's directory.
    step: which checkpoint (default: the latest).

  Returns:
    ``(step, {'step', 'params', 'batch_stats', 'opt_state', 'extra'})``.

  Raises:
    IncompatibleCheckpointError: no such checkpoint.
  """
  directory = paths.join(paths.abspath(workdir), 'checkpoints')
  if paths.isdir(directory):
    with ocp.CheckpointManager(
        directory, item_handlers=ocp.StandardCheckpointHandler()
    ) as manager:
      steps = manager.all_steps()
      step = manager.latest_step() if step is None else step
      if step in steps:
        # Replicated over this machine's devices, whatever topology saved it.
        mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ('d',))
        replicated = jax.sharding.NamedSharding(
            mesh, jax.sharding.PartitionSpec()
        )
        metadata = manager.item_metadata(step)
        abstract = jax.tree.map(
            lambda m: jax.ShapeDtypeStruct(
                m.shape, m.dtype, sharding=replicated
            ),
            getattr(metadata, 'tree', metadata),
        )
        return step, manager.restore(
            step, args=ocp.args.StandardRestore(abstract)
        )
  else:
    steps = []
  raise IncompatibleCheckpointError(
      f'workdir {workdir!r} has no checkpoint of step {step} (it has '
      f'{sorted(steps)}); pass the --workdir of a run that saved one.'
  )


class CheckpointError(RuntimeError):
  """No checkpoint in the workdir can be read, or the final one was not saved."""


def _shapes(tree) -> dict[str, tuple[Any, Any]]:
  """``{'params/encoder/...': (shape, dtype)}`` of a state or its orbax metadata."""

  def name(k):
    return str(getattr(k, 'key', getattr(k, 'idx', getattr(k, 'name', k))))

  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {
      '/'.join(name(k) for k in path): (tuple(x.shape), np.dtype(x.dtype))
      for path, x in leaves
  }


class Checkpointer:
  """Saves every N steps and at the end, keeps the newest K, restores the latest.

  A newest checkpoint that cannot be read is moved to
  ``WORKDIR/checkpoints_unreadable/`` and the previous one is tried; a failed
  save is reported and the previous checkpoint stays (orbax writes to a
  temporary directory and renames it only when complete).
  """

  def __init__(self, workdir: str, keep: int, keep_period: int = 0):
    self._workdir = paths.abspath(workdir)
    self._manager = ocp.CheckpointManager(
        paths.join(self._workdir, 'checkpoints'),
        item_handlers=ocp.StandardCheckpointHandler(),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, keep_period=keep_period or None, create=True
        ),
    )
    self.failed_saves = 0
    self._pending_step = None

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def save(self, step: int, state: Any) -> None:
    """Saves asynchronously; a failure (of this or the previous save) is logged."""
    try:
      self._manager.save(step, args=ocp.args.StandardSave(state))
      self._pending_step = step
    except Exception as e:  # pylint: disable=broad-except
      self._report(step, e)

  def _report(self, step, error) -> None:
    self.failed_saves += 1
    self._pending_step = None
    logging.error(
        'Saving a checkpoint (at or before step %s) failed (%s: %s); the newest'
        ' complete checkpoint (step %s) is kept, training goes on and the next'
        ' save retries.',
        step,
        type(error).__name__,
        error,
        self.latest_step(),
    )

  def restore_latest(self, target: Any) -> Optional[Any]:
    """Restores the newest readable checkpoint into the shapes of ``target``.

    Args:
      target: a state pytree of arrays (placed as the restored one should be).

    Returns:
      The restored state, or None when there is no checkpoint.

    Raises:
      IncompatibleCheckpointError: the checkpoint holds other shapes.
      CheckpointError: checkpoints exist but none can be read.
    """
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
        target,
    )
    unreadable = []
    for step in sorted(self._manager.all_steps(), reverse=True):
      try:
        metadata = self._manager.item_metadata(step)
        saved = _shapes(getattr(metadata, 'tree', metadata))
      except Exception as e:  # pylint: disable=broad-except
        unreadable.append(self._set_aside(step, e))
        continue
      mine = _shapes(target)
      diff = sorted(
          k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k)
      )
      if diff:
        diff.sort(key=lambda k: not k.startswith('params/'))
        examples = ', '.join(
            f'{k}: {saved.get(k)} -> {mine.get(k)}' for k in diff[:2]
        )
        raise IncompatibleCheckpointError(
            f'the checkpoint of step {step} in {self._workdir!r} holds other '
            f'arrays than this config builds ({len(diff)} differ, e.g. '
            f'{examples}); use a new --workdir.'
        )
      try:
        logging.info('Restoring checkpoint of step %d', step)
        return self._manager.restore(
            step, args=ocp.args.StandardRestore(abstract)
        )
      except Exception as e:  # pylint: disable=broad-except
        unreadable.append(self._set_aside(step, e))
    if unreadable:
      raise CheckpointError(
          f'no readable checkpoint in {self._workdir!r}: moved the unreadable '
          f'steps {unreadable} to checkpoints_unreadable/; rerun to start from '
          'scratch, or use a new --workdir.'
      )
    return None

  def _set_aside(self, step: int, error: Exception) -> int:
    """Moves an unreadable checkpoint out of orbax's way (kept for inspection)."""
    aside = paths.join(self._workdir, 'checkpoints_unreadable')
    logging.warning(
        'The checkpoint of step %d is unreadable (%s: %.300s); '
        'moving it to %s and trying the previous one.',
        step,
        type(error).__name__,
        error,
        aside,
    )
    if jax.process_index() == 0:
      paths.makedirs(aside)
      paths.rename(
          paths.join(self._workdir, 'checkpoints', str(step)),
          paths.join(aside, f'{step}.{int(time.time())}'),
      )
    self._manager.reload()
    return step

  def close(self) -> None:
    """Waits for the last save.

    Raises:
      CheckpointError: the last save failed (the previous checkpoint is kept).
    """
    step = self._pending_step
    try:
      self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      self._report(step, e)
      self._manager.close()
      raise CheckpointError(
          f'the checkpoint of step {step} could not be saved'
          f' ({type(e).__name__}: {e}); the newest complete one is step'
          f' {self.latest_step()}. Free disk space and rerun to resume from it.'
      ) from None
    self._manager.close()
