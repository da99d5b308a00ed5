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
ExtractingParseObserver would, with a scanner over raw tags (no DOM); `pairs_from_links` applies
cc2dataset's rules to them, or to the `Links` of a WAT record.
"""
from __future__ import annotations

import re
from typing import Iterable, Iterator
from urllib.parse import urljoin

# Text that htmlparser does not read tags from (comments, script and style bodies), or an <img> or
# <base> tag whose attributes may hold quoted '>' characters.
_TOKENS = re.compile(
    r"<!--.*?-->"
    r"|<script\b(?:[^>\"']++|\"[^\"]*+\"|'[^']*+')*+>.*?</script\s*>"
    r"|<style\b(?:[^>\"']++|\"[^\"]*+\"|'[^']*+')*+>.*?</style\s*>"
    r"|<(img|base)\b((?:[^>\"']++|\"[^\"]*+\"|'[^']*+')*+)>",
    re.I | re.S)
# name, then optionally = and a double-quoted, single-quoted or bare value
_ATTRIBUTE = re.compile(r"""([^\s=>"'/]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+)))?""")
_HTTP = ("http://", "https://")


def tag_attributes(body: str, wanted: tuple[str, ...]) -> dict[str, str | None]:
    """The first value of each wanted attribute (lower-case names) in a tag's attribute text;
    None for an attribute written without a value."""
    found: dict[str, str | None] = {}
    for m in _ATTRIBUTE.finditer(body):
        name = m.group(1).lower()
        if name in wanted and name not in found:
            value = m.group(2)
            if value is None:
                value = m.group(3) if m.group(3) is not None else m.group(4)
            found[name] = value
    return found


def img_links(html: str) -> tuple[list[tuple[str, str | None]], str | None, int]:
    """(the `(src, alt)` of every <img> with a src, in page order; the last <base href>, or None; the
    number of <img> tags read, with or without a src) as ia-web-commons lists them."""
    links: list[tuple[str, str | None]] = []
    base = None
    n_img = 0
    for m in _TOKENS.finditer(html):
        tag = m.group(1)
        if tag is None:
            continue  # a comment, script or style: no links in it
        if tag.lower() == "base":
            href = tag_attributes(m.group(2), ("href",)).get("href")
            if href is not None:
                base = href
            continue
        n_img += 1
        attrs = tag_attributes(m.group(2), ("src", "alt"))
        src = attrs.get("src")
        if src is not None:
            links.append((src, attrs.get("alt")))
    return links, base, n_img


def page_base(page_url: str, base_href: str | None) -> str:
    """cc2dataset's base: the page URL, joined with Head.Base when there is one."""
    if base_href is None:
        return page_url
    try:
        return urljoin(page_url, base_href)
    except ValueError:
        return page_url


def absolute_url(url: str, base: str) -> str | None:
    """cc2dataset's `make_link_absolute`, then its http(s) filter: the URL, or None when dropped."""
    if not url.startswith(_HTTP):
        try:
            url = urljoin(base, url)
        except ValueError:
            pass
    return url if url.startswith(_HTTP) else None


def pairs_from_links(links: Iterable[tuple[str, str | None]], base: str, stats) -> Iterator[tuple[str, str]]:
    """(url, alt) of each IMG@/src link that cc2dataset keeps; every link is counted in `images`."""
    for url, alt in links:
        stats["images.input"] += 1
        if alt is None:
            stats["images.dropped.no_alt"] += 1
        elif not alt:
            stats["images.dropped.empty_alt"] += 1
        elif (absolute := absolute_url(url, base)) is None:
            stats["images.dropped.not_http_url"] += 1
        else:
            stats["images.kept"] += 1
            yield absolute, alt
