"""Barlow Twins on CIFAR-10: ResNet-18 (CIFAR stem), LARS, batch 512, 1000 epochs.

  python main.py --config=configs/barlow_twins_cifar10.py --workdir=/tmp/bt_c10 \
      --config.data_dir=DIR

Asymmetric views as in the paper (blur 1.0 / 0.1, solarize 0.0 / 0.2), a
3-layer 2048-wide projector, lambda 0.0051. Expected: linear probe around
85-90 % after 1000 epochs (published ResNet-18 CIFAR-10 reproductions).
"""

from configs import default


def get_config():
  c = default.get_config()
  c.method = 'barlow_twins'
  c.encoder = 'resnet18'
  c.dataset = 'cifar10'
  c.image_size = 32
  c.batch_size = 512
  c.num_epochs = 1000
  c.learning_rate = 0.2
  c.optimizer.lr_scaling = 'linear'
  c.optimizer.weight_decay = 1.5e-6
  c.projector.hidden_dims = (2048, 2048)
  c.projector.out_dim = 2048
  c.barlow.lambd = 0.0051
  for view, blur, solarize in ((c.augment.view1, 1.0, 0.0),
                               (c.augment.view2, 0.1, 0.2)):
    view.crop_scale = (0.2, 1.0)
    view.jitter_strength = 0.5
    view.blur_prob = blur
    view.solarize_prob = solarize
  return c
