"""Per-channel input normalisation: same parameters, normalised input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import models
from ssl_jax.training import validate
from tests import helpers

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def test_normalised_encoder_is_the_encoder_on_normalised_images():
  plain = helpers.tiny_config()
  normed = helpers.tiny_config(
      **{'model.input_mean': MEAN, 'model.input_std': STD}
  )
  x = jax.random.uniform(jax.random.key(1), (4, 16, 16, 3))
  variables = models.get_encoder(plain).init(jax.random.key(0), x, train=False)
  wrapped = models.get_encoder(normed)
  # The same variable tree: checkpoints and parameter paths do not change.
  assert jax.tree.structure(
      wrapped.init(jax.random.key(0), x, train=False)
  ) == jax.tree.structure(variables)
  got = wrapped.apply(variables, x, train=False)
  want = models.get_encoder(plain).apply(
      variables, (x - jnp.asarray(MEAN)) / jnp.asarray(STD), train=False
  )
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
  assert not np.allclose(
      got, models.get_encoder(plain).apply(variables, x, train=False)
  )


@pytest.mark.parametrize(
    'mean,std', [(MEAN, ()), ((0.5, 0.5), (0.2, 0.2)), (MEAN, (0.2, 0.0, 0.2))]
)
def test_bad_normalisation_is_one_line(mean, std):
  config = helpers.tiny_config(dataset='cifar10', num_epochs=2)
  config.model.input_mean, config.model.input_std = mean, std
  with pytest.raises(validate.ConfigError, match='model.input_mean=') as e:
    validate.validate(config, num_devices=8)
  assert '\n' not in str(e.value)
