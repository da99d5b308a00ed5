"""`tic-yfcc` and `tic-redcaps`: TiC-YFCC and TiC-RedCaps, one command each (Spark, `local[*]` by default).

    tic-yfcc METADATA_TSV... OUT [--subset yfcc100m_subset_data.tsv] [--recipe tic|ours] [--now 2024-01-01]
    tic-redcaps ANNOTATIONS_DIR_OR_JSON... OUT [--recipe tic|ours]

Both parse their source (rules: `curation/sources.py`), account for every record (kept, or dropped
with its reason in OUT/dropped/ and stats.json), assign each kept pair a step, hold out the retrieval
evaluation per step and remove every evaluation pair from training. Two recipes:

  --recipe tic (default): as the TiC-CLIP paper built them (apple/ml-tic-clip,
      dataset_creation/tic-yfcc15m/create_splits.py, dataset_creation/tic-redcaps/create_splits.py).
      YFCC steps: 2008 (2004-2008), 2010 (2009-2010), 2012 (2011-2012), 2014 (2013-2014), by upload
      year (`ticcore.steps.TIC_YFCC_STEP_ENDS`). RedCaps steps: 2017, 2018, 2019, 2020, the year from
      the annotation file's name. Evaluation: ceil(--eval-fraction x pairs) of each step (default 1%),
      one seed, drawn by --seed (ml-tic-clip's draw is unseeded).
  --recipe ours: YFCC steps: 2011 (2004-2011), 2012, 2013, 2014, by upload year. RedCaps steps:
      2017 (2004-2017), 2018, 2019, 2020, by `created_utc` (every year before the first step folds into
      it; nothing before 2004 is kept). Evaluation: --eval-size pairs per step and seed (default 1000),
      --seeds seeds (3), at most --max-holdout-fraction (0.1) of a step.

A step that gets no evaluation pair is a warning (printed and in stats.json). OUT has the tic-splits
layout, so `tic-shards download/reshard` and `tic-train` take it as they take TiC-DataComp (the pool
is `yfcc15m` or `redcaps`; reshard reads the steps from stats.json: `step_ends`, `step_start_year`):

  OUT/train/{pool}/year=YYYY/   kept pairs minus evaluation pairs (year = upload/post year)
  OUT/eval/retrieval/year=STEP/ retrieval pairs, seeds, holdout_size (year = the step label)
  OUT/dropped/reason=R/         uid (when known), reason, source file
  OUT/stats.json                counts per reason, per year and step, evaluation sizes, recipe, steps
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
from pyspark import StorageLevel  # noqa: E402
from pyspark.sql import Window  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from benchmarks import splits as sp  # noqa: E402
from benchmarks.splits import SplitConfig  # noqa: E402
from curation.sources import (DEFAULT_RECIPE, EARLIEST, RECIPES, parse_redcaps_annotation, parse_subset_ids,  # noqa: E402
                              parse_yfcc_line, redcaps_file_year)
from ticcore.validate import ArgumentParser, number  # noqa: E402
from ticcore.errors import report_user_errors  # noqa: E402
from ticcore.schemas import SOURCE_ROWS  # noqa: E402
from ticcore.steps import TIC_REDCAPS_STEP_ENDS, TIC_YFCC_STEP_ENDS, StepScheme  # noqa: E402
from ticcore.sparkio import (InputError, build_session, check_output_local, is_local, local_path,  # noqa: E402
                              staged_output, unreadable_files_are_input_errors, write_stats)


@dataclass(frozen=True)
class Source:
    name: str                    # yfcc | redcaps
    tool: str
    pool: str                    # the training pool's name in OUT/train/
    tic_step_ends: tuple         # the tic recipe's steps, by their last years
    ours_first_step: int         # the ours recipe: earlier years fold into this step
    tic_first_year: int          # the tic recipe's first year of data (RedCaps: earlier files are not read)
    last_year: int               # the source's last year of data (what the docs describe)

    def steps(self, recipe: str) -> StepScheme:
        return StepScheme.with_ends(self.tic_step_ends) if recipe == "tic" else StepScheme(start_year=self.ours_first_step)

    def step_description(self, recipe: str) -> str:
        """The steps as README, ARCHITECTURE.md and this module's docstring write them (a test holds them equal)."""
        first = self.tic_first_year if recipe == "tic" else EARLIEST.year
        return self.steps(recipe).describe(first, self.last_year)


