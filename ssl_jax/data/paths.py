"""File operations on local paths and fsspec URLs (``gs://``, ``memory://``).

Exists so that data folders and workdirs may live in buckets while local
paths keep ``os``'s fast calls (``os.scandir`` reads file types without a
``stat`` per file). URLs go through fsspec, the library etils.epath itself
uses for ``gs://`` when TensorFlow is absent; epath is not used directly
because it knows only ``gs://``, ``s3://``, ``az://`` and ``hf://``, while
fsspec also opens ``memory://`` (tests) and any protocol a plugin registers
(``gs://`` needs ``gcsfs``, ``s3://`` needs ``s3fs``). ``file://`` URLs are
taken as the local paths they name.
"""

import builtins
import glob as glob_lib
import os
import posixpath
from typing import IO, Any

_FILE = 'file://'


def local(path: str) -> str:
  """``path`` with a ``file://`` scheme removed (other paths unchanged).

  Args:
    path: a local path (``str`` or ``os.PathLike``) or URL.

  Returns:
    The local path a ``file://`` URL names, else ``path`` as a ``str``.
  """
  path = os.fspath(path)
  return path[len(_FILE) :] if path.startswith(_FILE) else path


def is_url(path: str) -> bool:
  """Whether ``path`` is a URL that fsspec opens (``file://`` is local).

  Args:
    path: a local path or URL.

  Returns:
    True for ``scheme://...`` with a scheme other than ``file``.
  """
  path = os.fspath(path)
  return '://' in path and not path.startswith(_FILE)


def scheme(path: str) -> str:
  """The URL scheme of ``path`` (``'gs'``), or ``''`` for a local path.

  Args:
    path: a local path or URL.

  Returns:
    The scheme.
  """
  return os.fspath(path).split('://', 1)[0] if is_url(path) else ''


def _fs(url: str) -> tuple[Any, str]:
  """The fsspec filesystem of ``url`` and the path within it."""
  import fsspec  # pylint: disable=g-import-not-at-top

  return fsspec.core.url_to_fs(url)


def join(path: str, *parts: str) -> str:
  """Joins path components with ``/`` for URLs, ``os.path.join`` otherwise.

  Args:
    path: a local path or URL.
    *parts: components to append.

  Returns:
    The joined path.
  """
  if is_url(path):
    return posixpath.join(path, *parts)
  return os.path.join(path, *parts)


def abspath(path: str) -> str:
  """``os.path.abspath`` for local paths (``file://`` removed); URLs as given.

  Args:
    path: a local path or URL.

  Returns:
    The absolute path, or the URL.
  """
  return path if is_url(path) else os.path.abspath(local(path))


def exists(path: str) -> bool:
  """Whether a file or folder exists at ``path``.

  Args:
    path: a local path or URL.

  Returns:
    True if it exists.
  """
  if is_url(path):
    fs, p = _fs(path)
    return fs.exists(p)
  return os.path.exists(local(path))


def isdir(path: str) -> bool:
  """Whether ``path`` is a folder (a bucket prefix holding objects).

  Args:
    path: a local path or URL.

  Returns:
    True if it is a folder.
  """
  if is_url(path):
    fs, p = _fs(path)
    return fs.isdir(p)
  return os.path.isdir(local(path))


def listdir_typed(path: str) -> list[tuple[str, bool]]:
  """The entries of a folder as ``(name, is_dir)``, unsorted.

  Args:
    path: a local folder (read with ``os.scandir``: no ``stat`` per file) or
      a URL (one listing request per folder on object stores).

  Returns:
    ``[(name, is_dir), ...]``.

  Raises:
    FileNotFoundError: the folder does not exist.
  """
  if not is_url(path):
    with os.scandir(local(path)) as it:
      return [(e.name, e.is_dir()) for e in it]
  fs, p = _fs(path)
  p = p.rstrip('/')
  out = []
  for entry in fs.ls(p, detail=True):
    name = entry['name'].rstrip('/')
    if name == p:  # A folder marker object that some buckets list.
      continue
    out.append((name.rsplit('/', 1)[-1], entry['type'] == 'directory'))
  return out


def glob(pattern: str) -> list[str]:
  """The paths matching a glob pattern, sorted.

  Args:
    pattern: a local pattern or URL pattern (``gs://b/run/events.*``).

  Returns:
    Matching paths; URLs keep their scheme.
  """
  if not is_url(pattern):
    return sorted(glob_lib.glob(local(pattern)))
  fs, p = _fs(pattern)
  return sorted(fs.unstrip_protocol(m) for m in fs.glob(p))


def open(path: str, mode: str = 'r') -> IO[Any]:  # pylint: disable=redefined-builtin
  """Opens a file like the builtin ``open``.

  Args:
    path: a local path or URL.
    mode: ``'r'``, ``'rb'``, ``'w'``, ``'wb'``; on object stores a written
      file appears when it is closed.

  Returns:
    A file object (a context manager).
  """
  if is_url(path):
    import fsspec  # pylint: disable=g-import-not-at-top

    return fsspec.open(path, mode).open()
  return builtins.open(local(path), mode)


def makedirs(path: str) -> None:
  """Creates a folder and its parents if missing.

  Object stores have no folders (a file needs none); there this is whatever
  the fsspec filesystem's ``makedirs`` does.

  Args:
    path: a local path or URL.
  """
  if is_url(path):
    fs, p = _fs(path)
    fs.makedirs(p, exist_ok=True)
  else:
    os.makedirs(local(path), exist_ok=True)


def rename(src: str, dst: str) -> None:
  """Moves a file or folder, replacing a file at ``dst``.

  Args:
    src: a local path or URL.
    dst: the new path, on the same filesystem.
  """
  if is_url(src):
    fs, p = _fs(src)
    fs.mv(p, _fs(dst)[1], recursive=True)
  else:
    os.replace(local(src), local(dst))


def write_atomic(path: str, text: str) -> None:
  """Writes ``text`` to ``path`` so that readers never see part of it.

  Local files are written beside and renamed; an object store publishes an
  object only when its upload completes, so URLs are written directly.

  Args:
    path: a local path or URL.
    text: the whole content.
  """
  if is_url(path):
    with open(path, 'w') as f:
      f.write(text)
    return
  path = local(path)
  tmp = path + '.tmp'
  with builtins.open(tmp, 'w') as f:
    f.write(text)
  os.replace(tmp, path)
