#!/usr/bin/env bash
# Train recipes for several seeds, one after another, each in its own resumable run directory.
#
#   bash tools/run_seeds.sh RUNS RECIPE:SEED [RECIPE:SEED ...]
#   e.g. OMP_NUM_THREADS=1 bash tools/run_seeds.sh ~/runs aligndraw-mnist-paper:0 aligndraw-mnist:0 &
#
# RUNS/RECIPE-sSEED holds each run; run the same command again after a kill and every run goes on from its
# last checkpoint (finished runs return at once). Extra `key=value` settings for every run (e.g.
# data=/path/to/mnist) come from the SETS variable.
#
# A lever (measured on the validation compositions, with at least two seeds, before a recipe adopts it) runs the
# same way with its settings in SETS and a RUNS folder of its own, e.g. weight averaging:
#   SETS="ema=0.999" bash tools/run_seeds.sh ~/runs-ema aligndraw-mnist:0 aligndraw-mnist:1
#   python tools/recipe_seeds.py misses aligndraw-mnist --runs ~/runs-ema
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=$1; shift
PY=${PYTHON:-python}
for job in "$@"; do
  recipe=${job%%:*}; seed=${job##*:}
  run="$RUNS/$recipe-s$seed"
  echo "== $(date -u +%FT%TZ) $recipe seed $seed -> $run"
  $PY -m minidraw train --config "$recipe" --quiet --set seed="$seed" ${SETS:-} --out "$run"
done
echo "== $(date -u +%FT%TZ) done"
