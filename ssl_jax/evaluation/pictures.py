"""PNG figures: t-SNE, nearest neighbours, confusion, curves, accuracy vs labels.

Each plotting function saves a PNG to ``path`` (creating its parent
directories) and returns the rendered figure as uint8 [H, W, 3], so that the
caller can also send it to TensorBoard (``Writer.write_images`` of
:mod:`ssl_jax.training.summary`). :func:`read_scalars` reads back the scalars
that writer logged, for :func:`curves`.
"""

import functools
import os
import time
from typing import Optional, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use('Agg')  # Headless: files only, never a window.
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np
from sklearn import manifold
from sklearn import metrics as skmetrics
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

from ssl_jax.data import paths

_MATCH, _MISMATCH = 'tab:green', 'tab:red'


def _save(fig, path: str) -> np.ndarray:
  """Writes ``fig`` to ``path``, closes it and returns its RGB pixels."""
  try:
    if os.path.dirname(path):
      paths.makedirs(os.path.dirname(path))
    fig.canvas.draw()
    rgb = np.array(np.asarray(fig.canvas.buffer_rgba())[..., :3])
    with paths.open(path, 'wb') as f:
      fig.savefig(f, format=os.path.splitext(path)[1][1:] or 'png')
  finally:
    plt.close(fig)
  return rgb


def _name(label, class_names):
  return str(class_names[label]) if class_names is not None else str(label)


def tsne(
    embeddings_list: list[tuple[str, np.ndarray]],
    labels: np.ndarray,
    path: str,
    *,
    class_names: Optional[Sequence[str]] = None,
    seed: int = 0,
    max_points: int = 2000,
    perplexity: float = 30.0,
) -> np.ndarray:
  """2-D t-SNE of one or more embeddings of the same points, side by side.

  Several panels show, e.g., checkpoints of one run over training; every
  panel uses the same seeded subset of points.

  Args:
    embeddings_list: ``(title, float [N, D] embedding)`` per panel.
    labels: int [N] class of each point (colours, tab10).
    path: PNG file to write.
    class_names: legend entries, indexed by label.
    seed: seeds the subset and t-SNE.
    max_points: largest number of points drawn per panel.
    perplexity: t-SNE perplexity (capped below the number of points).

  Returns:
    uint8 [H, W, 3] figure.
  """
  labels = np.asarray(labels).reshape(-1)
  n = len(labels)
  idx = np.arange(n)
  if n > max_points:
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, max_points, replace=False))
  sub = labels[idx]
  cmap = plt.get_cmap('tab10')
  panels = len(embeddings_list)
  fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 5), squeeze=False)
  start = time.time()
  for i, (ax, (title, emb)) in enumerate(zip(axes[0], embeddings_list)):
    # scikit-learn's t-SNE reports no progress: one line before and after.
    logging.info(
        't-SNE %d/%d (%s): %d points of dimension %d',
        i + 1,
        panels,
        title,
        len(idx),
        np.shape(emb)[1],
    )
    points = manifold.TSNE(
        n_components=2,
        init='pca',
        random_state=seed,
        perplexity=min(perplexity, len(idx) - 1.0),
    ).fit_transform(np.asarray(emb, np.float32)[idx])
    elapsed = time.time() - start
    logging.info(
        't-SNE %d/%d done (%.1fs so far, ETA %.0fs)',
        i + 1,
        panels,
        elapsed,
        (panels - i - 1) * elapsed / (i + 1),
    )
    for c in np.unique(sub):
      m = sub == c
      ax.scatter(
          points[m, 0],
          points[m, 1],
          s=6,
          color=cmap(int(c) % 10),
          label=_name(c, class_names),
      )
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
  axes[0, -1].legend(
      loc='center left',
      bbox_to_anchor=(1.0, 0.5),
      markerscale=2,
      fontsize='small',
  )
  fig.tight_layout()
  return _save(fig, path)


def _show_image(ax, image):
  image = np.asarray(image)
  if image.ndim == 3 and image.shape[-1] == 1:
    ax.imshow(image[..., 0], cmap='gray', vmin=0, vmax=255)
  else:
    ax.imshow(image)
  ax.set_xticks([])
  ax.set_yticks([])


