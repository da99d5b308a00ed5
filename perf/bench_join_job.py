"""The timestamp join's start-up and statistics (issue 27, item 3), side by side in one run.

From the same synthetic input as perf/bench_timestamps.py (a pool of --rows DataComp rows, the
candidates a crawl of 18 snapshots gives), two measures, each in a fresh process (a fresh JVM: what a
`spark-submit` user sees; session start-up printed apart) and again warm (same JVM after a warm-up of
each query and one job run, alternating, median of --repeats):

Cold runs also print the JVM's CPU by thread kind (JIT compilers, GC, task threads).

1. the join query (bench_timestamps.spark_join: pool_sightings + first_seen/ written) against DuckDB's
   `first_seen_join` (2 threads), Spark local[2]: `before` finds the snapshot ids with a Spark job of
   their own (a scan of the candidates), `now` has them as the job now has them, from the
   extraction's counters. Targets: cold <= 2x DuckDB, warm <= 1.2x.
2. the job after extraction (curation.timestamp_join: uid check, pool rows, every output, the counts
   of stats.json) `before` (pool.count(), snapshot ids by a job, the join's counts re-read from three
   outputs) and `now` (rows from the footers, ids from extraction, one aggregation over the persisted
   rows): wall time and the number of Spark jobs.

CPU time of the process tree (driver, JVM, workers) is printed beside wall time: this machine is
shared, so the wall ratios are noisy.

    python perf/bench_join_job.py --rows 1000000
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf.bench_filters import tree_cpu  # noqa: E402
from perf.bench_timestamps import duckdb_join, synth_inputs  # noqa: E402

SNAPSHOTS = 18


def session():
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[2]").config("spark.sql.session.timeZone", "UTC")
             .config("spark.ui.enabled", "false").config("spark.driver.memory", "6g")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.shuffle.partitions", "8")
             .config("spark.driver.extraJavaOptions", os.environ.get("BENCH_JAVA_OPTS", "")).getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def snapshot_ids(root: Path) -> list[str]:
    import pyarrow.dataset as pads

    return sorted(pads.dataset(str(root / "candidates")).to_table(columns=["snapshot"])["snapshot"].unique().to_pylist())


def query(spark, root: Path, out: Path, way: str) -> None:
    """bench_timestamps.spark_join, the snapshot ids found by a job (`before`) or given (`now`)."""
    from curation import timestamps as ts
    from ticcore.sparkio import parquet_writer

    pool = ts.read_pool(spark, str(root / "metadata"))
    cands = spark.read.parquet(str(root / "candidates"))
    ids = None if way == "before" else json.loads((root / "snapshot_ids.json").read_text())
    matched, _ = ts.split_matched(ts.pool_sightings(cands, pool, snapshots=ids))
    parquet_writer(matched, ts.NEARLY_UNIQUE_COLUMNS).mode("overwrite").parquet(str(out / "spark"))


def _join_counts_before(spark, tmp: str, rows, n_pool: int):
    """curation.timestamp_join._join_counts before issue 27: counted from the written outputs."""
    first = spark.read.parquet(tmp + "/first_seen")
    by_year = {str(r.first_seen_year): int(r["count"])
               for r in first.groupBy("first_seen_year").count().orderBy("first_seen_year").collect()}
    n_matched = sum(by_year.values())
    n_unmatched = spark.read.parquet(tmp + "/unmatched").count()
    n_url_only = rows.where("url_seen").count()
    return {"datacomp_rows": n_pool, "matched": n_matched, "unmatched": n_unmatched,
            "matched_on_url_alone": n_url_only, "url_matches_with_other_text": n_url_only - n_matched}, by_year


def job(spark, root: Path, out: Path, way: str) -> dict:
    """The join job's work after extraction (curation.timestamp_join.run from `_pool_rows` on), the
    candidates read from disk instead of extracted."""
    from curation import timestamp_join as tj
    from curation import timestamps as ts
    from curation.metadata import list_shards, parquet_rows
    from ticcore.validate import spark_uid_problems

    shutil.rmtree(out, ignore_errors=True)
    cfg = tj.TimestampJoinConfig("unused.manifest", str(root / "metadata"), str(out))
    pool = ts.read_pool(spark, cfg.metadata_dir)
    spark_uid_problems(pool)  # the job's check, run for its cost (the synthetic uids need not pass it)
    cands = spark.read.parquet(str(root / "candidates"))
    if way == "before":
        n_pool, ids = pool.count(), None
    else:
        n_pool = sum(map(parquet_rows, list_shards(cfg.metadata_dir)))
        ids = json.loads((root / "snapshot_ids.json").read_text())
    rows = tj._pool_rows(spark, cfg, pool, cands, ids, n_pool)
    files = spark.range(1).selectExpr("'f.warc.gz' AS warc_file")
    out.mkdir(parents=True)
    tj._write_outputs(cfg, str(out), rows, None, files)
    join, by_year = (_join_counts_before(spark, str(out), rows, n_pool) if way == "before"
                     else tj._join_counts(rows, n_pool))
    rows.unpersist()
    return {"join": join, "by_year": by_year}


def timed(spark, fn, *args) -> tuple[float, float, int, object]:
    """(wall s, process-tree CPU s, Spark jobs run, result)."""
    tracker = spark.sparkContext.statusTracker()
    group = f"bench-{time.monotonic_ns()}"
    spark.sparkContext.setJobGroup(group, group)
    c0, w0 = tree_cpu(), time.perf_counter()
    result = fn(spark, *args)
    wall, cpu = time.perf_counter() - w0, tree_cpu() - c0
    return wall, cpu, len(tracker.getJobIdsForGroup(group)), result


def fresh(argv: list[str]) -> dict:
    """One measure in a fresh process (this file's `one` mode): {session, wall, cpu, jobs}."""
    done = subprocess.run([sys.executable, __file__, "one", *argv], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def one(argv: list[str]) -> None:
    what, way, root, out = argv[0], argv[1], Path(argv[2]), Path(argv[3])
    if what == "duckdb":
        c0, w0 = tree_cpu(), time.perf_counter()
        duckdb_join(root, out)
        print(json.dumps({"session": 0.0, "wall": time.perf_counter() - w0, "cpu": tree_cpu() - c0, "jobs": 0}))
        return
    w0 = time.perf_counter()
    spark = session()
    started = time.perf_counter() - w0
    before = jvm_threads_cpu()
    wall, cpu, jobs, _ = timed(spark, query if what == "query" else job, root, out, way)
    after = jvm_threads_cpu()
    spark.stop()
    threads = {k: round(v - before.get(k, 0), 1) for k, v in after.items() if v - before.get(k, 0) >= 0.5}
    print(json.dumps({"session": started, "wall": wall, "cpu": cpu, "jobs": jobs, "jvm_threads": threads}))


def jvm_threads_cpu() -> dict[str, float]:
    """CPU seconds of this process's JVM child by thread kind (JIT compilers, GC, task threads, ...)."""
    tick, out = os.sysconf("SC_CLK_TCK"), {}
    for pid in os.listdir("/proc"):
        try:
            if not pid.isdigit() or int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1]) != os.getpid():
                continue
            if "java" not in open(f"/proc/{pid}/cmdline").read():
                continue
            for tid in os.listdir(f"/proc/{pid}/task"):
                text = open(f"/proc/{pid}/task/{tid}/stat").read()
                name = text[text.index("(") + 1:text.rindex(")")].rstrip("0123456789 -#")
                fields = text.rsplit(")", 1)[1].split()
                out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
        except (OSError, ValueError):
            continue
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "one":
        return one(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=1, help="warm runs of each, alternating (median)")
    p.add_argument("--input", help="an earlier synthesised input to reuse (ROOT with metadata/, candidates/)")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-join-job-"))
    try:
        root = Path(args.input) if args.input else tmp / "in"
        if not args.input:
            n = synth_inputs(root, args.rows, SNAPSHOTS)
            print(f"(synthesised {args.rows:,} rows x {SNAPSHOTS} snapshots: {n:,} candidate rows)")
        if not (root / "snapshot_ids.json").exists():
            (root / "snapshot_ids.json").write_text(json.dumps(snapshot_ids(root)))
        out = tmp / "out"
        out.mkdir()
        label = f"{args.rows:,} rows x {SNAPSHOTS} snapshots"

        # ---- cold: each in a fresh process
        cold = {"duckdb": fresh(["duckdb", "-", str(root), str(out)])}
        for what in ("query", "job"):
            for way in ("before", "now"):
                cold[what, way] = fresh([what, way, str(root), str(out / f"{what}-{way}")])
        d = cold["duckdb"]
        print(f"cold (a fresh process each; Spark's session start not counted, {cold['query', 'now']['session']:.1f} s):")
        print(f"  DuckDB first_seen_join: {d['wall']:.1f} s wall, {d['cpu']:.1f} s CPU")
        for what in ("query", "job"):
            for way in ("before", "now"):
                r = cold[what, way]
                print(f"  Spark {what} {way:6s}: {r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU, {r['jobs']} Spark jobs, "
                      f"JVM threads {r['jvm_threads']}"
                      + (f"; Spark/DuckDB = {r['wall'] / d['wall']:.2f} wall, {r['cpu'] / d['cpu']:.2f} CPU "
                         f"(target <= 2)" if what == "query" else ""))
            b, n = cold[what, "before"], cold[what, "now"]
            print(f"  {what}: now/before = {n['wall'] / b['wall']:.2f} wall, {n['cpu'] / b['cpu']:.2f} CPU")

        # ---- warm: one JVM, alternating
        spark = session()
        try:
            # warm-up: each query once, one job (the job's own write paths; both ways share them)
            for what, way in (("query", "before"), ("query", "now"), ("job", "now")):
                timed(spark, query if what == "query" else job, root, out / f"{what}-{way}", way)
            runs: dict = {k: [] for k in ("duckdb", ("query", "before"), ("query", "now"), ("job", "before"),
                                          ("job", "now"))}
            for _ in range(args.repeats):
                c0, w0 = tree_cpu(), time.perf_counter()
                duckdb_join(root, out)
                runs["duckdb"].append((time.perf_counter() - w0, tree_cpu() - c0, 0))
                for what in ("query", "job"):
                    for way in ("before", "now"):
                        runs[what, way].append(timed(spark, query if what == "query" else job, root,
                                                     out / f"{what}-{way}", way)[:3])
        finally:
            spark.stop()
        med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v), v[0][2])
               for k, v in runs.items()}
        d = med["duckdb"]
        print(f"warm (one JVM, medians of {args.repeats}, {label}):")
        print(f"  DuckDB first_seen_join: {d[0]:.1f} s wall, {d[1]:.1f} s CPU")
        for what in ("query", "job"):
            for way in ("before", "now"):
                w, c, jobs = med[what, way]
                print(f"  Spark {what} {way:6s}: {w:.1f} s wall, {c:.1f} s CPU, {jobs} Spark jobs (runs "
                      f"{', '.join(f'{r[0]:.1f}' for r in runs[what, way])})"
                      + (f"; Spark/DuckDB = {w / d[0]:.2f} wall, {c / d[1]:.2f} CPU (target <= 1.2)"
                         if what == "query" else ""))
            b, n = med[what, "before"], med[what, "now"]
            print(f"  {what}: now/before = {n[0] / b[0]:.2f} wall, {n[1] / b[1]:.2f} CPU")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
