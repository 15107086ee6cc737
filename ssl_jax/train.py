"""The training loop: the only module with side effects (files, logs, devices)."""

import functools
import json
import os
import resource
import time
from typing import Any

from absl import logging
from clu import metric_writers
from clu import periodic_actions
import jax
import ml_collections
import numpy as np

from ssl_jax import batching
from ssl_jax import checkpoint
from ssl_jax import evaluate
from ssl_jax import evaluators
from ssl_jax import guards
from ssl_jax import input_pipeline
from ssl_jax import knn
from ssl_jax import methods
from ssl_jax import optim
from ssl_jax import step as step_lib
from ssl_jax import validate

P = jax.sharding.PartitionSpec
# Scalars the loop adds itself; the rest come from the method's step.
_LOOP_SCALARS = ('steps_per_second', 'images_per_second', 'epoch',
                 'learning_rate', 'data/skipped_images')


# The compiled step lives in ssl_jax/step.py (no TensorFlow, clu or tfds, so
# benchmarks and accelerator images without them can use it); re-exported here.
make_mesh = step_lib.make_mesh
replicate = step_lib.replicate
train_step = step_lib.train_step
init_variables = step_lib.init_variables
create_state = step_lib.create_state
compile_train_step = step_lib.compile_train_step


def write_json(path: str, obj: Any) -> None:
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       allow_config_change: bool = False) -> dict[str, float]:
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
    checkpoint.check_config(workdir, config, allow_config_change)
  mesh = make_mesh()
  data_sharding = jax.sharding.NamedSharding(mesh, P('data'))
  info = input_pipeline.DATASETS[config.dataset]
  load = functools.partial(input_pipeline.load_split, config.dataset,
                           data_dir=config.data_dir, resize=config.data.resize,
                           channels=config.data.channels,
                           bad_images=config.data.bad_images)
  channels = config.data.channels or info['image_shape'][-1]

  train_split = load(config.data.train_split, cache=config.data.cache)
  method = methods.get(config.method)
  if (getattr(method, 'NEEDS_LABELS', False) and train_split.labels is not None
      and (train_split.labels < 0).any()):
    raise input_pipeline.DataError(
        f'method={config.method!r} needs labels, but data.train_split='
        f'{config.data.train_split!r} has unlabelled images; use a labelled '
        "split such as 'train'.")
  # The splits the method trains on ({'train': ...} unless it says otherwise).
  data = (method.prepare_data(config, train_split, load)
          if hasattr(method, 'prepare_data') else {'train': train_split})
  steps_per_epoch = (method.steps_per_epoch(config, data)
                     if hasattr(method, 'steps_per_epoch')
                     else len(data['train']) // config.batch_size)
  if steps_per_epoch == 0:
    raise input_pipeline.DataError(
        f'split {config.data.train_split!r} has {len(data["train"])} images, '
        f'fewer than one batch (batch_size={config.batch_size}); lower '
        '--config.batch_size.')
  num_steps = int(config.num_epochs * steps_per_epoch)
  logging.info('%d devices, %d train images, %d steps/epoch, %d steps',
               jax.device_count(), len(data['train']), steps_per_epoch,
               num_steps)

  if is_chief:
    checkpoint.save_config(workdir, config)
  model = method.build_model(config, info['num_classes'])
  schedule = optim.learning_rate_schedule(config, steps_per_epoch)
  tx = optim.make_optimizer(config, schedule)
  init_key, aug_key = jax.random.split(jax.random.key(config.seed))
  state = create_state(config, model, tx, init_key, channels, data)
  random_init = jax.device_get(
      dict(zip(('params', 'batch_stats'), init_variables(
          config, model, init_key, channels)))
      if config.init_from else
      {'params': state.params, 'batch_stats': state.batch_stats})
  state = replicate(state, mesh)
  ckpt = checkpoint.Checkpointer(workdir, config.keep_checkpoints,
                                config.keep_checkpoints_every)
  state = ckpt.restore_latest(state) or state
  first_step = int(state.step)
  if first_step:
    logging.info('Resuming at step %d (lr %.5g)', first_step,
                 float(schedule(first_step)))

  step_fn = compile_train_step(config, model, tx, schedule, mesh)
  aug_key = replicate(aug_key, mesh)
  writer = metric_writers.create_default_writer(
      workdir, just_logging=not is_chief, asynchronous=False)
  if first_step == 0:
    writer.write_hparams(_flat_hparams(config))
  progress = periodic_actions.ReportProgress(num_train_steps=num_steps,
                                             writer=writer, every_secs=60)
  make_batches = functools.partial(
      method.train_batches if hasattr(method, 'train_batches')
      else _default_batches, config=config, data=data, sharding=data_sharding)
  epoch_start = getattr(method, 'epoch_start', None)
  monitor_every = config.evals.knn.every_steps
  monitor = (_knn_monitor(config, method, model, mesh, train_split, load, info)
             if monitor_every else None)
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
            state, step // steps_per_epoch, model=model, config=config,
            data=data, mesh=mesh)
        state = replicate(state, mesh)
        if hook_metrics:
          writer.write_scalars(step, hook_metrics)
          results.update({f'train/last_{k}': v for k, v in hook_metrics.items()})
        logging.info('epoch %d start hook: %s (%.1fs)', step // steps_per_epoch,
                     hook_metrics, time.time() - hook_start)
        last_log = (step, time.time())
      if batches is None:
        batches = make_batches(state=state, start_step=step)
      state, metrics = step_fn(state, next(batches), aug_key)
      pending.append(metrics)
      if timer is None:  # Steady-state throughput excludes the compiling step.
        jax.block_until_ready(state)
        timer = (step + 1, time.time())
      done = step + 1
      progress(done)
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
        writer.write_scalars(done, scalars)
        logging.info('step %d/%d  epoch %.2f  loss %.4f  ETA %s', done, num_steps,
                     done / steps_per_epoch, scalars.get('loss', float('nan')),
                     _hms((num_steps - done) / max(rate, 1e-9)))
        fetched, last_log = [], (done, now)
        # The last interval's method metrics, whatever the method logs.
        results.update({f'train/final_{k}': v for k, v in scalars.items()
                        if k not in _LOOP_SCALARS})
      if monitor is not None and (done % monitor_every == 0 or done == num_steps):
        acc = monitor(state)
        writer.write_scalars(done, {'knn_monitor/val_accuracy': acc})
        results['train/last_knn_monitor_val_accuracy'] = acc
        logging.info('step %d  kNN monitor (held-out train images) %.4f', done,
                     acc)
      if save_now or stop_now:
        ckpt.save(done, state)
      if stop_now and done < num_steps:
        raise guards.Preempted(
            f'{stop_now} received: stopped after step {done}/{num_steps} and '
            f'saved a checkpoint in {workdir!r}; rerun the same command to '
            'resume.')
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
        (num_steps - timer[0]) * config.batch_size / (time.time() - timer[1]))
  results['train/wall_seconds'] = time.time() - start
  results['train/steps'] = num_steps
  results['train/first_step'] = first_step
  results['train/skipped_steps'] = skipped
  results['data/skipped_images'] = _skipped_images(data)
  results['train/failed_checkpoint_saves'] = ckpt.failed_saves
  results.update(_peak_memory())
  results['train/final_learning_rate'] = float(schedule(num_steps - 1))
  results['train/epochs'] = num_steps / steps_per_epoch
  writer.flush()

  results.update(_final_evaluation(config, method, model, state, random_init,
                                   train_split, load, mesh, info, workdir,
                                   writer))
  writer.write_scalars(num_steps, {k: v for k, v in results.items()
                                   if isinstance(v, (int, float))})
  writer.close()
  if is_chief:
    write_json(os.path.join(workdir, 'results.json'), results)
  return results


