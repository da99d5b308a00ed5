"""Generate a sample web: WARC snapshots, DataComp-style metadata, ground truth, an ImageNet-like set.

Generation goes chunk by chunk (one metadata shard per chunk), so memory stays bounded
whatever --pairs is. Every random draw comes from a generator seeded by (seed, purpose,
chunk), and every writer is deterministic, so a rerun with the same arguments is byte-identical.
"""
from __future__ import annotations

import ctypes
import datetime as dt
import hashlib
import html
import json
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from ticcore.errors import UserError
from ticcore.imagenet import classes_by_wnid
from ticcore.localfs import WriteBehindFile
from ticcore.outputs import claim_output, is_our_output, staged_dir

from . import html as H
from .captions import make_captions
from .images import (FAIL_NOT_FOUND, FAIL_NOT_IMAGE, FAIL_OK, FAIL_SLOW, FAIL_TOO_LARGE, FAILURES, FORMATS,
                     TOO_LARGE_SIZE, ImageKey, ImageToken, TemplateStore, decode_token, encode_tokens, image_sha256,
                     key_layout)
from .npzfile import write_npz
from .refclip import ImageEmbeddingCache, ReferenceClip, image_key_code, image_key_fields
from .vocabulary import (ALL_CONCEPTS, CDN_HOSTS, COLORS, COVID_START, FLICKR_DECOY_HOSTS, FLICKR_HOST_FARMS,
                         FLICKR_HOST_LIVE, LANGUAGES, SCENES, SITE_WORDS_A, SITE_WORDS_B, TLD_BY_LANGUAGE)
from .warc import WarcWriter, WatWriter, http_date
from .world import CRAWL_DAYS, SampleWebConfig, year_weights

MARKER = "world.json"
USER_AGENT = "CCBot/2.0 (https://commoncrawl.org/faq/) [tic-clip sample web]"
FLICKR_SHARE = {2014: .14, 2015: .12, 2016: .10, 2017: .08, 2018: .06, 2019: .05, 2020: .04, 2021: .035, 2022: .03}
COVID_RATE = {2020: 0.05, 2021: 0.06, 2022: 0.035}
FAILURE_P = np.array([0.945, 0.035, 0.003, 0.012, 0.005])  # ok, 404, slow, not an image, too large
COVID_CONCEPTS = {"face_mask", "hand_sanitizer", "covid_test", "vaccine_card"}
FILLER = ("Posted by the editors. Read more about this topic in our archive, share it with your friends "
          "and leave a comment below. All pictures are for illustration only.")


class GenerationError(UserError):
    """Bad arguments or output location: reported as one line, exit code 2."""


# ====================================================================== sites

@dataclass
class Sites:
    domain: list[str]
    language: np.ndarray     # index into LANGUAGES
    charset: list[str]       # "" = undeclared
    scheme: list[str]
    by_language: list[np.ndarray]
    title: list[str]         # the site's name as captions quote it ("Photoworld")

    def active(self, language: int, chunk: int, share: float) -> np.ndarray:
        """The sites of a language that chunk `chunk` posts on: a window of `share` of them, moving
        on chunk by chunk (so every site is used, and each chunk's pages stay well filled)."""
        pool = self.by_language[language]
        width = max(1, math.ceil(len(pool) * share))
        if width >= len(pool):
            return pool
        return np.take(pool, np.arange(chunk * width, (chunk + 1) * width), mode="wrap")

    @staticmethod
    def build(cfg: SampleWebConfig) -> "Sites":
        rng = np.random.default_rng([cfg.seed, 7])
        n = int(np.clip(cfg.pairs // 400, 60, 100_000))
        lang_p = np.array([p for _, p, _ in LANGUAGES])
        language = rng.choice(len(LANGUAGES), size=n, p=lang_p / lang_p.sum())
        language[: len(LANGUAGES)] = np.arange(len(LANGUAGES))  # every language has a site
        domains, charsets, schemes = [], [], []
        a, b, k = rng.integers(len(SITE_WORDS_A), size=n), rng.integers(len(SITE_WORDS_B), size=n), \
            rng.integers(1 << 20, size=n)
        for i in range(n):
            code, _, cs = LANGUAGES[language[i]]
            tlds = TLD_BY_LANGUAGE[code]
            domains.append(f"{SITE_WORDS_A[a[i]]}{SITE_WORDS_B[b[i]]}{i}.{tlds[k[i] % len(tlds)]}")
            charsets.append(cs[(k[i] >> 4) % len(cs)])
            schemes.append("https" if (k[i] >> 8) % 5 < 2 else "http")
        by_language = [np.nonzero(language == li)[0] for li in range(len(LANGUAGES))]
        titles = [d.split(".")[0].rstrip("0123456789").title() for d in domains]
        return Sites(domains, language, charsets, schemes, by_language, titles)


# ====================================================================== helpers

def make_uid(url: str, text: str) -> str:
    """DataComp-style 128-bit uid (32 lowercase hex): the first half of sha256(url TAB text)."""
    return hashlib.sha256(f"{url}\t{text}".encode("utf-8")).hexdigest()[:32]


_SLUG_WORD = re.compile(r"[a-z0-9]+")


def _slug(text: str) -> str:
    return "-".join(_SLUG_WORD.findall(text[:80].lower())[:4]) or "image"


def image_url(host_kind: int, tok: str, ext: str, slug: str, year: int, month: int, site_domain: str,
              pick: int) -> str:
    """The URL of a pool image; `tok` is its token (hex), `ext` its format's file extension."""
    if host_kind == 0:  # Flickr
        host = FLICKR_HOST_LIVE if year >= 2017 else FLICKR_HOST_FARMS[pick % len(FLICKR_HOST_FARMS)]
        return f"http://{host}/{1000 + pick % 8000}/{tok}_{pick % 0xFFFFF:05x}_b.{ext}"
    if host_kind == 1:  # a CDN
        host = CDN_HOSTS[pick % len(CDN_HOSTS)]
        return f"http://{host}/{tok[:2]}/{tok[2:4]}/{slug}-{tok}.{ext}"
    if host_kind == 2:  # the site's own static host
        return f"http://static.{site_domain}/wp-content/uploads/{year}/{month:02d}/{slug}-{tok}.{ext}"
    host = FLICKR_DECOY_HOSTS[pick % len(FLICKR_DECOY_HOSTS)]  # looks like Flickr, is not
    return f"http://{host}/flickr/photos/{slug}-{tok}.{ext}"


def _face_boxes(rng: np.random.Generator, has_faces: np.ndarray) -> pa.ListArray:
    """DataComp's face_bboxes: per image a list of [x0, y0, x1, y1] boxes (relative, 4 decimals)."""
    n = len(has_faces)
    counts = np.where(has_faces, rng.integers(1, 3, size=n), 0)
    raw = rng.random((n, 2, 4))
    corner = raw[:, :, :2] * 0.6
    far = corner + (0.1 + raw[:, :, 2:] * 0.25)
    boxes = np.concatenate([corner, far], axis=2).round(4)[np.arange(2)[None, :] < counts[:, None]]  # (sum(counts), 4)
    inner = pa.ListArray.from_arrays(pa.array(np.arange(0, boxes.size + 1, 4, dtype=np.int32)), pa.array(boxes.ravel()))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), inner)


