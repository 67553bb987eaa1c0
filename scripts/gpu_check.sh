#!/usr/bin/env bash
# The GPU check, prepared on the CPU and run once on a lent GPU machine (the device tool), at most
# ten minutes. That machine has CUDA 13, JAX and PyTorch but no TensorFlow and no network, so:
#   1. what is there: the GPU, the driver, whether TensorFlow imports (it does not: cifake's tests
#      that need TensorFlow on a GPU cannot run there, and say so);
#   2. (PLAN=check, the default) Keras 3.15 (carried as wheels in .gpu/whl) on its JAX backend trains cifake's own networks
#      (scripts/gpu_keras_jax.py): the default recipe with the precision `auto` picks on a GPU and in
#      float32, then wider networks for 40 and 80 epochs; models and the teacher's soft labels
#      come back in $OUT for TensorFlow to evaluate on the CPU.
# Prepare on the CPU first:
#   python scripts/gpu_pack.py --data-dir data/cifake --out .gpu/pack     # 30 MiB, never committed
#   pip download keras==3.15.1 namex optree (cp312 manylinux wheels) -d .gpu/whl
# PLAN=levers instead trains the 1.2M-parameter network for 40 epochs with one regulariser at a time
# (augmentation as layers on the device).
# then run with the device tool: carry [".gpu"], command "bash scripts/gpu_check.sh".
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
date -u
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv
python3 --version
python3 -c "import tensorflow" 2>&1 | tail -1 || true
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"
timeout 330 python3 scripts/gpu_keras_jax.py --pack .gpu/pack --out "$OUT" --budget "${BUDGET:-220}" --plan "${PLAN:-check}"
echo "exit $?"
date -u
