"""DataComp's pair rules: the (image URL, alt text) pairs a page holds, as CommonPool took them.

DataComp's CommonPool was not made by an HTML5 parse of WARC pages. It came from Common Crawl's WAT
files through cc2dataset, and the WAT links were written by ia-web-commons. Read from the sources:

- `iipc/webarchive-commons`, `org/archive/resource/html/ExtractingParseObserver.java`: an `<img>`
  with a `src` attribute becomes a link `{"path": "IMG@/src", "url": src, "alt": alt, "title": title}`
  (alt and title only when present). Values are htmlparser's `TagNode.getAttribute`: the attribute
  as written, quotes removed, character references NOT decoded, whitespace NOT touched; names are
  matched case-insensitively and the first of two same-named attributes wins (`getAttributeEx`);
  an attribute without `=value` has no value. `<base href>` sets `Head.Base`, the last one winning
  (`HTMLMetaData.setBaseHref` overwrites). Script and style bodies and comments are text to
  htmlparser, so an `<img>` inside them is no link. `srcset`, `data-src` and other lazy attributes
  are never read.
- `rom1504/cc2dataset`, `cc2dataset/main.py` (`extract_documents_from_wat`, `valid_image_link`,
  `make_link_absolute`): only links whose path is `IMG@/src` and whose `alt` is present and
  non-empty (`len(alt) > 0`: a single space counts); a URL that starts with `http://` or
  `https://` is kept byte for byte; any other is `urljoin(base, url)`, where base is the page URL
  (`WARC-Target-URI`) joined with `Head.Base` when there is one (a join that raises keeps the page
  URL / the raw value); only results starting with `http://` or `https://` are kept. Every HTML
  response the WAT describes counts, whatever its HTTP status. So an empty `src` becomes the page's
  own URL (`urljoin(base, "") == base`), exactly as in CommonPool.

`img_links(html)` reads the links from a page's HTML (for WARC input) the way htmlparser and
ExtractingParseObserver would, with a scanner over raw tags (no DOM); `link_rows` applies
cc2dataset's rules to them, or to the `Links` of a WAT record.
"""
from __future__ import annotations

import functools
import re
from urllib.parse import urljoin

# urljoin's shortcuts, shared with the html5 rules (tested against urljoin in both test files)
from curation.html_images import _PLAIN_ABSOLUTE, URL_FRAGMENT_CHARS, URL_PATH_CHARS, URL_QUERY_CHARS, _base_scheme

# Text that htmlparser does not read tags from (comments, script and style bodies), or an <img> or
# <base> tag whose attributes may hold quoted '>' characters. An <img> whose first two attributes
# are a double-quoted src and alt (the usual way pages write it) gives them here, as groups 2 and 3
# (group 1, the g of img, marks it), without a second pass over its attributes: they are the first
# src and alt the attribute scan would find. The rest of that tag is read as any tag's, so it ends
# where the general <img> alternative would have ended it.
_TAG_BODY = r"(?:[^>\"']++|\"[^\"]*+\"|'[^']*+')*+"
# (The lookahead turns away the usual '<' - of any other tag - after one test, where each
# alternative would have tested it in turn; under re.I it admits the same first letters as they do.)
_TOKENS = re.compile(
    r"<(?=[!sib])(?:!--.*?-->"
    r"|script\b" + _TAG_BODY + r">.*?</script\s*>"
    r"|style\b" + _TAG_BODY + r">.*?</style\s*>"
    r"|im(g)\s+src=\"([^\"]*)\"\s+alt=\"([^\"]*)\"" + _TAG_BODY + ">"
    r"|(img|base)\b(" + _TAG_BODY + r")>)",
    re.I | re.S)
# name, then optionally = and a double-quoted, single-quoted or bare value (the "=" is captured:
# findall gives "" for a group that did not take part, so it tells `alt` from `alt=""`)
_ATTRIBUTE = re.compile(r"""([^\s=>"'/]+)(?:\s*(=)\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+)))?""")
_HTTP = ("http://", "https://")


