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
  second of that month and counted; anything else, or a year outside 1990-2099, fails the
  response as `bad_warc_date`.
- Snapshot: `isPartOf` of the file's warcinfo if it is a `CC-MAIN-YYYY-WW` id, else the first
  such id in the file path, else null.
- Readers: `ExtractConfig.reader` "warcio" (the default) reads gzip members itself, with warcio
  for what needs it; "fastwarc" lets FastWARC read members and WARC heads where that gives the same
  records, and reads everything else as "warcio" does (see `_fastwarc_records`).
- Damage: gzip members are decompressed and CRC-checked one by one before parsing; a damaged
  member is skipped (counted) and reading resumes at the next gzip member header. A member cut
  off by the end of the file is parsed for what it holds and counted as truncated.
- Size: a page whose payload exceeds `max_page_bytes` is skipped (counted), as Common Crawl
  itself truncates payloads at 1 MiB.

Every input is accounted for, stage by stage (see `ExtractStats`).
"""
from __future__ import annotations

import codecs
import datetime as dt
import functools
import io
import itertools
import re

from isal import isal_zlib as zlib  # a drop-in for zlib; its inflate is ~2x faster
from collections import Counter
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import urljoin, urlsplit

# Imported once here: an import statement run for every page cost ~2% of the extraction.
from selectolax.lexbor import LexborHTMLParser

SNAPSHOT_RE = re.compile(r"CC-MAIN-\d{4}-\d{2}")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_LENIENT_DATE = re.compile(r"^(\d{4})-(\d{2})")
_GZIP_MAGIC = b"\x1f\x8b\x08"
_WARC_TYPE = re.compile(rb"\r\nWARC-Type:[ \t]*([A-Za-z-]+)", re.I)
_PARSED_TYPES = (b"response", b"warcinfo")
_READ = 1 << 20
_FEED = 4 << 10  # first feed step: request and metadata records compress to well under this
HTML_TYPES = ("text/html", "application/xhtml")
CHARSET_ALIASES = {"iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252",
                   "ascii": "cp1252", "iso8859-1": "cp1252", "gb2312": "gbk", "x-gbk": "gbk"}
LAZY_ATTRS = ("data-src", "data-lazy-src", "data-original")

# Stage -> the outcomes it may end in; kept + dropped + failed must equal the stage's input.
STAGES = ("files", "records", "responses", "images")

READERS = ("warcio", "fastwarc")

ROW_FIELDS = ("page_url", "url", "text", "crawl_time", "snapshot", "warc_file", "warc_offset")


@dataclass(frozen=True)
class ExtractConfig:
    max_page_bytes: int = 5 << 20
    reader: str = "warcio"  # or "fastwarc": the same rows and counts, faster (see iter_records)

    def __post_init__(self):
        if self.reader not in READERS:
            raise ValueError(f"reader must be one of {', '.join(READERS)}, not {self.reader!r}")


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

# Crawl times outside these years are bad dates, not crawls (the web, and web archives, start in
# the 1990s); the join also packs a crawl time into 52 bits of microseconds, which ends in 2112.
CRAWL_YEARS = range(1990, 2100)


def parse_warc_date(value: str | None, stats: ExtractStats) -> dt.datetime | None:
    """The WARC-Date as an aware UTC datetime; None if it is missing, unreadable or outside CRAWL_YEARS."""
    if not value:
        return None
    text = value.strip()
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.timezone.utc)
        t = t.astimezone(dt.timezone.utc)
        return t if t.year in CRAWL_YEARS else None
    except (ValueError, OverflowError):
        pass
    m = _LENIENT_DATE.match(text)
    if m and 1 <= int(m.group(2)) <= 12 and int(m.group(1)) in CRAWL_YEARS:
        stats["info.lenient_warc_date"] += 1
        return dt.datetime(int(m.group(1)), int(m.group(2)), 1, tzinfo=dt.timezone.utc)
    return None


@functools.lru_cache(maxsize=256)  # a handful of labels recur on every page (and lookup is slow)
def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = CHARSET_ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


@functools.lru_cache(maxsize=256)  # the same few Content-Type values recur on every page
def _header_codec(content_type: str) -> str | None:
    m = _HEADER_CHARSET.search(content_type)
    return _codec(m.group(1)) if m else None


# Codecs that read every byte of an all-ASCII body as that same character (no shift states, and
# no lead bytes below 0x80): the text of such a body is the body itself.
_ASCII_TRANSPARENT = frozenset((
    "utf-8", "cp1252", "cp1250", "cp1251", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258",
    *(f"iso8859-{i}" for i in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16)), "koi8-r", "koi8-u",
    "gbk", "gb18030", "big5", "euc_jp", "euc_kr", "shift_jis", "cp932", "cp949", "cp950"))


def decode_html(body: bytes, content_type: str, stats: ExtractStats) -> str:
    html = _html_for_parser(body, content_type, stats)
    return html if isinstance(html, str) else html.decode("utf-8")


def _html_for_parser(body: bytes, content_type: str, stats: ExtractStats) -> str | bytes:
    """The text of `decode_html`, or `body` itself where that text is exactly `body` read as
    UTF-8: the parser takes UTF-8 bytes as they are, and would only encode a str back to them."""
    codec = _header_codec(content_type or "")
    if codec:
        stats["info.charset.header"] += 1
        return _decode(body, codec)
    m = _META_CHARSET.search(body, 0, 4096)
    codec = _codec(m.group(1).decode("ascii", "ignore")) if m else None
    if codec:
        stats["info.charset.meta"] += 1
        return _decode(body, codec)
    if body.isascii() or _is_utf8(body):
        stats["info.charset.sniffed_utf8"] += 1
        return body
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


def _decode(body: bytes, codec: str) -> str | bytes:
    if body.isascii() and codec in _ASCII_TRANSPARENT or codec == "utf-8" and _is_utf8(body):
        return body
    return body.decode(codec, errors="replace")


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


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
    return not value or value[:11].lower().startswith(("data:", "javascript:"))


def pick_src(attrs: dict) -> tuple[str | None, str]:
    """(raw URL or None, drop reason when None) by the documented attribute order."""
    src = (attrs.get("src") or "").strip()
    if src[:4].lower() == "http" or not _is_unusable(src):
        return src, ""
    for attr in LAZY_ATTRS:
        value = attrs.get(attr)
        if value and not _is_unusable(value := value.strip()):
            return value, ""
    for attr in ("srcset", "data-srcset"):
        value = attrs.get(attr)
        if value and not _is_unusable(value := best_srcset_candidate(value)):
            return value, ""
    if "src" not in attrs or attrs.get("src") is None:
        return None, "no_src"
    if not src:
        return None, "empty_src"
    return None, "data_uri" if src[:5].lower() == "data:" else "javascript_src"


# An absolute http(s) URL that urljoin hands back unchanged whatever the base (if it can parse
# the base at all): printable ASCII only (strip() and urlsplit remove spaces and controls), a
# plain host without a port (a port may be out of range), no ';' in the path (urlparse splits off
# params and drops empty ones) and no empty '?' query or '#' fragment (urlunparse drops those).
# Anything else takes the full urljoin route; so does every URL on a page whose base urljoin
# cannot parse. (The classes list the allowed characters so that sre tests each with one lookup.)
_PLAIN_ABSOLUTE = re.compile(r"https?://[A-Za-z0-9.-]+"
                             r"(?:/[!-\"$-:<->@-~]*)?"  # path: printable ASCII but # ; ?
                             r"(?:\?[!-\"$-~]+)?"  # query: but #
                             r"(?:#[!-~]+)?")  # fragment


# A base whose scheme is http(s) and whose host part is ASCII without brackets, controls or
# spaces: urlsplit (CPython 3.11) raises only over brackets and non-ASCII hosts, so it parses
# this one for sure, and reads the scheme in lower case.
_PLAIN_BASE = re.compile(r"(https?)://[^/?#\[\]\x00-\x20\x7f-\U0010ffff]*(?:[/?#]|\Z)", re.I | re.A)


def _base_scheme(base: str) -> str | None:
    """The scheme urljoin reads from `base`, or None if it cannot parse it (then it fails for
    every value, absolute or not)."""
    m = _PLAIN_BASE.match(base)
    if m:  # the usual page URL, decided without urlsplit (a call per page was ~5% of the time)
        return m.group(1).lower()
    try:
        return urlsplit(base).scheme
    except ValueError:
        return None


def resolve_url(base: str, raw: str) -> tuple[str | None, str]:
    if _PLAIN_ABSOLUTE.fullmatch(raw) and _base_scheme(base) is not None:
        return raw, ""  # what urljoin and the checks below would give, without their cost
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


def page_images(html: str | bytes, page_url: str, stats: ExtractStats) -> list[tuple[str, str]]:
    """(url, text) for every usable <img> of a page (`html` is text, or UTF-8 bytes);
    every <img> is counted."""
    return [(row[1], row[2]) for row in _image_rows(html, page_url, stats, (None, None, None, None))]


def _image_rows(html: str | bytes, page_url: str, stats: ExtractStats, tail: tuple) -> list[tuple]:
    """`page_images` as rows (page_url, url, text, *tail), built in one go: a row per <img> is
    the hot loop of the whole extraction."""
    crawl_time, snapshot, warc_file, offset = tail
    tree = LexborHTMLParser(html)
    base = page_url
    for base_node in tree.tags("base"):
        href = (base_node.attributes.get("href") or "").strip()
        if href:  # the first <base> with an href counts, as in browsers
            resolved, _ = resolve_url(page_url, href)
            base = resolved or page_url
            break
    # Shortcuts for the usual srcs, each exactly what pick_src + resolve_url would give: a plain
    # absolute URL stays as it is, a plain scheme-relative one ("//host/...") gets the base's scheme.
    scheme = _base_scheme(base)
    plain = _PLAIN_ABSOLUTE.fullmatch if scheme in ("http", "https") else (lambda _: None)
    scheme_colon = f"{scheme}:"
    rows = []
    append = rows.append
    nodes = tree.tags("img")
    for node in nodes:
        attrs = node.attributes
        src = attrs.get("src")
        if src and plain(src):
            url = src
        elif src and src[:2] == "//" and plain(scheme_colon + src):
            url = scheme_colon + src
        else:
            url, reason = pick_src(attrs)
            if url is not None and not plain(url):
                url, reason = resolve_url(base, url)
            if url is None:
                stats["images.dropped." + reason] += 1
                continue
        alt = attrs.get("alt")
        if alt:
            # " ".join(alt.split()), skipped when it changes nothing: " " is the only whitespace
            # isprintable() lets through, so that is text without doubled or edge spaces.
            if not alt.isprintable() or "  " in alt or alt[0] == " " or alt[-1] == " ":
                alt = " ".join(alt.split())
        else:
            alt = ""
        append((page_url, url, alt, crawl_time, snapshot, warc_file, offset))
    stats["images.input"] += len(nodes)
    stats["images.kept"] += len(rows)
    return rows


# ---------------------------------------------------------------------------- reading records

# The header names the extractor asks for; one findall collects their lines from a head (far
# cheaper than a search per name, or than splitting every line). A name's value is that of the
# first line matching "\r\n<name>[ \t]*:", as a search for the name alone would find.
_KNOWN_HEADERS = frozenset(("content-length", "content-type", "warc-type", "warc-target-uri", "warc-date",
                            "transfer-encoding", "content-encoding"))
_KNOWN_HEADER_LINES = re.compile(
    rb"\r\n(" + b"|".join(n.encode() for n in sorted(_KNOWN_HEADERS)) + rb")[ \t]*:([^\r\n]*)", re.I)
_HEADER_PATTERNS: dict[str, re.Pattern] = {}


def _header_pattern(key: str) -> re.Pattern:
    pat = _HEADER_PATTERNS.get(key)
    if pat is None:
        pat = _HEADER_PATTERNS[key] = re.compile(rb"\r\n" + re.escape(key.encode()) + rb"[ \t]*:([^\r\n]*)", re.I)
    return pat


class _Headers:
    """Just enough of warcio's StatusAndHeaders for the extractor."""

    __slots__ = ("status", "head", "known")

    def __init__(self, status: str, head: bytes):
        self.status, self.head = status, head
        # The known headers (lower-case bytes name -> value), decoded once: the extractor asks for
        # most of them on every response.
        self.known = known = {}
        for name, value in _KNOWN_HEADER_LINES.findall(head):
            name = name.lower()
            if name not in known:
                known[name] = value.decode("utf-8", "replace").strip()

    def get_header(self, name: str, default=None):
        key = name.lower()
        if key in _KNOWN_HEADERS:
            value = self.known.get(key.encode())
        else:
            m = _header_pattern(key).search(self.head)
            value = m.group(1).decode("utf-8", "replace").strip() if m else None
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


