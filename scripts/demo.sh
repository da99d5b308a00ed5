#!/usr/bin/env bash
# Set up (or update) .venv, generate the sample web and run the pipeline on it, as far as it exists.
# Outputs go to demo-out/ (override with DEMO_OUT); DEMO_PAIRS sets the world size (default 50000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
. scripts/env.sh
OUT=${DEMO_OUT:-demo-out}
PAIRS=${DEMO_PAIRS:-50000}
echo "[demo] 1/10 generating a sample web of $PAIRS pairs in $OUT/world"
tic-sample-web --out "$OUT/world" --pairs "$PAIRS" --seed 0
tic-sql sql/sample_web.sql --var root="$OUT/world" --run crawl_overview
echo "[demo] 2/10 first-seen timestamps: spark-submit curation/timestamp_join.py (local[*])"
spark-submit --master 'local[*]' --driver-memory 4g --conf spark.log.level=ERROR \
  --conf spark.ui.showConsoleProgress=false \
  curation/timestamp_join.py "$OUT/world/warc.manifest" "$OUT/world/metadata" "$OUT/timestamps" 2> "$OUT/timestamp_join.log" \
  || { tail -20 "$OUT/timestamp_join.log" >&2; exit 1; }
test -f "$OUT/timestamps/stats.json" || { echo "[demo] the timestamp join failed" >&2; exit 1; }
echo "[demo] 2b/10 the same pairs from Common Crawl-style WAT files (tic-extract --input-format wat), and what the html5 rules miss"
tic-extract "$OUT/world/wat.manifest" "$OUT/extract-wat" --input-format wat 2> "$OUT/extract-wat.log" \
  || { tail -20 "$OUT/extract-wat.log" >&2; exit 1; }
tic-extract "$OUT/world/warc.manifest" "$OUT/extract-html5" --pair-rules html5 2> "$OUT/extract-html5.log" \
  || { tail -20 "$OUT/extract-html5.log" >&2; exit 1; }
tic-sql sql/pair_rules.sql --var metadata="$OUT/world/metadata/*.parquet" \
  --var datacomp="$OUT/extract-wat/candidates.parquet" --var html5="$OUT/extract-html5/candidates.parquet" \
  --run pool_rows_by_pair_rules --run rule_dependent_examples
echo "[demo] 3/10 DuckDB over the first-seen table (sql/timestamps.sql)"
tic-sql sql/timestamps.sql --var root="$OUT/timestamps" \
  --run pairs_per_year --run single_snapshot_share --run unmatched_by_reason
echo "[demo] 4/10 DataComp filters on the timestamped pool: basic and bestpool (tic-filter)"
for f in basic bestpool; do
  tic-filter "$f" "$OUT/world/metadata" "$OUT/filtered/$f" --timestamps "$OUT/timestamps" 2> "$OUT/filter_$f.log" \
    || { tail -20 "$OUT/filter_$f.log" >&2; exit 1; }
done
tic-sql sql/filters.sql --var root="$OUT/filtered" --run bestpool_vs_basic_share
echo "[demo] 5/10 evaluation splits and leak-free training pools (tic-splits build, then check-leakage)"
tic-splits build "$OUT/splits" --timestamps "$OUT/timestamps" --metadata "$OUT/world/metadata" \
  --filtered "$OUT/filtered" --keep-net-candidates --eval-size 150 2> "$OUT/splits.log" || { tail -20 "$OUT/splits.log" >&2; exit 1; }
tic-splits check-leakage "$OUT/splits" 2>> "$OUT/splits.log"
tic-sql sql/splits.sql --var root="$OUT/splits" --run train_sizes
echo "[demo] 6/10 distribution shift between the steps (tic-analyze: image Fréchet distance, caption category TV)"
tic-analyze "$OUT/splits" "$OUT/analysis" --embeddings "$OUT/world/metadata" --per-step 2000 2> "$OUT/analysis.log" \
  || { tail -20 "$OUT/analysis.log" >&2; exit 1; }
echo "[demo] 7/10 images: serve the sample web on 127.0.0.1, download once with img2dataset, reshard into steps"
tic-sample-web serve --port 0 --workers 2 > "$OUT/image_server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q "serving images" "$OUT/image_server.log" 2>/dev/null && break; sleep 0.2; done
PORT=$(grep -o '127.0.0.1:[0-9]*' "$OUT/image_server.log" | head -1 | cut -d: -f2)
tic-shards download "$OUT/splits" "$OUT/download" --extra "$OUT/world/imagenet_like/images.parquet" \
  --allow-loopback --resolve "*=127.0.0.1:$PORT" --image-size 64 --timeout 5 --samples-per-shard 5000 \
  > "$OUT/download.log" 2>&1 || { tail -20 "$OUT/download.log" >&2; exit 1; }
