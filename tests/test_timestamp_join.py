"""The Spark first-seen join (issue 4): DataFrame functions on local[1], the job end to end,
incremental runs, DuckDB parity, bad input, and a real standalone cluster."""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from ticcore import sqlfiles
from curation import timestamps as ts
from curation.extract_cli import extract_to_dir
from curation.manifest import read_manifest
from curation.timestamp_join import TimestampJoinConfig, main as job_main, parse_args, run
from ticcore.errors import InputError
from ticcore.spark_standalone import standalone_cluster

from .conftest import REPO

UTC = dt.timezone.utc


def _t(day, hour=0):
    return dt.datetime(2016, 3, day, hour, tzinfo=UTC)


def test_first_seen_takes_the_earliest_crawl_over_all_snapshots(spark):
    rows = [  # (page_url, url, text, crawl_time, snapshot, warc_file, warc_offset)
        ("p1", "u1", "t1", _t(20), "CC-MAIN-2016-14", "f2", 0),
        ("p2", "u1", "t1", _t(9), "CC-MAIN-2016-10", "f1", 10),   # earliest
        ("p3", "u1", "t1", _t(25), "CC-MAIN-2016-14", "f2", 20),  # latest
        ("p4", "u1", "other text", _t(1), "CC-MAIN-2016-07", "f0", 0),  # same url, other text
        ("p5", "u2", "t2", _t(15), "CC-MAIN-2016-10", "f1", 30),
        ("p6", "u2", "t2", _t(15), "CC-MAIN-2016-09", "f9", 30),  # a tie: the smaller snapshot id wins
        ("p7", "u9", "t9", _t(1), "CC-MAIN-2016-07", "f0", 40),   # not in the pool
    ]
    cands = spark.createDataFrame(rows, ts.CANDIDATE_SCHEMA)
    pool = spark.createDataFrame([("a" * 32, "u1", "t1"), ("b" * 32, "u2", "t2"), ("c" * 32, "u3", "t3")],
                                 "uid string, url string, text string")
    rows = ts.pool_sightings(cands, pool)
    matched, unmatched = ts.split_matched(rows)
    got = {r.uid: r.asDict() for r in matched.collect()}
    a = got["a" * 32]
    assert a["first_seen_time"].replace(tzinfo=None) == _t(9).replace(tzinfo=None)
    assert a["first_seen_snapshot"] == "CC-MAIN-2016-10"
    assert a["last_seen_time"].replace(tzinfo=None) == _t(25).replace(tzinfo=None)
    assert a["n_snapshots_seen"] == 2 and a["first_seen_month"] == "2016-03" and a["first_seen_year"] == 2016
    assert got["b" * 32]["first_seen_snapshot"] == "CC-MAIN-2016-09"
    assert [r.uid for r in unmatched.collect()] == ["c" * 32]
    assert rows.where("url_seen").count() == 2
    # Explicit join partitions (what a pool too big for the session's setting gets) change nothing.
    assert sorted(map(tuple, ts.pool_sightings(cands, pool, partitions=3).collect())) == \
        sorted(map(tuple, rows.collect()))
    configured = int(spark.conf.get("spark.sql.shuffle.partitions"))
    assert ts.join_partitions(spark, 10) is None
    assert ts.join_partitions(spark, ts.POOL_ROWS_PER_JOIN_PARTITION * (configured + 5)) == configured + 5
    # Folding two halves of the candidates gives what all of them give at once.
    first_half, second_half = cands.where("warc_file in ('f0', 'f1')"), cands.where("warc_file not in ('f0', 'f1')")
    folded = ts.fold_sightings(ts.pair_sightings(ts.pool_sightings(first_half, pool)),
                               ts.pair_sightings(ts.pool_sightings(second_half, pool)))
    assert sorted(map(tuple, folded.collect())) == sorted(map(tuple, ts.pair_sightings(rows).collect()))


