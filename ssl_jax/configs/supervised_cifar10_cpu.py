"""Supervised baseline on CIFAR-10 within a CPU budget (the method comparison).

  python main.py --config=configs/supervised_cifar10_cpu.py \
      --workdir=/tmp/sup_cpu --config.data_dir=/tmp/tfds
  # 10 % of the labels (class-balanced, chosen by the seed):
  python main.py --config=configs/supervised_cifar10_cpu.py \
      --workdir=/tmp/sup10_cpu --config.data_dir=/tmp/tfds \
      --config.data.label_fraction=0.1 --config.num_epochs=80

Same encoder and optimiser as the SimCLR CPU proof
(``configs/cifar10_cpu_common.py``), cross-entropy on one crop-and-flip view.
Reports ``classifier/test_accuracy``; the README's comparison table has the
measured figures.
"""

from ssl_jax.configs import cifar10_cpu_common


def get_config():
  c = cifar10_cpu_common.get_config()
  c.method = 'supervised'
  c.num_epochs = 8.0
  c.learning_rate = 1e-3
  v = c.augment.view1
  v.crop_scale = (0.35, 1.0)
  v.jitter_prob = 0.0
  v.grayscale_prob = 0.0
  return c
