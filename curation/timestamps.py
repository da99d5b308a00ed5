"""First-seen timestamps for DataComp pairs: pure Spark DataFrame functions.

The job (`curation/timestamp_join.py`) wires these together; tests call them directly on a
`local[1]` session.

    candidates (page_url, url, text, crawl_time, snapshot, warc_file, warc_offset)   every <img> of every page
      -> pool_sightings: per pool row, the earliest/latest crawl of its exact (url, text), the
         snapshots that showed it, and whether its URL was seen with any text   (one shuffle)
      -> split_matched: matched rows (the output contract) and unmatched rows.

Per-pair sightings of seen pool pairs are kept; incremental runs fold new WARC files into them
(`fold_sightings`) and rebuild the rows (`rows_from_sightings`).
"""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from .extract import ROW_FIELDS, ExtractConfig, ExtractStats, extract_file, extract_stream

CANDIDATE_SCHEMA = T.StructType([
    T.StructField("page_url", T.StringType()),
    T.StructField("url", T.StringType()),
    T.StructField("text", T.StringType()),
    T.StructField("crawl_time", T.TimestampType()),
    T.StructField("snapshot", T.StringType()),
    T.StructField("warc_file", T.StringType()),
    T.StructField("warc_offset", T.LongType()),
])
# Extraction emits image rows and counter rows through one DataFrame, so that counters are summed
# with a groupBy (exact, retry-safe) rather than with accumulators.
_TAGGED_SCHEMA = T.StructType(
    [T.StructField("kind", T.StringType())] + list(CANDIDATE_SCHEMA.fields)
    + [T.StructField("stat_key", T.StringType()), T.StructField("stat_value", T.LongType())])
POOL_COLUMNS = ("uid", "url", "text")
OUTPUT_COLUMNS = ("uid", "url", "text", "first_seen_time", "first_seen_month", "first_seen_year",
                  "first_seen_snapshot", "last_seen_time", "n_snapshots_seen")


def _tagged_partition(paths, cfg: ExtractConfig, from_bytes: bool):
    import io

    stats = ExtractStats()
    for item in paths:
        if from_bytes:  # (path, file content) from SparkContext.binaryFiles
            path, content = item
            stats.inc("files", "input")
            rows = extract_stream(io.BytesIO(content), path, stats, cfg)
        else:
            rows = extract_file(item, stats, cfg)
        for row in rows:
            yield ("img",) + row + (None, None)
    for key, value in stats.items():
        yield ("stat",) + (None,) * len(ROW_FIELDS) + (key, int(value))


def extract_candidates(spark: SparkSession, paths: list[str], cfg: ExtractConfig = ExtractConfig(),
                       partitions: int | None = None, hadoop_paths: bool = False) -> tuple[DataFrame, DataFrame]:
    """(candidates, counters) for WARC files. Local paths are opened by the Python workers;
    with `hadoop_paths` they are read through Spark's Hadoop file systems (hdfs://, s3a://, ...).

    The tagged frame is persisted, so extraction runs once for both results.
    """
    sc = spark.sparkContext
    n = max(1, min(len(paths), partitions or sc.defaultParallelism * 4))
    if hadoop_paths:
        rdd = sc.binaryFiles(",".join(paths), minPartitions=n).mapPartitions(
            lambda it: _tagged_partition(it, cfg, True))
    else:
        rdd = sc.parallelize(paths, n).mapPartitions(lambda it: _tagged_partition(it, cfg, False))
    from pyspark import StorageLevel

    tagged = spark.createDataFrame(rdd, _TAGGED_SCHEMA).persist(StorageLevel.MEMORY_AND_DISK)
    candidates = tagged.where(F.col("kind") == "img").select(*CANDIDATE_SCHEMA.fieldNames())
    counters = (tagged.where(F.col("kind") == "stat").groupBy("stat_key")
                .agg(F.sum("stat_value").alias("stat_value")))
    return candidates, counters


NO_SNAPSHOT = "\uffff"  # sorts after every snapshot id, so a known snapshot wins a tie


def _earliest(time_col: str, snapshot_col: str, when=None):
    """min over (time, snapshot) pairs: the earliest time, ties going to the smaller snapshot id."""
    pair = F.struct(F.col(time_col).alias("t"), F.coalesce(F.col(snapshot_col), F.lit(NO_SNAPSHOT)).alias("s"))
    return F.min(pair if when is None else F.when(when, pair))


