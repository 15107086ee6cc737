"""Long evaluation steps say how far they are: kNN over a chunked bank, t-SNE."""

import numpy as np

from ssl_jax.evaluation import knn
from ssl_jax.evaluation import pictures


def _capture(module, monkeypatch):
  lines = []
  monkeypatch.setattr(
      module.logging, 'info', lambda fmt, *args: lines.append(fmt % args)
  )
  return lines


def test_chunked_knn_logs_progress_and_keeps_its_answer(monkeypatch):
  rng = np.random.default_rng(0)
  bank = rng.normal(size=(10, 6)).astype(np.float32)
  queries = rng.normal(size=(5, 6)).astype(np.float32)
  whole = knn.nearest(queries, bank, 3, bank_chunk=10)
  lines = _capture(knn, monkeypatch)
  monkeypatch.setattr(knn, '_LOG_EVERY_SECONDS', -1.0)  # Every chunk logs.
  chunked = knn.nearest(queries, bank, 3, query_chunk=2, bank_chunk=4)
  np.testing.assert_array_equal(chunked[1], whole[1])
  np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-6)
  assert [line.split(', ETA')[0] for line in lines[:-1]] == [
      'kNN of 5 queries: 4/10 bank rows',
      'kNN of 5 queries: 8/10 bank rows',
  ]
  assert lines[-1].startswith('kNN of 5 queries over 10 bank rows in ')


def test_short_knn_logs_nothing(monkeypatch):
  lines = _capture(knn, monkeypatch)
  x = np.eye(4, dtype=np.float32)
  knn.nearest(x, x, 1, bank_chunk=2)
  assert not lines


def test_tsne_logs_each_panel_before_and_after(tmp_path, monkeypatch):
  lines = _capture(pictures, monkeypatch)
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 3, 40)
  panels = [
      ('step 1', rng.normal(size=(40, 5))),
      ('step 2', rng.normal(size=(40, 5))),
  ]
  pictures.tsne(panels, labels, str(tmp_path / 'tsne.png'), max_points=30)
  assert lines[0] == 't-SNE 1/2 (step 1): 30 points of dimension 5'
  assert lines[1].startswith('t-SNE 1/2 done (')
  assert lines[2] == 't-SNE 2/2 (step 2): 30 points of dimension 5'
  assert lines[3].startswith('t-SNE 2/2 done (') and 'ETA 0s' in lines[3]