def test_snapshot_sets_over_many_snapshots_and_sightings_without_one(spark):
    # 130 snapshots: the per-row snapshot set spans three 64-bit words of the packed aggregation.
    snaps = [f"CC-MAIN-{2014 + i // 13}-{10 + i % 13:02d}" for i in range(130)]
    base = dt.datetime(2014, 1, 1, tzinfo=UTC)
    rows = [("p", "u1", "t1", base + dt.timedelta(days=7 * i, microseconds=250), s, "f", i)
            for i, s in enumerate(snaps) if i % 3 == 0]
    rows += [("p", "u2", "t2", base + dt.timedelta(days=3), None, "f", 1),      # no snapshot id: earliest,
             ("p", "u2", "t2", base + dt.timedelta(days=3), snaps[127], "f", 2),  # but a known id wins the tie
             ("p", "u3", "t3", base + dt.timedelta(days=5), None, "f", 3)]         # only ever without an id
    cands = spark.createDataFrame(rows, ts.CANDIDATE_SCHEMA)
    pool = spark.createDataFrame([("a" * 32, "u1", "t1"), ("b" * 32, "u2", "t2"), ("c" * 32, "u3", "t3")],
                                 "uid string, url string, text string")
    got = {r.uid: r for r in ts.pool_sightings(cands, pool).collect()}
    assert got["a" * 32].snapshots == [s for i, s in enumerate(snaps) if i % 3 == 0]
    assert got["a" * 32].n_images == 44 and got["a" * 32].first_seen_snapshot == snaps[0]
    assert got["a" * 32].first_seen_time.replace(tzinfo=None) == (base + dt.timedelta(microseconds=250)).replace(
        tzinfo=None)
    assert got["b" * 32].snapshots == [snaps[127]] and got["b" * 32].first_seen_snapshot == snaps[127]
    assert got["c" * 32].snapshots == [] and got["c" * 32].first_seen_snapshot is None
    assert got["c" * 32].first_seen_time is not None and got["c" * 32].n_images == 1


@pytest.fixture
def full_run(timestamps_out):
    return timestamps_out


def _first_seen_rows(out: Path):
    return duckdb.sql(f"""select uid, url, text, first_seen_time, first_seen_month, first_seen_year::INTEGER,
        first_seen_snapshot, last_seen_time, n_snapshots_seen
        from read_parquet('{out}/first_seen/*/*.parquet', hive_partitioning=true) order by uid""").fetchall()


def _unmatched(out: Path):
    return duckdb.sql(f"select uid from '{out}/unmatched/*.parquet' order by uid").fetchall()


def test_job_matches_the_ground_truth_and_accounts_for_every_row(full_run, sample_web):
    out, stats = full_run
    assert stats["accounting"]["ok"], stats["accounting"]["errors"]
    j = stats["join"]
    truth = duckdb.sql(f"select uid, first_seen_time, first_seen_snapshot, last_seen_time, n_snapshots_seen "
                       f"from '{sample_web}/truth/*.parquet'").df()
    seen = truth[truth.first_seen_time.notna()]
    assert j["matched"] == len(seen) and j["unmatched"] == len(truth) - len(seen)
    assert j["matched"] + j["unmatched"] == j["datacomp_rows"]
    assert j["matched_on_url_alone"] >= j["matched"]
    got = duckdb.sql(f"""select uid, first_seen_time, first_seen_snapshot, last_seen_time, n_snapshots_seen
        from read_parquet('{out}/first_seen/*/*.parquet', hive_partitioning=true)""").df()
    merged = seen.merge(got, on="uid", suffixes=("_truth", ""))
    assert len(merged) == len(seen)
    for col in ("first_seen_time", "last_seen_time"):
        assert (merged[col].dt.tz_localize(None) == merged[col + "_truth"].dt.tz_localize(None)).all()
    assert (merged.first_seen_snapshot == merged.first_seen_snapshot_truth).all()
    assert (merged.n_snapshots_seen == merged.n_snapshots_seen_truth).all()
    w = stats["warc"]
    for stage in ("files", "records", "responses", "images"):
        kept = w[stage].get("kept", 0)
        dropped = sum(w[stage].get("dropped", {}).values())
        failed = sum(w[stage].get("failed", {}).values())
        assert kept + dropped + failed == w[stage]["input"], stage
    assert w["records"]["failed"]["corrupt_gzip_member"] >= 1
    assert sum(stats["first_seen_by_year"].values()) == j["matched"]
    years = sorted(int(p.name.split("=")[1]) for p in (out / "first_seen").glob("first_seen_year=*"))
    assert years == list(range(2014, 2023))


