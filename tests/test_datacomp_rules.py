"""DataComp's pair rules (curation/datacomp_rules.py) on hand-made HTML: each rule as the sources state it
(ia-web-commons' ExtractingParseObserver + htmlparser; cc2dataset's main.py)."""
from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from curation.datacomp_rules import absolute_url, img_links, link_rows, page_base, tag_attributes

PAGE = "http://www.example.com/blog/post.html"


def pairs_from_links(links, base: str, stats) -> list[tuple[str, str]]:
    """The (url, alt) pairs `link_rows` keeps, with its counts in `stats`."""
    return [(url, alt) for _, url, alt, *_tail in link_rows(list(links), base, None, (None,) * 4, stats)]


def reference_pairs(links, base: str, stats):
    """cc2dataset's rules written out link by link, the plain way (the oracle for `link_rows`' one loop)."""
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


def pairs(html: str, page: str = PAGE) -> list[tuple[str, str]]:
    links, base, _ = img_links(html)
    return list(pairs_from_links(links, page_base(page, base), Counter()))


def test_character_references_are_kept_as_written():
    assert pairs('<img src="http://a.com/x.jpg" alt="Tom &amp; Jerry &quot;live&quot; caf&#233;">') == [
        ("http://a.com/x.jpg", "Tom &amp; Jerry &quot;live&quot; caf&#233;")]


def test_whitespace_is_kept_as_written():
    html = '<img src="http://a.com/x.jpg" alt="a red\n    kite  on the beach ">'
    assert pairs(html) == [("http://a.com/x.jpg", "a red\n    kite  on the beach ")]


def test_an_absolute_url_is_kept_byte_for_byte():
    # urljoin would drop the empty query and keep nothing else from the base
    assert pairs('<img src="http://a.com/x.jpg?" alt="x">') == [("http://a.com/x.jpg?", "x")]
    assert pairs('<img src="https://a.com/./b/../x.jpg" alt="x">') == [("https://a.com/./b/../x.jpg", "x")]


def test_relative_urls_resolve_against_the_page_or_the_last_base():
    assert pairs('<img src="img/x.jpg" alt="x">') == [("http://www.example.com/blog/img/x.jpg", "x")]
    assert pairs('<img src="//cdn.example.net/x.jpg" alt="x">') == [("http://cdn.example.net/x.jpg", "x")]
    html = '<base href="http://static.a.com/one/"><base href="/two/"><img src="x.jpg" alt="x">'
    assert pairs(html) == [("http://www.example.com/two/x.jpg", "x")]  # the last <base> wins, joined to the page


def test_an_empty_src_becomes_the_page_url():
    assert pairs('<img src="" alt="coming soon">') == [(PAGE, "coming soon")]


def test_alt_must_be_present_and_non_empty():
    stats = Counter()
    links, _, _ = img_links('<img src="http://a.com/1.jpg"><img src="http://a.com/2.jpg" alt="">'
                            '<img src="http://a.com/3.jpg" alt=" "><img src="http://a.com/4.jpg" alt>')
    assert list(pairs_from_links(links, PAGE, stats)) == [("http://a.com/3.jpg", " ")]
    assert stats["images.dropped.no_alt"] == 2 and stats["images.dropped.empty_alt"] == 1


def test_only_src_counts_never_lazy_attributes_or_srcset():
    html = ('<img class="lazy" src="data:image/gif;base64,R0lG" data-src="http://a.com/1.jpg" alt="lazy">'
            '<img srcset="http://a.com/2.jpg 1x, http://a.com/2@2x.jpg 2x" alt="srcset only">'
            '<img data-original="http://a.com/3.jpg" alt="no src">')
    assert pairs(html) == []


