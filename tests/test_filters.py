"""DataComp filters (issue 5): the rules on their boundaries, against an independent loop; CLIP
thresholds; image clusters; bad rows; the Spark job on the sample web's timestamped pool."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ticcore import sqlfiles
from curation.filter_job import FilterConfig, run
from curation.filters import threshold_for_fraction

from .conftest import REPO

# (text, width, height): rows on every boundary of the basic filter
BOUNDARY_ROWS = [
    ("two words", 400, 400),                      # 2 words: dropped
    ("three small words", 400, 400),              # 3 words: kept
    ("a b c", 400, 400),                          # 5 characters: dropped
    ("a bb c", 400, 400),                         # 6 characters, 3 words: kept (if fastText says en)
    ("a photo of a dog on the beach", 199, 400),  # 199 px: dropped
    ("a photo of a dog on the beach", 200, 400),  # 200 px: kept
    ("a photo of a dog on the beach", 200, 600),  # aspect 3.0: kept
    ("a photo of a dog on the beach", 10000, 30001),  # aspect 3.0001: dropped
    ("ein Foto von einem Hund am Strand heute", 400, 400),  # German: dropped
    ("  a photo\tof a\n dog  ", 300, 300),        # whitespace: split() counts 4 words
    (None, 400, 400),                             # null text
    ("a photo of a dog on the beach", -5, 400),   # negative size
    ("a photo of a dog on the beach", None, 400),  # null size
]


def _reference_basic(text, w, h, model) -> bool:
    """DataComp's basic filter written out as a plain loop, independently of curation.filters."""
    if text is None or w is None or h is None or w <= 0 or h <= 0:
        return False
    language = model.predict(text.replace("\n", " "))[0][0].split("__label__")[1]
    lo, hi = min(w, h), max(w, h)
    return language == "en" and len(text.split()) > 2 and len(text) > 5 and lo >= 200 and hi / lo <= 3.0


