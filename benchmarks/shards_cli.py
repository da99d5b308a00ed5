"""`tic-shards`: webdataset shards per time step, for training and for every evaluation set.

    tic-shards download SPLITS OUT [--extra PARQUET] [--allow-loopback] [--resolve HOST=IP[:PORT]] [--allow-proxy] [...]
    tic-shards reshard SPLITS DOWNLOAD OUT [--granularity year|month] [--start-year 2016] [--static PARQUET]
                       [--eval-layout tic|clip_benchmark]
    tic-shards check-leakage OUT

`download` fetches every pair of a tic-splits output (training pools and evaluation sets; plus
`--extra` lists such as the sample web's imagenet_like/images.parquet) once, with img2dataset,
into DOWNLOAD/pool; DOWNLOAD/status.parquet has one status per URL. A rerun resumes.
Only http(s) URLs are fetched, and hosts that resolve to loopback, private, link-local or
metadata addresses are refused unless allowed (`--allow-loopback`, `--allow-private`; metadata
never). A proxy in the environment (http_proxy, https_proxy) is refused unless `--allow-proxy`; then
each URL's host is resolved and checked here before the proxy is asked. A body over
`--max-body-bytes` (default 20 MiB) is not read on, and an image whose header declares more than
`--max-image-area` pixels is refused before decoding (benchmarks/imageguard.py).
`--resolve '*=127.0.0.1:PORT'` sends every host to the sample web's image server.

`reshard` writes OUT/train/{pool}/{step}/, OUT/eval/retrieval/{year}/, OUT/eval/net/{year}/ and
OUT/eval/static/ from the downloaded pool, by uid. Steps: by default 2014-2016 fold into a first
step labelled 2016, then one step per year to 2022 (7 steps); `--granularity month` gives one step
per first-seen month; `--granularity year --start-year Y` folds the years before Y into Y.
OUT/steps.json holds the step map (step labels, year -> step, first-seen month -> step) and each
pool's steps with shard pattern and sample count (for open_clip's --train-data); training reads it
with `ticcore.steps.read_steps`.

`check-leakage` exits 1 if an evaluation uid or image sha256 appears in a training shard of any pool
under OUT/train, compared with every set under OUT/eval; a missing OUT, or one without evaluation
sets or training pools, is one line and exit 2, never "clean".
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.download import DOWNLOAD_KIND, DownloadConfig, download
from benchmarks.imageguard import DEFAULT_MAX_BYTES
from benchmarks.netguard import NetPolicy, check_proxy_environment, parse_resolve
from benchmarks.pools import leak_check_sets, read_parquet, url_list
from benchmarks.reshard import EVAL_LAYOUTS, STEP_CHOICES, TOOL, ReshardConfig, reshard
from ticcore.validate import ArgumentParser, number
from ticcore.errors import InputError, report_user_errors
from ticcore.outputs import atomic_file, open_output_dir
from ticcore.schemas import SHARD_KEYS

__all__ = ["main", "reshard", "url_list", "check_leakage", "DownloadJob", "ReshardConfig"]


@dataclass(frozen=True)
class DownloadJob:
    """What `tic-shards download` is asked to do: the splits, the output, extra URL lists, and how to fetch."""
    splits: Path
    out: Path
    extras: tuple[str, ...] = ()
    download: DownloadConfig = DownloadConfig()

    @classmethod
    def from_args(cls, args) -> "DownloadJob":
        splits = Path(args.splits)
        if not (splits / "stats.json").is_file():
            raise InputError(f"{splits}: not a tic-splits output (no stats.json)")
        policy = NetPolicy(args.allow_loopback, args.allow_private, parse_resolve(args.resolve), args.allow_proxy)
        check_proxy_environment(policy)
        if args.max_body_bytes <= 0:
            raise InputError(f"--max-body-bytes must be a positive number of bytes, got {args.max_body_bytes}")
        cfg = DownloadConfig(image_size=args.image_size, resize_mode=args.resize_mode, encode_format=args.encode_format,
                             encode_quality=args.encode_quality, processes=args.processes, threads=args.threads,
                             timeout=args.timeout, retries=args.retries, samples_per_shard=args.samples_per_shard,
                             max_image_area=args.max_image_area, max_body_bytes=args.max_body_bytes,
                             verify_hash=not args.no_verify_hash, policy=policy)
        return cls(splits, Path(args.out), tuple(args.extra), cfg)


def _parser():
    p = ArgumentParser(prog=TOOL, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("download", help="download every pair once, into a uid-addressed pool")
    d.add_argument("splits", help="a tic-splits output")
    d.add_argument("out")
    d.add_argument("--extra", action="append", default=[], help="more parquet URL lists (uid or image_id, url, text)")
    d.add_argument("--allow-loopback", action="store_true", help="allow hosts that resolve to 127.0.0.0/8 or ::1")
    d.add_argument("--allow-private", action="store_true", help="allow private (RFC 1918, ULA) addresses")
    d.add_argument("--resolve", action="append", default=[], metavar="HOST=IP[:PORT]",
                   help="resolve HOST (or * for every host) to this address, like curl --resolve")
    d.add_argument("--allow-proxy", action="store_true",
                   help="use the http(s)_proxy from the environment (each URL's host is still checked first)")
    d.add_argument("--image-size", type=number(int, 1), default=256)
    d.add_argument("--resize-mode", default="keep_ratio_largest", help="img2dataset resize mode")
    d.add_argument("--encode-format", default="jpg", choices=("jpg", "png", "webp"))
    d.add_argument("--encode-quality", type=number(int, 0, 100), default=90)
    d.add_argument("--processes", type=number(int, 1), default=os.cpu_count() or 1)
    d.add_argument("--threads", type=number(int, 1), default=32)
    d.add_argument("--timeout", type=number(int, 1), default=10)
    d.add_argument("--retries", type=number(int, 0), default=0)
    d.add_argument("--samples-per-shard", type=number(int, 1), default=10_000)
    d.add_argument("--max-image-area", type=number(float, 1), default=25e6,
                   help="images whose header declares more pixels fail as too_large, undecoded")
    d.add_argument("--max-body-bytes", type=number(int, 1), default=DEFAULT_MAX_BYTES,
                   help="responses longer than this fail as body_too_large (default 20 MiB)")
    d.add_argument("--no-verify-hash", action="store_true", help="do not check downloads against metadata sha256")
    r = sub.add_parser("reshard", help="write step and evaluation shards from the downloaded pool")
    r.add_argument("splits")
    r.add_argument("download")
    r.add_argument("out")
    r.add_argument("--granularity", choices=STEP_CHOICES, default="year")
    r.add_argument("--start-year", type=number(int, 1900, 2200), default=None,
                   help="years before this fold into the first step (default: the splits' own, else 2016)")
    r.add_argument("--samples-per-shard", type=number(int, 1), default=10_000)
    r.add_argument("--static", help="parquet of a labelled static set (uid or image_id, url, class_id, ...)")
    r.add_argument("--eval-layout", choices=EVAL_LAYOUTS, default="tic",
                   help="clip_benchmark: also write OUT/clip_benchmark/{retrieval,datacompnet}/{yearly/YYYY,monthly/YYYYMM}/ "
                        "as clip_benchmark's build_wds_dataset and ml-tic-clip read them")
    c = sub.add_parser("check-leakage", help="no evaluation uid or sha256 in any training shard")
    c.add_argument("out")
    return p


def cmd_download(job: DownloadJob) -> int:
    urls = url_list(job.splits, list(job.extras))
    open_output_dir(job.out, DOWNLOAD_KIND)  # only once the inputs are read
    with atomic_file(job.out / "requested.parquet") as tmp:
        pq.write_table(pa.Table.from_pandas(urls, preserve_index=False), tmp)
    stats = download(job.out / "requested.parquet", job.out, job.download)
    return 0 if stats["accounting"]["ok"] else 1


def check_leakage(out: Path) -> list[tuple[str, str, str]]:
    """(train shard, key, value) for every evaluation uid or sha256 found in a training shard, over every
    evaluation set and training pool OUT holds (`leak_check_sets`: missing or empty input is an InputError)."""
    out = Path(out)
    eval_sets, pools = leak_check_sets(str(out))
    cols = list(SHARD_KEYS.names)
    frames = [read_parquet(p, columns=cols) for name in eval_sets for p in sorted((out / "eval" / name).rglob("*.parquet"))]
    ev = pd.concat(frames)
    if ev.empty:
        raise InputError(f"{out / 'eval'}: no evaluation sample to check")
    ev_uid, ev_sha = set(ev["uid"]), set(ev["sha256"].dropna())
    hits = []
    for p in (p for name in pools for p in sorted((out / "train" / name).rglob("*.parquet"))):
        t = read_parquet(p, columns=cols)
        hits += [(str(p), "uid", u) for u in t["uid"] if u in ev_uid]
        hits += [(str(p), "sha256", s) for s in t["sha256"].dropna() if s in ev_sha]
    return hits


def cmd_reshard(cfg: ReshardConfig) -> int:
    cfg.check_inputs()
    reshard(cfg)
    hits = check_leakage(cfg.out)
    if hits:
        print(f"{TOOL}: LEAK: {len(hits)} evaluation uids/hashes in training shards", file=sys.stderr)
        return 1
    return 0


def cmd_check_leakage(out: Path) -> int:
    hits = check_leakage(out)
    for shard, key, value in hits[:50]:
        print(f"{TOOL}: LEAK: {shard} holds evaluation {key} {value}")
    if hits:
        return 1
    print(f"[{TOOL}] no evaluation uid or sha256 in any training shard of {out}")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)

    def body() -> int:
        if args.command == "download":
            return cmd_download(DownloadJob.from_args(args))
        if args.command == "reshard":
            return cmd_reshard(ReshardConfig.from_args(args))
        return cmd_check_leakage(Path(args.out))

    return report_user_errors(TOOL, body)


if __name__ == "__main__":
    sys.exit(main())