SOURCES = {"yfcc": Source("yfcc", "tic-yfcc", "yfcc15m", TIC_YFCC_STEP_ENDS, 2011, 2004, 2014),
           "redcaps": Source("redcaps", "tic-redcaps", "redcaps", TIC_REDCAPS_STEP_ENDS, 2017, 2017, 2020)}

ROW_SCHEMA = SOURCE_ROWS.spark_ddl()
ROW_COLUMNS = list(SOURCE_ROWS.names)


@dataclass(frozen=True)
class SourceConfig:
    """What `tic-yfcc` / `tic-redcaps` is asked to do."""
    source: Source
    inputs: tuple[str, ...]
    out: str
    subset: str | None = None         # YFCC15M id list (tic-yfcc only)
    eval_size: int = 1000             # ours: retrieval pairs per step and seed
    seeds: int = 3                    # ours
    max_holdout_fraction: float = 0.1  # ours
    now: dt.datetime | None = None    # later timestamps are future_timestamp (None: the time of the run)
    seed: int = 0
    master: str = "local[*]"
    recipe: str = DEFAULT_RECIPE      # tic | ours (curation/sources.py)
    eval_fraction: float = 0.01       # tic: the share of each step held out for evaluation

    def __post_init__(self):
        if self.recipe not in RECIPES:
            raise InputError(f"--recipe must be one of {', '.join(RECIPES)}, not {self.recipe!r}")
        object.__setattr__(self, "inputs", tuple(self.inputs))
        if self.now is None:
            object.__setattr__(self, "now", dt.datetime.now(dt.timezone.utc))

    @classmethod
    def from_args(cls, source: Source, args) -> "SourceConfig":
        try:
            now = dt.datetime.fromisoformat(args.now).replace(tzinfo=dt.timezone.utc) if args.now else None
        except ValueError:
            raise InputError(f"--now {args.now!r} is not an ISO date") from None
        ours_only = [flag for flag, value in (("--eval-size", args.eval_size), ("--seeds", args.seeds),
                                              ("--max-holdout-fraction", args.max_holdout_fraction)) if value is not None]
        if args.recipe == "tic" and ours_only:
            raise InputError(f"{', '.join(ours_only)}: for --recipe ours; --recipe tic holds out --eval-fraction "
                             "of each step")
        if args.recipe == "ours" and args.eval_fraction is not None:
            raise InputError("--eval-fraction: for --recipe tic; --recipe ours holds out --eval-size pairs per step")
        given = {k: v for k, v in (("eval_size", args.eval_size), ("seeds", args.seeds),
                                   ("max_holdout_fraction", args.max_holdout_fraction),
                                   ("eval_fraction", args.eval_fraction)) if v is not None}
        return cls(source, args.inputs, args.out, getattr(args, "subset", None), now=now, seed=args.seed,
                   master=args.master, recipe=args.recipe, **given)

    @property
    def steps(self) -> StepScheme:
        return self.source.steps(self.recipe)

    @property
    def split(self) -> SplitConfig:
        """The ours recipe's retrieval holdout parameters (one subset, "all": these sources have no
        COVID/Flickr split); the tic recipe holds out `eval_fraction` of each step as one seed instead."""
        return SplitConfig(eval_size=self.eval_size, seeds=self.seeds, max_holdout_fraction=self.max_holdout_fraction,
                           seed=self.seed, subsets=("all",))


# ------------------------------------------------------------------ parsing (DataFrame functions)

def _typed(df: pd.DataFrame) -> pd.DataFrame:
    df["first_seen_year"] = df["first_seen_year"].astype("Int32")
    return df


def yfcc_rows(spark, paths: list[str], now: dt.datetime, recipe: str):
    """Every line of the YFCC metadata files as a parsed row (SOURCE_ROWS); Spark decompresses .bz2/.gz."""
    lines = spark.read.text(paths).withColumn("source_file", F.input_file_name())

    def parse(batches):
        for b in batches:
            rows = [parse_yfcc_line(v, now, recipe) for v in b["value"]]
            df = _typed(pd.DataFrame(rows, columns=ROW_COLUMNS[:-1]))
            df["source_file"] = b["source_file"].values
            yield df

    return lines.mapInPandas(parse, ROW_SCHEMA)


