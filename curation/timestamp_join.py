"""Give every DataComp pair the month Common Crawl first saw it.

    spark-submit curation/timestamp_join.py MANIFEST DATACOMP_METADATA_DIR OUTPUT_DIR [options]

MANIFEST lists one WARC path per line (WAT paths with --input-format wat) (`#` comments allowed): local paths, file:// or any
Hadoop-readable URI (hdfs://, s3a://, ...). Relative lines are resolved against --input-base,
by default the manifest's own directory (so a sample web's warc.manifest, or Common Crawl's
warc.paths with --input-base s3a://commoncrawl/, work as they are).

OUTPUT_DIR receives (written to a temporary sibling, then renamed into place):
  first_seen/first_seen_year=YYYY/   matched DataComp rows with their timestamps
  unmatched/                         DataComp rows no snapshot showed
  sightings/                         per (url, text, snapshot) of pool pairs: what --previous folds into
  seen_urls/                         pool URLs seen with any text (the url-only match count)
  warc_files/                        the WARC files read so far
  stats.json                         every input row accounted for, stage by stage
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a file (spark-submit curation/timestamp_join.py): find the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow.parquet as pq  # noqa: E402
from pyspark import StorageLevel  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from curation import timestamps as ts  # noqa: E402
from curation.extract import ExtractConfig, add_rule_args  # noqa: E402
from curation.manifest import read_manifest  # noqa: E402
from curation.metadata import check_pool, list_shards, parquet_rows  # noqa: E402
from ticcore.validate import ArgumentParser, number, spark_uid_problems  # noqa: E402
from ticcore.sparkio import staged_output, write_stats  # noqa: E402
from curation.warc_reader import READERS, accounting_errors, all_inputs_failed, nest_stats  # noqa: E402
from ticcore.errors import InputError, report_user_errors, require_accounting  # noqa: E402
from ticcore.schemas import POOL_KEYS, WARC_FILES  # noqa: E402
from ticcore.sparkio import (build_session, check_output_local, hadoop_fs, is_local, local_path,  # noqa: E402
                              parquet_writer, read_text)

TOOL = "tic-timestamp-join"


@dataclass(frozen=True)
class TimestampJoinConfig:
    manifest: str
    metadata_dir: str
    output_dir: str
    previous: str | None = None
    input_base: str | None = None
    partitions: int | None = None
    max_page_mb: float = 5.0
    master: str = "local[*]"
    keep_candidates: bool = False
    files_per_year: int = 1
    reader: str = "warcio"
    pair_rules: str = "datacomp"
    input_format: str = "warc"

    def __post_init__(self):
        self.extract  # noqa: B018 - ExtractConfig refuses unknown or clashing settings: up front, not after the inputs are read

    @property
    def max_page_bytes(self) -> int:
        return int(self.max_page_mb * (1 << 20))

    @property
    def extract(self) -> ExtractConfig:
        return ExtractConfig(max_page_bytes=self.max_page_bytes, reader=self.reader, pair_rules=self.pair_rules,
                             input_format=self.input_format)


def parse_args(argv: list[str] | None) -> TimestampJoinConfig:
    p = ArgumentParser(prog="timestamp_join.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest")
    p.add_argument("metadata_dir", help="directory of DataComp metadata parquet (.npz files are ignored)")
    p.add_argument("output_dir")
    p.add_argument("--previous", help="an earlier OUTPUT_DIR: fold only WARC files it has not read into it")
    p.add_argument("--input-base", help="base for relative manifest lines (default: the manifest's directory)")
    p.add_argument("--partitions", type=number(int, 1), help="extraction partitions (default: 4 x default parallelism)")
    p.add_argument("--max-page-mb", type=number(float, 0, lo_open=True), default=5.0, help="skip (and count) larger HTML payloads")
    p.add_argument("--reader", choices=READERS, default="warcio",
                   help="WARC reader: fastwarc gives the same rows and counts with a little less CPU (default: warcio; "
                        "WARC input only)")
    add_rule_args(p)
    p.add_argument("--master", default="local[*]", help="used only when not launched by spark-submit")
    p.add_argument("--keep-candidates", action="store_true", help="also write candidates/ (every <img> row)")
    p.add_argument("--files-per-year", type=number(int, 1), default=1,
                   help="parquet files per first_seen_year partition (rows split by uid hash; default 1)")
    a = p.parse_args(argv)
    if a.files_per_year < 1:
        p.error("--files-per-year must be at least 1")
    return TimestampJoinConfig(a.manifest, a.metadata_dir, a.output_dir, a.previous, a.input_base, a.partitions,
                               a.max_page_mb, a.master, a.keep_candidates, a.files_per_year, a.reader,
                               a.pair_rules, a.input_format)


# ------------------------------------------------------------------ inputs

def check_metadata_local(metadata_dir: str) -> None:
    check_pool(local_path(metadata_dir), POOL_KEYS.names)


# ------------------------------------------------------------------ the job

def run(spark, cfg: TimestampJoinConfig, log=print) -> dict:
    """The whole job on a given session; returns the stats written to stats.json."""
    if is_local(cfg.output_dir):
        check_output_local(cfg.output_dir, TOOL)
    if is_local(cfg.metadata_dir):
        check_metadata_local(cfg.metadata_dir)
    paths = read_manifest(cfg.manifest, cfg.input_base, spark)
    pool = ts.read_pool(spark, cfg.metadata_dir)
    problem = spark_uid_problems(pool)
    if problem:  # a bad or repeated uid would be passed on, or collapse rows and break the accounting
        raise InputError(f"{cfg.metadata_dir}: {problem}; the pool is refused")

    prev_files, prev_counters = _previous(spark, cfg)
    todo = [p for p in dict.fromkeys(paths) if p not in prev_files]
    log(f"[{TOOL}] {len(paths)} WARC files in the manifest, {len(todo)} to read"
        + (f", {len(paths) - len(todo)} already in {cfg.previous}" if cfg.previous else ""))
    todo, candidates, counters, snapshots = _extract(spark, cfg, todo)
    for key, value in prev_counters.items():
        counters[key] = counters.get(key, 0) + int(value)

    # from the footers check_metadata_local read (a Spark count is a job of its own)
    n_pool = sum(map(parquet_rows, list_shards(local_path(cfg.metadata_dir)))) if is_local(cfg.metadata_dir) \
        else pool.count()
    rows = _pool_rows(spark, cfg, pool, candidates, snapshots, n_pool)
    files_df = spark.createDataFrame([(p,) for p in sorted(set(todo) | prev_files)], WARC_FILES.spark_ddl())
    with staged_output(spark, cfg.output_dir, TOOL) as tmp:
        _write_outputs(cfg, tmp, rows, candidates if todo else None, files_df)
        join, by_year = _join_counts(rows, n_pool)
        rows.unpersist()
        failed = all_inputs_failed(counters)
        if failed:
            raise InputError(f"{cfg.manifest}: {failed}")
        if join["matched"] == 0:
            raise InputError(f"{cfg.metadata_dir}: no pool row matched a pair of the {len(paths)} crawl file(s) "
                             "on (url, text): are the metadata and the manifest from the same crawl and pair rules? "
                             "nothing was written")
        errors = accounting_errors(counters)
        if join["matched"] + join["unmatched"] != n_pool:
            errors.append(f"join: matched {join['matched']} + unmatched {join['unmatched']} != DataComp rows {n_pool}")
        stats = {
            "tool": TOOL,
            "config": asdict(cfg),
            "inputs": {"warc_files_in_manifest": len(paths), "warc_files_read_now": len(todo),
                       "warc_files_from_previous": len(prev_files & set(paths))},
            "warc": nest_stats(counters),
            "warc_counters": counters,
            "join": join,
            "first_seen_by_year": by_year,
            "accounting": {"ok": not errors, "errors": errors},
        }
        write_stats(spark, tmp, stats)
        require_accounting(stats, cfg.output_dir)
    return stats


def _previous(spark, cfg: TimestampJoinConfig) -> tuple[set[str], dict[str, int]]:
    """The WARC files the --previous output has read, and its WARC counters (none without --previous)."""
    if not cfg.previous:
        return set(), {}
    prev_stats = json.loads(read_text(spark, cfg.previous.rstrip("/") + "/stats.json"))
    if prev_stats.get("tool") != TOOL:
        raise InputError(f"{cfg.previous}: not a {TOOL} output")
    # Sightings under other pair rules, or of other inputs, do not fold into these (outputs from
    # before the settings existed were made with the html5 rules from WARC files).
    prev_cfg = prev_stats.get("config", {})
    prev = (prev_cfg.get("pair_rules", "html5"), prev_cfg.get("input_format", "warc"))
    if prev != (cfg.pair_rules, cfg.input_format):
        raise InputError(f"{cfg.previous}: made with --pair-rules {prev[0]} --input-format {prev[1]}, "
                         f"not {cfg.pair_rules} / {cfg.input_format}: its sightings do not fold into this run")
    files = {r.warc_file for r in spark.read.parquet(cfg.previous.rstrip("/") + "/warc_files").collect()}
    return files, prev_stats["warc_counters"]


def _extract(spark, cfg: TimestampJoinConfig, todo: list[str]):
    """(the files read, their candidates, their WARC counters, their sorted snapshot ids). A Hadoop file
    that does not exist is counted as missing and not read."""
    counters: dict[str, int] = {}
    hadoop = not all(is_local(p) for p in todo)
    if hadoop:  # the driver checks existence, so one missing file does not fail binaryFiles
        present = []
        for p in todo:
            fs, jp = hadoop_fs(spark, p)
            if fs.exists(jp):
                present.append(p)
            else:
                counters["files.input"] = counters.get("files.input", 0) + 1
                counters["files.failed.missing"] = counters.get("files.failed.missing", 0) + 1
        todo = present
    if not todo:
        return todo, spark.createDataFrame([], ts.CANDIDATE_SCHEMA), counters, []
    candidates, counter_df = ts.extract_candidates(spark, todo, cfg.extract, cfg.partitions, hadoop_paths=hadoop)
    found, snapshots = ts.split_counters(counter_df.collect())
    for key, value in found.items():
        counters[key] = counters.get(key, 0) + value
    return todo, candidates, counters, snapshots


def _pool_rows(spark, cfg: TimestampJoinConfig, pool, candidates, snapshots: list[str], n_pool: int):
    """`timestamps.pool_sightings` of this run's candidates, folded into --previous's sightings (persisted)."""
    rows = ts.pool_sightings(candidates, pool, partitions=ts.join_partitions(spark, n_pool), snapshots=snapshots)
    if cfg.previous:
        prev = cfg.previous.rstrip("/")
        sightings_df = ts.fold_sightings(spark.read.parquet(prev + "/sightings"), ts.pair_sightings(rows))
        urls_df = (rows.where("url_seen").select("url")
                   .unionByName(spark.read.parquet(prev + "/seen_urls")).distinct())
        rows = ts.rows_from_sightings(pool, sightings_df, urls_df)
    return rows.persist(StorageLevel.MEMORY_AND_DISK)


def _write_outputs(cfg: TimestampJoinConfig, tmp: str, rows, candidates, files_df) -> None:
    """Every parquet output into `tmp` (candidates/ only when there are new ones and --keep-candidates)."""
    plain = ts.NEARLY_UNIQUE_COLUMNS
    if cfg.keep_candidates and candidates is not None:
        parquet_writer(candidates, plain).partitionBy("snapshot").parquet(tmp + "/candidates")
    matched, unmatched = ts.split_matched(rows)
    bucket = F.pmod(F.xxhash64("uid"), F.lit(cfg.files_per_year))
    parquet_writer(matched.withColumn("_bucket", bucket).repartition("first_seen_year", "_bucket")
                   .sortWithinPartitions("uid").drop("_bucket"), plain) \
        .partitionBy("first_seen_year").parquet(tmp + "/first_seen")
    parquet_writer(unmatched.repartition(1).sortWithinPartitions("uid"), plain).parquet(tmp + "/unmatched")
    parquet_writer(ts.pair_sightings(rows).repartition(1).sortWithinPartitions("url", "text"), plain) \
        .parquet(tmp + "/sightings")
    parquet_writer(rows.where("url_seen").select("url").distinct().repartition(1).sortWithinPartitions("url"),
                   plain).parquet(tmp + "/seen_urls")
    files_df.repartition(1).sortWithinPartitions("warc_file").write.parquet(tmp + "/warc_files")


def _join_counts(rows, n_pool: int) -> tuple[dict, dict[str, int]]:
    """(stats.json's `join`, matched rows per first-seen year): one aggregation over the persisted rows
    that first_seen/ and unmatched/ were written from (`split_matched`'s rule: matched = a first-seen
    time), so no output is read back and counting is one small job."""
    matched = F.col("first_seen_time").isNotNull()
    groups = (rows.groupBy(F.when(matched, F.year("first_seen_time").cast("int")).alias("year"),
                           matched.alias("matched"))
              .agg(F.count(F.lit(1)).alias("rows"), F.sum(F.col("url_seen").cast("long")).alias("url_seen"))
              .collect())
    by_year = {str(r.year): int(r.rows) for r in sorted((r for r in groups if r.matched), key=lambda r: r.year)}
    n_matched = sum(by_year.values())
    n_unmatched = sum(int(r.rows) for r in groups if not r.matched)
    n_url_only = sum(int(r.url_seen or 0) for r in groups)
    return {"datacomp_rows": n_pool, "matched": n_matched, "unmatched": n_unmatched,
            "matched_on_url_alone": n_url_only, "url_matches_with_other_text": n_url_only - n_matched}, by_year


def _checked_run(cfg: TimestampJoinConfig) -> dict:
    # Cheap checks first, before a JVM starts.
    if is_local(cfg.manifest):
        read_manifest(cfg.manifest, cfg.input_base)
    if is_local(cfg.metadata_dir):
        check_metadata_local(cfg.metadata_dir)
    if is_local(cfg.output_dir):
        check_output_local(cfg.output_dir, TOOL)
    spark = build_session(TOOL, cfg.master)
    try:
        return run(spark, cfg)
    finally:
        spark.stop()


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    return report_user_errors(TOOL, lambda: _report(_checked_run(cfg)), also=(ValueError,))


def _report(stats: dict) -> int:
    """The run's summary on stdout; the exit code (1: the accounting does not add up)."""
    j = stats["join"]
    print(f"[{TOOL}] {j['datacomp_rows']} DataComp rows: {j['matched']} matched on (url, text), "
          f"{j['unmatched']} unmatched ({j['matched_on_url_alone']} would match on url alone); "
          f"accounting {'ok' if stats['accounting']['ok'] else 'FAILED: ' + '; '.join(stats['accounting']['errors'])}")
    print(f"[{TOOL}] pairs per first-seen year: " + ", ".join(f"{y}: {n}" for y, n in stats["first_seen_by_year"].items()))
    return 0 if stats["accounting"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
