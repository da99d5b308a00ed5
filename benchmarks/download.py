"""Download images once, into a uid-addressed pool, with img2dataset (the library).

The URL list goes through `netguard` first: non-http(s) URLs are refused with a recorded reason and
never reach img2dataset, and every connection img2dataset's workers make is checked against the
address policy (img2dataset's worker processes are forked from this one, so they inherit it); a
proxy in the environment is refused unless allowed, and then every target host is checked before
the proxy is asked. `imageguard` bounds what one image may cost, which img2dataset does not: bodies
over `max_body_bytes` stop being read (`body_too_large`), and an image whose header declares more
than `max_image_area` pixels is refused before it is decoded (`too_large`).

Resuming: img2dataset skips shards that have their `_stats.json` (written last); before a run,
shards without one (left by a crash or kill) are deleted, so no partial shard survives a rerun.

Every input URL ends with one status row: `success` or a failure `reason` (not_found, http_<code>,
timeout, decode_error, too_large, body_too_large, hash_mismatch, a refusal such as
scheme_not_allowed:ftp, loopback_address or ambiguous_host, unresolvable_host, other), so
success + failed == input.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.imageguard import DEFAULT_MAX_BYTES, LIMIT_MARK, HeaderCheckedResizer, ResponseCap
from benchmarks.netguard import BLOCK_MARK, NetPolicy, check_proxy_environment, install, scheme_refusal, uninstall
from benchmarks.pools import read_parquet
from ticcore.outputs import atomic_file, atomic_write, open_output_dir, write_json
from ticcore.schemas import DOWNLOAD_STATUS

STATUS_COLUMNS = list(DOWNLOAD_STATUS.names)
DOWNLOAD_KIND = "tic-shards download"  # the ownership marker of a download directory


@dataclass(frozen=True)
class DownloadConfig:
    image_size: int = 256
    resize_mode: str = "keep_ratio_largest"
    resize_only_if_bigger: bool = True
    encode_format: str = "jpg"
    encode_quality: int = 90
    processes: int = 2
    threads: int = 32
    timeout: int = 10
    retries: int = 0
    samples_per_shard: int = 10_000
    max_image_area: float = 25e6      # pixels, checked on the header before decoding (imageguard)
    max_body_bytes: int = DEFAULT_MAX_BYTES
    verify_hash: bool = True
    policy: NetPolicy = field(default_factory=NetPolicy)


def classify_error(message: str | None, status: str) -> str:
    if status == "success":
        return "success"
    m = message or ""
    for mark in (BLOCK_MARK, LIMIT_MARK):
        if mark in m:
            hit = re.search(mark + r": (?:.* -> )?([a-z_:]+)", m)
            return hit.group(1) if hit else "blocked"
    if "HTTP Error 404" in m:
        return "not_found"
    code = re.search(r"HTTP Error (\d{3})", m)
    if code:
        return f"http_{code.group(1)}"
    low = m.lower()
    if "timed out" in low or "timeout" in low:
        return "timeout"
    if "hash mismatch" in low:
        return "hash_mismatch"
    if "too large" in low:
        return "too_large"
    if "name or service not known" in low or "nodename nor servname" in low or "getaddrinfo" in low:
        return "unresolvable_host"
    if status == "failed_to_resize" or "decode" in low or "identify image" in low or "cannot" in low:
        return "decode_error"
    return "other"


def _fork_distributor(processes_count, downloader, reader, _subjob_size, max_shard_retry):
    """img2dataset's multiprocessing distributor, forking instead of spawning (so the workers inherit
    the network policy installed in this process), with the header check in front of its resizer
    (the distributor is handed img2dataset's Downloader, whose `resizer` every sample goes through)."""
    downloader.resizer = HeaderCheckedResizer(downloader.resizer, downloader.resizer.max_image_area)
    ctx = get_context("fork")
    with ctx.Pool(processes_count, maxtasksperchild=5) as pool:
        failed = [row for ok, row in pool.imap_unordered(downloader, reader) if ok is False]
        for _ in range(max_shard_retry):
            if not failed:
                break
            failed = [row for ok, row in pool.imap_unordered(downloader, failed) if ok is False]


def remove_partial_shards(folder: Path) -> list[str]:
    removed = []
    for f in sorted(folder.glob("*.tar")) + sorted(folder.glob("[0-9]*.parquet")):
        stem = f.name.split(".")[0]
        if not (folder / f"{stem}_stats.json").exists():
            f.unlink()
            removed.append(f.name)
    return removed


def input_fingerprint(rows) -> str:
    """sha256 over the (uid, url, text) rows in their order: the identity of an img2dataset input."""
    h = hashlib.sha256()
    for uid, url, text in zip(rows["uid"], rows["url"], rows["text"]):
        h.update(f"{uid}\t{url}\t{text}\n".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def screen(rows: pd.DataFrame, log=print) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows img2dataset may fetch, with sha256 as meta_sha256 when every row has one; refused rows with
    their `reason`)."""
    refusals = rows["url"].map(lambda u: scheme_refusal(u) if isinstance(u, str) else "missing_url")
    allowed = rows[refusals.isna()].copy()
    refused = rows[refusals.notna()].assign(reason=refusals[refusals.notna()])
    if "sha256" in allowed:
        allowed = allowed.rename(columns={"sha256": "meta_sha256"})
        missing_hash = int(allowed["meta_sha256"].isna().sum())
        if missing_hash:  # img2dataset checks every row or none (YFCC and RedCaps carry no sha256)
            if missing_hash < len(allowed):
                log(f"[tic-shards] {missing_hash} of {len(allowed)} rows carry no sha256: hashes are not verified")
            allowed = allowed.drop(columns=["meta_sha256"])
    return allowed, refused


def prepare_pool(out: Path, allowed: pd.DataFrame, log=print) -> Path:
    """out/pool, ready for img2dataset to resume into: discarded if it was made from another url list, and
    without partial shards."""
    pool = out / "pool"
    pool.mkdir(exist_ok=True)
    # img2dataset resumes by shard number, which only means something for the same url list: a pool
    # made from another list would answer for rows it never saw, so it is discarded, not mixed in.
    fingerprint = input_fingerprint(allowed)
    marker = out / "pool.input.json"  # not inside pool: img2dataset reads every *.json there as shard stats
    earlier = json.loads(marker.read_text()) if marker.exists() else {}
    if earlier.get("fingerprint") != fingerprint and any(pool.iterdir()):
        log(f"[tic-shards] the url list changed since the pool in {pool} was downloaded "
            f"({earlier.get('rows', 'unknown')} rows then, {len(allowed)} now): that pool is discarded "
            "and the list downloaded again")
        shutil.rmtree(pool)
        pool.mkdir()
    atomic_write(marker, json.dumps({"fingerprint": fingerprint, "rows": len(allowed)}) + "\n")
    removed = remove_partial_shards(pool)
    if removed:
        log(f"[tic-shards] removed {len(removed)} partial shard file(s) left by an earlier run: {', '.join(removed)}")
    return pool


def run_img2dataset(staged: Path, pool: Path, columns, cfg: DownloadConfig) -> float:
    """img2dataset over the staged url list, behind the network policy, with forked workers; the seconds taken."""
    # img2dataset takes 3.6 s to import (cold, on this machine): only a download pays for it, not the CLI's start
    import img2dataset  # noqa: F401 - the package import wires up img2dataset.main
    main_mod = sys.modules["img2dataset.main"]
    original = main_mod.multiprocessing_distributor
    t0 = time.perf_counter()
    install(cfg.policy, handlers=(ResponseCap(cfg.max_body_bytes),))
    main_mod.multiprocessing_distributor = _fork_distributor
    try:
        extra = [c for c in ("uid", "first_seen_month") if c in columns]
        main_mod.download(
            url_list=str(staged), input_format="parquet", url_col="url", caption_col="text",
            save_additional_columns=extra, bbox_col="face_bboxes" if "face_bboxes" in columns else None,
            output_format="webdataset", output_folder=str(pool), processes_count=cfg.processes,
            thread_count=cfg.threads, image_size=cfg.image_size, resize_mode=cfg.resize_mode,
            resize_only_if_bigger=cfg.resize_only_if_bigger, encode_format=cfg.encode_format,
            encode_quality=cfg.encode_quality, number_sample_per_shard=cfg.samples_per_shard,
            timeout=cfg.timeout, retries=cfg.retries, enable_wandb=False, max_image_area=cfg.max_image_area,
            compute_hash="sha256", incremental_mode="incremental",
            verify_hash=["meta_sha256", "sha256"] if cfg.verify_hash and "meta_sha256" in columns else None)
    finally:
        main_mod.multiprocessing_distributor = original
        uninstall()
    seconds = time.perf_counter() - t0
    remove_partial_shards(pool)
    shutil.rmtree(pool / "_tmp", ignore_errors=True)
    return seconds


def status_rows(pool: Path, refused: pd.DataFrame) -> pd.DataFrame:
    """One DOWNLOAD_STATUS row per requested URL: img2dataset's outcomes, then the refused rows."""
    parts = []
    for f in sorted(pool.glob("[0-9]*.parquet")):
        df = read_parquet(f)
        df["shard"] = f.stem
        parts.append(df)
    got = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["uid", "url", "status"])
    got["reason"] = [classify_error(m, s) for m, s in zip(got.get("error_message"), got["status"])]
    got["status"] = got["status"].map(lambda s: "success" if s == "success" else "failed")
    refused_rows = pd.DataFrame({"uid": refused["uid"], "url": refused["url"], "status": "failed",
                                 "reason": refused["reason"], "error_message": None})
    return pd.concat([got.reindex(columns=STATUS_COLUMNS), refused_rows.reindex(columns=STATUS_COLUMNS)],
                     ignore_index=True)