def _redcaps_file_rows(path: str, now: dt.datetime, recipe: str) -> pd.DataFrame:
    """One RedCaps JSON file's annotations as parsed rows; a file that is not valid RedCaps JSON gives one
    `malformed_file` row."""
    try:
        with open(path, "rb") as fh:
            doc = json.load(fh)
        anns = doc["annotations"]
        if not isinstance(anns, list):
            raise TypeError("annotations is not a list")
    except (OSError, ValueError, KeyError, TypeError):
        return _typed(pd.DataFrame([[None] * 6 + ["malformed_file", path]], columns=ROW_COLUMNS))
    year = redcaps_file_year(path)
    rows = [parse_redcaps_annotation(a if isinstance(a, dict) else {}, now, recipe, year) for a in anns]
    df = _typed(pd.DataFrame(rows, columns=ROW_COLUMNS[:-1] + ["subreddit"]).drop(columns=["subreddit"]))
    df["source_file"] = path
    return df


def redcaps_rows(spark, files: list[str], now: dt.datetime, recipe: str):
    """Every annotation of the RedCaps JSON files as a parsed row (SOURCE_ROWS)."""
    paths = spark.createDataFrame([(f,) for f in files], "path string").repartition(max(1, min(len(files), 64)))

    def parse(batches):
        for b in batches:
            for path in b["path"]:
                yield _redcaps_file_rows(path, now, recipe)

    return paths.mapInPandas(parse, ROW_SCHEMA)


def apply_subset(rows, ids):
    """Kept rows whose uid is not in the subset id list become `not_in_subset`."""
    ids = ids.select(F.col("uid").alias("_subset_uid"), F.lit(True).alias("_in_subset")).distinct()
    joined = rows.join(ids, rows.uid == ids._subset_uid, "left")
    reason = F.when((F.col("reason") == "kept") & F.col("_in_subset").isNull(), F.lit("not_in_subset")) \
        .otherwise(F.col("reason"))
    return joined.withColumn("reason", reason).drop("_subset_uid", "_in_subset")


def drop_duplicate_uids(rows):
    """Of kept rows sharing a uid, the earliest (then the smallest url) stays; the rest are `duplicate_uid`."""
    w = Window.partitionBy("uid").orderBy("first_seen_time", "url", "text")
    ranked = rows.withColumn("_n", F.when(F.col("reason") == "kept", F.row_number().over(w)))
    return ranked.withColumn("reason", F.when(F.col("_n") > 1, F.lit("duplicate_uid")).otherwise(F.col("reason"))) \
        .drop("_n")


def with_step(pool, scheme: StepScheme):
    """`step`: the step of the first-seen year by `scheme` (`ticcore.steps.StepScheme.year_step`, as a
    Spark column): the first of its `step_ends` not before the year, else the year with every year
    before `start_year` folded into it."""
    year = F.col("first_seen_year")
    if scheme.step_ends:
        step = F.lit(None)
        for end in reversed(scheme.step_ends):
            step = F.when(year <= end, F.lit(end)).otherwise(step)
    else:
        step = F.greatest(year, F.lit(scheme.start_year))
    return pool.withColumn("step", step.cast("int"))


# ------------------------------------------------------------------ the job

def check_inputs(source: Source, inputs: list[str], out: str, subset: str | None = None) -> list[str]:
    """The input files, after checking what can be checked without Spark (so bad input fails in a second,
    before a JVM starts)."""
    if is_local(out):
        check_output_local(out, source.tool)
    files = []
    for path in inputs:
        p = local_path(path) if is_local(path) else None
        if p is not None and not p.exists():
            raise InputError(f"{path}: not found")
        if source.name == "redcaps":
            if p is None:
                raise InputError(f"{path}: RedCaps annotations are read from local paths")
            found = sorted(p.rglob("*.json")) if p.is_dir() else [p]
            if not found:
                raise InputError(f"{path}: no .json annotation files")
            files += [str(f) for f in found]
        else:
            files.append(str(p) if p is not None else path)
    if subset and is_local(subset) and not local_path(subset).is_file():
        raise InputError(f"{subset}: subset id list not found")
    return files


