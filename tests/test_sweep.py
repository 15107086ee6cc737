"""Sweeps: grid parsing, run names, skipping and failures (fake training)."""

import json
import os

import pytest

from ssl_jax.configs import default
from ssl_jax.tools import sweep


def test_parse_grid_types_and_cartesian_product():
  config = default.get_config()
  grid = sweep.parse_grid(
      [
          'data.label_fraction=0.01,0.1,1',
          'fixmatch.mu=1,5',
          'probe.enabled=true,False',
          'method=simclr,"fixmatch"',
          'augment.view1.crop_scale=(0.2,1),(0.5, 1.0)',
      ],
      config,
  )
  assert len(grid) == 3 * 2 * 2 * 2 * 2
  assert grid[0] == {
      'data.label_fraction': 0.01,
      'fixmatch.mu': 1,
      'probe.enabled': True,
      'method': 'simclr',
      'augment.view1.crop_scale': (0.2, 1.0),
  }
  last = grid[-1]
  assert last['method'] == 'fixmatch' and last['probe.enabled'] is False
  assert last['augment.view1.crop_scale'] == (0.5, 1.0)
  assert isinstance(last['data.label_fraction'], float)
  assert isinstance(last['fixmatch.mu'], int)
  assert sweep.parse_grid(['model.conv_widths=(8,16),()'], config) == [
      {'model.conv_widths': (8, 16)},
      {'model.conv_widths': ()},
  ]


@pytest.mark.parametrize(
    'spec, message',
    [
        ('data.label_fractio=0.1', "unknown config field 'data.label_fractio'"),
        ('fixmatch=1', "'fixmatch' is a group of fields"),
        ('fixmatch.mu=1,2.5', "'2.5' for fixmatch.mu is not an int"),
        (
            'data.label_fraction=0.1,x',
            "'x' for data.label_fraction is not a float",
        ),
        ('probe.enabled=maybe', 'is not a bool'),
        ('augment.view1.crop_scale=0.2', 'is not a tuple'),
        ('augment.view1.crop_scale=(0.2,x)', 'is not a tuple'),
        ('augment.view1.crop_scale=(0.2,"x")', 'is not a tuple of numbers'),
        ('projector.hidden_dims=(0.5,)', 'is not a tuple of ints'),
        ('fixmatch.mu=1,,2', 'empty value'),
        ('fixmatch.mu', 'is not FIELD=V1,V2'),
    ],
)
def test_parse_grid_errors_name_the_field(spec, message):
  with pytest.raises(sweep.SweepError, match=message.replace('(', r'\(')):
    sweep.parse_grid([spec], default.get_config())


def test_repeated_field_is_an_error():
  with pytest.raises(sweep.SweepError, match='two --grid flags'):
    sweep.parse_grid(['fixmatch.mu=1', 'fixmatch.mu=2'], default.get_config())


def test_run_names_shorten_unambiguous_fields():
  assert sweep.run_names([{'data.label_fraction': 0.1, 'fixmatch.mu': 5}]) == [
      'label_fraction=0.1,mu=5'
  ]
  names = sweep.run_names([{
      'augment.view1.crop_scale': (0.2, 1.0),
      'augment.view2.crop_scale': (0.5, 1.0),
  }])
  assert names == [
      'augment.view1.crop_scale=0.2-1.0,augment.view2.crop_scale=0.5-1.0'
  ]
  assert sweep.run_names([{'data_dir': '/a b'}]) == ['data_dir=_a_b']
  with pytest.raises(sweep.SweepError, match='same workdir'):
    sweep.run_names([{'data_dir': 'a/b'}, {'data_dir': 'a_b'}])


class FakeTrain:
  """Records its calls, writes results.json, fails where told."""

  def __init__(self, fail_mu=None):
    self.calls, self.fail_mu = [], fail_mu

  def __call__(self, config, workdir):
    self.calls.append((
        config.data.label_fraction,
        config.fixmatch.mu,
        os.path.basename(workdir),
    ))
    if config.fixmatch.mu == self.fail_mu:
      raise RuntimeError('out of memory')
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, 'results.json'), 'w') as f:
      json.dump({'classifier/test_accuracy': config.data.label_fraction}, f)


def test_run_sweep_records_skips_and_continues_after_failure(tmp_path):
  config = default.get_config()
  config.lock()
  specs = ['data.label_fraction=0.1,1.0', 'fixmatch.mu=1,7']
  fake = FakeTrain(fail_mu=7)
  records = sweep.run_sweep(config, str(tmp_path), specs, train_fn=fake)

  assert [c[2] for c in fake.calls] == [
      'label_fraction=0.1,mu=1',
      'label_fraction=0.1,mu=7',
      'label_fraction=1.0,mu=1',
      'label_fraction=1.0,mu=7',
  ]
  assert fake.calls[2][:2] == (1.0, 1)
  assert config.data.label_fraction == 1.0 and config.fixmatch.mu == 5
  assert [r['status'] for r in records] == ['done', 'failed', 'done', 'failed']
  assert records[1]['error'] == 'RuntimeError: out of memory'
  assert records[0]['overrides'] == {
      'data.label_fraction': 0.1,
      'fixmatch.mu': 1,
  }
  assert records[0]['workdir'] == str(tmp_path / 'label_fraction=0.1,mu=1')
  with open(tmp_path / 'sweep.json') as f:
    assert json.load(f) == json.loads(json.dumps(records))

  # Again: finished runs are skipped, the failed ones are retried.
  again = FakeTrain()
  records = sweep.run_sweep(config, str(tmp_path), specs, train_fn=again)
  assert [r['status'] for r in records] == [
      'skipped',
      'done',
      'skipped',
      'done',
  ]
  assert [c[1] for c in again.calls] == [7, 7]


def test_run_sweep_bad_grid_runs_nothing(tmp_path):
  fake = FakeTrain()
  with pytest.raises(sweep.SweepError, match='unknown config field'):
    sweep.run_sweep(
        default.get_config(),
        str(tmp_path / 's'),
        ['fixmatch.mu=1', 'nope=1'],
        train_fn=fake,
    )
  assert not fake.calls and not os.path.exists(tmp_path / 's')


@pytest.mark.slow
def test_real_sweep_trains_each_point_then_report_draws_the_curve(tmp_path):
  """Two tiny supervised runs on the bundled digits, then the report."""
  from ssl_jax.tools import report  # pylint: disable=g-import-not-at-top
  from tests import helpers  # pylint: disable=g-import-not-at-top

  config = helpers.tiny_config(**{
      'method': 'supervised',
      'dataset': 'sklearn_digits',
      'batch_size': 32,
      'num_epochs': 1,
      'optimizer.warmup_epochs': 0.0,
      'probe.enabled': False,
      'evals.knn.enabled': False,
      'evals.embedding.enabled': False,
  })
  records = sweep.run_sweep(
      config, str(tmp_path), ['data.label_fraction=0.25,1.0']
  )
  assert [r['status'] for r in records] == ['done', 'done']
  for r in records:
    with open(os.path.join(r['workdir'], 'results.json')) as f:
      assert 0 <= json.load(f)['classifier/test_accuracy'] <= 1
  out = str(tmp_path / 'report.md')
  text = report.build_report(report.find_runs([str(tmp_path)]), out)
  assert text.count('| supervised |') == 2
  assert any(f.endswith('.png') for f in os.listdir(tmp_path / 'report_files'))
