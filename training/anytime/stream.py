"""The labelled, time-ordered stream AnytimeCL learns from, and its held-out set.

Sources: a tic-shards output (TiC-DataComp-Net: eval/net/{year}/*.tar, classes in net_classes.json), or
any directory of webdataset tars whose .json carries an integer label (`label_key`) and optionally
`first_seen_month`. Each example is held out or streamed by a hash of its uid (so the split does not move
when the data grows); the stream is ordered by first_seen_month, and within a month by a seeded hash."""
from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ticcore.errors import UserError
from ticcore.schemas import image_extension
from ticcore.steps import STEPS_FILE, StepMap, StepScheme, read_steps

from ..data import tar_samples


class StreamError(UserError):
    pass


@dataclass(frozen=True)
class Example:
    uid: str
    image: bytes
    label: int
    month: str   # YYYY-MM, "" when unknown
    year: str


def _unit(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def _read_tar(path: Path, label_key: str, year_hint: str | None) -> list[Example]:
    out = []
    try:
        members = tar_samples(path)
    except (tarfile.TarError, OSError) as exc:
        raise StreamError(f"{path}: not a readable tar ({exc})") from None
    for key in sorted(members):
        parts = members[key]
        ext = image_extension(parts)
        if ext is None:
            continue
        image = parts[ext]
        try:
            meta = json.loads(parts.get("json", b"{}"))
            label = int(meta[label_key])
        except (ValueError, KeyError, TypeError):
            raise StreamError(f"{path}: sample {key} has no integer {label_key!r} in its .json") from None
        month = str(meta.get("first_seen_month") or "")
        year = year_hint or (month[:4] if month else str(meta.get("year", "")))
        out.append(Example(str(meta.get("uid", key)), image, label, month, year))
    return out


def load_examples(data: str | Path, label_key: str = "class_id") -> list[Example]:
    root = Path(data)
    net = root / "eval" / "net"
    if net.is_dir():
        tars = [(t, d.name) for d in sorted(net.iterdir()) if d.is_dir() for t in sorted(d.glob("*.tar"))]
    elif root.is_dir():
        tars = [(t, None) for t in sorted(root.rglob("*.tar"))]
    else:
        raise StreamError(f"{root}: no such directory")
    if not tars:
        raise StreamError(f"{root}: no labelled shards (expected a tic-shards output with eval/net/, "
                          "or webdataset tars)")
    examples = [e for t, year in tars for e in _read_tar(t, label_key, year)]
    if not examples:
        raise StreamError(f"{root}: the shards hold no labelled images")
    return examples


def split_and_order(examples: list[Example], holdout: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(stream in time order, held-out set). An example is held out when hash(uid) < holdout."""
    held = [e for e in examples if _unit(f"holdout:{e.uid}") < holdout]
    stream = [e for e in examples if _unit(f"holdout:{e.uid}") >= holdout]
    stream.sort(key=lambda e: (e.month or e.year, _unit(f"{seed}:{e.uid}")))
    return stream, sorted(held, key=lambda e: (e.year, e.uid))


def stream_steps(data: str | Path, years: list[str]) -> StepMap:
    """The TiC time steps: the map of the shard stage (steps.json) for a tic-shards output; for a directory
    of labelled tars (no steps.json), one step per year the examples hold, through ticcore.steps' rule."""
    if (Path(data) / STEPS_FILE).is_file():
        return read_steps(data)[0]
    labels = sorted({y for y in years if y})
    if not labels:
        raise StreamError(f"{data}: no example has a year (first_seen_month or year in its .json)")
    return StepMap.build(StepScheme(start_year=int(labels[0][:4])), labels, years=labels)


def step_of(step_map: StepMap, year: str) -> str:
    """The step an example of `year` belongs to. The map sends a year after its last step to no step; the
    stream keeps such examples in the last step (as it did before the map), so none is dropped."""
    return step_map.step_of_year(year) or step_map.labels[-1]


def load_classes(path: str | Path, labels: set[int]) -> dict[int, list[str]]:
    """{label: prompts} for the given labels, from a net_classes.json-style file."""
    path = Path(path)
    if not path.is_file():
        raise StreamError(f"{path}: class list not found (pass --classes)")
    try:
        doc = json.loads(path.read_text())
        by_id = {int(c["class_id"]): list(c["prompts"]) for c in doc["classes"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise StreamError(f"{path}: not a class list with class_id and prompts ({exc})") from None
    if not by_id:
        raise StreamError(f"{path}: the label set is empty")
    missing = sorted(labels - set(by_id))
    if missing:
        raise StreamError(f"{path}: labels {missing[:5]} of the data are not in the class list")
    return {y: by_id[y] for y in sorted(labels)}