def _write_shard(path, rows, with_npz=True, npz_rows=None, seed=0):
    n = len(rows)
    rng = np.random.default_rng(seed)
    table = pa.table({
        "uid": [f"{i:032x}" for i in range(n)],
        "url": [f"http://img.example.com/{i}.jpg" for i in range(n)],
        "text": [r[0] for r in rows],
        "original_width": pa.array([r[1] for r in rows], pa.int64()),
        "original_height": pa.array([r[2] for r in rows], pa.int64()),
        "clip_b32_similarity_score": pa.array([r[3] if len(r) > 3 else 0.3 for r in rows], pa.float32()),
        "clip_l14_similarity_score": pa.array([r[4] if len(r) > 4 else 0.3 for r in rows], pa.float32()),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    if with_npz:
        m = n if npz_rows is None else npz_rows
        emb = rng.standard_normal((m, 768)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        np.savez(path.with_suffix(".npz"), l14_img=emb.astype(np.float16))
    return table


def _read(path):
    return pq.read_table(path).to_pandas() if path.exists() else None


def test_basic_filter_matches_an_independent_loop_on_every_boundary(spark, sample_web, tmp_path):
    from curation.langid import load_model

    sample = pq.read_table(sample_web / "metadata" / "00000.parquet").slice(0, 600).to_pandas()
    rows = BOUNDARY_ROWS + [(t, w, h) for t, w, h in zip(sample.text, sample.original_width, sample.original_height)]
    meta = tmp_path / "meta"
    table = _write_shard(meta / "00000.parquet", rows)
    stats = run(spark, FilterConfig("basic", str(meta), str(tmp_path / "out")), log=lambda *_: None)
    kept = set(_read(tmp_path / "out" / "kept")["uid"])
    model = load_model(None)
    expected = {uid for uid, (t, w, h) in zip(table["uid"].to_pylist(), rows) if _reference_basic(t, w, h, model)}
    assert kept == expected
    uids = table["uid"].to_pylist()
    assert uids[1] in kept and uids[0] not in kept            # 3 vs 2 words
    assert uids[5] in kept and uids[4] not in kept            # 200 vs 199 px
    assert uids[6] in kept and uids[7] not in kept            # aspect 3.0 vs 3.0001
    dropped = _read(tmp_path / "out" / "dropped").set_index("uid")["reason"]
    assert dropped[uids[10]] == "null_text"
    assert dropped[uids[11]] == dropped[uids[12]] == "invalid_size"
    assert dropped[uids[8]] == "not_english"
    assert stats["kept"] + sum(stats["dropped"].values()) == stats["input"] == len(rows)
    assert stats["accounting"]["ok"]


def test_clip_threshold_matches_datacomp():
    scores = np.array([0.1, 0.5, np.nan, 0.3, 0.3, 0.9, 0.2, 0.4, np.nan, 0.7], np.float32)
    n = int(len(scores) * 0.3)
    datacomp = -np.sort(-scores)[n]  # DataComp's get_threshold, NaNs included in the count
    assert threshold_for_fraction(scores, 0.3) == pytest.approx(float(datacomp))


def test_clip_filter_fraction_threshold_arch_and_bad_scores(spark, tmp_path):
    rng = np.random.default_rng(1)
    l14 = rng.random(200).astype(np.float32)
    b32 = rng.random(200).astype(np.float32)
    l14[:3] = np.nan
    rows = [("a caption with words", 300, 300, float(b), float(l)) for b, l in zip(b32, l14)]
    meta = tmp_path / "meta"
    _write_shard(meta / "0.parquet", rows, with_npz=False)
    quiet = lambda *_: None
    s = run(spark, FilterConfig("clip", str(meta), str(tmp_path / "frac"), fraction=0.3), log=quiet)
    assert s["clip_threshold"] == pytest.approx(threshold_for_fraction(l14, 0.3), rel=1e-6)
    assert s["kept"] == int((l14 >= s["clip_threshold"]).sum())
    assert s["dropped"]["invalid_clip_score"] == 3
    s = run(spark, FilterConfig("clip", str(meta), str(tmp_path / "b32"), threshold=0.5, arch="b32"), log=quiet)
    assert s["kept"] == int((b32 >= 0.5).sum()) and "invalid_clip_score" not in s["dropped"]


def test_image_filter_keeps_rows_in_target_clusters(spark, tmp_path):
    """Two groups of pictures; targets look like group A: A is kept, B dropped, missing embeddings dropped."""
    rng = np.random.default_rng(2)
    dim = 768
    a_dir, b_dir = rng.standard_normal(dim), rng.standard_normal(dim)
    emb = np.concatenate([a_dir + 0.3 * rng.standard_normal((60, dim)), b_dir + 0.3 * rng.standard_normal((60, dim))])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    rows = [(f"a photo of thing number {i} here", 300, 300) for i in range(120)]
    meta = tmp_path / "meta"
    _write_shard(meta / "0.parquet", rows, with_npz=False)
    np.savez(meta / "0.npz", l14_img=emb.astype(np.float16))
    _write_shard(meta / "1.parquet", [("a photo without an embedding file", 300, 300)], with_npz=False)
    targets = a_dir + 0.3 * rng.standard_normal((10, dim))
    np.savez(tmp_path / "targets.npz", l14_img=(targets / np.linalg.norm(targets, axis=1, keepdims=True)))
    s = run(spark, FilterConfig("image", str(meta), str(tmp_path / "out"), clusters=4,
                                targets=str(tmp_path / "targets.npz")), log=lambda *_: None)
    kept = set(_read(tmp_path / "out" / "kept")["uid"])
    uids = [f"{i:032x}" for i in range(120)]
    assert set(uids[:60]) <= kept and not (set(uids[60:]) & kept)
    assert s["dropped"]["missing_embedding"] == 1
    assert s["image_clusters"]["clusters"] == 4 and "faiss" in s["image_clusters"]["library"]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "curation.filter_job", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO)


def test_npz_row_mismatch_stops_the_job_naming_the_shard(tmp_path):
    meta = tmp_path / "meta"
    _write_shard(meta / "00007.parquet", [("a caption here", 300, 300)] * 5, npz_rows=4)
    res = _cli("image", meta, tmp_path / "out", "--targets", meta / "00007.npz")
    assert res.returncode == 2
    assert "00007.parquet" in res.stderr and "4 rows" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_missing_columns_and_models_are_reported(tmp_path):
    meta = tmp_path / "meta"
    meta.mkdir()
    pq.write_table(pa.table({"uid": ["a"], "caption": ["x"]}), meta / "0.parquet")
    res = _cli("basic", meta, tmp_path / "out")
    assert res.returncode == 2 and "lacks required column(s)" in res.stderr and "text" in res.stderr
    _write_shard(tmp_path / "m2" / "0.parquet", [("a caption here", 300, 300)])
    res = _cli("basic", tmp_path / "m2", tmp_path / "out", "--lid-model", tmp_path / "nope.bin")
    assert res.returncode == 2 and "nope.bin" in res.stderr


@pytest.fixture(scope="module")
def filtered(spark, sample_web, timestamps_out, tmp_path_factory):
    ts_dir, _ = timestamps_out
    root = tmp_path_factory.mktemp("filtered")
    quiet = lambda *_: None
    stats = {name: run(spark, FilterConfig(name, str(sample_web / "metadata"), str(root / name),
                                           timestamps=str(ts_dir)), log=quiet)
             for name in ("basic", "bestpool")}
    return root, stats


def test_filters_on_the_timestamped_pool_account_for_every_row(filtered, timestamps_out):
    root, stats = filtered
    _, ts_stats = timestamps_out
    for name, s in stats.items():
        assert s["accounting"]["ok"], s["accounting"]
        assert s["input"] == ts_stats["join"]["matched"]
        years = sorted(p.name for p in (root / name / "kept").glob("first_seen_year=*"))
        assert years == [f"first_seen_year={y}" for y in range(2014, 2023)]
        dropped = pq.read_table(root / name / "dropped").to_pandas()
        assert dropped["reason"].notna().all() and (dropped["filter"] == name).all()
        kept = pq.read_table(root / name / "kept").to_pandas()
        assert "reason" not in kept.columns and len(kept) == s["kept"]
        assert set(kept.columns) >= {"uid", "url", "text", "sha256", "first_seen_time", "first_seen_month"}
        for y, v in s["by_year"].items():
            assert v["kept"] + sum(v["dropped"].values()) == v["input"]


def test_bestpool_keeps_more_of_early_years_than_of_late_years(filtered):
    _, stats = filtered
    best = stats["bestpool"]["by_year"]
    early = sum(best[y]["kept"] for y in ("2014", "2015", "2016")) / sum(best[y]["input"] for y in ("2014", "2015", "2016"))
    late = sum(best[y]["kept"] for y in ("2020", "2021", "2022")) / sum(best[y]["input"] for y in ("2020", "2021", "2022"))
    assert early > 2 * late, (early, late)
    assert stats["bestpool"]["clip_fraction"] == 0.3
    assert stats["bestpool"]["image_clusters"]["target_clusters"] > 0


def test_filter_queries(filtered):
    root, stats = filtered
    for name in sqlfiles.load("sql/filters.sql"):
        assert sqlfiles.run("sql/filters.sql", name, root=str(root)).fetchall(), name
    rows = sqlfiles.run("sql/filters.sql", "retention_by_year", root=str(root)).fetchall()
    got = {(r[0], str(r[1])): r[2] for r in rows}
    for name in ("basic", "bestpool"):
        for y, v in stats[name]["by_year"].items():
            assert got[(name, y)] == v["kept"]
