"""DataComp-style metadata shards: `NAME.parquet` with a sibling `NAME.npz` of embeddings in the same row order."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ticcore.errors import UserError

EMBEDDING_KEYS = ("l14_img", "l14_txt", "b32_img", "b32_txt")


class ShardError(UserError):
    """A shard whose parquet and npz disagree: stops the job, naming the shard."""


def list_shards(metadata_dir: str | Path) -> list[Path]:
    root = Path(metadata_dir)
    shards = sorted(root.rglob("*.parquet"))
    if not shards:
        raise FileNotFoundError(f"{root}: no .parquet metadata shards")
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


def check_shards(metadata_dir: str | Path, key: str = "l14_img") -> list[Path]:
    """All shards, after checking every .npz row count against its parquet (reads headers only)."""
    shards = list_shards(metadata_dir)
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
