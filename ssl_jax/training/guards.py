"""Faults a long run must survive: preemption signals and non-finite steps.

The train loop uses:
  * :func:`guarded_step` around the method's step: a finiteness flag per
    step, the optional skip of a non-finite update, and the fault-injection
    hook ``config.debug.nan_at_step``;
  * :func:`check_finite` on the fetched metrics before any checkpoint is
    written, so a poisoned state is never saved;
  * :class:`StopRequest` for SIGTERM/SIGINT, agreed on by every process.
"""

import signal
import threading
from typing import Any, Sequence

import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
import optax

# The quantities whose finiteness decides whether a step is good, in the
# order they are named in errors.
CHECKED = ('loss', 'grad_norm', 'param_norm')
NONFINITE_MODES = ('stop', 'skip')


class Preempted(Exception):
  """SIGTERM/SIGINT arrived: the step finished and a checkpoint was saved."""


class NonFiniteError(FloatingPointError):
  """A step produced NaN or Inf; the message names the step and quantities."""


def guarded_step(
    state,
    batch,
    key,
    *,
    step_fn,
    nonfinite: str = 'stop',
    poison_step: int = -1,
):
  """Runs ``step_fn`` and flags (or, with ``'skip'``, undoes) a non-finite step.

  Args:
    state: the train state (its ``params`` and ``step`` are read).
    batch: the global batch.
    key: this step's PRNG key.
    step_fn: ``(state, batch, key) -> (state, metrics)`` with ``'loss'`` and
      ``'grad_norm'`` in the metrics.
    nonfinite: ``'stop'`` returns the step's state as is (the loop stops on
      the flag); ``'skip'`` keeps the incoming state, only advancing the step.
    poison_step: fault injection for tests: the step whose loss sees NaN
      parameters (-1: never).

  Returns:
    ``(state, metrics)`` with ``param_norm`` and ``nonfinite`` (1.0 for a
    non-finite step) added to the metrics.
  """
  inputs = state
  if poison_step >= 0:
    scale = jnp.where(state.step == poison_step, jnp.nan, 1.0)
    inputs = state.replace(
        params=jax.tree.map(lambda p: p * scale.astype(p.dtype), state.params)
    )
  new, metrics = step_fn(inputs, batch, key)
  param_norm = optax.tree.norm(new.params)
  finite = (
      jnp.isfinite(metrics['loss'])
      & jnp.isfinite(metrics['grad_norm'])
      & jnp.isfinite(param_norm)
  )
  if nonfinite == 'skip':
    new = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, state)
    new = new.replace(step=state.step + 1)
  metrics = dict(
      metrics, param_norm=param_norm, nonfinite=1.0 - finite.astype(jnp.float32)
  )
  return new, metrics


def check_finite(
    metrics: Sequence[dict[str, Any]], first_step: int, mode: str
) -> int:
  """Counts the non-finite steps among fetched metrics; raises in ``'stop'`` mode.

  Args:
    metrics: host metrics of consecutive steps, the first of step
      ``first_step`` (0-based: the step whose update produced them).
    first_step: the step of ``metrics[0]``.
    mode: ``'stop'`` or ``'skip'``.

  Returns:
    How many of the steps were non-finite (skipped, in ``'skip'`` mode).

  Raises:
    NonFiniteError: in ``'stop'`` mode, naming the first bad step and which of
      :data:`CHECKED` were NaN or Inf there.
  """
  bad = [i for i, m in enumerate(metrics) if m['nonfinite'] > 0]
  if bad and mode == 'stop':
    m = metrics[bad[0]]
    what = ', '.join(
        f'{k}={float(m[k])}' for k in CHECKED if not np.isfinite(m[k])
    )
    raise NonFiniteError(
        f'non-finite values at step {first_step + bad[0]} ({what}); stopped '
        'without saving it, the last checkpoint holds the last good state. '
        'Lower the learning rate, or set --config.nonfinite=skip to skip such '
        'steps.'
    )
  return len(bad)


class StopRequest:
  """Turns SIGTERM and SIGINT into a stop at a step every process agrees on.

  Preemptible VMs send SIGTERM before reclaiming the machine: finishing the
  step and saving beats dying mid-step. Only the main thread can install
  handlers; elsewhere (a test thread) signals keep their default action.
  """

  def __init__(self):
    self.requested = ''
    self._previous = {}
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)

  def _handle(self, signum, frame):
    del frame
    self.requested = signal.Signals(signum).name

  def should_stop(self, synced: bool) -> str:
    """The signal's name if the run must stop after this step, else ''.

    Args:
      synced: whether the processes may exchange the flag at this step. With
        several processes, a signal that reached only some of them stops all
        of them at the next synced step (each synced step costs a host
        round trip, so the loop syncs only at log and checkpoint steps).

    Returns:
      ``'SIGTERM'``, ``'SIGINT'`` or ``''``.
    """
    if jax.process_count() == 1:
      return self.requested
    if not synced:
      return ''
    flags = multihost_utils.process_allgather(np.int32(bool(self.requested)))
    return (self.requested or 'SIGTERM') if np.any(flags) else ''

  def restore(self):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}
