"""MoCo v3 on CIFAR-10: ResNet-18 (CIFAR stem), LARS, batch 256, 1000 epochs.

  python main.py --config=configs/moco_v3_cifar10.py --workdir=/tmp/mocov3_c10 \
      --config.data_dir=DIR

Following solo-learn's CIFAR recipe (``scripts/pretrain/cifar/mocov3.yaml``):
a 4096-wide projector to 256 dimensions ending in BatchNorm without affine
parameters, a 4096-wide predictor, temperature 0.2 (the loss scaled by
2 T), the momentum encoder from 0.99 to 1 (cosine), LARS (trust coefficient
0.02) at 0.3 for batch 256 with weight decay 1e-6, asymmetric solarize
(0 / 0.2), no blur; crops from 0.2 of the image as in the BYOL config
(solo-learn's views crop from 0.08), and LARS without solo-learn's
``clip_lr``. Published for this recipe (solo-learn, ResNet-18, 1000
epochs): 93.10 % online linear; not yet measured here at that length.
"""

from ssl_jax.configs import default


def get_config():
  c = default.get_config()
  c.method = 'moco_v3'
  c.encoder = 'resnet18'
  c.dataset = 'cifar10'
  c.image_size = 32
  c.batch_size = 256
  c.num_epochs = 1000
  c.learning_rate = 0.3
  c.optimizer.lr_scaling = 'linear'
  c.optimizer.weight_decay = 1e-6
  c.optimizer.trust_coefficient = 0.02
  c.projector.hidden_dims = (4096,)
  c.projector.out_dim = 256
  c.projector.out_bn = True
  c.moco_v3.predictor_hidden_dims = (4096,)
  c.moco_v3.temperature = 0.2
  c.moco_v3.base_momentum = 0.99
  for view, solarize in ((c.augment.view1, 0.0), (c.augment.view2, 0.2)):
    view.crop_scale = (0.2, 1.0)
    view.jitter_strength = 0.5
    view.blur_prob = 0.0
    view.solarize_prob = solarize
  return c
