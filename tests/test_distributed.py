"""When a process joins a multi-process run, and the errors of bad flags."""

import pytest

from ssl_jax.training import distributed


@pytest.mark.parametrize(
    'env,expected',
    [
        ({}, None),
        ({'SLURM_NTASKS': '1'}, None),
        ({'SLURM_NTASKS': '4'}, 'SLURM_NTASKS'),
        ({'OMPI_COMM_WORLD_SIZE': '2'}, 'OMPI_COMM_WORLD_SIZE'),
        ({'TPU_WORKER_HOSTNAMES': 'localhost'}, None),
        ({'TPU_WORKER_HOSTNAMES': 'w0,w1,w2,w3'}, 'TPU_WORKER_HOSTNAMES'),
        (
            {'JAX_COORDINATOR_ADDRESS': '10.0.0.1:1234'},
            'JAX_COORDINATOR_ADDRESS',
        ),
        ({'SLURM_NTASKS': 'many'}, None),
    ],
)
def test_detected(monkeypatch, env, expected):
  for name in (
      'SLURM_NTASKS',
      'OMPI_COMM_WORLD_SIZE',
      'TPU_WORKER_HOSTNAMES',
      'JAX_COORDINATOR_ADDRESS',
  ):
    monkeypatch.delenv(name, raising=False)
  for name, value in env.items():
    monkeypatch.setenv(name, value)
  assert distributed.detected() == expected


def test_single_process_does_not_join(monkeypatch):
  monkeypatch.delenv('SLURM_NTASKS', raising=False)
  assert distributed.initialize('auto') is False
  monkeypatch.setenv('SLURM_NTASKS', '4')
  assert distributed.initialize('off') is False


@pytest.mark.parametrize(
    'args', [('10.0.0.1:1234', 0, -1), ('', 2, 0), ('10.0.0.1:1234', 2, -1)]
)
def test_explicit_flags_go_together(args):
  with pytest.raises(ValueError, match='go together'):
    distributed.initialize('auto', *args)


def test_unknown_mode():
  with pytest.raises(ValueError, match="--distributed='sometimes'"):
    distributed.initialize('sometimes')
