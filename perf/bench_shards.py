"""Shard-stage benchmarks (issue 7), each measured in one run:

1. Download into shards: our stage (URL screening + network guard + img2dataset, forked workers)
   against img2dataset alone, on the same URLs and the same warm loopback image server, runs
   alternated A B A B; img2dataset alone gets the URLs rewritten to the server's address.
   Target: ours >= 0.9x img2dataset's images/s.
2. Resharding >= 100k samples into steps by uid, against copying the same tar bytes as they are.

    python perf/bench_shards.py --urls 6000 --reshard-samples 100000
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from benchmarks.download import DownloadConfig, download  # noqa: E402
from benchmarks.netguard import NetPolicy  # noqa: E402
from benchmarks.reshard import ReshardConfig, reshard  # noqa: E402
from conftest import start_image_server  # noqa: E402
from sample_web.generate import generate  # noqa: E402
from sample_web.world import SampleWebConfig  # noqa: E402


def bench_download(n_urls: int, pairs: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    server = start_image_server(workers=2, slow_seconds=0.5)
    try:
        world = tmp / "world"
        generate(SampleWebConfig(out=world, pairs=pairs, seed=4, imagenet_per_class=1), progress=False,
                 log=lambda *_: None)
        meta = pd.concat(pd.read_parquet(f) for f in sorted((world / "metadata").glob("*.parquet")))
        truth = pd.read_parquet(world / "truth", columns=["uid", "download_status"])
        rows = meta.merge(truth, on="uid")
        rows = rows[rows.download_status == "ok"].head(n_urls)[["uid", "url", "text", "sha256", "face_bboxes"]]
        ours_list = tmp / "ours.parquet"
        pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), ours_list)
        base = f"http://127.0.0.1:{server.port}/"
        alone = rows.assign(url=[base + u.split("/", 3)[3] for u in rows.url]).rename(columns={"sha256": "meta_sha256"})
        alone_list = tmp / "alone.parquet"
        pq.write_table(pa.Table.from_pandas(alone, preserve_index=False), alone_list)
        common = dict(image_size=64, resize_mode="keep_ratio_largest", resize_only_if_bigger=True, encode_format="jpg",
                      encode_quality=90, processes=2, threads=32, timeout=10, retries=0, samples_per_shard=2000,
                      max_image_area=25e6)
        policy = NetPolicy(allow_loopback=True, resolve={"*": ("127.0.0.1", server.port)})

        def run_ours(i):
            out = tmp / f"ours{i}"
            t0 = time.perf_counter()
            download(ours_list, out, DownloadConfig(**common, policy=policy), log=lambda *_: None)
            dt = time.perf_counter() - t0
            shutil.rmtree(out)
            return len(rows) / dt

        def run_alone(i):
            import img2dataset  # 3.6 s to import: only the download benchmark pays for it

            out = tmp / f"alone{i}"
            t0 = time.perf_counter()
            img2dataset.download(url_list=str(alone_list), input_format="parquet", url_col="url", caption_col="text",
                                 save_additional_columns=["uid"], bbox_col="face_bboxes", output_format="webdataset",
                                 output_folder=str(out), processes_count=2, thread_count=32, image_size=64,
                                 resize_mode="keep_ratio_largest", resize_only_if_bigger=True, encode_quality=90,
                                 number_sample_per_shard=2000, timeout=10, retries=0, enable_wandb=False,
                                 max_image_area=25e6, verify_hash=["meta_sha256", "sha256"])
            dt = time.perf_counter() - t0
            shutil.rmtree(out)
            return len(rows) / dt

        run_alone(-1)  # warm the server's templates
        ours, alone_rates = [], []
        for i in range(3):
            alone_rates.append(run_alone(i))
            ours.append(run_ours(i))
        a, b = statistics.median(ours), statistics.median(alone_rates)
        print(f"download into shards, {len(rows):,} URLs, warm loopback server, 2 processes x 32 threads: "
              f"ours {a:,.0f} images/s, img2dataset alone {b:,.0f} images/s -> {a / b:.2f}x (target >= 0.9); "
              f"runs ours {[round(x) for x in ours]}, alone {[round(x) for x in alone_rates]}")
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _synthetic_pool(root: Path, n: int, per_shard: int = 10_000) -> list[str]:
    """An img2dataset-style pool of n samples (2 KB images), and the uids."""
    rng = np.random.default_rng(0)
    pool = root / "pool"
    pool.mkdir(parents=True)
    uids = [f"{x:032x}" for x in rng.integers(0, 2**62, size=n)]
    for s, start in enumerate(range(0, n, per_shard)):
        with tarfile.open(pool / f"{s:05d}.tar", "w") as tf:
            for i in range(start, min(n, start + per_shard)):
                key = f"{s:05d}{i - start:04d}"
                for ext, data in (("jpg", rng.bytes(2048)), ("txt", b"a caption"),
                                  ("json", json.dumps({"uid": uids[i], "sha256": "0" * 64, "width": 64}).encode())):
                    ti = tarfile.TarInfo(f"{key}.{ext}")
                    ti.size = len(data)
                    tf.addfile(ti, io.BytesIO(data))
        (pool / f"{s:05d}_stats.json").write_text("{}")
    return uids


def bench_reshard(n: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-reshard-"))
    try:
        uids = _synthetic_pool(tmp / "dl", n)
        splits = tmp / "splits"
        years = np.random.default_rng(1).integers(2014, 2023, size=n)
        for y in range(2014, 2023):
            d = splits / "train" / "unfiltered" / f"year={y}"
            d.mkdir(parents=True)
            sel = [i for i in range(n) if years[i] == y]
            pd.DataFrame({"uid": [uids[i] for i in sel], "url": "http://x/", "text": "a caption",
                          "first_seen_month": [f"{y}-05"] * len(sel)}).to_parquet(d / "part.parquet")
        (splits / "stats.json").write_text("{}")
        t0 = time.perf_counter()
        s = reshard(ReshardConfig(splits, tmp / "dl", tmp / "out", samples_per_shard=10_000), log=lambda *_: None)
        t_reshard = time.perf_counter() - t0
        t0 = time.perf_counter()
        copy = tmp / "copy"
        copy.mkdir()
        for t in sorted((tmp / "dl" / "pool").glob("*.tar")):
            shutil.copyfile(t, copy / t.name)
        t_copy = time.perf_counter() - t0
        print(f"resharding {s['samples_written']:,} samples into {sum(len(v) for v in s['steps'].values())} steps: "
              f"{s['samples_written'] / t_reshard:,.0f} samples/s ({t_reshard:.1f} s); plain tar copy of the same "
              f"bytes {n / t_copy:,.0f} samples/s ({t_copy:.1f} s) -> {t_copy / t_reshard:.2f}x of the copy floor")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--urls", type=int, default=6000)
    p.add_argument("--pairs", type=int, default=8000, help="sample-web size to draw the URLs from")
    p.add_argument("--reshard-samples", type=int, default=100_000)
    p.add_argument("--skip-download", action="store_true")
    args = p.parse_args()
    if not args.skip_download:
        bench_download(args.urls, args.pairs)
    bench_reshard(args.reshard_samples)


if __name__ == "__main__":
    main()
