"""Digests of a job's parquet outputs, for the tests that hold an output to a recorded reference
(tests/test_filter_outputs.py, tests/test_join_outputs.py): the rows as a set (every column,
partition columns included, sorted by the given keys; timestamps as UTC microseconds, so INT96 and
INT64 files compare) and the column names in file order, not how many files hold them."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq


def canonical(table: pa.Table, keys: tuple[str, ...] | None = ("uid",)) -> pa.Table:
    """Columns by name, rows sorted by `keys` (None: by every column that is not a list or struct)."""
    cols = {}
    for name in sorted(table.column_names):
        col = table[name]
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.timestamp("us", col.type.tz)).cast(pa.int64())
        elif pa.types.is_large_string(col.type):
            col = col.cast(pa.string())
        cols[name] = col
    t = pa.table(cols)
    if keys is None:
        keys = tuple(f.name for f in t.schema if not pa.types.is_nested(f.type))
    order = [(k, "ascending") for k in keys if k in t.column_names]
    return t.sort_by(order) if order else t


def rows_digest(directory: Path, keys: tuple[str, ...] | None = ("uid",), replace: dict[str, str] | None = None) -> dict:
    """{rows, columns, sha256}; `replace` rewrites substrings of the rows' text first (e.g. a temporary
    directory that paths in the rows start with)."""
    files = sorted(p for p in directory.rglob("*.parquet"))
    columns = pq.read_schema(files[0]).names if files else []
    table = canonical(pads.dataset(str(directory), format="parquet", partitioning="hive").to_table(), keys)
    text = json.dumps(table.to_pylist(), sort_keys=True, default=repr)
    for old, new in (replace or {}).items():
        text = text.replace(old, new)
    return {"rows": table.num_rows, "columns": columns, "sha256": hashlib.sha256(text.encode()).hexdigest()}
