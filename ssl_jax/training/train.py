"""The training loop, then the final evaluation: files, logs, devices."""

import functools
import json
import os
import resource
import time
from typing import Any

from absl import logging
from clu import parameter_overview
import jax
import ml_collections
import numpy as np

from ssl_jax import errors
from ssl_jax import methods
from ssl_jax.data import input_pipeline
from ssl_jax.data import paths
from ssl_jax.evaluation import context
from ssl_jax.evaluation import evaluators
from ssl_jax.evaluation import knn
from ssl_jax.evaluation import probe
from ssl_jax.training import checkpoint
from ssl_jax.training import guards
from ssl_jax.training import run as run_lib
from ssl_jax.training import summary
from ssl_jax.training import validate

# Scalars the loop adds itself; the rest come from the method's step.
_LOOP_SCALARS = (
    'steps_per_second',
    'images_per_second',
    'epoch',
    'learning_rate',
    'data/skipped_images',
)


def write_json(path: str, obj: Any) -> None:
  paths.write_atomic(path, json.dumps(obj, indent=2, sort_keys=True))


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    allow_config_change: bool = False,
) -> dict[str, float]:
  """Pretrains (or resumes) in ``workdir``, then runs the final evaluation.

  Args:
    config: the experiment config.
    workdir: where checkpoints, TensorBoard summaries, the config and
      ``results.json`` go.
    allow_config_change: resume even if structural fields differ from the
      workdir's saved config (the arrays must still match).

  Returns:
    The results dict also written to ``workdir/results.json``.
  """
  start = time.time()
  validate.validate(config, jax.device_count(), jax.process_count())
  is_chief = jax.process_index() == 0
  if is_chief:
    checkpoint.make_workdir(workdir)
    checkpoint.check_config(
        workdir,
        config,
        allow_config_change,
        methods.get(config.method).structural_fields,
    )
  run = run_lib.build(config)
  method, mesh = run.method, run.mesh
  train_split = run.load_train()
  data = method.prepare_data(config, train_split, run.load)
  steps_per_epoch = method.steps_per_epoch(config, data)
  if steps_per_epoch == 0:
    raise errors.DataError(
        f'split {config.data.train_split!r} has {len(data["train"])} images, '
        f'fewer than one batch (batch_size={config.batch_size}); lower '
        '--config.batch_size.'
    )
  num_steps = int(config.num_epochs * steps_per_epoch)
  logging.info(
      '%d devices, %d train images, %d steps/epoch, %d steps',
      jax.device_count(),
      len(data['train']),
      steps_per_epoch,
      num_steps,
  )

  if is_chief:
    checkpoint.save_config(workdir, config)
    _save_dataset_facts(workdir, run.dataset)
  schedule, tx = run.optimizer(steps_per_epoch)
  init_key, aug_key = jax.random.split(jax.random.key(config.seed))
  state = run.create_state(tx, init_key, data)
  num_params = int(parameter_overview.count_parameters(state.params))
  logging.info('%s: %d trainable parameters', config.method, num_params)
  random_init = jax.device_get(
      dict(zip(('params', 'batch_stats'), run.init_variables(init_key)))
      if config.init_from
      else {'params': state.params, 'batch_stats': state.batch_stats}
  )
  ckpt = checkpoint.Checkpointer(
      workdir, config.keep_checkpoints, config.keep_checkpoints_every
  )
  state = ckpt.restore_latest(state) or state
  first_step = int(state.step)
  if first_step:
    logging.info(
        'Resuming at step %d (lr %.5g)', first_step, float(schedule(first_step))
    )

  step_fn = run.compile_step(tx, schedule)
  aug_key = run.replicate(aug_key)
  writer = summary.create(workdir, just_logging=not is_chief)
  if first_step == 0:
    writer.write_hparams(_flat_hparams(config))
  make_batches = functools.partial(
      method.train_batches, config=config, data=data, sharding=run.data_sharding
  )
  epoch_start = method.epoch_start
  monitor_every = config.evals.knn.every_steps
  # Labels are needed: a folder without classes has no monitor.
  monitor = (
      _knn_monitor(run, train_split)
      if monitor_every and run.num_classes
      else None
  )
  batches = None
  pending, fetched, results, timer = [], [], {}, None
  last_log = (first_step, time.time())
  skipped = 0
  stop = guards.StopRequest()
  try:
    for step in range(first_step, num_steps):
      if epoch_start is not None and step % steps_per_epoch == 0:
        # A host hook (DeepCluster's clustering) that may change how batches are
        # drawn, so the batch stream restarts after it.
        if batches is not None:
          batches.close()
          batches = None
        hook_start = time.time()
        state, hook_metrics = epoch_start(
            state,
            step // steps_per_epoch,
            model=run.model,
            config=config,
            data=data,
            mesh=mesh,
        )
        state = run.replicate(state)
        if hook_metrics:
          writer.write_scalars(step, hook_metrics)
          results.update(
              {f'train/last_{k}': v for k, v in hook_metrics.items()}
          )
        logging.info(
            'epoch %d start hook: %s (%.1fs)',
            step // steps_per_epoch,
            hook_metrics,
            time.time() - hook_start,
        )
        last_log = (step, time.time())
      if batches is None:
        batches = make_batches(state=state, start_step=step)
      state, metrics = step_fn(state, next(batches), aug_key)
      pending.append(metrics)
      if timer is None:  # Steady-state throughput excludes the compiling step.
        jax.block_until_ready(state)
        timer = (step + 1, time.time())
      done = step + 1
      log_now = done % config.log_every_steps == 0 or done == num_steps
      save_now = done % config.checkpoint_every_steps == 0 or done == num_steps
      stop_now = stop.should_stop(synced=log_now or save_now)
      if log_now or save_now or stop_now:
        # Checked before any save, so a non-finite state is never checkpointed.
        new = jax.device_get(pending)
        skipped += guards.check_finite(new, done - len(new), config.nonfinite)
        fetched, pending = fetched + new, []
      if log_now:
        scalars = _interval_scalars(fetched)
        now = time.time()
        rate = (done - last_log[0]) / max(now - last_log[1], 1e-9)
        scalars['steps_per_second'] = rate
        scalars['images_per_second'] = rate * config.batch_size
        scalars['epoch'] = done / steps_per_epoch
        scalars['data/skipped_images'] = _skipped_images(data)
        # Every scalar to TensorBoard; the console gets this one short line.
        writer.write_scalars(done, scalars, log_keys=())
        logging.info(
            'step %d/%d  epoch %.2f  loss %.4f  lr %.3g  %.0f img/s  ETA %s',
            done,
            num_steps,
            done / steps_per_epoch,
            scalars.get('loss', float('nan')),
            scalars.get('learning_rate', float('nan')),
            scalars['images_per_second'],
            _hms((num_steps - done) / max(rate, 1e-9)),
        )
        fetched, last_log = [], (done, now)
        # The last interval's method metrics, whatever the method logs.
        results.update({
            f'train/final_{k}': v
            for k, v in scalars.items()
            if k not in _LOOP_SCALARS
        })
      if monitor is not None and (
          done % monitor_every == 0 or done == num_steps
      ):
        acc = monitor(state)
        writer.write_scalars(done, {'knn_monitor/val_accuracy': acc})
        results['train/last_knn_monitor_val_accuracy'] = acc
        logging.info(
            'step %d  kNN monitor (held-out train images) %.4f', done, acc
        )
      if save_now or stop_now:
        ckpt.save(done, state)
      if stop_now and done < num_steps:
        raise guards.Preempted(
            f'{stop_now} received: stopped after step {done}/{num_steps} and '
            f'saved a checkpoint in {workdir!r}; rerun the same command to '
            'resume.'
        )
  except BaseException:
    # Whatever stopped the loop, the pending save completes and logs are kept.
    if batches is not None:
      batches.close()
    try:
      ckpt.close()
    except checkpoint.CheckpointError:
      pass  # Already logged; the original error matters more.
    writer.flush()
    raise
  finally:
    stop.restore()
  if batches is not None:
    batches.close()
  ckpt.close()
  if timer is not None and num_steps > timer[0]:
    jax.block_until_ready(state)
    results['train/images_per_second'] = (
        (num_steps - timer[0]) * config.batch_size / (time.time() - timer[1])
    )
  results['train/num_params'] = num_params
  results['train/cpu_convolutions'] = run.config.cpu_convolutions
  results['train/wall_seconds'] = time.time() - start
  results['train/steps'] = num_steps
  results['train/first_step'] = first_step
  results['train/skipped_steps'] = skipped
  results['data/skipped_images'] = _skipped_images(data)
  # What data.host_crop and data.cache resolved to (both may be unset).
  results['data/host_crop'] = int(run.host_crop)
  results['data/cache_train'] = int(train_split.images is not None)
  results['train/failed_checkpoint_saves'] = ckpt.failed_saves
  results.update(_peak_memory())
  results['train/final_learning_rate'] = float(schedule(num_steps - 1))
  results['train/epochs'] = num_steps / steps_per_epoch
  writer.flush()

  results.update(
      _final_evaluation(run, state, random_init, train_split, workdir, writer)
  )
  # results.json and TensorBoard hold every figure; main.py prints a summary.
  writer.write_scalars(
      num_steps,
      {k: v for k, v in results.items() if isinstance(v, (int, float))},
      log_keys=(),
  )
  writer.close()
  if is_chief:
    write_json(os.path.join(workdir, 'results.json'), results)
  return results


