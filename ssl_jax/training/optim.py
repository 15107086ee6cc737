"""Optimisers and learning-rate schedules built from the config."""

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssl_jax import errors

OPTIMIZERS = ('lars', 'sgd', 'adam', 'adamw')
LR_SCALINGS = ('linear', 'sqrt', 'none')
# How the LARS trust ratio meets weight decay, momentum and the rate: as
# google-research/simclr (``optax.lars``) or as solo-learn's ``LARSWrapper``.
LARS_VARIANTS = ('simclr', 'solo_learn')
# solo-learn's LARSWrapper default; keeps the ratio finite for a zero gradient.
SOLO_LEARN_LARS_EPS = 1e-8


def check_config(opt: ml_collections.ConfigDict) -> None:
  """Raises a one-line ``errors.ConfigError`` on a bad optimiser setting.

  Args:
    opt: ``config.optimizer``.

  Raises:
    errors.ConfigError: an unknown LARS variant, ``clip_lr`` where it has no
      meaning, a negative weight decay, a momentum outside [0, 1) or a
      trust coefficient that is not positive.
  """

  def check(ok, message):
    if not ok:
      raise errors.ConfigError(message)

  check(
      opt.lars_variant in LARS_VARIANTS,
      f'optimizer.lars_variant={opt.lars_variant!r}; use one of'
      f' {LARS_VARIANTS}.',
  )
  check(
      not opt.clip_lr
      or (opt.name == 'lars' and opt.lars_variant == 'solo_learn'),
      f'optimizer.clip_lr=True needs optimizer.name=lars and'
      f" optimizer.lars_variant='solo_learn' (got name={opt.name!r},"
      f' lars_variant={opt.lars_variant!r}); set clip_lr=False otherwise.',
  )
  check(
      opt.weight_decay >= 0,
      f'optimizer.weight_decay={opt.weight_decay!r} must be >= 0.',
  )
  check(
      0 <= opt.momentum < 1,
      f'optimizer.momentum={opt.momentum!r} must be in [0, 1).',
  )
  check(
      opt.trust_coefficient > 0,
      f'optimizer.trust_coefficient={opt.trust_coefficient!r} must be > 0'
      ' (LARS eta; 1e-3 to 0.02 in the recipes).',
  )


def scaled_learning_rate(
    base_lr: float, batch_size: int, scaling: str
) -> float:
  """Peak learning rate for a global batch.

  Args:
    base_lr: the config's base learning rate.
    batch_size: the global batch size.
    scaling: ``'linear'`` (base * B / 256, Goyal et al.), ``'sqrt'``
      (base * sqrt(B), SimCLR's LARS recipe) or ``'none'``.

  Returns:
    The peak learning rate.
  """
  if scaling == 'linear':
    return base_lr * batch_size / 256
  if scaling == 'sqrt':
    return base_lr * math.sqrt(batch_size)
  if scaling == 'none':
    return base_lr
  raise ValueError(
      f'optimizer.lr_scaling={scaling!r}; use one of {LR_SCALINGS}.'
  )


def learning_rate_schedule(
    config: ml_collections.ConfigDict, steps_per_epoch: int
) -> optax.Schedule:
  """Linear warmup then cosine decay to zero: a pure function of the step.

  Args:
    config: the experiment config (``learning_rate``, ``batch_size``,
      ``num_epochs``, ``optimizer.warmup_epochs``, ``optimizer.lr_scaling``).
    steps_per_epoch: optimiser steps per epoch.

  Returns:
    An optax schedule mapping the global step to the learning rate.
  """
  peak = scaled_learning_rate(
      config.learning_rate, config.batch_size, config.optimizer.lr_scaling
  )
  total = max(1, int(config.num_epochs * steps_per_epoch))
  warmup = int(config.optimizer.warmup_epochs * steps_per_epoch)
  if warmup == 0:
    return optax.cosine_decay_schedule(peak, total)
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0,
      peak_value=peak,
      warmup_steps=warmup,
      decay_steps=total,
      end_value=0.0,
  )


def decay_mask(params):
  """True for weights, kernels and embeddings; False for biases and norms.

  Biases and normalisation scales/offsets are the 1-D leaves, and the
  attention's per-head biases ([heads, head_dim]) are named ``bias``: both
  are left out (as in SimCLR, BYOL and DINO).

  Args:
    params: a parameter pytree.

  Returns:
    A pytree of bools with the structure of ``params``.
  """

  def decayed(path, p):
    name = getattr(path[-1], 'key', None) if path else None
    return p.ndim > 1 and name not in ('bias', 'scale')

  return jax.tree_util.tree_map_with_path(decayed, params)


class ScaleBySoloLearnLarsState(NamedTuple):
  """The step count, for the rate that the clip compares with."""

  count: jax.Array


