"""WAT input: DataComp's pairs from the links ia-web-commons wrote (curation/wat_reader.py)."""
from __future__ import annotations

import collections
import datetime as dt
import gzip
import json
import random
from pathlib import Path

import pytest

from curation.extract import ExtractConfig, extract_file
from curation.extract_cli import main as extract_main
from curation.warc_reader import ExtractStats, accounting_errors

from .conftest import REAL_WARC_DIR

WAT = ExtractConfig(input_format="wat")
REAL_WAT = REAL_WARC_DIR.parent / "wat" / "whirlwind.warc.wat.gz"
CAPTURED = "2016-03-01T12:00:00Z"
WAT_WRITTEN = "2016-04-20T08:00:00Z"  # the WAT record's own date: weeks after the capture


def _member(rec_type: str, block: bytes, extra: str = "") -> bytes:
    head = (f"WARC/1.0\r\nWARC-Type: {rec_type}\r\nWARC-Date: {WAT_WRITTEN}\r\n{extra}"
            f"Content-Type: application/json\r\nContent-Length: {len(block)}\r\n\r\n")
    return gzip.compress(head.encode() + block + b"\r\n\r\n", mtime=0)


def _doc(links=None, *, page="https://www.site.example/dir/post.html", date=CAPTURED, base=None,
         warc_type="response", html=True, offset="1234") -> bytes:
    html_meta = {"Head": {"Title": "t", **({"Base": base} if base is not None else {})}}
    if links is not None:
        html_meta["Links"] = links
    http = {"Response-Message": {"Status": "200"}, **({"HTML-Metadata": html_meta} if html else {})}
    return json.dumps({
        "Container": {"Filename": "CC-MAIN-x.warc.gz", "Offset": offset, "Compressed": True},
        "Envelope": {"Format": "WARC",
                     "WARC-Header-Metadata": {"WARC-Type": warc_type, "WARC-Date": date, "WARC-Target-URI": page},
                     "Payload-Metadata": {"HTTP-Response-Metadata": http}},
    }).encode()


def _wat(path: Path, members: list[bytes], snapshot: str = "CC-MAIN-2016-10") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    info = _member("warcinfo", f"isPartOf: {snapshot}\r\n".encode())
    path.write_bytes(info + b"".join(members))
    return path


def _rows(path, cfg=WAT):
    stats = ExtractStats()
    rows = list(extract_file(str(path), stats, cfg))
    assert accounting_errors(stats) == []
    return rows, stats


def test_links_are_taken_as_written(tmp_path):
    links = [
        {"path": "IMG@/src", "url": "http://i.example/a.jpg", "alt": "Tom &amp; Jerry"},  # entities kept
        {"path": "IMG@/src", "url": "http://i.example/b.jpg", "alt": "  two\n  lines "},  # whitespace kept
        {"path": "IMG@/src", "url": "http://i.example/c.jpg?", "alt": "empty query"},  # '?' kept
        {"path": "IMG@/src", "url": "rel/d.jpg", "alt": "relative"},  # joined to Head.Base
        {"path": "IMG@/src", "url": "//cdn.example/e.jpg", "alt": "scheme relative"},
        {"path": "IMG@/src", "url": "http://i.example/f.jpg", "alt": ""},  # empty alt: dropped
        {"path": "IMG@/src", "url": "http://i.example/g.jpg"},  # no alt: dropped
        {"path": "IMG@/src", "url": "data:image/png;base64,AAA", "alt": "inline"},  # not http: dropped
        {"path": "A@/href", "url": "http://i.example/h.jpg", "text": "a link"},  # not an image
        {"path": "IMG@/srcset", "url": "http://i.example/i.jpg", "alt": "not src"},
    ]
    path = _wat(tmp_path / "CC-MAIN-2016-10" / "x.warc.wat.gz", [_member("metadata", _doc(links, base="/media/"))])
    rows, stats = _rows(path)
    t = dt.datetime(2016, 3, 1, 12, tzinfo=dt.timezone.utc)  # the Envelope's capture date, not the WAT's
    tail = (t, "CC-MAIN-2016-10", "CC-MAIN-x.warc.gz", 1234)
    page = "https://www.site.example/dir/post.html"
    assert rows == [
        (page, "http://i.example/a.jpg", "Tom &amp; Jerry", *tail),
        (page, "http://i.example/b.jpg", "  two\n  lines ", *tail),
        (page, "http://i.example/c.jpg?", "empty query", *tail),
        (page, "https://www.site.example/media/rel/d.jpg", "relative", *tail),
        (page, "https://cdn.example/e.jpg", "scheme relative", *tail),
    ]
    assert stats["images.input"] == 8 and stats["images.kept"] == 5
    assert stats["images.dropped.empty_alt"] == stats["images.dropped.no_alt"] == 1
    assert stats["images.dropped.not_http_url"] == 1
    assert stats["responses.input"] == stats["responses.kept"] == 1


