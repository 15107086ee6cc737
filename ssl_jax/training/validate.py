"""Config validation before anything is compiled or read: one-line errors."""

import difflib
import json

import ml_collections

from ssl_jax import errors
from ssl_jax import methods
from ssl_jax import models
from ssl_jax.data import augment
from ssl_jax.data import folder
from ssl_jax.data import host_crop
from ssl_jax.data import input_pipeline
from ssl_jax.data import paths
from ssl_jax.evaluation import probe
from ssl_jax.models import conv
from ssl_jax.models import vit
from ssl_jax.training import checkpoint
from ssl_jax.training import optim

ConfigError = errors.ConfigError


def _check(ok: bool, message: str) -> None:
  if not ok:
    raise ConfigError(message)


def _check_one_of(field: str, value, choices: tuple[str, ...]) -> None:
  _check(value in choices, f'{field}={value!r}; use one of {choices}.')


def check_fields(
    config: ml_collections.ConfigDict, reference: ml_collections.ConfigDict
) -> None:
  """Rejects fields ``reference`` lacks (typos in a config file) and wrong types.

  Overrides on the command line are type-checked by ml_collections; a config
  file can add fields and set any type, so this compares it with the defaults.

  Args:
    config: the experiment config.
    reference: the config holding every field (``configs/default.py``).
  """
  ref, new = (checkpoint.flatten(c.to_dict()) for c in (reference, config))
  for name, value in new.items():
    if name not in ref:
      close = difflib.get_close_matches(name, list(ref), n=1)
      raise ConfigError(
          f'unknown config field {name!r}'
          f'{f" (did you mean {close[0]!r}?)" if close else ""}; every field '
          'is listed in configs/default.py.'
      )
    want = ref[name]
    if want is None or value is None:
      continue
    ok = (
        isinstance(value, type(want))
        or (isinstance(want, float) and isinstance(value, int))
        or (
            isinstance(want, (tuple, list)) and isinstance(value, (tuple, list))
        )
    )
    if isinstance(value, bool) and not isinstance(want, bool):
      ok = False
    _check(
        ok,
        f'{name}={json.dumps(value, default=str)} has type '
        f'{type(value).__name__}; it must be a {type(want).__name__} like '
        f'its default {json.dumps(want, default=str)}.',
    )


def _check_loose(data_dir: str, split: str) -> None:
  """Raises where a labelled dataset's evaluation split has no class folders.

  ImageNet's validation images come as one loose folder, their labels in a
  separate file; evaluated as they are, every one would count as unlabelled.

  Args:
    data_dir: the dataset folder.
    split: an evaluation split of it.

  Raises:
    ConfigError: the split's images are all loose.
  """
  listing = folder.list_split(paths.join(data_dir, split))
  if listing.paths and not any(listing.classes):
    raise ConfigError(
        f'split {split!r} of data_dir={data_dir!r} holds'
        f' {len(listing.paths)} loose images and no class folders, so none'
        f' is labelled: move each into {split}/<class>/ (ImageNet: the'
        " devkit's validation labels, e.g. the widely used valprep.sh,"
        ' sort val/ into val/<wnid>/), or name a labelled split in'
        ' --config.data.probe_test_split.'
    )


