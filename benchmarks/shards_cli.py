"""`tic-shards`: webdataset shards per time step, for training and for every evaluation set.

    tic-shards download SPLITS OUT [--extra PARQUET] [--allow-loopback] [--resolve HOST=IP[:PORT]] [...]
    tic-shards reshard SPLITS DOWNLOAD OUT [--granularity year|month] [--start-year 2016] [--static PARQUET]
    tic-shards check-leakage OUT

`download` fetches every pair of a tic-splits output (training pools and evaluation sets; plus
`--extra` lists such as the sample web's imagenet_like/images.parquet) once, with img2dataset,
into DOWNLOAD/pool; DOWNLOAD/status.parquet has one status per URL. A rerun resumes.
Only http(s) URLs are fetched, and hosts that resolve to loopback, private, link-local or
metadata addresses are refused unless allowed (`--allow-loopback`, `--allow-private`).
`--resolve '*=127.0.0.1:PORT'` sends every host to the sample web's image server.

`reshard` writes OUT/train/{pool}/{step}/, OUT/eval/retrieval/{year}/, OUT/eval/net/{year}/ and
OUT/eval/static/ from the downloaded pool, by uid. Steps: by default 2014-2016 fold into a first
step labelled 2016, then one step per year to 2022 (7 steps); `--granularity month` gives one step
per first-seen month; `--granularity year --start-year Y` folds the years before Y into Y.
OUT/steps.json lists each step's shard pattern and sample count (for open_clip's --train-data).

`check-leakage` exits 1 if an evaluation uid or image sha256 appears in a training shard.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from benchmarks.download import read_parquet
from ticcore.outputs import swap_into_place

TOOL = "tic-shards"
POOLS = ("unfiltered", "basic", "bestpool")  # TiC-DataComp's; tic-yfcc / tic-redcaps write yfcc15m / redcaps


def train_pools(splits: Path) -> list[str]:
    """The training pools a splits directory holds (DataComp's in their usual order, then any other)."""
    root = splits / "train"
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")) if root.is_dir() else []
    return [p for p in POOLS if p in found] + [p for p in found if p not in POOLS]


def default_start_year(splits: Path) -> int:
    """The first step the splits were built for (tic-yfcc: 2011, tic-redcaps: 2017), else TiC-DataComp's 2016."""
    try:
        return int(json.loads((splits / "stats.json").read_text()).get("step_start_year", 2016))
    except (OSError, ValueError, TypeError):
        return 2016


def _parser():
    p = argparse.ArgumentParser(prog=TOOL, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("download", help="download every pair once, into a uid-addressed pool")
    d.add_argument("splits", help="a tic-splits output")
    d.add_argument("out")
    d.add_argument("--extra", action="append", default=[], help="more parquet URL lists (uid or image_id, url, text)")
    d.add_argument("--allow-loopback", action="store_true", help="allow hosts that resolve to 127.0.0.0/8 or ::1")
    d.add_argument("--allow-private", action="store_true", help="allow private (RFC 1918, ULA) addresses")
    d.add_argument("--resolve", action="append", default=[], metavar="HOST=IP[:PORT]",
                   help="resolve HOST (or * for every host) to this address, like curl --resolve")
    d.add_argument("--image-size", type=int, default=256)
    d.add_argument("--resize-mode", default="keep_ratio_largest", help="img2dataset resize mode")
    d.add_argument("--encode-format", default="jpg", choices=("jpg", "png", "webp"))
    d.add_argument("--encode-quality", type=int, default=90)
    d.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    d.add_argument("--threads", type=int, default=32)
    d.add_argument("--timeout", type=int, default=10)
    d.add_argument("--retries", type=int, default=0)
    d.add_argument("--samples-per-shard", type=int, default=10_000)
    d.add_argument("--max-image-area", type=float, default=25e6, help="larger images fail as too_large")
    d.add_argument("--no-verify-hash", action="store_true", help="do not check downloads against metadata sha256")
    r = sub.add_parser("reshard", help="write step and evaluation shards from the downloaded pool")
    r.add_argument("splits")
    r.add_argument("download")
    r.add_argument("out")
    r.add_argument("--granularity", choices=("year", "month"), default="year")
    r.add_argument("--start-year", type=int, default=None,
                   help="years before this fold into the first step (default: the splits' own, else 2016)")
    r.add_argument("--samples-per-shard", type=int, default=10_000)
    r.add_argument("--static", help="parquet of a labelled static set (uid or image_id, url, class_id, ...)")
    c = sub.add_parser("check-leakage", help="no evaluation uid or sha256 in any training shard")
    c.add_argument("out")
    return p


def _read_hive(path: Path, partition: str = "year"):
    import pandas as pd
    import pyarrow.dataset as ds

    if not path.exists():
        return None
    table = ds.dataset(str(path), format="parquet", partitioning="hive").to_table()
    df = table.to_pandas()
    if partition in df and str(df[partition].dtype) == "category":
        df[partition] = df[partition].astype(int)
    return df


def _as_uid_frame(df):
    if "uid" not in df and "image_id" in df:
        df = df.rename(columns={"image_id": "uid"})
    if "text" not in df:
        df = df.assign(text=df.get("lemma", "").astype(str) if "lemma" in df else "")
    return df


def url_list(splits: Path, extras: list[str]):
    """Every pair the shards will need, once (uid, url, text, first_seen_month, face_bboxes, sha256)."""
    import pandas as pd

    frames = []
    for part in [f"train/{p}" for p in train_pools(splits)] + ["eval/retrieval", "eval/net"]:
        df = _read_hive(splits / part)
        if df is not None:
            frames.append(df)
    for extra in extras:
        frames.append(_as_uid_frame(read_parquet(extra)))
    cols = ["uid", "url", "text", "first_seen_month", "face_bboxes", "sha256"]
    out = pd.concat([f.reindex(columns=cols) for f in frames], ignore_index=True)
    return out.drop_duplicates("uid").sort_values("uid").reset_index(drop=True)


def cmd_download(args) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from benchmarks.download import DownloadConfig, download
    from benchmarks.netguard import NetPolicy, parse_resolve

    splits, out = Path(args.splits), Path(args.out)
    if not (splits / "stats.json").is_file():
        print(f"{TOOL}: error: {splits}: not a tic-splits output (no stats.json)", file=sys.stderr)
        return 2
    try:
        policy = NetPolicy(args.allow_loopback, args.allow_private, parse_resolve(args.resolve))
    except ValueError as exc:
        print(f"{TOOL}: error: {exc}", file=sys.stderr)
        return 2
    urls = url_list(splits, args.extra)
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(urls, preserve_index=False), out / "requested.parquet")
    cfg = DownloadConfig(image_size=args.image_size, resize_mode=args.resize_mode, encode_format=args.encode_format,
                         encode_quality=args.encode_quality, processes=args.processes, threads=args.threads,
                         timeout=args.timeout, retries=args.retries, samples_per_shard=args.samples_per_shard,
                         max_image_area=args.max_image_area, verify_hash=not args.no_verify_hash, policy=policy)
    stats = download(out / "requested.parquet", out, cfg)
    return 0 if stats["accounting"]["ok"] else 1


def reshard(splits: Path, download_dir: Path, out: Path, granularity: str = "year", start_year: int = 2016,
            samples_per_shard: int = 10_000, static: str | None = None, log=print) -> dict:
    import pandas as pd

    from benchmarks.reshard import StepScheme, _Reader, brace_pattern, index_pool, write_step

    t0 = time.perf_counter()
    index = index_pool(download_dir / "pool")
    scheme = StepScheme(granularity, start_year)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    reader = _Reader()
    steps: dict = {}
    missing: dict = {}
    written = 0
    keep = ["uid", "url", "text", "first_seen_month", "year"]
    try:
        for pool in train_pools(splits):
            df = _read_hive(splits / "train" / pool)
            if df is None:
                continue
            df["step"] = [scheme.label(m, y) for m, y in zip(df["first_seen_month"], df["year"])]
            for step, g in sorted(df.groupby("step")):
                rows = g[keep].to_dict("records")
                d = tmp / "train" / pool / step
                sizes = write_step(rows, index, d, samples_per_shard, reader)
                n = sum(sizes.values())
                written += n
                missing[f"train/{pool}/{step}"] = len(rows) - n
                steps.setdefault(pool, []).append({"step": step, "samples": n, "shards": len(sizes),
                                                   "pattern": brace_pattern(out / "train" / pool / step, sizes)})
        for name, extra in (("retrieval", ["subset", "seeds", "holdout_size"]),
                            ("net", ["class_id", "wnid", "lemma", "similarity"])):
            df = _read_hive(splits / "eval" / name)
            if df is None:
                continue
            for year, g in sorted(df.groupby("year")):
                rows = g[keep + extra].to_dict("records")
                if name == "retrieval":  # one sample per pair; subsets and seeds travel in the json
                    merged: dict = {}
                    for r in rows:
                        m = merged.setdefault(r["uid"], {**r, "subsets": {}})
                        m["subsets"][r["subset"]] = [int(s) for s in r["seeds"]]
                    rows = [{k: v for k, v in r.items() if k not in ("subset", "seeds", "holdout_size")}
                            for r in merged.values()]
                sizes = write_step(rows, index, tmp / "eval" / name / str(year), samples_per_shard, reader)
                written += sum(sizes.values())
                missing[f"eval/{name}/{year}"] = len(rows) - sum(sizes.values())
        if static:
            df = _as_uid_frame(read_parquet(static))
            rows = df.to_dict("records")
            sizes = write_step(rows, index, tmp / "eval" / "static", samples_per_shard, reader)
            written += sum(sizes.values())
            missing["eval/static"] = len(rows) - sum(sizes.values())
        seconds = time.perf_counter() - t0
        stats = {"tool": TOOL, "granularity": granularity, "start_year": start_year, "steps": steps,
                 "not_downloaded": missing, "samples_written": written, "seconds": round(seconds, 2),
                 "samples_per_second": round(written / seconds, 1) if seconds else None}
        (tmp / "steps.json").write_text(json.dumps(steps, indent=1) + "\n")
        if (splits / "net_classes.json").is_file():  # zero-shot prompts travel with the shards
            shutil.copyfile(splits / "net_classes.json", tmp / "net_classes.json")
        (tmp / "stats.json").write_text(json.dumps(stats, indent=1, sort_keys=True) + "\n")
        swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        reader.close()
    log(f"[{TOOL}] wrote {written} samples in {seconds:.1f} s ({written / max(seconds, 1e-9):,.0f} samples/s); "
        + "; ".join(f"{p}: " + ", ".join(f"{s['step']} ({s['samples']})" for s in v) for p, v in steps.items()))
    return stats


def check_leakage(out: Path) -> list[tuple[str, str, str]]:
    """(train shard, key, value) for every evaluation uid or sha256 found in a training shard."""
    import pandas as pd

    def keys(paths):
        frames = [read_parquet(p, columns=["uid", "sha256"]) for p in paths]
        return pd.concat(frames) if frames else pd.DataFrame(columns=["uid", "sha256"])

    ev = keys(sorted((out / "eval").rglob("*.parquet")))
    ev_uid, ev_sha = set(ev["uid"]), set(ev["sha256"].dropna())
    hits = []
    for p in sorted((out / "train").rglob("*.parquet")):
        t = read_parquet(p, columns=["uid", "sha256"])
        hits += [(str(p), "uid", u) for u in t["uid"] if u in ev_uid]
        hits += [(str(p), "sha256", s) for s in t["sha256"].dropna() if s in ev_sha]
    return hits


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "download":
        return cmd_download(args)
    if args.command == "reshard":
        splits, dl = Path(args.splits), Path(args.download)
        for path, what in ((splits / "stats.json", "tic-splits output"), (dl / "pool", "download pool")):
            if not path.exists():
                print(f"{TOOL}: error: {path}: missing ({what})", file=sys.stderr)
                return 2
        start = args.start_year if args.start_year is not None else default_start_year(splits)
        reshard(splits, dl, Path(args.out), args.granularity, start, args.samples_per_shard, args.static)
        hits = check_leakage(Path(args.out))
        if hits:
            print(f"{TOOL}: LEAK: {len(hits)} evaluation uids/hashes in training shards", file=sys.stderr)
            return 1
        return 0
    hits = check_leakage(Path(args.out))
    for shard, key, value in hits[:50]:
        print(f"{TOOL}: LEAK: {shard} holds evaluation {key} {value}")
    if hits:
        return 1
    print(f"[{TOOL}] no evaluation uid or sha256 in any training shard of {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