def _fast_parse(member: bytes, head_end: int):
    """A `response` or `warcinfo` WARC record whose payload needs no undoing; None to let warcio
    handle the rest (ARC, transfer/content encodings, HTTP quirks). `head_end`: where the
    member's first blank line starts (-1 if none)."""
    if head_end < 0 or not member.startswith(b"WARC/"):
        return None
    rec_headers = _Headers("", member[:head_end])
    warc = rec_headers.known
    try:
        length = int(warc.get(b"content-length", ""))
    except ValueError:
        return None
    rec_type = warc.get(b"warc-type", "")
    if rec_type not in ("response", "warcinfo"):
        return None
    # The block is member[start:end] (shorter if the member was cut off); sliced only once, for
    # what is kept of it.
    start = head_end + 4
    return _block_record(rec_type, rec_headers, warc.get(b"content-type", ""), member, start, start + length)


def _block_record(rec_type: str, rec_headers, content_type: str, data: bytes, start: int, end: int):
    """The record whose block is data[start:end]; None if its HTTP payload needs warcio."""
    if rec_type == "warcinfo" or not content_type.startswith("application/http"):
        return _FastRecord(rec_type, rec_headers, None, data[start:end])
    http_end = data.find(b"\r\n\r\n", start, end)
    if http_end < 0 or data.count(b"\n", start, http_end) != data.count(b"\r\n", start, http_end):
        return None  # no head, or bare-LF line ends somewhere: warcio's lenient parser decides
    first_line, _, rest = data[start:http_end].partition(b"\r\n")
    bits = first_line.split(None, 2)
    if len(bits) < 2 or not bits[0].startswith(b"HTTP/") or not bits[1].isdigit():
        return None
    http = _Headers(bits[1].decode(), b"\r\n" + rest)
    if b"transfer-encoding" in http.known or http.known.get(b"content-encoding", "identity") != "identity":
        return None
    return _FastRecord(rec_type, rec_headers, http, data[http_end + 4:end])


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
        data = buf.data
        d = zlib.decompressobj(31)
        out, fed_to, step = [], pos, _FEED
        try:
            while True:
                # Feed steps that start small and double: whatever follows the member's end is
                # copied into unused_data, so the waste stays below the member's own size.
                if fed_to >= len(data):
                    if not buf.fill():
                        break
                    data = buf.data
                step_end = min(len(data), fed_to + step)
                out.append(d.decompress(memoryview(data)[fed_to:step_end]))
                fed_to = step_end
                if d.eof:
                    break
                step = min(2 * step, _READ)
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


