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

from ..data import tar_samples


class StreamError(ValueError):
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
        image = next((parts[e] for e in ("jpg", "jpeg", "png", "webp") if e in parts), None)
        if image is None:
            continue
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


def step_labels(data: str | Path, years: list[str]) -> list[str]:
    """The TiC time steps: those of the shard stage (steps.json) when present, else one per year."""
    steps_json = Path(data) / "steps.json"
    if steps_json.is_file():
        doc = json.loads(steps_json.read_text())
        pools = [p for p in doc.values() if isinstance(p, list) and p]
        if pools:
            return [str(s["step"]) for s in pools[0]]
    return sorted(set(years))


def step_of(year: str, labels: list[str]) -> str:
    """Years up to the first step fold into it (2014-2016 -> 2016); later years are their own step, or
    the latest step not after them."""
    earlier = [s for s in labels if s <= year]
    return earlier[-1] if earlier else labels[0]


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
