#!/usr/bin/env bash
# The sample-world experiment: every tic-train method on the demo world's yearly steps with the tiny
# model at one equal budget, then the Table-2-style report and heatmaps in demo-out/experiment/.
# Runs the demo first if its shards are missing. Extra arguments go to `tic-train experiment`
# (e.g. --methods sequential cumulative-all).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=demo-out
[ -f "$OUT/shards/steps.json" ] || scripts/demo.sh
. scripts/env.sh
echo "[experiment] tic-train experiment --data $OUT/shards --out $OUT/experiment --config training/configs/sample-world.yaml $*"
tic-train experiment --data "$OUT/shards" --out "$OUT/experiment" --config training/configs/sample-world.yaml "$@"
tic-sql sql/training.sql --var root="$OUT/experiment" --run buffer_sizes
echo "[experiment] report: $OUT/experiment/report.md"
