"""DataComp-style metadata shards: `NAME.parquet` with a sibling `NAME.npz` of embeddings in the same row order."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow.parquet as pq

from ticcore.errors import InputError, UserError
from ticcore.validate import check_types

EMBEDDING_KEYS = ("l14_img", "l14_txt", "b32_img", "b32_txt")


class ShardError(UserError):
    """A shard whose parquet and npz disagree: stops the job, naming the shard."""


def list_shards(metadata_dir: str | Path) -> list[Path]:
    """The pool's .parquet files, as Spark lists them: under names that do not start with `.` or `_`."""
    root = Path(metadata_dir)
    shards = sorted(p for p in root.rglob("*.parquet")
                    if not any(part.startswith((".", "_")) for part in p.relative_to(root).parts))
    if not shards:
        raise FileNotFoundError(f"{root}: no .parquet metadata shards")
    return shards


# The types of the pool columns the stages read (ticcore.validate.type_problems' kinds)
POOL_COLUMN_TYPES = {"uid": "string", "url": "string", "text": "string", "original_width": "float",
                     "original_height": "float", "clip_b32_similarity_score": "float",
                     "clip_l14_similarity_score": "float"}


def check_pool(metadata_dir: str | Path, need: Iterable[str], why: str = "") -> list[Path]:
    """A DataComp-style pool's shards, after reading every footer: each is a readable parquet file with
    the `need` columns, every known column has its type (a uid or text written as int64 is refused,
    not passed on), and the pool holds at least one row. One InputError naming the file otherwise."""
    root = Path(metadata_dir)
    if not root.is_dir():
        raise InputError(f"{metadata_dir}: {'not a directory' if root.exists() else 'metadata directory not found'}")
    try:
        shards = list_shards(root)
    except FileNotFoundError as exc:
        raise InputError(str(exc)) from None
    need, rows = set(need), 0
    for shard in shards:
        try:
            meta = pq.ParquetFile(shard)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a file that is not parquet
            raise InputError(f"{shard}: not a readable parquet file ({' '.join(str(exc).split())})") from None
        schema = meta.schema_arrow
        missing = need - set(schema.names)
        if missing:
            raise InputError(f"{shard}: metadata lacks required column(s) {', '.join(sorted(missing))}{why}")
        check_types(shard, schema, POOL_COLUMN_TYPES)
        rows += meta.metadata.num_rows
    if rows == 0:
        raise InputError(f"{metadata_dir}: the pool has 0 rows ({len(shards)} parquet file(s))")
    return shards


def parquet_rows(shard: Path) -> int:
    return pq.ParquetFile(shard).metadata.num_rows


def load_embeddings(shard: Path, key: str = "l14_img", rows: int | None = None) -> np.ndarray | None:
    """The shard's `key` embeddings, or None when it has no .npz. Raises ShardError if the .npz does not
    hold `key` or its row count differs from the parquet's."""
    npz_path = shard.with_suffix(".npz")
    if not npz_path.is_file():
        return None
    with np.load(npz_path) as npz:
        if key not in npz.files:
            raise ShardError(f"{npz_path}: no '{key}' array (has {', '.join(npz.files)})")
        emb = npz[key]
    expected = parquet_rows(shard) if rows is None else rows
    if emb.shape[0] != expected:
        raise ShardError(f"{shard}: the .npz has {emb.shape[0]} rows of {key} but the parquet has {expected}")
    return emb


def npz_shape(npz_path: Path, key: str) -> tuple[int, ...] | None:
    """Shape of one array in an .npz, read from its .npy header only (None if absent)."""
    with zipfile.ZipFile(npz_path) as z:
        name = key + ".npy"
        if name not in z.namelist():
            return None
        with z.open(name) as f:
            version = np.lib.format.read_magic(f)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, _ = reader(f)
    return shape


def check_shards(shards: list[Path], key: str = "l14_img") -> list[Path]:
    """`shards` (as `check_pool` listed them), after checking every .npz row count against its parquet
    (reads headers only)."""
    for shard in shards:
        npz_path = shard.with_suffix(".npz")
        if not npz_path.is_file():
            continue
        try:
            shape = npz_shape(npz_path, key)
        except Exception as exc:  # noqa: BLE001 - a broken zip
            raise ShardError(f"{npz_path}: unreadable .npz ({exc})")
        if shape is not None and shape[0] != parquet_rows(shard):
            raise ShardError(f"{shard}: the .npz has {shape[0]} rows of {key} but the parquet has "
                             f"{parquet_rows(shard)}")
    return shards
