"""Frozen features of a split, cached in RAM or streamed from its source.

A split decoded into RAM and one read record by record from its source go
through the same loop: each global batch of consecutive records is read by
the processes in slices (each process only its own, as training reads), the
encoder runs on the global batch in inference mode, and the features, labels
and record indices come back replicated, so every process holds all of them.
Bad records that the split skips (``data.bad_images='skip'``) are dropped.
Features are stored as ``probe.feature_dtype``: bfloat16 halves the host
memory of an ImageNet-sized bank (1.28 M x 2048: 5.2 GB instead of 10.5).
"""

import functools
import time
from typing import Any, NamedTuple, Union

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax import errors
from ssl_jax.data import augment
from ssl_jax.data import batching
from ssl_jax.data import input_pipeline
from ssl_jax.models import conv

DTYPES = ('float32', 'bfloat16')
# Extraction slower than this logs its progress with an ETA.
_LOG_EVERY_SECONDS = 10.0


class Extracted(NamedTuple):
  """Features of the good records of a split, in record order.

  Attributes:
    features: [n, D] in the requested dtype.
    labels: int32 [n] (-1: unlabelled).
    indices: int64 [n], the records of the split the rows come from (read
      them again with ``split.read(indices[rows])``).
  """

  features: np.ndarray
  labels: np.ndarray
  indices: np.ndarray

  def labelled(self) -> 'Extracted':
    """The rows with a label (>= 0)."""
    keep = self.labels >= 0
    if keep.all():
      return self
    return Extracted(*(a[keep] for a in self))


def numpy_dtype(name: str) -> np.dtype:
  """The numpy dtype of ``probe.feature_dtype`` (bfloat16 via ml_dtypes).

  Args:
    name: 'float32' or 'bfloat16'.

  Returns:
    The dtype.

  Raises:
    errors.ConfigError: another name.
  """
  if name not in DTYPES:
    raise errors.ConfigError(
        f'probe.feature_dtype={name!r}; use one of {DTYPES}.'
    )
  return np.dtype(jnp.dtype(name))


def _forward(variables, batch, *, model, image_size, output, mesh, dtype):
  x = augment.preprocess_eval(batch['image'], image_size)
  out = model.apply(variables, x, train=False)[output]
  out = out.astype(jnp.float32).astype(dtype)
  # Replicated, so that every process can read all of it.
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  return jax.lax.with_sharding_constraint(
      (out, batch['label'], batch['index']), replicated
  )


# Module-level jits keyed on (model, image_size, output, mesh, dtype):
# repeated calls (every DeepCluster epoch, each probe) reuse one compilation.
_STATIC = ('model', 'image_size', 'output', 'mesh', 'dtype')
_forward_fn = jax.jit(_forward, static_argnames=_STATIC)
_forward_fn_cpu = jax.jit(
    _forward,
    static_argnames=_STATIC,
    compiler_options=conv.CPU_COMPILER_OPTIONS,
)


def image_shape(split: input_pipeline.Split) -> tuple[int, ...]:
  """``(H, W, C)`` of the images ``split.read`` returns."""
  if split.images is not None:
    return tuple(split.images.shape[1:])
  if split.crops:  # Host crops: the first view's side.
    side = split.crops[0].size
    return (side, side, split.channels or 3)
  return tuple(split.image_shape)


def _reader(split: input_pipeline.Split, batch_size: int):
  """``(splits, step) -> this process's slice of global batch `step`, padded``.

  A ``functools.partial`` of a module-level function, with jax's process
  index taken here: it may run in grain workers (``batching.host_batches``).
  """
  return functools.partial(
      _read_padded,
      batch_size=batch_size,
      per_process=batch_size // jax.process_count(),
      process_index=jax.process_index(),
      shape=image_shape(split),
  )


def _read_padded(
    splits, step: int, *, batch_size, per_process, process_index, shape
) -> dict[str, np.ndarray]:
  (split,) = splits
  lo = step * batch_size + process_index * per_process
  wanted = np.arange(lo, min(lo + per_process, len(split)))
  images = np.zeros((per_process,) + shape, np.uint8)
  labels = np.full(per_process, -1, np.int32)
  index = np.full(per_process, -1, np.int32)
  if len(wanted):
    kept, data = split.read_good(wanted)
    images[: len(kept)] = data['image']
    labels[: len(kept)] = data['label']
    index[: len(kept)] = kept
  return {'image': images, 'label': labels, 'index': index}


