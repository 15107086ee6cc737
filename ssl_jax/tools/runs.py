"""The finished runs a report compares: each a workdir's config and results."""

import dataclasses
import json
import os
from typing import Any, Optional, Sequence

from absl import logging

from ssl_jax import methods


class ReportError(ValueError):
  """A user error: a DIR that is missing or holds no finished run."""


@dataclasses.dataclass(frozen=True)
class Run:
  """A finished run: its config is flattened to dotted field names."""

  name: str  # The folder name, with parents where two runs share one.
  path: str
  config: dict[str, Any]
  results: dict[str, Any]

  @property
  def method(self) -> str:
    return str(self.config.get('method', '?'))


def _flatten(d: dict[str, Any], prefix: str = '') -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    out.update(
        _flatten(v, f'{prefix}{k}.') if isinstance(v, dict) else {prefix + k: v}
    )
  return out


def _load(path: str) -> Optional[tuple[dict[str, Any], dict[str, Any]]]:
  loaded = []
  for name in ('config.json', 'results.json'):
    try:
      with open(os.path.join(path, name)) as f:
        loaded.append(json.load(f))
    except (OSError, ValueError) as e:
      loaded.append(e)
    if not isinstance(loaded[-1], dict):
      logging.warning(
          'Skipping %s: %s is not a JSON object (%s).', path, name, loaded[-1]
      )
      return None
  return _flatten(loaded[0]), loaded[1]


def _unique_names(paths: Sequence[str]) -> list[str]:
  """Folder names; paths below the runs' common folder where two clash."""
  names = [os.path.basename(p) for p in paths]
  if len(set(names)) == len(names):
    return names
  common = os.path.commonpath(paths)
  return [os.path.relpath(p, common).replace(os.sep, '/') for p in paths]


def find_runs(dirs: Sequence[str]) -> list[Run]:
  """Finds the finished runs in and under ``dirs``.

  Args:
    dirs: run workdirs or folders that contain them (at any depth).

  Returns:
    The runs, each once, sorted by method (supervised, simclr, barlow_twins,
    deepcluster, fixmatch, others), then dataset, encoder and name.

  Raises:
    ReportError: a DIR does not exist or holds no finished run.
  """
  found = {}
  for top in dirs:
    if not os.path.isdir(top):
      raise ReportError(
          f'{top!r} is not a directory; give run workdirs or '
          'folders that contain them.'
      )
    count = 0
    for root, subdirs, files in os.walk(top):
      subdirs[:] = sorted(d for d in subdirs if d != 'checkpoints')
      if 'config.json' not in files or 'results.json' not in files:
        if 'config.json' in files:
          logging.warning(
              'Skipping %s: no results.json (unfinished run?).', root
          )
        continue
      # A run's own fine-tunes and transfers (below its eval/) are parts of
      # its figures, not rows of their own.
      subdirs[:] = []
      path = os.path.abspath(root)
      loaded = found.get(path) or _load(path)
      if loaded is not None:
        found[path] = loaded
        count += 1
    if not count:
      raise ReportError(
          f'no finished run under {top!r}: no folder there holds '
          'both config.json and results.json.'
      )
  runs = [
      Run(name, path, *found[path])
      for name, path in zip(_unique_names(list(found)), found)
  ]
  rank = {m: i for i, m in enumerate(methods.METHODS)}  # Registry order.
  return sorted(
      runs,
      key=lambda r: (
          rank.get(r.method, len(rank)),
          r.method,
          str(r.config.get('dataset')),
          str(r.config.get('encoder')),
          r.name,
      ),
  )