def _final_evaluation(config, method, model, state, random_init, train_split,
                      load, mesh, info, workdir, writer) -> dict[str, float]:
  """The method's own figures, then every evaluator ``config`` enables."""
  results = {}
  # FixMatch evaluates its EMA parameters; other methods the trained ones.
  variables = eval_variables(method, state)
  ctx = evaluators.Context(
      config=config, workdir=workdir, model=model, variables=variables,
      mesh=mesh, load=load, step=int(state.step), random_init=random_init,
      train_fn=train_and_evaluate, writer=writer,
      train_split=(train_split if config.data.probe_train_split ==
                   config.data.train_split and config.data.cache else None))
  if hasattr(method, 'evaluate'):
    results.update(method.evaluate(
        model, variables, test_split=ctx.probe_test, config=config, mesh=mesh,
        num_classes=info['num_classes'], class_names=info.get('class_names')))
  start = time.time()
  results.update(evaluators.run(ctx))
  results['eval/wall_seconds'] = time.time() - start
  return results


def eval_variables(method, state) -> dict[str, Any]:
  """The variables evaluations use: the method's (FixMatch's EMA) or the trained ones."""
  if hasattr(method, 'eval_variables'):
    return method.eval_variables(state)
  return {'params': state.params, 'batch_stats': state.batch_stats}