def _unpack_earliest(col: str) -> list:
    return [F.col(f"{col}.t").alias("first_seen_time"),
            F.when(F.col(f"{col}.s") == NO_SNAPSHOT, None).otherwise(F.col(f"{col}.s")).alias("first_seen_snapshot")]


def pool_sightings(candidates: DataFrame, pool: DataFrame) -> DataFrame:
    """Per pool row: how the crawl saw its exact (url, text) pair, and whether it saw its URL at all.

    One shuffle: candidates are joined to the pool on url, and the aggregation by
    (uid, url, text) reuses that partitioning. Columns: uid, url, text, first_seen_time,
    first_seen_snapshot, last_seen_time (null when never seen), snapshots (sorted distinct ids),
    n_images (matching <img> rows), url_seen (bool).
    """
    cands = candidates.select("url", F.col("text").alias("_ctext"), "crawl_time", "snapshot")
    joined = pool.select(*POOL_COLUMNS).join(cands, "url", "left")
    exact = F.col("_ctext") == F.col("text")
    return (joined.groupBy("uid", "url", "text")
            .agg(_earliest("crawl_time", "snapshot", exact).alias("_first"),
                 F.max(F.when(exact, F.col("crawl_time"))).alias("last_seen_time"),
                 F.array_sort(F.collect_set(F.when(exact, F.col("snapshot")))).alias("snapshots"),
                 F.sum(F.when(exact, 1).otherwise(0)).cast("long").alias("n_images"),
                 F.max(F.col("_ctext").isNotNull()).alias("url_seen"))
            .select("uid", "url", "text", *_unpack_earliest("_first"), "last_seen_time", "snapshots", "n_images",
                    "url_seen"))


SIGHTING_COLUMNS = ("url", "text", "first_seen_time", "first_seen_snapshot", "last_seen_time", "snapshots",
                    "n_images")


def pair_sightings(rows: DataFrame) -> DataFrame:
    """The per-pair part of `pool_sightings` for seen pairs: what --previous folds new files into."""
    return rows.where(F.col("first_seen_time").isNotNull()).select(*SIGHTING_COLUMNS).dropDuplicates(["url", "text"])


def fold_sightings(previous: DataFrame, new: DataFrame) -> DataFrame:
    """Per-pair sightings of two sets of WARC files combined: equal to reading them all at once."""
    return (previous.select(*SIGHTING_COLUMNS).unionByName(new.select(*SIGHTING_COLUMNS))
            .groupBy("url", "text")
            .agg(_earliest("first_seen_time", "first_seen_snapshot").alias("_first"),
                 F.max("last_seen_time").alias("last_seen_time"),
                 F.array_sort(F.array_distinct(F.flatten(F.collect_list("snapshots")))).alias("snapshots"),
                 F.sum("n_images").alias("n_images"))
            .select("url", "text", *_unpack_earliest("_first"), "last_seen_time", "snapshots", "n_images"))


def rows_from_sightings(pool: DataFrame, sightings_df: DataFrame, seen_urls: DataFrame) -> DataFrame:
    """`pool_sightings`' rows rebuilt from per-pair sightings and the seen pool URLs."""
    urls = seen_urls.select("url").distinct().withColumn("url_seen", F.lit(True))
    return (pool.select(*POOL_COLUMNS).join(sightings_df.select(*SIGHTING_COLUMNS), ["url", "text"], "left")
            .join(urls, "url", "left")
            .withColumn("url_seen", F.coalesce("url_seen", F.lit(False)))
            .select("uid", "url", "text", "first_seen_time", "first_seen_snapshot", "last_seen_time", "snapshots",
                    "n_images", "url_seen"))


def split_matched(rows: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(matched rows in the output contract, unmatched pool rows)."""
    seen = F.col("first_seen_time").isNotNull()
    matched = (rows.where(seen)
               .withColumn("first_seen_month", F.date_format("first_seen_time", "yyyy-MM"))
               .withColumn("first_seen_year", F.year("first_seen_time").cast("int"))
               .withColumn("n_snapshots_seen", F.size("snapshots").cast("int"))
               .select(*OUTPUT_COLUMNS))
    return matched, rows.where(~seen).select(*POOL_COLUMNS)


def read_pool(spark: SparkSession, metadata_dir: str) -> DataFrame:
    """DataComp metadata parquet (the .npz files beside it are skipped)."""
    df = spark.read.option("pathGlobFilter", "*.parquet").parquet(metadata_dir)
    missing = [c for c in POOL_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{metadata_dir}: metadata lacks required column(s) {', '.join(missing)} "
                         f"(has {', '.join(df.columns)})")
    return df.select(*POOL_COLUMNS)
