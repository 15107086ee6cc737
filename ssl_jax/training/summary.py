"""Training summaries: TensorBoard files, and a short absl log line per write.

Hand-written because clu's ``metric_writers`` import TensorFlow; the event
files are written through tensorboardX, which does not. :func:`create` gives
the writer of one process: every process logs, only the chief (process 0)
writes ``events.out.tfevents.*`` files. The methods have the names and
arguments of clu's writers (``write_scalars``, ``write_images``, ...), the
interface evaluators know. The console line of a write shows at most
:data:`MAX_LOGGED` scalars (or the ones the caller names): a run's 150
final figures go to TensorBoard and ``results.json``, not the log. Tags are
written as given (tensorboardX's
``add_*`` would rename ``l2=0.01`` to ``l2_0.01``), so TensorBoard's tags are
the keys of ``results.json``.

A logdir may be an fsspec URL (``gs://bucket/run``): its event files are
kept in memory and uploaded whole at every flush (every 30 s and on
``flush()``), as tensorboardX's own ``gs://`` writer does, but through
fsspec like the rest of the workdir, so TensorBoard follows a bucket run live
without google-cloud-storage.
"""

from collections.abc import Mapping
from collections.abc import Sequence
import io
from typing import Any, Optional

from absl import logging
import numpy as np
from PIL import Image
import tensorboardX
from tensorboardX import record_writer
from tensorboardX import summary as tbx_summary
from tensorboardX.proto import summary_pb2

from ssl_jax.data import paths

# Scalars one console line shows at most; every scalar goes to TensorBoard.
MAX_LOGGED = 8


class Writer:
  """Logs scalars, images, texts and hyperparameters; optionally to TensorBoard.

  Attributes:
    logdir: where event files go, or None when only logging.
  """

  def __init__(self, logdir: Optional[str] = None):
    """Opens the writer.

    Args:
      logdir: folder for TensorBoard event files (created if missing); None
        writes no files, only log lines.
    """
    self.logdir = logdir
    self._file = None
    if logdir is not None:
      if paths.is_url(logdir):
        # tensorboardX picks the writer of an event file by its scheme.
        record_writer.register_writer_factory(
            paths.scheme(logdir), _UrlWriterFactory()
        )
      # Creates logdir and the event file; a thread writes every 30 s and on
      # flush() and close().
      self._file = tensorboardX.FileWriter(paths.local(logdir), flush_secs=30)

  def write_scalars(
      self,
      step: int,
      scalars: Mapping[str, Any],
      *,
      log_keys: Optional[Sequence[str]] = None,
  ) -> None:
    """Writes numeric scalars at ``step``, and logs a few of them.

    Args:
      step: the training step.
      scalars: ``{tag: value}``; values are Python, numpy or jax numbers (or
        one-element arrays).
      log_keys: the tags the console line shows (at most :data:`MAX_LOGGED`;
        ``()``: no line, for callers that log their own); default: the first
        :data:`MAX_LOGGED` in sorted order.
    """
    values = {k: _scalar(k, v) for k, v in scalars.items()}
    shown = sorted(values) if log_keys is None else log_keys
    shown = [k for k in shown if k in values][:MAX_LOGGED]
    if shown:
      more = len(values) - len(shown)
      logging.info(
          '[%d] %s%s',
          step,
          ', '.join(
              f'{k}={values[k]:.6g}'
              if isinstance(values[k], float)
              else f'{k}={values[k]}'
              for k in shown
          ),
          f' (+{more} more in TensorBoard)' if more else '',
      )
    self._add(
        step,
        [
            summary_pb2.Summary.Value(tag=tag, simple_value=float(value))
            for tag, value in values.items()
        ],
    )

  def write_images(self, step: int, images: Mapping[str, Any]) -> None:
    """Writes images at ``step``.

    Args:
      step: the training step.
      images: ``{tag: pixels}``, each [N, H, W, C] or [H, W, C] with C in 1, 3
        or 4; uint8 in [0, 255] or float in [0, 1] (clipped). A batch of
        N > 1 images is written as tags ``tag/0`` ... ``tag/N-1``.
    """
    batches = {k: _uint8_batch(k, v) for k, v in images.items()}
    logging.info(
        '[%d] Got images: %s.', step, {k: v.shape for k, v in batches.items()}
    )
    if self._file is None:
      return
    self._add(
        step,
        [
            summary_pb2.Summary.Value(
                tag=tag if len(batch) == 1 else f'{tag}/{i}',
                image=_png(image),
            )
            for tag, batch in batches.items()
            for i, image in enumerate(batch)
        ],
    )

  def write_texts(self, step: int, texts: Mapping[str, str]) -> None:
    """Writes texts (TensorBoard's Text tab) at ``step``.

    Args:
      step: the training step.
      texts: ``{tag: text}``; the text may be Markdown.
    """
    logging.info('[%d] Got texts: %s.', step, dict(texts))
    if self._file is None:
      return
    values = []
    for tag, text in texts.items():
      (value,) = tbx_summary.text(tag, str(text)).value
      value.tag = tag  # Not tensorboardX's tag + '/text_summary'.
      values.append(value)
    self._add(step, values)

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    """Writes hyperparameters (TensorBoard's HParams tab) for this run.

    Args:
      hparams: ``{name: value}``; values other than bool, int, float and str
        are written as their ``str``.
    """
    values = {
        k: v if isinstance(v, (bool, int, float, str)) else str(v)
        for k, v in hparams.items()
    }
    # The full dump is the HParams tab (and the run's config.json).
    logging.info('%d hyperparameters (TensorBoard HParams tab)', len(values))
    if self._file is None:
      return
    # SummaryWriter.add_hparams would put them in a new run (a sub-folder
    # named by the time); beside the scalars, TensorBoard shows them together.
    for proto in tbx_summary.hparams(values, {}):
      self._file.add_summary(proto)

  def flush(self) -> None:
    """Writes pending events to disk."""
    if self._file is not None:
      self._file.flush()
    logging.flush()

  def close(self) -> None:
    """Flushes and closes the event file; later writes only log."""
    if self._file is not None:
      self._file.close()
      self._file = None
    logging.flush()

  def _add(self, step: int, values: list[summary_pb2.Summary.Value]) -> None:
    """Appends one event holding ``values`` at ``step`` (if writing files)."""
    if self._file is not None and values:
      self._file.add_summary(summary_pb2.Summary(value=values), step)

  def __enter__(self) -> 'Writer':
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def create(logdir: str, just_logging: bool = False) -> Writer:
  """The writer of one process: files on the chief, log lines everywhere.

  Args:
    logdir: folder for the event files (a run's workdir, or its ``eval/``).
    just_logging: only log, write no files (set on every process but the
      chief, so that one process writes each run's event files).

  Returns:
    A :class:`Writer`.
  """
  return Writer(None if just_logging else logdir)


