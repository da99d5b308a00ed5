"""DataComp-rule extraction benchmarks (issue 23). Prints each figure and the ratios, measured in one run.

1. WAT extraction, MB/s per core of gzip WAT input, on the same bytes:
     ours   : curation.extract with --input-format wat (CRC-checked members, every record accounted
              for, JSON parsed, IMG@/src links through DataComp's rules, rows built)
     floor  : what cc2dataset does before its own link rules: FastWARC iterating metadata records
              (record_types=metadata, parse_http=False) and loading each JSON with orjson (the
              parser our WAT reader uses too; cc2dataset uses simdjson)
   Target: ours >= 0.8x floor.
2. WARC extraction with DataComp's rules (the default), with each reader, vs the fastwarc +
   selectolax floor of perf/bench_timestamps.py (response records, one lexbor parse, <img> selected).
   Target: ours >= 0.9x floor. The html5 rules are printed for reference.
3. Both again on real pages (`perf.worlds.real_pages_world`: the 276 HTML pages of the shared real WARC
   files, ../shared/data/warc, written as a Common Crawl WARC file and its WAT). The sample web's pages
   are small and image-dense (about 3 kB, 1 anchor, 7-8 images); real ones are larger with far more
   anchors (median 12 kB, mean 43 kB, mean 208 anchors, 6 images), which moves both floors' per-byte
   costs and ours differently. Skipped when the shared files are not there.
4. Core-hours for one Common Crawl snapshot, projected from the measured rates (assumptions printed),
   from the real pages' rates when measured, else the sample web's.

CPU time is time.process_time; the functions take turns in an order that rotates every round, each
ratio is taken within one round, and the median over rounds is reported.

    python perf/bench_wat.py --pairs 20000 --real-copies 3
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf.bench_timestamps import floor as warc_floor  # noqa: E402 - fastwarc + selectolax
from perf.worlds import SHARED_WARC_DIR, bench_world, real_pages_world  # noqa: E402

ROUNDS = 5
# Assumptions for the projection, from Common Crawl's published per-crawl statistics (a 2023-2024
# crawl: ~90,000 WARC and as many WAT files; WARC ~100 TiB and WAT ~20 TiB compressed) and
# cc2dataset's README (~20 s per WAT file).
SNAPSHOT_WARC_TIB = 100
SNAPSHOT_WAT_TIB = 20
SNAPSHOT_WAT_FILES = 90_000
CC2DATASET_S_PER_WAT = 20
JSON_NAME = f"orjson {orjson.__version__}"
JSON_LOADS = orjson.loads


def ours(paths, **cfg):
    from curation.extract import ExtractConfig, extract_file
    from curation.warc_reader import ExtractStats

    stats, config = ExtractStats(), ExtractConfig(**cfg)
    return sum(1 for p in paths for _ in extract_file(p, stats, config))


def wat_floor(paths):
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    n = 0
    for p in paths:
        with open(p, "rb") as fh:
            for rec in ArchiveIterator(fh, record_types=WarcRecordType.metadata, parse_http=False):
                try:
                    JSON_LOADS(rec.reader.read())
                    n += 1
                except ValueError:
                    pass
    return n


def compare(label: str, paths: list[str], fns: dict, floor_name: str, target: float, rounds: int = ROUNDS) -> dict:
    """Median MB/s/core of each function, and each one's median per-round ratio to the floor."""
    size = sum(Path(p).stat().st_size for p in paths)
    for fn in fns.values():
        fn(paths[:1])  # warm imports and caches
    names = list(fns)
    runs = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            c0 = time.process_time()
            result = fns[name](paths)
            runs[name].append((result, time.process_time() - c0))
    print(f"{label} ({size / 1e6:.1f} MB gzip, {len(paths)} files; median of {rounds} rounds):")
    rates = {}
    for name, rs in runs.items():
        cpu = statistics.median(c for _, c in rs)
        rates[name] = size / 1e6 / cpu
        print(f"  {name:34s}: {rates[name]:7.2f} MB/s/core  ({rs[0][0]} items, {cpu:.2f} s CPU)")
    for name in names:
        if name == floor_name:
            continue
        per_round = sorted(f[1] / o[1] for o, f in zip(runs[name], runs[floor_name]))
        print(f"  {name}: ratio to floor = {statistics.median(per_round):.2f} (target >= {target}; rounds "
              f"{', '.join(f'{x:.2f}' for x in per_round)})")
    return rates


def compare_world(name: str, world: Path, sections: tuple[str, str], rounds: int) -> tuple[dict, dict]:
    """Sections WAT and WARC of the docstring on one world (its wat.manifest and warc.manifest)."""
    wats = [str(world / line) for line in (world / "wat.manifest").read_text().split()]
    warcs = [str(world / line) for line in (world / "warc.manifest").read_text().split()]
    wat = compare(f"{sections[0]}. WAT extraction on the {name}", wats,
                  {"ours --input-format wat": lambda ps: ours(ps, input_format="wat"), "floor": wat_floor},
                  "floor", 0.8, rounds)
    warc = compare(f"{sections[1]}. WARC extraction on the {name}", warcs,
                   {"ours datacomp": lambda ps: ours(ps),
                    "ours datacomp --reader fastwarc": lambda ps: ours(ps, reader="fastwarc"),
                    "ours html5 (reference)": lambda ps: ours(ps, pair_rules="html5"),
                    "floor": warc_floor},
                   "floor", 0.9, rounds)
    return wat, warc


def project(wat_rate: float, warc_rate: float) -> None:
    tib = 2**40 / 1e6  # MB per TiB
    print("one Common Crawl snapshot, projected (assumptions: WARC total ~%d TiB gzip, WAT total ~%d TiB gzip, "
          "~%d WAT files; cc2dataset ~%d s per WAT file; from CC's published crawl sizes and cc2dataset's README):"
          % (SNAPSHOT_WARC_TIB, SNAPSHOT_WAT_TIB, SNAPSHOT_WAT_FILES, CC2DATASET_S_PER_WAT))
    print(f"  ours, WAT input      : {SNAPSHOT_WAT_TIB * tib / wat_rate / 3600:9,.0f} core-hours "
          f"({wat_rate:.1f} MB/s/core)")
    print(f"  ours, WARC, datacomp : {SNAPSHOT_WARC_TIB * tib / warc_rate / 3600:9,.0f} core-hours "
          f"({warc_rate:.1f} MB/s/core)")
    print(f"  cc2dataset (stated)  : {SNAPSHOT_WAT_FILES * CC2DATASET_S_PER_WAT / 3600:9,.0f} core-hours")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=20_000, help="sample-web size")
    p.add_argument("--rounds", type=int, default=ROUNDS)
    p.add_argument("--real-copies", type=int, default=3, help="copies of each real page in the real-pages world "
                   "(0: skip it)")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-wat-"))
    try:
        print(f"JSON parser of the WAT floor: {JSON_NAME}")
        wat, warc = compare_world("sample web", bench_world(tmp / "world", args.pairs), ("1", "2"), args.rounds)
        if args.real_copies and SHARED_WARC_DIR.is_dir():
            wat, warc = compare_world("real pages", real_pages_world(tmp / "real", args.real_copies), ("3a", "3b"),
                                      args.rounds)
        project(wat["ours --input-format wat"], max(warc["ours datacomp"], warc["ours datacomp --reader fastwarc"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
