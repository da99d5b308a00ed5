"""A small WARC/1.0 writer: one gzip member per record, as Common Crawl writes them.

Written by hand (not with warcio's writer) for speed and byte-for-byte determinism:
record ids come from a seeded counter and gzip headers carry no timestamp.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
from pathlib import Path

from isal import isal_zlib

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


_B32_PAIRS = [a + b for a in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" for b in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"]


def _sha1_b32(data: bytes) -> str:
    """base64.b32encode of the SHA-1, ten bits at a time (the stdlib's pure-Python loop was ~5% of
    generation). 160 bits make 32 characters and no padding."""
    n = int.from_bytes(hashlib.sha1(data).digest(), "big")
    return "sha1:" + "".join([_B32_PAIRS[(n >> shift) & 1023] for shift in range(150, -1, -10)])


def warc_date(t: dt.datetime) -> str:
    return t.isoformat()[:19] + "Z"


def http_date(t: dt.datetime) -> str:
    return (f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year} "
            f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} GMT")


class WarcWriter:
    def __init__(self, path: Path, id_seed: str, gzip_level: int = 1):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "wb", buffering=1 << 20)
        self._id_seed = id_seed
        self._counter = 0
        self._level = gzip_level
        self.records = 0
        self.warcinfo_id: str | None = None

    # ------------------------------------------------------------ plumbing
    def _new_id(self) -> str:
        """A deterministic version-4-shaped UUID from the file's seed and a counter."""
        self._counter += 1
        h = hashlib.md5(f"{self._id_seed}/{self._counter}".encode()).hexdigest()
        return f"<urn:uuid:{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}>"

    def _gzip(self, data: bytes) -> bytes:
        # wbits 31: a gzip wrapper with mtime 0 (deterministic). ISA-L's deflate is ~3x faster than
        # zlib's level 1 on HTML, and every record is a gzip stream of its own.
        return isal_zlib.compress(data, self._level, 31)

    def _record(self, headers: list[tuple[str, str]], block: bytes) -> bytes:
        head = "WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
        head += f"Content-Length: {len(block)}\r\n\r\n"
        return head.encode("utf-8") + block + b"\r\n\r\n"

    def write_member(self, record: bytes, truncate_at: float | None = None) -> int:
        """Append one gzip member; `truncate_at` (0..1) cuts it short to simulate damage."""
        member = self._gzip(record)
        if truncate_at is not None:
            member = member[: max(10, int(len(member) * truncate_at))]
        offset = self._fh.tell()
        self._fh.write(member)
        self.records += 1
        return offset

    def tell(self) -> int:
        return self._fh.tell()

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
        self.write_member(self._record([
            ("WARC-Type", "warcinfo"), ("WARC-Date", warc_date(date)), ("WARC-Filename", filename),
            ("WARC-Record-ID", self.warcinfo_id), ("Content-Type", "application/warc-fields")], body))

    def exchange(self, url: str, date: dt.datetime, ip: str, status: int, reason: str,
                 http_headers: list[tuple[str, str]], body: bytes, user_agent: str,
                 truncate_response_at: float | None = None) -> int:
        """A request record and its response record. Returns the response's file offset."""
        host = url.split("/")[2]
        path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
        request = (f"GET {path} HTTP/1.1\r\nUser-Agent: {user_agent}\r\n"
                   f"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
                   f"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: br,gzip\r\nHost: {host}\r\n"
                   f"Connection: Keep-Alive\r\n\r\n").encode()
        req_id, resp_id = self._new_id(), self._new_id()
        date_s = warc_date(date)
        self.write_member(self._record([
            ("WARC-Type", "request"), ("WARC-Date", date_s), ("WARC-Record-ID", req_id),
            ("Content-Type", "application/http; msgtype=request"), ("WARC-Warcinfo-ID", self.warcinfo_id),
            ("WARC-IP-Address", ip), ("WARC-Target-URI", url)], request))
        http_head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in http_headers)
        http_head += f"Content-Length: {len(body)}\r\n\r\n"
        block = http_head.encode("latin-1") + body
        return self.write_member(self._record([
            ("WARC-Type", "response"), ("WARC-Date", date_s), ("WARC-Record-ID", resp_id),
            ("Content-Type", "application/http; msgtype=response"), ("WARC-Warcinfo-ID", self.warcinfo_id),
            ("WARC-Concurrent-To", req_id), ("WARC-IP-Address", ip), ("WARC-Target-URI", url),
            ("WARC-Payload-Digest", _sha1_b32(body)), ("WARC-Block-Digest", _sha1_b32(block))], block),
            truncate_at=truncate_response_at)

    def dns_response(self, host: str, ip: str, date: dt.datetime) -> None:
        """A Heritrix-style dns: response: a record whose payload is not HTTP."""
        body = f"{date.strftime('%Y%m%d%H%M%S')}\n{host}.\t300\tIN\tA\t{ip}\n".encode()
        self.write_member(self._record([
            ("WARC-Type", "response"), ("WARC-Date", warc_date(date)), ("WARC-Record-ID", self._new_id()),
            ("Content-Type", "text/dns"), ("WARC-Target-URI", f"dns:{host}"), ("WARC-IP-Address", "127.0.0.53")],
            body))

    def metadata(self, url: str, date: dt.datetime, fields: str) -> None:
        self.write_member(self._record([
            ("WARC-Type", "metadata"), ("WARC-Date", warc_date(date)), ("WARC-Record-ID", self._new_id()),
            ("WARC-Target-URI", url), ("Content-Type", "application/warc-fields")], fields.encode()))
