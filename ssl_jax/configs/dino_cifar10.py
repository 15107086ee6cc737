"""DINO on CIFAR-10: ResNet-18 (CIFAR stem), LARS, batch 256, 1000 epochs.

  python main.py --config=configs/dino_cifar10.py --workdir=/tmp/dino_c10 \
      --config.data_dir=DIR

Following solo-learn's CIFAR recipe (``scripts/pretrain/cifar/dino.yaml``): a
2048-wide head to a 256-d bottleneck and 4096 prototypes, the teacher's
momentum from 0.9995 to 1 (cosine), LARS (trust coefficient 0.02) at 0.3
for batch 256 with weight decay 1e-6, asymmetric solarize (0 / 0.2), no
blur, crops from 0.2 of the image (solo-learn's: 0.08). The student's
temperature is 0.1 and the teacher's is warmed from 0.04 to 0.07 over 50
epochs (DINO's warm-up, lengthened for the 1000-epoch run). To the two
32 px global crops it adds DINO's multi-crop, which solo-learn's CIFAR
recipe leaves out: 4 local crops of 16 px from 5-40 % of the image.
solo-learn's last-layer freezing in the first epoch and LARS ``clip_lr``
are not offered.
Published (solo-learn, ResNet-18, 1000 epochs, no local crops): 89.52 %
online linear; not yet measured here at that length.
"""

from ssl_jax.configs import default


def get_config():
  c = default.get_config()
  c.method = 'dino'
  c.encoder = 'resnet18'
  c.dataset = 'cifar10'
  c.image_size = 32
  c.batch_size = 256
  c.num_epochs = 1000
  c.learning_rate = 0.3
  c.optimizer.lr_scaling = 'linear'
  c.optimizer.weight_decay = 1e-6
  c.optimizer.trust_coefficient = 0.02
  c.dino.hidden_dims = (2048, 2048)
  c.dino.bottleneck_dim = 256
  c.dino.out_dim = 4096
  c.dino.base_momentum = 0.9995
  c.dino.warmup_teacher_epochs = 50.0
  c.dino.num_local_crops = 4
  c.dino.local_size = 16
  for view, solarize in ((c.augment.view1, 0.0), (c.augment.view2, 0.2)):
    view.crop_scale = (0.2, 1.0)
    view.jitter_strength = 0.5
    view.blur_prob = 0.0
    view.solarize_prob = solarize
  c.dino.local_view.jitter_strength = 0.5
  return c
