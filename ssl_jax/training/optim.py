"""Optimisers and learning-rate schedules built from the config."""

import math

import jax
import ml_collections
import optax

OPTIMIZERS = ('lars', 'sgd', 'adam', 'adamw')
LR_SCALINGS = ('linear', 'sqrt', 'none')


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


def make_optimizer(
    config: ml_collections.ConfigDict, schedule: optax.Schedule
) -> optax.GradientTransformation:
  """Builds the optimiser named by ``config.optimizer.name``.

  LARS (``optax.lars``) excludes biases and normalisation parameters from both
  the weight decay and the trust-ratio adaptation, via :func:`decay_mask`.
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
