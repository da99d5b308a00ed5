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
    # A UTC time. Stored without a zone, as the writers always have: Spark's TimestampType (written as
    # INT96 by the jobs) and tic-extract's pyarrow timestamp[us] (isAdjustedToUTC=false).
    "timestamp": (pa.timestamp("us"), "timestamp"),
    "list<string>": (pa.list_(pa.string()), "array<string>"),
    "list<int64>": (pa.list_(pa.int64()), "array<bigint>"),
    "list<list<float64>>": (pa.list_(pa.list_(pa.float64())), "array<array<double>>"),
}


# Spark DataType class names of the scalar types; list<X> is an ArrayType of X's
_SPARK_SCALARS = {"string": "StringType", "int32": "IntegerType", "int64": "LongType", "float32": "FloatType",
                  "float64": "DoubleType", "bool": "BooleanType", "binary": "BinaryType", "timestamp": "TimestampType"}


def _spark_type(T, name: str):
    """The pyspark DataType of a vocabulary type name (`T`: the pyspark.sql.types module)."""
    if name.startswith("list<"):
        return T.ArrayType(_spark_type(T, name[len("list<"):-1]))
    return getattr(T, _SPARK_SCALARS[name])()


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
        """The StructType (every field nullable), built without a Spark session."""
        # pyspark is imported only by the Spark jobs (it costs ~0.4 s); the single-process tools never call this
        from pyspark.sql import types as T

        return T.StructType([T.StructField(c, _spark_type(T, t)) for c, t in self.columns])

    def missing(self, present) -> list[str]:
        """The contract's columns that `present` (column names) lacks."""
        have = set(present)
        return [c for c in self.names if c not in have]

    def __add__(self, other: "Contract") -> "Contract":
        return Contract(f"{self.name}+{other.name}", self.columns + other.columns)


# ------------------------------------------------------------------ curation

# DataComp's pool metadata: the columns every stage needs of it (the shards carry more, unchanged)
POOL_KEYS = Contract("pool_keys", (("uid", "string"), ("url", "string"), ("text", "string")))

# tic-extract's candidates.parquet, the join's in-memory candidate rows (and its --keep-candidates
# candidates/), the rows curation.extract yields
CANDIDATES = Contract("candidates", (
    ("page_url", "string"),
    ("url", "string"),
    ("text", "string"),
    ("crawl_time", "timestamp"),
    ("snapshot", "string"),
    ("warc_file", "string"),
    ("warc_offset", "int64"),
))

# the first-seen columns the join adds to a matched pool row (first_seen/ partitions by the year);
# tic-filter --timestamps joins them onto its rows
FIRST_SEEN = Contract("first_seen", (
    ("first_seen_time", "timestamp"),
    ("first_seen_month", "string"),
    ("first_seen_year", "int32"),
    ("first_seen_snapshot", "string"),
    ("last_seen_time", "timestamp"),
    ("n_snapshots_seen", "int32"),
))

# the join's outputs: OUT/first_seen/ (matched pool rows), OUT/unmatched/ (pool rows no snapshot showed)
MATCHED = POOL_KEYS + FIRST_SEEN
UNMATCHED = Contract("unmatched", POOL_KEYS.columns)

# the join's OUT/sightings/: per seen pool (url, text) pair, what --previous folds new WARC files into
SIGHTINGS = Contract("sightings", (
    ("url", "string"),
    ("text", "string"),
    ("first_seen_time", "timestamp"),
    ("first_seen_snapshot", "string"),
    ("last_seen_time", "timestamp"),
    ("snapshots", "list<string>"),
    ("n_images", "int64"),
))

# the join's OUT/seen_urls/ (pool URLs seen with any text) and OUT/warc_files/ (the WARC files read so far)
SEEN_URLS = Contract("seen_urls", (("url", "string"),))
WARC_FILES = Contract("warc_files", (("warc_file", "string"),))

