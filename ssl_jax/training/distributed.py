"""Joining a multi-process run with ``jax.distributed`` before jax is used.

One process per host (or per GPU under SLURM): every process runs the same
command; each reads only its slice of every global batch
(``batching.process_slice``) and contributes it with
``jax.make_array_from_process_local_data``; process 0 alone writes logs,
``config.json`` and ``results.json``; all processes write their shards of
each orbax checkpoint.
"""

import os
from typing import Optional

from absl import logging
import jax

# Environment variables that mean "this is one process of several". jax's own
# cluster detection (TPU pods, SLURM, Open MPI, Kubernetes) then fills in the
# coordinator, the process count and this process's id.
_MULTI_PROCESS_ENV = {
    'SLURM_NTASKS': lambda v: int(v) > 1,
    'OMPI_COMM_WORLD_SIZE': lambda v: int(v) > 1,
    'TPU_WORKER_HOSTNAMES': lambda v: ',' in v,
    'JAX_COORDINATOR_ADDRESS': bool,
}
MODES = ('auto', 'on', 'off')


def detected() -> Optional[str]:
  """The environment variable that marks a multi-process launch, if any."""
  for name, is_multi in _MULTI_PROCESS_ENV.items():
    value = os.environ.get(name)
    if value:
      try:
        if is_multi(value):
          return name
      except ValueError:
        continue
  return None


def initialize(
    mode: str = 'auto',
    coordinator_address: str = '',
    num_processes: int = 0,
    process_id: int = -1,
) -> bool:
  """Calls ``jax.distributed.initialize`` when the run has several processes.

  Args:
    mode: ``'auto'`` joins when an explicit argument is given or the
      environment marks a multi-process launch (:func:`detected`); ``'on'``
      always joins (jax auto-detects the cluster); ``'off'`` never does.
    coordinator_address: ``host:port`` of process 0 ('' = auto-detect).
    num_processes: the process count (0 = auto-detect).
    process_id: this process's id (-1 = auto-detect).

  Returns:
    Whether this process joined a distributed run.

  Raises:
    ValueError: an unknown mode, or explicit arguments that are incomplete.
  """
  if mode not in MODES:
    raise ValueError(f'--distributed={mode!r}; use one of {MODES}.')
  explicit = bool(coordinator_address) or num_processes > 0 or process_id >= 0
  if explicit and not (
      coordinator_address and num_processes > 0 and process_id >= 0
  ):
    raise ValueError(
        '--coordinator_address, --num_processes and --process_id go together '
        f'(got {coordinator_address!r}, {num_processes}, {process_id}); give '
        'all three, or none to auto-detect.'
    )
  marker = detected()
  if mode == 'off' or (mode == 'auto' and not explicit and marker is None):
    return False
  # CPU processes exchange collectives over gloo (GPUs use NCCL, TPUs ICI).
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  kwargs = {}
  if explicit:
    kwargs = dict(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
    )
  jax.distributed.initialize(**kwargs)
  logging.info(
      'Process %d of %d (%s); %d local of %d devices.',
      jax.process_index(),
      jax.process_count(),
      'explicit flags' if explicit else marker or 'auto-detected',
      jax.local_device_count(),
      jax.device_count(),
  )
  return True
