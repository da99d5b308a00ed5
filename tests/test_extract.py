"""WARC image extraction: edge cases, damage, accounting, and the real shared files (issue 4)."""
from __future__ import annotations

import datetime as dt
import gzip
import itertools
import json

import pytest

from curation.extract import ExtractConfig, extract_file
from curation.html_images import best_srcset_candidate, decode_html, pick_src, resolve_url
from curation.warc_reader import ExtractStats, accounting_errors
from curation.extract_cli import main as extract_main
from sample_web.warc import WarcWriter
from ticcore.schemas import CANDIDATES

from .conftest import REAL_WARC_DIR

T0 = dt.datetime(2016, 3, 7, 12, 0, tzinfo=dt.timezone.utc)


def _warc(path, pages, snapshot="CC-MAIN-2016-10"):
    """pages: (url, status, content type, body bytes) -> a per-record-gzip WARC like Common Crawl's."""
    w = WarcWriter(path, id_seed="test")
    w.warcinfo(T0, snapshot, path.name)
    for i, (url, status, ctype, body) in enumerate(pages):
        headers = [("Content-Type", ctype)] if ctype else []
        w.exchange(url, T0 + dt.timedelta(minutes=i), "10.0.0.1", status, "OK" if status == 200 else "X",
                   headers, body, "test-agent")
    w.close()
    return path


HTML5 = ExtractConfig(pair_rules="html5")


def _rows(path, cfg=ExtractConfig()):
    stats = ExtractStats()
    rows = list(extract_file(str(path), stats, cfg))
    assert accounting_errors(stats) == []
    return rows, stats


PAGE = """<html><head><base href="http://static.example.org/media/"></head><body>
<img src="a.jpg" alt="  A   relative\n image ">
<img src="//cdn.example.net/p.png" alt="protocol relative">
<img src="http://x.example.com/abs.jpg" alt="Tom &amp; Jerry &eacute;t&eacute;">
<img src="data:image/gif;base64,R0lGOD" data-src="lazy.jpg" alt="lazy one">
<img srcset="s-300.jpg 300w, s-1024.jpg 1024w, s-640.jpg 640w" alt="srcset only">
<img src="data:image/png;base64,iVBOR" alt="inline">
<img src="javascript:void(0)" alt="js">
<img src="" alt="empty">
<img alt="no src at all">
<img src="http://[2001:db8::1/broken.jpg" alt="bad ipv6">
<img src="http://host.example.com:port/x.jpg" alt="bad port">
<img src="mailto:someone@example.com" alt="not http">
<img src="b.jpg">
<IMG SRC='UPPER.JPG' ALT='upper case'>
</body></html>"""


def test_extraction_rules_on_one_page(tmp_path):
    """The html5 rules."""
    path = _warc(tmp_path / "CC-MAIN-2016-10" / "page.warc.gz",
                 [("https://www.site.example/post.html", 200, "text/html; charset=utf-8", PAGE.encode())])
    rows, stats = _rows(path, HTML5)
    got = [(r[1], r[2]) for r in rows]
    assert got == [
        ("http://static.example.org/media/a.jpg", "A relative image"),
        ("http://cdn.example.net/p.png", "protocol relative"),  # scheme of the base, not of the page
        ("http://x.example.com/abs.jpg", "Tom & Jerry été"),
        ("http://static.example.org/media/lazy.jpg", "lazy one"),
        ("http://static.example.org/media/s-1024.jpg", "srcset only"),
        ("http://static.example.org/media/b.jpg", ""),
        ("http://static.example.org/media/UPPER.JPG", "upper case"),
    ]
    assert stats["images.input"] == 14 and stats["images.kept"] == 7
    assert stats["images.dropped.data_uri"] == 1
    assert stats["images.dropped.javascript_src"] == 1
    assert stats["images.dropped.empty_src"] == 1
    assert stats["images.dropped.no_src"] == 1
    assert stats["images.dropped.unparseable_url"] == 2
    assert stats["images.dropped.unsupported_scheme"] == 1
    page_url, _, _, crawl_time, snapshot, warc_file, offset = rows[0]
    assert page_url == "https://www.site.example/post.html"
    assert crawl_time == T0 and snapshot == "CC-MAIN-2016-10" and warc_file == str(path)
    with open(path, "rb") as fh:  # the offset points at the response's gzip member
        fh.seek(offset)
        assert gzip.GzipFile(fileobj=fh).read(200).count(b"WARC-Type: response") == 1