def evaluation_context(
    run: run_lib.Run,
    workdir: str,
    variables: dict[str, Any],
    step: int,
    **kwargs,
) -> context.Context:
  """The evaluators' view of ``run``: its model, data and checkpoints.

  Args:
    run: the run.
    workdir: its directory.
    variables: the (replicated) variables evaluated.
    step: their checkpoint step.
    **kwargs: other :class:`context.Context` fields (``random_init``,
      ``writer``, ``train_split``).

  Returns:
    A context whose fine-tunes train through :func:`train_and_evaluate`.
  """
  return context.Context(
      config=run.config,
      workdir=workdir,
      model=run.model,
      variables=variables,
      mesh=run.mesh,
      load=run.load,
      step=step,
      host_crop=run.host_crop,
      train_fn=train_and_evaluate,
      restore=lambda s: run.restore_variables(workdir, s)[1],
      **kwargs,
  )


def _final_evaluation(
    run, state, random_init, train_split, workdir, writer
) -> dict[str, float]:
  """The method's own figures, then every evaluator ``config`` enables."""
  config, method = run.config, run.method
  results = {}
  if not run.num_classes:
    logging.warning(
        'dataset %r has no classes (no class folders): the evaluations, which '
        'need labels, are skipped.',
        config.dataset,
    )
    return results
  # FixMatch evaluates its EMA parameters; other methods the trained ones.
  variables = method.eval_variables(state)
  ctx = evaluation_context(
      run,
      workdir,
      variables,
      int(state.step),
      random_init=random_init,
      writer=writer,
      train_split=(
          train_split
          if config.data.probe_train_split == config.data.train_split
          and train_split.images is not None
          and not run.host_crop
          else None
      ),
  )
  if method.evaluate is not None:
    results.update(
        method.evaluate(
            run.model,
            variables,
            test_split=ctx.probe_test,
            config=config,
            mesh=run.mesh,
            num_classes=run.num_classes,
            class_names=run.class_names,
        )
    )
  start = time.time()
  results.update(evaluators.run(ctx))
  results['eval/wall_seconds'] = time.time() - start
  return results


