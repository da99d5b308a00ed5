"""Contracts of the generated sample web (issue 3)."""
from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import zlib
from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from warcio.archiveiterator import ArchiveIterator

from sample_web.generate import make_uid
from sample_web.vocabulary import ALL_CONCEPTS, COVID_START, YEARS
from sample_web.world import concept_year_probabilities

from .conftest import REPO, SAMPLE_PAIRS, start_image_server

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def _manifest(world: Path) -> list[str]:
    return [line for line in (world / "warc.manifest").read_text().splitlines() if line]


def _records(path: Path):
    """(record type, WARC headers, HTTP headers or None, payload) of every record up to the first damaged member."""
    out = []
    with open(path, "rb") as fh:
        try:
            for rec in ArchiveIterator(fh):
                out.append((rec.rec_type, rec.rec_headers, rec.http_headers, rec.content_stream().read()))
        except Exception:  # the world plants damaged gzip members; reading stops there
            pass
    return out


# ------------------------------------------------------------------ WARC snapshots

def test_manifest_lists_common_crawl_style_paths_two_per_year(sample_web):
    paths = _manifest(sample_web)
    pat = re.compile(r"^crawl-data/(CC-MAIN-(\d{4})-(\d{2}))/segments/[\d.]+/warc/CC-MAIN-\d{14}-\d{5}-.+\.warc\.gz$")
    snapshots = set()
    for p in paths:
        m = pat.match(p)
        assert m, p
        assert (sample_web / p).is_file()
        snapshots.add(m.group(1))
    per_year = Counter(s[8:12] for s in snapshots)
    assert set(per_year) == {str(y) for y in YEARS}
    assert all(n >= 2 for n in per_year.values())


def test_warc_files_read_back_with_warcio(sample_web):
    types = Counter()
    for rel in _manifest(sample_web):
        recs = _records(sample_web / rel)
        assert recs[0][0] == "warcinfo"
        snapshot = rel.split("/")[1]
        assert f"isPartOf: {snapshot}".encode() in recs[0][3]
        types.update(r[0] for r in recs)
        for rtype, headers, _, _ in recs:
            assert headers.protocol == "WARC/1.0"
            assert headers.get_header("WARC-Record-ID").startswith("<urn:uuid:")
    assert types["request"] > 100 and types["response"] > types["request"]  # + dns: responses
    assert types["metadata"] > 0


def test_warc_members_are_gzip_per_record(sample_web):
    """Each record is its own gzip member: decompress member by member, as a WARC index would."""
    import zlib

    path = sample_web / _manifest(sample_web)[0]
    data = path.read_bytes()
    members, pos = 0, 0
    while pos < len(data):
        d = zlib.decompressobj(31)
        body = d.decompress(data[pos:])
        if not d.eof:  # a deliberately truncated member
            break
        assert body.startswith(b"WARC/1.0\r\n")
        members += 1
        pos = len(data) - len(d.unused_data)
    assert members > 50


def test_pages_cover_the_html_edge_cases(sample_web):
    seen = Counter()
    for rel in _manifest(sample_web):
        for rtype, _, http, body in _records(sample_web / rel):
            if rtype != "response" or http is None:
                continue
            status = int(http.get_statuscode())
            ctype = http.get_header("Content-Type") or ""
            seen[f"status_{status}"] += 1
            if not ctype.startswith("text/html"):
                seen["non_html"] += 1
                continue
            m = re.search(r"charset=([\w-]+)", ctype)
            if m and m.group(1) != "utf-8":
                seen["non_utf8_header"] += 1
            if "charset=" not in ctype and re.search(rb"<meta[^>]+charset", body[:2000], re.I):
                seen["charset_in_meta_only"] += 1
            seen["base_href"] += b"<base href=" in body
            seen["srcset"] += b"srcset=" in body
            seen["lazy_data_src"] += b"data-src=" in body
            seen["protocol_relative"] += b'src="//' in body
            seen["empty_alt"] += b'alt=""' in body
            seen["missing_alt"] += bool(re.search(rb"<img src=\"[^\"]+\">", body))
            seen["data_uri"] += b'src="data:' in body
            seen["javascript"] += b'src="javascript:' in body
            seen["noscript_dup"] += b"<noscript><img" in body
            seen["uppercase"] += b"<IMG SRC=" in body
            seen["error_page_with_images"] += status != 200 and body.count(b"<figure") > 0
    for key in ("error_page_with_images", "status_200", "status_404", "status_301", "non_html", "non_utf8_header", "charset_in_meta_only",
                "base_href", "srcset", "lazy_data_src", "protocol_relative", "empty_alt", "missing_alt",
                "data_uri", "javascript", "noscript_dup", "uppercase"):
        assert seen[key] > 0, f"no page shows {key}"


