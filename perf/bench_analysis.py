"""Text-shift cost (issue 9): captions/s/core of the caption embedding (MiniLM, batched), cold and
from the per-caption-hash cache, and the Fréchet distance at 768 dimensions.

    python perf/bench_analysis.py --captions 4000 --splits demo-out/splits
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import analysis as A  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--splits", default="demo-out/splits")
    p.add_argument("--pool", default="basic")
    p.add_argument("--captions", type=int, default=4000)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 = per core)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    texts = ds.dataset(f"{args.splits}/train/{args.pool}", format="parquet", partitioning="hive") \
        .to_table(columns=["text"]).column("text").to_pylist()[:args.captions]
    texts = [t or "" for t in texts]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TIC_CACHE_DIR"] = tmp  # read when the cache is first used, not at import
        embed = A.CaptionEmbeddings(cache=Path(tmp) / "captions")
        embed(["warm up the model"])
        t = time.perf_counter()
        embed(texts)
        cold = time.perf_counter() - t
        again = A.CaptionEmbeddings(cache=Path(tmp) / "captions")
        t = time.perf_counter()
        again(texts)
        warm = time.perf_counter() - t
    unique = len(set(texts))
    print(f"[bench-analysis] {len(texts)} captions ({unique} distinct), {args.threads} thread(s): "
          f"cold {unique / cold:.0f} captions/s/core ({cold:.1f} s), cached {len(texts) / warm:.0f} captions/s "
          f"({warm:.2f} s, {cold / warm:.0f}x)")
    rng = np.random.default_rng(0)
    g1 = A.gaussian(rng.normal(size=(3000, 768)))
    g2 = A.gaussian(rng.normal(size=(3000, 768)) + 0.01)
    t = time.perf_counter()
    A.frechet_distance(*g1, *g2)
    print(f"[bench-analysis] Fréchet distance at 768 dimensions: {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
