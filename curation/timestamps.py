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

import io

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from curation.extract import ExtractConfig, extract_file, extract_stream
from curation.warc_reader import ExtractStats
from ticcore.errors import InputError
from ticcore.schemas import CANDIDATES, MATCHED, POOL_KEYS, SIGHTINGS, UNMATCHED, Contract

CANDIDATE_SCHEMA = CANDIDATES.spark_schema()
# Extraction emits image rows, counter rows and each partition's snapshot ids through one DataFrame,
# so that counters are summed with a groupBy (exact, retry-safe) rather than with accumulators, and
# the join learns the snapshot ids in the same job.
_TAGGED_SCHEMA = (Contract("kind", (("kind", "string"),)) + CANDIDATES
                  + Contract("stat", (("stat_key", "string"), ("stat_value", "int64")))).spark_schema()
# Columns whose values are (nearly) all distinct: written without parquet dictionaries.
NEARLY_UNIQUE_COLUMNS = ("uid", "url", "text", "first_seen_time", "last_seen_time")
# pool_sightings' rows: a pool row, how the crawl saw its pair, whether it saw its URL at all
POOL_SIGHTING_COLUMNS = ("uid", *SIGHTINGS.names, "url_seen")


SNAPSHOT_INDEX = CANDIDATES.names.index("snapshot")


def _tagged_partition(paths, cfg: ExtractConfig, from_bytes: bool):
    stats = ExtractStats()
    snapshots = set()
    for item in paths:
        if from_bytes:  # (path, file content) from SparkContext.binaryFiles
            path, content = item
            stats.inc("files", "input")
            rows = extract_stream(io.BytesIO(content), path, stats, cfg)
        else:
            rows = extract_file(item, stats, cfg)
        for row in rows:
            snapshots.add(row[SNAPSHOT_INDEX])
            yield ("img",) + row + (None, None)
    for key, value in stats.items():
        yield ("stat",) + (None,) * len(CANDIDATES.names) + (key, int(value))
    # the partition's snapshot ids, so the join's snapshot list comes with the counters (no job of its own)
    for snapshot in snapshots - {None}:
        yield ("snapshot",) + (None,) * len(CANDIDATES.names) + (snapshot, 0)


def extract_candidates(spark: SparkSession, paths: list[str], cfg: ExtractConfig = ExtractConfig(),
                       partitions: int | None = None, hadoop_paths: bool = False) -> tuple[DataFrame, DataFrame]:
    """(candidates, counters) for WARC files. Local paths are opened by the Python workers;
    with `hadoop_paths` they are read through Spark's Hadoop file systems (hdfs://, s3a://, ...).
    `counters` (kind, stat_key, stat_value) holds ExtractStats' counters (kind `stat`) and the
    candidates' distinct snapshot ids (kind `snapshot`, the id as stat_key); `split_counters` parts them.

    The tagged frame is persisted, so extraction runs once for both results.
    """
    sc = spark.sparkContext
    n = max(1, min(len(paths), partitions or sc.defaultParallelism * 4))
    if hadoop_paths:
        rdd = sc.binaryFiles(",".join(paths), minPartitions=n).mapPartitions(
            lambda it: _tagged_partition(it, cfg, True))
    else:
        rdd = sc.parallelize(paths, n).mapPartitions(lambda it: _tagged_partition(it, cfg, False))
    tagged = spark.createDataFrame(rdd, _TAGGED_SCHEMA).persist(StorageLevel.MEMORY_AND_DISK)
    candidates = tagged.where(F.col("kind") == "img").select(*CANDIDATES.names)
    counters = (tagged.where(F.col("kind") != "img").groupBy("kind", "stat_key")
                .agg(F.sum("stat_value").alias("stat_value")))
    return candidates, counters


def split_counters(rows) -> tuple[dict[str, int], list[str]]:
    """`extract_candidates`' collected counters: (ExtractStats' counters, the sorted snapshot ids)."""
    counters = {r.stat_key: int(r.stat_value) for r in rows if r.kind == "stat"}
    return counters, sorted(r.stat_key for r in rows if r.kind == "snapshot")


NO_SNAPSHOT = "\uffff"  # sorts after every snapshot id, so a known snapshot wins a tie


def _earliest(time_col: str, snapshot_col: str, when=None):
    """min over (time, snapshot) pairs: the earliest time, ties going to the smaller snapshot id."""
    pair = F.struct(F.col(time_col).alias("t"), F.coalesce(F.col(snapshot_col), F.lit(NO_SNAPSHOT)).alias("s"))
    return F.min(pair if when is None else F.when(when, pair))


