#!/usr/bin/env python
"""Compare two output trees file by file (e.g. the demo's outputs before and after a refactor).

    python scripts/diff_outputs.py BEFORE AFTER [--ignore-json-key seconds ...] [--skip-glob '*.log' ...]

Every file is matched by its path relative to the tree's root; Spark's part-file names carry a random
job id (`part-00000-<uuid>-c000...`), which is replaced by `part-00000-*` before matching. Each pair
is then classed:

- `identical`: the same bytes;
- `same-table`: parquet files with different bytes but equal schemas and rows (in order);
- `json-diff`: JSON documents that differ; the differing key paths are listed, and a difference only
  under an ignored key (timings by default) counts as `timing-only`;
- `differs`: anything else (tars, npz, text, parquet with other rows): the first differing offset is given.

Files present on one side only are listed too. Exit code 0 when nothing but `identical`,
`same-table` and `timing-only` pairs were found, else 1.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import math
import re
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

DEFAULT_IGNORED_KEYS = ("seconds", "samples_per_second", "wall_seconds", "elapsed", "rows_per_second",
                        "started", "finished", "time_s", "throughput", "latency_ms", "caption_seconds",
                        "captions_per_second", "images_per_second", "duration", "start_time", "end_time",
                        # what the caption-embedding cache did not hold: depends on earlier runs, not the result
                        "captions_encoded")
DEFAULT_SKIPPED = ("*.log", "*.pyc")
_PART = re.compile(r"(part-\d+)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def normalised(rel: str) -> str:
    return _PART.sub(r"\1-*", rel)


def tree(root: Path, skipped) -> dict[str, Path]:
    files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not any(fnmatch.fnmatch(path.name, g) for g in skipped) \
                and not any(part.startswith(".") for part in path.relative_to(root).parts):
            files[normalised(rel)] = path
    return files


def json_paths_that_differ(a, b, prefix=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                yield f"{prefix}{key}"
            else:
                yield from json_paths_that_differ(a[key], b[key], f"{prefix}{key}.")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from json_paths_that_differ(x, y, f"{prefix}{i}.")
    elif a != b and not (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)):
        yield prefix.rstrip(".") or "(document)"  # (NaN, which some metrics hold for empty cells, equals itself here)


def first_difference(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def compare(before: Path, after: Path, ignored_keys) -> tuple[str, str]:
    a, b = before.read_bytes(), after.read_bytes()
    if a == b:
        return "identical", ""
    if before.suffix == ".parquet":
        try:
            ta, tb = pq.read_table(before), pq.read_table(after)
        except Exception as exc:  # an unreadable parquet is itself a difference worth seeing
            return "differs", f"unreadable parquet ({exc})"
        if ta.schema.equals(tb.schema) and ta.equals(tb):
            return "same-table", f"{ta.num_rows} rows"
        if ta.schema.equals(tb.schema) and ta.num_rows == tb.num_rows:
            return "differs", "same schema and row count, other values"
        return "differs", f"schema or rows differ ({ta.num_rows} vs {tb.num_rows} rows)"
    if before.suffix == ".json":
        try:
            ja, jb = json.loads(a), json.loads(b)
        except ValueError:
            return "differs", "not JSON"
        paths = list(json_paths_that_differ(ja, jb))
        timing = all(any(part in ignored_keys for part in p.split(".")) for p in paths)
        return ("timing-only" if timing else "json-diff"), ", ".join(paths[:12]) + (" ..." if len(paths) > 12 else "")
    return "differs", f"first difference at byte {first_difference(a, b)} (sizes {len(a)} vs {len(b)})"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    p.add_argument("--ignore-json-key", action="append", default=list(DEFAULT_IGNORED_KEYS),
                   help="a JSON key whose values may differ (timings); repeatable")
    p.add_argument("--skip-glob", action="append", default=list(DEFAULT_SKIPPED), help="file names to skip")
    p.add_argument("--verbose", action="store_true", help="list identical files too")
    args = p.parse_args(argv)
    for root in (args.before, args.after):
        if not root.is_dir():
            print(f"diff_outputs: error: {root}: not a directory", file=sys.stderr)
            return 2
    a, b = tree(args.before, args.skip_glob), tree(args.after, args.skip_glob)
    counts: Counter = Counter()
    for rel in sorted(set(a) | set(b)):
        if rel not in b:
            kind, detail = "only-before", ""
        elif rel not in a:
            kind, detail = "only-after", ""
        else:
            kind, detail = compare(a[rel], b[rel], set(args.ignore_json_key))
        counts[kind] += 1
        if kind != "identical" or args.verbose:
            print(f"{kind:12s} {rel}" + (f"  ({detail})" if detail else ""))
    print("summary: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f" (of {sum(counts.values())} files)")
    ok = set(counts) <= {"identical", "same-table", "timing-only"}
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
