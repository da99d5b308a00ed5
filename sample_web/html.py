"""HTML for the sample web's pages: the many ways real pages embed an image.

The pool is DataComp's: a pair is what Common Crawl's WAT lists for an `<img>` (ia-web-commons,
`ExtractingParseObserver`: the raw `src` and `alt` attribute values) after cc2dataset's rules
(`rom1504/cc2dataset`, `cc2dataset/main.py`): `IMG@/src` links with a non-empty `alt`, the URL
kept as written when it starts with http(s)://, else `urljoin(base, src)`. So a pool pair's text is
the alt attribute exactly as written (`&amp;`, newlines and double spaces stay), and an image whose
only URL is in `data-src` or `srcset` is no pair at all.

Every tag here also reports the WAT links it makes (`image_tag` returns the HTML and the
`(src, alt)` values of its `<img>` tags, alt None when the tag has none), which the WAT writer lists.
The presentation kinds, and what each rule set makes of them:
  PLAIN, UPPER, SRCSET   src = the URL: both rule sets see it
  PROTO_REL, BASE_REL    src relative to the page or <base href>: both resolve it to the URL
  LAZY, SRCSET_ONLY      the URL only in data-src / srcset: only the html5 rules see it
  LAZY_NOSCRIPT          a lazy <img> plus a plain one in <noscript>: both see it
"""
from __future__ import annotations

from html import escape

LAZY_PLACEHOLDER = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"

# Presentation kinds for a pool image on a page.
PLAIN, PROTO_REL, BASE_REL, LAZY, LAZY_NOSCRIPT, SRCSET, SRCSET_ONLY, UPPER = range(8)
PRESENTATION_P = (0.72, 0.05, 0.06, 0.06, 0.03, 0.05, 0.01, 0.02)


def attr(value: str) -> str:
    # Most values need no escaping; five substring checks cost a quarter of html.escape's five replaces.
    if "&" in value or "<" in value or ">" in value or '"' in value or "'" in value:
        return escape(value, quote=True)
    return value


def small_variant(url: str) -> str:
    """The URL of a smaller rendition (as srcset lists them): same image, other path suffix."""
    stem, dot, ext = url.rpartition(".")
    return f"{stem}-300x200.{ext}" if dot else url + "-300x200"


DATACOMP_INVISIBLE = frozenset((LAZY, SRCSET_ONLY))  # no IMG@/src link carries the URL


def image_tag(kind: int, url: str, alt: str | None, page_is_http: bool,
              base_prefix: str | None) -> tuple[str, tuple[tuple[str, str | None], ...]]:
    """(an <img> (sometimes with a <noscript> twin) whose URL is `url`, its WAT (src, alt) links).

    `url` and `alt` arrive as attribute values (HTML-escaped once per pair, not once per sighting).
    A URL with a query is never written relative: urljoin would rewrite an empty one (`x.jpg?`).
    """
    alt_attr = "" if alt is None else f' alt="{alt}"'
    if kind == PROTO_REL and page_is_http and url.startswith("http://") and "?" not in url:
        return f'<img src="{url[5:]}"{alt_attr}>', ((url[5:], alt),)
    if kind == BASE_REL and base_prefix and url.startswith(base_prefix) and "?" not in url:
        rel = url[len(base_prefix):]
        return f'<img src="{rel}"{alt_attr} loading="lazy">', ((rel, alt),)
    if kind == LAZY:
        return f'<img class="lazyload" src="{LAZY_PLACEHOLDER}" data-src="{url}"{alt_attr}>', ((LAZY_PLACEHOLDER, alt),)
    if kind == LAZY_NOSCRIPT:
        return (f'<img class="lazy" src="{LAZY_PLACEHOLDER}" data-lazy-src="{url}"{alt_attr}>'
                f'<noscript><img src="{url}"{alt_attr}></noscript>'), ((LAZY_PLACEHOLDER, alt), (url, alt))
    if kind == SRCSET:
        return f'<img src="{url}" srcset="{small_variant(url)} 300w, {url} 1024w"{alt_attr}>', ((url, alt),)
    if kind == SRCSET_ONLY:
        return f'<img srcset="{small_variant(url)} 1x, {url} 2x"{alt_attr}>', ()
    if kind == UPPER:
        return (f"<IMG SRC='{url}' ALT='{alt}'>" if alt is not None else f"<IMG SRC='{url}'>"), ((url, alt),)
    return f'<img src="{url}"{alt_attr}>', ((url, alt),)


_HEAD_END = '<meta name="viewport" content="width=device-width, initial-scale=1">\n</head>\n<body>\n'
_PAGE_END = "</main>\n<footer><p>&copy; sample web</p></footer>\n</body>\n</html>\n"


def page_html(title: str, lang: str, charset_meta: str | None, base_href: str | None,
              blocks: list[str], filler: str) -> str:
    title = escape(title)
    parts = [f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n',
             f"{charset_meta}\n" if charset_meta else "",
             f"<title>{title}</title>\n",
             f'<base href="{attr(base_href)}">\n' if base_href else "",
             _HEAD_END,
             f"<header><h1>{title}</h1><nav><a href=\"/\">Home</a></nav></header>\n<main>\n"]
    paragraph = f"<p>{filler}</p>\n"
    for i, block in enumerate(blocks):
        parts.append(f'<figure class="item-{i}">{block}</figure>\n')
        if i % 3 == 1:
            parts.append(paragraph)
    parts.append(_PAGE_END)
    return "".join(parts)


def charset_meta(charset: str, style: int) -> str:
    if style == 0:
        return f'<meta charset="{charset}">'
    return f'<meta http-equiv="Content-Type" content="text/html; charset={charset}">'
