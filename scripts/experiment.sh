#!/usr/bin/env bash
# The sample-world experiment (docs/results/sample-world.md): the paper's continual methods on the demo
# world's yearly steps at one equal budget (training/configs/sample-world.yaml), two training seeds, then
# the Table-2-style report (mean and spread over the seeds) and heatmaps in demo-out/experiment/.
#   1. an original pretrained on the first step (2014-2016) only: the warm start every method shares;
#   2. `tic-train experiment --seeds 0 1 --init` with the paper's six methods, one process per seed.
# Runs the demo first if its shards are missing. EXPERIMENT_METHODS overrides the method list,
# EXPERIMENT_CONFIG the shared options (default training/configs/sample-world.yaml; about 70 minutes on
# 2 cores), EXPERIMENT_DATA the shards (default demo-out/shards; docs/results/sample-world.md builds
# others with larger evaluation sets) and EXPERIMENT_DIR where it all goes (default demo-out/experiment);
# extra arguments go to `tic-train experiment`. The 4x-budget run of docs/results/sample-world.md (about 100 minutes, reusing
# the original when EXPERIMENT_ORIGINAL names it):
#   EXPERIMENT_CONFIG=training/configs/sample-world-4x.yaml EXPERIMENT_DIR=demo-out/experiment-4x \
#   EXPERIMENT_ORIGINAL=demo-out/experiment/original/original.pt scripts/experiment.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${DEMO_OUT:-demo-out}
[ -f "$OUT/shards/steps.json" ] || scripts/demo.sh
. scripts/env.sh
EXP=${EXPERIMENT_DIR:-$OUT/experiment}
DATA=${EXPERIMENT_DATA:-$OUT/shards}
CONFIG=${EXPERIMENT_CONFIG:-training/configs/sample-world.yaml}
METHODS=${EXPERIMENT_METHODS:-sequential cumulative-all cumulative-exp cumulative-equal oracle restart}
FIRST=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['steps'][0])" "$DATA/steps.json")
mkdir -p "$EXP"
ORIGINAL=${EXPERIMENT_ORIGINAL:-$EXP/original/original.pt}
if [ ! -f "$ORIGINAL" ]; then
  echo "[experiment] original on the first step ($FIRST) only: $EXP/original"
  OMP_NUM_THREADS=2 tic-train pretrain --data "$DATA" --out "$EXP/original" --pool unfiltered \
    --steps-filter "$FIRST" --budget-samples 250000 --batch-size 256 --warmup 150 --workers 0 --threads 2 \
    2> "$EXP/original.log" || { tail -20 "$EXP/original.log" >&2; exit 1; }
fi
pids=()
for seed in 0 1; do  # one single-threaded process per seed: two cores, two seeds at once
  OMP_NUM_THREADS=1 tic-train experiment --data "$DATA" --out "$EXP" \
    --config "$CONFIG" --init "$ORIGINAL" --seeds "$seed" \
    --methods $METHODS "$@" > "$EXP/seed-$seed.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || { tail -20 "$EXP"/seed-*.log >&2; exit 1; }; done
runs=()
for seed in 0 1; do for m in $METHODS; do runs+=("$EXP/seed-$seed/$m"); done; done
tic-train report "${runs[@]}" --out "$EXP/report.md"
echo "[experiment] report: $EXP/report.md"
