"""Generate a sample web: WARC snapshots, DataComp-style metadata, ground truth, an ImageNet-like set.

Generation goes chunk by chunk (one metadata shard per chunk), so memory stays bounded
whatever --pairs is. Every random draw comes from a generator seeded by (seed, purpose,
chunk), and every writer is deterministic, so a rerun with the same arguments is byte-identical.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import html as H
from .captions import make_captions
from .images import (FAIL_NOT_FOUND, FAIL_NOT_IMAGE, FAIL_OK, FAIL_SLOW, FAIL_TOO_LARGE, FAILURES, FORMATS,
                     TOO_LARGE_SIZE, ImageKey, ImageToken, TemplateStore, encode_token, key_layout)
from .refclip import ImageEmbeddingCache, ReferenceClip
from .vocabulary import (ALL_CONCEPTS, CDN_HOSTS, COLORS, COVID_START, FLICKR_DECOY_HOSTS, FLICKR_HOST_FARMS,
                         FLICKR_HOST_LIVE, LANGUAGES, SCENES, SITE_WORDS_A, SITE_WORDS_B, TLD_BY_LANGUAGE)
from ..localfs import swap_into_place
from .warc import WarcWriter, http_date
from .world import CRAWL_DAYS, SampleWebConfig, year_weights

MARKER = "world.json"
USER_AGENT = "CCBot/2.0 (https://commoncrawl.org/faq/) [tic-clip sample web]"
FLICKR_SHARE = {2014: .14, 2015: .12, 2016: .10, 2017: .08, 2018: .06, 2019: .05, 2020: .04, 2021: .035, 2022: .03}
COVID_RATE = {2020: 0.05, 2021: 0.06, 2022: 0.035}
FAILURE_P = np.array([0.945, 0.035, 0.003, 0.012, 0.005])  # ok, 404, slow, not an image, too large
COVID_CONCEPTS = {"face_mask", "hand_sanitizer", "covid_test", "vaccine_card"}
FILLER = ("Posted by the editors. Read more about this topic in our archive, share it with your friends "
          "and leave a comment below. All pictures are for illustration only.")


class GenerationError(Exception):
    """Bad arguments or output location: reported as one line, exit code 2."""


# ====================================================================== sites

@dataclass
class Sites:
    domain: list[str]
    language: np.ndarray     # index into LANGUAGES
    charset: list[str]       # "" = undeclared
    scheme: list[str]
    by_language: list[np.ndarray]

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
        return Sites(domains, language, charsets, schemes, by_language)


# ====================================================================== helpers

def make_uid(url: str, text: str) -> str:
    """DataComp-style 128-bit uid (32 lowercase hex): the first half of sha256(url TAB text)."""
    return hashlib.sha256(f"{url}\t{text}".encode("utf-8")).hexdigest()[:32]


_SLUG_WORD = re.compile(r"[a-z0-9]+")


def _slug(text: str) -> str:
    return "-".join(_SLUG_WORD.findall(text[:80].lower())[:4]) or "image"


def image_url(host_kind: int, token: ImageToken, slug: str, year: int, month: int, site_domain: str,
              pick: int) -> str:
    tok, ext = token.hex, FORMATS[token.key.fmt]
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


def _face_boxes(rng: np.random.Generator, has_faces: np.ndarray) -> list:
    out = []
    counts = np.where(has_faces, rng.integers(1, 3, size=len(has_faces)), 0)
    raw = rng.random((len(has_faces), 2, 4))
    for i, c in enumerate(counts):
        boxes = []
        for j in range(c):
            x, y, w, h = raw[i, j, 0] * 0.6, raw[i, j, 1] * 0.6, 0.1 + raw[i, j, 2] * 0.25, 0.1 + raw[i, j, 3] * 0.25
            boxes.append([round(float(x), 4), round(float(y), 4), round(float(x + w), 4), round(float(y + h), 4)])
        out.append(boxes)
    return out


def _whitespace_noise(rng_val: float, text: str) -> str:
    if rng_val < 0.02:
        return "  " + text + " "
    if rng_val < 0.04:
        return text.replace(" ", "\n  ", 1)
    if rng_val < 0.06:
        return text.replace(" ", " \t ", 1)
    if rng_val < 0.08:
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
])


def _write_parquet(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", use_dictionary=True, write_statistics=True)


# ====================================================================== the generator

class Generator:
    def __init__(self, cfg: SampleWebConfig, staging: Path, progress: bool = True):
        self.cfg = cfg
        self.root = staging
        self.progress = progress
        self.sites = Sites.build(cfg)
        self.refclip = ReferenceClip()
        self.image_embeddings = ImageEmbeddingCache(self.refclip)
        self.templates = TemplateStore(keep_bytes=False)
        self.layout_cache: dict = {}
        self.snapshots = cfg.snapshots
        self.covid_first_snapshot = min(
            s.index for s in self.snapshots
            if (s.start.year, s.start.month) >= COVID_START)
        self.writers: dict[int, WarcWriter] = {}
        self.file_counts = {s.index: 0 for s in self.snapshots}
        self.warc_paths: list[str] = []
        self.stats = {"pairs": 0, "unseen_pairs": 0, "sightings": 0, "pages": 0, "corrupt_members": 0,
                      "noise_records": 0, "warc_files": 0, "web_only_images": 0, "duplicate_images": 0}
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
        w = WarcWriter(self.root / rel, id_seed=f"{self.cfg.seed}/{rel}", gzip_level=self.cfg.gzip_level)
        w.warcinfo(snap.start, snap.snapshot_id, name)
        self.writers[s] = w
        self.warc_paths.append(rel)
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
        w.close()

    def close(self) -> None:
        for s in sorted(self.writers):
            self._close_writer(s)

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
        covid_p = np.array([COVID_RATE.get(int(y), 0.0) for y in year])
        covid_concept = np.array([ALL_CONCEPTS[k].key in COVID_CONCEPTS for k in concept])
        covid = is_en & (s0 >= self.covid_first_snapshot) & (covid_draw < np.where(covid_concept, 0.5, covid_p))
        fmt = np.empty(n, np.int64)
        width = np.empty(n, np.int64)
        height = np.empty(n, np.int64)
        for i in range(n):
            lk = (int(concept[i]), int(look_year[i]), int(color[i]), int(scene[i]))
            lay = self.layout_cache.get(lk)
            if lay is None:
                lay = self.layout_cache[lk] = key_layout(*lk)
            fmt[i], width[i], height[i] = lay
        big = failure == FAIL_TOO_LARGE
        fmt[big], width[big], height[big] = 1, TOO_LARGE_SIZE[0], TOO_LARGE_SIZE[1]

        tokens = [ImageToken(ImageKey(int(concept[i]), int(look_year[i]), int(color[i]), int(scene[i]),
                                      int(fmt[i]), int(width[i]), int(height[i])), int(failure[i]), int(serial[i]))
                  for i in range(n)]

        # --- where each pair lives
        home_site = np.empty(n, np.int64)
        for li in range(len(LANGUAGES)):
            sel = np.nonzero(lang_idx == li)[0]
            pool = self.sites.by_language[li]
            home_site[sel] = pool[rng.integers(len(pool), size=len(sel))]
        flickr_p = np.array([FLICKR_SHARE[int(y)] for y in year])
        r = rng.random(n)
        host_kind = np.where(r < flickr_p, 0, np.where(r < flickr_p + 0.005, 3, np.where(r < 0.7, 1, 2)))
        pick = rng.integers(1 << 30, size=n)
        month = rng.integers(1, 13, size=n)

        # --- captions and URLs
        site_titles = [self.sites.domain[s].split(".")[0].rstrip("0123456789").title() for s in home_site]
        caps = make_captions(rng, concept, color, scene, language, covid, site_titles)
        raw_texts = caps.text
        urls = [""] * n
        for i in range(n):
            if same_url[i]:
                urls[i] = urls[image_src[i]]
            else:
                urls[i] = image_url(int(host_kind[i]), tokens[i], _slug(raw_texts[i]), int(year[i]), int(month[i]),
                                    self.sites.domain[home_site[i]], int(pick[i]))
        # (url, text) must be unique in the pool; rare collisions get a distinguishing suffix.
        texts, taken = [], set()
        for i in range(n):
            text = " ".join(raw_texts[i].split())
            while (urls[i], text) in taken:
                raw_texts[i] += " (photo)"
                text = " ".join(raw_texts[i].split())
            taken.add((urls[i], text))
            texts.append(text)
        uids = [make_uid(u, t) for u, t in zip(urls, texts)]
        sha = [self.templates.sha256(t) for t in tokens]

        # --- reference-CLIP embeddings and scores
        emb = self.image_embeddings.lookup(concept, look_year, color, scene)
        img_lat = emb.pop("latent")
        txt_lat = self.refclip.text_latent(concept, color, scene, caps.mentions_color, caps.mentions_scene,
                                           caps.concept_weight, caps.boilerplate, caps.covid, rng)
        emb.update(self.refclip.embed_all(txt_lat, "txt"))
        score = self.refclip.latent_similarity(img_lat, txt_lat)
        faces = _face_boxes(rng, np.array([ALL_CONCEPTS[k].faces for k in concept]) & (rng.random(n) < 0.8))

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
            pool = self.sites.by_language[lang_idx[pair_of[k]]]
            site[k] = pool[rng.integers(len(pool))]
        presentation = rng.choice(len(H.PRESENTATION_P), size=len(pair_of), p=H.PRESENTATION_P)
        alt_noise = rng.random(len(pair_of))
        order = np.lexsort((rng.random(len(pair_of)), site, snap))
        self.stats["sightings"] += len(pair_of)

        seen_min = np.full(n, np.iinfo(np.int64).max)
        seen_max = np.full(n, np.iinfo(np.int64).min)
        seen_snaps = [set() for _ in range(n)]
        n_sightings = np.zeros(n, np.int64)

        esc_urls = [H.attr(u) for u in urls]
        esc_alts = [H.attr(t) for t in raw_texts]

        # --- pages: runs of (snapshot, site), cut into pages of 4-12 images
        pos = 0
        total = len(order)
        page_no = 0
        while pos < total:
            s_idx, site_idx = snap[order[pos]], site[order[pos]]
            end = pos
            while end < total and snap[order[end]] == s_idx and site[order[end]] == site_idx:
                end += 1
            while pos < end:
                size = int(rng.integers(4, 13))
                members = order[pos:min(end, pos + size)]
                pos += len(members)
                crawl = self.snapshots[s_idx].start + dt.timedelta(
                    seconds=int(rng.integers(0, CRAWL_DAYS * 86400)))
                visible = self._write_page(rng, c, page_no, int(s_idx), int(site_idx), crawl, members, pair_of,
                                           presentation, alt_noise, esc_urls, esc_alts, texts)
                page_no += 1
                if visible:
                    ts = int(crawl.timestamp())
                    for k in members:
                        p = pair_of[k]
                        seen_min[p] = min(seen_min[p], ts)
                        seen_max[p] = max(seen_max[p], ts)
                        seen_snaps[p].add(int(s_idx))
                        n_sightings[p] += 1
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
        with open(self.root / "metadata" / f"{shard}.npz", "wb") as fh:
            np.savez(fh, **dict(sorted(emb.items())))

        seen = seen_min != np.iinfo(np.int64).max
        to_ts = lambda a: pa.array(np.where(seen, a, 0).astype("datetime64[s]"), pa.timestamp("s", tz="UTC"),
                                   mask=~seen)
        snap_ids = [self.snapshots[min(seen_snaps[i])].snapshot_id if seen[i] else None for i in range(n)]
        truth = pa.table({
            "uid": uids, "url": urls, "text": texts,
            "first_seen_time": to_ts(seen_min), "first_seen_snapshot": snap_ids, "last_seen_time": to_ts(seen_max),
            "n_snapshots_seen": np.array([len(x) for x in seen_snaps], np.int32),
            "n_sightings": n_sightings.astype(np.int32), "birth_year": year.astype(np.int32),
            "concept_key": [ALL_CONCEPTS[k].key for k in concept],
            "concept_kind": [ALL_CONCEPTS[k].kind for k in concept],
            "concept_wnid": [ALL_CONCEPTS[k].wnid for k in concept],
            "lemma_wnid": [ALL_CONCEPTS[k].lemma_wnid for k in concept],
            "caption_names_concept": [ALL_CONCEPTS[k].phrase.lower() in t.lower() for k, t in zip(concept, texts)],
            "look_year": look_year.astype(np.int32), "color": [COLORS[k][0] for k in color],
            "scene": [SCENES[k] for k in scene], "language": language,
            "is_covid": ["covid" in t.lower() for t in texts], "is_flickr": host_kind == 0,
            "is_boilerplate": caps.boilerplate, "download_status": [FAILURES[f] for f in failure],
            "image_token": [t.hex for t in tokens], "duplicate_of_image": dup_image,
        }, schema=TRUTH_SCHEMA)
        _write_parquet(truth, self.root / "truth" / f"{shard}.parquet")
        self.stats["pairs"] += n
        self.stats["unseen_pairs"] += int((~seen).sum())

    # ------------------------------------------------------------ one page
    def _write_page(self, rng, c, page_no, s_idx, site_idx, crawl, members, pair_of, presentation, alt_noise,
                    esc_urls, esc_alts, texts) -> bool:
        """Write one HTML page's request+response; False if its record was damaged (invisible)."""
        snap = self.snapshots[s_idx]
        domain = self.sites.domain[site_idx]
        scheme = self.sites.scheme[site_idx]
        charset = self.sites.charset[site_idx]
        lang = LANGUAGES[self.sites.language[site_idx]][0]
        page_url = f"{scheme}://www.{domain}/{crawl.year}/{crawl.month:02d}/post-{c}-{page_no}.html"
        is_http = scheme == "http"
        base = f"http://static.{domain}/" if rng.random() < 0.3 else None
        blocks = []
        for k in members:
            p = pair_of[k]
            alt = _whitespace_noise(alt_noise[k], esc_alts[p])
            blocks.append(H.image_tag(int(presentation[k]), esc_urls[p], alt, is_http, base))
        blocks.extend(self._extras(rng, members, pair_of, esc_urls, texts, domain))
        order = rng.permutation(len(blocks))
        blocks = [blocks[i] for i in order]
        # Pages with no declared charset carry pool images only in UTF-8 (reliably sniffable).
        encoding = charset or "utf-8"
        where = int(rng.integers(3)) if charset else -1  # 0 header+meta, 1 header only, 2 meta only
        meta = H.charset_meta(charset, int(rng.integers(2))) if where in (0, 2) else None
        body = H.page_html(f"{domain} - post {page_no}", lang, meta, base, blocks, FILLER)
        payload = body.encode(encoding, errors="xmlcharrefreplace")
        ctype = f"text/html; charset={charset}" if where in (0, 1) else "text/html"
        damaged = rng.random() < self.cfg.corrupt_record_rate
        self.writer(s_idx).exchange(page_url, crawl, f"10.{site_idx % 250}.{(site_idx >> 8) % 250}.7", 200, "OK",
                                    [("Date", http_date(crawl)),
                                     ("Server", "nginx"), ("Content-Type", ctype),
                                     ("X-Crawler-Content-Encoding", "gzip")],
                                    payload, USER_AGENT, truncate_response_at=0.6 if damaged else None)
        self.stats["pages"] += 1
        if damaged:
            self.stats["corrupt_members"] += 1
        return not damaged

    def _extras(self, rng, members, pair_of, urls, texts, domain) -> list[str]:
        """Images that are not in the pool: icons, pixels, bad srcs, alt variants, web-only pairs."""
        out = []
        for _ in range(int(rng.poisson(1.5))):
            kind = int(rng.integers(9))
            n = int(rng.integers(1 << 30))
            if kind == 0:
                out.append(f'<img src="http://static.{domain}/theme/icon-{n % 40}.png" alt="">')
            elif kind == 1:
                out.append(f'<img src="http://static.{domain}/theme/logo.svg">')
            elif kind == 2:
                out.append(f'<img src="http://pixel.adsrv{n % 9}.com/t.gif?id={n}&amp;ref=sample" '
                           f'width="1" height="1" alt="">')
            elif kind == 3:
                out.append('<img src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42'
                           'mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==" alt="inline dot image">')
            elif kind == 4:
                out.append('<img src="javascript:void(0)" alt="open the gallery viewer">')
            elif kind == 5:
                out.append('<img src="" alt="image coming soon here">')
            elif kind == 6:
                bad = ("http://[2001:db8::1/broken.jpg", f"http://cdn.example.com:port{n % 10}/bad.jpg")[n % 2]
                out.append(f'<img src="{bad}" alt="broken link picture here">')
            elif kind == 7 and len(members):
                p = pair_of[members[n % len(members)]]
                out.append(f'<img src="{urls[p]}" alt="{H.attr("Image: " + texts[p])}">')
            else:
                out.append(f'<img src="http://cdn.webonly.example.net/x/{n:08x}.jpg" '
                           f'alt="{H.attr("web only picture number " + str(n % 1000))}">')
                self.stats["web_only_images"] += 1
        return out

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
                   b'alt="a picture on an error page"></body></html>', USER_AGENT)
        w.exchange(f"http://{host}/old.html", when, "10.9.9.9", 301, "Moved Permanently",
                   [date_h, ("Location", f"https://{host}/new.html"), ("Content-Type", "text/html")],
                   b"<html><body>Moved</body></html>", USER_AGENT)
        cyr = "<html><head><title>Новости</title></head><body><p>Свежие новости и фотографии дня</p>" \
              '<img src="http://cdn.webonly.example.net/ru/photo.jpg" alt="Фотография дня: красный автобус">' \
              "</body></html>"
        w.exchange(f"http://{host}/ru/news.html", when, "10.9.9.9", 200, "OK",
                   [date_h, ("Content-Type", "text/html")], cyr.encode("windows-1251"), USER_AGENT)
        w.dns_response(host, "10.9.9.9", when)
        w.metadata(f"http://{host}/robots.txt", when, "fetchTimeMs: 12\r\n")
        self.stats["noise_records"] += 8
        if not self.big_page_done and s_idx == len(self.snapshots) - 1:
            # One ~10 MB page per world; its images are not in the pool.
            imgs = "".join(f'<p>{FILLER}</p><img src="http://cdn.webonly.example.net/big/{i}.jpg" alt="big page '
                           f'image {i}">' for i in range(24_000))
            w.exchange(f"http://{host}/huge-page.html", when, "10.9.9.9", 200, "OK",
                       [date_h, ("Content-Type", "text/html; charset=utf-8")],
                       f"<html><body>{imgs}</body></html>".encode(), USER_AGENT)
            self.big_page_done = True
            self.stats["noise_records"] += 1

    # ------------------------------------------------------------ ImageNet-like set
    def imagenet_like(self) -> None:
        """Labelled pictures of each ImageNet concept in its oldest look, with reference-CLIP embeddings."""
        from ..imagenet import classes_by_wnid

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
            np.savez(fh, **emb, class_id=np.array(rows["class_id"], np.int64))