def test_datacomp_rules_on_one_page(tmp_path):
    """DataComp's rules (the default) on the same page: alts as written, src only, http(s) URLs kept as
    written, others joined to the <base>; no alt or an empty one drops the image."""
    path = _warc(tmp_path / "CC-MAIN-2016-10" / "page.warc.gz",
                 [("https://www.site.example/post.html", 200, "text/html; charset=utf-8", PAGE.encode())])
    rows, stats = _rows(path)
    assert [(r[1], r[2]) for r in rows] == [
        ("http://static.example.org/media/a.jpg", "  A   relative\n image "),
        ("http://cdn.example.net/p.png", "protocol relative"),
        ("http://x.example.com/abs.jpg", "Tom &amp; Jerry &eacute;t&eacute;"),
        ("http://static.example.org/media/", "empty"),  # urljoin(base, "") is the base, as in CommonPool
        ("http://[2001:db8::1/broken.jpg", "bad ipv6"),  # starts with http://: kept byte for byte
        ("http://host.example.com:port/x.jpg", "bad port"),
        ("http://static.example.org/media/UPPER.JPG", "upper case"),
    ]
    assert stats["images.input"] == 14 and stats["images.kept"] == 7
    assert stats["images.dropped.no_src"] == 2  # the srcset-only and the src-less <img>
    assert stats["images.dropped.not_http_url"] == 4  # two data:, javascript:, mailto:
    assert stats["images.dropped.no_alt"] == 1
    assert rows[0][0] == "https://www.site.example/post.html" and rows[0][3:6] == (T0, "CC-MAIN-2016-10", str(path))


def test_unknown_rules_and_formats_are_refused():
    from ticcore.errors import InputError

    with pytest.raises(InputError, match="pair rules must be one of datacomp, html5"):
        ExtractConfig(pair_rules="clip")
    with pytest.raises(InputError, match="input format must be one of warc, wat"):
        ExtractConfig(input_format="arc")
    with pytest.raises(InputError, match="WAT input takes the datacomp pair rules only"):
        ExtractConfig(input_format="wat", pair_rules="html5")
    with pytest.raises(InputError, match="reads WARC input only"):
        ExtractConfig(input_format="wat", reader="fastwarc")


def test_srcset_and_src_helpers():
    assert best_srcset_candidate("a.jpg 1x, b.jpg 2x") == "b.jpg"
    assert best_srcset_candidate("a.jpg 100w,b.jpg 50w") == "a.jpg"
    assert best_srcset_candidate("") == ""
    assert pick_src({"src": "x.jpg", "data-src": "y.jpg"}) == ("x.jpg", "")
    assert pick_src({"src": "data:,", "data-lazy-src": "y.jpg"}) == ("y.jpg", "")
    assert resolve_url("http://a.example/b/c.html", "../d.jpg") == ("http://a.example/d.jpg", "")
    assert resolve_url("http://a.example/", "ftp://x.example/y.jpg") == (None, "unsupported_scheme")


def _urljoin_rule(base, raw):
    """The documented URL rule the plain way: urljoin, then an http(s) URL with a host."""
    from urllib.parse import urljoin, urlsplit

    try:
        url = urljoin(base, raw)
        parts = urlsplit(url)
        parts.port
    except ValueError:
        return None, "unparseable_url"
    if parts.scheme not in ("http", "https"):
        return None, "unsupported_scheme"
    return (url, "") if parts.hostname else (None, "unparseable_url")


