#!/usr/bin/env bash
# The main job on an accelerator image that has jax, flax, optax and orbax but
# no TensorFlow: installs the small wheels carried in .whl/ (see
# benchmarks/accelerator_wheels.txt), prepares CIFAR-10 from the JPEG archive
# (no TensorFlow needed), then runs main.py with configs/simclr_cifar10.py in
# bfloat16 and copies results.json, config.json and the TensorBoard events to
# OUT.
#
#   bash benchmarks/accelerator_main_job.sh NPZ OUT EPOCHS [--config.FIELD=VALUE ...]
#
# Run from the repository root, e.g. on a lent GPU with NPZ and the wheels
# copied into a carried folder.
set -euo pipefail
npz=$1
out=$2
epochs=$3
shift 3
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PWD}"
fi
export PYTHONUNBUFFERED=1
mkdir -p "$out"
python3 -c "import jax; print(jax.devices())"
python3 -m ssl_jax.tools.prepare_data --npz="$npz" --data_dir=/tmp/tfds
run=$(mktemp -d)/run  # A fresh workdir: never resumes an earlier run.
python3 main.py --config=configs/simclr_cifar10.py --workdir="$run" \
  --config.data_dir=/tmp/tfds --config.dtype=bfloat16 \
  --config.num_epochs="$epochs" --config.evals.pictures.enabled=False "$@" \
  2>&1 | grep -v "Got images" | tee "$out/log.txt"
cp "$run/results.json" "$run/config.json" "$out/"
cp "$run"/events.out.* "$out/" 2>/dev/null || true
