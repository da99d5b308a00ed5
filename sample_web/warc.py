"""A small WARC/1.0 writer, one gzip member per record, and the WAT file beside it, as Common Crawl
writes them.

Written by hand (not with warcio's writer) for speed and byte-for-byte determinism:
record ids come from a seeded counter and gzip headers carry no timestamp.

The WAT (`WatWriter`) follows what ia-web-commons writes (`iipc/webarchive-commons`,
`org/archive/resource/*` and `ExtractingParseObserver`; the shared real file
`whirlwind.warc.wat.gz` shows the layout): a warcinfo record, then one `metadata` record per WARC
record whose JSON holds `Container` (the WARC file's name and the record's offset, both as written
there: Offset is a string), and `Envelope` with the record's own WARC headers
(`WARC-Header-Metadata`: its `WARC-Date` is the capture time; the WAT record's own `WARC-Date` is
the day the WAT was written, weeks later) and `Payload-Metadata`. An HTML response's
`HTTP-Response-Metadata.HTML-Metadata` has `Head` ({Title, Base}) and `Links`: every link in page
order, `{"path": "IMG@/src", "url": <src as written>, "alt": <alt as written>}` for an <img> with a
src (no "alt" key when the tag has none), `{"path": "A@/href", "url": ..., "text": ...}` for anchors.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
from pathlib import Path

from isal import isal_zlib

from ticcore.localfs import WriteBehindFile

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# Request records (~700 bytes) go out at ISA-L's level 0: above it every member pays a fixed ~10 us
# to build its Huffman tables, 4x the cost of compressing a request, for ~150 bytes saved.
REQUEST_GZIP_LEVEL = 0
_ID_STEP = 0x9E3779B97F4A7C15F39CC0605CEDC835  # odd, golden-ratio bits: consecutive ids share no pattern
_ID_MASK = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)  # clear the version nibble and variant bits
_ID_VERSION = (0x4 << 76) | (0x2 << 62)                    # version 4, RFC 4122 variant
_B32_PAIRS = [a + b for a in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" for b in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"]


def _sha1_b32(data: bytes) -> str:
    """base64.b32encode of the SHA-1, ten bits (two characters) at a time, spelled out: the stdlib's
    pure-Python loop, or a loop over the 16 pairs, cost 3x more (~5% of generation)."""
    n, t = int.from_bytes(hashlib.sha1(data).digest(), "big"), _B32_PAIRS
    return (f"sha1:{t[n >> 150]}{t[n >> 140 & 1023]}{t[n >> 130 & 1023]}{t[n >> 120 & 1023]}"
            f"{t[n >> 110 & 1023]}{t[n >> 100 & 1023]}{t[n >> 90 & 1023]}{t[n >> 80 & 1023]}"
            f"{t[n >> 70 & 1023]}{t[n >> 60 & 1023]}{t[n >> 50 & 1023]}{t[n >> 40 & 1023]}"
            f"{t[n >> 30 & 1023]}{t[n >> 20 & 1023]}{t[n >> 10 & 1023]}{t[n & 1023]}")


def warc_date(t: dt.datetime) -> str:
    return t.isoformat()[:19] + "Z"


def http_date(t: dt.datetime) -> str:
    return (f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year} "
            f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} GMT")


class WarcWriter:
    def __init__(self, path: Path, id_seed: str, gzip_level: int = 1, wat: "WatWriter | None" = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = io.BufferedWriter(WriteBehindFile(self.path), buffer_size=1 << 20)
        self._offset = 0  # kept here: BufferedWriter.tell() would ask the raw file (a call through Python) per record
        self._id_base = int.from_bytes(hashlib.md5(id_seed.encode()).digest(), "big")
        self._counter = 0
        self._level = gzip_level
        self.records = 0
        self.warcinfo_id: str | None = None
        self.wat = wat  # describes every record written here, when set

    # ------------------------------------------------------------ plumbing
    def _new_id(self) -> str:
        """A deterministic version-4-shaped UUID: the file's seed hash stepped by an odd 128-bit constant
        (cheaper than hashing per record; as unlikely to repeat as random version-4 ids)."""
        self._counter += 1
        h = f"{(self._id_base + self._counter * _ID_STEP) & _ID_MASK | _ID_VERSION:032x}"
        return f"<urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}>"

    def _record(self, headers: list[tuple[str, str]], block: bytes) -> bytes:
        head = "WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
        head += f"Content-Length: {len(block)}\r\n\r\n"
        return head.encode("utf-8") + block + b"\r\n\r\n"

    def write_member(self, record: bytes, truncate_at: float | None = None, level: int | None = None) -> int:
        """Append one gzip member; `truncate_at` (0..1) cuts it short to simulate damage.

        wbits 31: a gzip wrapper with mtime 0 (deterministic). ISA-L's deflate is ~3x faster than
        zlib's level 1 on HTML, and every record is a gzip stream of its own.
        """
        member = isal_zlib.compress(record, self._level if level is None else level, 31)
        if truncate_at is not None:
            member = member[: max(10, int(len(member) * truncate_at))]
        offset = self._offset
        self._fh.write(member)
        self._offset += len(member)
        self.records += 1
        return offset

    def tell(self) -> int:
        return self._offset

    def close(self) -> None:
        self._fh.close()

    # ------------------------------------------------------------ record kinds
    def warcinfo(self, date: dt.datetime, snapshot_id: str, filename: str) -> None:
        body = (f"isPartOf: {snapshot_id}\r\n"
                f"publisher: tic-clip sample web (synthetic; not Common Crawl)\r\n"
                f"description: Synthetic crawl snapshot {snapshot_id} for tests and demos\r\n"
                f"operator: tic-clip\r\n"
                f"hostname: ip-127-0-0-1.sample\r\n"
                f"software: tic-sample-web\r\n"
                f"robots: checked via crawler-commons\r\n"
                f"format: WARC File Format 1.0\r\n"
                f"conformsTo: http://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.0/\r\n"
                ).encode()
        self.warcinfo_id = self._new_id()
        headers = [("WARC-Type", "warcinfo"), ("WARC-Date", warc_date(date)), ("WARC-Filename", filename),
                   ("WARC-Record-ID", self.warcinfo_id), ("Content-Type", "application/warc-fields")]
        offset = self.write_member(self._record(headers, body))
        if self.wat:
            self.wat.describe(offset, headers, len(body), {"Actual-Content-Type": "application/warc-fields"})

    def exchange(self, url: str, date: dt.datetime, ip: str, status: int, reason: str,
                 http_headers: list[tuple[str, str]], body: bytes, user_agent: str,
                 truncate_response_at: float | None = None, html: dict | None = None) -> int:
        """A request record and its response record. Returns the response's file offset.
        `html` is the page's WAT `HTML-Metadata` ({"Head": ..., "Links": [...]}) for an HTML page."""
        host = url.split("/")[2]
        path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
        request = (f"GET {path} HTTP/1.1\r\nUser-Agent: {user_agent}\r\n"
                   f"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
                   f"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: br,gzip\r\nHost: {host}\r\n"
                   f"Connection: Keep-Alive\r\n\r\n").encode()
        req_id, resp_id = self._new_id(), self._new_id()
        date_s = warc_date(date)
        # Both records' headers spelled out in one f-string each (as _record would write them): a
        # page's two records are most of the generator's WARC work.
        req_offset = self.write_member(
            f"WARC/1.0\r\nWARC-Type: request\r\nWARC-Date: {date_s}\r\nWARC-Record-ID: {req_id}\r\n"
            f"Content-Type: application/http; msgtype=request\r\nWARC-Warcinfo-ID: {self.warcinfo_id}\r\n"
            f"WARC-IP-Address: {ip}\r\nWARC-Target-URI: {url}\r\nContent-Length: {len(request)}\r\n\r\n"
            .encode() + request + b"\r\n\r\n", level=REQUEST_GZIP_LEVEL)
        http_head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in http_headers)
        http_head += f"Content-Length: {len(body)}\r\n\r\n"
        block = http_head.encode("latin-1") + body
        payload_digest = _sha1_b32(body)
        resp_offset = self.write_member(
            f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Date: {date_s}\r\nWARC-Record-ID: {resp_id}\r\n"
            f"Content-Type: application/http; msgtype=response\r\nWARC-Warcinfo-ID: {self.warcinfo_id}\r\n"
            f"WARC-Concurrent-To: {req_id}\r\nWARC-IP-Address: {ip}\r\nWARC-Target-URI: {url}\r\n"
            f"WARC-Payload-Digest: {payload_digest}\r\nWARC-Block-Digest: {_sha1_b32(block)}\r\n"
            f"Content-Length: {len(block)}\r\n\r\n".encode() + block + b"\r\n\r\n",
            truncate_at=truncate_response_at)
        if self.wat:
            common = [("WARC-Date", date_s), ("WARC-Warcinfo-ID", self.warcinfo_id), ("WARC-IP-Address", ip),
                      ("WARC-Target-URI", url)]
            self.wat.describe(req_offset, [("WARC-Type", "request"), ("WARC-Record-ID", req_id),
                                           ("Content-Type", "application/http; msgtype=request"), *common],
                              len(request), {"Actual-Content-Type": "application/http; msgtype=request",
                                             "HTTP-Request-Metadata": {
                                                 "Request-Message": {"Method": "GET", "Path": path,
                                                                     "Version": "HTTP/1.1"},
                                                 "Headers": {"User-Agent": user_agent, "Host": host}}})
            response = {"Response-Message": {"Status": str(status), "Version": "HTTP/1.1", "Reason": reason},
                        "Headers": dict(http_headers), "Entity-Length": str(len(body)),
                        "Entity-Digest": payload_digest}
            if html is not None:
                response["HTML-Metadata"] = html
            # a damaged record's description is damaged too: neither file shows what the page held
            self.wat.describe(resp_offset, [("WARC-Type", "response"), ("WARC-Record-ID", resp_id),
                                            ("Content-Type", "application/http; msgtype=response"),
                                            ("WARC-Concurrent-To", req_id), *common],
                              len(block), {"Actual-Content-Type": "application/http; msgtype=response",
                                           "HTTP-Response-Metadata": response},
                              truncate_at=truncate_response_at)
        return resp_offset

    def dns_response(self, host: str, ip: str, date: dt.datetime) -> None:
        """A Heritrix-style dns: response: a record whose payload is not HTTP."""
        body = f"{date.strftime('%Y%m%d%H%M%S')}\n{host}.\t300\tIN\tA\t{ip}\n".encode()
        headers = [("WARC-Type", "response"), ("WARC-Date", warc_date(date)), ("WARC-Record-ID", self._new_id()),
                   ("Content-Type", "text/dns"), ("WARC-Target-URI", f"dns:{host}"), ("WARC-IP-Address", "127.0.0.53")]
        offset = self.write_member(self._record(headers, body))
        if self.wat:
            self.wat.describe(offset, headers, len(body), {"Actual-Content-Type": "text/dns"})

    def metadata(self, url: str, date: dt.datetime, fields: str, wat_json_damaged: bool = False) -> None:
        """A metadata record; `wat_json_damaged` writes its WAT description as JSON cut short (a WAT
        reader must count it, not fail)."""
        headers = [("WARC-Type", "metadata"), ("WARC-Date", warc_date(date)), ("WARC-Record-ID", self._new_id()),
                   ("WARC-Target-URI", url), ("Content-Type", "application/warc-fields")]
        offset = self.write_member(self._record(headers, fields.encode()))
        if self.wat:
            self.wat.describe(offset, headers, len(fields), {"Actual-Content-Type": "application/warc-fields"},
                              json_cut=wat_json_damaged)

    def close_all(self) -> None:
        self.close()
        if self.wat:
            self.wat.close()


