"""Distribution shift between time steps (the paper's appendix C.6), as pure functions.

- Image shift: the Fréchet distance between two steps' image-embedding distributions (Gaussian fit),
  with the matrix square root's trace taken from symmetric eigendecompositions (stable, real).
- Text shift: every caption goes to its top-5 WordNet noun categories by sentence-embedding
  similarity; a step's distribution is the share of each category over its captions' top-5 lists;
  the total-variation distance compares two steps.

Categories: WordNet noun synsets at depth 5-6 with at least 50 hyponyms within three levels (a few
hundred mid-level nouns: "dog", "vehicle", "food", ...), each embedded as "lemmas: definition".
The list and its embeddings are cached; caption embeddings are cached per caption hash.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from benchmarks.sentence import check_model_path, encode
from benchmarks.wordnet import cache_dir, reader
from ticcore.outputs import atomic_file, atomic_write, reclaim_stale

TOP_K = 5


# ------------------------------------------------------------------ image shift

def gaussian(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, np.float64)
    if len(x) < 2:
        raise ValueError(f"need at least 2 embeddings for a covariance, got {len(x)}")
    return x.mean(0), np.cov(x, rowvar=False)


def _sqrt_psd(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, cov1, mu2, cov2, neg_tol: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)).

    Tr((C1 C2)^(1/2)) is computed as the sum of the square roots of the eigenvalues of the symmetric
    PSD matrix C1^(1/2) C2 C1^(1/2) (same spectrum as C1 C2), with symmetric eigendecompositions: no
    complex arithmetic, stable at 512-768 dimensions and for rank-deficient covariances. Eigenvalues
    below zero are rounding (checked against `neg_tol` relative to the largest) and are clipped."""
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    s1 = _sqrt_psd(np.asarray(cov1, np.float64))
    m = s1 @ np.asarray(cov2, np.float64) @ s1
    w = np.linalg.eigvalsh((m + m.T) / 2)
    if w.size and w.min() < -neg_tol * max(1.0, float(w.max())):
        raise ValueError(f"covariance product has a clearly negative eigenvalue ({w.min():.3g}): not PSD")
    tr_covmean = float(np.sqrt(np.clip(w, 0, None)).sum())
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * tr_covmean)


# ------------------------------------------------------------------ text shift

def tv_distance(p: dict, q: dict) -> float:
    keys = sorted(set(p) | set(q))  # a fixed order: a float sum over a set's order changed the last digit run to run
    return 0.5 * float(sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys))


def categories(min_hyponyms: int = 50) -> list[dict]:
    """[{synset, name, text}] of the noun categories (cached as JSON)."""
    path = cache_dir() / f"noun_categories_{min_hyponyms}.json"
    if path.is_file():
        return json.loads(path.read_text())
    wn = reader()
    # Minimum depths by one breadth-first pass down from the root (Synset.min_depth per synset is slow).
    frontier, depth, seen = [wn.synset("entity.n.01")], 0, {"entity.n.01"}
    mid_level = []
    while frontier and depth < 6:
        depth += 1
        nxt = []
        for syn in frontier:
            for h in syn.hyponyms() + syn.instance_hyponyms():
                if h.name() not in seen:
                    seen.add(h.name())
                    nxt.append(h)
                    if depth >= 5:
                        mid_level.append(h)
        frontier = nxt
    out = []
    for s in mid_level:
        if sum(1 for _ in s.closure(lambda x: x.hyponyms(), depth=3)) >= min_hyponyms:
            lemmas = [lemma.replace("_", " ") for lemma in s.lemma_names()]
            out.append({"synset": s.name(), "name": lemmas[0], "text": f"{', '.join(lemmas)}: {s.definition()}"})
    out.sort(key=lambda c: c["synset"])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(out))
    return out


class CaptionEmbeddings:
    """Sentence embeddings of captions, cached on disk per caption hash (one .npz per call's new captions)."""

    def __init__(self, model_path: str | None = None, cache: Path | None = None, batch_size: int | None = None):
        self.model_path, self.batch_size = model_path, batch_size
        self.cache = cache or cache_dir() / "caption_embeddings" / self._model_key()
        self.known: dict[str, np.ndarray] = {}
        self.encoded = 0  # captions encoded by the model (cache misses)
        if self.cache.is_dir():
            reclaim_stale(self.cache)  # each write has its own name: the next write of a killed one's may never come
            for f in sorted(self.cache.glob("*.npz")):
                with np.load(f) as z:
                    for h, v in zip(z["hashes"], z["vectors"]):
                        self.known[str(h)] = v

    def _model_key(self) -> str:
        return hashlib.sha1(str(check_model_path(self.model_path).resolve()).encode()).hexdigest()[:12]

    @staticmethod
    def key(text: str) -> str:
        return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()

    def __call__(self, texts: list[str]) -> np.ndarray:
        keys = [self.key(t) for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts) if k not in self.known}.items())
        if missing:
            vectors = encode([t for _, t in missing], self.model_path, self.batch_size).astype(np.float16)
            self.encoded += len(missing)
            for (k, _), v in zip(missing, vectors):
                self.known[k] = v
            self.cache.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha1("".join(k for k, _ in missing).encode()).hexdigest()[:16]
            with atomic_file(self.cache / f"{name}.npz") as tmp:
                np.savez(tmp, hashes=np.array([k for k, _ in missing]), vectors=vectors)
        if not texts:
            return np.zeros((0, 384), np.float32)
        return np.stack([self.known[k] for k in keys]).astype(np.float32)


def top_categories(caption_vectors: np.ndarray, category_vectors: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """(n, k) category indices, best first."""
    sims = caption_vectors @ category_vectors.T
    top = np.argpartition(-sims, kth=min(k, sims.shape[1] - 1), axis=1)[:, :k]
    order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(top, order, axis=1)


def category_distribution(top: np.ndarray, names: list[str]) -> dict[str, float]:
    counts = np.bincount(top.ravel(), minlength=len(names)).astype(float)
    total = counts.sum()
    return {names[i]: counts[i] / total for i in np.nonzero(counts)[0]} if total else {}