def scale_by_solo_learn_lars(
    learning_rate: optax.Schedule,
    *,
    weight_decay: float,
    trust_coefficient: float,
    clip_lr: bool,
    mask: Any,
    eps: float = SOLO_LEARN_LARS_EPS,
) -> optax.GradientTransformation:
  """Weight decay and trust ratio as solo-learn's ``LARSWrapper`` applies them.

  For each masked leaf with ``|w| > 0`` and ``|g| > 0`` the gradient becomes
  ``(g + wd * w) * r`` with ``r = eta * |w| / (|g| + wd * |w| + eps)``; with
  ``clip_lr``, ``r`` is ``min(r / lr_t, 1)``, so that after the final
  multiplication by ``lr_t`` the layer's rate is ``min(eta * |w| / (...),
  lr_t)``. Other leaves pass unchanged (no decay either). Momentum and the
  rate follow (:func:`make_optimizer`), as torch's SGD does after the wrapper.
  ``optax.lars`` differs twice (it divides by ``|g + wd * w|`` and scales by
  the rate before the momentum) and has no clip, hence this transformation.

  Args:
    learning_rate: the schedule whose value ``lr_t`` the clip compares with.
    weight_decay: the decay added to the masked leaves' gradients.
    trust_coefficient: eta.
    clip_lr: clip the layer's rate at ``lr_t``.
    mask: a pytree of bools like the params, or a callable making one.
    eps: added to the ratio's denominator.

  Returns:
    An optax gradient transformation (it needs ``params``).
  """

  def init_fn(params):
    del params
    return ScaleBySoloLearnLarsState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params):
    if params is None:
      raise ValueError('scale_by_solo_learn_lars needs the params.')
    lr = learning_rate(state.count)
    leaf_mask = mask(params) if callable(mask) else mask

    def scale(g, w, masked):
      if not masked:
        return g
      w_norm, g_norm = jnp.linalg.norm(w), jnp.linalg.norm(g)
      ratio = (
          trust_coefficient * w_norm / (g_norm + weight_decay * w_norm + eps)
      )
      if clip_lr:
        # A zero rate (warm-up's first step) gives inf, clipped to 1, as in
        # solo-learn.
        ratio = jnp.minimum(ratio / lr, 1.0)
      scaled = (g + weight_decay * w) * ratio
      return jnp.where((w_norm > 0) & (g_norm > 0), scaled, g)

    updates = jax.tree.map(scale, updates, params, leaf_mask)
    return updates, ScaleBySoloLearnLarsState(
        count=optax.safe_increment(state.count)
    )

  return optax.GradientTransformation(init_fn, update_fn)


def make_optimizer(
    config: ml_collections.ConfigDict, schedule: optax.Schedule
) -> optax.GradientTransformation:
  """Builds the optimiser named by ``config.optimizer.name``.

  LARS excludes biases and normalisation parameters from both the weight
  decay and the trust-ratio adaptation, via :func:`decay_mask`.
  ``optimizer.lars_variant`` picks the form: ``'simclr'`` is ``optax.lars``,
  google-research/simclr's (ratio ``eta * |w| / |g + wd * w|``, the rate
  applied before the momentum); ``'solo_learn'`` is solo-learn's
  ``LARSWrapper`` around SGD (:func:`scale_by_solo_learn_lars`, then momentum,
  then the rate), with ``optimizer.clip_lr`` its clip mode.
  ``optimizer.bias_norm_lr_scale`` multiplies the learning rate of those
  parameters (Barlow Twins' recipe gives them 0.0048 / 0.2 of the weights').

  Args:
    config: the experiment config.
    schedule: the learning-rate schedule.

  Returns:
    An optax gradient transformation.
  """
  tx = _base_optimizer(config.optimizer, schedule)
  if config.optimizer.bias_norm_lr_scale != 1.0:
    # Every optimiser here is linear in its learning rate after the adaptive
    # statistics, so scaling the update is scaling the learning rate.
    tx = optax.chain(
        tx,
        optax.masked(
            optax.scale(config.optimizer.bias_norm_lr_scale),
            lambda params: jax.tree.map(lambda d: not d, decay_mask(params)),
        ),
    )
  return tx


def _base_optimizer(
    opt: ml_collections.ConfigDict, schedule: optax.Schedule
) -> optax.GradientTransformation:
  if opt.name == 'lars' and opt.lars_variant == 'solo_learn':
    return optax.chain(
        scale_by_solo_learn_lars(
            schedule,
            weight_decay=opt.weight_decay,
            trust_coefficient=opt.trust_coefficient,
            clip_lr=opt.clip_lr,
            mask=decay_mask,
        ),
        optax.trace(decay=opt.momentum),
        optax.scale_by_learning_rate(schedule),
    )
  if opt.name == 'lars':
    return optax.lars(
        learning_rate=schedule,
        weight_decay=opt.weight_decay,
        weight_decay_mask=decay_mask,
        trust_coefficient=opt.trust_coefficient,
        eps=0.0,
        trust_ratio_mask=decay_mask,
        momentum=opt.momentum,
    )
  if opt.name == 'sgd':
    return optax.chain(
        optax.add_decayed_weights(opt.weight_decay, mask=decay_mask),
        optax.sgd(schedule, momentum=opt.momentum, nesterov=True),
    )
  if opt.name == 'adam':
    return optax.chain(
        optax.add_decayed_weights(opt.weight_decay, mask=decay_mask),
        optax.adam(schedule, b1=opt.b1, b2=opt.b2),
    )
  if opt.name == 'adamw':
    return optax.adamw(
        schedule,
        b1=opt.b1,
        b2=opt.b2,
        weight_decay=opt.weight_decay,
        mask=decay_mask,
    )
  raise ValueError(f'optimizer.name={opt.name!r}; use one of {OPTIMIZERS}.')
