"""Every parquet contract's columns and types, defined once.

Writers build their tables from these and readers check inputs against them; ARCHITECTURE.md gives
each column's meaning. A contract is an ordered tuple of (column, type) with types named in one
small vocabulary, turned into a pyarrow schema (`arrow_schema`), a Spark StructType
(`spark_schema`) or a Spark DDL string (`spark_ddl`).
"""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

# The type vocabulary: name -> (pyarrow type, Spark DDL type)
_TYPES = {
    "string": (pa.string(), "string"),
    "int32": (pa.int32(), "int"),
    "int64": (pa.int64(), "bigint"),
    "float32": (pa.float32(), "float"),
    "float64": (pa.float64(), "double"),
    "bool": (pa.bool_(), "boolean"),
    "binary": (pa.binary(), "binary"),
    "timestamp": (pa.timestamp("us", tz="UTC"), "timestamp"),
    "list<string>": (pa.list_(pa.string()), "array<string>"),
    "list<int64>": (pa.list_(pa.int64()), "array<bigint>"),
    "list<list<float64>>": (pa.list_(pa.list_(pa.float64())), "array<array<double>>"),
}


@dataclass(frozen=True)
class Contract:
    """A parquet stage's columns, in order."""
    name: str
    columns: tuple[tuple[str, str], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.columns)

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([(c, _TYPES[t][0]) for c, t in self.columns])

    def spark_ddl(self) -> str:
        return ", ".join(f"{c} {_TYPES[t][1]}" for c, t in self.columns)

    def spark_schema(self):
        # pyspark is imported only by the Spark jobs (it costs ~0.4 s); the single-process tools never call this
        from pyspark.sql.types import _parse_datatype_string

        return _parse_datatype_string(self.spark_ddl())

    def missing(self, present) -> list[str]:
        """The contract's columns that `present` (column names) lacks."""
        have = set(present)
        return [c for c in self.names if c not in have]

    def __add__(self, other: "Contract") -> "Contract":
        return Contract(f"{self.name}+{other.name}", self.columns + other.columns)


# ------------------------------------------------------------------ curation

# DataComp's pool metadata: the columns every stage needs of it (the shards carry more, unchanged)
POOL_KEYS = Contract("pool_keys", (("uid", "string"), ("url", "string"), ("text", "string")))

# tic-extract's candidates.parquet, and the join's in-memory candidate rows
CANDIDATES = Contract("candidates", (
    ("page_url", "string"),
    ("url", "string"),
    ("text", "string"),
    ("crawl_time", "timestamp"),
    ("snapshot", "string"),
    ("warc_file", "string"),
    ("warc_offset", "int64"),
))

# the first-seen columns the join adds to a matched pool row (first_seen/ partitions by the year)
FIRST_SEEN = Contract("first_seen", (
    ("first_seen_time", "timestamp"),
    ("first_seen_month", "string"),
    ("first_seen_year", "int32"),
    ("first_seen_snapshot", "string"),
    ("last_seen_time", "timestamp"),
    ("n_snapshots_seen", "int32"),
))
