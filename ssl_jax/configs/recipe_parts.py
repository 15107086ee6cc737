"""Settings several reference recipes share, written once for their configs.

solo-learn's (vturrisi/solo-learn @ 9187ea39c2c3): its LARS
(``solo/utils/lars.py``: ``clip_lr``, eta 0.02, biases and norms excluded)
and its views (``scripts/pretrain/*/augmentations/*.yaml``: torchvision's
ColorJitter 0.4 / 0.4 / 0.2 / 0.1 and bicubic RandomResizedCrop), and the
per-channel mean and std that the references' data pipelines normalise by
(``solo/data/pretrain_dataloader.py``; ImageNet's also in DINO and MoCo v3).
"""

import ml_collections

CIFAR10_MEAN_STD = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def solo_learn_lars(c: ml_collections.ConfigDict) -> None:
  """Sets solo-learn's LARS: its form with ``clip_lr``, trust coefficient 0.02.

  Args:
    c: the experiment config (its ``optimizer.name`` stays ``'lars'``).
  """
  c.optimizer.trust_coefficient = 0.02
  c.optimizer.lars_variant = 'solo_learn'
  c.optimizer.clip_lr = True


def torchvision_view(
    view: ml_collections.ConfigDict,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.2,
    hue: float = 0.1,
) -> None:
  """Sets a view to torchvision's ops: ColorJitter(b, c, s, h), bicubic crops.

  Args:
    view: an ``augment.view_config``.
    brightness: ColorJitter's brightness magnitude.
    contrast: its contrast magnitude.
    saturation: its saturation magnitude.
    hue: its hue magnitude.
  """
  view.color_ops = 'torchvision'
  view.crop_interpolation = 'bicubic'
  view.brightness, view.contrast = brightness, contrast
  view.saturation, view.hue = saturation, hue


def normalize(
    c: ml_collections.ConfigDict,
    mean_std: tuple[tuple[float, ...], tuple[float, ...]],
) -> None:
  """Sets the encoder's input normalisation (``model.input_mean``/``std``).

  Args:
    c: the experiment config.
    mean_std: ``(mean, std)`` per channel, e.g. :data:`CIFAR10_MEAN_STD`.
  """
  c.model.input_mean, c.model.input_std = mean_std


def imagenet_folder(
    c: ml_collections.ConfigDict, image_size: int = 224
) -> None:
  """Sets ImageNet read from a folder in its layout, as the references read it.

  ``DIR/train/<wnid>/*.JPEG`` is pretrained on and probed; ``DIR/val/<wnid>/``
  is reported on. Each view's random-resized crop is cut on the host from the
  original image (the references' ``RandomResizedCrop`` of the decoded JPEG),
  and evaluation resizes to ``image_size / data.eval_crop_fraction`` and
  centre-crops (256 -> 224 at the default 0.875). For tfds ``imagenet2012``
  add ``--config.dataset=imagenet2012 --config.data.probe_test_split=validation``.

  Args:
    c: the experiment config.
    image_size: the side of the training views and of evaluation.
  """
  c.dataset = 'folder'
  c.image_size = image_size
  c.model.cifar_stem = False
  c.data.train_split = 'train'
  c.data.probe_train_split = 'train'
  c.data.probe_test_split = 'val'
  c.data.channels = 3
  c.data.host_crop = True
