"""Test setup: 8 fake CPU devices (set before jax is imported) and the repo on sys.path."""

import os
import sys

os.environ['XLA_FLAGS'] = (
    os.environ.get('XLA_FLAGS', '')
    + ' --xla_force_host_platform_device_count=8'
)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# tfds.testing holds test_utils.py, which pytest rewrites on first import. Doing
# that here, before any test starts orbax or prefetch threads, avoids CPython
# 3.11's "AST constructor recursion depth mismatch" race seen mid-suite.
import tensorflow_datasets.testing  # noqa: E402,F401  # pylint: disable=g-import-not-at-top,unused-import,wrong-import-position
