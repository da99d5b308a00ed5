"""Filter benchmarks (issue 5), on >= 1M synthetic DataComp rows (sample-web captions and reference-CLIP
image embeddings):

1. basic filter rows/s per core (one process, CPU time), and the share spent in fastText language ID;
   then the tic-filter Spark job end to end on local[2] (reading, checks, writing kept/ and dropped/,
   stats.json), in a fresh session and again warm, each as rows/s/core two ways: wall x 2 cores (the
   issue's measure, fair on an idle machine) and the CPU time of the whole process tree (driver, JVM,
   Python workers: the core-hours a run bills, fair on a busy one); and its ratios to the one process,
   end to end (read, checks, write) and to its checks alone (issue 27's target: >= 0.6);
2. image-based filter: faiss k-means training and nearest-centroid assignment of every row, at 1k and
   10k clusters.

    python perf/bench_filters.py --rows 1000000
    python perf/bench_filters.py --metadata DIR --clusters     # an earlier pool; the basic filter only
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


def tree_cpu(pid: int | None = None) -> float:
    """CPU seconds used so far by a process and all its descendants (exited children that were waited
    for included), from /proc: what a Spark job costs across driver, JVM and Python workers."""
    pid = pid or os.getpid()
    children: dict[int, list[int]] = {}
    stat: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stat[int(entry)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry))
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        if p in stat:
            total += sum(int(x) for x in stat[p][11:15]) / tick   # utime stime cutime cstime
        todo.extend(children.get(p, []))
    return total


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


def bench_basic(root: Path) -> tuple[float, float]:
    """The basic filter in one process, as tic-filter's tasks run it (curation.filter_job.shard_reasons
    and ShardOutputs.write: read, checks, kept/ and dropped/ written); returns rows/s/core (CPU time) end
    to end and of the checks alone (what issue 27's 135k rows/s/core measured)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curation import filter_job as fj
    from curation.langid import load_model, predict_languages

    load_model(None)
    shards = sorted(root.glob("*.parquet"))
    cfg = fj.FilterConfig("basic", str(root), str(root.parent / "inproc-out"))
    schema = pq.read_schema(shards[0])
    full = pa.schema(list(schema) + [pa.field("filter", pa.string()), pa.field("reason", pa.string())])
    outputs = fj.ShardOutputs(cfg.output_dir, full, {str(s.resolve()): i for i, s in enumerate(shards)}, "basic",
                              tuple(schema.names))
    chain = fj._chain(cfg, None, None, frozenset())
    n = kept = 0
    t_lid = t_read = t_check = t_write = 0.0
    c0 = cpu()
    for s in shards:
        t = cpu()
        table = pq.read_table(s)
        t_read += cpu() - t
        t = cpu()
        predict_languages(table["text"].to_pandas().fillna("").tolist())
        t_lid += cpu() - t
        t = cpu()
        reasons = fj.shard_reasons(cfg, None, None, chain, str(s), table)
        t_check += cpu() - t
        t = cpu()
        outputs.write(str(s), table, reasons)
        t_write += cpu() - t
        kept += int((reasons == None).sum())  # noqa: E711
        n += len(reasons)
    total = cpu() - c0 - t_lid  # the language ID above was run twice; count it once
    shutil.rmtree(cfg.output_dir, ignore_errors=True)
    print(f"basic filter, one process: {n:,} rows in {total:.1f} s CPU -> {n / total:,.0f} rows/s/core "
          f"(kept {kept:,}): read {t_read:.1f} s, checks {t_check:.1f} s (fastText language ID {t_lid:.1f} s "
          f"= {t_lid / total:.0%} of the time), writing kept/ and dropped/ {t_write:.1f} s")
    return n / total, n / t_check


def bench_basic_spark(root: Path, in_process: tuple[float, float], runs: int = 2) -> None:
    from curation.filter_job import FilterConfig, run
    from ticcore.sparkio import build_session

    c0, w0 = tree_cpu(), time.perf_counter()
    spark = build_session("bench", "local[2]", **{"spark.ui.enabled": "false", "spark.driver.memory": "6g",
                                                  "spark.ui.showConsoleProgress": "false"})
    spark.sparkContext.setLogLevel("ERROR")
    print(f"(Spark session: {time.perf_counter() - w0:.1f} s wall, {tree_cpu() - c0:.1f} s CPU; not counted below)")
    out = root.parent / "basic-out"
    try:
        for i in range(runs):
            c0, t0 = tree_cpu(), time.perf_counter()
            s = run(spark, FilterConfig("basic", str(root), str(out)), log=lambda *_: None)
            wall, used = time.perf_counter() - t0, tree_cpu() - c0
            by_wall, by_cpu = s["input"] / wall / 2, s["input"] / used
            print(f"tic-filter basic (Spark local[2], {'first run: fresh Python workers' if i == 0 else 'warm'}, end to "
                  f"end incl. writing kept/ and dropped/): {s['input']:,} rows in {wall:.1f} s wall, {used:.1f} s CPU "
                  f"-> {by_wall:,.0f} rows/s/core by wall x 2 cores, {by_cpu:,.0f} by CPU; "
                  f"ratio to one process end to end: {by_wall / in_process[0]:.2f} (wall), {by_cpu / in_process[0]:.2f} "
                  f"(CPU), to its checks alone: {by_wall / in_process[1]:.2f} (wall), {by_cpu / in_process[1]:.2f} (CPU)  "
                  f"[target >= 0.6]")
            shutil.rmtree(out, ignore_errors=True)
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
    p.add_argument("--clusters", type=int, nargs="*", default=[1000, 10000], help="image filter; none: skipped")
    p.add_argument("--skip-spark", action="store_true")
    p.add_argument("--metadata", help="an earlier synth_metadata directory to reuse instead of --rows")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-filters-"))
    try:
        root = tmp / "metadata"
        if args.metadata:  # reuse a pool synthesised before (read only; outputs go to the temporary dir)
            root.symlink_to(Path(args.metadata).resolve())
        else:
            t0 = time.perf_counter()
            synth_metadata(root, args.rows)
            print(f"(synthesised {args.rows:,} rows in {time.perf_counter() - t0:.0f} s)")
        in_process = bench_basic(root)
        if not args.skip_spark:
            bench_basic_spark(root, in_process)
        if args.clusters:
            bench_image(root, args.clusters)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