def test_img_in_comments_scripts_and_styles_is_ignored():
    html = ('<!-- <img src="http://a.com/c.jpg" alt="comment"> -->'
            '<script type="text/template"><img src="http://a.com/s.jpg" alt="script"></script>'
            '<style>/* <img src="http://a.com/y.jpg" alt="style"> */</style>'
            '<noscript><img src="http://a.com/n.jpg" alt="noscript"></noscript>')
    assert pairs(html) == [("http://a.com/n.jpg", "noscript")]  # htmlparser reads <noscript> as markup


def test_attribute_names_are_case_insensitive_and_the_first_one_wins():
    html = "<IMG SRC='http://a.com/x.jpg' ALT='first' alt='second' src='http://a.com/y.jpg'>"
    assert pairs(html) == [("http://a.com/x.jpg", "first")]


@pytest.mark.parametrize("tag", [
    '<img src="a.jpg" alt="b">', '<IMG SRC="a.jpg" ALT="b" src="c.jpg" alt="d">', '<img\n src="a.jpg"\talt="" title=">">',
    '<img src="a.jpg" alt="b"/>', '<img src="" alt="b" data-src="c.jpg">', '<img src="a.jpg" alt="b" x=\'>\' y>',
    '<img src="a.jpg"alt="b">', '<img src="a.jpg" alt=b>', '<img src=\'a.jpg\' alt="b">', '<img alt="b" src="a.jpg">',
    '<img src="a.jpg" alt="b" unclosed="x', '<img src="a.jpg" srcset="c.jpg" alt="b">', '<img\xa0src="a.jpg" alt="b">'])
def test_the_usual_img_shape_reads_as_any_tag(tag):
    """`<img src="…" alt="…" …>` is read in the tokenizer's pass; it must give what the attribute scan gives."""
    html = f"<p>{tag} <img src='z.jpg' alt='z'></p>"
    links, _, n_img = img_links(html)
    expected, n = [], 0
    for body in re.findall(r"<img\b((?:[^>\"']++|\"[^\"]*+\"|'[^']*+')*+)>", html, re.I):
        n += 1
        found = tag_attributes(body, ("src", "alt"))
        if found.get("src") is not None:
            expected.append((found["src"], found.get("alt")))
    assert (links, n_img) == (expected, n)


def test_quoted_greater_than_and_bare_values():
    assert pairs('<img alt="a > b" src=http://a.com/x.jpg>') == [("http://a.com/x.jpg", "a > b")]


def test_only_http_results_are_kept():
    assert absolute_url("javascript:void(0)", PAGE) is None
    assert absolute_url("ftp://a.com/x.jpg", PAGE) is None
    assert absolute_url("x.jpg", "http://[broken") is None  # a join that raises keeps "x.jpg": not http, dropped


def _reference_absolute_url(url, base):
    """cc2dataset's make_link_absolute + its http(s) filter, spelled out with urljoin alone."""
    from urllib.parse import urljoin

    if not url.startswith(("http://", "https://")):
        try:
            url = urljoin(base, url)
        except ValueError:
            pass
    return url if url.startswith(("http://", "https://")) else None


@pytest.mark.parametrize("base", ["https://www.site.example/dir/post.html", "http://h.example", "HTTP://H.example/a/",
                                  "http://[::1/broken/", "ftp://files.example/x/", "", "//no.scheme/x",
                                  "https://h.example/a b/", "http://h.example:99/p?q#f"])
def test_the_scheme_shortcut_gives_what_urljoin_gives(base):
    urls = ["data:image/png;base64,AAA", "DATA:x", "javascript:void(0)", "mailto:a@b.example", "ftp://f.example/x",
            "HTTP://Up.example/x.jpg", "Http:relative.jpg", "https:x.jpg", "http:/x.jpg", "httpx://a/b",
            "h+t.tp:x", "1data:x", "da\nta:x", " data:x", "\tjavascript:x", "//cdn.example/a.jpg", "a:b:c",
            "file:///etc/passwd", "svn://r.example/x", "tel:+1", "c:\\dir\\file.jpg", "x.jpg", "", "?q", "#f",
            "//[::1/x", "ftp://[::1/x", "http://[::1/x", "../up.jpg", "/abs.jpg", "//cdn.example/a.jpg?",
            "//cdn.example/a;b.jpg", "//cdn.example:80/x", "//CDN.example/./x/../y.jpg", "// x", "//\tx/y",
            "//cdn.example/a.jpg#", "//cdn.example/é.jpg", "//"]
    for url in urls:
        assert absolute_url(url, base) == _reference_absolute_url(url, base), (url, base)


