"""Timestamped image-text pairs from YFCC100M (its YFCC15M subset) and RedCaps: the parsing rules.

Each parser turns one input record into a row with the same columns as the DataComp timestamp join
(`uid`, `url`, `text`, `first_seen_time`, `first_seen_month`, `first_seen_year`) plus `reason`:
`kept`, or why the record is dropped. The Spark job (`benchmarks/source_cli.py`) applies them and
counts every reason, so every input line or annotation is accounted for.

Two recipes (`RECIPES`): `tic`, the default, builds the benchmarks as the TiC-CLIP paper did
(apple/ml-tic-clip, `dataset_creation/tic-yfcc15m/create_splits.py` and
`dataset_creation/tic-redcaps/create_splits.py`); `ours` is this toolkit's earlier recipe. Their steps
and evaluation sampling live in `ticcore/steps.py` and `benchmarks/source_cli.py`; the parsing
differences are below.

YFCC100M, `yfcc100m_dataset` (the released tab-separated layout, one photo or video per line):
the 25 fields of `YFCC_FIELDS`. We rely on `photo_id` (the uid), `date_uploaded` (Unix seconds,
the timestamp), `title`, `description`, `user_tags` (comma-separated), `download_url` and `marker`
(1 = video). A line with another field count is `malformed_line`. The YFCC15M subset is OpenAI's id
list (openai/CLIP `data/yfcc100m.md`: `yfcc100m_subset_data.tsv`, line number, photo id, photo hash;
a header line is allowed); photos not in it are `not_in_subset`.

Upload time: ml-tic-clip reads `dateuploaded` as Unix seconds and takes the year of
`datetime.fromtimestamp(...)`, i.e. in the local time zone of the machine that ran it. We read the
same seconds in UTC, so a run does not depend on where it runs; an upload within a few hours of New
Year can fall in the neighbouring year (and bucket) compared with a run in another time zone.

Text cleaning (both recipes, `clean_text`): URL-decoding (`+` is a space, `%XX` escapes) where the
field is URL-encoded (YFCC), then HTML tags are removed, then HTML entities are decoded once, then
whitespace is collapsed. Tags go before entities are decoded: an escaped `&lt;3` is what the author
typed and stays `<3` (decoding first would turn it into a "tag" and delete it). RedCaps captions are
not HTML: no tag removal, so RedCaps' `<usr>` token (its stand-in for user names) survives.

`tic` recipe:
- YFCC caption: "title. description. usertags" (as ml-tic-clip builds it) from the cleaned fields,
  with `ftfy.fix_text` repairing mojibake as ml-tic-clip's does, URLs kept, cut to its first 500
  characters (`TIC_CAPTION_CHARS`). Empty fields are skipped (ml-tic-clip leaves ". ." in their place).
  ml-tic-clip replaces a tag with nothing; we replace it with a space (then collapse spaces), so
  "a<br>b" is "a b", not "ab".
- YFCC years outside the recipe's buckets (2004-2014, `ticcore.steps.TIC_YFCC_STEP_ENDS`) are
  `outside_recipe_years` (ml-tic-clip counts them as "not mapped" and drops them).
- RedCaps: only annotation files named `*_{2017..2020}.json` are read, and the year is the one in the
  file name (ml-tic-clip globs `*_{year}.json` per year and never reads `created_utc`). Annotations of
  any other file are `outside_recipe_years`. `created_utc` only gives first_seen_time/month, and only
  when it is valid and in the file's year (else they are null; the record is kept). The caption is
  RedCaps' `caption` as released (whitespace collapsed), as ml-tic-clip uses it.

`ours` recipe:
- YFCC caption: "title. description" (one of them when the other is empty or repeats it), each
  cleaned and with URLs (`http...`, `www....`) removed; no length cut; any year from 2004 is kept.
- RedCaps: every `*.json` file; the year is `created_utc`'s; the caption is cleaned as above with URLs
  removed.

Both recipes drop what cannot become a training pair: a video, no image URL, an empty caption
(`no_caption`), a caption that is Reddit's `[deleted]`/`[removed]` marker (`deleted_caption`;
ml-tic-clip keeps every record, as its released inputs hold none of these).

A uid that is not a safe tar member name (`ticcore.validate.SAFE_UID`: 1-64 of [A-Za-z0-9_-]) is
`bad_uid`: it would become a shard member name. YFCC photo ids and RedCaps image ids always fit.

Timestamps (where a recipe reads them): missing, zero or unparsable -> `missing_timestamp`; before
2004-01-01 -> `before_2004`; after the job's `--now` (default: the run's time) -> `future_timestamp`.
"""
from __future__ import annotations

