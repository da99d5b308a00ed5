"""Image-text candidates from WARC/ARC files: one row per usable <img> on an HTML page.

The pure core of the timestamp join: `extract_file` reads one file and yields rows; the
Spark job maps it over partitions and `tic-extract` runs it in one process.

Rules (documented contract):
- Only `response` records with an HTTP status of 200 and an HTML content type
  (`text/html`, `application/xhtml+xml`) are parsed. Chunked transfer and content
  encodings are undone by warcio (which also copes with headers that lie about them).
- Text: the body is decoded by the charset of the HTTP header, else of a `<meta>` tag in
  the first 4 KiB, else sniffed (UTF-8 if valid, then charset-normalizer), else windows-1252
  with replacement. HTML5 aliases apply (ISO-8859-1 and ASCII read as windows-1252, GB2312 as GBK).
- URL of an <img>: the first usable value of `src`, `data-src`, `data-lazy-src`,
  `data-original`, the largest candidate of `srcset`, the largest of `data-srcset`
  (largest = highest `w`, else highest `x` density). A value is usable unless empty or a
  `data:`/`javascript:` URL. It is resolved against `<base href>` (itself resolved against
  the page URL) or the page URL, and kept only if it is an http(s) URL with a host.
- Text of an <img>: its `alt`, entity-decoded by the parser, whitespace-normalised
  (`" ".join(alt.split())`); "" when missing.
- Time: `WARC-Date` (ARC: the 14-digit archive date). A date that is not ISO 8601 but starts
  with YYYY-MM (ClueWeb09 writes `2008-10-294T05:21:46-0700`) is read leniently as the first
  second of that month and counted; anything else fails the record.
- Snapshot: `isPartOf` of the file's warcinfo if it is a `CC-MAIN-YYYY-WW` id, else the first
  such id in the file path, else null.
- Damage: gzip members are decompressed and CRC-checked one by one before parsing; a damaged
  member is skipped (counted) and reading resumes at the next gzip member header. A member cut
  off by the end of the file is parsed for what it holds and counted as truncated.
- Size: a page whose payload exceeds `max_page_bytes` is skipped (counted), as Common Crawl
  itself truncates payloads at 1 MiB.

Every input is accounted for, stage by stage (see `ExtractStats`).
"""
from __future__ import annotations

import datetime as dt
import io
import re

from isal import isal_zlib as zlib  # a drop-in for zlib; its inflate is ~2x faster
from collections import Counter
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import urljoin, urlsplit

SNAPSHOT_RE = re.compile(r"CC-MAIN-\d{4}-\d{2}")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_LENIENT_DATE = re.compile(r"^(\d{4})-(\d{2})")
_GZIP_MAGIC = b"\x1f\x8b\x08"
_WARC_TYPE = re.compile(rb"\r\nWARC-Type:[ \t]*([A-Za-z-]+)", re.I)
_PARSED_TYPES = (b"response", b"warcinfo")
_READ = 1 << 20
_FEED = 16 << 10
HTML_TYPES = ("text/html", "application/xhtml")
CHARSET_ALIASES = {"iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252",
                   "ascii": "cp1252", "iso8859-1": "cp1252", "gb2312": "gbk", "x-gbk": "gbk"}
LAZY_ATTRS = ("data-src", "data-lazy-src", "data-original")

# Stage -> the outcomes it may end in; kept + dropped + failed must equal the stage's input.
STAGES = ("files", "records", "responses", "images")

ROW_FIELDS = ("page_url", "url", "text", "crawl_time", "snapshot", "warc_file", "warc_offset")


@dataclass(frozen=True)
class ExtractConfig:
    max_page_bytes: int = 5 << 20


class ExtractStats(Counter):
    """Flat counters `<stage>.<input|kept|dropped.REASON|failed.REASON>` plus info counters."""

    def inc(self, stage: str, outcome: str, n: int = 1) -> None:
        self[f"{stage}.{outcome}"] += n

    def nested(self) -> dict:
        return nest_stats(self)


