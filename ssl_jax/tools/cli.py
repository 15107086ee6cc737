"""What the command lines share: flag parsing whose mistakes are one line.

``main.py`` and ``python -m ssl_jax.tools.evaluate`` both take
``--config.FIELD=VALUE`` (ml_collections ``config_flags``); a mistyped field
or a value of the wrong type is then one ``PROG: error: ...`` line on stderr
and exit status 2, not absl's traceback-like usage dump.
"""

from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
import contextlib
import re
import sys

from absl import flags

USER_ERROR_EXIT_CODE = 2


@contextlib.contextmanager
def flag_errors(
    prog: str, listed_in: str = 'configs/default.py'
) -> Iterator[None]:
  """Turns a bad ``--config.FIELD=VALUE`` into one error line and exit 2.

  ``config_flags`` reads overrides when a config flag is defined (with no
  ``--config=FILE`` given) or when flags are parsed; both go in here.

  Args:
    prog: the program name that starts the error line (``ssl_jax``).
    listed_in: where the user finds every field, for the message.

  Yields:
    Nothing; exits with status 2 on a mistyped field or wrong-typed value.
  """
  try:
    yield
  except flags.IllegalFlagValueError as e:  # A value of the wrong type.
    _exit(
        prog,
        f'{str(e).removeprefix("flag ")}; each field takes the type of its '
        f'default in {listed_in}.',
    )
  except (AttributeError, KeyError) as e:  # ConfigDict's "no such field".
    text = str(e)
    field = re.search(r"([A-Za-z_][\w.]*)\\?'", text)
    hint = re.search(r'Did you mean "([\w.]+)"', text)
    name = _dotted(field.group(1)) if field else text
    parent = name.rpartition('.')[0] + '.' if field and '.' in name else ''
    close = f' (did you mean {parent + hint.group(1)!r}?)' if hint else ''
    _exit(
        prog,
        f'unknown config field {name!r}{close}; every field is listed in '
        f'{listed_in}.',
    )


def flags_parser(
    prog: str, listed_in: str = 'configs/default.py'
) -> Callable[[Sequence[str]], list[str]]:
  """An ``absl.app.run`` ``flags_parser`` whose errors name field and fix.

  Args:
    prog: the program name that starts each error line (``ssl_jax``).
    listed_in: where the user finds every field, for the messages.

  Returns:
    ``argv -> remaining argv``; a bad flag exits with status 2.
  """

  def parse(argv: Sequence[str]) -> list[str]:
    with flag_errors(prog, listed_in):
      return flags.FLAGS(argv)

  return parse


def _dotted(key: str) -> str:
  """The whole path (``data.bad_imagez``) of the override naming ``key``."""
  for arg in sys.argv[1:]:
    match = re.match(r'-{1,2}\w+\.([\w.]+)=?', arg)
    if match and match.group(1).split('.')[-1] == key:
      return match.group(1)
  return key


def _exit(prog: str, message: str):
  print(f'{prog}: error: {message}', file=sys.stderr)
  sys.exit(USER_ERROR_EXIT_CODE)
