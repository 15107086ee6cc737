"""DINO on CIFAR-10: ResNet-18 (CIFAR stem), LARS, batch 256, 1000 epochs.

Reference: vturrisi/solo-learn, scripts/pretrain/cifar/dino.yaml @ 9187ea39c2c3.

  python main.py --config=configs/dino_cifar10.py --workdir=/tmp/dino_c10 \
      --config.data_dir=DIR

solo-learn's CIFAR recipe: a 3-layer 2048-wide head (no BatchNorm) to a 256-d
bottleneck and 4096 prototypes, the teacher's momentum from 0.9995 to 1
(cosine), student temperature 0.1 and teacher temperature 0.07 from the start
(its warm-up lasts 0 epochs), solo-learn's LARS (``clip_lr``, trust coefficient
0.02) at 0.3 x B/256 with weight decay 1e-6, two 32 px views with crops from
0.08, asymmetric solarize (0 / 0.2), no blur and no local crops (multi-crop:
``configs/dino_multicrop_cifar10.py``). Per-value comparison: docs/recipes.md.
Published (solo-learn, ResNet-18, 1000 epochs): 89.52 % online linear; not yet
measured here at that length.
"""

from ssl_jax.configs import default
from ssl_jax.configs import recipe_parts


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
  recipe_parts.solo_learn_lars(c)
  c.dino.hidden_dims = (2048, 2048)
  c.dino.bottleneck_dim = 256
  c.dino.out_dim = 4096
  c.dino.use_bn = False
  c.dino.norm_last_layer = True
  c.dino.student_temperature = 0.1
  c.dino.teacher_temperature = 0.07
  c.dino.warmup_teacher_temperature = 0.04
  c.dino.warmup_teacher_epochs = 0.0
  c.dino.base_momentum = 0.9995
  c.dino.freeze_last_layer_epochs = 1.0
  c.dino.num_local_crops = 0
  for view, solarize in ((c.augment.view1, 0.0), (c.augment.view2, 0.2)):
    view.crop_scale = (0.08, 1.0)
    recipe_parts.torchvision_view(view)
    view.blur_prob = 0.0
    view.solarize_prob = solarize
  recipe_parts.normalize(c, recipe_parts.CIFAR10_MEAN_STD)
  return c
