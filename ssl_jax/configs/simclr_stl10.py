"""SimCLR on STL-10: ResNet-18 at 96 px on unlabelled+train, LARS, 500 epochs.

  python main.py --config=configs/simclr_stl10.py --workdir=/tmp/simclr_stl10 \
      --config.data_dir=DIR

Prepare DIR once with ``python -m ssl_jax.tools.prepare_data --dataset=stl10
--data_dir=DIR`` (downloads 2.5 GB). The 105,000 pretraining images are
decoded once into host RAM (2.9 GB; set ``--config.data.cache=False`` to
decode per batch). Expected: linear probe around 80-85 % on the 8,000 test
images (ResNet-18, 500 epochs, batch 512, one 8-GPU machine: about a day).
"""

from ssl_jax.configs import default


def get_config():
  c = default.get_config()
  c.encoder = 'resnet18'
  c.model.cifar_stem = False
  c.dataset = 'stl10'
  c.data.train_split = 'unlabelled+train'
  c.image_size = 96
  c.batch_size = 512
  c.num_epochs = 500
  c.learning_rate = 1.0
  c.optimizer.lr_scaling = 'linear'
  c.temperature = 0.2
  c.probe.batch_size = 256
  for view in (c.augment.view1, c.augment.view2):
    view.jitter_strength = 1.0
    view.blur_prob = 0.5
  return c
