"""DINO on CIFAR-10 with a ViT-Small in 4x4 patches and multi-crop.

Reference: facebookresearch/dino, main_dino.py + README.md (ViT-S full command) @ 7c446df5b9f4.

  python main.py --config=configs/dino_vit_cifar10.py --workdir=/tmp/dino_vit \
      --config.data_dir=DIR

The README's improved ViT-S command with main_dino.py's defaults: batch 1024
(16 GPUs x 64), AdamW at 5e-4 x B/256 with weight decay 0.04 rising to 0.4
(cosine), gradient clipping at 3.0 per tensor and 10 warm-up epochs, a 3-layer
2048-wide head to a 256-d bottleneck and 65536 prototypes without weight
normalisation (``norm_last_layer`` false), the teacher's momentum from 0.996 to
1, student temperature 0.1 and the teacher's from 0.04 to 0.07 over 30 epochs,
centre momentum 0.9; 2 global crops from 40-100 % and 8 local crops from 5-40
%, solarize 0 / 0.2 on the globals. Kept apart from it: 32 px globals in 4x4
patches and 16 px locals (its 224 / 96 px in 16x16 patches); 600 epochs (its
300 on ImageNet: CIFAR-10 has 1/25 of the images); no blur (as solo-learn's
CIFAR recipes: 32 px views); no stochastic depth (its 0.1: our ViT has
none yet). See docs/recipes.md. Not yet measured here.
"""

from ssl_jax.configs import dino_cifar10
from ssl_jax.configs import recipe_parts


def get_config():
  c = dino_cifar10.get_config()
  c.encoder = 'vit_small'
  c.model.patch_size = 4
  c.batch_size = 1024
  c.num_epochs = 600
  c.learning_rate = 5e-4
  c.optimizer.name = 'adamw'
  c.optimizer.lr_scaling = 'linear'
  c.optimizer.weight_decay = 0.04
  c.optimizer.warmup_epochs = 10.0
  c.optimizer.weight_decay_end = 0.4
  c.optimizer.clip_grad_norm = 3.0
  c.optimizer.lars_variant = 'simclr'  # Unused by AdamW.
  c.optimizer.clip_lr = False
  c.dino.out_dim = 65536
  c.dino.norm_last_layer = False
  c.dino.base_momentum = 0.996
  c.dino.warmup_teacher_epochs = 30.0
  c.dino.num_local_crops = 8
  c.dino.local_size = 16
  c.dino.local_view.crop_scale = (0.05, 0.4)
  recipe_parts.torchvision_view(c.dino.local_view)
  c.dino.local_view.blur_prob = 0.0
  c.dino.local_view.solarize_prob = 0.0
  for view in (c.augment.view1, c.augment.view2):
    view.crop_scale = (0.4, 1.0)
  recipe_parts.normalize(c, recipe_parts.IMAGENET_MEAN_STD)
  return c
