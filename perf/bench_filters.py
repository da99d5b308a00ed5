"""Filter benchmarks (issue 5), on >= 1M synthetic DataComp rows (sample-web captions and reference-CLIP
image embeddings):

1. basic filter rows/s per core (one process, CPU time), and the share spent in fastText language ID;
   then the tic-filter Spark job end to end on local[2];
2. image-based filter: faiss k-means training and nearest-centroid assignment of every row, at 1k and
   10k clusters.

    python perf/bench_filters.py --rows 1000000
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def synth_metadata(root: Path, rows: int, shard_rows: int = 100_000, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sample_web.captions import make_captions
    from sample_web.images import SIZES
    from sample_web.refclip import ImageEmbeddingCache, ReferenceClip
    from sample_web.vocabulary import ALL_CONCEPTS, COLORS, LANGUAGES, SCENES

    rng = np.random.default_rng(seed)
    cache = ImageEmbeddingCache(ReferenceClip())
    root.mkdir(parents=True)
    langs = [code for code, _, _ in LANGUAGES]
    lang_p = np.array([p for _, p, _ in LANGUAGES])
    for k, start in enumerate(range(0, rows, shard_rows)):
        n = min(shard_rows, rows - start)
        concept = rng.integers(len(ALL_CONCEPTS), size=n)
        color, scene = rng.integers(len(COLORS), size=n), rng.integers(len(SCENES), size=n)
        look = rng.integers(2014, 2023, size=n)
        language = [langs[i] for i in rng.choice(len(langs), size=n, p=lang_p / lang_p.sum())]
        caps = make_captions(rng, concept, color, scene, language, np.zeros(n, bool), ["Site"] * n)
        size = np.array(SIZES)[rng.integers(len(SIZES), size=n)]
        emb = cache.lookup(concept, look, color, scene)["l14_img"]
        pq.write_table(pa.table({
            "uid": [f"{start + i:032x}" for i in range(n)], "url": [f"http://x/{start + i}.jpg" for i in range(n)],
            "text": [" ".join(t.split()) for t in caps.text], "original_width": size[:, 0], "original_height": size[:, 1],
            "clip_b32_similarity_score": rng.random(n).astype(np.float32),
            "clip_l14_similarity_score": rng.random(n).astype(np.float32)}), root / f"{k:05d}.parquet")
        np.savez(root / f"{k:05d}.npz", l14_img=emb)


def bench_basic(root: Path) -> None:
    import pyarrow.parquet as pq

    from curation import filters as fl
    from curation.langid import load_model, predict_languages

    load_model(None)
    shards = sorted(root.glob("*.parquet"))
    n = kept = 0
    t_lid = 0.0
    c0 = cpu()
    for s in shards:
        rows = pq.read_table(s).to_pandas()
        t = cpu()
        predict_languages(rows["text"].fillna("").tolist())
        t_lid += cpu() - t
        b = fl.Batch(rows, fl.caption_stats(rows["text"]))
        kept += int((fl.first_reasons(fl.BasicFilter().checks(b), len(rows)) == None).sum())  # noqa: E711
        n += len(rows)
    total = cpu() - c0 - t_lid  # the language ID above was run twice; count it once
    print(f"basic filter, one process: {n:,} rows in {total:.1f} s CPU -> {n / total:,.0f} rows/s/core "
          f"(kept {kept:,}); fastText language ID {t_lid:.1f} s = {t_lid / total:.0%} of the time")


def bench_basic_spark(root: Path) -> None:
    from curation.filter_job import FilterConfig, run
    from ticcore.sparkio import build_session

    spark = build_session("bench", "local[2]", **{"spark.ui.enabled": "false", "spark.driver.memory": "6g"})
    spark.sparkContext.setLogLevel("ERROR")
    out = root.parent / "basic-out"
    try:
        t0 = time.perf_counter()
        s = run(spark, FilterConfig("basic", str(root), str(out)), log=lambda *_: None)
        wall = time.perf_counter() - t0
        print(f"tic-filter basic (Spark local[2], end to end incl. writing kept/ and dropped/): {s['input']:,} rows "
              f"in {wall:.1f} s wall -> {s['input'] / wall / 2:,.0f} rows/s/core")
    finally:
        spark.stop()
        shutil.rmtree(out, ignore_errors=True)


def bench_image(root: Path, clusters: list[int]) -> None:
    from curation.filters import kmeans, nearest_centroid

    emb = np.concatenate([np.load(s)["l14_img"] for s in sorted(root.glob("*.npz"))])
    for k in clusters:
        sample_n = min(len(emb), max(40_000, 40 * k))
        idx = np.random.default_rng(0).choice(len(emb), sample_n, replace=False)
        t0 = time.perf_counter()
        centroids = kmeans(emb[idx].astype(np.float32), k)
        t_train = time.perf_counter() - t0
        t0 = time.perf_counter()
        nearest_centroid(emb, centroids)
        t_assign = time.perf_counter() - t0
        print(f"image filter, {len(emb):,} rows, {k:,} clusters: k-means on {sample_n:,} samples {t_train:.1f} s, "
              f"assigning every row {t_assign:.1f} s, total {t_train + t_assign:.1f} s (wall, {os.cpu_count()} cores)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--clusters", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--skip-spark", action="store_true")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-filters-"))
    try:
        root = tmp / "metadata"
        t0 = time.perf_counter()
        synth_metadata(root, args.rows)
        print(f"(synthesised {args.rows:,} rows in {time.perf_counter() - t0:.0f} s)")
        bench_basic(root)
        if not args.skip_spark:
            bench_basic_spark(root)
        bench_image(root, args.clusters)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
