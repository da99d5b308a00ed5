"""DataComp's baseline filters as small objects: each says, row by row, keep or drop and why.

A filter is a list of checks `(reason, drop_mask)` evaluated in order on a pandas batch of
metadata rows; a row's reason is its first failing check (None = kept). The filters are pure
(no Spark); `curation/filter_job.py` runs them over metadata shards and counts the reasons with a
groupBy. Rules (DataComp's baselines, exactly):

- basic: fastText lid.176 top-1 language == "en" (no threshold), `len(text.split()) > 2`,
  `len(text) > 5`, `min(width, height) >= 200`, `max/min <= 3.0`.
- clip: `clip_l14_similarity_score >= threshold` (or the b32 score); the threshold is fixed, or
  set so that the top fraction of the whole pool is kept (`threshold_for_fraction`).
- image: rows passing the caption filter (en, > 1 word, > 5 characters) are clustered by their
  `l14_img` embedding (k-means); the clusters nearest (argmax dot product) to ImageNet-like target
  embeddings form the target set; a row is kept if its nearest centroid (argmax dot product) is in
  that set. How the clusters are made is a `ClusterRecipe` (below): DataComp's, or ours.
- bestpool: clip with fraction 0.3, then image on the survivors (CLIP threshold, then the caption
  filter, then the assignment to the centroids).

Bad rows are dropped with reasons of their own and never kept: null text, null or non-positive
sizes, NaN or null scores, missing or non-finite embeddings.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from curation.langid import predict_languages

Check = tuple[str, np.ndarray]


WORD_COUNTS = ("split", "fasttext")


def fasttext_word_count(text: str) -> int:
    """DataComp's image caption filter's word count (`baselines/apply_filter.py`, `caption_filter`:
    `len(fasttext.tokenize(text))`): only ASCII whitespace separates words, and each newline is a word
    of its own (fastText's end-of-sentence token `</s>`), unlike `str.split()`."""
    import fasttext  # (cheap: curation.langid imports it already)

    return len(fasttext.tokenize(text))


def caption_stats(text: pd.Series, lid_model: str | None = None, fasttext_words: bool = False) -> pd.DataFrame:
    """language (fastText top-1), n_words (`len(t.split())`), n_chars (`len(t)`) and, with
    fasttext_words, n_fasttext_words (`fasttext_word_count`); text may be null."""
    filled = text.fillna("").astype(str).tolist()
    stats = {
        "language": predict_languages(filled, lid_model) if filled else [],
        "n_words": np.fromiter((len(t.split()) for t in filled), np.int64, len(filled)),
        "n_chars": np.fromiter((len(t) for t in filled), np.int64, len(filled)),
    }
    if fasttext_words:
        stats["n_fasttext_words"] = np.fromiter(map(fasttext_word_count, filled), np.int64, len(filled))
    return pd.DataFrame(stats, index=text.index)


def first_reasons(checks: list[Check], n: int) -> np.ndarray:
    """Per row: the reason of its first failing check, or None."""
    reasons = np.full(n, None, dtype=object)
    open_rows = np.ones(n, bool)
    for reason, drop in checks:
        hit = open_rows & np.asarray(drop, bool)
        reasons[hit] = reason
        open_rows &= ~hit
    return reasons


@dataclass
class Batch:
    """Metadata rows plus what the checks need: caption stats, and embeddings/clusters if any."""
    rows: pd.DataFrame
    stats: pd.DataFrame
    nearest_cluster: np.ndarray | None = None   # -1 where the embedding is missing or not finite

    def __len__(self):
        return len(self.rows)


def _caption_checks(b: Batch, min_words_exclusive: int, word_count: str = "split") -> list[Check]:
    s = b.stats
    words = s["n_fasttext_words"] if word_count == "fasttext" else s["n_words"]
    return [
        ("null_text", b.rows["text"].isna().to_numpy()),
        ("not_english", (s["language"] != "en").to_numpy()),
        ("too_few_words", (words <= min_words_exclusive).to_numpy()),
        ("too_short", (s["n_chars"] <= 5).to_numpy()),
    ]


@dataclass(frozen=True)
class BasicFilter:
    name: str = "basic"
    needs_embeddings: bool = False

    def checks(self, b: Batch) -> list[Check]:
        w = pd.to_numeric(b.rows["original_width"], errors="coerce").to_numpy(float)
        h = pd.to_numeric(b.rows["original_height"], errors="coerce").to_numpy(float)
        bad_size = ~np.isfinite(w) | ~np.isfinite(h) | (w <= 0) | (h <= 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            lo, hi = np.minimum(w, h), np.maximum(w, h)
            aspect = hi / lo
        caption = _caption_checks(b, 2)
        return [caption[0], ("invalid_size", bad_size), *caption[1:],
                ("too_small", ~bad_size & (lo < 200)),
                ("extreme_aspect_ratio", ~bad_size & (aspect > 3.0))]


SCORE_COLUMNS = {"l14": "clip_l14_similarity_score", "b32": "clip_b32_similarity_score"}


def threshold_for_fraction(scores: np.ndarray, fraction: float, total_rows: int | None = None) -> float:
    """DataComp's threshold for keeping the top `fraction` of the pool: with n = int(N * fraction),
    the n-th entry (0-based) of the scores sorted high to low; N counts every row of the pool, and
    rows without a valid score sort last."""
    valid = np.sort(np.asarray(scores, float)[np.isfinite(scores)])[::-1]
    n = int((total_rows if total_rows is not None else len(scores)) * fraction)
    return float(valid[n]) if n < len(valid) else float("-inf")


@dataclass(frozen=True)
class ClipScoreFilter:
    threshold: float
    arch: str = "l14"
    name: str = "clip"
    needs_embeddings: bool = False

    def checks(self, b: Batch) -> list[Check]:
        score = pd.to_numeric(b.rows[SCORE_COLUMNS[self.arch]], errors="coerce").to_numpy(float)
        invalid = ~np.isfinite(score)
        return [("invalid_clip_score", invalid), ("low_clip_score", ~invalid & (score < self.threshold))]


def nearest_centroid(emb: np.ndarray, centroids: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """argmax dot product per row (-1 for rows with a non-finite value)."""
    out = np.full(len(emb), -1, np.int64)
    c = centroids.astype(np.float32)
    for i in range(0, len(emb), chunk):
        e = emb[i:i + chunk].astype(np.float32)
        ok = np.isfinite(e).all(axis=1)
        if ok.any():
            out[i:i + chunk][ok] = np.argmax(e[ok] @ c.T, axis=1)
    return out


@dataclass(frozen=True)
class ImageFilter:
    centroids: np.ndarray = field(repr=False)
    target_clusters: frozenset = field(repr=False)
    word_count: str = "split"   # how the caption filter counts words: str.split or fasttext.tokenize
    name: str = "image"
    needs_embeddings: bool = True

    def caption_checks(self, b: Batch) -> list[Check]:
        return _caption_checks(b, 1, self.word_count)

    def checks(self, b: Batch) -> list[Check]:
        cluster = b.nearest_cluster if b.nearest_cluster is not None else np.full(len(b), -1)
        targets = np.fromiter(self.target_clusters, np.int64, len(self.target_clusters))
        return [*self.caption_checks(b), ("missing_embedding", cluster < 0),
                ("not_in_target_cluster", (cluster >= 0) & ~np.isin(cluster, targets))]


@dataclass(frozen=True)
class Chain:
    """Filters applied in order; a row's reason is the first failing check of the first filter it fails."""
    name: str
    filters: tuple

    @property
    def needs_embeddings(self) -> bool:
        return any(f.needs_embeddings for f in self.filters)

    def checks(self, b: Batch) -> list[Check]:
        return [c for f in self.filters for c in f.checks(b)]


def target_clusters(targets: np.ndarray, centroids: np.ndarray) -> frozenset:
    """The centroids that some target embedding is nearest to."""
    return frozenset(int(c) for c in np.unique(nearest_centroid(targets, centroids)) if c >= 0)


def kmeans(sample: np.ndarray, k: int, seed: int = 0, iterations: int = 20, spherical: bool = True) -> np.ndarray:
    """faiss k-means on the CPU, deterministic for a given sample order and seed; k is capped at the
    number of rows (faiss refuses fewer rows than clusters; with as many, each row is a centroid).

    spherical=False is DataComp's call (`mlfoundations/datacomp`, `baselines/image_based_clustering.py`,
    `train_kmeans`): `faiss.Clustering(d, k)` with `niter` 20, `seed` 0, `max_points_per_centroid`
    10,000,000 (no subsampling) and other parameters at faiss's defaults (min_points_per_centroid, which
    only decides whether faiss prints a warning, aside), trained with a flat L2 index
    (theirs on GPUs, `GpuIndexFlatL2`; here `IndexFlatL2`: the same algorithm, float rounding aside).
    spherical=True (ours) renormalises the centroids to unit length after each iteration, the natural
    geometry for CLIP embeddings, which are compared by dot product.
    """
    # Imported here: faiss costs 40-65 ms to import, and only the image and bestpool filters' driver
    # needs it (every tic-filter process and Spark Python worker imports this module).
    import faiss

    x = np.ascontiguousarray(sample, dtype=np.float32)
    k = min(k, len(x))
    if spherical:
        km = faiss.Kmeans(x.shape[1], k, niter=iterations, seed=seed, spherical=True, verbose=False,
                          min_points_per_centroid=1, max_points_per_centroid=1 << 30)
        km.train(x)
        return km.centroids.copy()
    clustering = faiss.Clustering(x.shape[1], k)
    clustering.niter = iterations
    clustering.seed = seed
    clustering.max_points_per_centroid = 10_000_000
    clustering.min_points_per_centroid = 1  # only silences faiss's "provide at least ..." warning on small pools
    clustering.train(x, faiss.IndexFlatL2(x.shape[1]))
    return faiss.vector_float_to_array(clustering.centroids).reshape(k, x.shape[1]).copy()


def default_clusters(n_candidates: int) -> int:
    """Scaled to the pool: about one cluster per 50 candidates, between 16 and 100k (DataComp used 100k
    clusters for its 12.8B pool; small pools need finer clusters to be selective at all)."""
    return int(np.clip(n_candidates // 50, 16, 100_000))


DATACOMP_CLUSTERS = 100_000  # image_based_clustering.py's --num_clusters default, used at every scale


@dataclass(frozen=True)
class ClusterRecipe:
    """How the image filter's clusters are made (tic-filter --recipe)."""
    name: str
    spherical: bool          # unit-norm centroids (ours) or plain L2 k-means (DataComp)
    word_count: str          # the image caption filter's word count: "split" or "fasttext" (tokenize)
    after_clip: bool         # bestpool trains on rows past the CLIP threshold (ours), or on the whole
                             # caption-filtered pool (DataComp: the centroids are pool-wide)
    uid_order: bool          # the k-means rows in uid order (ours), or in shard then row order (DataComp's
                             # load order); faiss's initial centroids are drawn by position
    fixed_clusters: int | None   # DataComp's 100k at every scale; None: scaled to the candidates
    every_candidate: bool    # train on every candidate (DataComp at the small and medium scales,
                             # `--sample_ratio -1`), or on at most max(40k, 40 per cluster)

    def clusters(self, n_candidates: int) -> int:
        """The default k before the cap at the candidate count."""
        return self.fixed_clusters or default_clusters(n_candidates)

    def sample_size(self, k: int, n_candidates: int) -> int:
        """The default number of rows k-means trains on."""
        return n_candidates if self.every_candidate else max(40_000, 40 * k)


RECIPES = {
    "datacomp": ClusterRecipe("datacomp", spherical=False, word_count="fasttext", after_clip=False, uid_order=False,
                              fixed_clusters=DATACOMP_CLUSTERS, every_candidate=True),
    "scaled": ClusterRecipe("scaled", spherical=True, word_count="split", after_clip=True, uid_order=True,
                            fixed_clusters=None, every_candidate=False),
}
