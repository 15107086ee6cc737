"""Where a compiled step spends its time: per-op totals from a jax.profiler trace.

``suite.py --parts=profile`` traces a few steps with ``jax.profiler.trace``
(perfetto JSON) and reads the trace back with :func:`summarise`. On a GPU or
TPU the ops are the device's (the trace's ``/device:GPU:N`` processes, keyed
by the HLO op each kernel belongs to); on the CPU they are the XLA thunks and
oneDNN custom calls on the host threads (thread time, so it can exceed the
wall time on several cores; XLA:CPU's own convolutions run on its intra-op
pool and show only as their short dispatch). Written by hand: xprof's op
profile needs the tensorboard-plugin-profile package for what is ~50 lines.
"""

import collections
import glob
import gzip
import json
import os
import re
from typing import Any, Iterable

# The kind of an op, by its HLO name (first match wins).
KINDS = (
    ('convolution', re.compile(r'convolution|conv_general|cudnn', re.I)),
    ('custom call', re.compile(r'custom|ffi_call', re.I)),
    ('matmul', re.compile(r'\bdot|gemm|cublas|matmul', re.I)),
    (
        'collective',
        re.compile(
            r'all-reduce|all-gather|reduce-scatter|' r'collective|all-to-all',
            re.I,
        ),
    ),
    ('copy / transpose', re.compile(r'^copy|transpose', re.I)),
    ('reduction', re.compile(r'reduce|ynn_fusion', re.I)),
    ('elementwise fusion', re.compile(r'fusion', re.I)),
)
# An HLO instruction name (``fusion.12``, ``add_maximum_fusion``,
# ``convolution-window-dilated.1``): no spaces, colons or brackets, which
# tells host-side op events from runtime and Python events on the CPU.
_HLO_NAME = re.compile(r'^[A-Za-z][\w\-]*(\.\d+)?$')


def kind(op: str) -> str:
  """The kind of HLO op ``op`` (see :data:`KINDS`), else ``'other'``."""
  return next((k for k, pattern in KINDS if pattern.search(op)), 'other')


def read_trace(log_dir: str) -> list[dict[str, Any]]:
  """The trace events of the newest perfetto trace under ``log_dir``."""
  paths = glob.glob(
      os.path.join(log_dir, '**', '*.trace.json.gz'), recursive=True
  )
  if not paths:
    raise FileNotFoundError(
        f'No *.trace.json.gz under {log_dir}: trace with '
        'jax.profiler.trace(log_dir, create_perfetto_trace=True).'
    )
  with gzip.open(max(paths, key=os.path.getmtime)) as f:
    return json.load(f)['traceEvents']


def summarise(
    events: Iterable[dict[str, Any]], steps: int, top: int = 15
) -> dict[str, Any]:
  """Per-op and per-kind milliseconds per step.

  Args:
    events: perfetto trace events (``read_trace``).
    steps: how many steps the trace holds.
    top: how many of the slowest ops to list.

  Returns:
    ``{'source', 'ms_per_step', 'by_kind': {kind: [ms, share]},
    'top_ops': [[op, kind, ms, share], ...]}``; ``source`` is ``'device'``
    where the trace has accelerator processes, else ``'host threads'``.
  """
  events = list(events)
  devices = {
      e['pid']
      for e in events
      if e.get('ph') == 'M'
      and e.get('name') == 'process_name'
      and re.search(
          r'/device:(GPU|TPU)', str(e.get('args', {}).get('name', ''))
      )
  }
  totals = collections.Counter()
  for e in events:
    if e.get('ph') != 'X' or 'dur' not in e:
      continue
    if devices:
      if e.get('pid') not in devices:
        continue
      args = e.get('args') or {}
      op = args.get('hlo_op') or args.get('long_name') or e['name']
    else:
      op = e['name']
      if not _HLO_NAME.match(op):
        continue
    totals[str(op)] += e['dur'] / 1e3 / steps  # Perfetto durations are in us.
  whole = sum(totals.values()) or 1.0
  by_kind = collections.Counter()
  for op, ms in totals.items():
    by_kind[kind(op)] += ms
  return {
      'source': 'device' if devices else 'host threads',
      'ms_per_step': round(sum(totals.values()), 2),
      'by_kind': {
          k: [round(ms, 2), round(ms / whole, 3)]
          for k, ms in by_kind.most_common()
      },
      'top_ops': [
          [op, kind(op), round(ms, 2), round(ms / whole, 3)]
          for op, ms in totals.most_common(top)
      ],
  }
