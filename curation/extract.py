"""Image-text candidates from WARC/ARC files: one row per usable <img> on an HTML page.

The pure core of the timestamp join: `extract_file` reads one file and yields rows; the
Spark job maps it over partitions and `tic-extract` runs it in one process. This module composes
the WARC reader (`curation/warc_reader.py`: records, damage, dates, accounting) and the HTML
image rules (`curation/html_images.py`: charsets, <img> URLs and alt text). A row has the columns
of `ticcore.schemas.CANDIDATES`.

Rules (documented contract; the reader's and the image rules' own are in their modules):
- Only `response` records with an HTTP status of 200 and an HTML content type
  (`text/html`, `application/xhtml+xml`) are parsed. Chunked transfer and content
  encodings are undone by warcio (which also copes with headers that lie about them).
- Snapshot: `isPartOf` of the file's warcinfo if it is a `CC-MAIN-YYYY-WW` id, else the first
  such id in the file path, else null.
- Size: a page whose payload exceeds `max_page_bytes` is skipped (counted), as Common Crawl
  itself truncates payloads at 1 MiB.

Every input is accounted for, stage by stage (see `curation.warc_reader.ExtractStats`).
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Iterator

from curation.html_images import html_for_parser, image_rows
from curation.warc_reader import READERS, ExtractStats, iter_records, looks_like_warc, parse_warc_date
from ticcore.errors import InputError

SNAPSHOT_RE = re.compile(r"CC-MAIN-\d{4}-\d{2}")
_ISPARTOF_RE = re.compile(r"isPartOf:\s*(" + SNAPSHOT_RE.pattern + ")")
HTML_TYPES = ("text/html", "application/xhtml")


@dataclass(frozen=True)
class ExtractConfig:
    max_page_bytes: int = 5 << 20
    reader: str = "warcio"  # or "fastwarc": the same rows and counts, faster (see iter_records)

    def __post_init__(self):
        if self.reader not in READERS:
            raise InputError(f"reader must be one of {', '.join(READERS)}, not {self.reader!r}")


# Both readers below hand out rows through itertools.chain, one list per page: the rows then
# pass to the caller in C, where a generator resumed for every row cost about as much as making it.

def extract_stream(fh, warc_file: str, stats: ExtractStats, cfg: ExtractConfig = ExtractConfig()) -> Iterator[tuple]:
    """Rows (page_url, url, text, crawl_time, snapshot, warc_file, warc_offset) of one open file
    (counted in the `files` stage as kept, or failed if it is not a WARC/ARC file), lazily."""
    return itertools.chain.from_iterable(_stream_pages(fh, warc_file, stats, cfg))


def _stream_pages(fh, warc_file: str, stats: ExtractStats, cfg: ExtractConfig) -> Iterator[list[tuple]]:
    if not looks_like_warc(fh):
        stats.inc("files", "failed.not_a_warc_file")
        return
    stats.inc("files", "kept")
    m = SNAPSHOT_RE.search(warc_file)
    path_snapshot = m.group(0) if m else None
    snapshot = path_snapshot
    for offset, rec in iter_records(fh, stats, cfg.reader):
        rtype = rec.rec_type
        stats["records.kept"] += 1
        stats["info.record_type." + rtype] += 1
        if rtype == "warcinfo":
            try:
                body = rec.content_stream().read(65536).decode("utf-8", "replace")
            except Exception:  # noqa: BLE001
                body = ""
            m = _ISPARTOF_RE.search(body)
            snapshot = m.group(1) if m else path_snapshot
            continue
        if rtype != "response":
            continue
        stats["responses.input"] += 1
        http = rec.http_headers
        page_url = (rec.rec_headers.get_header("WARC-Target-URI") or "").strip().strip("<>")
        if http is None or not page_url.lower().startswith(("http://", "https://")):
            stats["responses.dropped.non_http_payload"] += 1
            continue
        if http.get_statuscode() != "200":
            stats["responses.dropped.non_200_status"] += 1
            continue
        ctype = http.get_header("Content-Type") or ""
        if not ctype.strip().lower().startswith(HTML_TYPES):
            stats["responses.dropped.non_html"] += 1
            continue
        crawl_time = parse_warc_date(rec.rec_headers.get_header("WARC-Date"), stats)
        if crawl_time is None:
            stats["responses.failed.bad_warc_date"] += 1
            continue
        try:
            body = rec.content_stream().read(cfg.max_page_bytes + 1)
        except Exception as exc:  # noqa: BLE001 - broken chunking, bad content encoding, ...
            stats["responses.failed.unreadable_payload"] += 1
            stats[f"info.error.{type(exc).__name__}"] += 1
            continue
        if len(body) > cfg.max_page_bytes:
            stats["responses.dropped.page_too_large"] += 1
            continue
        stats["responses.kept"] += 1
        html = html_for_parser(body, ctype, stats)
        yield image_rows(html, page_url, stats, (crawl_time, snapshot, warc_file, offset))


def extract_file(path: str, stats: ExtractStats, cfg: ExtractConfig = ExtractConfig(),
                 opener=None) -> Iterator[tuple]:
    """Rows of one file named in a manifest, lazily; a missing or unreadable file is counted, not raised."""
    return itertools.chain.from_iterable(_file_pages(path, stats, cfg, opener))


def _file_pages(path: str, stats: ExtractStats, cfg: ExtractConfig, opener) -> Iterator[list[tuple]]:
    stats.inc("files", "input")
    try:
        fh = opener(path) if opener else open(path, "rb")
    except FileNotFoundError:
        stats.inc("files", "failed.missing")
        return
    except OSError as exc:
        stats.inc("files", "failed.unreadable")
        stats[f"info.error.{type(exc).__name__}"] += 1
        return
    with fh:
        yield from _stream_pages(fh, path, stats, cfg)
