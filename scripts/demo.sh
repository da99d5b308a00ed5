#!/usr/bin/env bash
# Set up (or update) .venv, generate the sample web and run the pipeline on it, as far as it exists.
# Outputs go to demo-out/ (override with DEMO_OUT); DEMO_PAIRS sets the world size (default 50000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
. scripts/env.sh
OUT=${DEMO_OUT:-demo-out}
PAIRS=${DEMO_PAIRS:-50000}
echo "[demo] 1/2 generating a sample web of $PAIRS pairs in $OUT/world"
tic-sample-web --out "$OUT/world" --pairs "$PAIRS" --seed 0
echo "[demo] 2/2 what the world holds (DuckDB over its parquet)"
python -m curation.sqlfiles sql/sample_web.sql --var root="$OUT/world" --run pool_by_birth_year --run crawl_overview
