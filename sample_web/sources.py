"""Small YFCC100M-style and RedCaps-style sources for the sample web (`tic-sample-web sources`).

    DIR/yfcc/yfcc100m_dataset.tsv        the 25-field YFCC100M layout (curation/sources.py), 2004-2014 uploads
    DIR/yfcc/yfcc100m_subset_data.tsv    an OpenAI-style YFCC15M id list (header, ~85% of the photos)
    DIR/redcaps/annotations/{sub}_{year}.json   RedCaps' released layout, 2011-2020 posts
    DIR/{yfcc,redcaps}/truth.parquet     uid, year, concept, expected reason (what the tests check)

Drift works as in the DataComp world: concept popularity changes by year (the same concept trends)
and every concept's look changes with the year its picture was taken, so the images, served by
`tic-sample-web serve` from the token in their URL, drift too. Some records are bad on purpose:
malformed lines, missing/zero/future/pre-2004 timestamps, videos, deleted captions, a broken file.
Deterministic in (seed, sizes).
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from urllib.parse import quote_plus

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ticcore.outputs import claim_output, is_our_output, staged_dir
from .images import FAIL_NOT_FOUND, FAIL_OK, SIZES, ImageKey, ImageToken, encode_token
from .vocabulary import ALL_CONCEPTS, COLORS, SCENES
from .world import concept_year_probabilities

SOURCES_TOOL = "tic-sample-web sources"

YFCC_YEARS = tuple(range(2004, 2015))
REDCAPS_YEARS = tuple(range(2011, 2021))
SUBREDDITS = ("itookapicture", "pics", "earthporn", "cats", "food", "mildlyinteresting", "somethingimade",
              "photocritique")
# Bad-record rates (per record) and what the parser must call them.
YFCC_BAD = (("malformed_line", 0.006), ("missing_timestamp", 0.006), ("future_timestamp", 0.003),
            ("before_2004", 0.003), ("video", 0.03), ("no_caption", 0.004))
REDCAPS_BAD = (("deleted_caption", 0.015), ("missing_timestamp", 0.006), ("future_timestamp", 0.003),
               ("before_2004", 0.002))


def _when(rng, year: int) -> dt.datetime:
    start = dt.datetime(year, 1, 1, tzinfo=dt.timezone.utc)
    end = dt.datetime(year + 1, 1, 1, tzinfo=dt.timezone.utc)
    return start + dt.timedelta(seconds=int(rng.integers(0, int((end - start).total_seconds()))))


def _draw(rng, n: int, years: tuple[int, ...], growth: float):
    """Year, concept, colour, scene per record: more records in later years, concepts by year."""
    w = np.array([growth ** (y - years[0]) for y in years])
    year_idx = rng.choice(len(years), size=n, p=w / w.sum())
    # The vocabulary's trends are written for 2014-2022 (most concepts start in 2014): map the source's
    # era onto that span, so its concepts rise and fall as much over its own years.
    era = tuple(int(round(2014 + (y - years[0]) * 8 / (len(years) - 1))) for y in years)
    probs = concept_year_probabilities(era)
    concept = np.array([rng.choice(len(ALL_CONCEPTS), p=probs[i]) for i in year_idx])
    return (np.array(years)[year_idx], concept, rng.integers(len(COLORS), size=n), rng.integers(len(SCENES), size=n))


def _token(concept: int, year: int, color: int, scene: int, size_idx: int, failure: int, serial: int) -> str:
    w, h = SIZES[size_idx]
    return encode_token(ImageToken(ImageKey(int(concept), int(year), int(color), int(scene), 0, w, h), failure, serial))


def _bad_kind(rng, table) -> str | None:
    u = rng.random()
    acc = 0.0
    for kind, p in table:
        acc += p
        if u < acc:
            return kind
    return None


def write_yfcc(root: Path, n: int, seed: int) -> dict:
    rng = np.random.default_rng([seed, 9001])
    years, concept, color, scene = _draw(rng, n, YFCC_YEARS, 1.35)
    sizes = [i for i, (w, h) in enumerate(SIZES) if min(w, h) >= 225]
    lines, truth, subset = [], [], []
    for i in range(n):
        photo_id = str(10_000_000 + i * 7 + int(rng.integers(7)))
        spec = ALL_CONCEPTS[concept[i]]
        cname, sname = COLORS[color[i]][0], SCENES[scene[i]]
        when = _when(rng, int(years[i]))
        kind = _bad_kind(rng, YFCC_BAD)
        failure = FAIL_NOT_FOUND if rng.random() < 0.02 else FAIL_OK
        token = _token(concept[i], years[i], color[i], scene[i], int(rng.choice(sizes)), failure, i)
        title = f"IMG_{int(rng.integers(1000, 9999))}" if rng.random() < 0.2 else f"{cname} {spec.phrase}".title()
        desc_style = rng.random()
        if desc_style < 0.25:
            description = ""
        elif desc_style < 0.5:
            description = f'a {cname} {spec.phrase} {sname}. <a href="http://www.flickr.com/photos/x/{photo_id}">' \
                          f"more photos</a> &amp; prints"
        else:
            description = f"My {spec.phrase} {sname}, shot in {when.year}. See www.example-{i % 97}.com"
        if kind == "no_caption":
            title, description = "", ""
        uploaded = str(int(when.timestamp()))
        if kind == "missing_timestamp":
            uploaded = "" if rng.random() < 0.5 else "0"
        elif kind == "future_timestamp":
            uploaded = str(int(dt.datetime(2031, 5, 1, tzinfo=dt.timezone.utc).timestamp()))
        elif kind == "before_2004":
            uploaded = str(int(dt.datetime(1999, 6, 1, tzinfo=dt.timezone.utc).timestamp()))
        server, farm = str(1000 + int(rng.integers(8000))), str(1 + int(rng.integers(9)))
        fields = [str(i + 1), photo_id, f"{int(rng.integers(1 << 62)):032x}", f"{int(rng.integers(1 << 30))}@N0{i % 9}",
                  f"user{i % 500}", when.strftime("%Y-%m-%d %H:%M:%S.0"), uploaded, "Canon+EOS+400D",
                  quote_plus(title), quote_plus(description), "", "", "", "", "",
                  f"http://www.flickr.com/photos/u{i % 500}/{photo_id}/",
                  f"http://farm{farm}.staticflickr.com/{server}/{photo_id}_{token}.jpg",
                  "Attribution License", "http://creativecommons.org/licenses/by/2.0/", server, farm,
                  token[:10], token[10:20], "jpg", "1" if kind == "video" else "0"]
        if kind == "malformed_line":
            fields = fields[:9]
        lines.append("\t".join(fields))
        in_subset = rng.random() < 0.85
        if in_subset or kind == "malformed_line":
            subset.append(f"{i + 1}\t{photo_id}\t{fields[2] if len(fields) > 2 else ''}")
        expected = kind or ("kept" if in_subset else "not_in_subset")
        truth.append({"uid": photo_id, "year": int(years[i]), "concept": spec.key,
                      "expected_reason": expected, "download_ok": failure == FAIL_OK})
    d = root / "yfcc"
    d.mkdir(parents=True)
    (d / "yfcc100m_dataset.tsv").write_text("\n".join(lines) + "\n")
    (d / "yfcc100m_subset_data.tsv").write_text("line_number\tphoto_id\tphoto_hash\n" + "\n".join(subset) + "\n")
    pq.write_table(pa.Table.from_pylist(truth), d / "truth.parquet")
    return _summary(truth)


def write_redcaps(root: Path, n: int, seed: int) -> dict:
    rng = np.random.default_rng([seed, 9002])
    years, concept, color, scene = _draw(rng, n, REDCAPS_YEARS, 1.3)
    sizes = [i for i, (w, h) in enumerate(SIZES) if min(w, h) >= 225]
    files: dict[tuple[str, int], list] = {}
    truth = []
    for i in range(n):
        spec = ALL_CONCEPTS[concept[i]]
        cname, sname = COLORS[color[i]][0], SCENES[scene[i]]
        sub = SUBREDDITS[int(rng.integers(len(SUBREDDITS)))]
        when = _when(rng, int(years[i]))
        kind = _bad_kind(rng, REDCAPS_BAD)
        failure = FAIL_NOT_FOUND if rng.random() < 0.02 else FAIL_OK
        token = _token(concept[i], years[i], color[i], scene[i], int(rng.choice(sizes)), failure, i)
        image_id = f"rc{i:07d}"
        raw = f"[OC] My {cname} {spec.phrase} {sname} ({int(rng.integers(1000, 5000))}x{int(rng.integers(1000, 5000))})"
        caption = f"my {cname} {spec.phrase} {sname}"
        created = float(int(when.timestamp()))
        if kind == "deleted_caption":
            raw = caption = "[deleted]" if rng.random() < 0.5 else "[removed]"
        elif kind == "missing_timestamp":
            created = 0.0 if rng.random() < 0.5 else None
        elif kind == "future_timestamp":
            created = float(int(dt.datetime(2031, 5, 1, tzinfo=dt.timezone.utc).timestamp()))
        elif kind == "before_2004":
            created = float(int(dt.datetime(2001, 3, 1, tzinfo=dt.timezone.utc).timestamp()))
        host = "i.redd.it" if rng.random() < 0.7 else "i.imgur.com"
        ann = {"image_id": image_id, "author": f"redditor{i % 300}", "url": f"http://{host}/{token}.jpg",
               "raw_caption": raw, "caption": caption, "subreddit": sub, "score": int(rng.integers(1, 5000)),
               "created_utc": created, "permalink": f"/r/{sub}/comments/{image_id}/"}
        files.setdefault((sub, int(years[i])), []).append(ann)
        truth.append({"uid": image_id, "year": int(years[i]), "concept": spec.key,
                      "expected_reason": kind or "kept", "download_ok": failure == FAIL_OK})
    d = root / "redcaps" / "annotations"
    d.mkdir(parents=True)
    for (sub, year), anns in sorted(files.items()):
        doc = {"info": {"subreddit": sub, "year": year, "num_annotations": len(anns)}, "annotations": anns}
        (d / f"{sub}_{year}.json").write_text(json.dumps(doc, separators=(",", ":")))
    # One damaged file, as a truncated download would leave it: the parser must count it, not crash.
    (d / "brokensub_2019.json").write_text('{"info": {"subreddit": "brokensub"}, "annotations": [{"image_id": "x1", ')
    pq.write_table(pa.Table.from_pylist(truth), root / "redcaps" / "truth.parquet")
    return _summary(truth) | {"files": len(files) + 1, "malformed_files": 1}


def _summary(truth: list[dict]) -> dict:
    out: dict = {"records": len(truth), "by_reason": {}}
    for t in truth:
        out["by_reason"][t["expected_reason"]] = out["by_reason"].get(t["expected_reason"], 0) + 1
    return out


def generate_sources(out: Path, yfcc: int, redcaps: int, seed: int = 0, log=print) -> dict:
    """Write DIR/yfcc and DIR/redcaps (staged, then renamed into place; an identical rerun is a no-op)."""
    out = Path(out).resolve()
    marker = out / "sources.json"
    config = {"yfcc": yfcc, "redcaps": redcaps, "seed": seed, "version": 1}
    claim_output(out, SOURCES_TOOL)
    if is_our_output(out, SOURCES_TOOL) and json.loads(marker.read_text()).get("config") == config:
        log(f"[sample-web] {out} already holds these sources; nothing to do")
        return json.loads(marker.read_text())
    with staged_dir(out, SOURCES_TOOL) as staging:
        doc = {"config": config, "yfcc": write_yfcc(staging, yfcc, seed), "redcaps": write_redcaps(staging, redcaps, seed)}
        (staging / "sources.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    log(f"[sample-web] YFCC-style: {yfcc} records, RedCaps-style: {redcaps} annotations in {out}")
    return doc