def extract(
    model,
    variables: dict[str, Any],
    split: input_pipeline.Split,
    *,
    image_size: int,
    batch_size: int,
    mesh: jax.sharding.Mesh,
    output: str = 'features',
    dtype: str = 'float32',
    prefetch: int = 2,
) -> Extracted:
  """Frozen features of every good record of ``split``, cached or streamed.

  Args:
    model: the method's model; its output dict has ``output``.
    variables: ``{'params': ..., 'batch_stats': ...}``; never modified.
    split: a cached split (``images`` in RAM) or one read from its source
      batch by batch; in either case each process reads only its slice of
      each global batch.
    image_size: the encoder's input side.
    batch_size: global batch, divisible by the device and process counts.
    mesh: the device mesh, with axis ``'data'``.
    output: which entry of the model's output dict to return.
    dtype: 'float32' or 'bfloat16', the dtype the features are kept in.
    prefetch: global batches read ahead by a background thread.

  Returns:
    The features, labels and record indices, the same on every process.

  Raises:
    errors.ConfigError: an unknown ``dtype``.
    errors.DataError: a bad record, unless the split skips them.
  """
  np_dtype = numpy_dtype(dtype)
  on_cpu = conv.compiler_options(mesh) is not None
  jitted = _forward_fn_cpu if on_cpu else _forward_fn
  fn = functools.partial(
      jitted,
      model=model,
      image_size=image_size,
      output=output,
      mesh=mesh,
      dtype=dtype,
  )
  sharding = jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec('data')
  )
  n, start = len(split), time.time()
  num_batches = -(-n // batch_size)
  batches = batching.global_batches(
      _reader(split, batch_size),
      start_step=0,
      stop_step=num_batches,
      sharding=sharding,
      prefetch=prefetch,
      splits=(split,),
  )
  feats = labels = indices = None
  count, last_log = 0, start

  def collect(pending):
    nonlocal feats, labels, indices, count
    out, label, index = (np.asarray(a) for a in jax.device_get(pending))
    if feats is None:  # Filled in place: one copy of the features.
      feats = np.empty((n, out.shape[1]), np_dtype)
      labels, indices = np.empty(n, np.int32), np.empty(n, np.int64)
    keep = index >= 0
    m = int(keep.sum())
    feats[count : count + m] = out[keep]
    labels[count : count + m] = label[keep]
    indices[count : count + m] = index[keep]
    count += m

  pending = None
  for done, batch in enumerate(batches, 1):
    # Dispatch this batch before fetching the previous one: the device
    # computes while the host copies.
    current = fn(variables, batch)
    if pending is not None:
      collect(pending)
    pending = current
    now = time.time()
    if now - last_log > _LOG_EVERY_SECONDS:
      last_log = now
      logging.info(
          'Features of %s: %d/%d batches, ETA %.0fs',
          split.name,
          done,
          num_batches,
          (num_batches - done) * (now - start) / done,
      )
  if pending is not None:
    collect(pending)
  if not count:
    raise errors.DataError(f'every record of split {split.name!r} is bad.')
  return Extracted(feats[:count], labels[:count], indices[:count])


def extract_features(
    model,
    variables: dict[str, Any],
    images: Union[np.ndarray, input_pipeline.Split],
    *,
    image_size: int,
    batch_size: int,
    mesh: jax.sharding.Mesh,
    output: str = 'features',
    dtype: str = 'float32',
) -> np.ndarray:
  """Pre-projection features of ``images`` with BatchNorm in inference mode.

  Args:
    model: the method's model; its output dict has ``output``.
    variables: ``{'params': ..., 'batch_stats': ...}``; never modified.
    images: uint8 [N, H, W, C] (the same on every process), or a split
      (see :func:`extract`; its bad records are dropped).
    image_size: the encoder's input side.
    batch_size: global batch, divisible by the device count.
    mesh: the device mesh, with axis ``'data'``.
    output: which entry of the model's output dict to return.
    dtype: 'float32' or 'bfloat16'.

  Returns:
    [N, D] features.
  """
  if not isinstance(images, input_pipeline.Split):
    images = np.asarray(images)
    images = input_pipeline.Split(
        'images', [], images, np.full(len(images), -1, np.int32)
    )
  return extract(
      model,
      variables,
      images,
      image_size=image_size,
      batch_size=batch_size,
      mesh=mesh,
      output=output,
      dtype=dtype,
  ).features