def nest_stats(flat: dict) -> dict:
    out: dict = {}
    for key, value in sorted(flat.items()):
        parts = key.split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = int(value)
    return out


def accounting_errors(flat: dict) -> list[str]:
    """Stages whose kept + dropped + failed differs from their input (empty list = all add up)."""
    errors = []
    for stage in STAGES:
        total = flat.get(f"{stage}.input", 0)
        parts = sum(v for k, v in flat.items()
                    if k == f"{stage}.kept" or k.startswith(f"{stage}.dropped.") or k.startswith(f"{stage}.failed."))
        if parts != total:
            errors.append(f"{stage}: input {total} != kept+dropped+failed {parts}")
    return errors


# ---------------------------------------------------------------------------- helpers

def parse_warc_date(value: str | None, stats: ExtractStats) -> dt.datetime | None:
    if not value:
        return None
    text = value.strip()
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.timezone.utc)
        return t.astimezone(dt.timezone.utc)
    except ValueError:
        pass
    m = _LENIENT_DATE.match(text)
    if m and 1 <= int(m.group(2)) <= 12:
        stats["info.lenient_warc_date"] += 1
        return dt.datetime(int(m.group(1)), int(m.group(2)), 1, tzinfo=dt.timezone.utc)
    return None


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = CHARSET_ALIASES.get(label, label)
    import codecs

    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def decode_html(body: bytes, content_type: str, stats: ExtractStats) -> str:
    m = _HEADER_CHARSET.search(content_type or "")
    codec = _codec(m.group(1)) if m else None
    if codec:
        stats["info.charset.header"] += 1
        return body.decode(codec, errors="replace")
    m = _META_CHARSET.search(body[:4096])
    codec = _codec(m.group(1).decode("ascii", "ignore")) if m else None
    if codec:
        stats["info.charset.meta"] += 1
        return body.decode(codec, errors="replace")
    try:
        text = body.decode("utf-8")
        stats["info.charset.sniffed_utf8"] += 1
        return text
    except UnicodeDecodeError:
        pass
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(body[:65536]).best()
        if best is not None and best.encoding:
            stats["info.charset.sniffed"] += 1
            return body.decode(best.encoding, errors="replace")
    except Exception:  # pragma: no cover - sniffing is best effort
        pass
    stats["info.charset.fallback"] += 1
    return body.decode("cp1252", errors="replace")


def best_srcset_candidate(value: str) -> str:
    """The largest candidate of a srcset value ('' if none)."""
    best, best_w, best_x = "", -1.0, -1.0
    for part in value.split(","):
        bits = part.split()
        if not bits:
            continue
        url, w, x = bits[0], -1.0, 1.0
        for d in bits[1:]:
            try:
                if d.endswith("w"):
                    w = float(d[:-1])
                elif d.endswith("x"):
                    x = float(d[:-1])
            except ValueError:
                pass
        if (w, x) > (best_w, best_x):
            best, best_w, best_x = url, w, x
    return best


def _is_unusable(value: str) -> bool:
    low = value[:11].lower()
    return not value or low.startswith("data:") or low.startswith("javascript:")


def pick_src(attrs: dict) -> tuple[str | None, str]:
    """(raw URL or None, drop reason when None) by the documented attribute order."""
    src = (attrs.get("src") or "").strip()
    if src[:4].lower() == "http":
        return src, ""
    for value in (src, *((attrs.get(a) or "").strip() for a in LAZY_ATTRS)):
        if not _is_unusable(value):
            return value, ""
    for attr in ("srcset", "data-srcset"):
        value = best_srcset_candidate(attrs.get(attr) or "")
        if not _is_unusable(value):
            return value, ""
    if "src" not in attrs or attrs.get("src") is None:
        return None, "no_src"
    if not src:
        return None, "empty_src"
    return None, "data_uri" if src[:5].lower() == "data:" else "javascript_src"


_PLAIN_ABSOLUTE = re.compile(r"https?://[A-Za-z0-9.-]+(?::\d{1,5})?(?:[/?#][^\s\\]*)?")