def tag_attributes(body: str, wanted: tuple[str, ...]) -> dict[str, str | None]:
    """The first value of each wanted attribute (lower-case names) in a tag's attribute text;
    None for an attribute written without a value."""
    found: dict[str, str | None] = {}
    for name, eq, dq, sq, bare in _ATTRIBUTE.findall(body):
        name = name.lower()
        if name in wanted and name not in found:
            found[name] = (dq or sq or bare) if eq else None
    return found


def img_links(html: str) -> tuple[list[tuple[str, str | None]], str | None, int]:
    """(the `(src, alt)` of every <img> with a src, in page order; the last <base href>, or None; the
    number of <img> tags read, with or without a src) as ia-web-commons lists them."""
    links: list[tuple[str, str | None]] = []
    base = None
    n_img = 0
    findall = _ATTRIBUTE.findall
    # (findall, not finditer: tuples of strings cost far less than a match object and its groups)
    for plain_img, plain_src, plain_alt, tag, body in _TOKENS.findall(html):
        if plain_img:
            n_img += 1
            links.append((plain_src, plain_alt))
            continue
        if not tag:
            continue  # a comment, script or style: no links in it
        if tag.lower() == "base":
            href = tag_attributes(body, ("href",)).get("href")
            if href is not None:
                base = href
            continue
        n_img += 1
        # tag_attributes(body, ("src", "alt")), spelled out: this loop runs for every <img>
        src = alt = None
        seen_src = seen_alt = False
        for name, eq, dq, sq, bare in findall(body):
            if len(name) != 3:
                continue
            name = name.lower()
            if name == "src":
                if not seen_src:
                    seen_src = True
                    src = (dq or sq or bare) if eq else None
            elif name == "alt" and not seen_alt:
                seen_alt = True
                alt = (dq or sq or bare) if eq else None
        if src is not None:
            links.append((src, alt))
    return links, base, n_img


def page_base(page_url: str, base_href: str | None) -> str:
    """cc2dataset's base: the page URL, joined with Head.Base when there is one."""
    if base_href is None:
        return page_url
    if _PLAIN_ABSOLUTE.fullmatch(base_href) and _base_scheme(page_url) is not None:
        return base_href  # what urljoin gives such a URL (the usual <base href>), without its cost
    try:
        return urljoin(page_url, base_href)
    except ValueError:
        return page_url


# A URL that starts with a scheme (as urlsplit reads one: a letter, then letters, digits, + - .)
# other than http(s): urljoin hands it back unchanged (its scheme differs from the base's, or the
# parse raised and the URL is kept), so the http(s) filter drops it; decided without urljoin
# (data: URIs are long, and common).
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


# A base urljoin splits without surprises: a lower-case http(s) scheme, a plain host (and port), a
# path of printable ASCII without ';' (urlparse would split params off its last segment), any query
# and fragment (a relative reference with a path drops both). Groups: scheme://netloc, path.
_PLAIN_JOIN_BASE = re.compile(rf"(https?://[A-Za-z0-9.-]+(?::[0-9]*)?)"
                              rf"(/{URL_PATH_CHARS}*)?(?:\?{URL_QUERY_CHARS}*)?(?:#{URL_FRAGMENT_CHARS}*)?")
# A relative reference with a path that urljoin neither cleans nor re-splits: printable ASCII (urlsplit
# strips spaces and controls), no ';' in the path, a query and fragment that are not empty (urlunparse
# drops an empty one). Group 1: the path. (Not "//": that branch is above. No scheme: checked first.)
_PLAIN_RELATIVE = re.compile(rf"({URL_PATH_CHARS}+)(?:\?{URL_QUERY_CHARS}+)?(?:#{URL_FRAGMENT_CHARS}+)?")