# tic-filter's OUT/kept/ and OUT/dropped/: the input metadata columns, then these (kept/ without
# `reason`), then FIRST_SEEN's with --timestamps
FILTER_VERDICT = Contract("filter_verdict", (("filter", "string"), ("reason", "string")))


# ------------------------------------------------------------------ benchmarks

# tic-yfcc / tic-redcaps: every parsed source record (kept or dropped with its reason)
SOURCE_ROWS = Contract("source_rows", (
    ("uid", "string"),
    ("url", "string"),
    ("text", "string"),
    ("first_seen_time", "timestamp"),
    ("first_seen_month", "string"),
    ("first_seen_year", "int32"),
    ("reason", "string"),
    ("source_file", "string"),
))

# tic-splits' Net stages: each pool row's candidate synsets, then each survivor's best synset by similarity
# (class_ids is an array<int>; the vocabulary above has no such list type, so the DDL is spelt out)
NET_CANDIDATES_DDL = "uid string, net_reason string, class_ids array<int>, lemma string, huge_caption boolean"
NET_SIMILARITY = Contract("net_similarity", (
    ("uid", "string"),
    ("class_id", "int32"),
    ("similarity", "float64"),
    ("ambiguous", "bool"),
))
# the similarity step's own rows: one per distinct caption, joined back to every uid that carries it
NET_CAPTION_SIMILARITY = Contract("net_caption_similarity", (("text", "string"),) + NET_SIMILARITY.columns[1:])

# tic-shards download: every pair the shards need, once (requested.parquet; types as the splits hold them)
SHARD_REQUEST = Contract("shard_request", (
    ("uid", "string"),
    ("url", "string"),
    ("text", "string"),
    ("first_seen_month", "string"),
    ("face_bboxes", "list<list<float64>>"),
    ("sha256", "string"),
))

# tic-shards download: DOWNLOAD/status.parquet, one row per requested URL
DOWNLOAD_STATUS = Contract("download_status", (
    ("uid", "string"),
    ("url", "string"),
    ("status", "string"),
    ("reason", "string"),
    ("error_message", "string"),
    ("key", "string"),
    ("sha256", "string"),
    ("width", "int64"),
    ("height", "int64"),
    ("original_width", "int64"),
    ("original_height", "int64"),
    ("shard", "string"),
))

# A shard sample's image member: img2dataset names it by `tic-shards download --encode-format` (jpg,
# png or webp); reshard keeps the download's extension and every reader takes any of these.
IMAGE_EXTENSIONS = ("jpg", "png", "webp", "jpeg")


def image_extension(parts) -> str | None:
    """The extension of a sample's image member ({extension: ...} of its members), or None."""
    return next((e for e in IMAGE_EXTENSIONS if e in parts), None)


# tic-shards reshard: the split columns every sample's json (and its shard parquet row) carries ...
SHARD_SAMPLE = Contract("shard_sample", (
    ("uid", "string"),
    ("url", "string"),
    ("text", "string"),
    ("first_seen_month", "string"),
    ("year", "int64"),
))
# ... plus, for an evaluation set, its own columns (retrieval's subset/seeds merge into `subsets`)
RETRIEVAL_EVAL = Contract("retrieval_eval", (
    ("subset", "string"),
    ("seeds", "list<int64>"),
    ("holdout_size", "int64"),
))
NET_EVAL = Contract("net_eval", (
    ("class_id", "int32"),
    ("wnid", "string"),
    ("lemma", "string"),
    ("similarity", "float64"),
))
# the keys check-leakage reads from every shard parquet
SHARD_KEYS = Contract("shard_keys", (("uid", "string"), ("sha256", "string")))

# tic-analyze: OUT/captions.parquet, the sampled rows that sql/analysis.sql reads
CAPTIONS = Contract("captions", (
    ("uid", "string"),
    ("step", "int64"),
    ("year", "int64"),
    ("half", "int64"),
    ("text", "string"),
    ("n_words", "int64"),
    ("domain", "string"),
    ("top1", "string"),
    ("top5", "list<string>"),
))
