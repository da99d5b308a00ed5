"""Every CLI against bad inputs (issue 24): exit 2, one line naming the problem, no traceback, and
nothing outside the output changed. The table is the probe list of the issue plus ours; each row is
(case id, argv built from the playground's paths, text the error line must hold)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
UID = "0123456789abcdef0123456789abcdef"
# Lines the JVM writes to stderr on its own (log4j, Spark's progress bar, Java stack frames): not ours.
_JVM_NOISE = re.compile(r"^(\d\d/\d\d/\d\d \d\d:\d\d:\d\d |Using Spark's default|To adjust logging|Setting default log|"
                        r"\s+at |\[Stage |WARNING: |SLF4J|\s*$)")


def _pool(path: Path, uids, text=None, uid_type=pa.string(), text_type=pa.string()) -> Path:
    """A tiny DataComp-style metadata directory with one shard."""
    path.mkdir(parents=True)
    n = len(uids)
    table = pa.table({
        "uid": pa.array(uids, uid_type),
        "url": pa.array([f"http://x.test/{i}.jpg" for i in range(n)]),
        "text": pa.array(text if text is not None else [f"a photo of thing {i} here" for i in range(n)],
                         text_type),
        "original_width": pa.array([512] * n, pa.int64()), "original_height": pa.array([512] * n, pa.int64()),
        "clip_l14_similarity_score": pa.array([0.3] * n, pa.float32()),
        "clip_b32_similarity_score": pa.array([0.3] * n, pa.float32())})
    pq.write_table(table, path / "00000000.parquet")
    return path


@pytest.fixture(scope="module")
def play(tmp_path_factory) -> dict:
    t = tmp_path_factory.mktemp("bad-inputs")
    p = {"t": t, "missing": t / "nope", "empty_dir": t / "empty_dir", "empty_file": t / "empty.txt",
         "garbage": t / "garbage.bin", "foreign": t / "foreign", "a_file": t / "a_file.txt"}
    p["empty_dir"].mkdir()
    p["empty_file"].write_text("")
    p["garbage"].write_bytes(os.urandom(4096))
    p["a_file"].write_text("not a directory\n")
    p["foreign"].mkdir()
    (p["foreign"] / "my_thesis.tex").write_text("precious")
    (p["foreign"] / "stats.json").write_text('{"tool": "tic-extract"}')  # no marker: still not ours
    p["warc_manifest"] = t / "warc.manifest"
    p["warc_manifest"].write_text(str(sorted((ROOT.parent / "shared" / "data" / "warc").glob("*.warc.gz"))[0]) + "\n")
    p["missing_manifest"] = t / "missing.manifest"
    p["missing_manifest"].write_text(str(t / "no-such.warc.gz") + "\n")
    p["latin1_manifest"] = t / "latin1.manifest"
    p["latin1_manifest"].write_bytes("caf\xe9.warc.gz\n".encode("latin-1"))
    p["pool"] = _pool(t / "pool", [UID, UID[::-1], "f" * 32])
    p["pool_int_uid"] = _pool(t / "pool_int_uid", [1, 2, 3], uid_type=pa.int64())
    p["pool_int_text"] = _pool(t / "pool_int_text", [UID, UID[::-1], "f" * 32], text=[1, 2, 3], text_type=pa.int64())
    p["pool_zero_rows"] = _pool(t / "pool_zero_rows", [])
    p["pool_garbage"] = t / "pool_garbage"
    p["pool_garbage"].mkdir()
    (p["pool_garbage"] / "00000000.parquet").write_bytes(os.urandom(2048))
    p["pool_bad_uid"] = _pool(t / "pool_bad_uid", ["../../x", UID, "f" * 32])
    p["pool_dup_uid"] = _pool(t / "pool_dup_uid", [UID, UID, "f" * 32])
    p["yaml_bad"] = t / "bad.yaml"
    p["yaml_bad"].write_text("lr: [1, 2\nmethod: {")
    p["yaml_list"] = t / "list.yaml"
    p["yaml_list"].write_text("- 1\n- 2\n")
    p["trunc_gz"] = t / "yfcc_trunc.gz"
    import gzip
    body = gzip.compress(("\t".join(["x"] * 25) + "\n").encode() * 2000)
    p["trunc_gz"].write_bytes(body[: len(body) // 2])
    return p


def _cases(p: dict) -> list[tuple[str, list[str], str]]:
    s = {k: str(v) for k, v in p.items()}
    out = s["t"] + "/out"
    return [
        # tic-extract
        ("extract-missing-manifest", ["tic-extract", s["missing"], out], "manifest not found"),
        ("extract-manifest-is-dir", ["tic-extract", s["empty_dir"], out], "is a directory"),
        ("extract-manifest-empty", ["tic-extract", s["empty_file"], out], "manifest is empty"),
        ("extract-manifest-not-utf8", ["tic-extract", s["latin1_manifest"], out], "not UTF-8"),
        ("extract-foreign-out", ["tic-extract", s["warc_manifest"], s["foreign"]], "was not written by tic-extract"),
        ("extract-out-is-file", ["tic-extract", s["warc_manifest"], s["a_file"]], "is a file"),
        ("extract-all-inputs-failed", ["tic-extract", s["missing_manifest"], out], "all 1 input file(s) failed"),
        ("extract-bad-number", ["tic-extract", "--max-page-mb", "nan", s["warc_manifest"], out], "finite"),
        # tic-timestamp-join
        ("join-missing-metadata", ["tic-timestamp-join", s["warc_manifest"], s["missing"], out], "not found"),
        ("join-garbage-parquet", ["tic-timestamp-join", s["warc_manifest"], s["pool_garbage"], out], "not a readable parquet"),
        ("join-int-uid", ["tic-timestamp-join", s["warc_manifest"], s["pool_int_uid"], out], "column uid is int64"),
        ("join-zero-rows", ["tic-timestamp-join", s["warc_manifest"], s["pool_zero_rows"], out], "0 rows"),
        ("join-foreign-out", ["tic-timestamp-join", s["warc_manifest"], s["pool"], s["foreign"]], "refusing to overwrite"),
        ("join-manifest-is-dir", ["tic-timestamp-join", s["empty_dir"], s["pool"], out], "is a directory"),
        ("join-bad-partitions", ["tic-timestamp-join", "--partitions", "0", s["warc_manifest"], s["pool"], out], ">= 1"),
        # tic-filter
        ("filter-threshold-nan", ["tic-filter", "clip", "--threshold", "nan", s["pool"], out], "finite"),
        ("filter-fraction-2", ["tic-filter", "clip", "--fraction", "2", s["pool"], out], "<= 1"),
        ("filter-garbage-parquet", ["tic-filter", "basic", s["pool_garbage"], out], "not a readable parquet"),
        ("filter-int-text", ["tic-filter", "basic", s["pool_int_text"], out], "column text is int64"),
        ("filter-missing-timestamps", ["tic-filter", "basic", "--timestamps", s["missing"], s["pool"], out], "first_seen"),
        ("filter-empty-dir", ["tic-filter", "basic", s["empty_dir"], out], "no .parquet"),
        ("filter-zero-rows", ["tic-filter", "basic", s["pool_zero_rows"], out], "0 rows"),
        ("filter-bad-uid", ["tic-filter", "basic", s["pool_bad_uid"], out], "not 32 lowercase hex", "jvm"),
        ("join-duplicate-uids", ["tic-timestamp-join", s["warc_manifest"], s["pool_dup_uid"], out], "repeat", "jvm"),
        ("filter-foreign-out", ["tic-filter", "basic", s["pool"], s["foreign"]], "refusing to overwrite"),
        ("filter-out-is-file", ["tic-filter", "basic", s["pool"], s["a_file"]], "is a file"),
        # tic-splits / tic-yfcc
        ("splits-missing-timestamps", ["tic-splits", "build", "--timestamps", s["missing"], "--metadata", s["pool"], out], "nope"),
        ("splits-leakage-missing", ["tic-splits", "check-leakage", s["missing"]], "nope"),
        ("yfcc-missing", ["tic-yfcc", s["missing"], out], "not found"),
        ("yfcc-truncated-gz", ["tic-yfcc", s["trunc_gz"], out], "cannot be read", "jvm"),
        ("yfcc-bad-seeds", ["tic-yfcc", "--seeds", "-1", s["trunc_gz"], out], ">= 1"),
        ("yfcc-foreign-out", ["tic-yfcc", s["trunc_gz"], s["foreign"]], "refusing to overwrite"),
        # tic-shards
        ("reshard-missing-splits", ["tic-shards", "reshard", s["missing"], s["missing"], out], "nope"),
        ("reshard-foreign-out", ["tic-shards", "reshard", s["empty_dir"], s["empty_dir"], s["foreign"]], ""),
        ("download-missing-splits", ["tic-shards", "download", s["missing"], out], "nope"),
        ("download-bad-timeout", ["tic-shards", "download", "--timeout", "inf", s["missing"], out], "integer"),
        ("shards-leakage-missing", ["tic-shards", "check-leakage", s["missing"]], "nope"),
        # tic-analyze
        ("analyze-missing-splits", ["tic-analyze", s["missing"], out], "nope"),
        ("analyze-bad-per-step", ["tic-analyze", "--per-step", "0", s["missing"], out], ">= 1"),
        # tic-train
        ("train-bad-yaml", ["tic-train", "run", "--config", s["yaml_bad"]], "not valid YAML"),
        ("train-yaml-not-mapping", ["tic-train", "run", "--config", s["yaml_list"]], "mapping"),
        ("train-missing-data", ["tic-train", "run", "--data", s["missing"], "--out", out, "--budget-samples", "64"], "nope"),
        ("train-lr-nan", ["tic-train", "run", "--data", s["missing"], "--out", out, "--budget-samples", "64", "--lr", "nan"], "finite"),
        ("anytime-missing-data", ["tic-train", "anytime", "--data", s["missing"], "--checkpoint", s["missing"], "--out", out], "nope"),
        ("embed-missing-checkpoint", ["tic-train", "embed", "--checkpoint", s["missing"], "--data", s["missing"], "--pool", "basic",
                                      "--out", out], "nope"),
        # tic-sample-web
        ("sample-web-foreign-out", ["tic-sample-web", "--out", s["foreign"], "--pairs", "10", "--quiet"], "refusing to overwrite"),
        ("sample-web-out-is-file", ["tic-sample-web", "--out", s["a_file"], "--pairs", "10", "--quiet"], "is a file"),
        ("sample-web-bad-port", ["tic-sample-web", "serve", "--port", "70000", s["missing"]], ""),
        # tic-sql
        ("sql-missing-file", ["tic-sql", s["missing"]], "nope"),
    ]


def _snapshot(root: Path) -> dict:
    """Every path under root with its size and mtime (what a failed run must not change)."""
    return {str(p.relative_to(root)): (p.is_dir(), p.stat().st_size if p.is_file() else 0, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


CASE_IDS = [c[0] for c in _cases({k: Path("/x") for k in (
    "t", "missing", "empty_dir", "empty_file", "garbage", "foreign", "a_file", "warc_manifest", "missing_manifest",
    "latin1_manifest", "pool", "pool_int_uid", "pool_int_text", "pool_zero_rows", "pool_garbage", "pool_bad_uid",
    "pool_dup_uid", "yaml_bad", "yaml_list", "trunc_gz")})]


# The CLIs' entry points: a case runs in this process (milliseconds; the modules are loaded once) unless
# it needs a JVM, which runs as a subprocess of the console script (a CLI stops the Spark session it
# gets, which in this process would be the tests' shared one).
ENTRY_POINTS = {"tic-extract": "curation.extract_cli:main", "tic-timestamp-join": "curation.timestamp_join:main",
                "tic-filter": "curation.filter_job:main", "tic-splits": "benchmarks.cli:main",
                "tic-yfcc": "benchmarks.source_cli:main_yfcc", "tic-shards": "benchmarks.shards_cli:main",
                "tic-analyze": "benchmarks.analyze_cli:main", "tic-train": "training.cli:main",
                "tic-sample-web": "sample_web.cli:main", "tic-sql": "ticcore.sqlfiles:main"}


def _run_in_process(argv: list[str], cwd: Path, monkeypatch, capsys) -> tuple[int, str]:
    import importlib

    from pyspark.sql import SparkSession

    def no_jvm(*_a, **_k):
        raise AssertionError(f"{argv[0]} starts Spark for this input: mark the case 'jvm'")
    monkeypatch.setattr(SparkSession.Builder, "getOrCreate", no_jvm)
    monkeypatch.chdir(cwd)
    module, func = ENTRY_POINTS[argv[0]].split(":")
    capsys.readouterr()
    try:
        rc = getattr(importlib.import_module(module), func)(argv[1:])
    except SystemExit as exc:  # argparse's usage errors
        rc = exc.code
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("case", CASE_IDS)
def test_bad_input_is_one_line_and_exit_2(play, case, monkeypatch, capsys):
    name, argv, says, *how = next(c for c in _cases(play) if c[0] == case)
    before = _snapshot(play["t"])
    if how == ["jvm"]:
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, cwd=play["t"])
        rc, stderr = res.returncode, res.stderr
    else:
        rc, stderr = _run_in_process(argv, play["t"], monkeypatch, capsys)
    ours = [ln for ln in stderr.splitlines() if not _JVM_NOISE.match(ln)]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert rc == 2, (rc, stderr[-2000:])
    assert len(ours) == 1 and ": error: " in ours[0], ours
    assert says in ours[0], ours[0]
    assert _snapshot(play["t"]) == before, "a failed run changed files"
