#!/usr/bin/env bash
# What to run when a machine with GPUs is lent: the fast recipe on one GPU, then the same run on
# every GPU under torchrun (DistributedDataParallel, NCCL). It only trains into outputs/runs/gpu-*
# (replacing earlier runs of this script) and prints the tables; it installs and downloads nothing.
#
#   CIFAR10_ROOT=/path/to/cifar10 bash bench/gpu_check.sh          # PYTHON=... to pick the interpreter
#
# Compare the two runs' history.csv: the same global batch, seed and data order, so the histories
# should agree up to float rounding, which bf16 (the GPU default) makes coarser than the fp32 of the
# CPU test (tests/test_distributed.py). Not yet run on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
export MPLBACKEND=Agg
RECIPE=(--recipe fast --val-size 0 --no-progress --overwrite)

nvidia-smi -L
GPUS=$(nvidia-smi -L | wc -l)
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'GPUs', torch.cuda.device_count())"

# One GPU: 10 epochs of the fast recipe on all 50,000 training images, tested once.
time "$PYTHON" -m cifar_utils train "${RECIPE[@]}" --out outputs/runs/gpu-fast-1

# Every GPU (the multi-GPU line): the same run, its batch of 1024 split over the GPUs.
if [ "$GPUS" -ge 2 ]; then
  time "$PYTHON" -m torch.distributed.run --standalone --nproc-per-node="$GPUS" \
    -m cifar_utils train "${RECIPE[@]}" --out "outputs/runs/gpu-fast-$GPUS"
  paste -d '|' "outputs/runs/gpu-fast-1/history.csv" "outputs/runs/gpu-fast-$GPUS/history.csv"
else
  echo "one GPU: the multi-GPU line needs two or more; skipped"
fi