WHITESPACE_NOISE_P = 0.08  # share of sightings whose alt carries extra whitespace: another pair for DataComp
WAT_DELAY_DAYS = 20        # Common Crawl writes a snapshot's WAT files weeks after the crawl

# Where a careless reading of DataComp's pair rules would differ (see html.py), planted per pair:
ENTITY_ALT_P = 0.02        # the alt as written holds a character reference
ENTITY_SUFFIXES = (" &amp; friends", " &quot;new&quot;", " at the caf&#233;", " &#x27;22 edition")
SPACED_ALT_P = 0.02        # the alt as written holds a newline or a run of spaces
EMPTY_QUERY_URL_P = 0.01   # the URL ends in an empty query ("x.jpg?"), which urljoin drops
ERROR_PAGE_P = 0.03        # pages served with an error status that still show their posts' images
ERROR_STATUSES = ((404, "Not Found"), (410, "Gone"), (500, "Internal Server Error"), (503, "Service Unavailable"))


def _by_year(table: dict[int, float], years: tuple[int, ...], default: float | None = None) -> np.ndarray:
    """A {year: value} table as an array indexed by year - years[0]; a year missing from the table
    takes `default`, or is an error when there is none."""
    out = np.zeros(years[-1] - years[0] + 1)
    for y in years:
        if y not in table and default is None:
            raise ValueError(f"no value for {y} in {table}")
        out[y - years[0]] = table.get(y, default)
    return out


def _take(values: list, index: np.ndarray) -> pa.Array:
    """values[i] for each i in index, as an Arrow array (no per-row Python objects)."""
    return pa.array(values).take(pa.array(index))


CONCEPT_HAS_FACES = np.array([c.faces for c in ALL_CONCEPTS])


def _alt_as_written(caption: str, draw: float, pick: int) -> str:
    """A pair's alt attribute as every page writes it (HTML-escaped once), which is DataComp's text."""
    alt = H.attr(caption)
    if draw < ENTITY_ALT_P:
        return alt + ENTITY_SUFFIXES[pick % len(ENTITY_SUFFIXES)]
    if draw < ENTITY_ALT_P + SPACED_ALT_P:
        return (alt.replace(" ", "\n    ", 1), alt.replace(" ", "  ", 1), alt + " ")[pick % 3]
    return alt


def _img_link(src: str, alt: str | None) -> dict:
    """A WAT `Links` entry for an <img src> (ia-web-commons: the attributes as written; no alt key without alt)."""
    return {"path": "IMG@/src", "url": src} if alt is None else {"path": "IMG@/src", "url": src, "alt": alt}


def _html5_text(alt: str) -> str:
    """What the html5 rules make of an alt attribute: entities decoded, whitespace normalised."""
    return " ".join(html.unescape(alt).split())


def _whitespace_noise(rng_val: float, text: str) -> str:
    if rng_val < 0.02:
        return "  " + text + " "
    if rng_val < 0.04:
        return text.replace(" ", "\n  ", 1)
    if rng_val < 0.06:
        return text.replace(" ", " \t ", 1)
    if rng_val < WHITESPACE_NOISE_P:
        return text.replace(" ", "   ")
    return text


METADATA_SCHEMA = pa.schema([
    ("uid", pa.string()), ("url", pa.string()), ("text", pa.string()),
    ("original_width", pa.int64()), ("original_height", pa.int64()),
    ("clip_b32_similarity_score", pa.float32()), ("clip_l14_similarity_score", pa.float32()),
    ("face_bboxes", pa.list_(pa.list_(pa.float64()))), ("sha256", pa.string()),
])

TRUTH_SCHEMA = pa.schema([
    ("uid", pa.string()), ("url", pa.string()), ("text", pa.string()),
    ("first_seen_time", pa.timestamp("s", tz="UTC")), ("first_seen_snapshot", pa.string()),
    ("last_seen_time", pa.timestamp("s", tz="UTC")), ("n_snapshots_seen", pa.int32()),
    ("n_sightings", pa.int32()), ("birth_year", pa.int32()), ("concept_key", pa.string()),
    ("concept_kind", pa.string()), ("concept_wnid", pa.string()), ("lemma_wnid", pa.string()),
    ("caption_names_concept", pa.bool_()),
    ("look_year", pa.int32()), ("color", pa.string()), ("scene", pa.string()), ("language", pa.string()),
    ("is_covid", pa.bool_()), ("is_flickr", pa.bool_()), ("is_boilerplate", pa.bool_()),
    ("download_status", pa.string()), ("image_token", pa.string()), ("duplicate_of_image", pa.bool_()),
    ("datacomp_rules_only", pa.bool_()), ("html5_rules_only", pa.bool_()),
])