def test_without_a_base_links_join_the_page_url(tmp_path):
    path = _wat(tmp_path / "y.warc.wat.gz",
                [_member("metadata", _doc([{"path": "IMG@/src", "url": "p.jpg", "alt": "x"}], offset="7"))],
                snapshot="CC-MAIN-2019-04")
    rows, _ = _rows(path)
    assert [(r[1], r[4], r[6]) for r in rows] == [("https://www.site.example/dir/p.jpg", "CC-MAIN-2019-04", 7)]


def test_every_metadata_record_is_accounted_for(tmp_path):
    img = [{"path": "IMG@/src", "url": "http://i.example/a.jpg", "alt": "a"}]
    marked = "https://p.example/IMG@.html"  # a page URL that makes the record's text hold "IMG@"
    members = [
        _member("metadata", b'{"Envelope": {"Links": [{"path": "IMG@/src", "url": "http://i.example/a.jpg", "al'),
        _member("metadata", b'[1, 2, "IMG@/src"]'),
        _member("metadata", _doc(img, warc_type="request")),
        _member("metadata", _doc(None, html=False, page=marked)),
        _member("metadata", _doc(None, page=marked)),
        _member("metadata", _doc(img, date="not a date")),
        _member("metadata", _doc(img, page="ftp://files.example/x")),
        _member("metadata", _doc([])),  # no IMG@ in its text: not parsed
        _member("metadata", b"cut before any link"),
        _member("metadata", _doc(img, offset="n/a")),
        _member("request", b"GET / HTTP/1.1\r\n\r\n"),
    ]
    rows, stats = _rows(_wat(tmp_path / "z.warc.wat.gz", members))
    assert len(rows) == 1 and rows[0][6] is None and stats["info.bad_container_offset"] == 1
    assert stats["responses.input"] == 10
    assert stats["responses.failed.bad_json"] == 2
    assert stats["responses.dropped.not_a_response"] == 1
    assert stats["responses.dropped.non_html"] == 1
    assert stats["responses.dropped.no_links"] == 1
    assert stats["responses.failed.bad_warc_date"] == 1
    assert stats["responses.dropped.non_http_payload"] == 1
    assert stats["responses.dropped.no_img_links"] == 2
    assert stats["responses.kept"] == 1
    assert stats["records.input"] == stats["records.kept"] == 12
    assert stats["info.record_type.request"] == 1


def test_json_is_read_strictly(tmp_path):
    """RFC 8259 JSON only (orjson, as cc2dataset's simdjson): NaN and a lone surrogate escape make a
    record bad JSON; a well-formed surrogate pair is read."""
    img = _doc([{"path": "IMG@/src", "url": "http://i.example/a.jpg", "alt": "ALT"}])
    members = [_member("metadata", img.replace(b'"ALT"', alt)) for alt in (b"NaN", rb'"\ud800"', rb'"\ud83d\ude00"')]
    rows, stats = _rows(_wat(tmp_path / "j.warc.wat.gz", members))
    assert [r[2] for r in rows] == ["\U0001f600"]
    assert stats["responses.failed.bad_json"] == 2 and stats["responses.kept"] == 1


