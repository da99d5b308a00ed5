"""Distribution shift between time steps (the paper's appendix C.6), as pure functions.

- Image shift: the Fréchet distance between two steps' image-embedding distributions (Gaussian fit),
  with a numerically stable matrix square root (scipy's `sqrtm`; a small imaginary part from rounding
  is dropped, a large one is an error).
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
import os
from pathlib import Path

import numpy as np

TOP_K = 5


def cache_dir() -> Path:
    return Path(os.environ.get("TIC_CACHE_DIR", Path.home() / ".cache" / "tic-clip"))


# ------------------------------------------------------------------ image shift

def gaussian(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, np.float64)
    if len(x) < 2:
        raise ValueError(f"need at least 2 embeddings for a covariance, got {len(x)}")
    return x.mean(0), np.cov(x, rowvar=False)


def frechet_distance(mu1, cov1, mu2, cov2, imag_tol: float = 1e-3) -> float:
    """||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2))."""
    from scipy import linalg

    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(cov1 @ cov2, disp=False)
    if not np.isfinite(covmean).all():  # singular product: regularise, as the FID reference code does
        eps = np.eye(len(mu1)) * 1e-6
        covmean = linalg.sqrtm((cov1 + eps) @ (cov2 + eps))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=imag_tol):
            raise ValueError(f"matrix square root has a large imaginary part ({np.abs(covmean.imag).max():.3g})")
        covmean = covmean.real
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(covmean))


# ------------------------------------------------------------------ text shift

def tv_distance(p: dict, q: dict) -> float:
    keys = set(p) | set(q)
    return 0.5 * float(sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys))


def categories(min_hyponyms: int = 50) -> list[dict]:
    """[{synset, name, text}] of the noun categories (cached as JSON)."""
    path = cache_dir() / f"noun_categories_{min_hyponyms}.json"
    if path.is_file():
        return json.loads(path.read_text())
    from benchmarks.wordnet import reader

    wn = reader()
    out = []
    for s in wn.all_synsets("n"):
        if s.min_depth() in (5, 6) and sum(1 for _ in s.closure(lambda x: x.hyponyms(), depth=3)) >= min_hyponyms:
            lemmas = [lemma.replace("_", " ") for lemma in s.lemma_names()]
            out.append({"synset": s.name(), "name": lemmas[0], "text": f"{', '.join(lemmas)}: {s.definition()}"})
    out.sort(key=lambda c: c["synset"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(out))
    tmp.replace(path)
    return out


class CaptionEmbeddings:
    """Sentence embeddings of captions, cached on disk per caption hash (one .npz per call's new captions)."""

    def __init__(self, model_path: str | None = None, cache: Path | None = None, batch_size: int = 256):
        self.model_path, self.batch_size = model_path, batch_size
        self.cache = cache or cache_dir() / "caption_embeddings" / self._model_key()
        self.known: dict[str, np.ndarray] = {}
        self.encoded = 0  # captions encoded by the model (cache misses)
        if self.cache.is_dir():
            for f in sorted(self.cache.glob("*.npz")):
                with np.load(f) as z:
                    for h, v in zip(z["hashes"], z["vectors"]):
                        self.known[str(h)] = v

    def _model_key(self) -> str:
        from benchmarks.sentence import check_model_path

        return hashlib.sha1(str(check_model_path(self.model_path).resolve()).encode()).hexdigest()[:12]

    @staticmethod
    def key(text: str) -> str:
        return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()

    def __call__(self, texts: list[str]) -> np.ndarray:
        from benchmarks.sentence import encode

        keys = [self.key(t) for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts) if k not in self.known}.items())
        if missing:
            vectors = encode([t for _, t in missing], self.model_path, self.batch_size).astype(np.float16)
            self.encoded += len(missing)
            for (k, _), v in zip(missing, vectors):
                self.known[k] = v
            self.cache.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha1("".join(k for k, _ in missing).encode()).hexdigest()[:16]
            tmp = self.cache / f".{name}.tmp.npz"
            np.savez(tmp, hashes=np.array([k for k, _ in missing]), vectors=vectors)
            tmp.replace(self.cache / f"{name}.npz")
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