import datetime as dt
import html
import re
from urllib.parse import unquote_plus

import ftfy

from ticcore.steps import TIC_REDCAPS_STEP_ENDS, TIC_YFCC_STEP_ENDS, StepScheme
from ticcore.validate import uid_ok

RECIPES = ("tic", "ours")
DEFAULT_RECIPE = "tic"
YFCC_FIELDS = ("line_number", "photo_id", "photo_hash", "user_nsid", "user_nickname", "date_taken",
               "date_uploaded", "capture_device", "title", "description", "user_tags", "machine_tags",
               "longitude", "latitude", "accuracy", "page_url", "download_url", "license_name", "license_url",
               "server_id", "farm_id", "secret", "secret_original", "extension_original", "marker")
FIELD = {name: i for i, name in enumerate(YFCC_FIELDS)}
EARLIEST = dt.datetime(2004, 1, 1, tzinfo=dt.timezone.utc)
DELETED = {"[deleted]", "[removed]", "deleted", "removed"}  # Reddit's markers; an empty caption is no_caption
TIC_CAPTION_CHARS = 500  # ml-tic-clip keeps a YFCC caption's first 500 characters
TIC_YFCC_STEPS = StepScheme.with_ends(TIC_YFCC_STEP_ENDS)
TIC_REDCAPS_YEARS = frozenset(TIC_REDCAPS_STEP_ENDS)
REASONS = ("kept", "malformed_line", "missing_timestamp", "before_2004", "future_timestamp", "video",
           "no_caption", "deleted_caption", "no_url", "not_in_subset", "duplicate_uid", "malformed_file", "bad_uid",
           "outside_recipe_years")

_TAG = re.compile(r"<[^>]*>")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_FILE_YEAR = re.compile(r"_(\d{4})\.json$")


def _check_recipe(recipe: str) -> None:
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(RECIPES)}, not {recipe!r}")


def clean_text(raw: str | None, url_encoded: bool = True, *, tags: bool = True, urls: bool = True,
               fix_mojibake: bool = False) -> str:
    """URL-decode (when `url_encoded`), remove HTML tags (when `tags`), decode entities once, remove URLs
    (when `urls`), collapse whitespace. Tags go before entities: an escaped "&lt;" is text, not markup."""
    if not raw:
        return ""
    text = unquote_plus(raw) if url_encoded else raw
    if tags:
        text = _TAG.sub(" ", text)
    if fix_mojibake:
        text = ftfy.fix_text(text, unescape_html=False)  # entities are decoded below, exactly once
    text = html.unescape(text)
    if urls:
        text = _URL.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def yfcc_caption(title: str | None, description: str | None) -> str:
    """The `ours` recipe's caption: "title. description", URLs removed."""
    t, d = clean_text(title), clean_text(description)
    if not t or t == d:
        return d
    if not d or d.startswith(t):
        return d or t
    return f"{t.rstrip('.')}. {d}"


def tic_yfcc_caption(title: str | None, description: str | None, user_tags: str | None) -> str:
    """The `tic` recipe's caption: "title. description. usertags" of the cleaned, non-empty fields,
    its first `TIC_CAPTION_CHARS` characters (apple/ml-tic-clip, tic-yfcc15m/create_splits.py)."""
    parts = (clean_text(f, urls=False, fix_mojibake=True) for f in (title, description, user_tags))
    return ". ".join(p for p in parts if p)[:TIC_CAPTION_CHARS]