def download(urls_parquet: Path, out: Path, cfg: DownloadConfig, log=print) -> dict:
    """Download every row of `urls_parquet` (uid, url, text [, face_bboxes, sha256, ...]) into out/pool."""
    check_proxy_environment(cfg.policy)
    rows = pq.read_table(urls_parquet).to_pandas()
    open_output_dir(out, DOWNLOAD_KIND)  # refuses a directory we did not write, before anything is written
    (out / "pool").mkdir(exist_ok=True)
    requested = out / "requested.parquet"
    if Path(urls_parquet).resolve() != requested.resolve():  # keep what was asked for, for the queries
        pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), requested)
    allowed, refused = screen(rows, log)
    staged = out / "urls.parquet"
    pq.write_table(pa.Table.from_pandas(allowed, preserve_index=False), staged)
    pool = prepare_pool(out, allowed, log)
    seconds = run_img2dataset(staged, pool, allowed.columns, cfg)
    status = status_rows(pool, refused)
    with atomic_file(out / "status.parquet") as tmp:
        pq.write_table(pa.Table.from_pandas(status, preserve_index=False), tmp)
    ok = int((status["status"] == "success").sum())
    stats = {"tool": DOWNLOAD_KIND, "input_urls": len(rows), "success": ok, "failed": len(status) - ok,
             "reasons": status[status["status"] != "success"]["reason"].value_counts().sort_index().to_dict(),
             "seconds": round(seconds, 2), "images_per_second": round(len(allowed) / seconds, 1) if seconds else None,
             "config": {k: v for k, v in asdict(cfg).items() if k != "policy"} | {"policy": cfg.policy.to_json()},
             "accounting": {"ok": ok + (len(status) - ok) == len(rows) and len(status) == len(rows)}}
    write_json(out / "stats.json", stats, sort_keys=True)
    log(f"[tic-shards] downloaded {ok} of {len(rows)} URLs in {seconds:.1f} s; failures: "
        + ", ".join(f"{k} {v}" for k, v in stats["reasons"].items()))
    return stats
