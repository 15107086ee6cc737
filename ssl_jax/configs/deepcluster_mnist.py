"""DeepCluster v1 on MNIST (tfds ``mnist``): the small ConvNet, k=100, Adam, 20 epochs.

  python -m ssl_jax.tools.prepare_data --dataset=mnist --data_dir=DIR   # needs network once
  python main.py --config=configs/deepcluster_mnist.py --workdir=/tmp/dc_mnist \
      --config.data_dir=DIR

28 px grayscale digits: crops of 50-100 % of the image, no flips (digits are
not mirror-symmetric) and no colour jitter. Reports the linear probe and the
NMI of the clusters with the digit labels (expected well above 0.5 within a
few epochs); not measured here.
"""

from ssl_jax.configs import default


def get_config():
  c = default.get_config()
  c.method = 'deepcluster'
  c.encoder = 'convnet'
  c.model.width = 64
  c.model.dense = 0
  c.dataset = 'mnist'
  c.image_size = 28
  c.batch_size = 256
  c.num_epochs = 20
  c.learning_rate = 1e-3
  c.optimizer.name = 'adam'
  c.optimizer.lr_scaling = 'none'
  c.optimizer.warmup_epochs = 0
  c.optimizer.weight_decay = 0.0
  c.deepcluster.num_clusters = 100
  c.deepcluster.pca_dim = 64
  v = c.augment.view1
  v.crop_scale = (0.5, 1.0)
  v.flip_prob = 0.0
  v.jitter_prob = 0.0
  v.grayscale_prob = 0.0
  return c