def validate(
    config: ml_collections.ConfigDict, num_devices: int, num_processes: int = 1
) -> None:
  """Raises :class:`ConfigError` on the first invalid field.

  Args:
    config: the experiment config.
    num_devices: devices the global batch is split over.
    num_processes: processes the global batch is split over.
  """
  _check(
      config.method in methods.METHODS,
      f'method={config.method!r} is not registered; use one of '
      f'{sorted(methods.METHODS)}.',
  )
  _check(
      config.encoder in models.ENCODERS,
      f'encoder={config.encoder!r} is not registered; use one of '
      f'{sorted(models.ENCODERS)}.',
  )
  _check(
      isinstance(config.num_epochs, (int, float)) and config.num_epochs > 0,
      f'num_epochs={config.num_epochs!r} must be > 0 (fractions are allowed).',
  )
  for name in (
      'image_size',
      'batch_size',
      'log_every_steps',
      'checkpoint_every_steps',
      'keep_checkpoints',
      'probe.batch_size',
  ):
    value = config[name] if '.' not in name else config.probe.batch_size
    _check(
        isinstance(value, int) and value > 0,
        f'{name}={value!r} must be a positive integer.',
    )
  _check(
      config.learning_rate > 0,
      f'learning_rate={config.learning_rate!r} must be > 0.',
  )
  for n in (num_devices, num_processes):
    _check(
        config.batch_size % n == 0,
        f'batch_size={config.batch_size} is not divisible by the {n} '
        f'{"devices" if n == num_devices else "processes"}; use a multiple '
        f'of {n}, e.g. {max(n, config.batch_size // n * n)}.',
    )
  _check(
      config.probe.batch_size % num_devices == 0,
      f'probe.batch_size={config.probe.batch_size} is not divisible by the '
      f'{num_devices} devices; use a multiple of {num_devices}.',
  )
  optim.check_config(config.optimizer)
  probe.check_config(config.probe)
  _check(
      config.optimizer.warmup_epochs >= 0,
      f'optimizer.warmup_epochs={config.optimizer.warmup_epochs} must be >= 0.',
  )
  _check_one_of('cpu_convolutions', config.cpu_convolutions, conv.CONVOLUTIONS)
  _check(
      config.dtype in ('float32', 'bfloat16'),
      f"dtype={config.dtype!r} must be 'float32' or 'bfloat16'.",
  )
  _check(
      config.nonfinite in ('stop', 'skip'),
      f"nonfinite={config.nonfinite!r} must be 'stop' or 'skip'.",
  )
  _check(
      0 < config.probe.val_fraction < 1,
      f'probe.val_fraction={config.probe.val_fraction!r} must be in (0, 1).',
  )
  try:  # An unknown name, or a folder that is missing or holds no image.
    info = input_pipeline.dataset_info(
        config.dataset, config.data_dir, config.data.classes
    )
  except errors.DataError as e:
    raise ConfigError(str(e)) from None
  shape = info['image_shape']
  method = methods.get(config.method)
  _check(
      not (config.data.host_crop and method.host_views is None),
      f'data.host_crop=True: method {config.method!r} crops on device only;'
      ' set --config.data.host_crop=False and --config.data.resize=SIDE.',
  )
  _check(
      0 < config.data.eval_crop_fraction <= 1,
      f'data.eval_crop_fraction={config.data.eval_crop_fraction!r} must be'
      ' in (0, 1] (0.875: 256 -> 224).',
  )
  _check(
      config.data.memory_budget_gb >= 0,
      f'data.memory_budget_gb={config.data.memory_budget_gb!r} must be >= 0'
      " (0: half of this machine's RAM).",
  )
  host = host_crop.resolve(
      config.data.host_crop,
      shape,
      config.image_size,
      config.data.resize,
      method.host_views is not None,
  )
  if config.dataset == 'folder':
    needed = [config.data.train_split]
    if info['num_classes']:  # The evaluations are skipped without classes.
      needed += [config.data.probe_train_split, config.data.probe_test_split]
    for name in '+'.join(needed).split('+'):
      _check(
          name.strip() in info['splits'],
          f'split {name.strip()!r} is not a folder in data_dir='
          f'{config.data_dir!r} (it holds {sorted(info["splits"])}); name '
          'existing split folders in --config.data.*_split.',
      )
    if info['num_classes']:
      for name in config.data.probe_test_split.split('+'):
        _check_loose(config.data_dir, name.strip())
  _check(
      config.data.channels or shape[2],
      f'dataset={config.dataset!r} mixes grayscale and colour images; set '
      '--config.data.channels=3 (or 1).',
  )
  side = config.data.resize or (0 if None in shape[:2] else min(shape[:2]))
  # Host crops resize every crop and evaluation view to image_size.
  side = config.image_size if host else side
  _check(
      side > 0,
      f'dataset={config.dataset!r} has images of mixed sizes; '
      'set --config.data.resize=SIDE.',
  )
  _check(
      config.image_size <= side,
      f'image_size={config.image_size} is larger than the {config.dataset} '
      f'images ({side} px); use --config.image_size={side} or less, or '
      f'--config.data.resize={config.image_size}.',
  )
  _check(
      config.keep_checkpoints_every % config.checkpoint_every_steps == 0,
      f'keep_checkpoints_every={config.keep_checkpoints_every} is not a '
      f'multiple of checkpoint_every_steps={config.checkpoint_every_steps}, '
      'so no checkpoint would be kept; use a multiple.',
  )
  _check(
      config.data.channels in (0, 1, 3),
      f'data.channels={config.data.channels!r} must be 0 (keep), 1 or 3.',
  )
  _check(
      config.data.bad_images in ('error', 'skip'),
      f"data.bad_images={config.data.bad_images!r} must be 'error' or 'skip'.",
  )
  _check(
      config.data.workers >= 0,
      f'data.workers={config.data.workers!r} must be >= 0 (0: one per core).',
  )
  _check(
      config.data.labels_per_class >= 0,
      f'data.labels_per_class={config.data.labels_per_class!r} must be >= 0.',
  )
  _check(
      0 < config.data.label_fraction <= 1,
      f'data.label_fraction={config.data.label_fraction!r} must be in (0, 1].',
  )
  _check(
      isinstance(config.model.patch_size, int) and config.model.patch_size > 0,
      f'model.patch_size={config.model.patch_size!r} must be a positive'
      ' integer.',
  )
  mean, std = tuple(config.model.input_mean), tuple(config.model.input_std)
  _check(
      len(mean) == len(std)
      and len(mean) in (0, 1, 3)
      and min(std, default=1) > 0,
      f'model.input_mean={mean} and model.input_std={std} must both be empty'
      ' or give one value per channel (1 or 3), with every std > 0.',
  )
  _check_one_of(
      'model.position_embedding',
      config.model.position_embedding,
      vit.POSITION_EMBEDDINGS,
  )
  _check_one_of('model.patch_init', config.model.patch_init, vit.PATCH_INITS)
  methods.get(config.method).check_config(config)
  train_size = config.augment.train_size
  _check(
      isinstance(train_size, int) and 0 <= train_size <= side,
      f'augment.train_size={train_size!r} must be 0 (use image_size) or a '
      f'side in [1, {side}].',
  )
  view_side = train_size or config.image_size
  for view in ('view1', 'view2'):
    augment.check_view(f'augment.{view}', config.augment[view], view_side)
  multiple = models.input_multiple(config)
  for name, value in (
      ('image_size', config.image_size),
      ('augment.train_size', view_side),
  ):
    _check(
        value % multiple == 0,
        f'{name}={value} is not a multiple of model.patch_size={multiple};'
        f' choose a patch size that divides it (encoder={config.encoder!r}).',
    )