# Columns whose values are (nearly) all distinct: a parquet dictionary only costs time there (it is
# filled, overflows and is dropped); without them parquet writing took ~11% less and files ~5% less.
NEARLY_UNIQUE_COLUMNS = frozenset(("uid", "url", "text", "sha256", "image_token", "image_id",
                                   "clip_b32_similarity_score", "clip_l14_similarity_score", "face_bboxes",
                                   "first_seen_time", "last_seen_time"))


def _write_parquet(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", write_statistics=True,
                   use_dictionary=[c for c in table.column_names if c not in NEARLY_UNIQUE_COLUMNS])


# ====================================================================== the generator

class Generator:
    def __init__(self, cfg: SampleWebConfig, staging: Path, progress: bool = True):
        self.cfg = cfg
        self.root = staging
        self.progress = progress
        self.sites = Sites.build(cfg)
        # A chunk posts on a window of sites (about one per 80 of its pairs, at least 60): a world
        # with 100x more pairs has 100x more sites, and without the window its pages would shrink
        # to one image each, making a page (two records) per sighting.
        self.active_site_share = min(1.0, max(60, cfg.shard_rows // 80) / len(self.sites.domain))
        self.refclip = ReferenceClip()
        self.image_embeddings = ImageEmbeddingCache(self.refclip)
        self.templates = TemplateStore(keep_bytes=False)
        self.layout_cache: dict = {}      # picture key code -> (fmt, width, height)
        self.template_states: dict = {}   # template id (key code; -1 = the too-large one) -> sha256 state
        self.snapshots = cfg.snapshots
        self.covid_first_snapshot = min(
            s.index for s in self.snapshots
            if (s.start.year, s.start.month) >= COVID_START)
        self.writers: dict[int, WarcWriter] = {}
        self.file_counts = {s.index: 0 for s in self.snapshots}
        self.warc_paths: list[str] = []
        self.wat_paths: list[str] = []
        self.stats = {"pairs": 0, "unseen_pairs": 0, "sightings": 0, "pages": 0, "corrupt_members": 0,
                      "noise_records": 0, "warc_files": 0, "web_only_images": 0, "duplicate_images": 0,
                      "error_pages": 0}
        self.big_page_done = not cfg.big_page

    # ------------------------------------------------------------ WARC files
    def writer(self, s: int) -> WarcWriter:
        w = self.writers.get(s)
        if w is not None and w.tell() < self.cfg.warc_target_bytes:
            return w
        if w is not None:
            self._close_writer(s)
        snap = self.snapshots[s]
        idx = self.file_counts[s]
        self.file_counts[s] += 1
        stamp = (snap.start + dt.timedelta(hours=idx)).strftime("%Y%m%d%H%M%S")
        name = f"CC-MAIN-{stamp}-{idx:05d}-ip-127-0-0-1.sample.warc.gz"
        rel = f"crawl-data/{snap.snapshot_id}/segments/{snap.segment}/warc/{name}"
        # Common Crawl's layout: segments/<seg>/wat/<name>.warc.wat.gz, written weeks after the crawl
        wat_rel = f"crawl-data/{snap.snapshot_id}/segments/{snap.segment}/wat/{name[:-len('.gz')]}.wat.gz"
        wat = WatWriter(self.root / wat_rel, name, id_seed=f"{self.cfg.seed}/{wat_rel}",
                        written=snap.end + dt.timedelta(days=WAT_DELAY_DAYS), gzip_level=self.cfg.gzip_level)
        w = WarcWriter(self.root / rel, id_seed=f"{self.cfg.seed}/{rel}", gzip_level=self.cfg.gzip_level, wat=wat)
        w.warcinfo(snap.start, snap.snapshot_id, name)
        self.writers[s] = w
        self.warc_paths.append(rel)
        self.wat_paths.append(wat_rel)
        self.stats["warc_files"] += 1
        return w

    def _close_writer(self, s: int) -> None:
        w = self.writers.pop(s)
        # Every fifth file ends in a cut-off record, like an interrupted transfer (unless damage is off).
        if self.cfg.corrupt_record_rate > 0 and len(self.warc_paths) % 5 == 3:
            snap = self.snapshots[s]
            w.exchange(f"http://truncated.example.org/{snap.snapshot_id}/last.html", snap.start, "127.0.0.9",
                       200, "OK", [("Content-Type", "text/html; charset=utf-8")],
                       ("<html><body>" + "<p>cut</p>" * 400 + "</body></html>").encode(), USER_AGENT,
                       truncate_response_at=0.5)
            self.stats["corrupt_members"] += 1
        w.close_all()

    def close(self) -> None:
        for s in sorted(self.writers):
            self._close_writer(s)

    # ------------------------------------------------------------ pictures
    def _layouts(self, code: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fmt, width, height) per picture key code, each key's layout worked out once per world."""
        uniq, inverse = np.unique(code, return_inverse=True)
        rows = []
        for k in uniq.tolist():
            lay = self.layout_cache.get(k)
            if lay is None:
                lay = self.layout_cache[k] = key_layout(*image_key_fields(k))
            rows.append(lay)
        table = np.array(rows, np.int64).reshape(-1, 3)[inverse]
        return table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy()

    def _image_sha256(self, template_id: np.ndarray, token_hex: list[str]) -> list[str]:
        """Each served image's sha256: its template's hash state (one per template) plus its trailer."""
        uniq, first = np.unique(template_id, return_index=True)
        states = self.template_states
        for t, i in zip(uniq.tolist(), first.tolist()):
            if t not in states:  # the token names its template: any image of it will do
                states[t] = self.templates.hash_state(decode_token(token_hex[i]))
        return [image_sha256(states[t], h) for t, h in zip(template_id.tolist(), token_hex)]

    # ------------------------------------------------------------ one chunk
    def chunk(self, c: int) -> None:
        cfg = self.cfg
        start = c * cfg.shard_rows
        n = min(cfg.shard_rows, cfg.pairs - start)
        rng = np.random.default_rng([cfg.seed, 1, c])
        years = np.array(cfg.years)
        spy = cfg.snapshots_per_year
        n_snap = len(self.snapshots)

        # --- who each pair is
        year_idx = rng.choice(len(years), size=n, p=year_weights(cfg.years))
        s0 = year_idx * spy + rng.integers(spy, size=n)
        year = years[year_idx]
        unseen = rng.random(n) < cfg.unseen_fraction
        concept = np.empty(n, np.int64)
        for yi in range(len(years)):
            sel = np.nonzero(year_idx == yi)[0]
            concept[sel] = rng.choice(len(ALL_CONCEPTS), size=len(sel), p=cfg.concept_year_probs[yi])
        color = rng.integers(len(COLORS), size=n)
        scene = rng.integers(len(SCENES), size=n)
        lang_p = np.array([p for _, p, _ in LANGUAGES])
        lang_idx = rng.choice(len(LANGUAGES), size=n, p=lang_p / lang_p.sum())
        covid_draw = rng.random(n)
        failure = rng.choice(len(FAILURES), size=n, p=FAILURE_P)
        serial = np.arange(start, start + n, dtype=np.int64)
        look_year = year.copy()

        # --- planted duplicates: the same picture re-posted later under another URL, or the same URL
        # with another caption. A copy is never first seen before its original.
        image_src = np.arange(n)
        dup_image = rng.random(n) < 0.005
        dup_image[0] = False
        same_url = (rng.random(n) < 0.005) & ~dup_image
        same_url[0] = False
        for i in np.nonzero(dup_image | same_url)[0]:
            j = image_src[int(rng.integers(0, i))]
            image_src[i] = j
            for arr in (concept, look_year, color, scene, failure, serial):
                arr[i] = arr[j]
            s0[i] = max(s0[i], s0[j])
            unseen[i] = unseen[i] and unseen[j]
            if same_url[i]:
                lang_idx[i] = lang_idx[j]
        year = years[s0 // spy]
        self.stats["duplicate_images"] += int(dup_image.sum())

        language = [LANGUAGES[i][0] for i in lang_idx]
        is_en = lang_idx == 0
        covid_p = _by_year(COVID_RATE, cfg.years, default=0.0)[year - cfg.years[0]]
        covid_concept = np.array([ALL_CONCEPTS[k].key in COVID_CONCEPTS for k in concept])
        covid = is_en & (s0 >= self.covid_first_snapshot) & (covid_draw < np.where(covid_concept, 0.5, covid_p))
        code = image_key_code(concept, look_year, color, scene)
        fmt, width, height = self._layouts(code)
        big = failure == FAIL_TOO_LARGE
        fmt[big], width[big], height[big] = 1, TOO_LARGE_SIZE[0], TOO_LARGE_SIZE[1]
        token_hex = encode_tokens(concept, look_year, color, scene, fmt, failure, width, height, serial)

        # --- where each pair lives
        home_site = np.empty(n, np.int64)
        for li in range(len(LANGUAGES)):
            sel = np.nonzero(lang_idx == li)[0]
            pool = self.sites.active(li, c, self.active_site_share)
            home_site[sel] = pool[rng.integers(len(pool), size=len(sel))]
        flickr_p = _by_year(FLICKR_SHARE, cfg.years)[year - cfg.years[0]]
        r = rng.random(n)
        host_kind = np.where(r < flickr_p, 0, np.where(r < flickr_p + 0.005, 3, np.where(r < 0.7, 1, 2)))
        pick = rng.integers(1 << 30, size=n)
        month = rng.integers(1, 13, size=n)

        # --- captions and URLs
        site_titles = [self.sites.title[s] for s in home_site.tolist()]
        caps = make_captions(rng, concept, color, scene, language, covid, site_titles)
        raw_texts = caps.text
        alt_draw, alt_pick = rng.random(n).tolist(), rng.integers(1 << 30, size=n).tolist()
        empty_query = rng.random(n) < EMPTY_QUERY_URL_P
        domains = self.sites.domain
        urls = [image_url(h, tok, FORMATS[f], _slug(t) if h else "", y, m, domains[site], p)  # Flickr URLs: no slug
                for h, tok, f, t, y, m, site, p in
                zip(host_kind.tolist(), token_hex, fmt.tolist(), raw_texts, year.tolist(), month.tolist(),
                    home_site.tolist(), pick.tolist())]
        for i in np.flatnonzero(empty_query & ~same_url).tolist():
            urls[i] += "?"
        for i in np.flatnonzero(same_url).tolist():
            urls[i] = urls[image_src[i]]
        # (url, text) must be unique in the pool; rare collisions get a distinguishing suffix. The text is
        # the alt exactly as pages write it (DataComp's rule).
        texts, taken = [], set()
        for i in range(n):
            text = _alt_as_written(raw_texts[i], alt_draw[i], alt_pick[i])
            while (urls[i], text) in taken:
                raw_texts[i] += " (photo)"
                text = _alt_as_written(raw_texts[i], alt_draw[i], alt_pick[i])
            taken.add((urls[i], text))
            texts.append(text)
        uids = [make_uid(u, t) for u, t in zip(urls, texts)]
        sha = self._image_sha256(np.where(big, -1, code), token_hex)

        # --- reference-CLIP embeddings and scores
        emb = self.image_embeddings.lookup(concept, look_year, color, scene)
        img_lat = emb.pop("latent")
        txt_lat = self.refclip.text_latent(concept, color, scene, caps.mentions_color, caps.mentions_scene,
                                           caps.concept_weight, caps.boilerplate, caps.covid, rng)
        emb.update(self.refclip.embed_all(txt_lat, "txt"))
        score = self.refclip.latent_similarity(img_lat, txt_lat)
        faces = _face_boxes(rng, CONCEPT_HAS_FACES[concept] & (rng.random(n) < 0.8))

        # --- sightings: first at s0, then recrawls later (geometric gaps), sometimes on a second page
        extra = np.minimum(rng.geometric(0.45, size=n) - 1, 6)
        extra[unseen] = 0
        count = np.where(unseen, 0, 1 + extra)
        pair_of = np.repeat(np.arange(n), count)
        first = np.concatenate([[0], np.cumsum(count)[:-1]])
        rank = np.arange(len(pair_of)) - np.repeat(first, count)
        gaps = np.where(rank == 0, 0, rng.geometric(0.5, size=len(pair_of)))
        cum = np.cumsum(gaps)
        cum -= np.repeat(cum[first[count > 0]] - gaps[first[count > 0]], count[count > 0])
        snap = s0[pair_of] + cum
        keep = snap < n_snap
        pair_of, snap = pair_of[keep], snap[keep]
        twin = (rng.random(n) < 0.1) & ~unseen
        pair_of = np.concatenate([pair_of, np.nonzero(twin)[0]])
        snap = np.concatenate([snap, s0[twin]])
        syndicated = rng.random(len(pair_of)) < 0.1
        site = home_site[pair_of].copy()
        for k in np.nonzero(syndicated)[0]:
            pool = self.sites.active(lang_idx[pair_of[k]], c, self.active_site_share)
            site[k] = pool[rng.integers(len(pool))]
        presentation = rng.choice(len(H.PRESENTATION_P), size=len(pair_of), p=H.PRESENTATION_P)
        alt_noise = rng.random(len(pair_of))
        self.stats["sightings"] += len(pair_of)
        html5_text_ok = [_html5_text(t) == t for t in texts]
        sight_pair, sight_snap, sight_time, dc_vis, h5_vis = self._write_pages(
            rng, c, pair_of, snap, site, presentation, alt_noise, [H.attr(u) for u in urls], texts, html5_text_ok)
        # What the DataComp rules recover: sightings whose record is intact and whose <img src> carries the
        # pair exactly. The html5 rules see other sightings (lazy attributes, normalised alts) and miss
        # others (error pages, rewritten URLs, alts with references or odd whitespace).
        vp, vt, vs = sight_pair[dc_vis], sight_time[dc_vis], sight_snap[dc_vis]
        dc_seen = np.bincount(vp, minlength=n) > 0
        h5_seen = np.bincount(sight_pair[h5_vis], minlength=n) > 0
        seen_min = np.full(n, np.iinfo(np.int64).max)
        np.minimum.at(seen_min, vp, vt)
        seen_max = np.full(n, np.iinfo(np.int64).min)
        np.maximum.at(seen_max, vp, vt)
        first_snap = np.full(n, n_snap)
        np.minimum.at(first_snap, vp, vs)
        n_sightings = np.bincount(vp, minlength=n)
        n_snapshots_seen = np.bincount(np.unique(vp * n_snap + vs) // n_snap, minlength=n)
        for s in range(n_snap):
            self._write_noise(rng, c, s)

        # --- metadata shard (+ .npz) and the truth; rows are i.i.d. draws, so generation order is as good
        # as a shuffle
        shard = f"{c:05d}"
        meta = pa.table({
            "uid": uids, "url": urls, "text": texts, "original_width": width, "original_height": height,
            "clip_b32_similarity_score": score["b32"], "clip_l14_similarity_score": score["l14"],
            "face_bboxes": faces, "sha256": sha,
        }, schema=METADATA_SCHEMA)
        _write_parquet(meta, self.root / "metadata" / f"{shard}.parquet")
        with WriteBehindFile(self.root / "metadata" / f"{shard}.npz") as fh:
            write_npz(fh, dict(sorted(emb.items())))

        seen = seen_min != np.iinfo(np.int64).max
        to_ts = lambda a: pa.array(np.where(seen, a, 0).astype("datetime64[s]"), pa.timestamp("s", tz="UTC"),
                                   mask=~seen)
        snap_names = [s.snapshot_id for s in self.snapshots] + [None]
        snap_ids = [snap_names[k] for k in first_snap.tolist()]
        truth = pa.table({
            "uid": uids, "url": urls, "text": texts,
            "first_seen_time": to_ts(seen_min), "first_seen_snapshot": snap_ids, "last_seen_time": to_ts(seen_max),
            "n_snapshots_seen": n_snapshots_seen.astype(np.int32),
            "n_sightings": n_sightings.astype(np.int32), "birth_year": year.astype(np.int32),
            "concept_key": _take([c.key for c in ALL_CONCEPTS], concept),
            "concept_kind": _take([c.kind for c in ALL_CONCEPTS], concept),
            "concept_wnid": _take([c.wnid for c in ALL_CONCEPTS], concept),
            "lemma_wnid": _take([c.lemma_wnid for c in ALL_CONCEPTS], concept),
            "caption_names_concept": [ALL_CONCEPTS[k].phrase.lower() in t.lower() for k, t in zip(concept, texts)],
            "look_year": look_year.astype(np.int32), "color": _take([c[0] for c in COLORS], color),
            "scene": _take(list(SCENES), scene), "language": language,
            "is_covid": ["covid" in t.lower() for t in texts], "is_flickr": host_kind == 0,
            "is_boilerplate": caps.boilerplate, "download_status": _take(list(FAILURES), failure),
            "image_token": token_hex, "duplicate_of_image": dup_image,
            "datacomp_rules_only": dc_seen & ~h5_seen, "html5_rules_only": h5_seen & ~dc_seen,
        }, schema=TRUTH_SCHEMA)
        _write_parquet(truth, self.root / "truth" / f"{shard}.parquet")
        self.stats["pairs"] += n
        self.stats["unseen_pairs"] += int((~seen).sum())

    # ------------------------------------------------------------ pages
    def _write_pages(self, rng, c, pair_of, snap, site, presentation, alt_noise, esc_urls, alts, html5_text_ok):
        """Write the chunk's pages: runs of (snapshot, site) cut into pages of 4-12 images.

        `alts` are the pairs' alt attributes as written. Returns each sighting's pair, snapshot, crawl
        time (epoch seconds; -1 where the page's record is damaged, so no extractor can see it), and
        whether the DataComp rules and the html5 rules recover the pair from it. Every random draw is
        made up front, one array per purpose, so the per-page loop only formats.
        """
        n_sight = len(pair_of)
        order = np.lexsort((rng.random(n_sight), site, snap))
        o_pair, o_snap, o_site = pair_of[order], snap[order], site[order]
        cut = np.flatnonzero((o_snap[1:] != o_snap[:-1]) | (o_site[1:] != o_site[:-1])) + 1
        bounds = np.concatenate([[0], cut, [n_sight]]).tolist()
        sizes = rng.integers(4, 13, size=n_sight // 4 + len(bounds)).tolist()
        starts, k = [], 0
        for run_start, run_end in zip(bounds[:-1], bounds[1:]):
            while run_start < run_end:
                starts.append(run_start)
                run_start += sizes[k]
                k += 1
        starts.append(n_sight)
        n_pages = len(starts) - 1
        crawl_offset = rng.integers(0, CRAWL_DAYS * 86400, size=n_pages).tolist()
        has_base = (rng.random(n_pages) < 0.3).tolist()
        charset_where = rng.integers(3, size=n_pages).tolist()  # 0 header+meta, 1 header only, 2 meta only
        meta_style = rng.integers(2, size=n_pages).tolist()
        damaged = (rng.random(n_pages) < self.cfg.corrupt_record_rate).tolist()
        extra_from = np.concatenate([[0], np.cumsum(rng.poisson(1.5, size=n_pages))]).tolist()
        extra_kind = rng.integers(9, size=extra_from[-1]).tolist()
        extra_n = rng.integers(1 << 30, size=extra_from[-1]).tolist()
        extra_slot = rng.random(extra_from[-1]).tolist()
        error_page = (rng.random(n_pages) < ERROR_PAGE_P).tolist()
        error_status = rng.integers(len(ERROR_STATUSES), size=n_pages).tolist()

        pairs_l, snaps_l, sites_l = o_pair.tolist(), o_snap.tolist(), o_site.tolist()
        pres_l, noise_l = presentation[order].tolist(), alt_noise[order].tolist()
        snap_start = [int(s.start.timestamp()) for s in self.snapshots]
        utc = dt.timezone.utc
        sight_time = np.full(n_sight, -1, np.int64)
        dc_vis = np.zeros(n_sight, bool)
        h5_vis = np.zeros(n_sight, bool)
        plain, invisible = H.PLAIN, H.DATACOMP_INVISIBLE
        for g in range(n_pages):
            first, stop = starts[g], starts[g + 1]
            s_idx, site_idx = snaps_l[first], sites_l[first]
            ts = snap_start[s_idx] + crawl_offset[g]
            crawl = dt.datetime.fromtimestamp(ts, utc)
            domain = self.sites.domain[site_idx]
            scheme = self.sites.scheme[site_idx]
            charset = self.sites.charset[site_idx]
            base = f"http://static.{domain}/" if has_base[g] else None
            is_http = scheme == "http"
            status, reason = ERROR_STATUSES[error_status[g]] if error_page[g] else (200, "OK")
            # html5 rules resolve against <base> (http here) or the page: urljoin drops an empty query
            # only when the URL's scheme is the base's
            h5_keeps_query = base is None and not is_http
            blocks, links = [], []
            for k in range(first, stop):
                p, kind, noise = pairs_l[k], pres_l[k], noise_l[k]
                if kind == plain and noise >= WHITESPACE_NOISE_P:  # the usual case, written inline
                    blocks.append(f'<img src="{esc_urls[p]}" alt="{alts[p]}">')
                    links.append(((esc_urls[p], alts[p]),))
                    dc_vis[k] = True
                else:
                    alt = _whitespace_noise(noise, alts[p])
                    tag, tag_links = H.image_tag(kind, esc_urls[p], alt, is_http, base)
                    blocks.append(tag)
                    links.append(tag_links)
                    dc_vis[k] = kind not in invisible and alt == alts[p]
                h5_vis[k] = status == 200 and html5_text_ok[p] and (h5_keeps_query or esc_urls[p][-1] != "?")
            for e in range(extra_from[g], extra_from[g + 1]):
                dup = pairs_l[first + extra_n[e] % (stop - first)]
                at = int(extra_slot[e] * (len(blocks) + 1))
                tag, tag_links = self._extra(extra_kind[e], extra_n[e], domain, esc_urls[dup], alts[dup])
                blocks.insert(at, tag)
                links.insert(at, tag_links)
            # Pages with no declared charset carry pool images only in UTF-8 (reliably sniffable).
            where = charset_where[g] if charset else -1
            meta = H.charset_meta(charset, meta_style[g]) if where in (0, 2) else None
            title = f"{domain} - post {g}"
            body = H.page_html(title, LANGUAGES[self.sites.language[site_idx]][0], meta, base, blocks, FILLER)
            payload = body.encode(charset or "utf-8", errors="xmlcharrefreplace")
            ctype = f"text/html; charset={charset}" if where in (0, 1) else "text/html"
            page_url = f"{scheme}://www.{domain}/{crawl.year}/{crawl.month:02d}/post-{c}-{g}.html"
            head = {"Title": title, **({"Base": base} if base else {})}
            wat_links = [{"path": "A@/href", "url": "/", "text": "Home"}]
            wat_links += [_img_link(src, alt) for tag_links in links for src, alt in tag_links]
            self.writer(s_idx).exchange(page_url, crawl, f"10.{site_idx % 250}.{(site_idx >> 8) % 250}.7", status,
                                        reason, [("Date", http_date(crawl)), ("Server", "nginx"),
                                                 ("Content-Type", ctype), ("X-Crawler-Content-Encoding", "gzip")],
                                        payload, USER_AGENT, truncate_response_at=0.6 if damaged[g] else None,
                                        html={"Head": head, "Links": wat_links})
            if damaged[g]:
                self.stats["corrupt_members"] += 1
                dc_vis[first:stop] = h5_vis[first:stop] = False
            else:
                sight_time[first:stop] = ts
            self.stats["error_pages"] += error_page[g]
        self.stats["pages"] += n_pages
        return o_pair, o_snap, sight_time, dc_vis, h5_vis

    def _extra(self, kind: int, n: int, domain: str, dup_url: str, dup_alt: str) -> tuple[str, tuple]:
        """An image that is not in the pool: icons, pixels, bad srcs, alt variants, web-only pairs; with its
        WAT (src, alt) links."""
        if kind == 0:
            src, alt = f"http://static.{domain}/theme/icon-{n % 40}.png", ""
            return f'<img src="{src}" alt="">', ((src, alt),)
        if kind == 1:
            src = f"http://static.{domain}/theme/logo.svg"
            return f'<img src="{src}">', ((src, None),)
        if kind == 2:
            src = f"http://pixel.adsrv{n % 9}.com/t.gif?id={n}&amp;ref=sample"
            return f'<img src="{src}" width="1" height="1" alt="">', ((src, ""),)
        if kind == 3:
            src = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42"
                   "mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
            return f'<img src="{src}" alt="inline dot image">', ((src, "inline dot image"),)
        if kind == 4:
            return '<img src="javascript:void(0)" alt="open the gallery viewer">', \
                (("javascript:void(0)", "open the gallery viewer"),)
        if kind == 5:  # DataComp's rules turn an empty src into the page's own URL (urljoin(base, ""))
            return '<img src="" alt="image coming soon here">', (("", "image coming soon here"),)
        if kind == 6:
            bad = ("http://[2001:db8::1/broken.jpg", f"http://cdn.example.com:port{n % 10}/bad.jpg")[n % 2]
            return f'<img src="{bad}" alt="broken link picture here">', ((bad, "broken link picture here"),)
        if kind == 7:  # a pool image shown twice on one page, the second time with another alt
            alt = "Image: " + dup_alt
            return f'<img src="{dup_url}" alt="{alt}">', ((dup_url, alt),)
        self.stats["web_only_images"] += 1
        src, alt = f"http://cdn.webonly.example.net/x/{n:08x}.jpg", H.attr("web only picture number " + str(n % 1000))
        return f'<img src="{src}" alt="{alt}">', ((src, alt),)

    def _write_noise(self, rng, c, s_idx) -> None:
        """Records the extractor must skip: non-HTML, non-200, dns:, metadata, undeclared cp1251."""
        snap = self.snapshots[s_idx]
        w = self.writer(s_idx)
        when = snap.start + dt.timedelta(seconds=int(rng.integers(0, CRAWL_DAYS * 86400)))
        host = f"noise{c}-{s_idx}.example.com"
        date_h = ("Date", http_date(when))
        w.exchange(f"http://{host}/robots.txt", when, "10.9.9.9", 200, "OK",
                   [date_h, ("Content-Type", "text/plain")], b"User-agent: *\nDisallow: /private/\n", USER_AGENT)
        w.exchange(f"http://{host}/picture.jpg", when, "10.9.9.9", 200, "OK",
                   [date_h, ("Content-Type", "image/jpeg")], b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4, USER_AGENT)
        w.exchange(f"http://{host}/report.pdf", when, "10.9.9.9", 200, "OK",
                   [date_h, ("Content-Type", "application/pdf")], b"%PDF-1.4\n% not really a pdf\n", USER_AGENT)
        w.exchange(f"http://{host}/missing.html", when, "10.9.9.9", 404, "Not Found",
                   [date_h, ("Content-Type", "text/html; charset=utf-8")],
                   b'<html><body><h1>Not found</h1><img src="http://cdn.webonly.example.net/404.png" '
                   b'alt="a picture on an error page"></body></html>', USER_AGENT,
                   html={"Head": {}, "Links": [_img_link("http://cdn.webonly.example.net/404.png",
                                                         "a picture on an error page")]})
        w.exchange(f"http://{host}/old.html", when, "10.9.9.9", 301, "Moved Permanently",
                   [date_h, ("Location", f"https://{host}/new.html"), ("Content-Type", "text/html")],
                   b"<html><body>Moved</body></html>", USER_AGENT, html={"Head": {}})
        cyr = "<html><head><title>Новости</title></head><body><p>Свежие новости и фотографии дня</p>" \
              '<img src="http://cdn.webonly.example.net/ru/photo.jpg" alt="Фотография дня: красный автобус">' \
              "</body></html>"
        w.exchange(f"http://{host}/ru/news.html", when, "10.9.9.9", 200, "OK",
                   [date_h, ("Content-Type", "text/html")], cyr.encode("windows-1251"), USER_AGENT,
                   html={"Head": {"Title": "Новости"},
                         "Links": [_img_link("http://cdn.webonly.example.net/ru/photo.jpg",
                                             "Фотография дня: красный автобус")]})
        w.dns_response(host, "10.9.9.9", when)
        # every seventh of these metadata records gets a WAT description whose JSON is cut short
        w.metadata(f"http://{host}/robots.txt", when, "fetchTimeMs: 12\r\n", wat_json_damaged=(c + s_idx) % 7 == 0)
        self.stats["noise_records"] += 8
        if not self.big_page_done and s_idx == len(self.snapshots) - 1:
            # One ~10 MB page per world; its images are not in the pool.
            imgs = "".join(f'<p>{FILLER}</p><img src="http://cdn.webonly.example.net/big/{i}.jpg" alt="big page '
                           f'image {i}">' for i in range(24_000))
            # its WAT description lists no links: both rule sets skip a page this large (see ExtractConfig)
            w.exchange(f"http://{host}/huge-page.html", when, "10.9.9.9", 200, "OK",
                       [date_h, ("Content-Type", "text/html; charset=utf-8")],
                       f"<html><body>{imgs}</body></html>".encode(), USER_AGENT, html={"Head": {}})
            self.big_page_done = True
            self.stats["noise_records"] += 1

    # ------------------------------------------------------------ ImageNet-like set
    def imagenet_like(self) -> None:
        """Labelled pictures of each ImageNet concept in its oldest look, with reference-CLIP embeddings."""
        rng = np.random.default_rng([self.cfg.seed, 3])
        by_wnid = classes_by_wnid()
        concepts = [i for i, c in enumerate(ALL_CONCEPTS) if c.kind == "imagenet"]
        per = self.cfg.imagenet_per_class
        concept = np.repeat(concepts, per)
        m = len(concept)
        color = rng.integers(len(COLORS), size=m)
        scene = rng.integers(len(SCENES), size=m)
        look = np.full(m, 2014)
        rows = {"image_id": [], "url": [], "class_id": [], "wnid": [], "lemma": [], "concept_key": [], "sha256": []}
        for i in range(m):
            fmt, w, h = key_layout(int(concept[i]), 2014, int(color[i]), int(scene[i]))
            tok = ImageToken(ImageKey(int(concept[i]), 2014, int(color[i]), int(scene[i]), fmt, max(w, 224),
                                      max(h, 224)), FAIL_OK, (1 << 40) + i)
            spec = ALL_CONCEPTS[concept[i]]
            cls = by_wnid[spec.wnid]
            rows["image_id"].append(f"imagenet-like-{i:06d}")
            rows["url"].append(f"http://imagenet-like.sample/{cls.wnid}/{tok.hex}.{FORMATS[fmt]}")
            rows["class_id"].append(cls.class_id)
            rows["wnid"].append(cls.wnid)
            rows["lemma"].append(cls.name)
            rows["concept_key"].append(spec.key)
            rows["sha256"].append(self.templates.sha256(tok))
        _write_parquet(pa.table(rows), self.root / "imagenet_like" / "images.parquet")
        emb = self.image_embeddings.lookup(concept, look, color, scene)
        emb.pop("latent")
        with open(self.root / "imagenet_like" / "embeddings.npz", "wb") as fh:
            write_npz(fh, {**emb, "class_id": np.array(rows["class_id"], np.int64)})


# ====================================================================== entry point

TOOL = "tic-sample-web"


# glibc's mallopt parameter numbers (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def reuse_freed_memory() -> bool:
    """Have glibc's malloc serve blocks of up to 32 MiB from its heap and keep freed heap memory.

    A chunk's arrays (embeddings, their gathers, table columns) are mostly 1-32 MiB. By default each is a
    fresh mmap, unmapped again when freed, so every chunk faulted in hundreds of MB of new pages: on a
    virtual machine that cost about as much CPU as the numpy work on them (200k pairs: 136k -> 78k page
    faults, 4.3 -> 2.7 s of system time). Process-wide; the heap keeps at most what a chunk needed at its
    peak. Returns False where malloc is not glibc's (nothing is changed there).
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    # 32 MiB: glibc's largest mmap threshold on 64-bit systems
    return bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))


def generate(cfg: SampleWebConfig, progress: bool = True, log=print) -> dict:
    """Build the world in a staging directory next to cfg.out, then swap it into place."""
    out = claim_output(cfg.out.resolve(), TOOL)
    if is_our_output(out, TOOL):
        existing = json.loads((out / MARKER).read_text())
        if existing.get("config") == cfg.to_json():
            log(f"[sample-web] {out} already holds this world (same config); nothing to do")
            return existing
    t0 = time.perf_counter()
    reuse_freed_memory()
    with staged_dir(out, TOOL) as staging:
        gen = Generator(cfg, staging, progress)
        bar = tqdm(total=cfg.pairs, unit="pair", disable=not progress, file=sys.stderr, desc="sample web")
        # One BLAS thread: the generator is a one-core process, and OpenBLAS's waiting threads spin
        # (with two of them, ~25 us of CPU per pair went to spinning). It also keeps every embedding
        # independent of the machine's core count (BLAS results depend on the thread count).
        with threadpool_limits(limits=1, user_api="blas"):
            for c in range(cfg.n_chunks):
                gen.chunk(c)
                bar.update(min(cfg.shard_rows, cfg.pairs - c * cfg.shard_rows))
            bar.close()
            gen.close()
            gen.imagenet_like()
        manifest = sorted(gen.warc_paths)
        (staging / "warc.manifest").write_text("".join(p + "\n" for p in manifest))
        (staging / "wat.manifest").write_text("".join(p + "\n" for p in sorted(gen.wat_paths)))
        elapsed = time.perf_counter() - t0
        world = {
            "generator": "tic-sample-web",
            "config": cfg.to_json(),
            "snapshots": [{"snapshot": s.snapshot_id, "start": s.start.isoformat(), "days": CRAWL_DAYS}
                          for s in cfg.snapshots],
            "concepts": [{"index": i, "key": c.key, "phrase": c.phrase, "wnid": c.wnid, "kind": c.kind,
                          "lemma_wnid": c.lemma_wnid, "intro_year": c.intro_year} for i, c in enumerate(ALL_CONCEPTS)],
            "stats": {**gen.stats, "template_renders": gen.templates.renders},
        }
        (staging / MARKER).write_text(json.dumps(world, indent=1, sort_keys=True) + "\n")
        # Timings vary run to run, so they are returned, not written (outputs stay byte-identical).
        world = {**world, "timing": {"seconds": elapsed, "template_render_seconds": gen.templates.render_seconds}}
    log(f"[sample-web] wrote {cfg.pairs} pairs, {gen.stats['warc_files']} WARC files, {gen.stats['pages']} pages "
        f"to {out} in {elapsed:.1f}s ({cfg.pairs / elapsed:,.0f} pairs/s)")
    return world