grep "tic-shards" "$OUT/download.log"
tic-shards reshard "$OUT/splits" "$OUT/download" "$OUT/shards" --samples-per-shard 2000 \
  --static "$OUT/world/imagenet_like/images.parquet"
tic-sql sql/shards.sql --var root="$OUT/shards" --var download="$OUT/download" \
  --run samples_per_step --run download_success_by_year
echo "[demo] 8/10 TiC-YFCC and TiC-RedCaps from the sample web's YFCC100M- and RedCaps-style sources (tic-yfcc, tic-redcaps)"
tic-sample-web sources --out "$OUT/sources" --yfcc 12000 --redcaps 12000 --seed 0
# --recipe tic (the default): ml-tic-clip's steps and captions, 1% of each step held out for evaluation
tic-yfcc "$OUT/sources/yfcc/yfcc100m_dataset.tsv" "$OUT/yfcc" --subset "$OUT/sources/yfcc/yfcc100m_subset_data.tsv" \
  2> "$OUT/yfcc.log" || { tail -20 "$OUT/yfcc.log" >&2; exit 1; }
tic-redcaps "$OUT/sources/redcaps/annotations" "$OUT/redcaps" 2> "$OUT/redcaps.log" \
  || { tail -20 "$OUT/redcaps.log" >&2; exit 1; }
for src in yfcc redcaps; do
  tic-shards download "$OUT/$src" "$OUT/$src-download" --allow-loopback --resolve "*=127.0.0.1:$PORT" \
    --image-size 64 --timeout 5 --samples-per-shard 5000 > "$OUT/$src-download.log" 2>&1 \
    || { tail -20 "$OUT/$src-download.log" >&2; exit 1; }
  tic-shards reshard "$OUT/$src" "$OUT/$src-download" "$OUT/$src-shards" --samples-per-shard 2000
done
echo "[demo] 9/10 a tiny continual run: tic-train, Cumulative-Exp on the basic pool's yearly steps, tiny model on CPU"
tic-train run --data "$OUT/shards" --out "$OUT/train-demo" --method cumulative-exp --pool basic \
  --budget-samples 3584 --batch-size 64 --warmup 4 --workers 2 --checkpoint-every 0 2> "$OUT/train-demo.log" \
  || { tail -20 "$OUT/train-demo.log" >&2; exit 1; }
tic-train metrics "$OUT/train-demo/matrix_retrieval.csv"
tic-sql sql/training.sql --var root="$OUT/train-demo" --run buffer_sizes
echo "[demo] 10/10 AnytimeCL: online learning on TiC-DataComp-Net in time order, from a pretrained original"
# The original is `tic-train pretrain` on a sample web (tic-pico, static zero-shot far above chance). Training it takes
# ~27 minutes on 2 cores, so by default the demo uses the one the repository ships (tests/fixtures/original, built by
# scripts/build_test_original.py and described in its original.json); DEMO_PRETRAIN_SAMPLES=640000 trains it here.
if [ -n "${DEMO_PRETRAIN_SAMPLES:-}" ]; then
  tic-train pretrain --data "$OUT/shards" --out "$OUT/pretrain" --pool unfiltered \
    --budget-samples "$DEMO_PRETRAIN_SAMPLES" 2> "$OUT/pretrain.log" || { tail -20 "$OUT/pretrain.log" >&2; exit 1; }
  ORIGINAL="$OUT/pretrain/original.pt"
else
  ORIGINAL=tests/fixtures/original/original.pt
fi
rm -rf "$OUT/anytime-demo"  # a short run: redone each time rather than resumed
tic-train anytime --data "$OUT/shards" --checkpoint "$ORIGINAL" \
  --out "$OUT/anytime-demo" --max-examples 800 --eval-every 200 2> "$OUT/anytime-demo.log" \
  || { tail -20 "$OUT/anytime-demo.log" >&2; exit 1; }
python -c "import json,sys; m=json.load(open(sys.argv[1])); print('[demo] AnytimeCL final:', json.dumps(m['final']))" \
  "$OUT/anytime-demo/metrics.json"
echo "[demo] done: $OUT/train-demo holds the matrices, heatmaps, checkpoints and buffers; $OUT/anytime-demo the anytime curves; scripts/experiment.sh runs every method"