URL_EDGES = ["http://a.example/x.jpg", "https://a.example/x.jpg?w=1#top", "http://a.example", "http://a.example?q",
             "http://a.example/x?", "http://a.example/x#", "http://a.example/x?#f", "http://a.example/x??q#f#",
             "http://a.example/p;", "http://a.example/p;v", "http://a.example/a;b/c", "http://a.example/x?a;b",
             "http://a.example:80/x", "http://a.example:99999/x", "http://a.example:/x", "http://[::1]/x",
             "http://[2001:db8::1/x", "http://a b.example/x", "http://a.example/x y", "http://a.example/x\u00a0",
             "http://a.example/caf\u00e9.jpg", "http://\u00e9.example/x", "HTTP://A.EXAMPLE/X", "http:/a.example/x",
             "http://a.example/x\\y", "http://-/x", "http://./x", "//a.example/x.jpg", "//a.example/x?", "//a.example",
             "//[::1/x", "x.jpg", "/x.jpg", "?q", "#f", "ftp://a.example/x", "data:,x", "javascript:void(0)", " ", ""]
URL_BASES = ["http://p.example/dir/page.html", "https://p.example/", "HTTPS://P.EXAMPLE/a?b#c",
             "http://[bad/page.html", "http://p.example:99999/x"]


@pytest.mark.parametrize("page_url", URL_BASES)
def test_url_shortcuts_give_what_urljoin_gives(page_url):
    import html as html_lib

    from curation.html_images import page_images

    for raw in URL_EDGES:
        assert resolve_url(page_url, raw) == _urljoin_rule(page_url, raw), raw
        for base_tag in ("", '<base href="https://b.example/m/">'):
            stats = ExtractStats()
            page = f'<html><head>{base_tag}</head><body><img src="{html_lib.escape(raw)}" alt="a"></body></html>'
            got = page_images(page, page_url, stats)
            src, reason = pick_src({"src": raw})
            base = page_url
            if base_tag:
                base = _urljoin_rule(page_url, "https://b.example/m/")[0] or page_url
            url, reason = _urljoin_rule(base, src) if src is not None else (None, reason)
            assert got == ([(url, "a")] if url else []), (page_url, base_tag, raw)
            assert stats["images.input"] == 1 and stats["images.kept"] == len(got)


def test_header_lines_read_as_a_search_per_name_would():
    import random
    import re

    from curation.warc_reader import _Headers

    def search(head, name):
        m = re.search(rb"\r\n" + re.escape(name.lower().encode()) + rb"[ \t]*:[ \t]*([^\r\n]*)", head, re.I)
        return m.group(1).decode("utf-8", "replace").strip() if m else None

    rng = random.Random(0)
    atoms = [b"\r\n", b"\r", b"\n", b" ", b"\t", b":", b"a", b"\xc3\xa9", b"\xff", b"Content-Type", b"CONTENT-type",
             b"content-length", b"WARC-Type", b"Transfer-Encoding", b"content-encoding", b"WARC-Target-URI", b"-X"]
    names = ["Content-Type", "content-length", "WARC-Type", "warc-target-uri", "Transfer-Encoding",
             "Content-Encoding", "WARC-Date", "X", "Content-Type-X"]
    for _ in range(5000):
        head = b"".join(rng.choice(atoms) for _ in range(rng.randint(0, 25)))
        headers = _Headers("", head)
        for name in names:
            assert headers.get_header(name) == search(head, name), (head, name)