def neighbours(
    query_images: np.ndarray,
    neighbour_images: np.ndarray,
    path: str,
    *,
    query_labels: Optional[np.ndarray] = None,
    neighbour_labels: Optional[np.ndarray] = None,
    class_names: Optional[Sequence[str]] = None,
) -> np.ndarray:
  """Grid of queries (first column) and their nearest neighbours.

  With both label arrays, each neighbour gets a green border and title when
  its label matches the query's, red when it differs.

  Args:
    query_images: uint8 [Q, H, W, C], C = 1 or 3.
    neighbour_images: uint8 [Q, K, H, W, C].
    path: PNG file to write.
    query_labels: optional int [Q].
    neighbour_labels: optional int [Q, K].
    class_names: titles, indexed by label.

  Returns:
    uint8 [H, W, 3] figure.
  """
  q, k = neighbour_images.shape[:2]
  fig, axes = plt.subplots(
      q, k + 1, figsize=(1.3 * (k + 1), 1.5 * q), squeeze=False
  )
  for i in range(q):
    _show_image(axes[i, 0], query_images[i])
    if query_labels is not None:
      axes[i, 0].set_title(
          _name(query_labels[i], class_names),
          fontsize='small',
          fontweight='bold',
      )
    for j in range(k):
      ax = axes[i, j + 1]
      _show_image(ax, neighbour_images[i, j])
      if neighbour_labels is None:
        continue
      color = 'black'
      if query_labels is not None:
        match = neighbour_labels[i][j] == query_labels[i]
        color = _MATCH if match else _MISMATCH
        for spine in ax.spines.values():
          spine.set_edgecolor(color)
          spine.set_linewidth(3)
      ax.set_title(
          _name(neighbour_labels[i][j], class_names),
          fontsize='small',
          color=color,
      )
  axes[-1, 0].set_xlabel('query', fontsize='small')
  fig.tight_layout()
  return _save(fig, path)


@functools.partial(jax.jit, static_argnames=('k',))
def _top_k_cosine(query_x, bank_x, k):
  def unit(v):
    return v / (jnp.linalg.norm(v, axis=1, keepdims=True) + 1e-8)

  return jax.lax.top_k(unit(query_x) @ unit(bank_x).T, k)[1]


def nearest_neighbours(
    query_x: np.ndarray, bank_x: np.ndarray, k: int
) -> np.ndarray:
  """Indices of the ``k`` most cosine-similar bank rows of each query row.

  Args:
    query_x: float [Q, D].
    bank_x: float [M, D], M >= k.
    k: neighbours per query.

  Returns:
    int32 [Q, k], most similar first.
  """
  return np.asarray(
      _top_k_cosine(
          jnp.asarray(query_x, jnp.float32), jnp.asarray(bank_x, jnp.float32), k
      )
  )


def confusion_matrix(
    labels: np.ndarray,
    preds: np.ndarray,
    path: str,
    *,
    class_names: Optional[Sequence[str]] = None,
    title: str = '',
) -> np.ndarray:
  """Row-normalised confusion matrix (rows: true class, columns: predicted).

  Cells show their values up to 20 classes.

  Args:
    labels: int [N] true classes.
    preds: int [N] predicted classes.
    path: PNG file to write.
    class_names: tick labels; their number sets the number of classes.
    title: figure title.

  Returns:
    uint8 [H, W, 3] figure.
  """
  labels, preds = np.asarray(labels), np.asarray(preds)
  n = (
      len(class_names)
      if class_names is not None
      else int(max(labels.max(), preds.max())) + 1
  )
  cm = skmetrics.confusion_matrix(labels, preds, labels=np.arange(n))
  cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
  size = min(max(4.0, 0.5 * n + 2), 16.0)
  fig, ax = plt.subplots(figsize=(size, size))
  im = ax.imshow(cm, cmap='Blues', vmin=0.0, vmax=1.0)
  fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
  names = [_name(c, class_names) for c in range(n)]
  fontsize = 'medium' if n <= 20 else 'xx-small'
  ax.set_xticks(range(n), names, rotation=90, fontsize=fontsize)
  ax.set_yticks(range(n), names, fontsize=fontsize)
  ax.set_xlabel('predicted')
  ax.set_ylabel('true')
  # Past ~20 classes the cell numbers no longer fit; the colours remain.
  for i in range(n if n <= 20 else 0):
    for j in range(n):
      ax.text(
          j,
          i,
          f'{cm[i, j]:.2f}',
          ha='center',
          va='center',
          fontsize='x-small',
          color='white' if cm[i, j] > 0.5 else 'black',
      )
  if title:
    ax.set_title(title)
  fig.tight_layout()
  return _save(fig, path)


