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


def _write_shard(path, rows, with_npz=True, npz_rows=None, seed=0, first_uid=0):
    n = len(rows)
    rng = np.random.default_rng(seed)
    table = pa.table({
        "uid": [f"{i:032x}" for i in range(first_uid, first_uid + n)],
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
    _write_shard(meta / "1.parquet", [("a photo without an embedding file", 300, 300)], with_npz=False, first_uid=120)
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


# ------------------------------------------------------------------ DataComp's image filter (issue 25)

def test_datacomp_kmeans_is_a_plain_faiss_call_and_caps_k_at_the_rows():
    """--recipe datacomp's k-means is DataComp's call (image_based_clustering.py: faiss.Clustering, niter 20,
    seed 0, max_points_per_centroid 10M, flat L2 index): the same centroids as that call on the same
    rows in the same order; rows are assigned by argmax dot product (apply_filter.py), as IndexFlatIP does."""
    import faiss

    from curation.filters import kmeans, nearest_centroid

    rng = np.random.default_rng(3)
    x = rng.standard_normal((600, 24)).astype(np.float32)
    ours = kmeans(x, 12, seed=0, spherical=False)
    plain = faiss.Kmeans(24, 12, niter=20, seed=0, max_points_per_centroid=10_000_000)  # min_points left at 39
    plain.train(x)
    assert np.array_equal(ours, plain.centroids)
    assert np.abs(np.linalg.norm(ours, axis=1) - 1).max() > 0.1     # plain L2: not unit-norm centroids
    ip = faiss.IndexFlatIP(24)
    ip.add(plain.centroids)
    assert np.array_equal(nearest_centroid(x, ours), ip.search(x, 1)[1][:, 0])
    # k above the row count: faiss would refuse it; k is capped, each row becomes a centroid
    few = kmeans(x[:5], 100_000, spherical=False)
    assert few.shape == (5, 24) and {tuple(r) for r in few} == {tuple(r) for r in x[:5]}


def test_datacomp_caption_filter_counts_words_with_fasttext_tokenize():
    import fasttext
    import pandas as pd

    from curation.filters import Batch, ImageFilter, caption_stats, first_reasons

    texts = ["dog\u00a0photograph",     # NBSP: one fastText word, two str.split() words
             "dog\nphotograph",          # the newline is a word of its own for fastText (</s>)
             "  dog   photograph  ", "photograph", None]
    stats = caption_stats(pd.Series(texts), fasttext_words=True)
    assert stats["n_fasttext_words"].tolist() == [len(fasttext.tokenize(t or "")) for t in texts] == [1, 3, 2, 1, 0]
    assert stats["n_words"].tolist() == [2, 2, 2, 1, 0]
    stats["language"] = "en"  # the word rule alone
    b = Batch(pd.DataFrame({"text": texts}), stats)
    by_fasttext = first_reasons(ImageFilter(np.zeros((1, 1)), frozenset(), "fasttext").caption_checks(b), 5)
    by_split = first_reasons(ImageFilter(np.zeros((1, 1)), frozenset(), "split").caption_checks(b), 5)
    assert list(by_fasttext) == ["too_few_words", None, None, "too_few_words", "null_text"]
    assert list(by_split) == [None, None, None, "too_few_words", "null_text"]


def _datacomp_pool(meta, rng):
    """Two shards: two picture groups (A like the targets, B not), captions that pass or fail DataComp's
    caption filter, CLIP scores spread so that bestpool's threshold cuts through both groups."""
    dim = 768
    a_dir, b_dir = rng.standard_normal(dim), rng.standard_normal(dim)
    captions = ["a photo of a small red house", "dog\u00a0photograph", "ein Foto von einem Hund am Strand heute"]
    shards = []
    for s in range(2):
        n = 60
        group_a = np.arange(n) % 2 == 0
        emb = np.where(group_a[:, None], a_dir, b_dir) + 0.3 * rng.standard_normal((n, dim))
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        text = [captions[0] if i % 5 else captions[1 + (i // 5) % 2] for i in range(n)]
        l14 = rng.random(n)
        rows = [(t, 300, 300, 0.3, float(sc)) for t, sc in zip(text, l14)]
        table = _write_shard(meta / f"{s:05d}.parquet", rows, with_npz=False, first_uid=1000 * s)
        np.savez(meta / f"{s:05d}.npz", l14_img=emb.astype(np.float16))
        shards.append((table.to_pandas(), emb.astype(np.float16).astype(np.float32)))
    targets = a_dir + 0.3 * rng.standard_normal((6, dim))
    return shards, targets / np.linalg.norm(targets, axis=1, keepdims=True)


def test_datacomp_bestpool_composes_as_datacomp_and_loads_released_files(spark, tmp_path):
    """bestpool --recipe datacomp: k-means over the caption-filtered l14_img of the WHOLE pool (not only
    the rows past the CLIP threshold), in shard then row order; then CLIP threshold, caption filter,
    assignment to those centroids; DataComp's released file formats (.pt centroids saved as a numpy
    array with pickle protocol 4, .pt targets under image_features) give the same result."""
    import faiss
    import torch

    from curation.filters import RECIPES, caption_stats, threshold_for_fraction

    rng = np.random.default_rng(5)
    meta = tmp_path / "meta"
    shards, targets = _datacomp_pool(meta, rng)
    np.savez(tmp_path / "targets.npz", l14_img=targets)
    quiet = lambda *_: None
    s = run(spark, FilterConfig("bestpool", str(meta), str(tmp_path / "a"), recipe="datacomp", clusters=4,
                                targets=str(tmp_path / "targets.npz")), log=quiet)
    # the reference, written out: DataComp's caption filter per shard, k-means on every passing row
    rows = []
    train = []
    for df, emb in shards:
        st = caption_stats(df["text"], fasttext_words=True)
        caption_ok = (st["language"] == "en") & (st["n_fasttext_words"] > 1) & (st["n_chars"] > 5)
        train.append(emb[caption_ok.to_numpy()])
        rows.append(df.assign(caption_ok=caption_ok.to_numpy(), cluster=list(emb)))
    x = np.concatenate(train)
    plain = faiss.Kmeans(768, 4, niter=20, seed=0, max_points_per_centroid=10_000_000)
    plain.train(x)
    centroids = np.load(tmp_path / "a" / "centroids.npy")
    assert np.allclose(centroids, plain.centroids, atol=1e-5)
    assert s["image_clusters"]["sample_size"] == len(x) and s["image_clusters"]["trained_on"] == "caption-filtered rows"
    target_ids = set(np.argmax(targets @ centroids.T, axis=1))
    pool = pd_concat(rows)
    threshold = threshold_for_fraction(pool["clip_l14_similarity_score"].to_numpy(), 0.3)
    assert s["clip_threshold"] == pytest.approx(threshold, rel=1e-6)
    nearest = np.array([np.argmax(e @ centroids.T) for e in pool["cluster"]])
    high = pool["clip_l14_similarity_score"].to_numpy() >= threshold
    expected = set(pool.uid[high & pool.caption_ok.to_numpy() & np.isin(nearest, list(target_ids))])
    kept = set(_read(tmp_path / "a" / "kept")["uid"])
    assert kept == expected and 0 < len(kept) < high.sum()
    # the order: CLIP first (a low-scored row with a bad caption is a low_clip_score), then the caption
    reason = _read(tmp_path / "a" / "dropped").set_index("uid")["reason"]
    low_bad = pool.uid[~high & ~pool.caption_ok.to_numpy()]
    high_bad = pool.uid[high & ~pool.caption_ok.to_numpy()]
    assert len(low_bad) and set(reason[low_bad]) == {"low_clip_score"}
    assert len(high_bad) and set(reason[high_bad]) <= {"too_few_words", "not_english"}
    assert not RECIPES["datacomp"].after_clip and RECIPES["scaled"].after_clip

    # DataComp's released formats: centroids as torch.save(numpy array, pickle_protocol=4), five target files
    torch.save(centroids, tmp_path / "small_centroids_l14.pt", pickle_protocol=4)
    parts = np.array_split(targets, 2)
    for i, part in enumerate(parts):
        torch.save({"image_features": torch.from_numpy(part).half()}, tmp_path / f"in1k_clip_vit_l14_{i}.pt")
    s2 = run(spark, FilterConfig("bestpool", str(meta), str(tmp_path / "b"), recipe="datacomp",
                                 centroids=str(tmp_path / "small_centroids_l14.pt"),
                                 targets=tuple(str(tmp_path / f"in1k_clip_vit_l14_{i}.pt") for i in range(2))),
             log=quiet)
    assert set(_read(tmp_path / "b" / "kept")["uid"]) == kept
    assert s2["image_clusters"]["centroids_file"].endswith("small_centroids_l14.pt")

    # DataComp's default of 100,000 clusters on a pool this small: k is capped at the candidate count
    s3 = run(spark, FilterConfig("image", str(meta), str(tmp_path / "c"), recipe="datacomp",
                                 targets=str(tmp_path / "targets.npz")), log=quiet)
    assert s3["image_clusters"]["clusters_requested"] == 100_000
    assert s3["image_clusters"]["clusters"] == s3["image_clusters"]["candidates"] == len(x)


def pd_concat(frames):
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


def test_released_asset_files_are_refused_in_one_line(tmp_path):
    import torch

    from curation.datacomp_assets import load_centroids, load_target_features
    from ticcore.errors import InputError

    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="junk.pt: not a torch file"):
        load_centroids(tmp_path / "junk.pt")

    class Runs:  # a pickle that would run code when loaded
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"image_features": Runs()}, tmp_path / "code.pt")
    with pytest.raises(InputError, match="code.pt"):
        load_target_features([tmp_path / "code.pt"])
    torch.save({"features": torch.zeros(2, 3)}, tmp_path / "nokey.pt")
    with pytest.raises(InputError, match="image_features"):
        load_target_features([tmp_path / "nokey.pt"])


def _fake_timestamps(root, uids, years):
    import pandas as pd

    (root / "first_seen").mkdir(parents=True)
    t = pd.to_datetime([f"{y}-06-01" for y in years], utc=True)
    pq.write_table(pa.table({
        "uid": uids, "first_seen_time": pa.array(t, pa.timestamp("us", tz="UTC")),
        "first_seen_month": [f"{y}-06" for y in years], "first_seen_year": pa.array(years, pa.int32()),
        "first_seen_snapshot": [f"CC-MAIN-{y}-23" for y in years], "last_seen_time": pa.array(t, pa.timestamp("us", tz="UTC")),
        "n_snapshots_seen": pa.array([1] * len(uids), pa.int32())}), root / "first_seen" / "part-0.parquet")


def test_timestamps_filter_the_whole_pool_then_intersect(spark, tmp_path):
    """--timestamps: the CLIP fraction is computed over the whole pool (DataComp, ml-tic-clip), the output
    is the timestamped rows; --population timestamped computes it over those rows alone."""
    rng = np.random.default_rng(9)
    l14 = rng.random(200).astype(np.float32)
    meta = tmp_path / "meta"
    _write_shard(meta / "0.parquet", [("a caption with words", 300, 300, 0.3, float(v)) for v in l14], with_npz=False)
    uids = [f"{i:032x}" for i in range(200)]
    # the timestamped rows are the low-scored half: a subset-only fraction would keep a quite different set
    order = np.argsort(l14)
    stamped = sorted(order[:100])
    _fake_timestamps(tmp_path / "ts", [uids[i] for i in stamped], [2014 + i % 3 for i in stamped])
    quiet = lambda *_: None
    pool = run(spark, FilterConfig("clip", str(meta), str(tmp_path / "pool"), fraction=0.3,
                                   timestamps=str(tmp_path / "ts")), log=quiet)
    subset = run(spark, FilterConfig("clip", str(meta), str(tmp_path / "sub"), fraction=0.3,
                                     timestamps=str(tmp_path / "ts"), population="timestamped"), log=quiet)
    assert pool["clip_threshold"] == pytest.approx(threshold_for_fraction(l14, 0.3), rel=1e-6)
    assert subset["clip_threshold"] == pytest.approx(threshold_for_fraction(l14[stamped], 0.3), rel=1e-6)
    assert pool["population"] == {"kind": "pool", "rows": 200}
    assert subset["population"] == {"kind": "timestamped", "rows": 100}
    for s in (pool, subset):
        assert s["input"] == 100 and s["accounting"]["ok"]
        assert sum(v["input"] for v in s["by_year"].values()) == 100
    assert pool["kept"] == int((l14[stamped] >= pool["clip_threshold"]).sum()) == 0  # the pool's top 30% is elsewhere
    # (DataComp's threshold is the n-th score, 0-based, n = int(100 x 0.3): n + 1 rows reach it)
    assert subset["kept"] == int((l14[stamped] >= subset["clip_threshold"]).sum()) == 31
    res = _cli("clip", meta, tmp_path / "x", "--fraction", "0.3", "--population", "timestamped")
    assert res.returncode == 2 and "--population timestamped needs --timestamps" in res.stderr


def test_datacomp_options_refused_in_one_line(tmp_path):
    """Bad recipe / population / centroid options: one line, exit 2, before a JVM starts."""
    meta = tmp_path / "meta"
    _write_shard(meta / "0.parquet", [("a caption here", 300, 300)] * 3)
    np.savez(tmp_path / "targets.npz", l14_img=np.ones((2, 768), np.float32))
    np.save(tmp_path / "b32.npy", np.ones((4, 512), np.float32))
    cases = [(["basic", meta, tmp_path / "o", "--centroids", tmp_path / "b32.npy"], "image and bestpool"),
             (["image", meta, tmp_path / "o", "--recipe", "laion"], "invalid choice"),
             (["image", meta, tmp_path / "o", "--targets", tmp_path / "targets.npz", "--centroids",
               tmp_path / "b32.npy"], "512-d centroids, but the targets are 768-d"),
             (["image", meta, tmp_path / "o", "--targets", tmp_path / "none.pt"], "none.pt: target embeddings not found")]
    for args, message in cases:
        res = _cli(*args)
        assert res.returncode == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert not (tmp_path / "o").exists()