def test_pages_go_to_the_parser_as_utf8_bytes_only_when_that_is_their_text():
    from curation.html_images import _ASCII_TRANSPARENT, html_for_parser

    ascii_bytes = bytes(range(128))
    for codec in _ASCII_TRANSPARENT:
        assert ascii_bytes.decode(codec) == ascii_bytes.decode("ascii"), codec
    for text, codec in [("plain ascii", "cp1252"), ("caf\u00e9", "utf-8"), ("caf\u00e9", "cp1252"),
                        ("\ufeffbom", "utf-8"), ("\u8d64\u3044", "shift_jis"), ("ascii", "utf-16")]:
        body = text.encode(codec)
        for ctype in (f"text/html; charset={codec}", "text/html"):
            for page in (body, b"\xff" + body):
                stats = ExtractStats()
                got = html_for_parser(page, ctype, stats)
                want = decode_html(page, ctype, ExtractStats())
                assert got == want or isinstance(got, bytes) and got.decode("utf-8") == want


@pytest.mark.parametrize("charset, declared_where", [
    ("windows-1251", "header"), ("shift_jis", "meta"), ("gbk", "header"), ("iso-8859-1", "meta"),
    ("windows-1251", "nowhere"), ("utf-8", "nowhere"),
])
def test_charsets_header_then_meta_then_sniffed(tmp_path, charset, declared_where):
    alt = {"windows-1251": "Фотография дня: красный автобус на улице города",
           "shift_jis": "赤い写真です", "gbk": "红色的商品图片", "iso-8859-1": "Café à la crème brûlée",
           "utf-8": "Ünïcödé ✓ caption"}[charset]
    meta = f'<meta charset="{charset}">' if declared_where == "meta" else ""
    body = (f"<html><head>{meta}<title>t</title></head><body><p>{alt} {alt} {alt}</p>"
            f'<img src="http://i.example/x.jpg" alt="{alt}"></body></html>').encode(charset)
    ctype = f"text/html; charset={charset}" if declared_where == "header" else "text/html"
    rows, stats = _rows(_warc(tmp_path / "c.warc.gz", [("http://p.example/", 200, ctype, body)]))
    assert [r[2] for r in rows] == [alt]
    source = {"header": "header", "meta": "meta"}.get(declared_where)
    if source:
        assert stats[f"info.charset.{source}"] == 1
    else:
        assert stats["info.charset.sniffed_utf8"] + stats["info.charset.sniffed"] == 1


def test_responses_that_are_not_pages_are_counted(tmp_path):
    html = b'<html><body><img src="http://i.example/y.jpg" alt="not extracted"></body></html>'
    path = tmp_path / "mixed.warc.gz"
    w = WarcWriter(path, id_seed="t")
    w.warcinfo(T0, "CC-MAIN-2016-10", path.name)
    w.exchange("http://p.example/404", T0, "10.0.0.1", 404, "Not Found", [("Content-Type", "text/html")], html, "a")
    w.exchange("http://p.example/x.jpg", T0, "10.0.0.1", 200, "OK", [("Content-Type", "image/jpeg")], b"\xff\xd8", "a")
    w.exchange("http://p.example/big.html", T0, "10.0.0.1", 200, "OK", [("Content-Type", "text/html")],
               b"<html><body>" + b"<p>x</p>" * 200_000 + html + b"</body></html>", "a")
    w.dns_response("p.example", "10.0.0.1", T0)
    w.metadata("http://p.example/", T0, "fetchTimeMs: 1\r\n")
    w.close()
    rows, stats = _rows(path, ExtractConfig(max_page_bytes=1 << 20, pair_rules="html5"))
    assert rows == []
    assert stats["responses.input"] == 4
    assert stats["responses.dropped.non_200_status"] == 1
    assert stats["responses.dropped.non_html"] == 1
    assert stats["responses.dropped.page_too_large"] == 1
    assert stats["responses.dropped.non_http_payload"] == 1
    # DataComp's rules read every HTML response, whatever its status (the WAT describes them all)
    rows, stats = _rows(path, ExtractConfig(max_page_bytes=1 << 20))
    assert [(r[0], r[1], r[2]) for r in rows] == [("http://p.example/404", "http://i.example/y.jpg", "not extracted")]
    assert stats["responses.dropped.non_200_status"] == 0 and stats["responses.kept"] == 1
    assert stats["responses.dropped.page_too_large"] == 1 and stats["responses.dropped.non_html"] == 1


