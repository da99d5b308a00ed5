"""Reading Common Crawl WAT files: DataComp's pairs from the links ia-web-commons wrote.

A WAT file is a per-record-gzip WARC file: a warcinfo record, then one `metadata` record per
record of the WARC file it describes, whose block is JSON (`iipc/webarchive-commons`,
`org/archive/resource/*`; the shared real file `whirlwind.warc.wat.gz` and the sample web's WATs
show the layout). DataComp's CommonPool was read from these by cc2dataset (`rom1504/cc2dataset`,
`cc2dataset/main.py`). Rules (documented contract):
- Records: gzip members are read, CRC-checked and skipped when damaged exactly as for WARC input
  (`curation.warc_reader._gzip_members`: `records.failed.corrupt_gzip_member`, a member cut off
  by the end of the file is read for what it holds); a member that is not a WARC record fails as
  `records.failed.unparseable_record`. Only `metadata` records are read further (and the warcinfo,
  for `isPartOf`); the others are counted (`info.record_type.*`).
- Every metadata record is an input of the `responses` stage:
  - `dropped.no_img_links`: its JSON text holds no `IMG@` (so no `IMG@/src` link, written as such or
    with an escaped slash): it cannot give a pair and is not parsed (the fast path; most metadata
    records describe requests and crawl metadata, and text without links);
  - `failed.bad_json`: its block is not a JSON object with an `Envelope.WARC-Header-Metadata`
    object (a body cut short, text that is not UTF-8). JSON is read strictly by RFC 8259
    (cc2dataset's simdjson is strict too): `NaN`/`Infinity`, lone surrogate escapes (`\\ud800`)
    and nesting deeper than 1024 are bad JSON (the stdlib's json took the first two and raised
    on the third); an integer beyond 64 bits is read as a float. Two readers, one result: msgspec
    reads the parts the rules use into typed structs and skips the rest without building it
    (`_fast_fields`, about twice as fast on real-sized records); orjson reads any record msgspec
    rejects or holds in an unusual shape (`_reference_fields`), so bad JSON and odd values are
    always judged by orjson. One difference is left: a number literal beyond a double's range
    (`1e400`) in a part the rules do not read does not make the record bad JSON, where orjson (and
    simdjson) reject it. ia-web-commons writes its values as strings (`HTMLMetaData.java` puts
    Strings; `Offset` is one too, `Compressed` a boolean), so its WATs hold no such literal;
    `tests/test_wat.py` checks the two readers against each other;
  - `dropped.not_a_response`: it describes a record other than a `response` (request, metadata, ...);
  - `dropped.non_http_payload`: no `HTTP-Response-Metadata`, or a target URI that is not http(s);
  - `dropped.non_html`: no `HTML-Metadata` (ia-web-commons found no HTML page);
  - `dropped.no_links`: HTML without a `Links` list;
  - `failed.bad_warc_date`: the capture date (`WARC-Header-Metadata.WARC-Date`) is not a crawl
    time (`curation.warc_reader.parse_warc_date`);
  - `kept`: its `IMG@/src` links go through `datacomp_rules.link_rows`' rules with base
    `page_base(WARC-Target-URI, Head.Base)`, each link counted in the `images` stage.
- Row columns: page_url = `WARC-Header-Metadata.WARC-Target-URI`, crawl_time = its `WARC-Date`
  (the capture time; NOT the WAT record's own WARC-Date, the day the WAT was written, weeks
  later), warc_file = `Container.Filename`, warc_offset = int(`Container.Offset`) (a string in
  real WATs; null if missing or not a number, counted `info.bad_container_offset`), snapshot =
  the `CC-MAIN-YYYY-WW` id in the WAT file's path, else the WAT warcinfo's `isPartOf`, else null.
"""
from __future__ import annotations

import re
from typing import Iterator

import msgspec
import orjson

from curation.datacomp_rules import link_rows, page_base
from curation.warc_reader import _GZIP_MAGIC, ExtractStats, _gzip_members, looks_like_warc, parse_warc_date

SNAPSHOT_RE = re.compile(r"CC-MAIN-\d{4}-\d{2}")
ISPARTOF_RE = re.compile(r"isPartOf:\s*(" + SNAPSHOT_RE.pattern + ")")
_WARC_TYPE = re.compile(rb"\r\nWARC-Type:[ \t]*([A-Za-z-]+)", re.I)
_CONTENT_LENGTH = re.compile(rb"\r\nContent-Length:[ \t]*(\d+)", re.I)
_HTTP = ("http://", "https://")


