"""Reshard the downloaded pool into time steps and evaluation sets, by uid lists (as DataComp's
resharder does): no second download, and filtered variants are just other uid lists.

Each step directory holds `NNNNN.tar` shards (members `<uid>.jpg`, `<uid>.txt`, `<uid>.json`,
samples sorted by uid), a `NNNNN.parquet` per shard with the same rows, and `sizes.json`
({"NNNNN.tar": samples}), which is what open_clip's `--train-data 'DIR/{00000..00003}.tar'` and
`--train-num-samples` expect. Tar members carry fixed metadata (mtime 0, owner 0), so the same
inputs give byte-identical shards. Each tar is written under a temporary name and renamed.
"""
from __future__ import annotations

import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STEP_CHOICES = ("year", "month")


@dataclass(frozen=True)
class StepScheme:
    granularity: str = "year"     # year | month
    start_year: int = 2016        # years before it fold into the first step, labelled with it

    def label(self, first_seen_month: str | None, year: int | None) -> str | None:
        if first_seen_month is None and year is None:
            return None
        y = int(year) if year is not None else int(str(first_seen_month)[:4])
        if self.granularity == "month":
            return str(first_seen_month)
        return str(max(y, self.start_year))


# ------------------------------------------------------------------ the downloaded pool

@dataclass
class PoolEntry:
    tar: str
    jpg: tuple[int, int]   # (offset, size) in the tar
    meta: dict             # img2dataset's json for the sample


def iter_tar_members(path: Path):
    """(name, data offset, size) of each regular member, reading only the 512-byte headers.
    Falls back to tarfile for anything beyond plain ustar (long names, pax headers)."""
    with open(path, "rb") as fh:
        offset = 0
        while True:
            fh.seek(offset)
            header = fh.read(512)
            if len(header) < 512 or header == b"\0" * 512:
                return
            kind = header[156:157]
            if kind in (b"x", b"g", b"L", b"K"):
                break
            size = int(header[124:136].strip(b"\0 ") or b"0", 8)
            if kind in (b"0", b"\0"):
                yield header[:100].rstrip(b"\0").decode("utf-8"), offset + 512, size
            offset += 512 + (size + 511) // 512 * 512
    with tarfile.open(path) as tf:  # the general case
        for m in tf:
            if m.isfile():
                yield m.name, m.offset_data, m.size


def index_pool(pool_dir: Path) -> dict[str, PoolEntry]:
    """uid -> where its image bytes are, for every successfully downloaded sample."""
    index: dict[str, PoolEntry] = {}
    for tar_path in sorted(pool_dir.glob("*.tar")):
        if not (pool_dir / f"{tar_path.stem}_stats.json").exists():
            continue  # a partial shard: never read
        members: dict[str, dict] = {}
        for name, offset, size in iter_tar_members(tar_path):
            key, _, ext = name.rpartition(".")
            members.setdefault(key, {})[ext] = (offset, size)
        with open(tar_path, "rb") as fh:
            for key, parts in members.items():
                if "jpg" not in parts or "json" not in parts:
                    continue
                fh.seek(parts["json"][0])
                meta = json.loads(fh.read(parts["json"][1]))
                uid = meta.get("uid")
                if uid:
                    index[uid] = PoolEntry(str(tar_path), parts["jpg"], meta)
    return index


# ------------------------------------------------------------------ writing shards

def ustar_header(name: str, size: int) -> bytes:
    """A plain ustar header with fixed metadata (mode 644, owner 0, mtime 0): deterministic bytes."""
    raw = name.encode("utf-8")
    if len(raw) > 100:
        raise ValueError(f"member name too long for ustar: {name}")
    h = bytearray(512)
    h[0:len(raw)] = raw
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"00000000000\0"
    h[148:156] = b" " * 8
    h[156:157] = b"0"
    h[257:265] = b"ustar\x0000"
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def _member(name: str, data: bytes) -> bytes:
    return ustar_header(name, len(data)) + data + b"\0" * ((512 - len(data) % 512) % 512)


class _Reader:
    """Keeps source tars open while a step is written."""

    def __init__(self):
        self.handles: dict[str, object] = {}

    def read(self, path: str, offset: int, size: int) -> bytes:
        fh = self.handles.get(path)
        if fh is None:
            fh = self.handles[path] = open(path, "rb")
        fh.seek(offset)
        return fh.read(size)

    def close(self):
        for fh in self.handles.values():
            fh.close()


def write_step(rows: list[dict], index: dict[str, PoolEntry], out_dir: Path, samples_per_shard: int,
               reader: _Reader) -> dict[str, int]:
    """Shards for one step or evaluation set. `rows`: dicts with at least uid and text; every other
    key goes into the sample's json. Rows without a downloaded image are skipped (counted by the caller)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = sorted((r for r in rows if r["uid"] in index), key=lambda r: r["uid"])
    sizes: dict[str, int] = {}
    for shard_no, start in enumerate(range(0, len(rows), samples_per_shard)):
        chunk = rows[start:start + samples_per_shard]
        name = f"{shard_no:05d}"
        tmp = out_dir / f".{name}.tar.tmp"
        records = []
        with open(tmp, "wb", buffering=1 << 20) as tf:
            for r in chunk:
                entry = index[r["uid"]]
                jpg = reader.read(entry.tar, *entry.jpg)
                meta = {**{k: _plain(v) for k, v in r.items()}, "sha256": entry.meta.get("sha256"),
                        "width": entry.meta.get("width"), "height": entry.meta.get("height"),
                        "original_width": entry.meta.get("original_width"),
                        "original_height": entry.meta.get("original_height")}
                text = (r.get("text") or "").encode("utf-8")
                js = json.dumps(meta, sort_keys=True, ensure_ascii=False).encode("utf-8")
                uid = r["uid"]
                tf.write(_member(f"{uid}.jpg", jpg) + _member(f"{uid}.txt", text) + _member(f"{uid}.json", js))
                records.append({"key": uid, **meta})
            tf.write(b"\0" * 1024)  # the end-of-archive marker
        os.replace(tmp, out_dir / f"{name}.tar")
        table = pa.Table.from_pylist([{k: (json.dumps(v) if isinstance(v, (list, dict)) else v)
                                       for k, v in rec.items()} for rec in records])
        pq.write_table(table, out_dir / f"{name}.parquet")
        sizes[f"{name}.tar"] = len(chunk)
    (out_dir / "sizes.json").write_text(json.dumps(sizes, indent=1, sort_keys=True) + "\n")
    return sizes


def _plain(v):
    """JSON-friendly values (numpy scalars and arrays from pandas)."""
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, float) and np.isnan(v):
        return None
    return v


def brace_pattern(step_dir: Path, sizes: dict[str, int]) -> str:
    n = len(sizes)
    return str(step_dir / (f"{{00000..{n - 1:05d}}}.tar" if n > 1 else "00000.tar"))
