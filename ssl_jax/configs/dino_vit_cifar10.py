"""DINO on CIFAR-10 with a ViT-Small in 4x4 patches and multi-crop.

  python main.py --config=configs/dino_vit_cifar10.py --workdir=/tmp/dino_vit \
      --config.data_dir=DIR

The paper's ViT-S settings (Caron et al., 2021) on 32 px images: AdamW at
5e-4 x B/256 with weight decay 0.04 and 10 warm-up epochs, a 2048-wide head
to a 256-d bottleneck and 65536 prototypes, the teacher's momentum from
0.996 to 1, student temperature 0.1 and the teacher's from 0.04 to 0.07 over
30 epochs; 2 global crops of 32 px from 40-100 % and 6 local crops of 16 px
(a 4x4 grid of 4x4 patches) from 5-40 %. (DINO's weight-decay schedule to
0.4, gradient clipping and last-layer freezing are not offered.) Not yet
measured here.
"""

from ssl_jax.configs import dino_cifar10


def get_config():
  c = dino_cifar10.get_config()
  c.encoder = 'vit_small'
  c.model.patch_size = 4
  c.num_epochs = 600
  c.learning_rate = 5e-4
  c.optimizer.name = 'adamw'
  c.optimizer.lr_scaling = 'linear'
  c.optimizer.weight_decay = 0.04
  c.optimizer.warmup_epochs = 10.0
  c.dino.out_dim = 65536
  c.dino.base_momentum = 0.996
  c.dino.warmup_teacher_epochs = 30.0
  c.dino.num_local_crops = 6
  c.dino.local_size = 16
  for view in (c.augment.view1, c.augment.view2):
    view.crop_scale = (0.4, 1.0)
  return c