def test_a_damaged_gzip_member_is_counted_and_reading_resumes(tmp_path):
    img = [{"path": "IMG@/src", "url": "http://i.example/a.jpg", "alt": "a"}]
    good = _member("metadata", _doc(img))
    bad = bytearray(_member("metadata", _doc(img)))
    bad[len(bad) // 2] ^= 0xFF
    path = _wat(tmp_path / "d.warc.wat.gz", [good, bytes(bad), good, good[: len(good) // 2]])
    rows, stats = _rows(path)
    assert len(rows) == 2
    assert stats["records.failed.corrupt_gzip_member"] == 1
    assert stats["info.truncated_record"] == 1 and stats["responses.input"] == 3 and stats["responses.kept"] == 2


def test_a_file_that_is_not_a_wat_is_counted(tmp_path):
    (tmp_path / "plain.txt").write_bytes(b"hello")
    rows, stats = _rows(tmp_path / "plain.txt")
    assert rows == [] and stats["files.failed.not_a_wat_file"] == 1
    rows, stats = _rows(tmp_path / "missing.warc.wat.gz")
    assert stats["files.failed.missing"] == 1


@pytest.mark.skipif(not REAL_WAT.is_file(), reason="shared WAT file not present")
def test_the_real_whirlwind_wat_reads_with_every_record_accounted_for():
    rows, stats = _rows(REAL_WAT)
    assert rows == []
    assert stats["records.input"] == stats["records.kept"] == 2
    assert stats["info.record_type.warcinfo"] == stats["info.record_type.metadata"] == 1
    assert stats["responses.input"] == stats["responses.dropped.no_img_links"] == 1  # a request's description


def _manifest_rows(root: Path, manifest: str, cfg: ExtractConfig):
    stats, rows = ExtractStats(), []
    for line in (root / manifest).read_text().split():
        rows.extend(extract_file(str(root / line), stats, cfg))
    assert accounting_errors(stats) == []
    return rows, stats


def test_wat_and_warc_input_give_the_same_pairs_on_the_sample_web(sample_web):
    """DataComp's rules read from the WARC pages and from the WAT links agree, row for row."""
    wat, wat_stats = _manifest_rows(sample_web, "wat.manifest", WAT)
    warc, _ = _manifest_rows(sample_web, "warc.manifest", ExtractConfig())
    assert len(wat) > 1000
    assert collections.Counter(r[:5] for r in wat) == collections.Counter(r[:5] for r in warc)
    assert wat_stats["records.failed.corrupt_gzip_member"] >= 1 and wat_stats["info.truncated_record"] >= 1
    warc_names = {Path(r[5]).name for r in warc}
    assert {r[5] for r in wat} == warc_names


def test_wat_extraction_matches_the_ground_truth(sample_web):
    import pandas as pd
    import pyarrow.parquet as pq

    from ticcore.schemas import CANDIDATES

    rows, _ = _manifest_rows(sample_web, "wat.manifest", WAT)
    df = pd.DataFrame(rows, columns=CANDIDATES.names)
    firsts = df.groupby(["url", "text"])["crawl_time"].min().rename("extracted_first").reset_index()
    truth = pq.read_table(sample_web / "truth").to_pandas().merge(firsts, on=["url", "text"], how="left")
    seen = truth[truth.first_seen_time.notna()]
    assert len(seen) > 0 and (seen.extracted_first == seen.first_seen_time).all()
    assert truth[truth.first_seen_time.isna()].extracted_first.isna().all()


def test_tic_extract_reads_wat_files(sample_web, tmp_path, capsys):
    import pyarrow.parquet as pq

    out = tmp_path / "wat"
    assert extract_main([str(sample_web / "wat.manifest"), str(out), "--input-format", "wat"]) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["config"]["input_format"] == "wat" and stats["config"]["pair_rules"] == "datacomp"
    assert stats["accounting"]["ok"] and pq.read_table(out / "candidates.parquet").num_rows == stats["rows"] > 0
    assert extract_main([str(sample_web / "wat.manifest"), str(tmp_path / "h"), "--input-format", "wat",
                         "--pair-rules", "html5"]) == 2
    assert "WAT input takes the datacomp pair rules only" in capsys.readouterr().err


def _variants() -> list[bytes]:
    """Records in every shape the two JSON readers must agree on: odd types at each part the rules
    read, missing parts, strictness cases, and bytes that are not UTF-8 where nothing reads them."""
    link = {"path": "IMG@/src", "url": "http://i.example/a.jpg", "alt": "a"}
    base = json.loads(_doc([link], base="http://static.example/"))
    odd = [None, True, 7, 2**70, 1.5, "s", [], {}, [1], {"k": "v"}]
    docs = [base]
    for path in (("Container",), ("Container", "Offset"), ("Container", "Filename"), ("Envelope",),
                 ("Envelope", "WARC-Header-Metadata"), ("Envelope", "WARC-Header-Metadata", "WARC-Type"),
                 ("Envelope", "WARC-Header-Metadata", "WARC-Target-URI"), ("Envelope", "WARC-Header-Metadata", "WARC-Date"),
                 ("Envelope", "Payload-Metadata"), ("Envelope", "Payload-Metadata", "HTTP-Response-Metadata"),
                 ("Envelope", "Payload-Metadata", "HTTP-Response-Metadata", "HTML-Metadata"),
                 ("Envelope", "Payload-Metadata", "HTTP-Response-Metadata", "HTML-Metadata", "Head"),
                 ("Envelope", "Payload-Metadata", "HTTP-Response-Metadata", "HTML-Metadata", "Head", "Base"),
                 ("Envelope", "Payload-Metadata", "HTTP-Response-Metadata", "HTML-Metadata", "Links")):
        for value in [*odd, "<missing>"]:
            doc = json.loads(json.dumps(base))
            parent = doc
            for key in path[:-1]:
                parent = parent[key]
            if value == "<missing>":
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
            docs.append(doc)
    for key in ("path", "url", "alt"):
        for value in [*odd, "<missing>"]:
            doc = json.loads(json.dumps(base))
            links = doc["Envelope"]["Payload-Metadata"]["HTTP-Response-Metadata"]["HTML-Metadata"]["Links"]
            links.append(dict(link, **{key: value}) if value != "<missing>" else {k: v for k, v in link.items() if k != key})
            links.append(value)  # a link that is not an object
            docs.append(doc)
    blocks = [json.dumps(d).encode() for d in docs]
    text = blocks[0]
    blocks += [text.replace(b'"t"', bad) for bad in (b"NaN", b"Infinity", rb'"\ud800"', rb'"\ud83d\ude00"', b'"\xff"',
                                                      b'"\xc0\xaf"', b'"\xed\xa0\x80"', b"1e-400", b"-0", b"[1,]", b"01",
                                                      b"[" * 999 + b"]" * 999, b"[" * 1023 + b"]" * 1023,
                                                      b"[" * 1024 + b"]" * 1024, b'"a\x01"', b'"\xe6\x97\xa5"')]
    blocks += [text[:-1] + b', "Container": {"Offset": "9"}}', b"", b"[]", b"{}", text[: len(text) // 2], text + b" x",
               text + b"\r\n\r\n", text.replace(b'"a.jpg"', b'"\xe6\x97\xa5.jpg"')]
    return blocks


def test_the_fast_json_reading_agrees_with_orjson_or_defers_to_it():
    """msgspec reads most records (`_fast_fields`); where it returns anything, it must be what orjson's
    reading gives (`_reference_fields`), on every shape and every strictness case."""
    from curation.wat_reader import _fast_fields, _reference_fields

    decided = 0
    for block in _variants():
        fast, reference = _fast_fields(memoryview(block)), _reference_fields(memoryview(block))
        assert fast is None or fast == reference, block[:200]
        decided += fast is not None
    assert decided > 20  # the fast path reads the usual shapes itself


def test_random_damage_is_judged_the_same_by_both_json_readers():
    from curation.wat_reader import _fast_fields, _reference_fields

    rng = random.Random(0)
    text = _doc([{"path": "IMG@/src", "url": "http://i.example/a.jpg", "alt": "a \u00e9"}], base="/b/")
    alphabet = [b"{", b"}", b"[", b"]", b'"', b",", b":", b"\\", b"1", b"-", b"n", b" ", b"\xff", b"\xc3", b"\x00"]
    for _ in range(3000):
        block = bytearray(text)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(block))
            op = rng.random()
            if op < 0.4:
                block[i:i + 1] = rng.choice(alphabet)
            elif op < 0.7:
                del block[i]
            else:
                block[i:i] = rng.choice(alphabet)
        fast, reference = _fast_fields(memoryview(bytes(block))), _reference_fields(memoryview(bytes(block)))
        assert fast is None or fast == reference, bytes(block)
