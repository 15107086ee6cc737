"""Barlow Twins on STL-10 (unlabelled+train) at 96 px with a ResNet-18.

  python main.py --config=configs/barlow_twins_stl10.py --workdir=/tmp/bt_stl \
      --config.data_dir=DIR

Paper recipe scaled to STL-10: LARS, batch 512, biases and norm parameters
at 0.0048 / 0.2 of the weights' learning rate, 3x4096 projector, asymmetric
views (blur 1.0 / 0.1, solarize 0.0 / 0.2). Expected: linear probe around
80-85 % after 500 epochs.
"""

from ssl_jax.configs import default


def get_config():
  c = default.get_config()
  c.method = 'barlow_twins'
  c.encoder = 'resnet18'
  c.model.cifar_stem = False
  c.dataset = 'stl10'
  c.data.train_split = 'unlabelled+train'
  c.image_size = 96
  c.batch_size = 512
  c.num_epochs = 500
  c.learning_rate = 0.2
  c.optimizer.lr_scaling = 'linear'
  c.optimizer.weight_decay = 1.5e-6
  c.optimizer.bias_norm_lr_scale = 0.0048 / 0.2
  c.projector.hidden_dims = (4096, 4096)
  c.projector.out_dim = 4096
  c.probe.batch_size = 256
  for view, blur, solarize in (
      (c.augment.view1, 1.0, 0.0),
      (c.augment.view2, 0.1, 0.2),
  ):
    view.blur_prob = blur
    view.solarize_prob = solarize
  return c