class WatWriter:
    """The WAT file of one WARC file: a warcinfo record, then a `metadata` record per WARC record."""

    def __init__(self, path: Path, warc_name: str, id_seed: str, written: dt.datetime, gzip_level: int = 1):
        self.warc_name = warc_name
        self.written = warc_date(written)
        self._w = WarcWriter(path, id_seed=id_seed, gzip_level=gzip_level)
        name = Path(path).name
        body = (f"Software-Info: tic-sample-web (writes what ia-web-commons writes)\r\n"
                f"Extracted-Date: {http_date(written)}\r\n"
                f"format: WARC File Format 1.0\r\n").encode()
        self._w.write_member(self._w._record([
            ("WARC-Type", "warcinfo"), ("WARC-Date", self.written), ("WARC-Filename", name),
            ("WARC-Record-ID", self._w._new_id()), ("Content-Type", "application/warc-fields")], body))

    def describe(self, warc_offset: int, warc_headers: list[tuple[str, str]], block_length: int,
                 payload_metadata: dict, truncate_at: float | None = None, json_cut: bool = False) -> None:
        headers = dict(warc_headers)
        headers["Content-Length"] = str(block_length)
        doc = {"Container": {"Filename": self.warc_name, "Compressed": True, "Offset": str(warc_offset)},
               "Envelope": {"Format": "WARC", "WARC-Header-Metadata": headers,
                            "Payload-Metadata": payload_metadata}}
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if json_cut:
            text = text[: len(text) // 2]
        target = [("WARC-Target-URI", headers["WARC-Target-URI"])] if "WARC-Target-URI" in headers else []
        wat_headers = [("WARC-Type", "metadata"), *target, ("WARC-Date", self.written),
                       ("WARC-Record-ID", self._w._new_id()), ("WARC-Refers-To", headers["WARC-Record-ID"]),
                       ("Content-Type", "application/json")]
        self._w.write_member(self._w._record(wat_headers, text), truncate_at=truncate_at)

    def close(self) -> None:
        self._w.close()