def test_some_gzip_members_are_damaged(sample_web):
    world = json.loads((sample_web / "world.json").read_text())
    assert world["stats"]["corrupt_members"] >= 1


# ------------------------------------------------------------------ metadata

def test_metadata_shards_have_datacomp_columns_and_npz(sample_web):
    shards = sorted((sample_web / "metadata").glob("*.parquet"))
    assert len(shards) == 2
    total = 0
    for shard in shards:
        table = pq.read_table(shard)
        assert table.column_names == ["uid", "url", "text", "original_width", "original_height",
                                      "clip_b32_similarity_score", "clip_l14_similarity_score", "face_bboxes",
                                      "sha256"]
        npz = np.load(shard.with_suffix(".npz"))
        assert sorted(npz.files) == ["b32_img", "b32_txt", "l14_img", "l14_txt"]
        for key, dim in (("b32_img", 512), ("b32_txt", 512), ("l14_img", 768), ("l14_txt", 768)):
            assert npz[key].shape == (table.num_rows, dim) and npz[key].dtype == np.float16
            assert np.allclose(np.linalg.norm(npz[key].astype(np.float32), axis=1), 1.0, atol=2e-3)
        # The stored scores are the cosines of the stored embeddings (up to float16 rounding).
        cos = (npz["l14_img"].astype(np.float32) * npz["l14_txt"].astype(np.float32)).sum(1)
        assert np.allclose(cos, table.column("clip_l14_similarity_score").to_numpy(), atol=5e-3)
        total += table.num_rows
    assert total == SAMPLE_PAIRS


def test_uids_are_unique_128bit_hex_and_match_url_and_text(sample_web):
    rows = duckdb.sql(f"select uid, url, text from '{sample_web}/metadata/*.parquet'").fetchall()
    uids = [r[0] for r in rows]
    assert len(set(uids)) == len(uids) == SAMPLE_PAIRS
    for uid, url, text in rows:
        assert HEX32.match(uid)
        assert uid == make_uid(url, text)
    # DataComp keeps the alt as written: some texts hold character references or odd whitespace
    texts = [r[2] for r in rows]
    assert any("&amp;" in t or "&#" in t or "&quot;" in t for t in texts)
    assert any(t != " ".join(t.split()) for t in texts)
    assert any(r[1].endswith("?") for r in rows)  # an empty query that urljoin would drop


def test_pool_holds_seen_and_unseen_pairs_and_planted_duplicates(sample_web):
    con = duckdb.connect()
    seen, unseen = con.execute(f"select count(first_seen_time), count(*) - count(first_seen_time) "
                           f"from '{sample_web}/truth/*.parquet'").fetchone()
    assert seen > 0.85 * SAMPLE_PAIRS and unseen > 0.03 * SAMPLE_PAIRS
    urls, shas = con.execute(f"select count(distinct url), count(distinct sha256) "
                         f"from '{sample_web}/metadata/*.parquet'").fetchone()
    assert urls < SAMPLE_PAIRS and shas < SAMPLE_PAIRS  # same URL, other caption / same picture, other URL