@pytest.mark.parametrize("base", ["https://www.site.example/dir/post.html", "http://h.example", "http://h.example/",
                                  "http://h.example:8080/a//b/c?q=1#f", "http://h.example/a/./b/", "http://h.example/a/../",
                                  "http://h.example/a;p/b", "http://h.example/a/b;p", "HTTP://h.example/a/",
                                  "http://h.example/%7Ea/b.html", "http://h.example?q", "http://h.example#f",
                                  "http://user@h.example/a/", "https://h.example/a b/c", "http://h.example/é/"])
def test_the_relative_shortcut_gives_what_urljoin_gives(base):
    """`_join_relative` replaces urljoin for plain relative paths (most images on real pages): random
    references over the characters urljoin treats specially must resolve as urljoin resolves them."""
    rng = random.Random(base)
    alphabet = ["a", "b", "x.jpg", "/", "/", ".", "..", "?", "#", ";", "%20", ":", " ", "\t", "é", "\\", "=", "&", "~"]
    fixed = ["x.jpg", "/abs/x.jpg", "a/b/../c.jpg", "./x.jpg", "../x.jpg", "a//b.jpg", "/a//b.jpg", "x.jpg?", "x.jpg#",
             "x.jpg?q=1#f", "x?a?b#c#d", "..", ".", "a/.", "a/..", ".hidden/x.jpg", "/", "?q", "#f", "x;p.jpg",
             "a:b/c.jpg", "1a:b.jpg", "a/b:c.jpg", "x.jpg ", " x.jpg", "x\tjpg", "é.jpg", "\\x.jpg", "%2e%2e/x.jpg"]
    urls = fixed + ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))) for _ in range(3000)]
    for url in urls:
        if url[:2] == "//":
            continue
        assert absolute_url(url, base) == _reference_absolute_url(url, base), (url, base)


@pytest.mark.parametrize("page", ["https://www.site.example/dir/post.html", "http://h.example", "HTTP://H.example/a/",
                                  "http://[::1/broken/", "ftp://files.example/x/", "", "https://h.example:99/p?q#f"])
def test_page_base_is_the_page_url_joined_with_the_base_href(page):
    from urllib.parse import urljoin

    for href in ["http://static.example/", "https://static.example/a/b", "http://static.example/a?", "http://s.example/a#",
                 "http://s.example/a;p", "http://s.example:80/", "http://S.example/./x/../", "http://[::1/x", "/media/",
                 "sub/", "", "//cdn.example/", "HTTP://up.example/", "http://s.example/é/", " http://s.example/"]:
        try:
            expected = urljoin(page, href)
        except ValueError:
            expected = page
        assert page_base(page, href) == expected, (page, href)
    assert page_base(page, None) == page


def test_link_rows_give_the_pairs_and_counts_of_the_rules_link_by_link():
    links = [("http://i.example/a.jpg", "a"), ("b.jpg", "b"), ("c.jpg", None), ("d.jpg", ""), ("data:x", "e"),
             ("", "f"), ("//cdn.example/g.jpg", "g"), ("mailto:x@y", "h"), ("http://i.example/i.jpg", " ")]
    base = "https://www.example.com/dir/page.html"
    ref, got = Counter(), Counter()
    pairs = list(reference_pairs(links, base, ref))
    tail = ("T", "CC-MAIN-2020-05", "f.warc.gz", 7)
    rows = link_rows(links, base, "P", tail, got)
    assert rows == [("P", url, alt, *tail) for url, alt in pairs]
    assert +got == +ref
