"""Time steps: the one home of the year -> step rule and of the map that `tic-shards reshard` writes.

The rule (TiC-DataComp's): a training pair's step is its first-seen year, except that years before
`start_year` fold into the first step, which is labelled `start_year` (2014-2016 -> "2016"); with
`granularity="month"` a pair's step is its first-seen month ("2016-03"). A scheme with `step_ends`
has multi-year steps instead: a year belongs to the first step whose last year is not before it, each
step is labelled with its last year, and a year after the last step belongs to none (TiC-YFCC's
2004-08, 2009-10, 2011-12, 2013-14 are steps "2008", "2010", "2012", "2014"). An evaluation year
belongs to the first step that does not end before it (earlier years fold into the first step; a year
after the last step belongs to none), which is the same rule.

The steps of TiC-YFCC and TiC-RedCaps as the TiC-CLIP paper built them (apple/ml-tic-clip,
`dataset_creation/tic-yfcc15m/create_splits.py`, `dataset_creation/tic-redcaps/create_splits.py`) are
`TIC_YFCC_STEP_ENDS` and `TIC_REDCAPS_STEP_ENDS`; tic-yfcc / tic-redcaps write a scheme's `step_ends`
into their stats.json, and `tic-shards reshard` and `tic-analyze` read it back (`benchmarks.pools`).

`tic-shards reshard` applies the rule once and writes the outcome into OUT/steps.json:

    {"granularity": "year", "start_year": 2016,
     "steps": ["2016", ..., "2022"],                   every step label, in order
     "year_to_step": {"2014": "2016", ...},            every year the shards hold
     "month_to_step": {"2014-03": "2016", ...},        every first-seen month the shards hold
     "pools": {"basic": [{"step", "samples", "shards", "pattern"}, ...], ...}}

Training (`tic-train`, AnytimeCL) reads the map through `read_steps`; none of them re-derives it.
`tic-analyze` runs on splits, before any shards exist, so it applies `StepScheme` itself.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ticcore.errors import InputError

STEPS_FILE = "steps.json"
GRANULARITIES = ("year", "month")
DEFAULT_START_YEAR = 2016  # TiC-DataComp: 2014-2016 are one step
TIC_YFCC_STEP_ENDS = (2008, 2010, 2012, 2014)     # ml-tic-clip's YFCC15M buckets: 2004-08, 2009-10, 2011-12, 2013-14
TIC_REDCAPS_STEP_ENDS = (2017, 2018, 2019, 2020)  # ml-tic-clip's RedCaps years, one step each


@dataclass(frozen=True)
class StepScheme:
    granularity: str = "year"            # year | month
    start_year: int = DEFAULT_START_YEAR  # years before it fold into the first step, labelled with it
    step_ends: tuple[int, ...] = ()       # multi-year steps, by their last years (then start_year is the first)

    def __post_init__(self):
        if self.granularity not in GRANULARITIES:
            raise InputError(f"granularity must be one of {', '.join(GRANULARITIES)}, not {self.granularity!r}")
        ends = tuple(int(e) for e in self.step_ends)
        if ends != tuple(sorted(set(ends))) or (ends and ends[0] != self.start_year):
            raise InputError(f"step ends {list(ends)} must increase and start at the first step {self.start_year}")
        object.__setattr__(self, "step_ends", ends)

    @classmethod
    def with_ends(cls, ends, granularity: str = "year") -> "StepScheme":
        """Multi-year steps ending at `ends` (every year up to the first end folds into the first)."""
        ends = tuple(int(e) for e in ends)
        return cls(granularity, ends[0], ends)

    def year_step(self, year: int) -> int | None:
        """The step (its label, as an int) of a year; None after the last of `step_ends`."""
        y = int(year)
        if self.step_ends:
            return next((e for e in self.step_ends if y <= e), None)
        return max(y, self.start_year)

    def describe(self, first_year: int, last_year: int) -> str:
        """The year steps of data from `first_year` to `last_year`, as the docs write them:
        "2008 (2004-2008), 2010 (2009-2010)" or "2011 (2004-2011), 2012"."""
        spans: dict[int, list[int]] = {}
        for y in range(first_year, last_year + 1):
            step = self.year_step(y)
            if step is not None:
                spans.setdefault(step, []).append(y)
        return ", ".join(str(step) if len(ys) == 1 else f"{step} ({ys[0]}-{ys[-1]})" for step, ys in spans.items())

    def label(self, first_seen_month: str | None, year: int | None) -> str | None:
        """The step of a training pair, from its first-seen month ("YYYY-MM") or year."""
        if first_seen_month is None and year is None:
            return None
        y = int(year) if year is not None else int(str(first_seen_month)[:4])
        if self.granularity == "month":
            return str(first_seen_month)
        step = self.year_step(y)
        return None if step is None else str(step)


def step_for_year(year: int | str, labels: list[str] | tuple[str, ...]) -> str | None:
    """The step an evaluation year belongs to: the first step whose year is not before it."""
    y = int(str(year)[:4])
    for label in labels:
        if y <= int(str(label)[:4]):
            return label
    return None


@dataclass(frozen=True)
class StepMap:
    """Step labels in order, and where every year and first-seen month of the shards belongs."""
    granularity: str
    start_year: int
    labels: tuple[str, ...]
    year_to_step: dict = field(default_factory=dict)
    month_to_step: dict = field(default_factory=dict)

    @classmethod
    def build(cls, scheme: StepScheme, labels, years=(), months=()) -> "StepMap":
        labels = tuple(sorted({str(s) for s in labels}))
        y2s = {str(y): s for y in sorted({str(y) for y in years}) if (s := step_for_year(y, labels)) is not None}
        m2s = {}
        for m in sorted({str(m) for m in months if m}):
            s = m if scheme.granularity == "month" and m in labels else step_for_year(m[:4], labels)
            if s is not None:
                m2s[m] = s
        return cls(scheme.granularity, scheme.start_year, labels, y2s, m2s)

    def step_of_year(self, year) -> str | None:
        return self.year_to_step.get(str(year)[:4])

    def index_of_year(self, year) -> int | None:
        s = self.step_of_year(year)
        return None if s is None else self.labels.index(s)

    def to_json(self) -> dict:
        return {"granularity": self.granularity, "start_year": self.start_year, "steps": list(self.labels),
                "year_to_step": self.year_to_step, "month_to_step": self.month_to_step}

    @classmethod
    def from_json(cls, doc: dict) -> "StepMap":
        return cls(str(doc["granularity"]), int(doc["start_year"]), tuple(str(s) for s in doc["steps"]),
                   {str(k): str(v) for k, v in doc["year_to_step"].items()},
                   {str(k): str(v) for k, v in doc.get("month_to_step", {}).items()})


def steps_document(step_map: StepMap, pools: dict) -> dict:
    """What steps.json holds: the map, and each pool's steps (shard pattern and sample count)."""
    return {**step_map.to_json(), "pools": pools}


def read_steps(data_dir: str | Path) -> tuple[StepMap, dict]:
    """(the step map, {pool: [step entries]}) from a tic-shards output's steps.json."""
    path = Path(data_dir) / STEPS_FILE
    try:
        doc = json.loads(path.read_text())
        return StepMap.from_json(doc), dict(doc["pools"])
    except FileNotFoundError:
        raise InputError(f"{path}: missing (is {data_dir} a tic-shards reshard output?)") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{path}: not a tic-shards step map ({exc.__class__.__name__}: {exc})") from None
