"""Every flag a message or docstring suggests is one the commands accept.

The package's string literals (error messages, usage lines) are walked for
``--config.FIELD`` and ``--evals.FIELD``; each named field must exist, and
``main.py`` and ``python -m ssl_jax.tools.evaluate`` must both parse
``--config.FIELD=VALUE`` for it (the evaluate tool also ``--evals.FIELD``).
"""

import ast
import fnmatch
import glob
import os
import re
import subprocess
import sys

import pytest

from ssl_jax.configs import default
from ssl_jax.configs.evals import default as evals_default
from ssl_jax.training import checkpoint
from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A flag and, where the text gives one, its value (up to a space or quote).
_FLAG = re.compile(r"--(config|evals)\.([A-Za-z_*][\w.*]*)(=[^\s'\"`,;)\]]*)?")


def _literals(path):
  """The string constants of a Python file (f-strings' literal parts too)."""
  with open(path) as f:
    tree = ast.parse(f.read())
  for node in ast.walk(tree):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
      yield node.value


def _named_flags():
  """``{(kind, field): value or None}`` over the package and main.py."""
  files = glob.glob(os.path.join(ROOT, 'ssl_jax', '**', '*.py'), recursive=True)
  out = {}
  for path in [*files, os.path.join(ROOT, 'main.py')]:
    for text in _literals(path):
      for kind, field, value in _FLAG.findall(text):
        field = field.rstrip('.')
        if field == '*' or any(p.isupper() for p in field.split('.')):
          continue  # A placeholder: --config.FIELD=VALUE, --config.*.
        value = value[1:].rstrip('.') if value else ''
        if not value or value.isupper() or any(c in value for c in '{|'):
          value = None  # DIR, SIDE, an f-string's {field}, a choice a|b.
        out.setdefault((kind, field), value)
  return out


NAMED = _named_flags()
CONFIG = checkpoint.flatten(default.get_config().to_dict())
EVALS = checkpoint.flatten(evals_default.get_config().to_dict())


def _leaves(kind):
  """The fields of ``kind`` that messages name, with a value to parse."""
  keys = CONFIG if kind == 'config' else EVALS
  out = {}
  for (k, field), value in sorted(NAMED.items()):
    if k != kind or field not in keys:
      continue  # A group (--config.data.) or pattern: not a single flag.
    default_value = keys[field]
    if value is None:
      if isinstance(default_value, (tuple, list)) or default_value is None:
        continue  # No value to write for it; its existence is checked.
      value = str(default_value)
    out[field] = value
  return out


def test_the_walk_finds_the_flags_messages_suggest():
  """Guards the walk itself: these fixes are printed by the code today."""
  for field in ('data.bad_images', 'data_dir', 'data.resize', 'batch_size'):
    assert ('config', field) in NAMED, field
  assert ('config', 'evals.transfer.data_dir') in NAMED
  assert ('evals', 'knn.k') in NAMED


@pytest.mark.parametrize('kind,field', sorted(NAMED))
def test_each_named_field_exists(kind, field):
  keys = CONFIG if kind == 'config' else EVALS
  if '*' in field:
    assert fnmatch.filter(keys, field), field
  else:
    assert field in keys or any(k.startswith(field + '.') for k in keys), (
        f'--{kind}.{field} is suggested but configs/'
        f'{"" if kind == "config" else "evals/"}default.py has no such field.'
    )


def _run(args, env=None):
  return subprocess.run(
      [sys.executable, *args],
      cwd=ROOT,
      env=helpers.subprocess_env(**(env or {})),
      capture_output=True,
      text=True,
      timeout=300,
      check=False,
  )


@pytest.mark.slow
def test_main_accepts_every_named_config_field():
  argv = [f'--config.{k}={v}' for k, v in _leaves('config').items()]
  # Flags only: main.py's module defines them, the shared parser reads them.
  code = (
      'import sys\n'
      'import main\n'
      'from ml_collections import config_flags\n'
      "main.cli.flags_parser('ssl_jax')(sys.argv)\n"
      "print(sorted(config_flags.get_override_values(main.flags.FLAGS['config'])))\n"
  )
  done = _run(['-c', code, '--config=configs/quickstart.py', *argv])
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.strip() == str(sorted(_leaves('config'))), done.stdout


@pytest.mark.slow
def test_evaluate_tool_accepts_every_named_field():
  argv = [f'--config.{k}={v}' for k, v in _leaves('config').items()]
  argv += [f'--evals.{k}={v}' for k, v in _leaves('evals').items()]
  done = _run(['-m', 'ssl_jax.tools.evaluate', '--workdir=/nonexistent', *argv])
  # The flags parsed: the tool went on to look for the workdir's config.
  assert done.returncode == 2, done.stderr[-2000:]
  assert done.stderr.strip().splitlines()[-1] == (
      'ssl_jax.tools.evaluate: error: /nonexistent/config.json does not '
      'exist; pass the --workdir of a run of main.py.'
  )


@pytest.mark.slow
@pytest.mark.parametrize(
    'flag,error',
    [
        (
            '--config.data.bad_imagez=skip',
            (
                "unknown config field 'data.bad_imagez' (did you mean "
                "'data.bad_images'?)"
            ),
        ),
        (
            '--evals.knn.kk=3',
            "unknown config field 'knn.kk'",
        ),
        ('--config.data.workers=two', '--config.data.workers=two: invalid'),
    ],
)
def test_evaluate_tool_names_a_bad_override_in_one_line(flag, error):
  done = _run(['-m', 'ssl_jax.tools.evaluate', '--workdir=/nonexistent', flag])
  assert done.returncode == 2
  assert 'Traceback' not in done.stderr, done.stderr[-2000:]
  (line,) = done.stderr.strip().splitlines()
  assert line.startswith(f'ssl_jax.tools.evaluate: error: {error}'), line