def timestamp_reason(seconds, now: dt.datetime) -> tuple[dt.datetime | None, str | None]:
    """(UTC time, None) or (None, reason)."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        return None, "missing_timestamp"
    if value != value or value <= 0:  # NaN or zero
        return None, "missing_timestamp"
    try:
        when = dt.datetime.fromtimestamp(value, tz=dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None, "future_timestamp"
    if when < EARLIEST:
        return None, "before_2004"
    if when > now:
        return None, "future_timestamp"
    return when, None


def _row(uid, url, text, when: dt.datetime | None, reason: str, year: int | None = None, **extra) -> dict:
    return {"uid": uid, "url": url, "text": text,
            "first_seen_time": when.replace(tzinfo=None) if when else None,
            "first_seen_month": when.strftime("%Y-%m") if when else None,
            "first_seen_year": year if year is not None else (when.year if when else None), "reason": reason, **extra}


def _first_reason(*checks: tuple[bool, str]) -> str:
    """The reason of the first check that holds, in order; "kept" when none does."""
    return next((reason for hit, reason in checks if hit), "kept")


def parse_yfcc_line(line: str, now: dt.datetime, recipe: str = DEFAULT_RECIPE) -> dict:
    _check_recipe(recipe)
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) != len(YFCC_FIELDS):
        return _row(None, None, None, None, "malformed_line")
    uid = fields[FIELD["photo_id"]].strip() or None
    if uid is None:
        return _row(None, None, None, None, "malformed_line")
    when, bad = timestamp_reason(fields[FIELD["date_uploaded"]] or None, now)
    url = fields[FIELD["download_url"]].strip() or None
    if recipe == "tic":
        text = tic_yfcc_caption(fields[FIELD["title"]], fields[FIELD["description"]], fields[FIELD["user_tags"]])
        outside = when is not None and TIC_YFCC_STEPS.year_step(when.year) is None
    else:
        text = yfcc_caption(fields[FIELD["title"]], fields[FIELD["description"]])
        outside = False
    reason = _first_reason((not uid_ok(uid), "bad_uid"), (fields[FIELD["marker"]].strip() == "1", "video"),
                           (bad is not None, bad), (outside, "outside_recipe_years"),
                           (not url, "no_url"), (not text, "no_caption"))
    return _row(uid, url, text, when, reason)


def redcaps_file_year(path: str) -> int | None:
    """The year in a RedCaps annotation file's name (`{subreddit}_{year}.json`), or None."""
    m = _FILE_YEAR.search(str(path))
    return int(m.group(1)) if m else None


def parse_redcaps_annotation(ann: dict, now: dt.datetime, recipe: str = DEFAULT_RECIPE,
                             file_year: int | None = None) -> dict:
    """One annotation as a row. `file_year`: the year in its file's name (the `tic` recipe's year)."""
    _check_recipe(recipe)
    uid = ann.get("image_id")
    uid = str(uid) if uid not in (None, "") else None
    caption = ann.get("caption")
    if caption is None:
        caption = ann.get("raw_caption")
    caption = "" if caption is None else str(caption)
    url = ann.get("url") or None
    when, bad = timestamp_reason(ann.get("created_utc"), now)
    if recipe == "tic":
        text = clean_text(caption, url_encoded=False, tags=False, urls=False)
        year, outside = file_year, file_year not in TIC_REDCAPS_YEARS
        if when is not None and when.year != file_year:
            when = None  # first_seen_time/month only from a created_utc that agrees with the file's year
        bad = None  # the year comes from the file name; created_utc decides nothing
    else:
        text = clean_text(caption, url_encoded=False, tags=False)
        year, outside = None, False
    reason = _first_reason((uid is None, "malformed_line"), (not uid_ok(uid), "bad_uid"), (bad is not None, bad),
                           (outside, "outside_recipe_years"),
                           (caption.strip().lower() in DELETED, "deleted_caption"), (not url, "no_url"),
                           (not text, "no_caption"))
    return _row(uid, url, text, when, reason, year, subreddit=ann.get("subreddit"))


def parse_subset_ids(lines) -> set[str]:
    """Photo ids of an OpenAI-style YFCC15M list (line number, photo id, photo hash; a header, or any
    line whose id is not a number, is skipped)."""
    ids = set()
    for line in lines:
        parts = line.rstrip("\r\n").split("\t")
        if len(parts) >= 2 and parts[1].strip().isdigit():
            ids.add(parts[1].strip())
    return ids
