"""HTML for the sample web's pages: the many ways real pages embed an image.

Every pool image is written so that the documented extraction rule recovers exactly its
URL and whitespace-normalised alt text:
  url  = resolve(base or page URL, src)            if src is usable (not empty, not data:/javascript:)
       = resolve(..., data-src | data-lazy-src | data-original)   for lazy-loading placeholders
       = resolve(..., largest candidate of srcset)  when there is no usable src
  text = " ".join(html_unescape(alt).split())
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


def image_tag(kind: int, url: str, alt: str | None, page_is_http: bool, base_prefix: str | None) -> str:
    """An <img> (sometimes with a <noscript> twin) whose extracted URL is `url`.

    `url` and `alt` arrive HTML-escaped (escape once per pair, not once per sighting).
    """
    alt_attr = "" if alt is None else f' alt="{alt}"'
    if kind == PLAIN:
        return f'<img src="{url}"{alt_attr}>'
    if kind == PROTO_REL and page_is_http and url.startswith("http://"):
        return f'<img src="{url[5:]}"{alt_attr}>'
    if kind == BASE_REL and base_prefix and url.startswith(base_prefix):
        return f'<img src="{url[len(base_prefix):]}"{alt_attr} loading="lazy">'
    if kind == LAZY:
        return f'<img class="lazyload" src="{LAZY_PLACEHOLDER}" data-src="{url}"{alt_attr}>'
    if kind == LAZY_NOSCRIPT:
        return (f'<img class="lazy" src="{LAZY_PLACEHOLDER}" data-lazy-src="{url}"{alt_attr}>'
                f'<noscript><img src="{url}"{alt_attr}></noscript>')
    if kind == SRCSET:
        return f'<img src="{url}" srcset="{small_variant(url)} 300w, {url} 1024w"{alt_attr}>'
    if kind == SRCSET_ONLY:
        return f'<img srcset="{small_variant(url)} 1x, {url} 2x"{alt_attr}>'
    if kind == UPPER:
        return f"<IMG SRC='{url}' ALT='{alt}'>" if alt is not None else f"<IMG SRC='{url}'>"
    return f'<img src="{url}"{alt_attr}>'


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