def test_crawl_dates_outside_the_crawl_years_fail_as_bad_dates(tmp_path):
    path = tmp_path / "dates.warc.gz"
    w = WarcWriter(path, id_seed="t")
    w.warcinfo(T0, "CC-MAIN-2016-10", path.name)
    body = b'<html><body><img src="http://i.example/y.jpg" alt="a picture"></body></html>'
    for when in (dt.datetime(9999, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(1900, 1, 1, tzinfo=dt.timezone.utc),
                 T0):
        w.exchange(f"http://p.example/{when.year}.html", when, "10.0.0.1", 200, "OK",
                   [("Content-Type", "text/html")], body, "a")
    w.close()
    rows, stats = _rows(path)
    assert [r[3].year for r in rows] == [2016]
    assert stats["responses.failed.bad_warc_date"] == 2


def _page(i):
    return (f"http://p.example/{i}.html", 200, "text/html",
            f'<html><body><img src="http://i.example/{i}.jpg" alt="picture number {i}"></body></html>'.encode())


def test_a_damaged_gzip_member_is_skipped_and_reading_resumes(tmp_path):
    path = _warc(tmp_path / "ok.warc.gz", [_page(i) for i in range(6)])
    data = path.read_bytes()
    # Find the members, then cut one response member short in the middle of the file.
    import zlib

    starts, pos = [], 0
    while pos < len(data):
        starts.append(pos)
        d = zlib.decompressobj(31)
        d.decompress(data[pos:])
        pos = len(data) - len(d.unused_data)
    victim = 6  # warcinfo, then (request, response) pairs: member 6 is page 2's response
    cut = starts[victim] + (starts[victim + 1] - starts[victim]) // 2
    damaged = tmp_path / "damaged.warc.gz"
    damaged.write_bytes(data[:cut] + data[starts[victim + 1]:])
    rows, stats = _rows(damaged)
    assert sorted(r[2] for r in rows) == [f"picture number {i}" for i in (0, 1, 3, 4, 5)]
    assert stats["records.failed.corrupt_gzip_member"] == 1


def test_a_member_cut_off_by_the_end_of_the_file_is_read_for_what_it_holds(tmp_path):
    path = _warc(tmp_path / "ok.warc.gz", [_page(i) for i in range(2)])
    data = path.read_bytes()
    clipped = tmp_path / "clipped.warc.gz"
    clipped.write_bytes(data[:-30])  # lose the gzip trailer and a little of the last page
    rows, stats = _rows(clipped)
    assert stats["info.truncated_record"] == 1
    assert [r[2] for r in rows][:1] == ["picture number 0"]


def _member_bytes(data: bytes) -> list[bytes]:
    import zlib

    members, pos = [], 0
    while pos < len(data):
        d = zlib.decompressobj(31)
        d.decompress(data[pos:])
        end = len(data) - len(d.unused_data)
        members.append(data[pos:end])
        pos = end
    return members


def _odd_records_warc(path):
    """Records that FastWARC reads differently from warcio, or not at all."""
    import gzip as gz

    w = WarcWriter(path, id_seed="odd")
    w.warcinfo(T0, "CC-MAIN-2016-10", path.name)

    def response(url, http_block, warc_type="response"):
        w.write_member(w._record([("WARC-Type", warc_type), ("WARC-Date", "2016-03-07T12:00:00Z"),
                                  ("WARC-Target-URI", url), ("Content-Type", "application/http; msgtype=response")],
                                 http_block))

    html = b'<html><body><img src="http://i.example/odd.jpg" alt="odd one"></body></html>'
    packed = gz.compress(html, mtime=0)
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(packed), packed)
    response("http://p.example/chunked.html", b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
             b"Transfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n" + chunked)
    response("http://p.example/bare-lf.html", b"HTTP/1.1 200 OK\nContent-Type: text/html\n\n" + html)
    response("http://p.example/capital.html", b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + html,
             warc_type="Response")
    w.dns_response("p.example", "10.0.0.9", T0)
    w.metadata("http://p.example/0.html", T0, "fetchTimeMs: 12\r\n")
    for i in range(3):
        w.exchange(*_page(i)[:1], T0, "10.0.0.1", 200, "OK", [("Content-Type", "text/html")], _page(i)[3], "ua")
    w.close()
    return path


