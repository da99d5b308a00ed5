"""Image-text candidates from WARC/ARC or WAT files: one row per (image URL, text) pair of an HTML page.

The pure core of the timestamp join: `extract_file` reads one file and yields rows; the
Spark job maps it over partitions and `tic-extract` runs it in one process. This module composes
the WARC reader (`curation/warc_reader.py`: records, damage, dates, accounting) and the HTML
image rules (`curation/html_images.py`: charsets, <img> URLs and alt text). A row has the columns
of `ticcore.schemas.CANDIDATES`.

Two pair rule sets (`ExtractConfig.pair_rules`) and two inputs (`ExtractConfig.input_format`):
- "datacomp" (the default): DataComp's CommonPool rules (`curation/datacomp_rules.py`), as
  ia-web-commons wrote the WAT links (`iipc/webarchive-commons`,
  `org/archive/resource/html/ExtractingParseObserver.java`: `<img src>` with alt as written, no
  entity decoding, no whitespace change, no srcset/lazy attributes, last `<base href>`) and
  cc2dataset read them (`rom1504/cc2dataset`, `cc2dataset/main.py`: `IMG@/src` links with a
  non-empty alt; http(s) URLs kept byte for byte, others joined to the page URL or its base).
  Every HTML response counts, whatever its HTTP status. From WARC input the page is decoded by the
  charset rules of `curation/html_images.py` and its raw tags scanned (`datacomp_rules.img_links`;
  an `<img>` without src is counted as dropped `no_src`); from WAT input (`curation/wat_reader.py`)
  the `Links` of each metadata record are taken as they are.
- "html5" (WARC input only: a WAT holds raw links, not pages): the project's own rules
  (`curation/html_images.py`): an HTML5 parse (lexbor), entities decoded, alt whitespace
  collapsed, lazy attributes and srcset read, URLs normalised; only responses with HTTP status
  200 are parsed.
Rules of both (documented contract; the readers' and the rule sets' own are in their modules):
- Only `response` records with an HTML content type (`text/html`, `application/xhtml+xml`) are
  parsed. Chunked transfer and content encodings are undone by warcio (which also copes with
  headers that lie about them).
- Snapshot: `isPartOf` of the file's warcinfo if it is a `CC-MAIN-YYYY-WW` id, else the first
  such id in the file path, else null. (WAT input: the id in the WAT file's path first, as a WAT's
  own warcinfo describes the WAT, then its warcinfo's isPartOf.)
- Size: a page whose payload exceeds `max_page_bytes` is skipped (counted), as Common Crawl
  itself truncates payloads at 1 MiB.

Every input is accounted for, stage by stage (see `curation.warc_reader.ExtractStats`).
"""
from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass
from typing import Iterator

from curation.datacomp_rules import img_links, link_rows, page_base
from curation.html_images import decode_html, html_for_parser, image_rows
from curation.warc_reader import READERS, ExtractStats, iter_records, looks_like_warc, parse_warc_date
from curation.wat_reader import ISPARTOF_RE as _ISPARTOF_RE
from curation.wat_reader import SNAPSHOT_RE, wat_pages
from ticcore.errors import InputError

HTML_TYPES = ("text/html", "application/xhtml")
PAIR_RULES = ("datacomp", "html5")
INPUT_FORMATS = ("warc", "wat")  # ARC files count as warc


@dataclass(frozen=True)
class ExtractConfig:
    max_page_bytes: int = 5 << 20
    reader: str = "warcio"  # or "fastwarc": the same rows and counts, faster (see iter_records); WARC input only
    pair_rules: str = "datacomp"  # or "html5" (WARC input only; see the module docstring)
    input_format: str = "warc"  # or "wat": Common Crawl's WAT files (datacomp rules only)

    def __post_init__(self):
        if self.reader not in READERS:
            raise InputError(f"reader must be one of {', '.join(READERS)}, not {self.reader!r}")
        if self.pair_rules not in PAIR_RULES:
            raise InputError(f"pair rules must be one of {', '.join(PAIR_RULES)}, not {self.pair_rules!r}")
        if self.input_format not in INPUT_FORMATS:
            raise InputError(f"input format must be one of {', '.join(INPUT_FORMATS)}, not {self.input_format!r}")
        if self.input_format == "wat" and self.pair_rules != "datacomp":
            raise InputError(f"WAT input takes the datacomp pair rules only, not {self.pair_rules!r}: "
                             "a WAT file holds a page's raw links, not the page the other rules parse")
        if self.input_format == "wat" and self.reader != "warcio":
            raise InputError(f"reader {self.reader!r} reads WARC input only: WAT files have their own "
                             "reader (leave --reader at its default)")

    # Derived values, in one place.
    @property
    def html5(self) -> bool:
        """The html5 rules: status-200 pages only, rows by `html_images.image_rows`."""
        return self.pair_rules == "html5"

    @property
    def wat(self) -> bool:
        return self.input_format == "wat"


def add_rule_args(p: argparse.ArgumentParser) -> None:
    """--input-format and --pair-rules, shared with the Spark job."""
    p.add_argument("--input-format", choices=INPUT_FORMATS, default="warc",
                   help="warc: WARC/ARC files (default); wat: Common Crawl WAT files (datacomp rules only)")
    p.add_argument("--pair-rules", choices=PAIR_RULES, default="datacomp",
                   help="datacomp: DataComp's CommonPool rules (ia-web-commons links, cc2dataset's filters; the "
                        "default); html5: an HTML5 parse with decoded, whitespace-collapsed alts, lazy/srcset "
                        "URLs and status-200 pages only (WARC input only)")


# Both readers below hand out rows through itertools.chain, one list per page: the rows then
# pass to the caller in C, where a generator resumed for every row cost about as much as making it.

def extract_stream(fh, warc_file: str, stats: ExtractStats, cfg: ExtractConfig = ExtractConfig()) -> Iterator[tuple]:
    """Rows (page_url, url, text, crawl_time, snapshot, warc_file, warc_offset) of one open file
    (counted in the `files` stage as kept, or failed if it is not a WARC/ARC file), lazily."""
    return itertools.chain.from_iterable(_stream_pages(fh, warc_file, stats, cfg))


def datacomp_page_rows(body: bytes, content_type: str, page_url: str, stats: ExtractStats, tail: tuple) -> list[tuple]:
    """Rows (page_url, url, text, *tail) of one HTML page under DataComp's rules; every <img> is
    counted in the `images` stage (one without a src as dropped `no_src`)."""
    links, base_href, n_img = img_links(decode_html(body, content_type, stats))
    if n_img > len(links):
        stats["images.input"] += n_img - len(links)
        stats["images.dropped.no_src"] += n_img - len(links)
    return link_rows(links, page_base(page_url, base_href), page_url, tail, stats)


def _stream_pages(fh, warc_file: str, stats: ExtractStats, cfg: ExtractConfig) -> Iterator[list[tuple]]:
    if cfg.wat:
        yield from wat_pages(fh, warc_file, stats)
        return
    if not looks_like_warc(fh):
        stats.inc("files", "failed.not_a_warc_file")
        return
    stats.inc("files", "kept")
    m = SNAPSHOT_RE.search(warc_file)
    path_snapshot = m.group(0) if m else None
    snapshot = path_snapshot
    html5 = cfg.html5
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
        if html5 and http.get_statuscode() != "200":
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
        if html5:
            html = html_for_parser(body, ctype, stats)
            yield image_rows(html, page_url, stats, (crawl_time, snapshot, warc_file, offset))
        else:
            yield datacomp_page_rows(body, ctype, page_url, stats, (crawl_time, snapshot, warc_file, offset))


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
