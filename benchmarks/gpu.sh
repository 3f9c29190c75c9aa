#!/usr/bin/env bash
# The one prepared GPU run of issue 14: a few minutes on one CUDA GPU, prints everything it measures; then
# 20 training steps under torchrun on every GPU of the machine, which must exit 0.
#   benchmarks/gpu.sh                 # JSON to $OUT/gpu.json where OUT is set, else _build/gpu.json
# Needs only PyTorch with CUDA (no install: the package is read from this checkout) and no data.
# It runs benchmarks/gpu.py: minidraw against the plain DRAW on the GPU (agreement in float64 first),
# eager fp32 / bf16 autocast / torch.compile in bf16 (default and reduce-overhead = CUDA graphs).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-_build}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'GPU', torch.cuda.is_available())"
# 7 minutes of budget: compiles that would start later are skipped; the JSON is written per configuration
timeout 540 $PY benchmarks/gpu.py --json "$out/gpu.json" --budget 300 "$@"
# Many GPUs: 20 steps of alignDRAW on captioned shapes (generated, no data) under torchrun, one process per GPU;
# it must exit 0 (each rank on its own device, every collective on it; minidraw.distributed)
gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
if [ "$gpus" -ge 1 ]; then
  timeout 300 $PY -m torch.distributed.run --standalone --nproc_per_node="$gpus" -m minidraw train \
    --preset aligndraw_shapes_small --set max_steps=20 eval_every=0 eval_examples=64 checkpoint_every=10 \
    --out "$out/torchrun" --quiet
  echo "torchrun on $gpus GPU(s): exit 0"
fi