def _knn_monitor(run: run_lib.Run, train_split):
  """``state -> kNN accuracy`` of held-out train images against a train bank.

  Only train images are used, so monitoring never looks at the test split.
  """
  config = run.config
  cfg = config.evals.knn
  split = (
      train_split
      if config.data.probe_train_split == config.data.train_split
      and train_split.labels is not None
      and (train_split.labels >= 0).all()
      else input_pipeline.labelled_only(
          run.load(config.data.probe_train_split, cache=None)
      )
  )
  perm = np.random.default_rng([config.seed, 17]).permutation(len(split))
  n_bank = min(cfg.monitor_bank, len(split) // 2)
  bank, queries = perm[:n_bank], perm[n_bank : n_bank + cfg.monitor_queries]
  images = split.read(np.concatenate([bank, queries]))['image']

  def monitor(state) -> float:
    x = probe.extract_features(
        run.model,
        run.method.eval_variables(state),
        images,
        image_size=config.image_size,
        batch_size=config.probe.batch_size,
        mesh=run.mesh,
    )
    return knn.knn_accuracy(
        x[:n_bank],
        split.labels[bank],
        x[n_bank:],
        split.labels[queries],
        num_classes=run.num_classes,
        k=cfg.k,
        temperature=cfg.temperature,
    )

  return monitor


def _save_dataset_facts(workdir: str, facts: dict[str, Any]) -> None:
  """Writes ``dataset.json``; refuses a resume whose classes were renumbered."""
  path = os.path.join(workdir, 'dataset.json')
  if paths.exists(path):
    with paths.open(path) as f:
      before = json.load(f).get('class_names', [])
    if list(before) != list(facts['class_names']):
      raise errors.DataError(
          f'the classes of the dataset changed since {workdir!r} was trained '
          f'({len(before)} then, {len(facts["class_names"])} now; labels would '
          'be renumbered): restore the class folders, or use a new --workdir.'
      )
  write_json(path, facts)


def _skipped_images(data: dict[str, Any]) -> int:
  """Bad records skipped so far in the training splits (``data.bad_images``)."""
  return sum(split.num_skipped for split in data.values())


def _interval_scalars(fetched: list[dict[str, Any]]) -> dict[str, float]:
  """Means of the method's metrics over the finite steps of a log interval."""
  good = [m for m in fetched if m['nonfinite'] == 0] or fetched
  out = {
      k: float(np.mean([m[k] for m in good]))
      for k in fetched[0]
      if k != 'nonfinite'
  }
  out['nonfinite_steps'] = float(sum(m['nonfinite'] for m in fetched))
  return out


def _flat_hparams(config) -> dict[str, Any]:
  flat = checkpoint.flatten(json.loads(config.to_json()))
  return {
      k: v if isinstance(v, (int, float, str, bool)) else str(v)
      for k, v in flat.items()
  }


def _peak_memory() -> dict[str, float]:
  """Peak host RSS of this process and, where the backend reports it, device memory."""
  out = {
      'train/peak_host_memory_mb': (
          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
      )
  }
  stats = jax.local_devices()[0].memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    out['train/peak_device_memory_mb'] = stats['peak_bytes_in_use'] / 2**20
  return out


def _hms(seconds: float) -> str:
  seconds = int(seconds)
  return f'{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}'