def _unpack_earliest(col: str) -> list:
    return [F.col(f"{col}.t").alias("first_seen_time"),
            F.when(F.col(f"{col}.s") == NO_SNAPSHOT, None).otherwise(F.col(f"{col}.s")).alias("first_seen_snapshot")]


# A sighting's (time, snapshot) packed into one long, so that "earliest, ties to the smaller snapshot
# id" is a plain min() and the whole aggregation runs as Spark's code-generated hash aggregate (a
# struct min or collect_set would force the slower object/sort-based one: ~1.5x on the join).
# Low bits: the snapshot's rank among the run's sorted ids; high bits: microseconds since 1970.
SNAPSHOT_BITS = 11
NO_SNAPSHOT_RANK = (1 << SNAPSHOT_BITS) - 1   # a sighting without a snapshot id loses every tie
MAX_SNAPSHOTS = NO_SNAPSHOT_RANK              # Common Crawl has ~120 snapshots in all
# Upper bound on pool rows per join partition: the join hashes its pool side in memory.
POOL_ROWS_PER_JOIN_PARTITION = 2_000_000


def snapshot_ids(candidates: DataFrame) -> list[str]:
    """The distinct snapshot ids of candidate rows, sorted (one small Spark job)."""
    return sorted(r[0] for r in candidates.select("snapshot").distinct().collect() if r[0] is not None)


