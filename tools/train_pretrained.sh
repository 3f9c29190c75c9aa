#!/usr/bin/env bash
# Train every seed of the shipped recipes under the protocol, then measure them: one command for a lent GPU.
#
#   bash tools/train_pretrained.sh [RUNS] [SEEDS] [JOBS]     # defaults: $OUT/runs or runs/all, "0 1 2", 4
#
# Each recipe:seed pair trains in RUNS/RECIPE-sSEED (tools/run_seeds.sh: resumable), JOBS of them at a time (small models leave a GPU mostly idle, so several share it). Then
# tools/recipe_seeds.py measures every finished seed (1,000 captions per split, the validation and held-out
# compositions apart) into minidraw/recipes/seeds/NAME.json, with each seed's curve; copy those back and ship seed 0
# with `python tools/pretrained_models.py export NAME --run RUNS/NAME-s0`.
# Run it again after an interruption: finished runs return at once, the others resume.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-${OUT:+$OUT/runs}}
RUNS=${RUNS:-runs/all}
SEEDS=${2:-0 1 2}
JOBS=${3:-4}
PY=${PYTHON:-python}
RECIPES="aligndraw-mnist-paper noaligndraw-mnist aligndraw-mnist aligndraw-shapes"
mkdir -p "$RUNS"
$PY - <<'EOF'
import torch
print("torch", torch.__version__, "| CUDA", torch.cuda.is_available(),
      "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU: every run goes to the CPU")
EOF
pairs=()
for seed in $SEEDS; do for recipe in $RECIPES; do pairs+=("$recipe:$seed"); done; done
printf '%s\n' "${pairs[@]}" | xargs -P "$JOBS" -I{} sh -c \
  'PYTHON='"$PY"' bash tools/run_seeds.sh "$0" "$1" > "$0/$(echo "$1" | tr : -).log" 2>&1 && echo "done $1" || echo "FAILED $1 (see $0/$(echo "$1" | tr : -).log)"' "$RUNS" {}
for recipe in $RECIPES; do
  $PY tools/recipe_seeds.py measure "$recipe" --runs "$RUNS" || echo "could not measure $recipe"
done
$PY tools/recipe_seeds.py table $RECIPES || true
