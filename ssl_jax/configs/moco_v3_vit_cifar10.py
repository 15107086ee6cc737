"""MoCo v3 on CIFAR-10 with a ViT-Small in 4x4 patches.

  python main.py --config=configs/moco_v3_vit_cifar10.py \
      --workdir=/tmp/mocov3_vit --config.data_dir=DIR

The paper's ViT settings (Chen, Xie and He, 2021): AdamW at 1.5e-4 x B/256
with weight decay 0.1 and 40 warm-up epochs, a 3-layer 4096-wide projector to
256 dimensions ending in BatchNorm without affine parameters, a 4096-wide
predictor, temperature 0.2, the momentum encoder from 0.99 to 1; 64 patches
of 4x4 at 32 px, crops from 0.2 of the image and the CIFAR views of
``configs/moco_v3_cifar10.py``. (The paper's frozen random patch embedding
and gradient clipping are not offered.) Not yet measured here.
"""

from ssl_jax.configs import moco_v3_cifar10


def get_config():
  c = moco_v3_cifar10.get_config()
  c.encoder = 'vit_small'
  c.model.patch_size = 4
  c.num_epochs = 600
  c.learning_rate = 1.5e-4
  c.optimizer.name = 'adamw'
  c.optimizer.lr_scaling = 'linear'
  c.optimizer.weight_decay = 0.1
  c.optimizer.warmup_epochs = 40.0
  c.projector.hidden_dims = (4096, 4096)
  return c