def curves(
    series: dict[str, list[tuple[int, float]]], path: str, *, title: str = ''
) -> np.ndarray:
  """One subplot per series, value against step.

  Args:
    series: ``{name: [(step, value), ...]}``, e.g. from :func:`read_scalars`.
    path: PNG file to write.
    title: figure title.

  Returns:
    uint8 [H, W, 3] figure.
  """
  if not series:
    raise ValueError('curves needs at least one series.')
  cols = min(4, len(series))
  rows = -(-len(series) // cols)
  fig, axes = plt.subplots(
      rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False
  )
  for ax in axes.flat[len(series) :]:
    ax.axis('off')
  for ax, (name, points) in zip(axes.flat, series.items()):
    if points:
      steps, values = zip(*points)
      ax.plot(steps, values, marker='.' if len(points) < 50 else None)
    ax.set_title(name)
    ax.set_xlabel('step')
    ax.grid(alpha=0.3)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  return _save(fig, path)


def accuracy_vs_fraction(
    lines: Sequence[tuple[str, list[tuple[float, float, float]], str]],
    path: str,
    *,
    xlabel: str,
) -> np.ndarray:
  """Test accuracy against labelled fraction (log x axis), with error bars.

  Args:
    lines: ``(label, [(fraction, mean accuracy, std), ...], linestyle)``;
      lines whose labels share the part before `` [`` share a colour.
    path: PNG file to write.
    xlabel: the x axis label.

  Returns:
    uint8 [H, W, 3] figure.
  """
  fig, ax = plt.subplots(figsize=(6.4, 4.2), layout='constrained')
  colors = {}
  for label, points, style in lines:
    xs, ys, es = zip(*points)
    color = colors.setdefault(label.split(' [')[0], f'C{len(colors) % 10}')
    ax.errorbar(
        xs,
        [100 * y for y in ys],
        yerr=[100 * e for e in es],
        label=label,
        color=color,
        linestyle=style,
        marker='o',
        capsize=3,
    )
  ax.set_xscale('log')
  xs = sorted({x for _, points, _ in lines for x, _, _ in points})
  ax.set_xticks(xs, [f'{100 * x:g} %' for x in xs])
  ax.set_xticks([], minor=True)
  ax.set_xlabel(xlabel)
  ax.set_ylabel('test accuracy (%)')
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize='small')
  return _save(fig, path)


def read_scalars(
    workdir: str, tags: Optional[Sequence[str]] = None
) -> dict[str, list[tuple[int, float]]]:
  """Scalars from the TensorBoard event files at the top level of ``workdir``.

  :mod:`ssl_jax.training.summary` writes plain scalar summaries; tensor
  summaries (those of workdirs written through clu) are read too. Files are read
  in name (i.e. creation) order, so where a restarted run wrote a step again,
  its latest value wins.

  Args:
    workdir: folder holding ``events.out.tfevents.*`` files.
    tags: keep only these tags; all numeric scalars when None.

  Returns:
    ``{tag: [(step, value), ...]}`` sorted by step.
  """
  values: dict[str, dict[int, float]] = {}
  keep = None if tags is None else set(tags)
  # tensorboard reads URLs (gs://, memory://) through fsspec.
  for f in paths.glob(paths.join(workdir, 'events.out.tfevents.*')):
    acc = event_accumulator.EventAccumulator(
        f,
        size_guidance={
            event_accumulator.SCALARS: 0,
            event_accumulator.TENSORS: 0,
        },
    )
    acc.Reload()
    found = acc.Tags()
    for tag in found.get(event_accumulator.TENSORS, []):
      if keep is not None and tag not in keep:
        continue
      for event in acc.Tensors(tag):
        # Images and text are tensor summaries too; keep numeric scalars.
        value = tensor_util.make_ndarray(event.tensor_proto)
        if value.size == 1 and np.issubdtype(value.dtype, np.number):
          values.setdefault(tag, {})[event.step] = float(value.reshape(()))
    for tag in found.get(event_accumulator.SCALARS, []):
      if keep is None or tag in keep:
        for event in acc.Scalars(tag):
          values.setdefault(tag, {})[event.step] = float(event.value)
  return {tag: sorted(steps.items()) for tag, steps in values.items()}
