"""Timestamped image-text pairs from YFCC100M (its YFCC15M subset) and RedCaps: the parsing rules.

Each parser turns one input record into a row with the same columns as the DataComp timestamp join
(`uid`, `url`, `text`, `first_seen_time`, `first_seen_month`, `first_seen_year`) plus `reason`:
`kept`, or why the record is dropped. The Spark job (`benchmarks/source_cli.py`) applies them and
counts every reason, so every input line or annotation is accounted for.

YFCC100M, `yfcc100m_dataset` (the released tab-separated layout, one photo or video per line):
the 25 fields of `YFCC_FIELDS`. We rely on `photo_id` (the uid), `date_uploaded` (Unix seconds,
the timestamp), `title`, `description`, `download_url` and `marker` (1 = video). A line with another
field count is `malformed_line`. The YFCC15M subset is OpenAI's id list (`yfcc100m_subset_data.tsv`:
line number, photo id, photo hash; a header line is allowed); photos not in it are `not_in_subset`.

Caption cleaning (YFCC): title and description are each URL-decoded (`+` is a space, `%XX` escapes),
HTML-unescaped, stripped of HTML tags and of URLs (`http...`, `www....`), and whitespace-collapsed;
the caption is "title. description" (one of them when the other is empty or repeats it).

RedCaps, `annotations/{subreddit}_{year}.json` (as released): `{"info": ..., "annotations": [...]}`
with `image_id` (the uid), `url`, `caption` (RedCaps' cleaned caption; `raw_caption` when absent),
`subreddit`, `created_utc` (Unix seconds, the timestamp). `[deleted]`/`[removed]`/empty captions are
`deleted_caption`.

A uid that is not a safe tar member name (`ticcore.validate.SAFE_UID`: 1-64 of [A-Za-z0-9_-]) is
`bad_uid`: it would become a shard member name. YFCC photo ids and RedCaps image ids always fit.

Timestamps: missing, zero or unparsable -> `missing_timestamp`; before 2004-01-01 -> `before_2004`;
after the job's `--now` (default: the run's time) -> `future_timestamp`.
"""
from __future__ import annotations

import datetime as dt
import html
import re
from urllib.parse import unquote_plus

from ticcore.validate import uid_ok

YFCC_FIELDS = ("line_number", "photo_id", "photo_hash", "user_nsid", "user_nickname", "date_taken",
               "date_uploaded", "capture_device", "title", "description", "user_tags", "machine_tags",
               "longitude", "latitude", "accuracy", "page_url", "download_url", "license_name", "license_url",
               "server_id", "farm_id", "secret", "secret_original", "extension_original", "marker")
FIELD = {name: i for i, name in enumerate(YFCC_FIELDS)}
EARLIEST = dt.datetime(2004, 1, 1, tzinfo=dt.timezone.utc)
DELETED = {"", "[deleted]", "[removed]", "deleted", "removed"}
REASONS = ("kept", "malformed_line", "missing_timestamp", "before_2004", "future_timestamp", "video",
           "no_caption", "deleted_caption", "no_url", "not_in_subset", "duplicate_uid", "malformed_file", "bad_uid")

_TAG = re.compile(r"<[^>]*>")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def clean_text(raw: str | None, url_encoded: bool = True) -> str:
    if not raw:
        return ""
    text = unquote_plus(raw) if url_encoded else raw
    text = html.unescape(_TAG.sub(" ", html.unescape(text)))
    text = _TAG.sub(" ", text)  # tags that were escaped in the source
    text = _URL.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def yfcc_caption(title: str | None, description: str | None) -> str:
    t, d = clean_text(title), clean_text(description)
    if not t or t == d:
        return d
    if not d or d.startswith(t):
        return d or t
    return f"{t.rstrip('.')}. {d}"


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


def _row(uid, url, text, when: dt.datetime | None, reason: str, **extra) -> dict:
    return {"uid": uid, "url": url, "text": text,
            "first_seen_time": when.replace(tzinfo=None) if when else None,
            "first_seen_month": when.strftime("%Y-%m") if when else None,
            "first_seen_year": when.year if when else None, "reason": reason, **extra}


def _first_reason(*checks: tuple[bool, str]) -> str:
    """The reason of the first check that holds, in order; "kept" when none does."""
    return next((reason for hit, reason in checks if hit), "kept")


def parse_yfcc_line(line: str, now: dt.datetime) -> dict:
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) != len(YFCC_FIELDS):
        return _row(None, None, None, None, "malformed_line")
    uid = fields[FIELD["photo_id"]].strip() or None
    if uid is None:
        return _row(None, None, None, None, "malformed_line")
    when, bad = timestamp_reason(fields[FIELD["date_uploaded"]] or None, now)
    url = fields[FIELD["download_url"]].strip() or None
    text = yfcc_caption(fields[FIELD["title"]], fields[FIELD["description"]])
    reason = _first_reason((not uid_ok(uid), "bad_uid"), (fields[FIELD["marker"]].strip() == "1", "video"),
                           (bad is not None, bad),
                           (not url, "no_url"), (not text, "no_caption"))
    return _row(uid, url, text, when, reason)


def parse_redcaps_annotation(ann: dict, now: dt.datetime) -> dict:
    uid = ann.get("image_id")
    uid = str(uid) if uid not in (None, "") else None
    caption = ann.get("caption")
    if caption is None:
        caption = ann.get("raw_caption")
    caption = "" if caption is None else str(caption)
    url = ann.get("url") or None
    when, bad = timestamp_reason(ann.get("created_utc"), now)
    text = clean_text(caption, url_encoded=False)
    reason = _first_reason((uid is None, "malformed_line"), (not uid_ok(uid), "bad_uid"), (bad is not None, bad),
                           (caption.strip().lower() in DELETED, "deleted_caption"), (not url, "no_url"),
                           (not text, "no_caption"))
    return _row(uid, url, text, when, reason, subreddit=ann.get("subreddit"))


def parse_subset_ids(lines) -> set[str]:
    """Photo ids of an OpenAI-style YFCC15M list (line number, photo id, photo hash; a header, or any
    line whose id is not a number, is skipped)."""
    ids = set()
    for line in lines:
        parts = line.rstrip("\r\n").split("\t")
        if len(parts) >= 2 and parts[1].strip().isdigit():
            ids.add(parts[1].strip())
    return ids