def resolve_url(base: str, raw: str) -> tuple[str | None, str]:
    if _PLAIN_ABSOLUTE.fullmatch(raw):
        return raw, ""  # already absolute, with a well-formed host: nothing to resolve
    try:
        url = urljoin(base, raw)
        parts = urlsplit(url)
        parts.port  # raises ValueError on a malformed port
    except ValueError:
        return None, "unparseable_url"
    if parts.scheme not in ("http", "https"):
        return None, "unsupported_scheme"
    if not parts.hostname:
        return None, "unparseable_url"
    return url, ""


def page_images(html: str, page_url: str, stats: ExtractStats) -> list[tuple[str, str]]:
    """(url, text) for every usable <img> of a page; every <img> is counted."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    base = page_url
    for base_node in tree.tags("base"):
        href = (base_node.attributes.get("href") or "").strip()
        if href:  # the first <base> with an href counts, as in browsers
            resolved, _ = resolve_url(page_url, href)
            base = resolved or page_url
            break
    out = []
    seen = 0
    plain = _PLAIN_ABSOLUTE.fullmatch
    for node in tree.tags("img"):
        seen += 1
        attrs = node.attributes
        src = attrs.get("src")
        if src and plain(src):  # the common case: an absolute http(s) src, nothing to resolve
            url = src
        else:
            raw, reason = pick_src(attrs)
            if raw is None:
                stats["images.dropped." + reason] += 1
                continue
            url, reason = resolve_url(base, raw)
            if url is None:
                stats["images.dropped." + reason] += 1
                continue
        alt = attrs.get("alt")
        out.append((url, " ".join(alt.split()) if alt else ""))
    stats["images.input"] += seen
    stats["images.kept"] += len(out)
    return out


# ---------------------------------------------------------------------------- reading records

class _Headers:
    """Just enough of warcio's StatusAndHeaders for the extractor: headers are looked up lazily."""

    __slots__ = ("status", "head", "_cache")

    def __init__(self, status: str, head: bytes):
        self.status, self.head, self._cache = status, head, {}

    def get_header(self, name: str, default=None):
        key = name.lower()
        if key not in self._cache:
            m = re.search(rb"\r\n" + re.escape(key.encode()) + rb"[ \t]*:[ \t]*([^\r\n]*)", self.head, re.I)
            self._cache[key] = m.group(1).decode("utf-8", "replace").strip() if m else None
        value = self._cache[key]
        return default if value is None else value

    def get_statuscode(self) -> str:
        return self.status


class _FastRecord:
    """A WARC record parsed without warcio, for the common case (see `_fast_parse`)."""

    __slots__ = ("rec_type", "rec_headers", "http_headers", "_payload")

    def __init__(self, rec_type, rec_headers, http_headers, payload):
        self.rec_type, self.rec_headers, self.http_headers, self._payload = rec_type, rec_headers, http_headers, payload

    def content_stream(self):
        return io.BytesIO(self._payload)


def _fast_parse(member: bytes):
    """A `response` or `warcinfo` WARC record whose payload needs no undoing; None to let warcio
    handle the rest (ARC, transfer/content encodings, HTTP quirks)."""
    if not member.startswith(b"WARC/"):
        return None
    head_end = member.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    rec_headers = _Headers("", member[:head_end])
    try:
        length = int(rec_headers.get_header("content-length", ""))
    except ValueError:
        return None
    block = member[head_end + 4: head_end + 4 + length]
    rec_type = rec_headers.get_header("warc-type", "")
    if rec_type != "response":
        return _FastRecord(rec_type, rec_headers, None, block) if rec_type == "warcinfo" else None
    if not rec_headers.get_header("content-type", "").startswith("application/http"):
        return _FastRecord(rec_type, rec_headers, None, block)
    http_end = block.find(b"\r\n\r\n")
    if http_end < 0 or block.count(b"\n", 0, http_end) != block.count(b"\r\n", 0, http_end):
        return None  # no head, or bare-LF line ends somewhere: warcio's lenient parser decides
    first_line, _, rest = block[:http_end].partition(b"\r\n")
    bits = first_line.split(None, 2)
    if len(bits) < 2 or not bits[0].startswith(b"HTTP/") or not bits[1].isdigit():
        return None
    http = _Headers(bits[1].decode(), b"\r\n" + rest)
    if http.get_header("transfer-encoding") is not None or http.get_header("content-encoding", "identity") != "identity":
        return None
    return _FastRecord(rec_type, rec_headers, http, block[http_end + 4:])