def iter_records(fh, stats: ExtractStats, reader: str = "warcio") -> Iterator[tuple[int, object]]:
    """(offset, record) for every parseable record of a WARC or ARC file, gzipped or not.

    reader "warcio": gzip members are read here and records parsed here or by warcio.
    reader "fastwarc": gzipped WARC files are read by FastWARC where that gives the same records
    (see `_fastwarc_records`); everything else as with "warcio".
    """
    from warcio.archiveiterator import ArchiveIterator

    head = fh.read(3)
    fh.seek(0)
    if head == _GZIP_MAGIC:
        yield from (_fastwarc_records if reader == "fastwarc" else _member_records)(fh, stats)
        return
    it = ArchiveIterator(fh, arc2warc=True)
    try:
        for rec in it:
            stats.inc("records", "input")
            yield it.offset, rec  # (get_record_offset() would read the record to its end)
    except Exception as exc:  # noqa: BLE001 - damage in an uncompressed file ends it
        stats.inc("records", "input")
        stats.inc("records", "failed.unparseable_record")
        stats[f"info.error.{type(exc).__name__}"] += 1


def _member_records(fh, stats: ExtractStats, base: int = 0) -> Iterator[tuple[int, object]]:
    """`iter_records` of a per-record gzip file whose first byte is at file offset `base`."""
    from warcio.recordloader import ArcWarcRecordLoader

    loader = ArcWarcRecordLoader(arc2warc=True)
    for offset, member, truncated in _gzip_members(fh, stats):
        stats["records.input"] += 1
        if truncated:
            stats["info.truncated_record"] += 1
        # Requests, metadata, revisits, ... are only counted: skip warcio's full parse for them.
        head_end = member.find(b"\r\n\r\n")
        # WARC-Type is usually the first header: try the first line break before searching them all
        # (no match can start before it, so the result is the same).
        m = _WARC_TYPE.match(member, member.find(b"\r\n"), head_end) or _WARC_TYPE.search(member, 0, head_end)
        if m and m.group(1) not in _PARSED_TYPES and member.startswith(b"WARC/"):
            stats["records.kept"] += 1
            stats["info.record_type." + m.group(1).decode("ascii", "replace")] += 1
            continue
        rec = _fast_parse(member, head_end)
        if rec is None:
            try:
                rec = loader.parse_record_stream(io.BytesIO(member))
            except Exception as exc:  # noqa: BLE001
                stats.inc("records", "failed.unparseable_record")
                stats[f"info.error.{type(exc).__name__}"] += 1
                continue
        yield base + offset, rec


