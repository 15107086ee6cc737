"""Per-channel input normalisation in front of any encoder."""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp


class InputNormalized(nn.Module):
  """``encoder((x - mean) / std)``, with the encoder's own parameter names.

  The references normalise images by per-channel mean and std in their data
  pipelines; doing it here, first thing in the encoder, covers training
  views, evaluation, fine-tuning and exports alike. ``nn.share_scope`` keeps
  the encoder's variables where they would be without this wrapper, so
  checkpoints and parameter paths do not depend on it.

  Attributes:
    encoder: the wrapped encoder (``(x, train) -> features``).
    mean: per-channel means of the [0, 1] images.
    std: per-channel standard deviations.
  """

  encoder: nn.Module
  mean: Sequence[float]
  std: Sequence[float]

  def setup(self):
    nn.share_scope(self, self.encoder)

  def __call__(self, x, train: bool = True):
    mean = jnp.asarray(self.mean, jnp.float32)
    std = jnp.asarray(self.std, jnp.float32)
    return self.encoder((x.astype(jnp.float32) - mean) / std, train=train)
