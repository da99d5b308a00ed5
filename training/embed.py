"""`tic-train embed`: a checkpoint's image embeddings of a pool's training images, as DataComp metadata.

    tic-train embed --checkpoint CKPT --data SHARDS --pool POOL --out OUT_DIR [--uids PARQUET]

Embeds the `<uid>.jpg` (or `.png`/`.webp`) members of SHARDS/train/POOL/**/*.tar (only the uids in PARQUET's `uid` column when
given) with the checkpoint's image tower and the model's evaluation transform, on the CPU in batches of 256,
L2-normalised float32. OUT_DIR (written whole, atomically) holds 00000.parquet (one string column `uid`,
rows sorted by uid), 00000.npz (key `image`: (n, d) float32 in the same row order) and stats.json.
"""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

from ticcore.errors import InputError
from ticcore.outputs import claim_output, staged_dir
from ticcore.schemas import IMAGE_EXTENSIONS

from .data import DataError
from .models import CheckpointError, model_from_checkpoint, read_checkpoint

TOOL = "tic-train embed"
BATCH = 256


def read_uids(path: str | Path) -> set[str]:
    try:
        return set(pq.read_table(path, columns=["uid"]).column("uid").to_pylist())
    except (OSError, KeyError, ValueError, pa.ArrowException) as exc:
        raise InputError(f"{path}: not a parquet file with a uid column ({exc})") from None


def pool_images(data: str | Path, pool: str, uids: set[str] | None) -> tuple[list[str], list[bytes]]:
    """(uids, encoded image bytes) of the pool's images, in shard order (sorted paths), those in `uids` when given."""
    root = Path(data) / "train" / pool
    tars = sorted(root.rglob("*.tar")) if root.is_dir() else []
    if not tars:
        raise DataError(f"{root}: no shards (is {data} a tic-shards output with pool '{pool}'?)")
    keys, images = [], []
    for tar in tars:
        with tarfile.open(tar) as tf:
            for m in tf:
                key, _, ext = m.name.rpartition(".")
                if ext in IMAGE_EXTENSIONS and (uids is None or key in uids):
                    keys.append(key)
                    images.append(tf.extractfile(m).read())
    return keys, images


@torch.no_grad()
def image_embeddings(model, preprocess, images: list[bytes], batch: int = BATCH) -> np.ndarray:
    """L2-normalised float32 image embeddings, (n, d)."""
    parts = [np.zeros((0, model.visual.output_dim), np.float32)]
    for i in range(0, len(images), batch):
        x = torch.stack([preprocess(Image.open(io.BytesIO(b)).convert("RGB")) for b in images[i:i + batch]])
        parts.append(torch.nn.functional.normalize(model.encode_image(x).float(), dim=-1).numpy())
    return np.concatenate(parts).astype(np.float32, copy=False)


def embed(checkpoint: str | Path, data: str | Path, pool: str, out: str | Path, uids_parquet: str | None = None,
          log=print) -> dict:
    """Write OUT's embeddings; returns its stats.json document."""
    checkpoint, out = Path(checkpoint), Path(out)
    claim_output(out, TOOL)
    _, state, name = read_checkpoint(checkpoint)
    if not name:
        raise CheckpointError(f"{checkpoint}: not a tic-train checkpoint (no model_name)")
    model, preprocess, _ = model_from_checkpoint(checkpoint, state, name, "cpu")
    model.eval()
    keys, images = pool_images(data, pool, read_uids(uids_parquet) if uids_parquet else None)
    by_uid = dict(zip(keys, image_embeddings(model, preprocess, images)))  # a uid seen twice: its last image
    order = sorted(by_uid)
    stats = {"tool": TOOL, "model_name": name, "checkpoint": str(checkpoint), "samples": len(order)}
    with staged_dir(out, TOOL) as tmp:
        pq.write_table(pa.table({"uid": pa.array(order, pa.string())}), tmp / "00000.parquet")
        vectors = np.stack([by_uid[u] for u in order]) if order else np.zeros((0, model.visual.output_dim), np.float32)
        np.savez(tmp / "00000.npz", image=vectors.astype(np.float32, copy=False))
        (tmp / "stats.json").write_text(json.dumps(stats, indent=1) + "\n")
    log(f"[{TOOL}] {len(order)} images of {pool} embedded with {name} ({checkpoint}) -> {out}")
    return stats