# ---------------------------------------------------------------------------- the FastWARC reader

# WARC-Type values FastWARC's records are taken with; a record of any other type (or spelling)
# is read again by `_member_records`, which counts it under the name it gives.
_COUNTED_TYPES = frozenset(("request", "metadata", "revisit", "resource", "conversion", "continuation"))
_PARSED_NAMES = frozenset(t.decode() for t in _PARSED_TYPES)


class _Tap:
    """The stream FastWARC reads, keeping what it has read from `keep_from` on: `window[i]` is
    the byte at file offset `base + i`."""

    def __init__(self, fh):
        self.fh, self.window, self.base = fh, bytearray(), 0

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.window += data
        return data

    def tell(self) -> int:
        return self.base + len(self.window)

    def close(self) -> None:  # FastWARC closes its stream when done; the caller owns the file
        pass

    def keep_from(self, pos: int) -> None:
        if pos - self.base > _READ:
            del self.window[:pos - self.base]
            self.base = pos

    def span(self, start: int, end: int | None = None) -> bytes:
        return bytes(self.window[start - self.base:None if end is None else end - self.base])


class _Resumed(io.RawIOBase):
    """`head`, then the rest of `fh`: a file read again from where FastWARC left off."""

    def __init__(self, head: bytes, fh):
        self.head, self.fh = memoryview(head), fh

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self.head:
            return self.fh.read(size)
        n = len(self.head) if size is None or size < 0 else size
        out, self.head = bytes(self.head[:n]), self.head[n:]
        return out


