"""SimCLR on STL-10: ResNet-18 at 96 px on unlabelled+train, LARS, 400 epochs.

Reference: vturrisi/solo-learn, scripts/pretrain/imagenet-100/simclr.yaml @ 9187ea39c2c3.

  python main.py --config=configs/simclr_stl10.py --workdir=/tmp/simclr_stl10 \
      --config.data_dir=DIR

Prepare DIR once with ``python -m ssl_jax.tools.prepare_data --dataset=stl10
--data_dir=DIR`` (downloads 2.5 GB). The 105,000 pretraining images are decoded
once into host RAM (2.9 GB; set ``--config.data.cache=False`` to decode per
batch). solo-learn has no STL-10 recipe; its ImageNet-100 one (ResNet-18,
126,689 images, close to STL-10's 105,000) is followed at 96 px: batch 256, 400
epochs, solo-learn's LARS (``clip_lr``, trust coefficient 0.02) at 0.3 x B/256
and weight decay 1e-4, temperature 0.2, a 4096-wide projector to 512 without
BatchNorm, colour jitter strength 1.0 and blur 0.5 on both views. Per-value
comparison: docs/recipes.md. Not yet measured here.
"""

from ssl_jax.configs import default
from ssl_jax.configs import recipe_parts


def get_config():
  c = default.get_config()
  c.encoder = 'resnet18'
  c.model.cifar_stem = False
  c.dataset = 'stl10'
  c.data.train_split = 'unlabelled+train'
  c.image_size = 96
  c.batch_size = 256
  c.num_epochs = 400
  c.learning_rate = 0.3
  c.optimizer.lr_scaling = 'linear'
  c.optimizer.weight_decay = 1e-4
  recipe_parts.solo_learn_lars(c)
  c.temperature = 0.2
  c.projector.hidden_dims = (4096,)
  c.projector.out_dim = 512
  c.projector.use_bn = False
  c.probe.batch_size = 256
  for view in (c.augment.view1, c.augment.view2):
    recipe_parts.torchvision_view(view, 0.8, 0.8, 0.8, 0.2)
    view.blur_prob = 0.5
  recipe_parts.normalize(c, recipe_parts.IMAGENET_MEAN_STD)
  return c
