"""`tic-splits`: per-year evaluation splits and leakage-free training pools for TiC-DataComp.

    tic-splits build OUT --timestamps TS_OUT --metadata META_DIR [--filtered FILTERED_DIR] [options]
    tic-splits check-leakage OUT
    tic-splits import-released RELEASE_DIR OUT --metadata DATACOMP_METADATA
    tic-splits export-released OUT RELEASE_DIR [--pool unfiltered]

`build` reads the timestamped pool (a tic-timestamp-join output joined with the DataComp
metadata) and, when given, the filtered pools (FILTERED_DIR/{basic,bestpool}, tic-filter
outputs run with --timestamps). It writes (temporary sibling, then rename):

  OUT/eval/retrieval/year=YYYY/   retrieval pairs: subset (all|covid|flickr), seeds, holdout_size
  OUT/eval/net/year=YYYY/         Net pairs: class_id, wnid, lemma, similarity, ambiguous
  OUT/train/{unfiltered,basic,bestpool}/year=YYYY/   the pools with every evaluation pair removed
  OUT/net_classes.json            class names, zero-shot prompts, and subtree class lists
  OUT/stats.json                  sizes per year and subset, warnings, Net outcomes, leak removals

`check-leakage` exits 1, naming the offending uids, if any training row shares a uid, sha256 or
url with an evaluation row. It compares every set under OUT/eval with every pool under OUT/train,
so it also checks tic-yfcc / tic-redcaps outputs (eval/retrieval only, train/yfcc15m or
train/redcaps); a missing OUT, or one without evaluation sets or training pools, is one line and
exit 2, never "clean".

`import-released` builds the same layout from apple/ml-tic-clip's released uid lists and a DataComp
metadata directory (no timestamp join); every released uid the metadata lacks is counted, in total and
by year, in stats.json and the summary. `export-released` writes that release layout from OUT
(`benchmarks/released.py` describes both formats).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyspark import StorageLevel  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from benchmarks import splits as sp  # noqa: E402
from benchmarks.pools import POOLS, leak_check_sets  # noqa: E402
from benchmarks.released import ExportConfig, ImportConfig, export_released, import_released  # noqa: E402
from benchmarks.prompts import net_classes_doc  # noqa: E402
from benchmarks.sentence import PRECISIONS, check_model_path  # noqa: E402
from benchmarks.splits import SplitConfig  # noqa: E402
from ticcore.validate import ArgumentParser, number  # noqa: E402
from ticcore.errors import report_user_errors  # noqa: E402
from ticcore.sparkio import (InputError, build_session, check_output_local, hadoop_fs, is_local,  # noqa: E402
                              local_path, staged_output, write_stats, write_text)

TOOL = "tic-splits"
DEFAULT_SUBTREES = ("motor_vehicle.n.01",)


@dataclass(frozen=True)
class SplitsJob:
    """What `tic-splits build` is asked to do: inputs, output, the split parameters and the Net class document."""
    out: str
    timestamps: str                   # a tic-timestamp-join output
    metadata: str                     # the DataComp metadata directory the join used
    filtered: str | None = None       # directory holding tic-filter outputs basic/ and/or bestpool/
    split: SplitConfig = field(default_factory=SplitConfig)
    eval_source: str | None = None    # pool the retrieval pairs come from (default: basic if given, else unfiltered)
    subtrees: tuple[str, ...] = DEFAULT_SUBTREES
    templates: str = "simple"
    keep_net_candidates: bool = False
    master: str = "local[*]"

    def __post_init__(self):
        object.__setattr__(self, "subtrees", tuple(self.subtrees or DEFAULT_SUBTREES))

    @classmethod
    def from_args(cls, args) -> "SplitsJob":
        split = SplitConfig(eval_size=args.eval_size, seeds=args.seeds, max_holdout_fraction=args.max_holdout_fraction,
                            subset_fraction=args.subset_fraction, net_max_per_year=args.net_max_per_year,
                            net_max_fraction=args.net_max_fraction, min_similarity=args.min_similarity,
                            sentence_model=args.sentence_model, sentence_precision=args.sentence_precision,
                            seed=args.seed)
        return cls(args.out, args.timestamps, args.metadata, args.filtered, split, args.eval_source, args.subtree,
                   args.templates, args.keep_net_candidates, args.master)

    @property
    def first_seen(self) -> str:
        return self.timestamps.rstrip("/") + "/first_seen"

    def check_inputs(self) -> None:
        """What can be checked before Spark reads anything."""
        if is_local(self.out):
            check_output_local(self.out, TOOL)
        try:
            check_model_path(self.split.sentence_model)
        except FileNotFoundError as exc:
            raise InputError(str(exc))
        for path, what in ((self.timestamps + "/first_seen", "first-seen table"), (self.metadata, "metadata directory")):
            if is_local(path) and not local_path(path).exists():
                raise InputError(f"{path}: {what} not found")


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=TOOL, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the evaluation splits and training pools")
    b.add_argument("out")
    b.add_argument("--timestamps", required=True, help="a tic-timestamp-join output")
    b.add_argument("--metadata", required=True, help="the DataComp metadata directory the join used")
    b.add_argument("--filtered", help="directory holding tic-filter outputs basic/ and/or bestpool/")
    b.add_argument("--eval-source", choices=POOLS, help="pool the retrieval pairs come from (default: basic if "
                                                          "given, else unfiltered)")
    b.add_argument("--eval-size", type=number(int, 0), default=4000, help="retrieval pairs per year and seed (default 4000)")
    b.add_argument("--seeds", type=number(int, 1), default=3)
    b.add_argument("--max-holdout-fraction", type=number(float, 0, 1), default=0.1,
                   help="hold out at most this share of a year (default 0.1)")
    b.add_argument("--subset-fraction", type=number(float, 0, 1, lo_open=True), default=0.5, help="COVID/Flickr holdouts' share of their rows")
    b.add_argument("--net-max-per-year", type=number(int, 0), default=4000)
    b.add_argument("--net-max-fraction", type=number(float, 0, 1), default=0.1)
    b.add_argument("--min-similarity", type=number(float, -1, 1), default=0.5, help="Net: caption-to-synset cosine must exceed this")
    b.add_argument("--sentence-model", help="sentence-transformers model directory (default: the packaged MiniLM)")
    b.add_argument("--sentence-precision", choices=PRECISIONS, default="auto",
                   help="Net captions' encoding: bf16 (2.2-2.5x the captions/s/core of fp32 on a CPU with native bf16; "
                        "similarities within 0.004 of fp32), fp32 (the reference), auto (bf16 where the CPU has it; default)")
    b.add_argument("--subtree", action="append", default=None, metavar="SYNSET",
                   help="WordNet node whose ImageNet classes get their own accuracy (default motor_vehicle.n.01)")
    b.add_argument("--templates", choices=("simple", "openai"), default="simple", help="zero-shot prompt templates")
    b.add_argument("--keep-net-candidates", action="store_true",
                   help="also write net_candidates/: every caption that reached the similarity check, with its score")
    b.add_argument("--seed", type=number(int, 0), default=0)
    b.add_argument("--master", default="local[*]")
    c = sub.add_parser("check-leakage", help="verify that no evaluation pair is in a training pool")
    c.add_argument("out")
    c.add_argument("--master", default="local[*]")
    i = sub.add_parser("import-released", help="our splits layout from apple/ml-tic-clip's released uid lists")
    i.add_argument("release", help="directory holding tic-datacomp_training_yearly_noeval/ (and optionally "
                                   "tic-datacomp_training_monthly/ and the two eval .pkl maps)")
    i.add_argument("out")
    i.add_argument("--metadata", required=True, help="the DataComp metadata directory (*.parquet) of the pool")
    i.add_argument("--subtree", action="append", default=None, metavar="SYNSET")
    i.add_argument("--templates", choices=("simple", "openai"), default="simple")
    i.add_argument("--threads", type=number(int, 1), default=None, help="DuckDB threads (default: all cores)")
    e = sub.add_parser("export-released", help="apple/ml-tic-clip's release layout from our splits")
    e.add_argument("splits", help="a tic-splits output")
    e.add_argument("out")
    e.add_argument("--pool", default="unfiltered", help="training pool written as the yearly lists (default unfiltered)")
    return p


def load_pools(spark, job: SplitsJob) -> dict:
    """{pool name: DataFrame with `year`}: the timestamped pool joined with its metadata, and the filtered pools."""
    first_seen = spark.read.parquet(job.first_seen)
    meta = spark.read.option("pathGlobFilter", "*.parquet").parquet(job.metadata)
    extra = [c for c in meta.columns if c not in ("url", "text")]
    pools = {"unfiltered": first_seen.join(meta.select(*extra), "uid")}
    if job.filtered:
        for name in ("basic", "bestpool"):
            kept = Path(local_path(job.filtered)) / name / "kept" if is_local(job.filtered) else None
            if kept is not None and kept.is_dir():
                pools[name] = spark.read.parquet(str(kept)).drop("filter")
    return {k: v.withColumn("year", F.col("first_seen_year").cast("int")) for k, v in pools.items()}


class _Phases:
    """Logs the seconds each phase took."""

    def __init__(self, log):
        self.log, self.t = log, time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.log(f"[{TOOL}] {name}: {now - self.t:.1f} s")
        self.t = now


def retrieval_warnings(sizes: dict, cfg: SplitConfig, source: str) -> list[str]:
    warnings = []
    for year, subs in sorted(sizes.items()):
        got = min(subs.get("all", {"seeds": {"0": 0}})["seeds"].values())
        if got < cfg.eval_size:
            warnings.append(f"retrieval {year}: {got} pairs per seed, fewer than the {cfg.eval_size} asked for "
                            f"(the year's {source} pool is too small for a {cfg.max_holdout_fraction:.0%} holdout)")
    return warnings


@dataclass
class NetStage:
    candidates: object   # every pool row's lemma outcome
    sims: object         # each survivor's best synset and similarity
    net: object          # the Net evaluation rows
    outcomes: dict       # net_reason (or "kept") -> rows
    by_year: dict
    huge: int            # captions longer than HUGE_CAPTION

    def frames(self):
        return self.candidates, self.sims, self.net


def net_stage(unfiltered, cfg: SplitConfig) -> NetStage:
    candidates = sp.net_candidates(unfiltered).persist(StorageLevel.MEMORY_AND_DISK)
    # only the definitions that some caption can be matched to (all 1,000 on a real pool, a few on a sample)
    definitions = sp.definition_embeddings(cfg.sentence_model, sp.candidate_class_ids(candidates))
    sims = sp.net_similarity(candidates, unfiltered, cfg, definitions).persist(StorageLevel.MEMORY_AND_DISK)
    net, outcome = sp.net_rows(unfiltered, candidates, sims, cfg)
    net = net.persist(StorageLevel.MEMORY_AND_DISK)
    outcomes = {(r["net_reason"] or "kept"): r["count"] for r in outcome.groupBy("net_reason").count().collect()}
    by_year = {str(r["year"]): r["count"] for r in net.groupBy("year").count().collect()}
    return NetStage(candidates, sims, net, outcomes, by_year, candidates.where("huge_caption").count())


def write_splits(spark, tmp: str, job: SplitsJob, retrieval, net: NetStage, pools: dict, eval_keys) -> tuple[dict, dict]:
    """The evaluation sets and leak-free training pools under `tmp`: (leak removals, training rows per year)."""
    (retrieval.drop("filter").repartition("year").sortWithinPartitions("subset", "uid")
     .write.partitionBy("year").parquet(f"{tmp}/eval/retrieval"))
    net.net.repartition("year").sortWithinPartitions("uid").write.partitionBy("year").parquet(f"{tmp}/eval/net")
    if job.keep_net_candidates:
        (net.candidates.where(F.col("net_reason").isNull()).drop("net_reason").join(net.sims, "uid")
         .repartition(1).sortWithinPartitions("uid").write.parquet(f"{tmp}/net_candidates"))
    removed, train_rows = {}, {}
    for name, pool in pools.items():
        clean, leaks = sp.remove_leaks(pool, eval_keys)
        removed[name] = {k: v for k, v in ((r["leak_key"], r["count"]) for r in
                                           leaks.groupBy("leak_key").count().collect())}
        clean.repartition("year").sortWithinPartitions("uid").write.partitionBy("year").parquet(f"{tmp}/train/{name}")
        train_rows[name] = {str(r["year"]): r["count"] for r in
                            spark.read.parquet(f"{tmp}/train/{name}").groupBy("year").count().collect()}
    return removed, train_rows


def build(spark, job: SplitsJob, log=print) -> dict:
    """Write job.out (temporary sibling, then rename); returns its stats.json."""
    cfg = job.split
    job.check_inputs()
    pools = load_pools(spark, job)
    source = job.eval_source or ("basic" if "basic" in pools else "unfiltered")
    if source not in pools:
        raise InputError(f"--eval-source {source}: no such pool under {job.filtered}")
    phase = _Phases(log)
    retrieval = sp.retrieval_holdout(pools[source], cfg).persist(StorageLevel.MEMORY_AND_DISK)
    sizes = sp.holdout_sizes(retrieval)
    warnings = retrieval_warnings(sizes, cfg, source)
    for w in warnings:
        log(f"[{TOOL}] warning: {w}")
    phase("retrieval holdouts")
    unfiltered = pools["unfiltered"]
    net = net_stage(unfiltered, cfg)
    phase("Net (lemmas, sentence similarity, caps)")
    eval_keys = (retrieval.select("uid", "sha256", "url").unionByName(net.net.select("uid", "sha256", "url"))
                 .distinct().persist(StorageLevel.MEMORY_AND_DISK))
    try:
        with staged_output(spark, job.out, TOOL) as tmp:
            removed, train_rows = write_splits(spark, tmp, job, retrieval, net, pools, eval_keys)
            phase("writing evaluation sets and leak-free training pools")
            doc = net_classes_doc(job.subtrees, job.templates)
            write_text(spark, f"{tmp}/net_classes.json", json.dumps(doc, indent=1) + "\n")
            stats = {"tool": TOOL, "config": asdict(cfg), "eval_source": source, "pools": sorted(pools),
                     "retrieval": dict(sorted(sizes.items())), "warnings": warnings,
                     "net": {"outcomes": dict(sorted(net.outcomes.items())),
                             "by_year": dict(sorted(net.by_year.items())),
                             "huge_captions": net.huge, "min_similarity": cfg.min_similarity,
                             "subtrees": {k: len(v) for k, v in doc["subtrees"].items()}},
                     "leakage_removed": removed, "train_rows": train_rows,
                     "accounting": {"net_rows_judged": sum(net.outcomes.values()),
                                    "pool_rows": unfiltered.count()}}
            write_stats(spark, tmp, stats)
    finally:
        for df in (retrieval, *net.frames(), eval_keys):
            df.unpersist()
    return stats


def _hadoop_listing(spark):
    """`leak_check_sets`' listing callables over Hadoop's file system (for outputs that are not local)."""
    def subdirs(path: str):
        fs, jpath = hadoop_fs(spark, path)
        if not fs.exists(jpath) or not fs.getFileStatus(jpath).isDirectory():
            return None
        return sorted(st.getPath().getName() for st in fs.listStatus(jpath) if st.isDirectory())

    def holds_parquet(path: str) -> bool:
        fs, jpath = hadoop_fs(spark, path)
        files = fs.listFiles(jpath, True)
        while files.hasNext():
            if files.next().getPath().getName().endswith(".parquet"):
                return True
        return False

    return subdirs, holds_parquet


def check_leakage(spark, out: str) -> list[tuple]:
    """(pool, uid, key, value) for training rows sharing a uid, sha256 or url with an evaluation pair, over
    every evaluation set and training pool OUT holds (`leak_check_sets`: TiC-DataComp's, tic-yfcc's and
    tic-redcaps' alike; missing or empty input is an InputError)."""
    base = out.rstrip("/")
    eval_sets, pools = (leak_check_sets(str(local_path(base))) if is_local(base)
                        else leak_check_sets(base, *_hadoop_listing(spark)))
    evaluation = None
    for name in eval_sets:
        df = spark.read.parquet(f"{base}/eval/{name}")
        missing = [k for k in sp.LEAK_KEYS if k not in df.columns]
        if missing:
            raise InputError(f"{base}/eval/{name}: no {', '.join(missing)} column to check")
        df = df.select(*sp.LEAK_KEYS)
        evaluation = df if evaluation is None else evaluation.unionByName(df)
    if not evaluation.limit(1).count():
        raise InputError(f"{base}/eval: no evaluation pair to check")
    hits = []
    for name in pools:
        train = spark.read.parquet(f"{base}/train/{name}")
        hits += [(name, r["uid"], r["key"], r["value"]) for r in sp.leakage(evaluation, train).limit(1000).collect()]
    return hits


def cmd_check_leakage(spark, out: str) -> int:
    hits = check_leakage(spark, out)
    if hits:
        for name, uid, key, value in hits[:50]:
            print(f"{TOOL}: LEAK in train/{name}: uid {uid} shares its {key} ({value}) with an evaluation pair")
        print(f"{TOOL}: {len(hits)} leaking training rows", file=sys.stderr)
        return 1
    print(f"[{TOOL}] no evaluation pair (uid, sha256 or url) is in any training pool of {out}")
    return 0


def cmd_build(spark, job: SplitsJob) -> int:
    stats = build(spark, job)
    per_year = ", ".join(f"{y}: {v['all']['seeds'].get('0', 0)}" for y, v in stats["retrieval"].items() if "all" in v)
    print(f"[{TOOL}] retrieval pairs per seed by year ({stats['eval_source']} pool): {per_year}")
    print(f"[{TOOL}] Net pairs by year: " + ", ".join(f"{y}: {n}" for y, n in stats["net"]["by_year"].items()))
    print(f"[{TOOL}] removed from training: " + "; ".join(
        f"{k}: " + ", ".join(f"{kk} {vv}" for kk, vv in v.items()) for k, v in stats["leakage_removed"].items()))
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)

    def body() -> int:
        if args.command == "import-released":  # single-process (DuckDB): no Spark session
            import_released(ImportConfig(args.release, args.out, args.metadata, tuple(args.subtree or DEFAULT_SUBTREES),
                                         args.templates, args.threads))
            return 0
        if args.command == "export-released":
            export_released(ExportConfig(args.splits, args.out, args.pool))
            return 0
        job = SplitsJob.from_args(args) if args.command == "build" else None
        if job is not None:
            job.check_inputs()  # bad input fails in a second, before a JVM starts
        elif is_local(args.out):  # a missing input fails before Spark starts
            leak_check_sets(str(local_path(args.out)))
        spark = build_session(TOOL, args.master)
        try:
            if job is None:
                return cmd_check_leakage(spark, args.out)
            return cmd_build(spark, job)
        finally:
            spark.stop()

    return report_user_errors(TOOL, body)


if __name__ == "__main__":
    sys.exit(main())
