"""`tic-shards reshard`: the downloaded pool into time steps and evaluation sets, by uid lists (as
DataComp's resharder does): no second download, and filtered variants are just other uid lists.

Each step directory holds `NNNNN.tar` shards (members `<uid>.jpg` (or `.png`/`.webp`: the download's
`--encode-format`, kept as it is), `<uid>.txt`, `<uid>.json`,
samples sorted by uid), a `NNNNN.parquet` per shard with the same rows, and `sizes.json`
({"NNNNN.tar": samples}), which is what open_clip's `--train-data 'DIR/{00000..00003}.tar'` and
`--train-num-samples` expect. Tar members carry fixed metadata (mtime 0, owner 0), so the same
inputs give byte-identical shards. Each tar is written under a temporary name and renamed; the
whole output is built beside OUT and renamed into place (`ticcore.outputs.staged_dir`).

Steps come from `ticcore.steps.StepScheme`; OUT/steps.json is `ticcore.steps.steps_document`: the
year -> step and month -> step map of everything written, and each pool's steps (shard pattern,
sample count).
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.pools import as_uid_frame, read_hive, read_parquet, split_step_scheme, train_pools
from ticcore.errors import InputError
from ticcore.outputs import staged_dir
from ticcore.schemas import NET_EVAL, RETRIEVAL_EVAL, SHARD_SAMPLE, image_extension
from ticcore.steps import GRANULARITIES, STEPS_FILE, StepMap, StepScheme, steps_document
from ticcore.validate import uid_problems

TOOL = "tic-shards"
OUTPUT_KIND = "tic-shards reshard"  # the ownership marker of a reshard output (downloads are "tic-shards download")
STEP_CHOICES = GRANULARITIES
EVAL_LAYOUTS = ("tic", "clip_benchmark")
CLIP_BENCHMARK_DIR = "clip_benchmark"   # SHARDS/clip_benchmark/{retrieval,datacompnet}/{yearly/YYYY,monthly/YYYYMM}/


@dataclass(frozen=True)
class ReshardConfig:
    """What `tic-shards reshard` is asked to do."""
    splits: Path
    download: Path
    out: Path
    granularity: str = "year"        # year | month
    start_year: int | None = None    # years before it fold into the first step (None: the splits' own)
    samples_per_shard: int = 10_000
    static: str | None = None        # parquet of a labelled static set
    eval_layout: str = "tic"         # clip_benchmark: also write every eval set as clip_benchmark reads it

    def __post_init__(self):
        for name in ("splits", "download", "out"):
            object.__setattr__(self, name, Path(getattr(self, name)))

    @classmethod
    def from_args(cls, args) -> "ReshardConfig":
        return cls(args.splits, args.download, args.out, args.granularity, args.start_year, args.samples_per_shard,
                   args.static, getattr(args, "eval_layout", "tic"))

    @functools.cached_property
    def scheme(self) -> StepScheme:
        """The step rule: `start_year` as given, else the one the splits were built for (with tic-yfcc's
        multi-year steps)."""
        return split_step_scheme(self.splits, self.granularity, self.start_year)

    def check_inputs(self) -> None:
        for path, what in ((self.splits / "stats.json", "tic-splits output"), (self.download / "pool", "download pool")):
            if not path.exists():
                raise InputError(f"{path}: missing ({what})")


# ------------------------------------------------------------------ the downloaded pool

@dataclass
class PoolEntry:
    tar: str
    image: tuple[int, int]  # (offset, size) in the tar
    meta: dict              # img2dataset's json for the sample
    image_ext: str = "jpg"  # the image member's extension (the download's --encode-format)


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
                ext = image_extension(parts)
                if ext is None or "json" not in parts:
                    continue
                fh.seek(parts["json"][0])
                meta = json.loads(fh.read(parts["json"][1]))
                uid = meta.get("uid")
                if uid:
                    index[uid] = PoolEntry(str(tar_path), parts[ext], meta, ext)
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


class TarReader:
    """Reads byte ranges of the downloaded tars, keeping each tar open until `close` (or the end of a
    `with` block): a step's samples come from many shards, in uid order."""

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
        self.handles.clear()

    def __enter__(self) -> "TarReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_step(rows: list[dict], index: dict[str, PoolEntry], out_dir: Path, samples_per_shard: int,
               reader: TarReader) -> dict[str, int]:
    """Shards for one step or evaluation set. `rows`: dicts with at least uid and text; every other
    key goes into the sample's json. Rows without a downloaded image are skipped (counted by the caller)."""
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
                image = reader.read(entry.tar, *entry.image)
                meta = {**{k: _plain(v) for k, v in r.items()}, "sha256": entry.meta.get("sha256"),
                        "width": entry.meta.get("width"), "height": entry.meta.get("height"),
                        "original_width": entry.meta.get("original_width"),
                        "original_height": entry.meta.get("original_height")}
                text = (r.get("text") or "").encode("utf-8")
                js = json.dumps(meta, sort_keys=True, ensure_ascii=False).encode("utf-8")
                uid = r["uid"]
                tf.write(_member(f"{uid}.{entry.image_ext}", image) + _member(f"{uid}.txt", text)
                         + _member(f"{uid}.json", js))
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


