"""A simulated "reference CLIP": the stand-in for the OpenAI CLIP models DataComp scored with.

No pretrained CLIP can be downloaded here, so DataComp's `l14_*`/`b32_*` embeddings and
similarity scores are simulated, with a fixed seed, from the same latent factors that
draw the pictures (concept, the year of its look, colour, scene) and the captions.

The model is meant to behave like a CLIP trained on *old* web data:
- text maps a concept to its 2014 look, so images whose look drifted away (later years)
  score lower, and clusters around ImageNet-like (2014-look) images favour old pairs;
- concepts born after its training (drones, face masks, ...) get text embeddings that are
  mostly unrelated to their pictures, so they score low;
- non-English and boilerplate captions align weakly.
Image embeddings are a function of the picture only (pairs sharing pixels share them).
"""
from __future__ import annotations

import functools

import numpy as np

from .vocabulary import ALL_CONCEPTS, COLORS, SCENES

REFCLIP_SEED = 20_140_601
LATENT_DIM = 48
EMBED_DIMS = {"l14": 768, "b32": 512}
# |modality offset|: bigger means lower cross-modal cosines (DataComp's L/14 scores sit near 0.2-0.35).
MODALITY_GAP = {"l14": 1.15, "b32": 1.3}
DRIFT_RAD_PER_YEAR = 0.06
NOISE_TABLE = 8192
EMBED_BLOCK_ROWS = 1024  # 1024 x 768 float32 = 3 MiB: stays in cache between the matmul and the cast


def _to_float16(src: np.ndarray, dst: np.ndarray) -> None:
    """dst[...] = src (float32 -> float16, round to nearest even). OpenCV's F16C conversion gives
    the same bits ~15x faster than numpy's scalar cast, which was ~6 us a pair; numpy otherwise."""
    convert = _fp16_converter()
    if convert is None:
        dst[...] = src
    else:
        convert(src, dst.view(np.int16))


@functools.lru_cache(maxsize=1)
def _fp16_converter():
    try:  # optional (~0.12 s to import): numpy casts when it is missing
        import cv2
    except ImportError:
        return None
    return getattr(cv2, "convertFp16", None)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.einsum("...i,...i->...", x, x))[..., None]


