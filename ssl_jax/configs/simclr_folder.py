"""SimCLR on your own folder of images: ResNet-18 at 96 px, LARS, 200 epochs.

  python main.py --config=configs/simclr_folder.py --workdir=/tmp/simclr_folder \
      --config.data_dir=DIR

DIR holds one subfolder per split. ``DIR/train`` is pretrained on: images
directly in it are unlabelled; images inside ``DIR/train/CLASS/`` (at any
depth) are labelled by their class folder. With labels in ``DIR/train`` and
``DIR/test``, the linear probe, kNN and embedding metrics report on
``test``; a folder without classes trains and reports training figures only.
Use more splits with ``--config.data.train_split=unlabelled+train``.

Every image is centre-cropped and resized to 96 px as it is read (any size,
JPEG/PNG/TIFF/..., grayscale and RGBA become RGB), and the whole split is
decoded once into host RAM (96*96*3 bytes per image: 2.8 GB per 100,000; set
``--config.data.cache=False`` to decode each batch as it is needed, in
``data.workers`` processes).
An unreadable or non-image file stops the run naming it;
``--config.data.bad_images=skip`` skips and counts such files. Scale the
epochs to the folder: 200 epochs of 100,000 images at batch 512 is 39,000
steps.
"""

from ssl_jax.configs import default


def get_config():
  c = default.get_config()
  c.dataset = 'folder'
  c.encoder = 'resnet18'
  c.model.cifar_stem = False
  c.image_size = 96
  c.data.resize = 96
  c.data.channels = 3
  c.batch_size = 512
  c.num_epochs = 200
  c.learning_rate = 1.0
  c.optimizer.lr_scaling = 'linear'
  c.temperature = 0.2
  c.probe.batch_size = 256
  for view in (c.augment.view1, c.augment.view2):
    view.jitter_strength = 1.0
    view.blur_prob = 0.5
  return c