def join_partitions(spark: SparkSession, pool_rows: int) -> int | None:
    """Shuffle partitions the join needs so that a partition's pool side holds about
    POOL_ROWS_PER_JOIN_PARTITION rows at most (hash partitioning: on average); None when the
    session's setting already suffices."""
    configured = int(spark.conf.get("spark.sql.shuffle.partitions"))
    needed = -(-pool_rows // POOL_ROWS_PER_JOIN_PARTITION)
    return needed if needed > configured else None


def pool_sightings(candidates: DataFrame, pool: DataFrame, partitions: int | None = None,
                   snapshots: list[str] | None = None) -> DataFrame:
    """Per pool row: how the crawl saw its exact (url, text) pair, and whether it saw its URL at all.

    One shuffle: candidates are joined to the pool on url (the pool side hashed), and the
    aggregation by (uid, url, text) reuses that partitioning. Columns: uid, url, text,
    first_seen_time, first_seen_snapshot, last_seen_time (null when never seen), snapshots (sorted
    distinct ids), n_images (matching <img> rows), url_seen (bool).

    `snapshots`: the candidates' distinct snapshot ids, sorted, when known (the job has them from
    `extract_candidates`' counters); else they are found first (one small job).
    `partitions`: hash-partition both sides into this many partitions (see `join_partitions`).
    """
    spark = candidates.sparkSession
    ids = snapshot_ids(candidates) if snapshots is None else snapshots
    if len(ids) > MAX_SNAPSHOTS:
        raise InputError(f"{len(ids)} distinct snapshots in one run; at most {MAX_SNAPSHOTS} are supported")
    # Built in the JVM (a table made from Python rows is a Python RDD: every run of the join
    # would start Python workers to read it).
    ranks = spark.range(len(ids)).select(
        F.element_at(F.array(*[F.lit(i) for i in ids] or [F.lit(None).cast("string")]),
                     (F.col("id") + 1).cast("int")).alias("snapshot"),
        F.col("id").cast("int").alias("_rank"))
    cands = (candidates.select("url", F.col("text").alias("_ctext"), "snapshot",
                               F.unix_micros(F.col("crawl_time").cast("timestamp")).alias("_us"))
             .join(F.broadcast(ranks), "snapshot", "left")
             .select("url", "_ctext", "_us", F.coalesce("_rank", F.lit(NO_SNAPSHOT_RANK)).alias("_rank")))
    pool = pool.select(*POOL_KEYS.names)
    if partitions:
        pool, cands = pool.repartition(partitions, "url"), cands.repartition(partitions, "url")
    exact = F.col("_ctext") == F.col("text")
    words = -(-len(ids) // 64)
    masks = [F.bit_or(F.when(exact & (F.col("_rank") >= 64 * w) & (F.col("_rank") < 64 * w + 64),
                             F.expr(f"shiftleft(1L, _rank - {64 * w})"))).alias(f"_mask{w}") for w in range(words)]
    if ids:
        id_array = F.array(*[F.lit(i) for i in ids])

        def has_rank(k: int):  # null where the row's mask word is null (no exact sighting at all)
            bit = 1 << k % 64 if k % 64 < 63 else -(1 << 63)
            return F.col(f"_mask{k // 64}").bitwiseAND(F.lit(bit).cast("long")) != 0

        # The ids whose bits are set, in id order; array_except of the nulls runs as generated code,
        # where a higher-order filter() over the ids runs interpreted (it cost ~6% of the whole join).
        seen_snapshots = F.array_except(F.array(*[F.when(has_rank(k), F.lit(s)) for k, s in enumerate(ids)]),
                                        F.array(F.lit(None).cast("string")))
        first_snapshot = F.when(F.col("_first_rank") == NO_SNAPSHOT_RANK, None).otherwise(
            F.element_at(id_array, F.col("_first_rank") + 1))
    else:
        seen_snapshots = F.array().cast("array<string>")
        first_snapshot = F.lit(None).cast("string")
    packed = F.shiftleft(F.col("_us"), SNAPSHOT_BITS) + F.col("_rank")
    return (pool.hint("shuffle_hash").join(cands, "url", "left")
            .groupBy("uid", "url", "text")
            .agg(F.min(F.when(exact, packed)).alias("_first"),
                 F.max(F.when(exact, F.col("_us"))).alias("_last_us"),
                 F.sum(F.when(exact, 1).otherwise(0)).cast("long").alias("n_images"),
                 F.max(F.col("_ctext").isNotNull()).alias("url_seen"),
                 *masks)
            .withColumn("_first_rank", (F.col("_first").bitwiseAND(NO_SNAPSHOT_RANK)).cast("int"))
            .select("uid", "url", "text",
                    F.timestamp_micros(F.shiftright("_first", SNAPSHOT_BITS)).alias("first_seen_time"),
                    first_snapshot.alias("first_seen_snapshot"),
                    F.timestamp_micros("_last_us").alias("last_seen_time"),
                    seen_snapshots.alias("snapshots"), "n_images", "url_seen"))


def pair_sightings(rows: DataFrame) -> DataFrame:
    """The per-pair part of `pool_sightings` for seen pairs: what --previous folds new files into."""
    return rows.where(F.col("first_seen_time").isNotNull()).select(*SIGHTINGS.names).dropDuplicates(["url", "text"])


def fold_sightings(previous: DataFrame, new: DataFrame) -> DataFrame:
    """Per-pair sightings of two sets of WARC files combined: equal to reading them all at once."""
    return (previous.select(*SIGHTINGS.names).unionByName(new.select(*SIGHTINGS.names))
            .groupBy("url", "text")
            .agg(_earliest("first_seen_time", "first_seen_snapshot").alias("_first"),
                 F.max("last_seen_time").alias("last_seen_time"),
                 F.array_sort(F.array_distinct(F.flatten(F.collect_list("snapshots")))).alias("snapshots"),
                 F.sum("n_images").alias("n_images"))
            .select("url", "text", *_unpack_earliest("_first"), "last_seen_time", "snapshots", "n_images"))


def rows_from_sightings(pool: DataFrame, sightings_df: DataFrame, seen_urls: DataFrame) -> DataFrame:
    """`pool_sightings`' rows rebuilt from per-pair sightings and the seen pool URLs."""
    urls = seen_urls.select("url").distinct().withColumn("url_seen", F.lit(True))
    return (pool.select(*POOL_KEYS.names).join(sightings_df.select(*SIGHTINGS.names), ["url", "text"], "left")
            .join(urls, "url", "left")
            .withColumn("url_seen", F.coalesce("url_seen", F.lit(False)))
            .select(*POOL_SIGHTING_COLUMNS))


def split_matched(rows: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(matched rows in the output contract, unmatched pool rows)."""
    seen = F.col("first_seen_time").isNotNull()
    matched = (rows.where(seen)
               .withColumn("first_seen_month", F.date_format("first_seen_time", "yyyy-MM"))
               .withColumn("first_seen_year", F.year("first_seen_time").cast("int"))
               .withColumn("n_snapshots_seen", F.size("snapshots").cast("int"))
               .select(*MATCHED.names))
    return matched, rows.where(~seen).select(*UNMATCHED.names)


def read_pool(spark: SparkSession, metadata_dir: str) -> DataFrame:
    """DataComp metadata parquet (the .npz files beside it are skipped)."""
    df = spark.read.option("pathGlobFilter", "*.parquet").parquet(metadata_dir)
    missing = POOL_KEYS.missing(df.columns)
    if missing:
        raise InputError(f"{metadata_dir}: metadata lacks required column(s) {', '.join(missing)} "
                         f"(has {', '.join(df.columns)})")
    return df.select(*POOL_KEYS.names)