class _Buffer:
    """A growing window over a file: `data[i]` is the byte at file offset `base + i`."""

    def __init__(self, fh):
        self.fh, self.data, self.base, self.eof = fh, b"", 0, False

    def fill(self) -> bool:
        if self.eof:
            return False
        more = self.fh.read(_READ)
        if not more:
            self.eof = True
            return False
        self.data += more
        return True

    def drop_before(self, pos: int) -> int:
        """Forget bytes before `pos` (keeps memory bounded); returns the new index of `pos`."""
        if pos > _READ:
            self.data = self.data[pos:]
            self.base += pos
            return 0
        return pos


def _gzip_members(fh, stats: ExtractStats) -> Iterator[tuple[int, bytes, bool]]:
    """(file offset, decompressed member, truncated?) for each readable gzip member.

    A member is yielded only after zlib has checked its CRC, or when the end of the file cut it
    off (then it holds what could be decompressed). A damaged member is counted once and reading
    resumes at the next gzip header that starts a readable member.
    """
    buf = _Buffer(fh)
    buf.fill()
    pos, damaged = 0, False
    while pos < len(buf.data) or buf.fill():
        pos = buf.drop_before(pos)
        d = zlib.decompressobj(31)
        out, fed_to = [], pos
        try:
            while True:
                # Feed small steps: whatever follows the member's end is copied into unused_data.
                if fed_to >= len(buf.data) and not buf.fill():
                    break
                step_end = min(len(buf.data), fed_to + _FEED)
                out.append(d.decompress(memoryview(buf.data)[fed_to:step_end]))
                fed_to = step_end
                if d.eof:
                    break
        except zlib.error:
            if not damaged:
                stats.inc("records", "input")
                stats.inc("records", "failed.corrupt_gzip_member")
            damaged = True
            nxt = buf.data.find(_GZIP_MAGIC, pos + 1)
            while nxt < 0:
                searched = max(pos + 1, len(buf.data) - 2)
                if not buf.fill():
                    return
                nxt = buf.data.find(_GZIP_MAGIC, searched)
            pos = nxt
            continue
        damaged = False
        if not d.eof:  # cut off by the end of the file
            yield buf.base + pos, b"".join(out) + d.flush(), True
            return
        end = fed_to - len(d.unused_data)
        yield buf.base + pos, b"".join(out), False
        pos = end


