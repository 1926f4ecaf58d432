#!/usr/bin/env bash
# What to run when a machine with GPUs is lent: the fast recipe's time to 94% on one GPU (n=5), then
# fast10 on one GPU and on every GPU under torchrun (DistributedDataParallel, NCCL). It only trains into outputs/runs/gpu-*
# (replacing earlier runs of this script) and prints the tables; it installs and downloads nothing.
#
#   CIFAR10_ROOT=/path/to/cifar10 bash bench/gpu_check.sh          # PYTHON=... to pick the interpreter
#
# Compare the two runs' history.csv: the same global batch, seed and data order, so the histories
# should agree up to float rounding, which bf16 (the GPU default) makes coarser than the fp32 of the
# CPU test (tests/runs/test_distributed.py). Not yet run on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
export MPLBACKEND=Agg
# Under torchrun the Muon recipe is refused until its multi-process history is verified: fast10 there.
RECIPE=(--recipe fast10 --val-size 0 --no-progress --overwrite)

nvidia-smi -L
GPUS=$(nvidia-smi -L | wc -l)
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'GPUs', torch.cuda.device_count())"

# One GPU: the fast recipe's time to 94% over five seeds (training + TTA evaluation per seed).
time "$PYTHON" bench/time_to_accuracy.py --recipe fast --seeds 0 1 2 3 4 --device cuda

# One GPU, then every GPU (the multi-GPU line): fast10 with the same global batch of 1024, split over the GPUs.
time "$PYTHON" -m cifar_utils train "${RECIPE[@]}" --out outputs/runs/gpu-fast10-1
if [ "$GPUS" -ge 2 ]; then
  time "$PYTHON" -m torch.distributed.run --standalone --nproc-per-node="$GPUS" \
    -m cifar_utils train "${RECIPE[@]}" --out "outputs/runs/gpu-fast10-$GPUS"
  paste -d '|' "outputs/runs/gpu-fast10-1/history.csv" "outputs/runs/gpu-fast10-$GPUS/history.csv"
else
  echo "one GPU: the multi-GPU line needs two or more; skipped"
fi