def parsed_rows(spark, cfg: SourceConfig, files: list[str]):
    """Every record, parsed, with `reason` (kept, or why not), after the subset list and duplicate uids."""
    source = cfg.source
    rows = (yfcc_rows if source.name == "yfcc" else redcaps_rows)(spark, files, cfg.now, cfg.recipe)
    if cfg.subset:
        ids = spark.read.text(cfg.subset).rdd.mapPartitions(
            lambda it: ([u] for u in parse_subset_ids(r.value for r in it)))
        rows = apply_subset(rows, spark.createDataFrame(ids, "uid string"))
    return drop_duplicate_uids(rows).persist(StorageLevel.MEMORY_AND_DISK)


def write_source_splits(spark, tmp: str, source: Source, scheme: StepScheme, rows, kept, retrieval) \
        -> tuple[dict, dict, dict]:
    """eval/retrieval, train/{pool} (minus evaluation pairs) and dropped/ under `tmp`:
    (leak removals, training rows per year, per step)."""
    retrieval.repartition("year").sortWithinPartitions("uid").write.partitionBy("year") \
        .parquet(f"{tmp}/eval/retrieval")
    clean, leaks = sp.remove_leaks(kept.drop("step"), retrieval.select("uid", "sha256", "url"))
    clean.repartition("year").sortWithinPartitions("uid").write.partitionBy("year") \
        .parquet(f"{tmp}/train/{source.pool}")
    removed = {r["leak_key"]: r["count"] for r in leaks.groupBy("leak_key").count().collect()}
    (rows.where(F.col("reason") != "kept").select("uid", "reason", "first_seen_month", "source_file")
     .repartition("reason").sortWithinPartitions("source_file", "uid").write.partitionBy("reason")
     .parquet(f"{tmp}/dropped"))
    train = spark.read.parquet(f"{tmp}/train/{source.pool}")
    by_year = {str(r["year"]): r["count"] for r in train.groupBy("year").count().collect()}
    by_step = {str(r["step"]): r["count"] for r in with_step(train.withColumn("first_seen_year", F.col("year")),
                                                              scheme).groupBy("step").count().collect()}
    return removed, by_year, by_step


def eval_warnings(cfg: SourceConfig, step_pairs: dict, sizes: dict) -> list[str]:
    """What the evaluation lacks, per step: a recipe step with no pair at all (tic), a step whose pairs
    gave no evaluation pair (its eval set would be missing, not small), fewer pairs than --eval-size
    asked for (ours). `step_pairs`: kept pairs per step label; `sizes`: `holdout_sizes`'s."""
    steps = sorted({str(s) for s in cfg.steps.step_ends} | set(step_pairs))
    warnings = []
    for step in steps:
        pairs = step_pairs.get(step, 0)
        got = min(sizes[step]["seeds"].values()) if step in sizes and sizes[step]["seeds"] else 0
        if pairs == 0:
            warnings.append(f"step {step}: no pairs, so no training data and no evaluation set")
        elif got == 0:
            warnings.append(f"retrieval {step}: 0 evaluation pairs ({pairs} pairs in the step), no evaluation set")
        elif cfg.recipe == "ours" and got < cfg.eval_size:
            warnings.append(f"retrieval {step}: {got} pairs per seed, fewer than the {cfg.eval_size} asked for")
    return warnings


