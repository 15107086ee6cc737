"""SimCLR on CIFAR-10: ResNet-18 with the CIFAR stem, LARS, batch 512, 1000 epochs.

Reference: google-research/simclr, README.md (CIFAR-10 command) @ 383d4143fd8c.

  python main.py --config=configs/simclr_cifar10.py --workdir=/tmp/simclr_cifar10 \
      --config.data_dir=DIR

Prepare DIR once with ``python -m ssl_jax.tools.prepare_data --dataset=cifar10
--data_dir=DIR`` (needs network), or offline from the JPEG archive with
``--npz=PATH``. The recipe is google-research/simclr's CIFAR-10 command
(ResNet-18, batch 512, 1000 epochs, LARS at 1.0 x B/256 with trust
coefficient 1e-3, weight decay 1e-4, temperature 0.5, colour jitter strength
0.5, no blur) with its default 3-layer projection head (512-512-128, BatchNorm
on every layer; the output one with a learned scale and no centre).
Per-value comparison: docs/recipes.md. Its README expects about 91 % linear
evaluation for this run; not yet measured here at that length.
"""

from ssl_jax.configs import default


def get_config():
  c = default.get_config()
  c.encoder = 'resnet18'
  c.model.cifar_stem = True
  c.dataset = 'cifar10'
  c.image_size = 32
  c.batch_size = 512
  c.num_epochs = 1000
  c.learning_rate = 1.0
  c.optimizer.lr_scaling = 'linear'
  c.optimizer.weight_decay = 1e-4
  c.temperature = 0.5
  # model_util.projection_head: num_proj_layers=3, hidden = feature width.
  c.projector.hidden_dims = (512, 512)
  c.projector.out_dim = 128
  c.projector.out_bn = True
  c.projector.out_bn_scale = True  # center=False, scale on (model_util.py).
  for view in (c.augment.view1, c.augment.view2):
    view.jitter_strength = 0.5
    view.blur_prob = 0.0
    view.crop_interpolation = 'bicubic'  # data_util.crop_and_resize.
  # Watch the representation improve: kNN on held-out train images every
  # 2,000 steps; t-SNE of the kept checkpoints at every 100 epochs.
  c.evals.knn.every_steps = 2000
  c.checkpoint_every_steps = 970  # 10 epochs of 97 steps.
  c.keep_checkpoints_every = 9700
  c.evals.pictures.tsne_steps = (9700, 19400, 38800)
  return c
