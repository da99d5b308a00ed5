"""Image-text retrieval scores, as in the TiC-CLIP/open_clip evaluation: recall@k both ways.

`retrieval_metrics(image_emb, text_emb)` scores N pairs where image i belongs with text i.
It runs in query batches, so it never holds more than batch x N similarities at once, and it
is exact on ties: a tied score counts as the expected result of breaking the tie uniformly at
random (a query whose true item ties with t others at rank r contributes
clip((k - r_strictly_better) / (t + 1), 0, 1) to recall@k), so the result does not depend on
the order of the items.
"""
from __future__ import annotations

import numpy as np

KS = (1, 5, 10)


def _as_array(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def _recall_one_way(queries: np.ndarray, items: np.ndarray, ks, batch: int) -> dict[int, float]:
    n = len(queries)
    totals = {k: 0.0 for k in ks}
    for start in range(0, n, batch):
        q = queries[start:start + batch]
        scores = q @ items.T                                     # (b, n)
        rows = np.arange(len(q))
        true = scores[rows, start + rows][:, None]
        better = (scores > true).sum(axis=1)
        ties = (scores == true).sum(axis=1) - 1                  # the true item itself excluded
        for k in ks:
            totals[k] += float(np.clip((k - better) / (ties + 1), 0.0, 1.0).sum())
    return {k: totals[k] / n for k in ks}


def retrieval_metrics(image_emb, text_emb, ks=KS, batch: int = 1024, normalize: bool = True) -> dict[str, float]:
    """{"image_to_text_R@1": ..., "text_to_image_R@1": ..., ..., "mean_R@1": ...} in [0, 1]."""
    img, txt = _as_array(image_emb), _as_array(text_emb)
    if img.shape != txt.shape or img.ndim != 2 or len(img) == 0:
        raise ValueError(f"need two (n, d) arrays of the same shape, got {img.shape} and {txt.shape}")
    if normalize:
        img = img / np.maximum(np.linalg.norm(img, axis=1, keepdims=True), 1e-12)
        txt = txt / np.maximum(np.linalg.norm(txt, axis=1, keepdims=True), 1e-12)
    i2t = _recall_one_way(img, txt, ks, batch)
    t2i = _recall_one_way(txt, img, ks, batch)
    out = {f"image_to_text_R@{k}": i2t[k] for k in ks}
    out.update({f"text_to_image_R@{k}": t2i[k] for k in ks})
    out["mean_R@1"] = (i2t[1] + t2i[1]) / 2 if 1 in ks else float("nan")
    return out


def clip_benchmark_name(name: str) -> str | None:
    """clip_benchmark's name for one of ours, or None. clip_benchmark scores texts x images
    (LAION-AI/CLIP_benchmark, `clip_benchmark/metrics/zeroshot_retrieval.py`): `image_retrieval_recall@k`
    ranks the images for each caption (our `text_to_image_R@k`) and `text_retrieval_recall@k` the captions
    for each image (our `image_to_text_R@k`); `mean_recall@1`, their mean at k = 1, is what DataComp and
    ml-tic-clip report (mlfoundations/datacomp, `eval_utils/retr_eval.py`), our `mean_R@1`."""
    for ours, theirs in (("text_to_image_R@", "image_retrieval_recall@"), ("image_to_text_R@", "text_retrieval_recall@")):
        if name.startswith(ours):
            return theirs + name[len(ours):]
    if name == "accuracy":  # zero-shot top-1 (clip_benchmark/metrics/zeroshot_classification.py: acc1)
        return "acc1"
    return "mean_recall@1" if name == "mean_R@1" else None


def average_over_seeds(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """The headline numbers: each metric averaged over the evaluation seeds."""
    keys = per_seed[0].keys()
    return {k: float(np.mean([m[k] for m in per_seed])) for k in keys}
