"""Evaluation figures: each writes a readable PNG and returns its pixels."""

import os

import numpy as np
from PIL import Image

from ssl_jax.evaluation import pictures
from ssl_jax.training import summary


def _check_png(path, rgb):
  assert rgb.ndim == 3 and rgb.shape[-1] == 3 and rgb.dtype == np.uint8
  with Image.open(path) as im:
    im.verify()
  with Image.open(path) as im:
    assert im.format == 'PNG'
    assert im.size[0] > 10 and im.size[1] > 10


def test_tsne_two_panels(tmp_path):
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(3), 20)
  emb = rng.normal(size=(60, 8)) + 5 * np.eye(8)[labels]
  path = os.path.join(tmp_path, 'sub', 'tsne.png')
  rgb = pictures.tsne(
      [('epoch 1', emb + rng.normal(size=emb.shape)), ('epoch 2', emb)],
      labels,
      path,
      class_names=['a', 'b', 'c'],
      perplexity=5.0,
      max_points=50,
  )
  _check_png(path, rgb)
  assert rgb.shape[1] > rgb.shape[0]  # Two panels side by side.


def test_neighbours_grid(tmp_path):
  rng = np.random.default_rng(0)
  queries = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
  neigh = rng.integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)
  path = os.path.join(tmp_path, 'nn.png')
  rgb = pictures.neighbours(
      queries,
      neigh,
      path,
      query_labels=[0, 1],
      neighbour_labels=[[0, 1, 0], [1, 1, 0]],
      class_names=['cat', 'dog'],
  )
  _check_png(path, rgb)
  # Grey images, no labels.
  path = os.path.join(tmp_path, 'nn_grey.png')
  rgb = pictures.neighbours(queries[..., :1], neigh[..., :1], path)
  _check_png(path, rgb)


def test_nearest_neighbours_known_answer():
  bank = np.array([[1, 0], [0, 1], [-1, 0], [0.7, 0.7], [0, -3]], np.float32)
  query = np.array([[2, 0.1], [0, -1]], np.float32)
  idx = pictures.nearest_neighbours(query, bank, 2)
  assert idx.shape == (2, 2)
  np.testing.assert_array_equal(idx, [[0, 3], [4, 0]])


def test_confusion_matrix(tmp_path):
  labels = np.array([0, 0, 1, 1, 2, 2])
  preds = np.array([0, 1, 1, 1, 2, 0])
  path = os.path.join(tmp_path, 'cm.png')
  rgb = pictures.confusion_matrix(
      labels, preds, path, title='probe', class_names=['a', 'b', 'c', 'd']
  )
  _check_png(path, rgb)


def test_curves(tmp_path):
  path = os.path.join(tmp_path, 'curves.png')
  rgb = pictures.curves(
      {
          'loss': [(0, 2.0), (10, 1.0), (20, 0.5)],
          'accuracy': [(10, 0.3), (20, 0.6)],
      },
      path,
      title='run',
  )
  _check_png(path, rgb)


def test_read_scalars_round_trip(tmp_path):
  workdir = str(tmp_path)
  writer = summary.create(workdir)
  for step, loss in [(2, 1.5), (0, 3.0), (1, 2.0)]:
    writer.write_scalars(step, {'loss': loss, 'lr': 0.1 * step})
  writer.write_texts(0, {'note': 'hello'})
  writer.flush()
  writer.close()
  got = pictures.read_scalars(workdir)
  assert set(got) == {'loss', 'lr'}
  steps, values = zip(*got['loss'])
  assert steps == (0, 1, 2)
  np.testing.assert_allclose(values, [3.0, 2.0, 1.5])
  assert set(pictures.read_scalars(workdir, tags=['lr'])) == {'lr'}