# ====================================================================== entry point

def _is_our_world(path: Path) -> bool:
    try:
        return json.loads((path / MARKER).read_text()).get("generator") == "tic-sample-web"
    except (OSError, ValueError):
        return False


def check_output_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise GenerationError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not _is_our_world(out):
        raise GenerationError(f"{out}: exists, is not empty and is not a sample web (no {MARKER}); "
                              "refusing to overwrite it")


def generate(cfg: SampleWebConfig, progress: bool = True, log=print) -> dict:
    """Build the world in a staging directory next to cfg.out, then swap it into place."""
    out = cfg.out.resolve()
    check_output_dir(out)
    if _is_our_world(out):
        existing = json.loads((out / MARKER).read_text())
        if existing.get("config") == cfg.to_json():
            log(f"[sample-web] {out} already holds this world (same config); nothing to do")
            return existing
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    t0 = time.perf_counter()
    try:
        gen = Generator(cfg, staging, progress)
        from tqdm import tqdm

        bar = tqdm(total=cfg.pairs, unit="pair", disable=not progress, file=sys.stderr, desc="sample web")
        for c in range(cfg.n_chunks):
            gen.chunk(c)
            bar.update(min(cfg.shard_rows, cfg.pairs - c * cfg.shard_rows))
        bar.close()
        gen.close()
        gen.imagenet_like()
        manifest = sorted(gen.warc_paths)
        (staging / "warc.manifest").write_text("".join(p + "\n" for p in manifest))
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
        swap_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"[sample-web] wrote {cfg.pairs} pairs, {gen.stats['warc_files']} WARC files, {gen.stats['pages']} pages "
        f"to {out} in {elapsed:.1f}s ({cfg.pairs / elapsed:,.0f} pairs/s)")
    return world
