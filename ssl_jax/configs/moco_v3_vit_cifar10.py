"""MoCo v3 on CIFAR-10 with a ViT-Small in 4x4 patches.

Reference: facebookresearch/moco-v3, CONFIG.md (ViT-Small, 1-node) @ c349e6e24f40.

  python main.py --config=configs/moco_v3_vit_cifar10.py \
      --workdir=/tmp/mocov3_vit --config.data_dir=DIR

The ViT-Small command of CONFIG.md with main_moco.py's defaults: batch 1024,
AdamW at 1.5e-4 x B/256 with weight decay 0.1 and 40 warm-up epochs, a 3-layer
4096-wide projector to 256 dimensions ending in BatchNorm without affine
parameters, a 4096-wide predictor, temperature 0.2, the momentum encoder from
0.99 to 1 (cosine), vits.py's patch-embedding init, crops from 0.08, solarize 0
/ 0.2, fixed 2-D sin-cos position embeddings, the random patch embedding
frozen (--stop-grad-conv1), a predictor ending in affine-free BatchNorm,
weight decay on every parameter. Kept apart from it: 64 patches of 4x4 at 32
px (its 16x16 at 224 px); 600 epochs (its 300 on ImageNet: CIFAR-10 has 1/25
of the images); no blur (as solo-learn's CIFAR recipes: 32 px views). See
docs/recipes.md. Not yet measured here.
"""

from ssl_jax.configs import moco_v3_cifar10
from ssl_jax.configs import recipe_parts


def get_config():
  c = moco_v3_cifar10.get_config()
  c.encoder = 'vit_small'
  c.model.patch_size = 4
  c.batch_size = 1024
  c.num_epochs = 600
  c.learning_rate = 1.5e-4
  c.optimizer.name = 'adamw'
  c.optimizer.lr_scaling = 'linear'
  c.optimizer.weight_decay = 0.1
  c.optimizer.warmup_epochs = 40.0
  c.optimizer.lars_variant = 'simclr'  # Unused by AdamW.
  c.optimizer.clip_lr = False
  c.model.patch_init = 'xavier_uniform'
  c.model.position_embedding = 'sincos'
  c.moco_v3.freeze_patch_embedding = True
  c.moco_v3.predictor_out_bn = True
  c.optimizer.decay_bias_and_norm = True
  c.projector.hidden_dims = (4096, 4096)
  for view in (c.augment.view1, c.augment.view2):
    view.crop_interpolation = 'bilinear'  # torchvision's default.
  recipe_parts.normalize(c, recipe_parts.IMAGENET_MEAN_STD)
  return c
