"""Learning methods: one module each, registered here by name.

Each method module builds one :class:`ssl_jax.methods.base.Method`; adding a
method is that module, one line in :data:`METHODS` (or a call to
:func:`register` from your own code) and a config.
"""

from ssl_jax.methods import barlow_twins
from ssl_jax.methods import byol
from ssl_jax.methods import deepcluster
from ssl_jax.methods import dino
from ssl_jax.methods import fixmatch
from ssl_jax.methods import moco_v3
from ssl_jax.methods import simclr
from ssl_jax.methods import supervised
from ssl_jax.methods import vicreg
from ssl_jax.methods.base import Method

# In the report's order: the supervised baseline first.
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        supervised.METHOD,
        simclr.METHOD,
        barlow_twins.METHOD,
        vicreg.METHOD,
        byol.METHOD,
        moco_v3.METHOD,
        dino.METHOD,
        deepcluster.METHOD,
        fixmatch.METHOD,
    )
}


def register(method: Method) -> Method:
  """Adds ``method`` to :data:`METHODS` (for methods defined outside ssl_jax).

  Args:
    method: the method; its ``name`` must be new.

  Returns:
    ``method``.
  """
  if method.name in METHODS:
    raise ValueError(f'a method named {method.name!r} is already registered.')
  METHODS[method.name] = method
  return method


def get(name: str) -> Method:
  """The method registered as ``name``.

  Args:
    name: ``config.method``.

  Returns:
    The :class:`Method`.

  Raises:
    ValueError: no method has that name (the message lists those that do).
  """
  if name not in METHODS:
    raise ValueError(
        f'method={name!r} is not registered; use one of {sorted(METHODS)}.'
    )
  return METHODS[name]
