"""SimCLR on real CIFAR-10 within 30 minutes on a 2-core CPU (the CPU proof run).

  python -m ssl_jax.tools.prepare_data --npz=../shared/data/cifar10_jpeg_q75.npz \
      --data_dir=/tmp/tfds
  python main.py --config=configs/simclr_cifar10_cpu.py --workdir=/tmp/simclr_cpu \
      --config.data_dir=/tmp/tfds

The small ConvNet with conv widths 48-96-192-384 and no dense layer (the
evaluated representation is the pooled 384-d conv output), batch 256, Adam
with warmup and cosine, temperature 0.2, CIFAR views (crop scale 0.2-1,
jitter strength 0.5, no blur) at 24 px, evaluated at 32 px, 10 epochs.
Measured on 2 CPU cores at 1bb6e64 (README "CPU proof",
``benchmarks/results/cpu_proof_simclr_1bb6e64.json``): 17.8 min of
pretraining at 478 img/s, linear probe 68.58 % test accuracy against
53.92 % for the random-init encoder (+14.66 points).
"""

from ssl_jax.configs import cifar10_cpu_common


def get_config():
  c = cifar10_cpu_common.get_config()
  c.num_epochs = 10.0
  c.temperature = 0.2
  c.projector.hidden_dims = (512,)
  c.projector.out_dim = 128
  return c
