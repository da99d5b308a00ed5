"""tic-filter's outputs do not depend on how the job moves its rows (issue 27): kept/, dropped/ and
stats.json of every filter, with and without --timestamps, equal a reference recorded from the job
as it was before the per-shard writer (Spark's own writes: one evaluation persisted, kept and dropped
written from it, the reasons counted by a groupBy), and equal the rules applied in this process.

The reference holds, per run, a digest of each output's rows (every column, partition columns
included, sorted by uid; timestamps as UTC microseconds, so INT96 and INT64 files compare), its
column names in file order, and stats.json without the paths (`config`). Record it again (only when
the rules themselves change, never to make a speed change pass) with

    TIC_RECORD_FILTER_REFERENCE=1 python -m pytest tests/test_filter_outputs.py
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curation.filter_job import FilterConfig, run
from curation.filters import BasicFilter, Batch, Chain, ClipScoreFilter, caption_stats, first_reasons

from .output_digests import rows_digest

REFERENCE = Path(__file__).parent / "data" / "filter_outputs_reference.json"
RECORD = os.environ.get("TIC_RECORD_FILTER_REFERENCE") == "1"

RUNS = {  # name: (filter, timestamped, extra FilterConfig fields)
    "basic": ("basic", False, {}),
    "clip": ("clip", False, {"fraction": 0.3}),
    "image": ("image", False, {}),
    "bestpool": ("bestpool", False, {}),
    "basic_timestamps": ("basic", True, {}),
    "clip_timestamps": ("clip", True, {"threshold": 0.3}),
    "bestpool_timestamps": ("bestpool", True, {}),
}


def output_digest(out: Path, stats: dict) -> dict:
    kept_stats = {k: v for k, v in stats.items() if k not in ("config", "npy")}
    return {"kept": rows_digest(out / "kept"), "dropped": rows_digest(out / "dropped"),
            "stats": json.loads(json.dumps(kept_stats, sort_keys=True))}


@pytest.fixture(scope="module")
def outputs(spark, sample_web, timestamps_out, tmp_path_factory):
    ts_dir, _ = timestamps_out
    root = tmp_path_factory.mktemp("filter-outputs")
    got = {}
    for name, (kind, timestamped, extra) in RUNS.items():
        cfg = FilterConfig(kind, str(sample_web / "metadata"), str(root / name),
                           timestamps=str(ts_dir) if timestamped else None, **extra)
        stats = run(spark, cfg, log=lambda *_: None)
        got[name] = (root / name, stats)
    return got


def test_outputs_equal_the_recorded_reference(outputs):
    digests = {name: output_digest(out, stats) for name, (out, stats) in outputs.items()}
    if RECORD:
        REFERENCE.parent.mkdir(exist_ok=True)
        REFERENCE.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"recorded {REFERENCE}")
    reference = json.loads(REFERENCE.read_text())
    for name in RUNS:
        assert digests[name]["stats"] == reference[name]["stats"], name
        for part in ("kept", "dropped"):
            assert digests[name][part] == reference[name][part], (name, part)


def test_basic_and_clip_equal_the_rules_applied_in_process(outputs, sample_web):
    """The same verdicts from curation.filters run here on each shard, without Spark."""
    threshold = outputs["clip"][1]["clip_threshold"]
    shards = sorted((sample_web / "metadata").glob("*.parquet"))
    for name, chain in (("basic", Chain("basic", (BasicFilter(),))),
                        ("clip", Chain("clip", (ClipScoreFilter(threshold),)))):
        expected = {}
        for shard in shards:
            rows = pq.read_table(shard).to_pandas()
            reasons = first_reasons(chain.checks(Batch(rows, caption_stats(rows["text"]))), len(rows))
            expected.update(zip(rows["uid"], reasons))
        out, stats = outputs[name]
        kept = pq.read_table(out / "kept").to_pandas()
        dropped = pq.read_table(out / "dropped").to_pandas()
        got = {**dict.fromkeys(kept["uid"]), **dict(zip(dropped["uid"], dropped["reason"]))}
        assert got == expected, name
        assert len(kept) + len(dropped) == len(expected) == stats["input"]
        assert stats["kept"] == sum(r is None for r in expected.values())
        counts: dict = {}
        for r in expected.values():
            if r is not None:
                counts[r] = counts.get(r, 0) + 1
        assert stats["dropped"] == counts


def _pool_of_shards(root: Path, shards: list[list]) -> Path:
    import pyarrow as pa

    root.mkdir()
    for k, uids in enumerate(shards):
        pq.write_table(pa.table({"uid": pa.array(uids, pa.string()), "url": [f"http://x/{k}/{i}" for i in range(len(uids))],
                                 "text": ["a caption of some words"] * len(uids),
                                 "original_width": [512] * len(uids), "original_height": [512] * len(uids)}),
                       root / f"{k:05d}.parquet")
    return root


U = [f"{i:x}".rjust(32, "0") for i in (7, 3, 2 ** 64 + 5, 2 ** 127 + 1, 11)]


@pytest.mark.parametrize("shards", [
    [[U[0], U[1]], [U[2], U[0]], [U[3], U[1], U[1], U[4]]],          # repeats within and across shards
    [[U[0], U[2], U[2]], [U[3], U[3], U[3], U[4]], [U[0], U[1]], [U[4]]],   # more repeats than are shown
    [[U[0], "../x", None], [U[1].upper(), U[1]], ["../x", U[1]]],    # bad uids (and a repeat: bad ones first)
])
def test_the_uid_check_in_the_writing_pass_says_what_spark_uid_problems_says(spark, tmp_path, monkeypatch, shards):
    """tic-filter checks the pool's uids in the pass that writes its output (uid pairs met by bucket);
    the refusal names the same offenders, in the same order, as the one-aggregation check the other
    tools run (ticcore.validate.spark_uid_problems), whatever the number of buckets."""
    from curation import filter_job
    from ticcore.errors import InputError
    from ticcore.validate import spark_uid_problems

    meta = _pool_of_shards(tmp_path / "meta", shards)
    expected = spark_uid_problems(spark.read.parquet(str(meta)).select("uid"))
    assert expected
    for per_bucket in (1_000_000, 2):  # one bucket; several
        monkeypatch.setattr(filter_job, "UIDS_PER_BUCKET", per_bucket)
        with pytest.raises(InputError) as err:
            run(spark, FilterConfig("basic", str(meta), str(tmp_path / "out")), log=lambda *_: None)
        assert str(err.value) == f"{meta}: {expected}; the pool is refused"
        assert not (tmp_path / "out").exists()