def test_nearly_unique_columns_are_written_without_dictionaries(full_run):
    import pyarrow.parquet as pq

    out, _ = full_run
    files = sorted((out / "first_seen").glob("*/*.parquet"))
    assert files
    meta = pq.ParquetFile(files[0]).metadata
    encodings = {meta.schema.column(i).name: set(meta.row_group(0).column(i).encodings)
                 for i in range(meta.num_columns)}
    for column in ("uid", "url", "text", "first_seen_time", "last_seen_time"):
        assert not any("DICTIONARY" in e for e in encodings[column]), (column, encodings[column])
    assert any("DICTIONARY" in e for e in encodings["first_seen_month"])  # few values: a dictionary pays


def test_outputs_follow_their_contracts(full_run):
    """Every parquet output has the columns, in order, that ticcore.schemas gives it."""
    import pyarrow.parquet as pq

    from ticcore.schemas import FIRST_SEEN, MATCHED, SEEN_URLS, SIGHTINGS, UNMATCHED, WARC_FILES

    out, _ = full_run
    matched = pq.read_table(out / "first_seen")  # first_seen_year comes back last, from the partition path
    assert matched.column_names == [c for c in MATCHED.names if c != "first_seen_year"] + ["first_seen_year"]
    assert matched.schema.field("n_snapshots_seen").type == FIRST_SEEN.arrow_schema().field("n_snapshots_seen").type
    for name, contract in (("unmatched", UNMATCHED), ("sightings", SIGHTINGS), ("seen_urls", SEEN_URLS),
                           ("warc_files", WARC_FILES)):
        assert pq.read_schema(next((out / name).glob("*.parquet"))).names == list(contract.names), name
    assert pq.read_schema(next((out / "sightings").glob("*.parquet"))).field("n_images").type == \
        SIGHTINGS.arrow_schema().field("n_images").type


def test_spark_and_duckdb_give_identical_rows(full_run, sample_web, tmp_path):
    out, _ = full_run
    cands = tmp_path / "cands"
    extract_to_dir(read_manifest(str(sample_web / "warc.manifest"), None), cands, log=lambda *_: None)
    rel = sqlfiles.run("sql/timestamps.sql", "first_seen_join", candidates=str(cands / "candidates.parquet"),
                       metadata=str(sample_web / "metadata" / "*.parquet"))
    reference = rel.fetchall()
    assert reference == _first_seen_rows(out)
    assert len(reference) > 1000


def test_timestamp_queries_run(full_run):
    out, stats = full_run
    queries = sqlfiles.load("sql/timestamps.sql")
    for name in queries:
        if name == "first_seen_join":
            continue
        rows = sqlfiles.run("sql/timestamps.sql", name, root=str(out)).fetchall()
        assert rows, name
    per_year = dict(sqlfiles.run("sql/timestamps.sql", "pairs_per_year", root=str(out)).fetchall()[i][:2]
                    for i in range(9))
    assert {str(k): v for k, v in per_year.items()} == stats["first_seen_by_year"]