def iter_metadata(fh, stats: ExtractStats, path_snapshot: str | None) -> Iterator[tuple[bytes, int, str | None]]:
    """(member, where its block starts, snapshot) of every readable metadata record of a gzipped WAT
    file whose block holds `IMG@`; every record counted in the `records` stage, and every metadata
    record as an input of the `responses` stage (those without `IMG@` as dropped `no_img_links`).
    The block runs to the member's end: the record separator after it is JSON whitespace."""
    snapshot = path_snapshot
    # The per-record counts are kept here and added to stats once (in `finally`: also when the
    # caller stops early); a Counter update per record cost more than the test that decides it.
    n_members = n_truncated = n_metadata = n_no_img = 0
    try:
        for _offset, member, truncated in _gzip_members(fh, stats):
            n_members += 1
            if truncated:
                n_truncated += 1
            head_end = member.find(b"\r\n\r\n")
            # WARC-Type is usually the first header: try the first line break before searching them all
            m = _WARC_TYPE.match(member, member.find(b"\r\n"), head_end) or _WARC_TYPE.search(member, 0, head_end) \
                if head_end > 0 else None
            if m is None or not member.startswith(b"WARC/"):
                stats["records.failed.unparseable_record"] += 1
                continue
            rec_type = m.group(1)
            if rec_type == b"metadata":
                n_metadata += 1
                if member.find(b"IMG@", head_end + 4) < 0:
                    n_no_img += 1
                else:
                    yield member, head_end + 4, snapshot
                continue
            stats["records.kept"] += 1
            stats["info.record_type." + rec_type.decode("ascii", "replace")] += 1
            if rec_type == b"warcinfo" and snapshot is None:
                n = _CONTENT_LENGTH.search(member, 0, head_end)
                block = member[head_end + 4:head_end + 4 + int(n.group(1)) if n else len(member)]
                found = ISPARTOF_RE.search(block.decode("utf-8", "replace"))
                snapshot = found.group(1) if found else None
    finally:
        for key, n in (("records.input", n_members), ("info.truncated_record", n_truncated),
                       ("records.kept", n_metadata), ("info.record_type.metadata", n_metadata),
                       ("responses.input", n_metadata), ("responses.dropped.no_img_links", n_no_img)):
            if n:
                stats[key] += n


# The parts of a metadata record the rules read, as msgspec structs: msgspec skips every other part
# (headers, metas, anchors' text: most of a real record) without building it, where orjson builds the
# whole document as dicts. A value the rules read is a string or missing in every record ia-web-commons
# writes; anything else there (a number, an object where a string belongs, a list where an object
# belongs) fails validation, and the record is then read by `_reference_fields`, whose checks decide.
class _Link(msgspec.Struct):
    path: str | None = None
    url: str | None = None
    alt: str | None = None


class _Head(msgspec.Struct):
    base: str | None = msgspec.field(default=None, name="Base")


class _Html(msgspec.Struct):
    head: _Head | None = msgspec.field(default=None, name="Head")
    links: list[_Link] | None = msgspec.field(default=None, name="Links")


class _Http(msgspec.Struct):
    html: _Html | None = msgspec.field(default=None, name="HTML-Metadata")


class _Payload(msgspec.Struct):
    http: _Http | None = msgspec.field(default=None, name="HTTP-Response-Metadata")


class _WarcHeaders(msgspec.Struct):
    warc_type: str | None = msgspec.field(default=None, name="WARC-Type")
    target_uri: str | None = msgspec.field(default=None, name="WARC-Target-URI")
    date: str | None = msgspec.field(default=None, name="WARC-Date")


class _Envelope(msgspec.Struct):
    headers: _WarcHeaders = msgspec.field(name="WARC-Header-Metadata")
    payload: _Payload | None = msgspec.field(default=None, name="Payload-Metadata")


class _Container(msgspec.Struct):
    filename: str | None = msgspec.field(default=None, name="Filename")
    offset: str | None = msgspec.field(default=None, name="Offset")


class _Record(msgspec.Struct):
    envelope: _Envelope = msgspec.field(name="Envelope")
    container: _Container | None = msgspec.field(default=None, name="Container")


_DECODE_RECORD = msgspec.json.Decoder(_Record).decode
_NO_HTTP, _NO_HTML, _NO_LINKS = "non_http", "non_html", "no_links"


def _fast_fields(block: memoryview) -> tuple | None:
    """`_reference_fields` of a record, read by msgspec; None where msgspec cannot tell it the same way
    (JSON it rejects, a part of another type than the structs above), and the reference must read it.
    msgspec does not check the UTF-8 of the strings it skips, so the block's is checked here; it does
    not range-check the numbers it skips either (see the module docstring)."""
    try:
        record = _DECODE_RECORD(block)
        if not block.obj.isascii():
            str(block, "utf-8")
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError):
        return None
    envelope, container = record.envelope, record.container
    headers = envelope.headers
    if headers.warc_type != "response":
        return ("not_response",)
    http = envelope.payload.http if envelope.payload is not None else None
    html = None if http is None else http.html
    links = None if html is None else html.links
    missing = _NO_HTTP if http is None else _NO_HTML if html is None else _NO_LINKS if links is None else None
    img = None if missing else [(link.url, link.alt) for link in links
                                if link.path == "IMG@/src" and link.url is not None]
    head = None if html is None else html.head
    return ("response", headers.target_uri, headers.date, missing, img, None if head is None else head.base,
            None if container is None else container.filename, None if container is None else container.offset)