class ReferenceClip:
    def __init__(self):
        rng = np.random.default_rng(REFCLIP_SEED)
        n = len(ALL_CONCEPTS)
        self.concept_dir = _unit(rng.standard_normal((n, LATENT_DIM)))
        drift = rng.standard_normal((n, LATENT_DIM))
        drift -= (drift * self.concept_dir).sum(1, keepdims=True) * self.concept_dir
        self.drift_dir = _unit(drift)
        self.color_dir = _unit(rng.standard_normal((len(COLORS), LATENT_DIM)))
        self.scene_dir = _unit(rng.standard_normal((len(SCENES), LATENT_DIM)))
        self.unknown_text_dir = _unit(rng.standard_normal((n, LATENT_DIM)))
        self.boilerplate_dir = _unit(rng.standard_normal(LATENT_DIM))
        self.covid_dir = _unit(rng.standard_normal(LATENT_DIM))
        self.image_noise = rng.standard_normal((NOISE_TABLE, LATENT_DIM)) / np.sqrt(LATENT_DIM)
        self.kind = np.array([c.kind for c in ALL_CONCEPTS])
        index = {c.wnid: i for i, c in enumerate(ALL_CONCEPTS) if c.kind == "imagenet"}
        self.borrowed = np.array([index.get(c.lemma_wnid, i) for i, c in enumerate(ALL_CONCEPTS)])
        self.proj, self.offset = {}, {}
        for name, dim in EMBED_DIMS.items():
            q, _ = np.linalg.qr(rng.standard_normal((dim, LATENT_DIM + 2)))
            self.proj[name] = q[:, :LATENT_DIM].astype(np.float32)
            # Image and text offsets are orthogonal to each other and to the shared subspace.
            self.offset[name] = {"img": (q[:, LATENT_DIM] * MODALITY_GAP[name]).astype(np.float32),
                                 "txt": (q[:, LATENT_DIM + 1] * MODALITY_GAP[name]).astype(np.float32)}

    # ------------------------------------------------------------ latents
    def look_dir(self, concept: np.ndarray, look_year: np.ndarray) -> np.ndarray:
        theta = DRIFT_RAD_PER_YEAR * np.abs(look_year - 2014)[:, None]
        return np.cos(theta) * self.concept_dir[concept] + np.sin(theta) * self.drift_dir[concept]

    def image_latent(self, concept, look_year, color, scene) -> np.ndarray:
        concept, look_year = np.asarray(concept), np.asarray(look_year)
        color, scene = np.asarray(color), np.asarray(scene)
        code = image_key_code(concept, look_year, color, scene)
        noise = self.image_noise[(code * 2_654_435_761) % NOISE_TABLE]
        return (self.look_dir(concept, look_year) + 0.45 * self.color_dir[color]
                + 0.35 * self.scene_dir[scene] + 0.35 * noise)

    def text_latent(self, concept, color, scene, mentions_color, mentions_scene,
                    concept_weight, boilerplate, covid, rng: np.random.Generator) -> np.ndarray:
        """concept_weight: how clearly the caption names the concept (1 English, lower otherwise)."""
        concept = np.asarray(concept)
        kind = self.kind[concept]
        concept_part = self.concept_dir[concept].copy()
        emerging = kind == "emerging"
        concept_part[emerging] = _unit(0.55 * self.concept_dir[concept[emerging]]
                                       + 0.85 * self.unknown_text_dir[concept[emerging]])
        off = kind == "off_sense"
        concept_part[off] = _unit(0.6 * self.concept_dir[self.borrowed[concept[off]]]
                                  + 0.45 * self.concept_dir[concept[off]])
        z = (np.asarray(concept_weight)[:, None] * concept_part
             + 0.45 * np.asarray(mentions_color)[:, None] * self.color_dir[color]
             + 0.35 * np.asarray(mentions_scene)[:, None] * self.scene_dir[scene]
             + 0.3 * np.asarray(covid)[:, None] * self.covid_dir
             + 0.45 * rng.standard_normal((len(concept), LATENT_DIM)) / np.sqrt(LATENT_DIM))
        bp = np.asarray(boilerplate, bool)
        z[bp] = self.boilerplate_dir + 0.6 * rng.standard_normal((int(bp.sum()), LATENT_DIM)) / np.sqrt(LATENT_DIM)
        return z

    # ------------------------------------------------------------ embeddings
    def embed(self, latent: np.ndarray, model: str, modality: str) -> np.ndarray:
        """Unit-norm embeddings (n, EMBED_DIMS[model]) in float16, as DataComp stores them.

        The projection has orthonormal columns and the offsets are orthogonal to it and to
        each other, so |P z + o| = sqrt(1 + gap^2) for unit z: no per-row normalisation needed.
        Offset and scale ride in the matrix (a constant-1 input column), and rows go through in
        cache-sized blocks, each cast to float16 while still in cache (half the cost of one big pass).
        """
        scale = np.float32(1.0 / np.sqrt(1.0 + MODALITY_GAP[model] ** 2))
        matrix = np.vstack([self.proj[model].T, self.offset[model][modality]]) * scale
        z = np.empty((len(latent), LATENT_DIM + 1), np.float32)
        z[:, :LATENT_DIM] = _unit(latent)
        z[:, LATENT_DIM] = 1.0
        out = np.empty((len(latent), matrix.shape[1]), np.float16)
        block = np.empty((EMBED_BLOCK_ROWS, matrix.shape[1]), np.float32)
        for start in range(0, len(latent), EMBED_BLOCK_ROWS):
            stop = min(start + EMBED_BLOCK_ROWS, len(latent))
            np.matmul(z[start:stop], matrix, out=block[:stop - start])
            _to_float16(block[:stop - start], out[start:stop])
        return out

    def embed_all(self, latent: np.ndarray, modality: str) -> dict[str, np.ndarray]:
        """{"l14_img": float16 (n, 768), "b32_img": ...} for one modality, as DataComp stores them."""
        return {f"{m}_{modality}": self.embed(latent, m, modality) for m in EMBED_DIMS}

    @staticmethod
    def latent_similarity(img_latent: np.ndarray, txt_latent: np.ndarray) -> dict[str, np.ndarray]:
        """Each model's image-text cosine, computed exactly in latent space (float32, before the
        embeddings are rounded to float16 for storage, as DataComp's scores were)."""
        cos = np.einsum("ij,ij->i", _unit(img_latent), _unit(txt_latent))
        return {m: (cos / (1.0 + MODALITY_GAP[m] ** 2)).astype(np.float32) for m in EMBED_DIMS}

    @staticmethod
    def similarity(img: np.ndarray, txt: np.ndarray) -> np.ndarray:
        """Cosine similarity of stored (float16) embeddings, computed in float32."""
        a, b = img.astype(np.float32), txt.astype(np.float32)
        return np.einsum("ij,ij->i", a, b) / np.sqrt(np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", b, b))


def image_key_code(concept, look_year, color, scene) -> np.ndarray:
    """One int64 per picture key (concept, look, colour, scene)."""
    return ((np.asarray(concept, np.int64) * 64 + (np.asarray(look_year) - 2000)) * 8
            + np.asarray(color)) * 8 + np.asarray(scene)


def image_key_fields(code):
    """(concept, look_year, colour, scene) of an `image_key_code` (an int or an int64 array)."""
    return code >> 12, ((code >> 6) & 63) + 2000, (code >> 3) & 7, code & 7


class ImageEmbeddingCache:
    """Reference-CLIP image embeddings per picture key, computed once per key."""

    def __init__(self, clip: ReferenceClip):
        self.clip = clip
        self.codes = np.zeros(0, np.int64)  # known key codes, sorted
        self.rows = np.zeros(0, np.int64)   # each known code's row in the tables
        self.tables = {f"{m}_img": np.zeros((0, d), np.float16) for m, d in EMBED_DIMS.items()}
        self.tables["latent"] = np.zeros((0, LATENT_DIM))

    def lookup(self, concept, look_year, color, scene) -> dict[str, np.ndarray]:
        """{"l14_img", "b32_img", "latent"} rows for each picture key."""
        uniq, inverse = np.unique(image_key_code(concept, look_year, color, scene), return_inverse=True)
        at = np.searchsorted(self.codes, uniq)
        known = np.zeros(len(uniq), bool)
        inside = at < len(self.codes)
        known[inside] = self.codes[at[inside]] == uniq[inside]
        new = uniq[~known]
        if len(new):
            lat = self.clip.image_latent(*image_key_fields(new))
            emb = self.clip.embed_all(lat, "img")
            emb["latent"] = lat
            base = len(self.tables["latent"])
            for name in self.tables:
                self.tables[name] = np.concatenate([self.tables[name], emb[name]])
            codes = np.concatenate([self.codes, new])
            rows = np.concatenate([self.rows, base + np.arange(len(new))])
            order = np.argsort(codes, kind="stable")
            self.codes, self.rows = codes[order], rows[order]
            at = np.searchsorted(self.codes, uniq)
        rows = self.rows[at][inverse]
        return {name: table[rows] for name, table in self.tables.items()}