def build(spark, cfg: SourceConfig, log=print) -> dict:
    """Write cfg.out (temporary sibling, then rename); returns its stats.json."""
    source, scheme = cfg.source, cfg.steps
    files = check_inputs(source, list(cfg.inputs), cfg.out, cfg.subset)
    rows = parsed_rows(spark, cfg, files)
    reasons = {r["reason"]: r["count"] for r in rows.groupBy("reason").count().collect()}
    kept = with_step(rows.where(F.col("reason") == "kept").drop("reason"), scheme) \
        .withColumn("sha256", F.lit(None).cast("string")).withColumn("year", F.col("first_seen_year"))
    kept = kept.persist(StorageLevel.MEMORY_AND_DISK)
    step_pairs = {str(r["step"]): r["count"] for r in kept.groupBy("step").count().collect()}
    if cfg.recipe == "tic":
        retrieval = sp.fraction_holdout(kept.drop("year"), cfg.eval_fraction, cfg.seed, year_col="step")
        config = {"recipe": "tic", "eval_fraction": cfg.eval_fraction, "seeds": 1, "seed": cfg.seed}
    else:
        retrieval = sp.retrieval_holdout(kept.drop("year"), cfg.split, year_col="step")
        config = asdict(cfg.split)
    retrieval = retrieval.drop("step").persist(StorageLevel.MEMORY_AND_DISK)
    sizes = sp.holdout_sizes(retrieval, by_subset=False)
    warnings = eval_warnings(cfg, step_pairs, sizes)
    for w in warnings:
        log(f"[{source.tool}] warning: {w}")
    with staged_output(spark, cfg.out, cfg.source.tool) as tmp:
        removed, by_year, by_step = write_source_splits(spark, tmp, source, scheme, rows, kept, retrieval)
        total = sum(reasons.values())
        stats = {"tool": source.tool, "source": source.name, "recipe": cfg.recipe, "inputs": files,
                 "subset": cfg.subset, "now": cfg.now.isoformat(), "config": config, "pools": [source.pool],
                 "step_start_year": scheme.start_year, "step_ends": list(scheme.step_ends) or None,
                 "reasons": dict(sorted(reasons.items())), "retrieval": dict(sorted(sizes.items())),
                 "warnings": warnings, "leakage_removed": {source.pool: removed},
                 "train_rows": {source.pool: dict(sorted(by_year.items()))},
                 "train_rows_by_step": dict(sorted(by_step.items())),
                 "accounting": {"records": total, "kept": reasons.get("kept", 0),
                                "dropped": total - reasons.get("kept", 0),
                                "train_rows": sum(by_year.values()), "removed_for_evaluation": sum(removed.values()),
                                "ok": reasons.get("kept", 0) == sum(by_year.values()) + sum(removed.values())}}
        write_stats(spark, tmp, stats)
    log(f"[{source.tool}] recipe {cfg.recipe}: {total} records: kept {reasons.get('kept', 0)}, dropped "
        + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()) if k != "kept")
        + f"; train per step {dict(sorted(by_step.items()))}; eval per step and seed "
        + str({y: min(e['seeds'].values()) for y, e in sorted(sizes.items())}))
    return stats


def _parser(source: Source) -> argparse.ArgumentParser:
    p = ArgumentParser(prog=source.tool, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = "YFCC100M metadata TSV file(s) (.bz2/.gz allowed)" if source.name == "yfcc" else \
        "RedCaps annotation JSON files or directories holding them"
    p.add_argument("inputs", nargs="+", help=what)
    p.add_argument("out")
    if source.name == "yfcc":
        p.add_argument("--subset", help="YFCC15M id list (line number, photo id, photo hash per line)")
    p.add_argument("--recipe", choices=RECIPES, default=DEFAULT_RECIPE,
                   help="tic: as the TiC-CLIP paper built it (default); ours: this toolkit's earlier recipe")
    p.add_argument("--eval-fraction", type=number(float, 0, 1, lo_open=True), default=None,
                   help="tic: the share of each step held out for evaluation (default 0.01)")
    p.add_argument("--eval-size", type=number(int, 0), default=None,
                   help="ours: retrieval pairs per step and seed (default 1000)")
    p.add_argument("--seeds", type=number(int, 1), default=None, help="ours: evaluation seeds (default 3)")
    p.add_argument("--max-holdout-fraction", type=number(float, 0, 1), default=None,
                   help="ours: never hold out more of a step than this (default 0.1)")
    p.add_argument("--now", help="ISO date: later timestamps are future_timestamp (default: now)")
    p.add_argument("--seed", type=number(int, 0), default=0)
    p.add_argument("--master", default="local[*]")
    return p


def main_for(name: str, argv=None) -> int:
    source = SOURCES[name]
    args = _parser(source).parse_args(argv)

    def body() -> int:
        cfg = SourceConfig.from_args(source, args)
        check_inputs(source, list(cfg.inputs), cfg.out, cfg.subset)  # before a JVM starts
        spark = build_session(source.tool, cfg.master)
        try:
            with unreadable_files_are_input_errors():
                build(spark, cfg)
        finally:
            spark.stop()
        return 0

    return report_user_errors(source.tool, body)


def main_yfcc(argv=None) -> int:
    return main_for("yfcc", argv)


def main_redcaps(argv=None) -> int:
    return main_for("redcaps", argv)


if __name__ == "__main__":
    sys.exit(main_for(sys.argv[1], sys.argv[2:]))