class _UrlEventFile:
  """An event file at a URL: appended in memory, uploaded whole on flush.

  Object stores cannot append, so each upload rewrites the object; event
  files are small (scalars, a few images).
  """

  def __init__(self, url: str):
    self._url = url
    self._buffer = io.BytesIO()
    self._uploaded = -1

  def write(self, data: bytes) -> None:
    self._buffer.write(data)

  def flush(self) -> None:
    data = self._buffer.getvalue()
    if len(data) != self._uploaded:
      with paths.open(self._url, 'wb') as f:
        f.write(data)
      self._uploaded = len(data)

  def close(self) -> None:
    self.flush()


class _UrlWriterFactory:
  """tensorboardX's hook for event files whose logdir is an fsspec URL."""

  def open(self, url: str) -> _UrlEventFile:
    return _UrlEventFile(url)

  def directory_check(self, url: str) -> None:
    paths.makedirs(url)


def _scalar(tag: str, value: Any) -> float | int:
  """``value`` as a Python number; raises ValueError for anything else."""
  array = np.asarray(value)
  if array.size != 1 or not (
      np.issubdtype(array.dtype, np.integer)
      or np.issubdtype(array.dtype, np.floating)
      or array.dtype == np.bool_
  ):
    raise ValueError(
        f'scalar {tag!r} must be one number, got {type(value).__name__} '
        f'of shape {array.shape} and dtype {array.dtype}.'
    )
  number = array.reshape(()).item()
  return float(number) if isinstance(number, bool) else number


def _png(image: np.ndarray) -> summary_pb2.Summary.Image:
  """A uint8 [H, W, C] image as TensorBoard's PNG image summary."""
  height, width, channels = image.shape
  buf = io.BytesIO()
  Image.fromarray(image[..., 0] if channels == 1 else image).save(buf, 'PNG')
  return summary_pb2.Summary.Image(
      height=height,
      width=width,
      colorspace=channels,
      encoded_image_string=buf.getvalue(),
  )


def _uint8_batch(tag: str, image: Any) -> np.ndarray:
  """``image`` as uint8 [N, H, W, C]; raises ValueError for other shapes."""
  array = np.asarray(image)
  if array.ndim == 3:
    array = array[None]
  if array.ndim != 4 or array.shape[-1] not in (1, 3, 4) or not array.size:
    raise ValueError(
        f'image {tag!r} must be [N, H, W, C] or [H, W, C] with C in 1, 3 or '
        f'4, got shape {array.shape}.'
    )
  if array.dtype == np.uint8:
    return array
  if np.issubdtype(array.dtype, np.floating):
    array = np.clip(np.nan_to_num(array.astype(np.float32)), 0.0, 1.0)
    return np.round(array * 255).astype(np.uint8)
  if np.issubdtype(array.dtype, np.integer):
    return np.clip(array, 0, 255).astype(np.uint8)
  raise ValueError(f'image {tag!r} has dtype {array.dtype}; use uint8.')
