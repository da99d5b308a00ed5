"""Time steps: the one home of the year -> step rule and of the map that `tic-shards reshard` writes.

The rule (TiC-DataComp's): a training pair's step is its first-seen year, except that years before
`start_year` fold into the first step, which is labelled `start_year` (2014-2016 -> "2016"); with
`granularity="month"` a pair's step is its first-seen month ("2016-03"). An evaluation year belongs to
the first step that does not end before it (earlier years fold into the first step; a year after the
last step belongs to none).

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


@dataclass(frozen=True)
class StepScheme:
    granularity: str = "year"            # year | month
    start_year: int = DEFAULT_START_YEAR  # years before it fold into the first step, labelled with it

    def __post_init__(self):
        if self.granularity not in GRANULARITIES:
            raise InputError(f"granularity must be one of {', '.join(GRANULARITIES)}, not {self.granularity!r}")

    def label(self, first_seen_month: str | None, year: int | None) -> str | None:
        """The step of a training pair, from its first-seen month ("YYYY-MM") or year."""
        if first_seen_month is None and year is None:
            return None
        y = int(year) if year is not None else int(str(first_seen_month)[:4])
        if self.granularity == "month":
            return str(first_seen_month)
        return str(max(y, self.start_year))


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