def _reference_fields(block: memoryview) -> tuple | None:
    """The parts of a record the rules read, by orjson (every record msgspec does not read): ("not_response",)
    or ("response", target URI, capture date, None or why there are no links, the IMG@/src (url, alt)
    links, Head.Base, Container.Filename, Container.Offset), values as the JSON holds them; None for bad
    JSON."""
    try:
        doc = orjson.loads(block)
        whm = doc["Envelope"]["WARC-Header-Metadata"]
        if type(whm) is not dict:
            raise TypeError
    except (ValueError, KeyError, TypeError):  # orjson.JSONDecodeError (bad UTF-8 too) is a ValueError
        return None
    if whm.get("WARC-Type") != "response":
        return ("not_response",)
    payload = doc["Envelope"].get("Payload-Metadata")
    http = payload.get("HTTP-Response-Metadata") if type(payload) is dict else None
    html = http.get("HTML-Metadata") if type(http) is dict else None
    links = html.get("Links") if type(html) is dict else None
    missing = (_NO_HTTP if type(http) is not dict else _NO_HTML if type(html) is not dict
               else _NO_LINKS if type(links) is not list else None)
    img = None if missing else [
        (url, alt if (alt := link.get("alt")) is None or type(alt) is str else str(alt))
        for link in links if type(link) is dict and link.get("path") == "IMG@/src" and type(url := link.get("url")) is str]
    head = html.get("Head") if type(html) is dict else None
    container = doc.get("Container")
    container = container if type(container) is dict else {}
    return ("response", whm.get("WARC-Target-URI"), whm.get("WARC-Date"), missing, img,
            head.get("Base") if type(head) is dict else None, container.get("Filename"), container.get("Offset"))


def record_rows(member: bytes, start: int, snapshot: str | None, stats: ExtractStats) -> list[tuple]:
    """Rows (page_url, url, text, crawl_time, snapshot, warc_file, warc_offset) of one metadata
    record whose JSON block, member[start:], holds `IMG@` (counted as a `responses` input by
    `iter_metadata`), counted in the `responses` and `images` stages."""
    block = memoryview(member)[start:]  # (a view: no copy of the block)
    fields = _fast_fields(block) or _reference_fields(block)
    if fields is None:
        stats["responses.failed.bad_json"] += 1
        return []
    if fields[0] == "not_response":
        stats["responses.dropped.not_a_response"] += 1
        return []
    _, page_url, date, missing, img, base_href, warc_file, offset = fields
    page_url = page_url.strip().strip("<>") if type(page_url) is str else ""
    if missing == _NO_HTTP or not page_url.lower().startswith(_HTTP):
        stats["responses.dropped.non_http_payload"] += 1
        return []
    if missing == _NO_HTML:
        stats["responses.dropped.non_html"] += 1
        return []
    if missing == _NO_LINKS:
        stats["responses.dropped.no_links"] += 1
        return []
    crawl_time = parse_warc_date(date if type(date) is str else None, stats)
    if crawl_time is None:
        stats["responses.failed.bad_warc_date"] += 1
        return []
    stats["responses.kept"] += 1
    try:
        offset = int(offset)
    except (TypeError, ValueError):
        offset = None
        stats["info.bad_container_offset"] += 1
    base = page_base(page_url, base_href if type(base_href) is str else None)
    # The IMG@/src links with a string URL (an alt that is not a string is read as its text), through
    # the same rules as a page's links from WARC input.
    return link_rows(img, base, page_url, (crawl_time, snapshot, warc_file if type(warc_file) is str else None,
                                           offset), stats)


def wat_pages(fh, wat_file: str, stats: ExtractStats) -> Iterator[list[tuple]]:
    """A list of rows per metadata record of one open WAT file (counted in the `files` stage as
    kept, or failed `not_a_wat_file` if it is not a gzipped WARC file)."""
    head = fh.read(3)
    fh.seek(0)
    if head != _GZIP_MAGIC or not looks_like_warc(fh):
        stats.inc("files", "failed.not_a_wat_file")
        return
    stats.inc("files", "kept")
    m = SNAPSHOT_RE.search(wat_file)
    for member, start, snapshot in iter_metadata(fh, stats, m.group(0) if m else None):
        yield record_rows(member, start, snapshot, stats)