def test_imagenet_like_set(sample_web):
    table = pq.read_table(sample_web / "imagenet_like" / "images.parquet").to_pandas()
    emb = np.load(sample_web / "imagenet_like" / "embeddings.npz")
    n_imagenet = sum(c.kind == "imagenet" for c in ALL_CONCEPTS)
    assert table["class_id"].nunique() == n_imagenet
    assert len(table) == 3 * n_imagenet == emb["l14_img"].shape[0]
    assert (emb["class_id"] == table["class_id"].to_numpy()).all()
    assert emb["l14_img"].shape[1] == 768 and emb["b32_img"].shape[1] == 512


# ------------------------------------------------------------------ drift

def test_concept_distribution_drifts_by_a_stated_amount():
    """P(concept | year) moves by total variation >= 0.05 every year and by > 0.6 from 2014 to 2022."""
    p = concept_year_probabilities(YEARS)
    tv = lambda a, b: 0.5 * np.abs(a - b).sum()
    steps = [tv(p[i], p[i - 1]) for i in range(1, len(YEARS))]
    assert min(steps) >= 0.05
    from_first = [tv(p[i], p[0]) for i in range(len(YEARS))]
    assert all(b > a for a, b in zip(from_first, from_first[1:]))
    assert from_first[-1] > 0.6


def test_generated_world_shows_the_drift(sample_web):
    """Empirical concept distributions: early vs late years differ far more than two halves of one period."""
    t = pq.read_table(sample_web / "truth").to_pandas().dropna(subset=["first_seen_time"])
    t["year"] = t["first_seen_time"].dt.year
    keys = sorted(t["concept_key"].unique())

    def dist(frame):
        c = frame["concept_key"].value_counts()
        return np.array([c.get(k, 0) for k in keys], float) / len(frame)

    early, late = t[t.year <= 2015], t[t.year >= 2021]
    rng = np.random.default_rng(0)
    shuffled = late.iloc[rng.permutation(len(late))]
    half = len(shuffled) // 2
    tv_drift = 0.5 * np.abs(dist(early) - dist(late)).sum()
    tv_null = 0.5 * np.abs(dist(shuffled.iloc[:half]) - dist(shuffled.iloc[half:])).sum()
    assert tv_drift > tv_null + 0.2, (tv_drift, tv_null)
    # Concepts appear only from their introduction year on.
    intro = {c.key: c.intro_year for c in ALL_CONCEPTS}
    assert (t["year"] >= t["concept_key"].map(intro)).all()


def test_covid_captions_only_from_march_2020(sample_web):
    t = pq.read_table(sample_web / "truth").to_pandas()
    covid = t[t.is_covid]
    assert len(covid) > 10
    first = covid["first_seen_time"].dropna()
    assert (first.dt.year * 100 + first.dt.month >= COVID_START[0] * 100 + COVID_START[1]).all()
    assert not t[~t.is_covid]["text"].str.lower().str.contains("covid").any()


def test_flickr_share_falls_over_time(sample_web):
    t = pq.read_table(sample_web / "truth").to_pandas().dropna(subset=["first_seen_time"])
    share = t.groupby(t["first_seen_time"].dt.year)["is_flickr"].mean()
    assert share.loc[2014:2015].mean() > 2 * share.loc[2021:2022].mean()
    hosts = t[t.is_flickr]["url"].str.extract(r"^https?://([^/]+)/")[0]
    assert hosts.str.endswith(".staticflickr.com").all()


def test_off_sense_captions_are_planted(sample_web):
    t = pq.read_table(sample_web / "truth").to_pandas()
    off = t[(t.concept_kind == "off_sense") & (t.language == "en")]
    assert len(off) > 5
    assert off["lemma_wnid"].notna().all() and off["concept_wnid"].isna().all()


def test_reference_clip_prefers_old_imagenet_like_data(sample_web):
    rows = duckdb.sql(f"""
        select year(t.first_seen_time) y, avg(m.clip_l14_similarity_score) s
        from '{sample_web}/truth/*.parquet' t join '{sample_web}/metadata/*.parquet' m using (uid)
        where t.first_seen_time is not null group by 1 order by 1""").fetchall()
    scores = dict(rows)
    assert scores[2014] > scores[2022] + 0.05