@functools.lru_cache(maxsize=64)
def _join_base(base: str) -> tuple[str, tuple[str, ...]] | None:
    """(scheme://netloc, the base path's directory segments) of a plain base without dot segments,
    as urljoin reads them (`bpath.split('/')` less a last segment that is not a directory); None for any
    other base (urljoin itself decides). One page's links share a base: cached."""
    m = _PLAIN_JOIN_BASE.fullmatch(base)
    if m is None:
        return None
    parts = (m.group(2) or "").split("/")
    if "." in parts or ".." in parts:
        return None
    if parts[-1]:
        del parts[-1]
    return m.group(1), tuple(parts)


def _join_relative(url: str, base: str) -> str | None:
    """urljoin(base, url) for a scheme-less relative reference with a plain path and no dot segments
    (CPython 3.11's urljoin: an absolute path replaces the base's; a relative one goes after the
    base's directory, empty segments between them dropped), without urljoin's two urlparse calls; None
    where urljoin must decide. Real pages' images are mostly such paths (`perf/bench_wat.py`);
    tests/test_datacomp_rules.py checks this against urljoin on random references."""
    m = _PLAIN_RELATIVE.fullmatch(url)
    if m is None or (joined := _join_base(base)) is None:
        return None
    path = m.group(1)
    segments = path.split("/")
    if "." in segments or ".." in segments:
        return None
    origin, base_dir = joined
    if path[0] == "/":
        return origin + url
    segments = [*base_dir, *segments]
    segments[1:-1] = [s for s in segments[1:-1] if s]
    return origin + "/".join(segments) + url[len(path):]


def absolute_url(url: str, base: str) -> str | None:
    """cc2dataset's `make_link_absolute`, then its http(s) filter: the URL, or None when dropped."""
    if not url.startswith(_HTTP):
        if not url:  # urljoin(base, "") is the base, whatever it is
            return base if base.startswith(_HTTP) else None
        if url[:2] == "//":  # a plain scheme-relative URL takes the base's scheme (as html_images does)
            scheme = _base_scheme(base)
            if scheme in ("http", "https") and _PLAIN_ABSOLUTE.fullmatch(joined := f"{scheme}:{url}"):
                return joined
        else:
            m = _SCHEME.match(url)
            if m and url[:m.end() - 1].lower() not in ("http", "https"):
                return None
            if m is None and (joined := _join_relative(url, base)) is not None:
                return joined
        try:
            url = urljoin(base, url)
        except ValueError:
            pass
    return url if url.startswith(_HTTP) else None


def link_rows(links: list[tuple[str, str | None]], base: str, page_url: str, tail: tuple, stats) -> list[tuple]:
    """Rows (page_url, url, alt, *tail) of the (src, alt) links cc2dataset keeps, in one loop (the per-link
    hot path of both inputs; tail is (crawl_time, snapshot, warc_file, warc_offset)); every link is
    counted in the `images` stage."""
    rows = []
    append = rows.append
    t0, t1, t2, t3 = tail  # (a row spelled out is built without the list `*tail` would build first)
    no_alt = empty_alt = 0
    for url, alt in links:
        if alt is None:
            no_alt += 1
        elif not alt:
            empty_alt += 1
        elif url.startswith(_HTTP) or (url := absolute_url(url, base)) is not None:
            append((page_url, url, alt, t0, t1, t2, t3))
    count_links(stats, len(links), no_alt, empty_alt, len(rows))
    return rows


def count_links(stats, n_links: int, no_alt: int, empty_alt: int, kept: int) -> None:
    """The `images` stage's counts for a page's IMG@/src links (the rest were not http(s) URLs)."""
    if not n_links:
        return
    stats["images.input"] += n_links
    for key, n in (("images.kept", kept), ("images.dropped.no_alt", no_alt), ("images.dropped.empty_alt", empty_alt),
                   ("images.dropped.not_http_url", n_links - no_alt - empty_alt - kept)):
        if n:  # only the outcomes that happened, as the other stages count
            stats[key] += n
