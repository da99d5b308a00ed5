"""The sample web's configuration and its time axis (snapshots, concept popularity by year)."""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .vocabulary import ALL_CONCEPTS, YEARS

GENERATOR_VERSION = 1
CRAWL_DAYS = 12  # a Common Crawl snapshot takes about two weeks to fetch


@dataclass(frozen=True)
class Snapshot:
    index: int
    snapshot_id: str        # CC-MAIN-YYYY-WW
    year: int
    week: int
    start: dt.datetime      # first second of the crawl window (UTC)

    @property
    def end(self) -> dt.datetime:
        return self.start + dt.timedelta(days=CRAWL_DAYS)

    @property
    def segment(self) -> str:
        # CC segment directory names are "<epoch-ms>.<n>"; derive one from the window start.
        return f"{int(self.start.timestamp() * 1000)}.{self.index:02d}"


def snapshot_weeks(per_year: int) -> list[int]:
    """Evenly spread ISO weeks in [6, 48]; two per year gives weeks 10 and 35, as many CC years had."""
    if per_year == 2:
        return [10, 35]
    return [int(round(6 + (48 - 6) * (k + 0.5) / per_year)) for k in range(per_year)]


def make_snapshots(per_year: int, years: tuple[int, ...] = YEARS) -> tuple[Snapshot, ...]:
    out = []
    for year in years:
        for week in snapshot_weeks(per_year):
            start = dt.datetime.combine(dt.date.fromisocalendar(year, week, 1), dt.time(), dt.timezone.utc)
            out.append(Snapshot(len(out), f"CC-MAIN-{year}-{week:02d}", year, week, start))
    return tuple(out)


@dataclass(frozen=True)
class SampleWebConfig:
    out: Path
    pairs: int
    seed: int = 0
    snapshots_per_year: int = 2
    shard_rows: int = 20_000          # pool rows per metadata shard (and per generation chunk)
    warc_target_bytes: int = 64 << 20  # rotate a snapshot's WARC file past this size
    imagenet_per_class: int = 10      # labelled ImageNet-like images per ImageNet concept
    unseen_fraction: float = 0.08     # pool pairs that no snapshot shows (they must end up unmatched)
    corrupt_record_rate: float = 0.002
    gzip_level: int = 1
    big_page: bool = True             # one ~10 MB HTML page per world (extraction must cope)
    years: tuple[int, ...] = YEARS
    snapshots: tuple[Snapshot, ...] = field(init=False, repr=False, compare=False)
    concept_year_probs: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.pairs < 1:
            raise ValueError(f"--pairs must be >= 1, got {self.pairs}")
        if self.snapshots_per_year < 2:
            raise ValueError(f"--snapshots-per-year must be >= 2, got {self.snapshots_per_year}")
        if list(self.years) != sorted(set(self.years)):
            raise ValueError(f"years must be increasing, got {self.years}")
        if self.shard_rows < 1:
            raise ValueError(f"--shard-rows must be >= 1, got {self.shard_rows}")
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "snapshots", make_snapshots(self.snapshots_per_year, self.years))
        object.__setattr__(self, "concept_year_probs", concept_year_probabilities(self.years))

    @property
    def n_chunks(self) -> int:
        return -(-self.pairs // self.shard_rows)

    def to_json(self) -> dict:
        return {
            "generator_version": GENERATOR_VERSION,
            "pairs": self.pairs,
            "seed": self.seed,
            "snapshots_per_year": self.snapshots_per_year,
            "shard_rows": self.shard_rows,
            "warc_target_bytes": self.warc_target_bytes,
            "imagenet_per_class": self.imagenet_per_class,
            "unseen_fraction": self.unseen_fraction,
            "corrupt_record_rate": self.corrupt_record_rate,
            "gzip_level": self.gzip_level,
            "big_page": self.big_page,
            "years": list(self.years),
        }


def year_weights(years: tuple[int, ...]) -> np.ndarray:
    """Share of new pairs born per year: the web (and Common Crawl) grows about 13% a year."""
    w = np.array([1.13 ** (y - years[0]) for y in years])
    return w / w.sum()


def concept_base_weights() -> np.ndarray:
    """Zipf-like base frequency per concept, fixed by the vocabulary (not by the seed)."""
    ranks = np.argsort([hashlib.sha256(c.key.encode()).hexdigest() for c in ALL_CONCEPTS])
    base = np.empty(len(ALL_CONCEPTS))
    base[ranks] = 1.0 / (np.arange(len(ALL_CONCEPTS)) + 8) ** 0.7
    kind_scale = {"imagenet": 1.0, "emerging": 1.5, "common": 1.5, "off_sense": 0.6}
    return base * np.array([kind_scale[c.kind] for c in ALL_CONCEPTS])


def concept_year_probabilities(years: tuple[int, ...]) -> np.ndarray:
    """P(concept | year): a (len(years), n_concepts) row-stochastic matrix."""
    base = concept_base_weights()
    pop = np.array([[c.popularity(y) for c in ALL_CONCEPTS] for y in years])
    w = pop * base[None, :]
    return w / w.sum(axis=1, keepdims=True)