def _knn_monitor(config, method, model, mesh, train_split, load, info):
  """``state -> kNN accuracy`` of held-out train images against a train bank.

  Only train images are used, so monitoring never looks at the test split.
  """
  cfg = config.evals.knn
  split = (train_split if config.data.probe_train_split == config.data.train_split
           and train_split.labels is not None and (train_split.labels >= 0).all()
           else load(config.data.probe_train_split, cache=True))
  perm = np.random.default_rng([config.seed, 17]).permutation(len(split))
  n_bank = min(cfg.monitor_bank, len(split) // 2)
  bank, queries = perm[:n_bank], perm[n_bank:n_bank + cfg.monitor_queries]
  images = split.read(np.concatenate([bank, queries]))['image']

  def monitor(state) -> float:
    variables = eval_variables(method, state)
    x = evaluate.extract_features(model, variables, images,
                                  image_size=config.image_size,
                                  batch_size=config.probe.batch_size, mesh=mesh)
    return knn.knn_accuracy(x[:n_bank], split.labels[bank], x[n_bank:],
                            split.labels[queries],
                            num_classes=info['num_classes'], k=cfg.k,
                            temperature=cfg.temperature)

  return monitor


def _skipped_images(data: dict[str, Any]) -> int:
  """Bad records skipped so far in the training splits (``data.bad_images``)."""
  return sum(getattr(split, 'num_skipped', 0) for split in data.values())


def _interval_scalars(fetched: list[dict[str, Any]]) -> dict[str, float]:
  """Means of the method's metrics over the finite steps of a log interval."""
  good = [m for m in fetched if m['nonfinite'] == 0] or fetched
  out = {k: float(np.mean([m[k] for m in good])) for k in fetched[0]
         if k != 'nonfinite'}
  out['nonfinite_steps'] = float(sum(m['nonfinite'] for m in fetched))
  return out


def _default_batches(*, state, start_step, config, data, sharding):
  del state
  return batching.train_batches(
      data['train'], seed=config.seed, batch_size=config.batch_size,
      start_step=start_step, sharding=sharding, prefetch=config.data.prefetch)


def _flat_hparams(config) -> dict[str, Any]:
  flat = checkpoint.flatten(json.loads(config.to_json()))
  return {k: v if isinstance(v, (int, float, str, bool)) else str(v)
          for k, v in flat.items()}


def _peak_memory() -> dict[str, float]:
  """Peak host RSS of this process and, where the backend reports it, device memory."""
  out = {'train/peak_host_memory_mb':
             resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
  stats = jax.local_devices()[0].memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    out['train/peak_device_memory_mb'] = stats['peak_bytes_in_use'] / 2**20
  return out


def _hms(seconds: float) -> str:
  seconds = int(seconds)
  return f'{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}'