# ------------------------------------------------------------------ clip_benchmark's layout

def clip_benchmark_texts(net_classes: dict) -> tuple[str, str]:
    """classnames.txt (one name a line, line = class id) and zeroshot_classification_templates.txt (one
    template a line, `{c}` for the class name), as clip_benchmark's `build_wds_dataset` reads them
    (LAION-AI/CLIP_benchmark, `clip_benchmark/datasets/builder.py`; the files `webdataset_builder.py` writes)."""
    names = {int(c["class_id"]): c["name"] for c in net_classes.get("classes", [])}
    classnames = "".join(f"{names.get(i, '')}\n" for i in range(max(names) + 1)) if names else ""
    templates = "".join(t.replace("{}", "{c}") + "\n" for t in net_classes.get("templates", []))
    return classnames, templates


def write_clip_benchmark_set(rows: list[dict], index: dict[str, PoolEntry], out_dir: Path, samples_per_shard: int,
                             reader: TarReader, task: str, net_classes: dict | None) -> int:
    """One evaluation set the way clip_benchmark's `build_wds_dataset(..., split="")` and ml-tic-clip's
    `convert_wds.sh` lay it out, everything in one directory: shards `0.tar, 1.tar, ...` (no leading
    zeros), `nshards.txt`, `count.txt`, `dataset_type.txt` (`retrieval` or `classification`); for
    classification also `classnames.txt`, `zeroshot_classification_templates.txt` and a `.cls` member
    (the class id in decimal) per sample. Members: `<uid>.jpg` (or the download's png/webp; clip_benchmark's
    decoder takes any of them), `<uid>.txt` (the caption; clip_benchmark
    splits it into lines, as it does DataComp's), `<uid>.json`. Returns the samples written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = sorted((r for r in rows if r["uid"] in index), key=lambda r: r["uid"])
    chunks = [rows[i:i + samples_per_shard] for i in range(0, len(rows), samples_per_shard)] or [[]]
    for shard_no, chunk in enumerate(chunks):
        tmp = out_dir / f".{shard_no}.tar.tmp"
        with open(tmp, "wb", buffering=1 << 20) as tf:
            for r in chunk:
                entry, key = index[r["uid"]], r["uid"]
                meta = json.dumps({k: _plain(v) for k, v in r.items()}, sort_keys=True, ensure_ascii=False)
                tf.write(_member(f"{key}.{entry.image_ext}", reader.read(entry.tar, *entry.image))
                         + _member(f"{key}.txt", (r.get("text") or "").encode("utf-8")))
                if task == "classification":
                    tf.write(_member(f"{key}.cls", str(int(r["class_id"])).encode("ascii")))
                tf.write(_member(f"{key}.json", meta.encode("utf-8")))
            tf.write(b"\0" * 1024)
        os.replace(tmp, out_dir / f"{shard_no}.tar")
    (out_dir / "nshards.txt").write_text(f"{len(chunks)}\n")
    (out_dir / "count.txt").write_text(f"{len(rows)}\n")
    (out_dir / "dataset_type.txt").write_text(f"{task}\n")
    if task == "classification" and net_classes:
        classnames, templates = clip_benchmark_texts(net_classes)
        (out_dir / "classnames.txt").write_text(classnames)
        (out_dir / "zeroshot_classification_templates.txt").write_text(templates)
    return len(rows)


def clip_benchmark_sets(name: str, year, rows: list[dict], granularity: str) -> list[tuple[str, list[dict]]]:
    """(directory under SHARDS/clip_benchmark, rows) for one year's eval set: `{task}/yearly/YYYY`, and with
    month steps also `{task}/monthly/YYYYMM` by first-seen month (ml-tic-clip's monthly eval directories)."""
    task = "retrieval" if name == "retrieval" else "datacompnet"
    out = [(f"{task}/yearly/{year}", rows)]
    if granularity == "month":
        by_month: dict = {}
        for r in rows:
            if r.get("first_seen_month"):
                by_month.setdefault(str(r["first_seen_month"]).replace("-", ""), []).append(r)
        out += [(f"{task}/monthly/{m}", rs) for m, rs in sorted(by_month.items())]
    return out


# ------------------------------------------------------------------ the stage

class _Written:
    """Writes step and evaluation directories under the staging directory and counts what was written."""

    def __init__(self, index: dict[str, PoolEntry], staging: Path, samples_per_shard: int, reader: TarReader):
        self.index, self.staging, self.samples_per_shard, self.reader = index, staging, samples_per_shard, reader
        self.samples = 0
        self.missing: dict[str, int] = {}   # "train/basic/2016" -> rows without a downloaded image

    def step(self, rel: str, rows: list[dict]) -> dict[str, int]:
        sizes = write_step(rows, self.index, self.staging / rel, self.samples_per_shard, self.reader)
        n = sum(sizes.values())
        self.samples += n
        self.missing[rel] = len(rows) - n
        return sizes


def _check_uids(path: Path, uids, repeats_allowed: bool = False) -> None:
    """uids become tar member names here: refuse a table with one that is not a safe name, or with
    repeats (a sample written twice), before anything is written (`ticcore.validate`)."""
    problem = uid_problems(uids, "safe", repeats_allowed)
    if problem:
        raise InputError(f"{path}: {problem}; nothing was written")


def merge_retrieval_rows(rows: list[dict]) -> list[dict]:
    """One sample per retrieval pair: its rows (one per subset) merge, subsets and seeds travel in the json."""
    merged: dict = {}
    for r in rows:
        m = merged.setdefault(r["uid"], {**r, "subsets": {}})
        m["subsets"][r["subset"]] = [int(s) for s in r["seeds"]]
    return [{k: v for k, v in r.items() if k not in RETRIEVAL_EVAL.names} for r in merged.values()]


EVAL_COLUMNS = {"retrieval": RETRIEVAL_EVAL.names, "net": NET_EVAL.names}


def reshard(cfg: ReshardConfig, log=print) -> dict:
    """Write cfg.out: train/{pool}/{step}/, eval/{retrieval,net}/{year}/, eval/static/, steps.json, stats.json."""
    t0 = time.perf_counter()
    index = index_pool(cfg.download / "pool")
    scheme, keep = cfg.scheme, list(SHARD_SAMPLE.names)
    steps: dict = {}
    years, months = set(), set()
    clip_benchmark: dict[str, int] = {}
    net_classes = (json.loads((cfg.splits / "net_classes.json").read_text())
                   if cfg.eval_layout == "clip_benchmark" and (cfg.splits / "net_classes.json").is_file() else None)
    with TarReader() as reader, staged_dir(cfg.out, OUTPUT_KIND) as tmp:
        w = _Written(index, tmp, cfg.samples_per_shard, reader)
        for pool in train_pools(cfg.splits):
            df = read_hive(cfg.splits / "train" / pool)
            if df is None:
                continue
            _check_uids(cfg.splits / "train" / pool, df["uid"])
            years.update(df["year"].tolist())
            months.update(df["first_seen_month"].dropna().tolist())
            df["step"] = [scheme.label(m, y) for m, y in zip(df["first_seen_month"], df["year"])]
            for step, g in sorted(df.groupby("step")):
                sizes = w.step(f"train/{pool}/{step}", g[keep].to_dict("records"))
                steps.setdefault(pool, []).append({"step": step, "samples": sum(sizes.values()), "shards": len(sizes),
                                                   "pattern": brace_pattern(cfg.out / "train" / pool / step, sizes)})
        for name, extra in EVAL_COLUMNS.items():
            df = read_hive(cfg.splits / "eval" / name)
            if df is None:
                continue
            _check_uids(cfg.splits / "eval" / name, df["uid"], repeats_allowed=name == "retrieval")
            years.update(df["year"].tolist())
            months.update(df["first_seen_month"].dropna().tolist())
            for year, g in sorted(df.groupby("year")):
                rows = g[keep + list(extra)].to_dict("records")
                rows = merge_retrieval_rows(rows) if name == "retrieval" else rows
                w.step(f"eval/{name}/{year}", rows)
                if cfg.eval_layout == "clip_benchmark":
                    for rel, part in clip_benchmark_sets(name, year, rows, scheme.granularity):
                        clip_benchmark[rel] = write_clip_benchmark_set(
                            part, index, tmp / CLIP_BENCHMARK_DIR / rel, cfg.samples_per_shard, reader,
                            "retrieval" if name == "retrieval" else "classification", net_classes)
        if cfg.static:
            static = as_uid_frame(read_parquet(cfg.static))
            _check_uids(cfg.static, static["uid"])
            w.step("eval/static", static.to_dict("records"))
        seconds = time.perf_counter() - t0
        stats = {"tool": TOOL, "granularity": scheme.granularity, "start_year": scheme.start_year, "steps": steps,
                 "not_downloaded": w.missing, "samples_written": w.samples, "eval_layout": cfg.eval_layout,
                 **({"clip_benchmark": clip_benchmark} if clip_benchmark else {}), "seconds": round(seconds, 2),
                 "samples_per_second": round(w.samples / seconds, 1) if seconds else None}
        labels = [s["step"] for entries in steps.values() for s in entries]
        doc = steps_document(StepMap.build(scheme, labels, years, months), steps)
        (tmp / STEPS_FILE).write_text(json.dumps(doc, indent=1) + "\n")
        if (cfg.splits / "net_classes.json").is_file():  # zero-shot prompts travel with the shards
            shutil.copyfile(cfg.splits / "net_classes.json", tmp / "net_classes.json")
        (tmp / "stats.json").write_text(json.dumps(stats, indent=1, sort_keys=True) + "\n")
    log(f"[{TOOL}] wrote {w.samples} samples in {seconds:.1f} s ({w.samples / max(seconds, 1e-9):,.0f} samples/s); "
        + "; ".join(f"{p}: " + ", ".join(f"{s['step']} ({s['samples']})" for s in v) for p, v in steps.items()))
    return stats
