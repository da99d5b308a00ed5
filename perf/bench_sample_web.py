"""Sample-web generation rate, on-disk size, and image-server throughput.

    python perf/bench_sample_web.py --pairs 200000            # generation
    python perf/bench_sample_web.py --pairs 20000 --serve 4000 # + image server

Generation is single-process; "per core" divides by the process's CPU time (user+sys, all
threads), so BLAS threads cannot flatter it. Rendering the image templates (one per
concept x look-year x colour x scene, at most ~39k whatever --pairs is) is a bounded one-off
cost and is reported separately from the per-pair steady state.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench_generate(pairs: int, out: Path, gzip_level: int = 1) -> dict:
    from sample_web.generate import generate
    from sample_web.world import SampleWebConfig

    shutil.rmtree(out, ignore_errors=True)
    cpu0, t0 = os.times(), time.perf_counter()
    world = generate(SampleWebConfig(out=out, pairs=pairs, seed=1, gzip_level=gzip_level), progress=False,
                     log=lambda *_: None)
    wall = time.perf_counter() - t0
    cpu1 = os.times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    render = world["timing"]["template_render_seconds"]
    sizes = {name: dir_size(out / name) for name in ("crawl-data", "metadata", "truth", "imagenet_like")}
    return {"pairs": pairs, "wall_s": wall, "cpu_s": cpu, "template_renders": world["stats"]["template_renders"],
            "template_render_s": render, "sizes": sizes}


def bench_server(world: Path, n: int, threads: int, workers: int) -> dict:
    import duckdb

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import start_image_server  # noqa: E402

    urls = [r[0] for r in duckdb.sql(
        f"select m.url from '{world}/metadata/*.parquet' m join '{world}/truth/*.parquet' t using (uid) "
        f"where t.download_status = 'ok' and m.original_width * m.original_height < 2e6 limit {n}").fetchall()]
    server = start_image_server(workers=workers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": server.proxy}))

    def fetch(url):
        return len(opener.open(url, timeout=30).read())

    out = {}
    try:
        for label in ("cold (renders templates)", "warm (templates cached)"):
            t0 = time.perf_counter()
            with cf.ThreadPoolExecutor(threads) as pool:
                total = sum(pool.map(fetch, urls))
            dt = time.perf_counter() - t0
            out[label] = {"images": len(urls), "seconds": dt, "images_per_s": len(urls) / dt, "MB": total / 1e6}
    finally:
        server.stop()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=200_000)
    p.add_argument("--serve", type=int, default=0, help="also fetch this many images through the server")
    p.add_argument("--threads", type=int, default=32)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--gzip-level", type=int, default=1, help="WARC deflate level (the generator's --gzip-level)")
    p.add_argument("--keep", type=Path, help="keep the world here instead of a temp dir")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-sample-web-"))
    out = args.keep or tmp / "world"
    try:
        g = bench_generate(args.pairs, out, args.gzip_level)
        steady_cpu = g["cpu_s"] - g["template_render_s"]
        print(f"generation (gzip level {args.gzip_level}): {g['pairs']:,} pairs in {g['wall_s']:.1f} s wall, {g['cpu_s']:.1f} s CPU")
        print(f"  overall            : {g['pairs'] / g['wall_s']:,.0f} pairs/s, {g['pairs'] / g['cpu_s']:,.0f} pairs/s/core")
        print(f"  template rendering : {g['template_renders']:,} templates in {g['template_render_s']:.1f} s CPU "
              f"(bounded: at most ~39k templates whatever --pairs is)")
        print(f"  steady state       : {g['pairs'] / steady_cpu:,.0f} pairs/s/core (metadata + WARC, without "
              f"template rendering)")
        total = sum(g["sizes"].values())
        per100k = {k: v / g["pairs"] * 1e5 / 2**20 for k, v in g["sizes"].items()}
        print(f"  on disk            : {total / 2**20:,.0f} MiB, i.e. {total / g['pairs'] * 1e5 / 2**20:,.0f} MiB "
              f"per 100k pairs (" + ", ".join(f"{k} {v:,.1f}" for k, v in per100k.items()) + ")")
        if args.serve:
            s = bench_server(out, args.serve, args.threads, args.workers)
            for label, r in s.items():
                print(f"image server, {label}: {r['images_per_s']:,.0f} images/s "
                      f"({r['images']} images, {r['MB']:.0f} MB, {args.threads} client threads, "
                      f"{args.workers} server workers)")
        print(json.dumps({"generation": g}, default=str))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
