"""`tic-extract MANIFEST OUT_DIR`: image-text candidates of a few WARC files, in one process (no Spark).

Writes OUT_DIR/candidates.parquet (one row per usable <img>; the same rows the Spark job
extracts) and OUT_DIR/stats.json (every file, record, response and <img> accounted for).
The output goes to a temporary sibling first and is renamed into place when complete.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .extract import READERS, ROW_FIELDS, ExtractConfig, ExtractStats, accounting_errors, extract_file
from .timestamp_join import InputError, read_manifest

TOOL = "tic-extract"
CANDIDATES_SCHEMA = pa.schema([
    ("page_url", pa.string()), ("url", pa.string()), ("text", pa.string()),
    ("crawl_time", pa.timestamp("us")),  # UTC
    ("snapshot", pa.string()), ("warc_file", pa.string()), ("warc_offset", pa.int64()),
])
BATCH_ROWS = 100_000


def _batch(rows: list[tuple]) -> pa.RecordBatch:
    cols = list(zip(*rows))
    times = [t.replace(tzinfo=None) for t in cols[3]]
    arrays = [pa.array(cols[0], pa.string()), pa.array(cols[1], pa.string()), pa.array(cols[2], pa.string()),
              pa.array(times, pa.timestamp("us")), pa.array(cols[4], pa.string()), pa.array(cols[5], pa.string()),
              pa.array(cols[6], pa.int64())]
    return pa.RecordBatch.from_arrays(arrays, schema=CANDIDATES_SCHEMA)


def extract_to_dir(paths: list[str], out_dir: Path, cfg: ExtractConfig = ExtractConfig(), log=print) -> dict:
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "stats.json").is_file():
        raise InputError(f"{out_dir}: exists and is not an earlier {TOOL} output; refusing to overwrite it")
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    stats = ExtractStats()
    t0 = time.perf_counter()
    n_rows = 0
    try:
        with pq.ParquetWriter(tmp / "candidates.parquet", CANDIDATES_SCHEMA, compression="zstd") as writer:
            rows: list[tuple] = []
            for path in paths:
                for row in extract_file(path, stats, cfg):
                    rows.append(row)
                    if len(rows) >= BATCH_ROWS:
                        writer.write_batch(_batch(rows))
                        n_rows += len(rows)
                        rows = []
            if rows:
                writer.write_batch(_batch(rows))
                n_rows += len(rows)
        errors = accounting_errors(stats)
        result = {"tool": TOOL, "files": paths, "rows": n_rows, "seconds": round(time.perf_counter() - t0, 3),
                  "counters": dict(stats), "stats": stats.nested(),
                  "accounting": {"ok": not errors, "errors": errors}}
        (tmp / "stats.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"[{TOOL}] {len(paths)} files -> {n_rows} candidate rows in {out_dir} "
        f"({stats['images.input']} <img> seen, {stats['responses.kept']} HTML pages parsed)")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=TOOL, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest", help="file with one WARC path per line (relative lines: see --input-base)")
    p.add_argument("out_dir")
    p.add_argument("--input-base", help="base for relative manifest lines (default: the manifest's directory)")
    p.add_argument("--max-page-mb", type=float, default=5.0, help="skip (and count) larger HTML payloads")
    p.add_argument("--reader", choices=READERS, default="warcio",
                   help="WARC reader: fastwarc gives the same rows and counts with a little less CPU (default: warcio)")
    args = p.parse_args(argv)
    try:
        paths = read_manifest(args.manifest, args.input_base)
        cfg = ExtractConfig(max_page_bytes=int(args.max_page_mb * 2**20), reader=args.reader)
        result = extract_to_dir(paths, Path(args.out_dir), cfg)
    except InputError as exc:
        print(f"{TOOL}: error: {exc}", file=sys.stderr)
        return 2
    return 0 if result["accounting"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
