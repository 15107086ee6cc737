"""Test setup, before jax is imported: devices, compiler settings, sys.path.

* 8 fake CPU devices, so sharding is exercised on one host.
* XLA's backend at optimisation level 0: the tests' programs are small, so
  compiling them dominates running them, and level 0 compiles several times
  faster. Runs compared bit for bit are compiled under the same flags, and the
  fixture comparisons (parity, colour) hold at this level too.
* One OpenMP thread (scikit-learn, BLAS).
* One persistent compilation cache for the session, in a temporary folder
  named by ``JAX_COMPILATION_CACHE_DIR`` in the environment, so that the
  ``main.py`` subprocesses inherit it: every run of the same program after the
  first (resumed, killed, repeated runs; the same step in several tests) loads
  its executable instead of compiling it again. Set the variable yourself to
  keep the cache across sessions.
"""

import os
import shutil
import sys
import tempfile

import pytest

os.environ['XLA_FLAGS'] = (
    os.environ.get('XLA_FLAGS', '')
    + ' --xla_force_host_platform_device_count=8'
    + ' --xla_backend_optimization_level=0'
)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# One OpenMP thread for scikit-learn and BLAS: the tests' problems are tiny,
# and spinning OpenMP workers slow t-SNE or k-means tenfold and more whenever
# the cores are shared (XLA's threads, CI neighbours).
os.environ.setdefault('OMP_NUM_THREADS', '1')
_OWN_CACHE = 'JAX_COMPILATION_CACHE_DIR' not in os.environ
if _OWN_CACHE:
  os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(
      prefix='ssl_jax_tests_xla_cache_'
  )
# Every compile is cached: the tests' programs each take well under the
# default one second to compile, but there are thousands of them.
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# tfds.testing holds test_utils.py, which pytest rewrites on first import. Doing
# that here, before any test starts orbax or prefetch threads, avoids CPython
# 3.11's "AST constructor recursion depth mismatch" race seen mid-suite.
import tensorflow_datasets.testing  # noqa: E402,F401  # pylint: disable=g-import-not-at-top,unused-import,wrong-import-position


def pytest_sessionfinish(session, exitstatus):
  """Removes the session's compilation cache (unless the user named one)."""
  del session, exitstatus
  if _OWN_CACHE:
    shutil.rmtree(os.environ['JAX_COMPILATION_CACHE_DIR'], ignore_errors=True)


@pytest.fixture
def small_reads_in_workers(monkeypatch):
  """Sends reads of a few files to grain's workers, as large reads go.

  Reads under ``decoding.MIN_TASKS`` files decode in the test's process;
  the tests' folders are that small.
  """
  from ssl_jax.data import decoding  # pylint: disable=g-import-not-at-top

  monkeypatch.setattr(decoding, 'MIN_TASKS', 0)