def _reader_cases(tmp_path) -> dict:
    """name -> gzip WARC bytes: a clean file, and each kind of damage or oddity the readers meet."""
    import gzip as gz
    import zlib

    clean = _warc(tmp_path / "clean.warc.gz", [_page(i) for i in range(6)]).read_bytes()
    mem = _member_bytes(clean)  # warcinfo, then (request, response) pairs
    raw = [zlib.decompress(m, 31) for m in mem]
    half = len(raw[4]) // 2
    bad_crc = bytearray(mem[4])
    bad_crc[-6] ^= 0xFF
    return {
        "clean": clean,
        "a gzip member that is not a record": b"".join(mem[:3] + [gz.compress(b"no record here\r\n\r\n")] + mem[3:]),
        "bytes between members": b"".join(mem[:3]) + b"x" * 40 + b"".join(mem[3:]),
        "two records in one member": b"".join(mem[:1] + [gz.compress(raw[1] + raw[2])] + mem[3:]),
        "a record split over two members": b"".join(mem[:4] + [gz.compress(raw[4][:half]), gz.compress(raw[4][half:])]
                                                    + mem[5:]),
        "a bad CRC": b"".join(mem[:4] + [bytes(bad_crc)] + mem[5:]),
        "a member cut in the middle": b"".join(mem[:4] + [mem[4][:len(mem[4]) // 2]] + mem[5:]),
        "the last member cut off": clean[:-30],
        "only a cut-off member": mem[0][:len(mem[0]) // 2],
        "odd records": _odd_records_warc(tmp_path / "odd.warc.gz").read_bytes(),
    }


def _without_reader_info(stats) -> dict:
    return {k: v for k, v in stats.items() if v and not k.startswith("info.fastwarc.")}


def test_the_fastwarc_reader_gives_the_rows_and_counts_of_the_default_one(tmp_path):
    for (name, data), rules in itertools.product(_reader_cases(tmp_path).items(), ("datacomp", "html5")):
        path = tmp_path / f"{name.replace(' ', '-')}.warc.gz"
        path.write_bytes(data)
        ours, ours_stats = _rows(path, ExtractConfig(pair_rules=rules))
        fast, fast_stats = _rows(path, ExtractConfig(reader="fastwarc", pair_rules=rules))
        assert fast == ours, name
        assert _without_reader_info(fast_stats) == _without_reader_info(ours_stats), name
        if name == "clean":  # all but the last record (read again to check its end) came from FastWARC
            assert fast_stats["info.fastwarc.records_taken"] == ours_stats["records.input"] - 1 > 10
            assert fast_stats["info.fastwarc.spans_reread"] == 0
    odd, _ = _rows(tmp_path / "odd-records.warc.gz")
    assert [r[0].rsplit("/", 1)[1] for r in odd] == ["chunked.html", "bare-lf.html", "0.html", "1.html", "2.html"]


def test_the_fastwarc_reader_agrees_on_the_sample_web_and_the_real_files(sample_web):
    paths = [sample_web / line for line in (sample_web / "warc.manifest").read_text().split()]
    if REAL_WARC_DIR.is_dir():
        paths += sorted(p for p in REAL_WARC_DIR.iterdir() if ".warc" in p.name or ".arc" in p.name)
    taken = 0
    for path in paths:
        ours, ours_stats = _rows(path)
        fast, fast_stats = _rows(path, ExtractConfig(reader="fastwarc"))
        assert fast == ours, path.name
        assert _without_reader_info(fast_stats) == _without_reader_info(ours_stats), path.name
        taken += fast_stats["info.fastwarc.records_taken"]
    assert taken > 1000


class _Panic(BaseException):
    """What a panic in FastWARC's Rust code looks like from Python (pyo3's PanicException)."""


def test_the_fastwarc_reader_hands_over_when_fastwarc_fails_or_panics(tmp_path, monkeypatch):
    import fastwarc.warc

    path = _warc(tmp_path / "p.warc.gz", [_page(i) for i in range(4)])
    ours, ours_stats = _rows(path)
    real = fastwarc.warc.ArchiveIterator

    def refusing(*args, **kwargs):
        raise _Panic("stream detection failed")

    def panicking_at_the_third_record(*args, **kwargs):
        for n, rec in enumerate(real(*args, **kwargs)):
            if n == 2:
                raise _Panic("boom")
            yield rec

    for fake in (refusing, panicking_at_the_third_record):
        monkeypatch.setattr(fastwarc.warc, "ArchiveIterator", fake)
        fast, stats = _rows(path, ExtractConfig(reader="fastwarc"))
        assert fast == ours, fake.__name__
        assert _without_reader_info(stats) == _without_reader_info(ours_stats), fake.__name__
        assert stats["info.fastwarc.gave_up._Panic"] == 1
    monkeypatch.setattr(fastwarc.warc, "ArchiveIterator", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        _rows(path, ExtractConfig(reader="fastwarc"))


def test_an_unknown_reader_is_refused():
    with pytest.raises(ValueError, match="reader must be one of warcio, fastwarc"):
        ExtractConfig(reader="bs4")


def test_missing_and_non_warc_files_are_counted(tmp_path):
    junk = tmp_path / "junk.warc.gz"
    junk.write_bytes(b"this is not a warc file at all\n" * 10)
    stats = ExtractStats()
    assert list(extract_file(str(tmp_path / "nope.warc.gz"), stats)) == []
    assert list(extract_file(str(junk), stats)) == []
    assert stats["files.failed.missing"] == 1
    assert stats["files.failed.not_a_warc_file"] == 1
    assert accounting_errors(stats) == []


def test_sample_web_extraction_matches_the_ground_truth(sample_web):
    import pandas as pd
    import pyarrow.parquet as pq

    stats = ExtractStats()
    rows = []
    for line in (sample_web / "warc.manifest").read_text().split():
        rows.extend(extract_file(str(sample_web / line), stats))
    assert accounting_errors(stats) == []
    assert stats["records.failed.corrupt_gzip_member"] >= 1
    df = pd.DataFrame(rows, columns=CANDIDATES.names)
    firsts = df.groupby(["url", "text"])["crawl_time"].min().rename("extracted_first").reset_index()
    truth = pq.read_table(sample_web / "truth").to_pandas().merge(firsts, on=["url", "text"], how="left")
    seen = truth[truth.first_seen_time.notna()]
    assert seen.extracted_first.notna().all()
    assert (seen.extracted_first == seen.first_seen_time).all()
    assert truth[truth.first_seen_time.isna()].extracted_first.isna().all()


def test_tic_extract_cli(sample_web, tmp_path, capsys):
    import pyarrow.parquet as pq

    out = tmp_path / "cands"
    assert extract_main([str(sample_web / "warc.manifest"), str(out)]) == 0
    stats = json.loads((out / "stats.json").read_text())
    table = pq.read_table(out / "candidates.parquet")
    assert table.num_rows == stats["rows"] == stats["counters"]["images.kept"] > 0
    assert stats["accounting"]["ok"]
    assert table.schema.field("crawl_time").type.unit == "us"
    assert table.schema.remove_metadata() == CANDIDATES.arrow_schema()  # the one candidates contract
    assert extract_main([str(sample_web / "warc.manifest"), str(tmp_path / "fast"), "--reader", "fastwarc"]) == 0
    assert pq.read_table(tmp_path / "fast" / "candidates.parquet").equals(table)
    (tmp_path / "empty.manifest").write_text("# nothing here\n")
    assert extract_main([str(tmp_path / "empty.manifest"), str(tmp_path / "o2")]) == 2
    assert "manifest is empty" in capsys.readouterr().err


# Images per file with an http(s) src on HTML pages with status 200, per SOURCES.md (src counts;
# sample-0001 has 8 data: URIs among its 149, which are dropped by rule).
REAL_IMAGES = {
    "cc.warc.gz": 8, "whirlwind.warc.gz": 13, "iana.warc.gz": 32, "example.warc.gz": 788, "example.arc.gz": 788,
    "issue-493.warc": 10, "IAH-urls-wget.warc.gz": 50, "sample-0000.warc.gz": 240, "sample-0001.warc.gz": 141,
    "warcfile.warc.gz": 149, "clueweb-quirk.warc.gz": 1252, "clipped.warc.gz": 7,
    "BL-20140325121225068-00000-32090~opera~8443.warc.gz": 74,
    "BL-20140325122341434-00000-32090~opera~8443.warc.gz": 5,
    "flashfrozen-jwat-recompressed.warc.gz": 48, "books.toscrape.warc": 20, "parseMe.warc.gz": 2,
}


@pytest.mark.skipif(not REAL_WARC_DIR.is_dir(), reason="shared WARC files not present")
@pytest.mark.parametrize("name", sorted(REAL_IMAGES))
def test_real_warc_files_extract_without_error(name):
    rows, stats = _rows(REAL_WARC_DIR / name, HTML5)
    assert len(rows) == REAL_IMAGES[name]
    assert all(r[1].startswith(("http://", "https://")) for r in rows)
    # DataComp's rules: every record, response and <img> accounted for too (in _rows); the pairs
    # are a subset of the <img> tags read, each with a non-empty alt
    rows, stats = _rows(REAL_WARC_DIR / name)
    assert stats["images.kept"] == len(rows) <= stats["images.input"]
    assert stats["records.input"] == sum(v for k, v in stats.items() if k.startswith("info.record_type.")) + \
        sum(v for k, v in stats.items() if k.startswith("records.failed."))
    assert all(r[1].startswith(("http://", "https://")) and r[2] for r in rows)


@pytest.mark.skipif(not REAL_WARC_DIR.is_dir(), reason="shared WARC files not present")
def test_arc_and_warc_copies_of_one_crawl_give_the_same_rows():
    arc, _ = _rows(REAL_WARC_DIR / "example.arc.gz")
    warc, _ = _rows(REAL_WARC_DIR / "example.warc.gz")
    assert [r[:3] for r in arc] == [r[:3] for r in warc]


def test_tic_extract_overwrites_only_its_own_output(tmp_path):
    from curation.extract_cli import extract_to_dir
    from ticcore.errors import InputError

    other = tmp_path / "other"
    other.mkdir()
    (other / "stats.json").write_text('{"tool": "tic-filter"}\n')
    with pytest.raises(InputError, match="was not written by tic-extract"):
        extract_to_dir([], other, log=lambda *_: None)
    assert (other / "stats.json").read_text() == '{"tool": "tic-filter"}\n'
    ours = tmp_path / "ours"
    extract_to_dir([], ours, log=lambda *_: None)
    (ours / "stray").write_text("x")
    assert extract_to_dir([], ours, log=lambda *_: None)["rows"] == 0  # replaced as a whole
    assert sorted(p.name for p in ours.iterdir()) == [".tic-clip-output", "candidates.parquet", "stats.json"]
    assert not list(tmp_path.glob(".ours.*"))
