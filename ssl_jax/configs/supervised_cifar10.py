"""Supervised baseline on CIFAR-10: ResNet-18 (CIFAR stem), SGD, 200 epochs.

  python main.py --config=configs/supervised_cifar10.py --workdir=/tmp/sup_c10 \
      --config.data_dir=DIR

Standard recipe: SGD momentum 0.9 (Nesterov), LR 0.1 per 256, weight decay
5e-4, batch 256, crop+flip views. Expected ``classifier/test_accuracy``
around 94-95 %.
"""

from ssl_jax.configs import default


def get_config():
  c = default.get_config()
  c.method = 'supervised'
  c.encoder = 'resnet18'
  c.dataset = 'cifar10'
  c.image_size = 32
  c.batch_size = 256
  c.num_epochs = 200
  c.learning_rate = 0.1
  c.optimizer.name = 'sgd'
  c.optimizer.lr_scaling = 'linear'
  c.optimizer.warmup_epochs = 1
  c.optimizer.weight_decay = 5e-4
  c.augment.view1.crop_scale = (0.35, 1.0)
  c.augment.view1.jitter_prob = 0.0
  c.augment.view1.grayscale_prob = 0.0
  return c
