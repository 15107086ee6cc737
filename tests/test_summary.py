"""The TensorFlow-free summary writer: event files TensorBoard reads back."""

import glob
import io
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from ssl_jax.training import summary

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _accumulator(logdir):
  (path,) = glob.glob(os.path.join(logdir, 'events.out.tfevents.*'))
  acc = event_accumulator.EventAccumulator(
      path,
      size_guidance={
          event_accumulator.SCALARS: 0,
          event_accumulator.IMAGES: 0,
          event_accumulator.TENSORS: 0,
      },
  )
  acc.Reload()
  return acc


def test_scalars_images_texts_hparams_round_trip(tmp_path):
  logdir = str(tmp_path / 'run')
  rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 3), np.uint8)
  with summary.create(logdir) as writer:
    writer.write_hparams({'lr': 0.1, 'method': 'simclr', 'dims': (1, 2)})
    for step, loss in [(1, 2.5), (2, 1.25)]:
      writer.write_scalars(step, {'loss': np.float32(loss), 'epoch': step})
    writer.write_scalars(3, {'count': np.array([7]), 'probe/l2=0.01': 0.5})
    writer.write_images(2, {'eval/rgb': rgb[None]})
    writer.write_images(2, {'grey': np.linspace(0, 1, 12).reshape(3, 4, 1)})
    writer.write_images(3, {'batch': np.zeros((2, 4, 4, 3), np.uint8)})
    writer.write_texts(3, {'note': 'hello'})
    writer.flush()
  acc = _accumulator(logdir)
  tags = acc.Tags()
  assert set(tags[event_accumulator.SCALARS]) == {
      'loss',
      'epoch',
      'count',
      'probe/l2=0.01',  # As written: results.json's key.
  }
  loss = acc.Scalars('loss')
  assert [e.step for e in loss] == [1, 2]
  np.testing.assert_allclose([e.value for e in loss], [2.5, 1.25])
  assert [(e.step, e.value) for e in acc.Scalars('count')] == [(3, 7.0)]
  assert set(tags[event_accumulator.IMAGES]) == {
      'eval/rgb',
      'grey',
      'batch/0',
      'batch/1',
  }
  (image,) = acc.Images('eval/rgb')
  assert (image.step, image.height, image.width) == (2, 6, 5)
  pixels = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)))
  np.testing.assert_array_equal(pixels, rgb)
  (grey,) = acc.Images('grey')
  pixels = np.asarray(Image.open(io.BytesIO(grey.encoded_image_string)))
  np.testing.assert_array_equal(
      pixels, np.round(np.linspace(0, 255, 12)).reshape(3, 4)
  )
  assert 'note' in tags[event_accumulator.TENSORS]
  hparams = [
      plugin_data_pb2.HParamsPluginData.FromString(c)
      for c in acc.PluginTagToContent('hparams').values()
  ]
  (start,) = [h for h in hparams if h.HasField('session_start_info')]
  got = start.session_start_info.hparams
  assert got['lr'].number_value == pytest.approx(0.1)
  assert got['method'].string_value == 'simclr'
  assert got['dims'].string_value == '(1, 2)'


def test_just_logging_writes_no_files(tmp_path, monkeypatch):
  # absl's level may have been changed by earlier tests: capture the calls.
  lines = []
  monkeypatch.setattr(
      summary.logging, 'info', lambda fmt, *args: lines.append(fmt % args)
  )
  logdir = str(tmp_path / 'run')
  writer = summary.create(logdir, just_logging=True)
  writer.write_scalars(5, {'loss': 0.5, 'steps': 3})
  writer.write_images(5, {'x': np.zeros((2, 2, 3), np.uint8)})
  writer.write_hparams({'lr': 0.1})
  writer.close()
  writer.write_scalars(6, {'loss': 0.25})  # After close: logs only.
  assert not os.path.exists(logdir)
  assert '[5] loss=0.5, steps=3' in lines


def test_bad_values_are_named():
  writer = summary.create('unused', just_logging=True)
  with pytest.raises(ValueError, match="scalar 'loss' must be one number"):
    writer.write_scalars(0, {'loss': np.zeros(2)})
  with pytest.raises(ValueError, match="image 'x' must be"):
    writer.write_images(0, {'x': np.zeros((4, 4))})


def test_training_imports_no_tensorflow():
  """Training, evaluation and the report run without TensorFlow installed."""
  modules = (
      'ssl_jax.training.train',
      'ssl_jax.tools.evaluate',
      'ssl_jax.evaluation.evaluators',
      'ssl_jax.tools.report',
  )
  code = (
      f'import sys\nimport {", ".join(modules)}\n'
      "print(sorted(m for m in sys.modules if m.split('.')[0] == "
      "'tensorflow'))"
  )
  out = subprocess.run(
      [sys.executable, '-c', code],
      cwd=_REPO,
      capture_output=True,
      text=True,
      check=True,
      timeout=300,
  )
  assert out.stdout.strip() == '[]', out.stdout
