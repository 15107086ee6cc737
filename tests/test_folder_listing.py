"""Folders as people keep them: non-image files are left out, not records."""

import os

import numpy as np
import pytest

from ssl_jax import errors
from ssl_jax.data import folder
from ssl_jax.data import input_pipeline
from tests import helpers


@pytest.fixture
def untidy(tmp_path):
  """A folder dataset with notes beside the images, and one uppercase .JPEG."""
  data_dir = helpers.make_folder(tmp_path / 'data', size=12)
  train = os.path.join(data_dir, 'train')
  for rel in ('README.txt', 'labels.csv', os.path.join('class_1', 'notes.md')):
    with open(os.path.join(train, rel), 'w') as f:
      f.write('not an image\n')
  os.rename(
      os.path.join(train, 'class_2', '0.jpg'),
      os.path.join(train, 'class_2', 'UPPER.JPEG'),
  )
  return data_dir


def test_non_image_files_are_left_out_and_counted(untidy, monkeypatch):
  lines = []
  monkeypatch.setattr(
      folder.logging, 'info', lambda fmt, *args: lines.append(fmt % args)
  )
  listing = folder.list_split(os.path.join(untidy, 'train'))
  assert listing.num_left_out == 3
  assert len(listing.paths) == 24  # 3 classes x 8 images, .JPEG included.
  assert os.path.join('class_2', 'UPPER.JPEG') in listing.paths
  assert not any(p.endswith(('.txt', '.csv', '.md')) for p in listing.paths)
  (line,) = [x for x in lines if x.startswith('Left out')]
  assert line.startswith("Left out 3 non-image files of split 'train' (")
  assert 'README.txt' in line and 'labels.csv' in line
  test = folder.list_split(os.path.join(untidy, 'test'))
  assert test.num_left_out == 0


def test_split_of_an_untidy_folder_reads_every_image(untidy):
  split = input_pipeline.load_split('folder', 'train', untidy, workers=1)
  assert len(split) == 24 and split.num_skipped == 0
  np.testing.assert_array_equal(np.bincount(split.labels), [8, 8, 8])


def test_image_named_file_that_does_not_decode_follows_bad_images(untidy):
  bad = os.path.join(untidy, 'train', 'class_0', 'broken.jpg')
  with open(bad, 'wb') as f:
    f.write(b'\xff\xd8\xff\xe0 truncated')
  with pytest.raises(errors.DataError, match=f"file '{bad}'.*failed to decode"):
    input_pipeline.load_split('folder', 'train', untidy, workers=1)
  split = input_pipeline.load_split(
      'folder', 'train', untidy, bad_images='skip', workers=1
  )
  assert len(split) == 24 and split.num_skipped == 1  # Cached: dropped.
