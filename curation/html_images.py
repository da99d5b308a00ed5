"""The HTML image rules: how a page's bytes become text, and its <img> tags become (url, text) rows.

Pure functions on one page (no WARC reading: `curation/warc_reader.py`; no composing:
`curation/extract.py`). Rules (documented contract):
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

Every <img> is counted in the `images` stage (see `curation.warc_reader.ExtractStats`).
"""
from __future__ import annotations

import codecs
import functools
import re
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from charset_normalizer import from_bytes
# Imported once here: an import statement run for every page cost ~2% of the extraction.
from selectolax.lexbor import LexborHTMLParser

if TYPE_CHECKING:  # annotations only: the rules need no WARC reader
    from curation.warc_reader import ExtractStats

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
CHARSET_ALIASES = {"iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252",
                   "ascii": "cp1252", "iso8859-1": "cp1252", "gb2312": "gbk", "x-gbk": "gbk"}
LAZY_ATTRS = ("data-src", "data-lazy-src", "data-original")


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
    html = html_for_parser(body, content_type, stats)
    return html if isinstance(html, str) else html.decode("utf-8")


def html_for_parser(body: bytes, content_type: str, stats: ExtractStats) -> str | bytes:
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
# The character classes of a URL's parts that urljoin passes through untouched: printable ASCII, less
# '#', ';' and '?' in a path and '#' in a query (datacomp_rules' join shortcut uses them too).
URL_PATH_CHARS = r"[!-\"$-:<->@-~]"
URL_QUERY_CHARS = r"[!-\"$-~]"
URL_FRAGMENT_CHARS = r"[!-~]"
_PLAIN_ABSOLUTE = re.compile(rf"https?://[A-Za-z0-9.-]+(?:/{URL_PATH_CHARS}*)?"
                             rf"(?:\?{URL_QUERY_CHARS}+)?(?:#{URL_FRAGMENT_CHARS}+)?")


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
    return [(row[1], row[2]) for row in image_rows(html, page_url, stats, (None, None, None, None))]


def image_rows(html: str | bytes, page_url: str, stats: ExtractStats, tail: tuple) -> list[tuple]:
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

