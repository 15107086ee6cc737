"""Few-label fine-tuning and transfer, run through the one training loop.

A fine-tune is a supervised run (``method='supervised'``) that starts from the
evaluated run's encoder (``init_from``) with a new head, on a class-balanced
subset of the labels chosen by seed, in its own workdir below
``WORKDIR/eval/``. It therefore checkpoints, resumes and shards like any run,
and a finished one is not repeated when the evaluation is rerun. Transfer
probes the frozen encoder on another dataset, resized to the encoder's input
and converted to its channels, and optionally fine-tunes on it.
"""

import json
import os
from typing import Any, Iterator

from absl import logging
import jax
import ml_collections
import numpy as np

from ssl_jax.data import input_pipeline
from ssl_jax.evaluation import probe
from ssl_jax.evaluation.context import Context


def _settings(cfg: ml_collections.ConfigDict) -> list[tuple[str, float, int]]:
  """``(name, label_fraction, labels_per_class)`` of every few-label setting."""
  out = [(f'frac={f:g}', float(f), 0) for f in cfg.label_fractions]
  return out + [(f'per_class={n}', 1.0, int(n)) for n in cfg.labels_per_class]


def supervised_config(
    source: ml_collections.ConfigDict,
    *,
    workdir: str,
    num_steps: int,
    num_labelled: int,
    seed: int,
    cfg: ml_collections.ConfigDict,
    batch_size: int,
) -> ml_collections.ConfigDict:
  """The config of a supervised run that fine-tunes ``workdir``'s encoder.

  Args:
    source: the evaluated run's config (encoder, views, resolution are kept).
    workdir: the evaluated run's directory (``init_from``).
    num_steps: optimisation steps of the fine-tune.
    num_labelled: images in its labelled subset (sets epochs and batch).
    seed: picks the subset, the head init and the data order.
    cfg: ``evals.finetune`` (optimiser, LR, dropout).
    batch_size: the wanted batch (capped at the subset, a device multiple).

  Returns:
    A new config; ``source`` is not modified.
  """
  c = ml_collections.ConfigDict(json.loads(source.to_json()))
  devices = jax.device_count()
  c.batch_size = max(
      devices, min(batch_size, num_labelled) // devices * devices
  )
  c.method, c.init_from, c.seed = 'supervised', os.path.abspath(workdir), seed
  c.data.train_split = c.data.probe_train_split
  c.num_epochs = num_steps / max(1, num_labelled // c.batch_size)
  c.optimizer.name, c.learning_rate = cfg.optimizer, cfg.learning_rate
  c.optimizer.lr_scaling, c.optimizer.weight_decay = 'none', cfg.weight_decay
  c.optimizer.warmup_epochs = 0.05 * c.num_epochs
  c.model.dropout = cfg.dropout
  c.probe.enabled = False
  for name in c.evals:
    c.evals[name].enabled = False
  c.evals.knn.every_steps = 0
  c.log_every_steps = max(1, min(c.log_every_steps, num_steps // 5))
  c.checkpoint_every_steps, c.keep_checkpoints = num_steps, 1
  c.keep_checkpoints_every = 0
  return c


def _train(ctx: Context, config, workdir) -> dict[str, Any]:
  path = os.path.join(workdir, 'results.json')
  if os.path.exists(path):
    logging.info('Fine-tune %s finished before; reusing its results.', workdir)
    with open(path) as f:
      return json.load(f)
  return ctx.train_fn(config, workdir)


def finetune(ctx: Context) -> Iterator[tuple[str, Any]]:
  """Fine-tunes on each label setting and seed; mean and std over seeds.

  With ``evals.finetune.frozen``, also probes the frozen features on the very
  same labelled subset, for the frozen-versus-fine-tuned comparison.

  Args:
    ctx: the evaluation context (``train_fn`` must be set).

  Yields:
    ``finetune/{setting}/test_accuracy_{mean,std}`` (and per seed), and
    ``frozen/{setting}/...`` likewise.
  """
  cfg, config = ctx.config.evals.finetune, ctx.config
  labels = ctx.probe_train.label_array()
  for name, fraction, per_class in _settings(cfg):
    tuned, frozen = [], []
    for seed in cfg.seeds:
      idx = input_pipeline.labelled_indices(labels, fraction, seed, per_class)
      ft = supervised_config(
          config,
          workdir=ctx.workdir,
          num_steps=cfg.num_steps,
          num_labelled=len(idx),
          seed=seed,
          cfg=cfg,
          batch_size=cfg.batch_size,
      )
      ft.data.label_fraction, ft.data.labels_per_class = fraction, per_class
      workdir = os.path.join(ctx.out_dir, 'finetune', name, f'seed={seed}')
      logging.info(
          'Fine-tune %s seed %d: %d labelled images, %d steps',
          name,
          seed,
          len(idx),
          cfg.num_steps,
      )
      acc = _train(ctx, ft, workdir)['classifier/test_accuracy']
      tuned.append(acc)
      yield f'finetune/{name}/seed={seed}/test_accuracy', acc
      if cfg.frozen:
        fit = probe.linear_probe(
            ctx.train_features[idx],
            labels[idx],
            ctx.test_features,
            ctx.probe_test.labels,
            num_classes=ctx.info['num_classes'],
            config=config.probe,
            seed=seed,
            prefix='p/',
        )
        frozen.append(fit['p/test_accuracy'])
        yield f'frozen/{name}/seed={seed}/test_accuracy', frozen[-1]
    yield f'finetune/{name}/num_labelled', len(idx)
    for prefix, accs in (('finetune', tuned), ('frozen', frozen)):
      if accs:
        yield f'{prefix}/{name}/test_accuracy_mean', float(np.mean(accs))
        yield f'{prefix}/{name}/test_accuracy_std', float(np.std(accs))


def parse_target(spec: str) -> tuple[str, str, str]:
  """``'name'`` or ``'name:train_split:test_split'`` -> the three parts."""
  parts, depth, current = [], 0, ''
  for ch in spec:  # Colons inside [...] belong to tfds slices.
    depth += {'[': 1, ']': -1}.get(ch, 0)
    if ch == ':' and depth == 0:
      parts.append(current)
      current = ''
    else:
      current += ch
  parts.append(current)
  if len(parts) == 1:
    return parts[0], 'train', 'test'
  if len(parts) != 3:
    raise input_pipeline.DataError(
        f'evals.transfer.targets entry {spec!r}: use NAME or '
        'NAME:TRAIN_SPLIT:TEST_SPLIT.'
    )
  return parts[0], parts[1], parts[2]


def transfer(ctx: Context) -> Iterator[tuple[str, Any]]:
  """Probes (and fine-tunes) the encoder on each target of ``evals.transfer``.

  A target that cannot be loaded (not prepared offline, unknown name) yields
  ``transfer/{name}/error`` with the fix, and the next target still runs.

  Args:
    ctx: the evaluation context.

  Yields:
    ``transfer/{name}/linear_probe/...`` and ``transfer/{name}/finetune/
    test_accuracy`` figures.
  """
  cfg, config = ctx.config.evals.transfer, ctx.config
  channels = (
      config.data.channels
      or input_pipeline.dataset_info(config.dataset, config.data_dir)[
          'image_shape'
      ][-1]
  )
  data_dir = cfg.data_dir or config.data_dir
  for spec in cfg.targets:
    name, train_name, test_name = parse_target(spec)
    try:
      info = input_pipeline.dataset_info(name, data_dir)
      load = lambda split, n=name: input_pipeline.load_split(  # pylint: disable=g-long-lambda
          n,
          split,
          data_dir=data_dir,
          cache=None,
          resize=config.image_size,
          channels=channels,
          bad_images=config.data.bad_images,
          workers=config.data.workers,
      )
      train, test = load(train_name), load(test_name)
    except input_pipeline.DataError as e:
      # A target is read from evals.transfer.data_dir, which main.py and the
      # evaluate tool both take as --config.evals.transfer.data_dir.
      message = str(e).replace(
          '--config.data_dir=', '--config.evals.transfer.data_dir='
      )
      logging.error('transfer to %s: %s', name, message)
      yield f'transfer/{name}/error', message
      continue
    fit = probe.linear_probe(
        ctx.features(train.images),
        train.labels,
        ctx.features(test.images),
        test.labels,
        num_classes=info['num_classes'],
        config=config.probe,
        seed=config.seed,
        prefix=f'transfer/{name}/linear_probe/',
    )
    yield from (
        (k, v)
        for k, v in fit.items()
        if '/test_f1/' not in k
        and '/test_precision/' not in k
        and '/test_recall/' not in k
    )
    yield f'transfer/{name}/num_train', len(train)
    if cfg.finetune:
      ft = supervised_config(
          config,
          workdir=ctx.workdir,
          num_steps=cfg.finetune_steps,
          num_labelled=len(train),
          seed=config.seed,
          cfg=config.evals.finetune,
          batch_size=config.evals.finetune.batch_size,
      )
      ft.dataset, ft.data_dir, ft.data.resize, ft.data.channels = (
          name,
          data_dir,
          config.image_size,
          channels,
      )
      ft.data_dir = cfg.data_dir or config.data_dir
      ft.data.train_split = ft.data.probe_train_split = train_name
      ft.data.probe_test_split = test_name
      ft.data.label_fraction, ft.data.labels_per_class = 1.0, 0
      res = _train(ctx, ft, os.path.join(ctx.out_dir, 'transfer', name))
      yield (
          f'transfer/{name}/finetune/test_accuracy',
          res['classifier/test_accuracy'],
      )
