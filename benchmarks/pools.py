"""Reading a tic-splits (or tic-yfcc / tic-redcaps) output from a single process: its training pools,
its first step, its hive-partitioned tables, and the pairs the shard stage needs.

Shared by `tic-shards` and `tic-analyze` (which runs on splits before any shards exist); `leak_check_sets`
finds what both leakage checks (tic-splits' and tic-shards') compare, in either output.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ticcore.errors import InputError
from ticcore.schemas import SHARD_REQUEST
from ticcore.steps import DEFAULT_START_YEAR, StepScheme

POOLS = ("unfiltered", "basic", "bestpool")  # TiC-DataComp's; tic-yfcc / tic-redcaps write yfcc15m / redcaps
EVAL_SETS = ("retrieval", "net")


def train_pools(splits: Path) -> list[str]:
    """The training pools a splits directory holds (DataComp's in their usual order, then any other)."""
    root = Path(splits) / "train"
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")) if root.is_dir() else []
    return [p for p in POOLS if p in found] + [p for p in found if p not in POOLS]


def _local_subdirs(path: str) -> list[str] | None:
    p = Path(path)
    return sorted(d.name for d in p.iterdir() if d.is_dir()) if p.is_dir() else None


def _local_holds_parquet(path: str) -> bool:
    return any(f.is_file() for f in Path(path).rglob("*.parquet"))


def leak_check_sets(root: str, subdirs: Callable[[str], list[str] | None] = _local_subdirs,
                    holds_parquet: Callable[[str], bool] = _local_holds_parquet) -> tuple[list[str], list[str]]:
    """(evaluation sets, training pools): every directory under ROOT/eval and ROOT/train, whatever it is
    called (TiC-DataComp's unfiltered/basic/bestpool, tic-yfcc's yfcc15m, shards' static, ...), except
    hidden and `_`-prefixed ones (Spark's _temporary). A leakage check that finds nothing to compare must
    not report clean, so a missing ROOT, an eval/ or train/ that is missing or holds no set, and a set
    without a parquet file are each an InputError naming the path. `subdirs` (names, or None when the
    path is not a directory) and `holds_parquet` default to the local file system; tic-splits passes
    Hadoop's for non-local outputs."""
    base = root.rstrip("/")
    if subdirs(base) is None:
        raise InputError(f"{base}: not found (or not a directory)")
    found = []
    for part, what in (("eval", "evaluation set"), ("train", "training pool")):
        names = [n for n in (subdirs(f"{base}/{part}") or []) if not n.startswith((".", "_"))]
        if not names:
            raise InputError(f"{base}/{part}: no {what} to check")
        for name in names:
            if not holds_parquet(f"{base}/{part}/{name}"):
                raise InputError(f"{base}/{part}/{name}: no parquet file in this {what}")
        found.append([p for p in POOLS if p in names] + [n for n in names if n not in POOLS])
    return found[0], found[1]


def default_start_year(splits: Path) -> int:
    """The first step the splits were built for (tic-yfcc: 2008 or 2011, tic-redcaps: 2017), else TiC-DataComp's 2016."""
    try:
        return int(_split_stats(splits).get("step_start_year", DEFAULT_START_YEAR))
    except (TypeError, ValueError):
        return DEFAULT_START_YEAR


def split_step_scheme(splits: Path, granularity: str = "year", start_year: int | None = None) -> StepScheme:
    """The step rule the splits were built for: their `step_ends` (tic-yfcc's multi-year buckets) and first
    step, from their stats.json; `start_year`, when given, overrides both (years before it fold into it)."""
    if start_year is not None:
        return StepScheme(granularity, start_year)
    stats = _split_stats(splits)
    ends = stats.get("step_ends") or ()
    return StepScheme(granularity, int(ends[0]), tuple(ends)) if ends else \
        StepScheme(granularity, int(stats.get("step_start_year", DEFAULT_START_YEAR)))


def _split_stats(splits: Path) -> dict:
    try:
        stats = json.loads((Path(splits) / "stats.json").read_text())
        return stats if isinstance(stats, dict) else {}
    except (OSError, ValueError, TypeError):
        return {}


def read_parquet(path, columns=None) -> pd.DataFrame:
    """A parquet file as pandas, read by path: pandas hands pyarrow a Python file object, and pyarrow's
    thread pool can then abort the interpreter at exit (apache/arrow#34314, #50482)."""
    return pq.read_table(str(path), columns=columns).to_pandas()


def read_hive(path: Path, partition: str = "year", columns=None) -> pd.DataFrame | None:
    """A hive-partitioned parquet directory as pandas (the partition column as int), or None if absent."""
    if not Path(path).exists():
        return None
    df = ds.dataset(str(path), format="parquet", partitioning="hive").to_table(columns=columns).to_pandas()
    if partition in df and str(df[partition].dtype) == "category":
        df[partition] = df[partition].astype(int)
    return df


def as_uid_frame(df: pd.DataFrame) -> pd.DataFrame:
    """An extra or static list (uid or image_id, url, text or lemma) with uid and text columns."""
    if "uid" not in df and "image_id" in df:
        df = df.rename(columns={"image_id": "uid"})
    if "text" not in df:
        df = df.assign(text=df.get("lemma", "").astype(str) if "lemma" in df else "")
    return df


def split_parts(splits: Path) -> list[str]:
    """The hive tables of a splits output that the shards are made from: each training pool, each evaluation set."""
    return [f"train/{p}" for p in train_pools(splits)] + [f"eval/{name}" for name in EVAL_SETS]


def url_list(splits: Path, extras: list[str]) -> pd.DataFrame:
    """Every pair the shards will need, once (the SHARD_REQUEST columns), sorted by uid."""
    frames = [df for part in split_parts(splits) if (df := read_hive(Path(splits) / part)) is not None]
    frames += [as_uid_frame(read_parquet(extra)) for extra in extras]
    cols = list(SHARD_REQUEST.names)
    out = pd.concat([f.reindex(columns=cols) for f in frames], ignore_index=True)
    return out.drop_duplicates("uid").sort_values("uid").reset_index(drop=True)
