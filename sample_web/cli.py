"""`tic-sample-web`: generate a sample web (default) or serve its images.

    tic-sample-web --out DIR --pairs N --seed S [options]
    tic-sample-web serve [--port P] [--workers K] [--slow-seconds X]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ticcore.validate import ArgumentParser, number
from ticcore.errors import report_user_errors

from .generate import generate
from .server import main_serve
from .sources import generate_sources
from .world import SampleWebConfig

TOOL = "tic-sample-web"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def generate_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="tic-sample-web",
        description="Generate a deterministic sample web: Common-Crawl-style WARC snapshots (2014-2022), "
                    "DataComp-style metadata with simulated reference-CLIP embeddings, ground truth, and an "
                    "ImageNet-like labelled set. `tic-sample-web serve --help` for the image server.")
    p.add_argument("--out", required=True, type=Path, help="output directory (created; replaced only if it "
                   "already holds a sample web)")
    p.add_argument("--pairs", required=True, type=_positive_int, help="DataComp pool size (image-text pairs)")
    p.add_argument("--seed", type=number(int, 0), default=0, help="world seed (default 0)")
    p.add_argument("--snapshots-per-year", type=number(int, 1), default=2, help="crawl snapshots per year (>= 2, default 2)")
    p.add_argument("--shard-rows", type=_positive_int, default=20_000,
                   help="pool rows per metadata shard and generation chunk (default 20000)")
    p.add_argument("--imagenet-per-class", type=_positive_int, default=10,
                   help="ImageNet-like images per ImageNet concept (default 10)")
    p.add_argument("--warc-target-mb", type=_positive_int, default=64, help="rotate WARC files past this size")
    p.add_argument("--no-big-page", action="store_true", help="leave out the ~10 MB HTML page")
    p.add_argument("--gzip-level", type=number(int, 0, 9), choices=range(4), default=1,
                   help="ISA-L deflate level of the WARC records other than requests, which always use 0 "
                        "(default 1; 0 compresses a page ~2x faster into ~25%% more bytes)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def serve_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="tic-sample-web serve",
                                description="Serve the sample web's images over HTTP on loopback.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=number(int, 0, 65535), default=0, help="0 picks a free port (printed on start)")
    p.add_argument("--workers", type=number(int, 1), default=os.cpu_count() or 1, help="worker processes")
    p.add_argument("--slow-seconds", type=number(float, 0), default=3.0, help="delay of the world's slow URLs")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        args = serve_parser().parse_args(argv[1:])
        main_serve(args.host, args.port, args.workers, args.slow_seconds)
        return 0
    if argv[:1] == ["sources"]:
        sp = ArgumentParser(prog="tic-sample-web sources",
                                     description="YFCC100M-style and RedCaps-style sources (see sample_web/sources.py)")
        sp.add_argument("--out", required=True, type=Path)
        sp.add_argument("--yfcc", type=_positive_int, default=6000, help="YFCC metadata lines (default 6000)")
        sp.add_argument("--redcaps", type=_positive_int, default=6000, help="RedCaps annotations (default 6000)")
        sp.add_argument("--seed", type=number(int, 0), default=0)
        args = sp.parse_args(argv[1:])
        # the config classes and the sources generator refuse bad values with a ValueError
        return report_user_errors(TOOL, lambda: generate_sources(args.out, args.yfcc, args.redcaps, args.seed),
                                  also=(ValueError,))
    if argv[:1] == ["generate"]:
        argv = argv[1:]
    args = generate_parser().parse_args(argv)

    def body():
        cfg = SampleWebConfig(out=args.out, pairs=args.pairs, seed=args.seed,
                              snapshots_per_year=args.snapshots_per_year, shard_rows=args.shard_rows,
                              imagenet_per_class=args.imagenet_per_class,
                              warc_target_bytes=args.warc_target_mb << 20, big_page=not args.no_big_page,
                              gzip_level=args.gzip_level)
        generate(cfg, progress=not args.quiet)

    return report_user_errors(TOOL, body, also=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
