"""Optimisers and learning-rate schedules built from the config."""

import math
import re
from typing import Any, NamedTuple, Sequence

from absl import logging
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
    errors.ConfigError: an unknown optimiser, LR scaling or LARS variant,
      ``clip_lr`` where it has no meaning, a negative weight decay or
      clipping norm, a momentum outside [0, 1) or a trust coefficient that
      is not positive.
  """

  def check(ok, message):
    if not ok:
      raise errors.ConfigError(message)

  for field, choices in (
      ('name', OPTIMIZERS),
      ('lr_scaling', LR_SCALINGS),
      ('lars_variant', LARS_VARIANTS),
  ):
    check(
        opt[field] in choices,
        f'optimizer.{field}={opt[field]!r}; use one of {choices}.',
    )
  check(
      not opt.clip_lr
      or (opt.name == 'lars' and opt.lars_variant == 'solo_learn'),
      f'optimizer.clip_lr=True needs optimizer.name=lars and'
      f" optimizer.lars_variant='solo_learn' (got name={opt.name!r},"
      f' lars_variant={opt.lars_variant!r}); set clip_lr=False otherwise.',
  )
  check(
      not (opt.decay_bias_and_norm and opt.name == 'lars'),
      'optimizer.decay_bias_and_norm=True applies to sgd, adam and adamw;'
      ' LARS leaves biases and norms out of decay and trust ratio alike.',
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
      opt.weight_decay_end is None or opt.weight_decay_end >= 0,
      f'optimizer.weight_decay_end={opt.weight_decay_end!r} must be >= 0'
      ' (or unset for a constant decay).',
  )
  check(
      opt.clip_grad_norm >= 0,
      f'optimizer.clip_grad_norm={opt.clip_grad_norm!r} must be >= 0'
      ' (0: no clipping).',
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
  if warmup >= total:
    # A recipe's warm-up outlasts a shortened (smoke) run: the run still
    # warms up and decays, over its first tenth.
    logging.warning(
        'optimizer.warmup_epochs=%g is not shorter than the run '
        '(num_epochs=%g): warming up over its first %d of %d steps instead.',
        config.optimizer.warmup_epochs,
        config.num_epochs,
        total // 10,
        total,
    )
    warmup = total // 10
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
    weight_decay: float | optax.Schedule,
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
    weight_decay: the decay added to the masked leaves' gradients (a float
      or a schedule of the step).
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
    wd = weight_decay(state.count) if callable(weight_decay) else weight_decay
    leaf_mask = mask(params) if callable(mask) else mask

    def scale(g, w, masked):
      if not masked:
        return g
      w_norm, g_norm = jnp.linalg.norm(w), jnp.linalg.norm(g)
      ratio = trust_coefficient * w_norm / (g_norm + wd * w_norm + eps)
      if clip_lr:
        # A zero rate (warm-up's first step) gives inf, clipped to 1, as in
        # solo-learn.
        ratio = jnp.minimum(ratio / lr, 1.0)
      scaled = (g + wd * w) * ratio
      return jnp.where((w_norm > 0) & (g_norm > 0), scaled, g)

    updates = jax.tree.map(scale, updates, params, leaf_mask)
    return updates, ScaleBySoloLearnLarsState(
        count=optax.safe_increment(state.count)
    )

  return optax.GradientTransformation(init_fn, update_fn)


def weight_decay_schedule(
    config: ml_collections.ConfigDict, steps_per_epoch: int
) -> float | optax.Schedule:
  """The weight decay: constant, or cosine to ``optimizer.weight_decay_end``.

  DINO's schedule: from ``weight_decay`` at step 0 to ``weight_decay_end`` at
  the last step along a half cosine, without warm-up.

  Args:
    config: the experiment config.
    steps_per_epoch: optimiser steps per epoch.

  Returns:
    A float, or an optax schedule of the step.
  """
  start, end = config.optimizer.weight_decay, config.optimizer.weight_decay_end
  if end is None or end == start:
    return start
  total = max(1, int(config.num_epochs * steps_per_epoch))
  cosine = optax.cosine_decay_schedule(start - end, total)
  return lambda step: end + cosine(step)


def clip_each_by_norm(max_norm: float) -> optax.GradientTransformation:
  """Scales each leaf's gradient to norm at most ``max_norm``, leaf by leaf.

  DINO's ``clip_gradients``: every parameter tensor is clipped on its own
  (``optax.clip_by_global_norm`` clips the whole tree, ``clip_by_block_rms``
  the RMS, hence this one).

  Args:
    max_norm: the largest norm a leaf's gradient keeps.

  Returns:
    A stateless optax gradient transformation.
  """

  def clip(g, params):
    del params
    return g * jnp.minimum(1.0, max_norm / (jnp.linalg.norm(g) + 1e-6))

  return optax.stateless_with_tree_map(clip)


def _frozen_labels(frozen: Sequence[tuple[str, float]]):
  """Labels each leaf by the first rule whose pattern its path matches."""
  patterns = [re.compile(pattern) for pattern, _ in frozen]

  def labels(params):
    def label(path, _):
      name = '/'.join(str(getattr(k, 'key', k)) for k in path)
      for i, pattern in enumerate(patterns):
        if pattern.search(name):
          return f'frozen{i}'
      return 'trained'

    return jax.tree_util.tree_map_with_path(label, params)

  return labels


def make_optimizer(
    config: ml_collections.ConfigDict,
    schedule: optax.Schedule,
    *,
    steps_per_epoch: int = 1,
    frozen: Sequence[tuple[str, float]] = (),
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
  ``optimizer.clip_grad_norm`` clips each gradient tensor first
  (:func:`clip_each_by_norm`) and ``optimizer.weight_decay_end`` makes the
  decay a schedule (:func:`weight_decay_schedule`).

  Args:
    config: the experiment config.
    schedule: the learning-rate schedule.
    steps_per_epoch: optimiser steps per epoch (for epoch-based settings).
    frozen: the method's ``(path regex, epochs)`` rules: parameters whose
      ``/``-joined path matches are not trained for that many epochs
      (``math.inf``: never). As a PyTorch parameter without a gradient, they
      get no decay and their optimiser state starts when they do; their rate
      and decay schedules stay those of the global step.

  Returns:
    An optax gradient transformation.
  """
  opt = config.optimizer
  decay = weight_decay_schedule(config, steps_per_epoch)

  def build(offset: int) -> optax.GradientTransformation:
    lr = schedule if not offset else (lambda count: schedule(count + offset))
    wd = decay
    if callable(decay) and offset:
      wd = lambda count: decay(count + offset)
    tx = _base_optimizer(opt, lr, wd)
    if opt.bias_norm_lr_scale != 1.0:
      # Every optimiser here is linear in its learning rate after the adaptive
      # statistics, so scaling the update is scaling the learning rate.
      tx = optax.chain(
          tx,
          optax.masked(
              optax.scale(opt.bias_norm_lr_scale),
              lambda params: jax.tree.map(lambda d: not d, decay_mask(params)),
          ),
      )
    return tx

  tx = build(0)
  if frozen:
    transforms = {'trained': tx}
    for i, (_, epochs) in enumerate(frozen):
      if math.isinf(epochs):
        transforms[f'frozen{i}'] = optax.set_to_zero()
        continue
      start = int(round(epochs * steps_per_epoch))
      transforms[f'frozen{i}'] = optax.transforms.conditionally_mask(
          build(start), lambda count, start=start: count >= start
      )
    tx = optax.multi_transform(transforms, _frozen_labels(frozen))
  if opt.clip_grad_norm > 0:
    tx = optax.chain(clip_each_by_norm(opt.clip_grad_norm), tx)
  return tx


