"""The sample web the extraction benchmarks run on."""
from __future__ import annotations

from pathlib import Path

from sample_web.generate import generate
from sample_web.world import SampleWebConfig


def bench_world(out: Path, pairs: int) -> Path:
    """A world without damaged members (FastWARC and warcio stop at the first one, which would flatter
    the floors) and without the 10 MB page; returns its directory."""
    generate(SampleWebConfig(out=out, pairs=pairs, seed=3, corrupt_record_rate=0.0, big_page=False),
             progress=False, log=lambda *_: None)
    return out


# ------------------------------------------------------------------ real pages, CC-style WARC + WAT
SHARED_WARC_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "warc"
REAL_PAGES_SNAPSHOT = "CC-MAIN-2020-34"


def _html_metadata(body: bytes, content_type: str) -> dict:
    """The WAT `HTML-Metadata` of one real page, shaped as ia-web-commons writes it
    (`iipc/webarchive-commons`, `org/archive/resource/html/HTMLMetaData.java`: `Head` with Title, Base,
    Metas, Link and Scripts; `Links` beside it; every value a string): here every A@/href {text, url}
    and IMG@/src {url, alt}. The IMG links are DataComp's raw values (`datacomp_rules.img_links`), so
    the WAT and WARC paths give the same rows; the rest only has to be about as large as the real thing
    (attribute values are lexbor's, decoded)."""
    from selectolax.lexbor import LexborHTMLParser

    from curation.datacomp_rules import img_links
    from curation.html_images import decode_html
    from curation.warc_reader import ExtractStats

    html = decode_html(body, content_type, ExtractStats())
    tree = LexborHTMLParser(html)
    head: dict = {}
    title = tree.css_first("title")
    if title is not None:
        head["Title"] = title.text(strip=True)
    metas = [{k: v for k, v in m.attributes.items() if v is not None} for m in tree.css("meta")]
    scripts = [{"path": "SCRIPT@/src", "url": s.attributes["src"]} for s in tree.css("script[src]")]
    links = [{"path": "LINK@/href", **{k: v for k, v in ln.attributes.items() if v is not None}}
             for ln in tree.css("link[href]")]
    for key, value in (("Metas", metas), ("Scripts", scripts), ("Link", links)):
        if value:
            head[key] = value
    imgs, base, _ = img_links(html)
    if base is not None:
        head["Base"] = base
    out = [{"path": "A@/href", "text": a.text(strip=True), "url": a.attributes["href"]}
           for a in tree.css("a[href]") if a.attributes.get("href") is not None]
    out += [{"path": "IMG@/src", "url": src, **({} if alt is None else {"alt": alt})} for src, alt in imgs]
    return {"Head": head, "Links": out}


def real_pages_world(out: Path, copies: int, warc_dir: Path = SHARED_WARC_DIR) -> Path:
    """The real HTML pages of the shared WARC files (`../shared/data/warc`, see its SOURCES.md), each
    written `copies` times (under distinct URLs) as Common Crawl writes a crawl: request, response and
    metadata records in one WARC file, and the WAT file beside it (`sample_web.warc`). The sample
    web's pages are small (about 3 kB, 1 anchor and 7-8 images); real ones are larger and hold far
    more anchors (these 276: median 12 kB, mean 43 kB, mean 208 anchors and 6 images), which is what
    decides the per-byte rates of both readers and their floors. Returns the world's directory, with
    `warc.manifest` and `wat.manifest`."""
    import datetime as dt

    from fastwarc.warc import ArchiveIterator, WarcRecordType

    from sample_web.warc import WarcWriter, WatWriter

    pages = []
    for path in sorted(warc_dir.glob("*.warc.gz")):
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh, record_types=WarcRecordType.response, parse_http=True):
                http = rec.http_headers
                ctype = (http.get("Content-Type") or "") if http is not None else ""
                if "html" not in ctype.lower():
                    continue
                body = rec.reader.read()
                url = rec.headers.get("WARC-Target-URI").strip("<>")
                headers = [(k, v) for k, v in http.astuples() if k.lower() not in ("content-length", "transfer-encoding",
                                                                                  "content-encoding")]
                pages.append((url, http.status_code, http.reason_phrase or "OK", headers, body, _html_metadata(body, ctype)))
    segment = out / "crawl-data" / REAL_PAGES_SNAPSHOT / "segments" / "1597738000000.00"
    name = f"{REAL_PAGES_SNAPSHOT}-20200803000000-00000.warc.gz"
    when = dt.datetime(2020, 8, 3, tzinfo=dt.timezone.utc)
    wat = WatWriter(segment / "wat" / (name[:-3] + ".wat.gz"), name, id_seed="real-pages/wat",
                    written=when + dt.timedelta(days=20))
    writer = WarcWriter(segment / "warc" / name, id_seed="real-pages", wat=wat)
    writer.warcinfo(when, REAL_PAGES_SNAPSHOT, name)
    for copy in range(copies):
        for i, (url, status, reason, headers, body, html) in enumerate(pages):
            t = when + dt.timedelta(seconds=copy * len(pages) + i)
            # copy k of a page at its own URL: the records differ as a crawl's pages do
            page_url = url if copy == 0 else f"{url}{'&' if '?' in url else '?'}copy={copy}"
            writer.exchange(page_url, t, "10.0.0.1", status, reason, headers, body, "CCBot/2.0", html=html)
            writer.metadata(page_url, t, "fetchTimeMs: 120\r\ncharset-detected: UTF-8\r\n")
    writer.close_all()
    rel = segment.relative_to(out)
    (out / "warc.manifest").write_text(f"{rel / 'warc' / name}\n")
    (out / "wat.manifest").write_text(f"{rel / 'wat' / (name[:-3] + '.wat.gz')}\n")
    return out