def test_the_look_of_a_concept_drifts_by_year():
    """The mean picture of a concept (same colour, scene and size, over 12 jittered renderings) correlates less
    with its 2014 mean the later the year: the style drifts away from 2014 monotonically (solid, then solid with an
    inner outline, then outline only) while the icon itself stays."""
    from sample_web.images import ImageKey, look_style, render_pixels

    concepts = [i for i, c in enumerate(ALL_CONCEPTS) if c.kind == "imagenet"][:15]

    def mean_picture(c, year):  # the key's fmt only seeds the position jitter here
        return np.mean([render_pixels(ImageKey(c, year, 0, 1, fmt, 96, 96)).astype(float) for fmt in range(12)], 0)

    def corr(c, year):
        return np.corrcoef(mean_picture(c, 2014).ravel(), mean_picture(c, year).ravel())[0, 1]

    by_year = {y: np.mean([corr(c, y) for c in concepts]) for y in (2015, 2018, 2022)}
    assert by_year[2015] > by_year[2018] > by_year[2022]
    assert by_year[2015] - by_year[2022] > 0.2
    assert [look_style(y)[0] for y in (2014, 2016, 2017, 2019, 2020, 2022)] == \
        ["solid", "solid", "double", "double", "outline", "outline"]


def test_the_colours_of_a_scene_drift_by_year():
    """A scene's background moves away from its 2016 look year by year, and by 2022 it is about as
    far from it as two different scenes are from each other (a drift a small model can see)."""
    from sample_web.images import ImageKey, render_pixels
    from sample_web.vocabulary import SCENES

    def background(scene, year):  # from 2016 on the object starts 14+ px below the top: the top rows are all scene
        return render_pixels(ImageKey(0, year, 0, scene, 0, 200, 200))[:8].astype(float).mean(axis=(0, 1))

    for scene in range(len(SCENES)):
        dist = [np.linalg.norm(background(scene, y) - background(scene, 2016)) for y in (2017, 2019, 2022)]
        assert dist[0] < dist[1] < dist[2], (SCENES[scene], dist)
        assert dist[2] > 40, (SCENES[scene], dist)


# ------------------------------------------------------------------ determinism and bad input

def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_outputs(tmp_path):
    from sample_web.generate import generate
    from sample_web.world import SampleWebConfig

    quiet = lambda *_: None
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        generate(SampleWebConfig(out=tmp_path / name, pairs=300, seed=seed, imagenet_per_class=1,
                                 big_page=False), progress=False, log=quiet)
    a, b, c = (_tree_digest(tmp_path / n) for n in "abc")
    assert a == b
    assert a != c


def _cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "sample_web.cli", *args], capture_output=True, text=True,
                          cwd=cwd)


