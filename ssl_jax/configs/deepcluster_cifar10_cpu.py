"""DeepCluster on CIFAR-10 within a CPU budget (the method comparison).

  python main.py --config=configs/deepcluster_cifar10_cpu.py \
      --workdir=/tmp/dc_cpu --config.data_dir=/tmp/tfds

Same encoder and optimiser as the SimCLR CPU proof
(``configs/cifar10_cpu_common.py``); k=100 clusters of PCA-whitened
128-d features, re-clustered every epoch; one augmented view per image.
About 17 minutes on 2 CPU cores including the clustering; the README's
comparison table has the measured figures.
"""

from ssl_jax.configs import cifar10_cpu_common


def get_config():
  c = cifar10_cpu_common.get_config()
  c.method = 'deepcluster'
  c.num_epochs = 12.0
  c.optimizer.warmup_epochs = 0.0
  c.deepcluster.num_clusters = 100
  c.deepcluster.pca_dim = 128
  c.deepcluster.kmeans_iters = 30
  return c
