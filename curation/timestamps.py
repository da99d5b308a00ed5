"""First-seen timestamps for DataComp pairs: pure Spark DataFrame functions.

The job (`curation/timestamp_join.py`) wires these together; tests call them directly on a
`local[1]` session.

    candidates  (page_url, url, text, crawl_time, snapshot, warc_file, warc_offset)   every <img> of every page
      -> sightings (url, text, snapshot, first_time, last_time, n_images)              per pair and snapshot
      -> first_seen (url, text, first_seen_time, first_seen_snapshot, last_seen_time, n_snapshots_seen)
      -> joined with the pool on exact (url, text): matched rows get the timestamps, the rest are unmatched.

Sightings are kept only for pairs of the pool; they are what incremental runs fold new snapshots into.
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


def sightings(candidates: DataFrame, pool: DataFrame) -> DataFrame:
    """Per (url, text, snapshot) of a pool pair: first and last crawl time, and how many <img> rows."""
    pairs = pool.select("url", "text").distinct()
    return (candidates.join(pairs, ["url", "text"], "left_semi")
            .groupBy("url", "text", "snapshot")
            .agg(F.min("crawl_time").alias("first_time"), F.max("crawl_time").alias("last_time"),
                 F.count(F.lit(1)).alias("n_images")))


def seen_pool_urls(candidates: DataFrame, pool: DataFrame) -> DataFrame:
    """Pool URLs that appear in the candidates with any text (for the url-only match count)."""
    return candidates.select("url").join(pool.select("url").distinct(), "url", "left_semi").distinct()


def first_seen(sightings_df: DataFrame) -> DataFrame:
    """Per pair: the earliest crawl over all snapshots (ties: the smaller snapshot id), the latest,
    and the number of distinct snapshots that showed it."""
    first = F.min(F.struct(F.col("first_time"), F.coalesce(F.col("snapshot"), F.lit("\uffff")).alias("s")))
    return (sightings_df.groupBy("url", "text")
            .agg(first.alias("_first"), F.max("last_time").alias("last_seen_time"),
                 F.countDistinct("snapshot").alias("n_snapshots_seen"))
            .select("url", "text", F.col("_first.first_time").alias("first_seen_time"),
                    F.when(F.col("_first.s") == "\uffff", None).otherwise(F.col("_first.s"))
                    .alias("first_seen_snapshot"),
                    "last_seen_time", F.col("n_snapshots_seen").cast("int").alias("n_snapshots_seen")))


def join_pool(pool: DataFrame, first_seen_df: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(matched, unmatched): pool rows with their timestamps, and pool rows no snapshot showed."""
    pool = pool.select(*POOL_COLUMNS)
    matched = (pool.join(first_seen_df, ["url", "text"], "inner")
               .withColumn("first_seen_month", F.date_format("first_seen_time", "yyyy-MM"))
               .withColumn("first_seen_year", F.year("first_seen_time").cast("int"))
               .select(*OUTPUT_COLUMNS))
    unmatched = pool.join(first_seen_df.select("url", "text"), ["url", "text"], "left_anti").select(*POOL_COLUMNS)
    return matched, unmatched


def read_pool(spark: SparkSession, metadata_dir: str) -> DataFrame:
    """DataComp metadata parquet (the .npz files beside it are skipped)."""
    df = spark.read.option("pathGlobFilter", "*.parquet").parquet(metadata_dir)
    missing = [c for c in POOL_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{metadata_dir}: metadata lacks required column(s) {', '.join(missing)} "
                         f"(has {', '.join(df.columns)})")
    return df.select(*POOL_COLUMNS)
