"""`tic-extract MANIFEST OUT_DIR`: image-text candidates of a few WARC (or WAT) files, in one process (no Spark).

Writes OUT_DIR/candidates.parquet (one row per (image URL, text) pair under --pair-rules; the same
rows the Spark job extracts) and OUT_DIR/stats.json (every file, record, response and <img> accounted for).
The output goes to a temporary sibling first and is renamed into place when complete.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation.extract import ExtractConfig, add_rule_args, extract_file
from curation.manifest import read_manifest
from curation.warc_reader import READERS, ExtractStats, accounting_errors, all_inputs_failed
from ticcore.validate import ArgumentParser, number
from ticcore.errors import InputError, report_user_errors, require_accounting
from ticcore.outputs import staged_dir, write_json
from ticcore.schemas import CANDIDATES

TOOL = "tic-extract"
CANDIDATES_SCHEMA = CANDIDATES.arrow_schema()
_CRAWL_TIME = CANDIDATES.names.index("crawl_time")
BATCH_ROWS = 100_000


def _batch(rows: list[tuple]) -> pa.RecordBatch:
    cols = list(zip(*rows))
    cols[_CRAWL_TIME] = [t.replace(tzinfo=None) for t in cols[_CRAWL_TIME]]  # UTC, stored without a zone
    return pa.RecordBatch.from_arrays([pa.array(col, field.type) for col, field in zip(cols, CANDIDATES_SCHEMA)],
                                      schema=CANDIDATES_SCHEMA)


def _write_candidates(paths: list[str], out: Path, stats: ExtractStats, cfg: ExtractConfig) -> int:
    """candidates.parquet of `paths` at `out`, in batches; returns its row count."""
    n_rows = 0
    with pq.ParquetWriter(out, CANDIDATES_SCHEMA, compression="zstd") as writer:
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
    return n_rows


def extract_to_dir(paths: list[str], out_dir: Path, cfg: ExtractConfig = ExtractConfig(), log=print) -> dict:
    out_dir = Path(out_dir)
    stats = ExtractStats()
    t0 = time.perf_counter()
    with staged_dir(out_dir, TOOL) as tmp:
        n_rows = _write_candidates(paths, tmp / "candidates.parquet", stats, cfg)
        failed = all_inputs_failed(stats)
        if failed:
            raise InputError(f"{paths[0] if len(paths) == 1 else 'the manifest'}: {failed}")
        errors = accounting_errors(stats)
        result = {"tool": TOOL, "files": paths, "config": asdict(cfg), "rows": n_rows, "seconds": round(time.perf_counter() - t0, 3),
                  "counters": dict(stats), "stats": stats.nested(),
                  "accounting": {"ok": not errors, "errors": errors}}
        write_json(tmp / "stats.json", result, sort_keys=True)
        require_accounting(result, out_dir)
    log(f"[{TOOL}] {len(paths)} files -> {n_rows} candidate rows in {out_dir} "
        f"({stats['images.input']} <img> seen, {stats['responses.kept']} HTML pages parsed)")
    return result


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=TOOL, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest", help="file with one WARC path per line (relative lines: see --input-base)")
    p.add_argument("out_dir")
    p.add_argument("--input-base", help="base for relative manifest lines (default: the manifest's directory)")
    p.add_argument("--max-page-mb", type=number(float, 0, lo_open=True), default=5.0, help="skip (and count) larger HTML payloads")
    p.add_argument("--reader", choices=READERS, default="warcio",
                   help="WARC reader: fastwarc gives the same rows and counts with a little less CPU (default: warcio; "
                        "WARC input only)")
    add_rule_args(p)
    args = p.parse_args(argv)

    def body() -> int:
        paths = read_manifest(args.manifest, args.input_base)
        cfg = ExtractConfig(max_page_bytes=int(args.max_page_mb * 2**20), reader=args.reader,
                            pair_rules=args.pair_rules, input_format=args.input_format)
        result = extract_to_dir(paths, Path(args.out_dir), cfg)
        return 0 if result["accounting"]["ok"] else 1

    return report_user_errors(TOOL, body)


if __name__ == "__main__":
    sys.exit(main())