def test_named_queries_run_in_the_duckdb_cli_too(full_run, sample_web, tmp_path):
    import csv
    import io

    exe = shutil.which("duckdb") or str(Path(sys.executable).parent / "duckdb")
    if not Path(exe).exists():
        pytest.skip("the duckdb CLI (duckdb-cli) is not installed")
    out, _ = full_run
    cands = tmp_path / "cands"
    extract_to_dir(read_manifest(str(sample_web / "warc.manifest"), None), cands, log=lambda *_: None)
    variables = {"root": str(out), "candidates": str(cands / "candidates.parquet"),
                 "metadata": str(sample_web / "metadata" / "*.parquet")}
    for name, query in sqlfiles.load("sql/timestamps.sql").items():
        sets = [c for k, v in variables.items() for c in ("-c", f"SET VARIABLE {k} = '{v}'")]
        res = subprocess.run([exe, "-csv", *sets, "-c", query.sql], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, (name, res.stderr)
        cli_rows = list(csv.reader(io.StringIO(res.stdout)))[1:]
        py_rows = sqlfiles.run("sql/timestamps.sql", name, **variables).fetchall()
        assert len(cli_rows) == len(py_rows) > 0, name
        assert [r[0] for r in cli_rows] == [str(r[0]) for r in py_rows], name


def test_incremental_run_equals_a_full_recompute(spark, full_run, sample_web, tmp_path):
    full_out, full_stats = full_run
    lines = (sample_web / "warc.manifest").read_text().split()
    early = tmp_path / "early.manifest"
    early.write_text("".join(f"{sample_web / l}\n" for l in lines[:9]))
    everything = tmp_path / "all.manifest"
    everything.write_text("".join(f"{sample_web / l}\n" for l in lines))
    meta = str(sample_web / "metadata")
    quiet = lambda *_: None
    first = run(spark, TimestampJoinConfig(str(early), meta, str(tmp_path / "first")), log=quiet)
    assert first["inputs"]["warc_files_read_now"] == 9
    inc = run(spark, TimestampJoinConfig(str(everything), meta, str(tmp_path / "inc"),
                                         previous=str(tmp_path / "first")), log=quiet)
    assert inc["inputs"]["warc_files_read_now"] == len(lines) - 9
    assert inc["inputs"]["warc_files_from_previous"] == 9
    assert _first_seen_rows(tmp_path / "inc") == _first_seen_rows(full_out)
    assert _unmatched(tmp_path / "inc") == _unmatched(full_out)
    assert inc["join"] == full_stats["join"]
    assert inc["warc_counters"] == full_stats["warc_counters"]
    assert inc["accounting"]["ok"]


def test_rerun_gives_identical_output_and_replaces_its_own_output(spark, full_run, sample_web):
    out, stats = full_run
    before = _first_seen_rows(out)
    # The rerun reads the WARC files with the other reader, which must not change a thing either.
    again = run(spark, TimestampJoinConfig(str(sample_web / "warc.manifest"), str(sample_web / "metadata"), str(out),
                                           reader="fastwarc"), log=lambda *_: None)
    assert _first_seen_rows(out) == before
    assert again["join"] == stats["join"]
    assert again["warc_counters"]["info.fastwarc.records_taken"] > 1000
    assert ({k: v for k, v in again["warc_counters"].items() if not k.startswith("info.fastwarc.")}
            == stats["warc_counters"])
    assert not list(out.parent.glob(".full.tmp-*")) and not list(out.parent.glob(".full.old-*"))


def test_wat_input_and_the_html5_rules(spark, full_run, sample_web, tmp_path):
    """WAT input gives the WARC run's first-seen rows; the html5 rules miss exactly the pairs only
    DataComp's rules find (and may find pairs only they find)."""
    full_out, full_stats = full_run
    quiet = lambda *_: None
    meta = str(sample_web / "metadata")
    wat = run(spark, TimestampJoinConfig(str(sample_web / "wat.manifest"), meta, str(tmp_path / "wat"),
                                         input_format="wat"), log=quiet)
    assert wat["accounting"]["ok"] and wat["config"]["input_format"] == "wat"
    assert wat["warc"]["responses"]["dropped"]["no_img_links"] >= 1
    assert _first_seen_rows(tmp_path / "wat") == _first_seen_rows(full_out)
    assert wat["join"] == full_stats["join"]
    with pytest.raises(InputError, match="--pair-rules datacomp --input-format wat"):
        run(spark, TimestampJoinConfig(str(sample_web / "warc.manifest"), meta, str(tmp_path / "x"),
                                       previous=str(tmp_path / "wat")), log=quiet)

    h5 = run(spark, TimestampJoinConfig(str(sample_web / "warc.manifest"), meta, str(tmp_path / "h5"),
                                        pair_rules="html5"), log=quiet)
    assert h5["accounting"]["ok"] and h5["config"]["pair_rules"] == "html5"
    truth = duckdb.sql(f"select uid, first_seen_time is not null, datacomp_rules_only, html5_rules_only "
                       f"from '{sample_web}/truth/*.parquet'").fetchall()
    matched = {r[0] for r in duckdb.sql(
        f"select uid from read_parquet('{tmp_path}/h5/first_seen/*/*.parquet', hive_partitioning=true)").fetchall()}
    seen = {uid for uid, s, _, _ in truth if s}
    dc_only = {uid for uid, _, d, _ in truth if d}
    h5_only = {uid for uid, _, _, h in truth if h}
    assert dc_only and dc_only <= seen
    assert seen - matched == dc_only
    assert matched - seen <= h5_only


def test_the_rule_flags_reach_the_config():
    cfg = parse_args(["m", "meta", "out", "--input-format", "wat", "--pair-rules", "datacomp"])
    assert (cfg.input_format, cfg.pair_rules, cfg.extract.wat) == ("wat", "datacomp", True)
    assert parse_args(["m", "meta", "out"]).pair_rules == "datacomp"
    with pytest.raises(InputError, match="WAT input takes the datacomp pair rules only"):
        parse_args(["m", "meta", "out", "--input-format", "wat", "--pair-rules", "html5"])


def _job(*args, env=None):
    return subprocess.run([sys.executable, "curation/timestamp_join.py", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, env=env)


def test_bad_input_stops_before_any_work(tmp_path, sample_web):
    empty = tmp_path / "empty.manifest"
    empty.write_text("\n# only a comment\n")
    res = _job(empty, sample_web / "metadata", tmp_path / "out")
    assert res.returncode == 2 and "manifest is empty" in res.stderr and len(res.stderr.strip().splitlines()) == 1

    import pyarrow as pa
    import pyarrow.parquet as pq

    bad_meta = tmp_path / "meta"
    bad_meta.mkdir()
    pq.write_table(pa.table({"uid": ["a"], "caption": ["x"]}), bad_meta / "0.parquet")
    res = _job(sample_web / "warc.manifest", bad_meta, tmp_path / "out")
    assert res.returncode == 2 and "lacks required column(s) text, url" in res.stderr

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    res = _job(sample_web / "warc.manifest", sample_web / "metadata", foreign)
    assert res.returncode == 2 and "refusing to overwrite" in res.stderr
    assert (foreign / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "out").exists()


def test_missing_manifest_entries_are_counted_and_the_job_goes_on(spark, sample_web, tmp_path):
    lines = (sample_web / "warc.manifest").read_text().split()[:2]
    manifest = tmp_path / "m.txt"
    manifest.write_text("".join(f"{sample_web / l}\n" for l in lines) + str(tmp_path / "gone.warc.gz") + "\n")
    stats = run(spark, TimestampJoinConfig(str(manifest), str(sample_web / "metadata"), str(tmp_path / "o")),
                log=lambda *_: None)
    assert stats["warc"]["files"]["failed"]["missing"] == 1
    assert stats["warc"]["files"]["input"] == 3 and stats["accounting"]["ok"]


def test_spark_submit_help_works():
    from pyspark.find_spark_home import _find_spark_home

    res = subprocess.run([os.path.join(_find_spark_home(), "bin", "spark-submit"), "curation/timestamp_join.py",
                          "--help"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "MANIFEST" in res.stdout and "--previous" in res.stdout


@pytest.mark.slow
def test_standalone_cluster_gives_the_local_result(full_run, sample_web, tmp_path):
    """A real Spark standalone master and worker on 127.0.0.1 (ticcore.spark_standalone)."""
    with standalone_cluster(workers=1, cores_per_worker=2, register_s=0) as cluster:
        out = tmp_path / "cluster-out"
        res = subprocess.run([cluster.spark_submit, "--master", cluster.master,
                              "--conf", "spark.sql.session.timeZone=UTC", "--conf", "spark.ui.enabled=false",
                              "--conf", "spark.sql.shuffle.partitions=4",  # the cluster default of 200 is for big inputs
                              "curation/timestamp_join.py", sample_web / "warc.manifest", sample_web / "metadata", out],
                             capture_output=True, text=True, cwd=REPO, env=cluster.env, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        assert "matched on (url, text)" in res.stdout
        local_out, local_stats = full_run
        assert _first_seen_rows(out) == _first_seen_rows(local_out)
        assert json.loads((out / "stats.json").read_text())["join"] == local_stats["join"]
