#!/usr/bin/env bash
# Train the paper-size MNIST alignDRAW on a GPU, evaluate it, and export it as shipped weights.
#
#   bash tools/train_pretrained.sh [MINUTES] [OUT]        # defaults: 8 minutes, $OUT or runs/gpu
#
# For a lent GPU (one prepared run, minutes): it prints the GPU, trains the
# `aligndraw_mnist_paper` preset (the authors' sizes: T 32, N 8/8, 300-unit LSTMs, z 150) with
# the recipe's schedule and the paper's batch of 100 for MINUTES, resumable in OUT/run, evaluates
# the checkpoint as `minidraw evaluate` does (bound, caption fidelity per split and template on
# 1,000 captions each) and exports float16 weights with their sha256 into OUT/weights. Copy
# OUT/weights/aligndraw-mnist.pt and its registry line into minidraw/weights/ when it beats the
# shipped file (`python tools/pretrained_models.py export aligndraw-mnist --run OUT/run` does the
# comparison), then write its card with `python tools/pretrained_models.py card aligndraw-mnist
# --run OUT/run`.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-8}
OUT=${2:-${OUT:-runs/gpu}}
PY=${PYTHON:-python}
mkdir -p "$OUT"
$PY - <<'EOF'
import torch
print("torch", torch.__version__, "| CUDA", torch.cuda.is_available(),
      "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU: this script is meant for one")
EOF
# The recipe's schedule (cosine with warm-up) on the paper's model and batch; bf16 autocast on bf16 GPUs.
$PY -m minidraw train --preset aligndraw_mnist_paper --out "$OUT/run" --max-minutes "$MINUTES" --quiet \
    --set optimizer=adam lr=1e-3 lr_schedule=cosine warmup_steps=500 max_steps=20000 batch_size=100 \
          eval_every=2000 eval_examples=1000 eval_fidelity=200 checkpoint_every=1000
$PY tools/pretrained_models.py curve aligndraw-mnist-gpu --run "$OUT/run" && cp minidraw/recipes/curves/aligndraw-mnist-gpu.csv "$OUT/" || true
$PY - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
from minidraw import pretrained
sys.path.insert(0, "tools")
from pretrained_models import evaluate_file
out = Path(sys.argv[1])
row = evaluate_file(out / "run" / "checkpoint.pt")
print(json.dumps({k: v for k, v in row.items()}, indent=1))
print("exported", pretrained.export(out / "run" / "checkpoint.pt", "aligndraw-mnist", weights_dir=out / "weights"))
print((out / "weights" / "registry.txt").read_text())
EOF
