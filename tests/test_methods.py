"""Every registered method runs end to end on mock data; method-specific checks."""

import json

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from ssl_jax import methods
from ssl_jax import models
from ssl_jax.data import augment
from ssl_jax.data import input_pipeline
from ssl_jax.training import train
from tests import helpers


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(methods.METHODS))
def test_method_runs_two_sharded_steps_and_writes_results(name, tmp_path):
  # mu=1 and 4 clusters so that 32 mock images give two steps for every method.
  config = helpers.tiny_config(
      method=name,
      dataset='cifar10',
      num_epochs=1,
      **{
          'optimizer.warmup_epochs': 0,
          'fixmatch.mu': 1,
          'deepcluster.num_clusters': 4,
          'deepcluster.pca_dim': 4,
      },
  )
  with tfds.testing.mock_data(num_examples=32):  # 2 steps of 16 on 8 devices.
    results = train.train_and_evaluate(config, str(tmp_path))
  assert results['train/steps'] == 2
  with open(tmp_path / 'results.json') as f:
    saved = json.load(f)
  assert np.isfinite(saved['train/final_loss'])
  finals = {k: v for k, v in saved.items() if k.startswith('train/final_')}
  assert all(np.isfinite(v) for v in finals.values()), finals
  if name == 'simclr':
    assert 'train/final_contrastive_accuracy' in finals
  assert 'linear_probe/test_accuracy' in saved
  if name in ('supervised', 'fixmatch'):
    assert 'classifier/test_accuracy' in saved
  if name == 'fixmatch':
    assert 0.0 <= saved['train/final_mask_rate'] <= 1.0
  if name == 'deepcluster':
    assert saved['train/last_deepcluster/nonempty_clusters'] == 4
  if name in ('byol', 'moco_v3'):  # The mean of steps 0 and 1 of 2.
    assert saved['train/final_target_momentum'] == pytest.approx(0.9925)
  if name == 'dino':  # Steps 0 and 1 of 2 at 0.996 and 0.998.
    assert saved['train/final_target_momentum'] == pytest.approx(0.997)
    assert saved['train/final_teacher_entropy'] > 0
  if name == 'vicreg':
    assert saved['train/final_invariance'] >= 0


def test_supervised_refuses_unlabelled_split(tmp_path, monkeypatch):
  unlabelled = input_pipeline.Split(
      'unlabelled',
      [],
      np.zeros((32, 96, 96, 3), np.uint8),
      np.full(32, -1, np.int32),
  )
  monkeypatch.setattr(input_pipeline, 'load_split', lambda *a, **k: unlabelled)
  config = helpers.tiny_config(
      method='supervised',
      dataset='stl10',
      image_size=32,
      **{'data.train_split': 'unlabelled'},
  )
  with pytest.raises(input_pipeline.DataError, match='needs labels'):
    train.train_and_evaluate(config, str(tmp_path))


@pytest.mark.parametrize('encoder,dim', [('wrn28_2', 128), ('wrn45_2', 256)])
def test_wide_resnet_shapes(encoder, dim):
  config = helpers.tiny_config(encoder=encoder)
  model = models.get_encoder(config)
  x = np.zeros((2, 32, 32, 3), np.float32)
  variables = jax.eval_shape(
      lambda: model.init(jax.random.key(0), x, train=False)
  )
  out = jax.eval_shape(lambda v: model.apply(v, x, train=False), variables)
  assert out.shape == (2, dim)


def test_jigsaw_permutes_tiles():
  rng = np.random.default_rng(0)
  image = rng.random((12, 12, 3)).astype(np.float32)
  out = np.asarray(augment.jigsaw(jax.random.key(3), image, 3))
  tiles = lambda x: sorted(
      x[i : i + 4, j : j + 4].tobytes()
      for i in range(0, 12, 4)
      for j in range(0, 12, 4)
  )
  assert tiles(out) == tiles(image)
  assert not np.array_equal(out, image)
  np.testing.assert_array_equal(
      out, augment.jigsaw(jax.random.key(3), image, 3)
  )
  assert not np.array_equal(out, augment.jigsaw(jax.random.key(4), image, 3))
  np.testing.assert_array_equal(
      augment.jigsaw(jax.random.key(3), image, 0), image
  )