def iter_records(fh, stats: ExtractStats) -> Iterator[tuple[int, object]]:
    """(offset, warcio record) for every parseable record of a WARC or ARC file, gzipped or not."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.recordloader import ArcWarcRecordLoader

    head = fh.read(3)
    fh.seek(0)
    if head != _GZIP_MAGIC:
        it = ArchiveIterator(fh, arc2warc=True)
        try:
            for rec in it:
                stats.inc("records", "input")
                yield it.offset, rec  # (get_record_offset() would read the record to its end)
        except Exception as exc:  # noqa: BLE001 - damage in an uncompressed file ends it
            stats.inc("records", "input")
            stats.inc("records", "failed.unparseable_record")
            stats[f"info.error.{type(exc).__name__}"] += 1
        return
    loader = ArcWarcRecordLoader(arc2warc=True)
    for offset, member, truncated in _gzip_members(fh, stats):
        stats.inc("records", "input")
        if truncated:
            stats["info.truncated_record"] += 1
        # Requests, metadata, revisits, ... are only counted: skip warcio's full parse for them.
        m = _WARC_TYPE.search(member, 0, member.find(b"\r\n\r\n"))
        if m and m.group(1) not in _PARSED_TYPES and member.startswith(b"WARC/"):
            stats.inc("records", "kept")
            stats[f"info.record_type.{m.group(1).decode('ascii', 'replace')}"] += 1
            continue
        rec = _fast_parse(member)
        if rec is None:
            try:
                rec = loader.parse_record_stream(io.BytesIO(member))
            except Exception as exc:  # noqa: BLE001
                stats.inc("records", "failed.unparseable_record")
                stats[f"info.error.{type(exc).__name__}"] += 1
                continue
        yield offset, rec


# ---------------------------------------------------------------------------- one file

def looks_like_warc(fh) -> bool:
    """WARC or ARC, gzipped per record or plain (peeks, then rewinds)."""
    head = fh.read(4096)
    fh.seek(0)
    if head[:3] == _GZIP_MAGIC:
        try:
            head = zlib.decompressobj(31).decompress(head, 64)
        except zlib.error:
            return False
    return head.startswith((b"WARC/", b"filedesc://"))


def extract_stream(fh, warc_file: str, stats: ExtractStats, cfg: ExtractConfig = ExtractConfig()) -> Iterator[tuple]:
    """Rows (page_url, url, text, crawl_time, snapshot, warc_file, warc_offset) of one open file
    (counted in the `files` stage as kept, or failed if it is not a WARC/ARC file)."""
    if not looks_like_warc(fh):
        stats.inc("files", "failed.not_a_warc_file")
        return
    stats.inc("files", "kept")
    m = SNAPSHOT_RE.search(warc_file)
    path_snapshot = m.group(0) if m else None
    snapshot = path_snapshot
    for offset, rec in iter_records(fh, stats):
        rtype = rec.rec_type
        stats.inc("records", "kept")
        stats[f"info.record_type.{rtype}"] += 1
        if rtype == "warcinfo":
            try:
                body = rec.content_stream().read(65536).decode("utf-8", "replace")
            except Exception:  # noqa: BLE001
                body = ""
            m = re.search(r"isPartOf:\s*(" + SNAPSHOT_RE.pattern + ")", body)
            snapshot = m.group(1) if m else path_snapshot
            continue
        if rtype != "response":
            continue
        stats.inc("responses", "input")
        http = rec.http_headers
        page_url = (rec.rec_headers.get_header("WARC-Target-URI") or "").strip().strip("<>")
        if http is None or not page_url.lower().startswith(("http://", "https://")):
            stats.inc("responses", "dropped.non_http_payload")
            continue
        if http.get_statuscode() != "200":
            stats.inc("responses", "dropped.non_200_status")
            continue
        ctype = http.get_header("Content-Type") or ""
        if not ctype.strip().lower().startswith(HTML_TYPES):
            stats.inc("responses", "dropped.non_html")
            continue
        crawl_time = parse_warc_date(rec.rec_headers.get_header("WARC-Date"), stats)
        if crawl_time is None:
            stats.inc("responses", "failed.bad_warc_date")
            continue
        try:
            body = rec.content_stream().read(cfg.max_page_bytes + 1)
        except Exception as exc:  # noqa: BLE001 - broken chunking, bad content encoding, ...
            stats.inc("responses", "failed.unreadable_payload")
            stats[f"info.error.{type(exc).__name__}"] += 1
            continue
        if len(body) > cfg.max_page_bytes:
            stats.inc("responses", "dropped.page_too_large")
            continue
        stats.inc("responses", "kept")
        html = decode_html(body, ctype, stats)
        for url, text in page_images(html, page_url, stats):
            yield page_url, url, text, crawl_time, snapshot, warc_file, offset


def extract_file(path: str, stats: ExtractStats, cfg: ExtractConfig = ExtractConfig(),
                 opener=None) -> Iterator[tuple]:
    """Rows of one file named in a manifest; a missing or unreadable file is counted, not raised."""
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
        yield from extract_stream(fh, path, stats, cfg)
