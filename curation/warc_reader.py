"""Reading WARC and ARC files: records out of gzip members, with every record accounted for.

`iter_records` yields (offset, record) for the records of one file; the records carry just what
the extractor asks of them (`rec_type`, `rec_headers`, `http_headers`, `content_stream()`), as
warcio's do. `ExtractStats` counts every input, stage by stage. Rules (documented contract):
- Readers: `ExtractConfig.reader` "warcio" (the default) reads gzip members itself, with warcio
  for what needs it; "fastwarc" lets FastWARC read members and WARC heads where that gives the same
  records, and reads everything else as "warcio" does (see `_fastwarc_records`).
- Damage: gzip members are decompressed and CRC-checked one by one before parsing; a damaged
  member is skipped (counted) and reading resumes at the next gzip member header. A member cut
  off by the end of the file is parsed for what it holds and counted as truncated.
- Time: `WARC-Date` (ARC: the 14-digit archive date). A date that is not ISO 8601 but starts
  with YYYY-MM (ClueWeb09 writes `2008-10-294T05:21:46-0700`) is read leniently as the first
  second of that month and counted; anything else, or a year outside 1990-2099, fails the
  response as `bad_warc_date` (`parse_warc_date`).
"""
from __future__ import annotations

import datetime as dt
import io
import re
from collections import Counter
from typing import Iterator

import fastwarc.warc  # (ArchiveIterator is looked up at each use: the tests replace it)
from fastwarc.warc import WarcHeader
from isal import isal_zlib as zlib  # a drop-in for zlib; its inflate is ~2x faster
from warcio.archiveiterator import ArchiveIterator
from warcio.recordloader import ArcWarcRecordLoader

_LENIENT_DATE = re.compile(r"^(\d{4})-(\d{2})")
_GZIP_MAGIC = b"\x1f\x8b\x08"
_WARC_TYPE = re.compile(rb"\r\nWARC-Type:[ \t]*([A-Za-z-]+)", re.I)
_PARSED_TYPES = (b"response", b"warcinfo")
_READ = 1 << 20
_FEED = 4 << 10  # first feed step: request and metadata records compress to well under this

# Stage -> the outcomes it may end in; kept + dropped + failed must equal the stage's input.
STAGES = ("files", "records", "responses", "images")

READERS = ("warcio", "fastwarc")


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


def all_inputs_failed(flat: dict) -> str | None:
    """The message for a run in which every input file failed (an output of nothing would look like a
    crawl without pairs), else None. A run where only some failed goes on and counts them."""
    n = int(flat.get("files.input", 0))
    failed = {k[len("files.failed."):]: int(v) for k, v in flat.items() if k.startswith("files.failed.") and v}
    if n and sum(failed.values()) == n:
        return (f"all {n} input file(s) failed (" + ", ".join(f"{r} {c}" for r, c in sorted(failed.items()))
                + "); nothing was written")
    return None


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
    view = memoryview(buf.data)
    while pos < len(buf.data) or buf.fill():
        if pos > _READ:
            pos = buf.drop_before(pos)
        data = buf.data
        if view.obj is not data:
            view = memoryview(data)
        d = zlib.decompressobj(31)
        try:
            # The usual member fits in the first feed step: one call, nothing to join.
            fed_to = pos + _FEED if pos + _FEED < len(data) else len(data)
            out = d.decompress(view[pos:fed_to])
            if not d.eof:
                out, step = [out], 2 * _FEED
                while True:
                    # Feed steps that start small and double: whatever follows the member's end is
                    # copied into unused_data, so the waste stays below the member's own size.
                    if fed_to >= len(data):
                        if not buf.fill():
                            break
                        data = buf.data
                        view = memoryview(data)
                    step_end = min(len(data), fed_to + step)
                    out.append(d.decompress(view[fed_to:step_end]))
                    fed_to = step_end
                    if d.eof:
                        break
                    step = min(2 * step, _READ)
                out = b"".join(out)
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
            yield buf.base + pos, out + d.flush(), True
            return
        yield buf.base + pos, out, False
        pos = fed_to - len(d.unused_data)


def iter_records(fh, stats: ExtractStats, reader: str = "warcio") -> Iterator[tuple[int, object]]:
    """(offset, record) for every parseable record of a WARC or ARC file, gzipped or not.

    reader "warcio": gzip members are read here and records parsed here or by warcio.
    reader "fastwarc": gzipped WARC files are read by FastWARC where that gives the same records
    (see `_fastwarc_records`); everything else as with "warcio".
    """
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
    # header name -> FastWARC's WarcHeader key (a lookup by key is ~6x faster than by name)
    keys = {"WARC-Target-URI": WarcHeader.WARC_TARGET_URI, "WARC-Date": WarcHeader.WARC_DATE,
            "Content-Type": WarcHeader.CONTENT_TYPE}

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
    type_key = WarcHeader.WARC_TYPE
    tap = _Tap(fh)
    window = tap.window
    try:
        records = fastwarc.warc.ArchiveIterator(tap, parse_http=False, buffer_size=_READ)
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