def _base_optimizer(
    opt: ml_collections.ConfigDict,
    schedule: optax.Schedule,
    weight_decay: float | optax.Schedule,
) -> optax.GradientTransformation:
  # MoCo v3's AdamW decays every parameter (no mask); the other references
  # leave biases and norms out.
  wd_mask = None if opt.decay_bias_and_norm else decay_mask
  if opt.name == 'lars' and opt.lars_variant == 'solo_learn':
    return optax.chain(
        scale_by_solo_learn_lars(
            schedule,
            weight_decay=weight_decay,
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
        weight_decay=weight_decay,
        weight_decay_mask=decay_mask,
        trust_coefficient=opt.trust_coefficient,
        eps=0.0,
        trust_ratio_mask=decay_mask,
        momentum=opt.momentum,
    )
  if opt.name == 'sgd':
    return optax.chain(
        optax.add_decayed_weights(weight_decay, mask=wd_mask),
        optax.sgd(schedule, momentum=opt.momentum, nesterov=True),
    )
  if opt.name == 'adam':
    return optax.chain(
        optax.add_decayed_weights(weight_decay, mask=wd_mask),
        optax.adam(schedule, b1=opt.b1, b2=opt.b2),
    )
  if opt.name == 'adamw':
    return optax.adamw(
        schedule,
        b1=opt.b1,
        b2=opt.b2,
        weight_decay=weight_decay,
        mask=wd_mask,
    )
  raise ValueError(f'optimizer.name={opt.name!r}; use one of {OPTIMIZERS}.')
