#!/usr/bin/env bash
# Set up (or update) .venv, generate the sample web and run the pipeline on it, as far as it exists.
# Outputs go to demo-out/ (override with DEMO_OUT); DEMO_PAIRS sets the world size (default 50000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
. scripts/env.sh
OUT=${DEMO_OUT:-demo-out}
PAIRS=${DEMO_PAIRS:-50000}
echo "[demo] 1/5 generating a sample web of $PAIRS pairs in $OUT/world"
tic-sample-web --out "$OUT/world" --pairs "$PAIRS" --seed 0
python -m curation.sqlfiles sql/sample_web.sql --var root="$OUT/world" --run crawl_overview
echo "[demo] 2/5 first-seen timestamps: spark-submit curation/timestamp_join.py (local[*])"
spark-submit --master 'local[*]' --driver-memory 4g --conf spark.log.level=ERROR \
  --conf spark.ui.showConsoleProgress=false \
  curation/timestamp_join.py "$OUT/world/warc.manifest" "$OUT/world/metadata" "$OUT/timestamps" 2> "$OUT/timestamp_join.log" \
  || { tail -20 "$OUT/timestamp_join.log" >&2; exit 1; }
test -f "$OUT/timestamps/stats.json" || { echo "[demo] the timestamp join failed" >&2; exit 1; }
echo "[demo] 3/5 DuckDB over the first-seen table (sql/timestamps.sql)"
python -m curation.sqlfiles sql/timestamps.sql --var root="$OUT/timestamps" \
  --run pairs_per_year --run single_snapshot_share --run unmatched_by_reason
echo "[demo] 4/5 DataComp filters on the timestamped pool: basic and bestpool (tic-filter)"
for f in basic bestpool; do
  tic-filter "$f" "$OUT/world/metadata" "$OUT/filtered/$f" --timestamps "$OUT/timestamps" 2> "$OUT/filter_$f.log" \
    || { tail -20 "$OUT/filter_$f.log" >&2; exit 1; }
done
python -m curation.sqlfiles sql/filters.sql --var root="$OUT/filtered" --run bestpool_vs_basic_share
echo "[demo] 5/5 evaluation splits and leak-free training pools (tic-splits build, then check-leakage)"
tic-splits build "$OUT/splits" --timestamps "$OUT/timestamps" --metadata "$OUT/world/metadata" \
  --filtered "$OUT/filtered" --keep-net-candidates 2> "$OUT/splits.log" || { tail -20 "$OUT/splits.log" >&2; exit 1; }
tic-splits check-leakage "$OUT/splits" 2>> "$OUT/splits.log"
python -m curation.sqlfiles sql/splits.sql --var root="$OUT/splits" --run train_sizes
