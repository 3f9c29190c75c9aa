#!/usr/bin/env bash
# Train recipes for several seeds, one after another, each in its own resumable run directory.
#
#   bash tools/run_seeds.sh RUNS RECIPE:SEED [RECIPE:SEED ...]
#   e.g. OMP_NUM_THREADS=1 bash tools/run_seeds.sh ~/runs aligndraw-mnist-paper:0 aligndraw-mnist:0 &
#
# RUNS/RECIPE-sSEED holds each run; run the same command again after a kill and every run goes on from its
# last checkpoint (finished runs return at once). aligndraw-mnist also gets its second stage, from the first
# stage's weights, in RUNS/aligndraw-mnist-sSEED-2 (the recipe's header gives the settings). Extra
# `key=value` settings for every run (e.g. data=/path/to/mnist) come from the SETS variable.
#
# A lever on the second stage only (measured on the validation compositions before it is adopted): settings in
# STAGE2_SETS and a TAG for its run directories; the first stage is shared, so it is not trained again:
#   STAGE2_SETS="ema=0.999" TAG=ema bash tools/run_seeds.sh ~/runs aligndraw-mnist:0 aligndraw-mnist:1
#   -> ~/runs/aligndraw-mnist-s0-2-ema, ...; then python tools/recipe_seeds.py misses aligndraw-mnist --runs ~/runs --tag ema
# A lever on the whole schedule instead, in a RUNS folder of its own: ONE_STAGE=1 leaves out the second stage and
# SETS carries the lever, e.g. the adversary and where_kl switched on mid-run within the 28,000 steps:
#   ONE_STAGE=1 SETS="what_adversary=12 where_kl=2 terms_from=14000" bash tools/run_seeds.sh ~/runs-midrun \
#       aligndraw-mnist:0 aligndraw-mnist:1;  then python tools/recipe_seeds.py misses aligndraw-mnist --runs ~/runs-midrun
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=$1; shift
PY=${PYTHON:-python}
for job in "$@"; do
  recipe=${job%%:*}; seed=${job##*:}
  run="$RUNS/$recipe-s$seed"
  echo "== $(date -u +%FT%TZ) $recipe seed $seed -> $run"
  $PY -m minidraw train --config "$recipe" --quiet --set seed="$seed" ${SETS:-} --out "$run"
  if [ "$recipe" = aligndraw-mnist ] && [ -z "${ONE_STAGE:-}" ]; then
    $PY -m minidraw train --config "$recipe" --quiet --set seed="$seed" ${SETS:-} init="$run/checkpoint.pt" \
        what_adversary=12 where_kl=2 lr=5e-4 warmup_steps=200 max_steps=3000 ${STAGE2_SETS:-} --out "$run-2${TAG:+-$TAG}"
  fi
done
echo "== $(date -u +%FT%TZ) done"