class _FastwarcHeaders:
    """A FastWARC header map behind the `get_header` the extractor calls."""

    __slots__ = ("headers",)
    keys: dict = {}  # header name -> FastWARC's WarcHeader key (a lookup by key is ~6x faster than by name)

    def __init__(self, headers):
        self.headers = headers

    def get_header(self, name: str, default=None):
        value = self.headers.get(self.keys.get(name, name))
        return default if value is None else value.strip()


def _fastwarc_gave_up(exc: BaseException, stats: ExtractStats) -> None:
    """Count why FastWARC stopped. (It may stop with a BaseException: a panic in its Rust code
    arrives as pyo3's PanicException.) An interrupt or exit still goes through."""
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        raise exc
    stats[f"info.fastwarc.gave_up.{type(exc).__name__}"] += 1


def _fastwarc_records(fh, stats: ExtractStats) -> Iterator[tuple[int, object]]:
    """`_member_records`, with FastWARC reading the gzip members and WARC heads.

    FastWARC's records are taken only where they are the records `_member_records` would give:
    - a record is handed out only once FastWARC has read the next one, so its gzip member has
      been read to the end and its CRC checked, and its bytes are file[pos:next_pos);
    - a record whose span holds a second gzip header (a record split over members, or those
      bytes by chance in compressed data), whose HTTP payload needs warcio, or whose WARC-Type is
      unusual is read again from its bytes by `_member_records`;
    - the last record, and everything from the record before any error FastWARC raises (damaged
      or cut-off gzip, a non-WARC member) or any record sharing a gzip member with the one before
      it, is read again from there by `_member_records`, which counts the damage.
    """
    from fastwarc.warc import ArchiveIterator, WarcHeader

    if not _FastwarcHeaders.keys:
        _FastwarcHeaders.keys.update({"WARC-Target-URI": WarcHeader.WARC_TARGET_URI,
                                      "WARC-Date": WarcHeader.WARC_DATE, "Content-Type": WarcHeader.CONTENT_TYPE})
    type_key = WarcHeader.WARC_TYPE
    tap = _Tap(fh)
    window = tap.window
    try:
        records = ArchiveIterator(tap, parse_http=False, buffer_size=_READ)
    except BaseException as exc:  # noqa: BLE001 - FastWARC peeks at the stream here; the default reader reads it all
        _fastwarc_gave_up(exc, stats)
        records = iter(())
    # The record not handed out yet: its file offset (-1: none), WARC-Type, headers and block.
    held_pos, held_type, held_headers, held_block = -1, None, None, None
    taken_records = reread_spans = 0
    counted = dict.fromkeys(_COUNTED_TYPES, 0)  # records only counted, by WARC-Type (added to stats at the end)
    while True:
        try:
            rec = next(records)
        except StopIteration:
            break
        except BaseException as exc:  # noqa: BLE001 - _member_records reads (and counts) the damage
            _fastwarc_gave_up(exc, stats)
            break
        pos = rec.stream_pos
        if held_pos >= 0:
            if pos <= held_pos:
                stats["info.fastwarc.gave_up.shared_member"] += 1
                break
            base, taken = tap.base, False
            if window.find(_GZIP_MAGIC, held_pos + 1 - base, pos - base) < 0:  # the span is one gzip member
                if held_type in _COUNTED_TYPES:
                    counted[held_type] += 1
                    taken = True
                elif held_type in _PARSED_NAMES:
                    rec_headers = _FastwarcHeaders(held_headers)
                    fast = _block_record(held_type, rec_headers, rec_headers.get_header("Content-Type", ""),
                                         held_block, 0, len(held_block))
                    if fast is not None:
                        stats["records.input"] += 1
                        yield held_pos, fast
                        taken = True
            if taken:
                taken_records += 1
            else:
                reread_spans += 1
                yield from _member_records(io.BytesIO(tap.span(held_pos, pos)), stats, held_pos)
            tap.keep_from(pos)
        held_pos, held_headers = pos, rec.headers
        held_type = held_headers.get(type_key)
        held_block = rec.reader.read() if held_type in _PARSED_NAMES else None
    for rec_type, n in counted.items():
        if n:
            stats["records.input"] += n
            stats["records.kept"] += n
            stats["info.record_type." + rec_type] += n
    stats["info.fastwarc.records_taken"] += taken_records
    stats["info.fastwarc.spans_reread"] += reread_spans
    start = max(held_pos, 0)
    yield from _member_records(_Resumed(tap.span(start), fh), stats, start)


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
            m = re.search(r"isPartOf:\s*(" + SNAPSHOT_RE.pattern + ")", body)
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
        html = _html_for_parser(body, ctype, stats)
        yield _image_rows(html, page_url, stats, (crawl_time, snapshot, warc_file, offset))


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
