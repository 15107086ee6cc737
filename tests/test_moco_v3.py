"""MoCo v3: online queries against the momentum encoder's keys; output BN."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import errors
from ssl_jax import losses
from ssl_jax.methods import moco_v3
from ssl_jax.models import heads
from ssl_jax.training import run as run_lib
from tests import helpers


@pytest.mark.slow
def test_loss_pairs_each_views_query_with_the_other_views_key():
  config = helpers.tiny_config(
      method='moco_v3',
      **{
          'projector.out_bn': True,
          'moco_v3.predictor_hidden_dims': (16,),
          'optimizer.warmup_epochs': 0,
      },
  )
  run, state, step = helpers.compiled_step(config)
  # A momentum encoder unlike the online one, so that keys and queries differ.
  state, target = helpers.with_unlike_target(run, state)
  online = jax.device_get(
      {'params': state.params, 'batch_stats': state.batch_stats}
  )
  images, batch = helpers.random_batch(run)
  key = jax.random.key(1)
  _, metrics = step(state, batch, run.replicate(key))

  views = helpers.make_views(
      jax.random.fold_in(key, 0),  # Step 0's key.
      jnp.asarray(images),
      (config.augment.view1, config.augment.view2),
      16,
  )
  x = jnp.concatenate(views)
  apply = helpers.train_apply(run.model)
  out, _ = apply(online, x)
  keys, _ = apply(target, x)
  q_a, q_b = jnp.split(out['prediction'], 2)
  k_a, k_b = jnp.split(keys['projection'], 2)
  expected = losses.moco_v3(q_a, k_b, 0.2) + losses.moco_v3(q_b, k_a, 0.2)
  assert float(metrics['loss']) == pytest.approx(float(expected), rel=1e-4)
  same_view = losses.moco_v3(q_a, k_a, 0.2) + losses.moco_v3(q_b, k_b, 0.2)
  assert float(metrics['loss']) != pytest.approx(float(same_view), rel=1e-3)


def test_output_batchnorm_has_no_scale_or_bias_and_standardises():
  head = heads.ProjectionHead(hidden_dims=(8,), out_dim=4, out_bn=True)
  x = jax.random.normal(jax.random.key(0), (64, 5))
  variables = head.init(jax.random.key(1), x)
  assert set(variables['params']) == {'Dense_0', 'BatchNorm_0', 'Dense_1'}
  assert set(variables['params']['Dense_1']) == {'kernel'}  # BN follows.
  assert set(variables['batch_stats']) == {'BatchNorm_0', 'BatchNorm_1'}
  y, _ = head.apply(variables, x, train=True, mutable=['batch_stats'])
  np.testing.assert_allclose(y.mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(y.std(0), 1, atol=1e-2)


def test_vit_predictor_ends_in_affine_free_batchnorm():
  config = helpers.tiny_config(
      method='moco_v3',
      **{
          'moco_v3.predictor_hidden_dims': (16,),
          'moco_v3.predictor_out_bn': True,
      },
  )
  model = moco_v3.build_model(config, 10)
  x = jax.random.normal(jax.random.key(0), (32, 16, 16, 3))
  # Compiled whole: op by op, every op compiles on its own.
  variables = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(1), x
  )
  predictor = variables['params']['predictor']
  assert set(predictor['Dense_1']) == {'kernel'}  # A BatchNorm follows it.
  assert 'BatchNorm_1' in variables['batch_stats']['predictor']
  assert 'BatchNorm_1' not in predictor  # No scale, no bias.
  out, _ = jax.jit(
      functools.partial(model.apply, train=True, mutable=['batch_stats'])
  )(variables, x)
  np.testing.assert_allclose(out['prediction'].mean(0), 0, atol=1e-4)


@pytest.mark.slow
def test_frozen_patch_embedding_never_moves():
  config = helpers.tiny_config(
      method='moco_v3',
      encoder='vit_tiny',
      **{
          'model.patch_size': 4,
          'model.patch_init': 'xavier_uniform',
          'moco_v3.freeze_patch_embedding': True,
          'moco_v3.predictor_hidden_dims': (16,),
          'optimizer.name': 'adamw',
          'optimizer.warmup_epochs': 0,
      },
  )
  run = run_lib.build(config)
  _, tx = run.optimizer(4)
  params, _ = run.init_variables(jax.random.key(0))
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  frozen = updates['encoder']['patch_embedding']
  assert all(not np.any(leaf) for leaf in jax.tree.leaves(frozen))
  assert np.any(updates['encoder']['block0']['Dense_0']['kernel'])


def test_freezing_a_patch_embedding_needs_a_vit():
  config = helpers.tiny_config(
      method='moco_v3', **{'moco_v3.freeze_patch_embedding': True}
  )
  with pytest.raises(errors.ConfigError, match='needs a ViT encoder'):
    moco_v3.check_config(config)