@pytest.mark.parametrize("args, message", [
    (["--pairs", "0"], "must be at least 1"),
    (["--pairs", "ten"], "expected a whole number"),
    (["--pairs", "10", "--snapshots-per-year", "1"], "snapshots-per-year"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, args, message):
    res = _cli("--out", str(tmp_path / "w"), *args)
    assert res.returncode == 2
    assert message in res.stderr
    assert not (tmp_path / "w").exists()


def test_refuses_a_foreign_non_empty_directory(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    res = _cli("--out", str(foreign), "--pairs", "10")
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "refusing to overwrite" in res.stderr
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_rerun_with_same_config_is_a_no_op(tmp_path):
    out = tmp_path / "w"
    assert _cli("--out", str(out), "--pairs", "50", "--quiet", "--no-big-page").returncode == 0
    stamp = (out / "world.json").stat().st_mtime_ns
    res = _cli("--out", str(out), "--pairs", "50", "--quiet", "--no-big-page")
    assert res.returncode == 0 and "nothing to do" in res.stdout
    assert (out / "world.json").stat().st_mtime_ns == stamp


# ------------------------------------------------------------------ image server

def _pool_rows(world: Path, status: str, n: int):
    return duckdb.sql(f"""
        select m.url, m.sha256, m.original_width, m.original_height
        from '{world}/metadata/*.parquet' m join '{world}/truth/*.parquet' t using (uid)
        where t.download_status = '{status}' order by m.uid limit {n}""").fetchall()


def test_image_server_serves_the_pool_images(sample_web, image_server):
    from PIL import Image

    opener = image_server.opener()
    for url, sha, w, h in _pool_rows(sample_web, "ok", 40):
        body = opener.open(url, timeout=10).read()  # proxy form: the world's own hosts
        assert hashlib.sha256(body).hexdigest() == sha
        img = Image.open(io.BytesIO(body))
        img.load()
        assert img.size == (w, h) and img.format in ("JPEG", "PNG", "WEBP")
    # origin form: any path with a valid token works on the server's own address
    url, sha, _, _ = _pool_rows(sample_web, "ok", 1)[0]
    path = "/" + url.split("/", 3)[3]
    import urllib.request

    assert hashlib.sha256(urllib.request.urlopen(image_server.base + path, timeout=10).read()).hexdigest() == sha


def test_image_server_fails_as_designed(sample_web, image_server):
    from PIL import Image

    opener = image_server.opener()
    url = _pool_rows(sample_web, "not_found", 1)[0][0]
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open(url, timeout=10)
    assert err.value.code == 404
    with pytest.raises(urllib.error.HTTPError):
        opener.open(image_server.base + "/no/token/here.jpg", timeout=10)
    body = opener.open(_pool_rows(sample_web, "not_image", 1)[0][0], timeout=10).read()
    with pytest.raises(Exception):
        Image.open(io.BytesIO(body)).load()
    url, _, w, h = _pool_rows(sample_web, "too_large", 1)[0]
    big = Image.open(io.BytesIO(opener.open(url, timeout=30).read()))
    assert big.size == (w, h) and w * h > 20_000_000
    url = _pool_rows(sample_web, "slow", 1)[0][0]
    t0 = time.monotonic()
    opener.open(url, timeout=10).read()
    assert time.monotonic() - t0 >= 0.9  # the fixture's server uses --slow-seconds 1


def test_image_server_starts_and_stops_cleanly_with_workers():
    server = start_image_server(workers=2)
    import urllib.request

    assert urllib.request.urlopen(server.base + "/healthz", timeout=10).read() == b"ok\n"
    assert server.stop() in (0, -15)
    assert server.proc.poll() is not None


# ---------------------------------------------------------------- the generator's bulk helpers

def test_bulk_token_encoding_matches_the_one_by_one_encoder():
    from sample_web.images import FAILURES, ImageKey, ImageToken, encode_token, encode_tokens

    rng = np.random.default_rng(5)
    n = 2000
    cols = [rng.integers(0, len(ALL_CONCEPTS), n), rng.integers(2010, 2023, n), rng.integers(0, 6, n),
            rng.integers(0, 5, n), rng.integers(0, 3, n), rng.integers(0, len(FAILURES), n),
            rng.integers(1, 7000, n), rng.integers(1, 7000, n), rng.integers(0, 1 << 41, n)]
    concept, look, color, scene, fmt, failure, width, height, serial = cols
    one_by_one = [encode_token(ImageToken(ImageKey(int(concept[i]), int(look[i]), int(color[i]), int(scene[i]),
                                                   int(fmt[i]), int(width[i]), int(height[i])),
                                          int(failure[i]), int(serial[i]))) for i in range(n)]
    assert encode_tokens(*cols) == one_by_one


def test_float16_embeddings_are_the_same_bits_with_or_without_opencv(monkeypatch):
    import sample_web.refclip as refclip

    clip = refclip.ReferenceClip()
    latent = np.random.default_rng(0).standard_normal((3000, refclip.LATENT_DIM))
    fast = clip.embed(latent, "l14", "txt")
    monkeypatch.setattr(refclip, "_fp16_converter", lambda: None)
    plain = clip.embed(latent, "l14", "txt")
    assert fast.dtype == np.float16 and fast.shape == (3000, 768)
    assert np.array_equal(fast.view(np.uint16), plain.view(np.uint16))
    assert np.allclose(np.linalg.norm(fast.astype(np.float32), axis=1), 1, atol=2e-3)


def test_npz_writer_round_trips_through_numpy(tmp_path):
    import zipfile

    from sample_web.npzfile import write_npz

    rng = np.random.default_rng(1)
    arrays = {"b32_img": rng.standard_normal((50, 512)).astype(np.float16), "class_id": np.arange(7),
              "empty": np.zeros((0, 3), np.float32)}
    with open(tmp_path / "x.npz", "wb") as fh:
        write_npz(fh, arrays)
    assert zipfile.ZipFile(tmp_path / "x.npz").testzip() is None  # every member's CRC checks out
    loaded = np.load(tmp_path / "x.npz")
    assert loaded.files == list(arrays)
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype and np.array_equal(loaded[name], array)


@pytest.mark.parametrize("mode", ["write-behind", "no sync_file_range", "refused"])
def test_write_behind_file_writes_every_byte_in_order(tmp_path, monkeypatch, mode):
    import ticcore.localfs as localfs
    from sample_web.npzfile import write_npz

    if mode == "no sync_file_range":
        monkeypatch.setattr(localfs, "_SYNC_FILE_RANGE", None)
    if mode == "refused":  # a file system that cannot sync a range: it goes on as a plain file
        monkeypatch.setattr(localfs, "_SYNC_FILE_RANGE", lambda *args: -1)
    rng = np.random.default_rng(2)
    blocks = [rng.bytes(n) for n in (10, 4096, 70_000, 1, 12_345, 300_000)]
    # a tiny piece, so that every path runs: blocks cut into pieces, pushes, drops
    with localfs.WriteBehindFile(tmp_path / "raw.bin", piece=8192) as fh:
        for block in blocks:
            assert fh.write(block) == len(block)
        assert fh.tell() == sum(map(len, blocks))
    assert (tmp_path / "raw.bin").read_bytes() == b"".join(blocks)
    # as the generator uses it: buffered (WARC) and straight from numpy buffers (npz)
    with io.BufferedWriter(localfs.WriteBehindFile(tmp_path / "buffered.bin", piece=8192), 65536) as fh:
        for block in blocks:
            fh.write(block)
    assert (tmp_path / "buffered.bin").read_bytes() == b"".join(blocks)
    arrays = {"l14_img": rng.standard_normal((300, 768)).astype(np.float16)}
    with localfs.WriteBehindFile(tmp_path / "x.npz", piece=8192) as fh:
        write_npz(fh, arrays)
    assert np.array_equal(np.load(tmp_path / "x.npz")["l14_img"], arrays["l14_img"])


def test_the_generator_keeps_freed_memory_under_glibc():
    import platform

    from sample_web.generate import reuse_freed_memory

    # True exactly where malloc is glibc's (mallopt took both settings); elsewhere nothing is changed
    assert reuse_freed_memory() is (platform.libc_ver()[0] == "glibc")


# ------------------------------------------------------------------ WAT files and DataComp's pair rules

def _intact_members(path: Path):
    """(WARC head, block) of each gzip member that decompresses whole; damaged ones are skipped."""
    data = path.read_bytes()
    pos = 0
    while pos < len(data):
        d = zlib.decompressobj(31)
        try:
            member = d.decompress(data[pos:])
            if not d.eof:
                raise zlib.error("cut short")
            pos = len(data) - len(d.unused_data)
        except zlib.error:
            nxt = data.find(b"\x1f\x8b\x08", pos + 1)
            if nxt < 0:
                return
            pos = nxt
            continue
        head, _, block = member.partition(b"\r\n\r\n")
        yield head.decode("utf-8"), block[:-4] if block.endswith(b"\r\n\r\n") else block


def _header(head: str, name: str) -> str | None:
    m = re.search(rf"^{name}: (.*)$", head, re.M)
    return m.group(1).strip() if m else None


def _wat_pairs(root: Path):
    """(url, alt, capture time) of every pair the WAT files list, read as cc2dataset reads them
    (rom1504/cc2dataset, main.py: IMG@/src links with a non-empty alt, http(s) URLs kept as written,
    others joined to the page or its <base>), written here from those rules, not from our extractor."""
    rows, bad_json, records = [], 0, 0
    for rel in (root / "wat.manifest").read_text().split():
        for head, body in _intact_members(root / rel):
            if _header(head, "WARC-Type") != "metadata":
                continue
            records += 1
            try:
                doc = json.loads(body)
            except ValueError:
                bad_json += 1
                continue
            env = doc["Envelope"]
            html = env["Payload-Metadata"].get("HTTP-Response-Metadata", {}).get("HTML-Metadata", {})
            if "Links" not in html:
                continue
            base = env["WARC-Header-Metadata"]["WARC-Target-URI"]
            if "Base" in html.get("Head", {}):
                base = urllib.parse.urljoin(base, html["Head"]["Base"])
            for link in html.get("Links", []):
                if link["path"] != "IMG@/src" or not link.get("alt"):
                    continue
                url = link["url"]
                if not url.startswith(("http://", "https://")):
                    url = urllib.parse.urljoin(base, url)
                if url.startswith(("http://", "https://")):
                    rows.append((url, link["alt"], env["WARC-Header-Metadata"]["WARC-Date"]))
    return rows, bad_json, records


def test_a_wat_file_lies_beside_every_warc_file(sample_web):
    warcs = _manifest(sample_web)
    wats = (sample_web / "wat.manifest").read_text().split()
    assert [w.replace("/warc/", "/wat/").replace(".warc.gz", ".warc.wat.gz") for w in warcs] == wats
    for rel in wats:
        assert (sample_web / rel).is_file()


def test_the_wat_records_describe_the_warc_records(sample_web):
    """Container points at the WARC record; the capture date is in the Envelope, the WAT's own is weeks later."""
    rel = (sample_web / "wat.manifest").read_text().split()[0]
    warc_rel = _manifest(sample_web)[0]
    records = list(_intact_members(sample_web / rel))
    assert _header(records[0][0], "WARC-Type") == "warcinfo"
    metadata = [(h, json.loads(b)) for h, b in records[1:] if _header(h, "WARC-Type") == "metadata"
                and b.endswith(b"}")]
    assert metadata and all(d["Container"]["Filename"] == Path(warc_rel).name for _, d in metadata)
    warc = (sample_web / warc_rel).read_bytes()
    for head, doc in metadata:
        described = doc["Envelope"]["WARC-Header-Metadata"]
        assert _header(head, "WARC-Refers-To") == described["WARC-Record-ID"]
        member = zlib.decompressobj(31).decompress(warc[int(doc["Container"]["Offset"]):])
        assert f"WARC-Record-ID: {described['WARC-Record-ID']}\r\n".encode() in member[:2000]
        assert _header(head, "WARC-Date") > described["WARC-Date"]  # the WAT is written weeks after the crawl


def test_the_truth_is_what_datacomps_rules_find_in_the_wat_files(sample_web):
    rows, bad_json, records = _wat_pairs(sample_web)
    assert bad_json > 0 and records > 0  # some JSON is cut short on purpose
    first: dict = {}
    for url, alt, when in rows:
        first[(url, alt)] = min(first.get((url, alt), when), when)
    truth = duckdb.sql(f"select url, text, strftime(first_seen_time, '%Y-%m-%dT%H:%M:%SZ') "
                       f"from '{sample_web}/truth/*.parquet'").fetchall()
    for url, text, seen in truth:
        assert first.get((url, text)) == seen, (url, text)


def test_the_truth_marks_the_pairs_only_one_rule_set_can_match(sample_web):
    n_dc, n_h5, n_dc_seen = duckdb.sql(
        f"select count_if(datacomp_rules_only), count_if(html5_rules_only), count(first_seen_time) "
        f"from '{sample_web}/truth/*.parquet'").fetchall()[0]
    assert 0.02 * SAMPLE_PAIRS < n_dc < 0.2 * SAMPLE_PAIRS
    assert n_h5 > 0
    assert duckdb.sql(f"select count(*) from '{sample_web}/truth/*.parquet' "
                      f"where datacomp_rules_only and first_seen_time is null").fetchall()[0][0] == 0
