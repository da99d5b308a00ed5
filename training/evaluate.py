"""Evaluate a CLIP model on every year's sets: dynamic retrieval (all seeds and subsets), TiC-DataComp-Net
zero-shot accuracy (all classes and a WordNet subtree), and static zero-shot classification."""
from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from benchmarks.retrieval import average_over_seeds, retrieval_metrics


class Pixels:
    """Evaluation images as model inputs. The evaluation transform is deterministic, so each set is decoded
    and transformed once and kept (float16) while the total stays under `max_bytes`; the rest is decoded
    again at every evaluation. Keyed by set name: one instance per run (one model, one transform)."""

    def __init__(self, preprocess, max_bytes: int = 2 << 30):
        self.preprocess, self.max_bytes, self.used = preprocess, max_bytes, 0
        self.kept: dict[str, torch.Tensor] = {}

    def _decode(self, images: list[bytes]) -> torch.Tensor:
        return torch.stack([self.preprocess(Image.open(io.BytesIO(b)).convert("RGB")) for b in images])

    def batches(self, name: str, images: list[bytes], batch: int):
        if name in self.kept:
            whole = self.kept[name]
            for i in range(0, len(whole), batch):
                yield whole[i:i + batch].float()
            return
        parts = []
        for i in range(0, len(images), batch):
            x = self._decode(images[i:i + batch])
            parts.append(x.half())
            yield x
        size = sum(t.numel() * 2 for t in parts)
        if parts and self.used + size <= self.max_bytes:
            self.kept[name] = torch.cat(parts)
            self.used += size


@torch.no_grad()
def encode_images(model, pixels: Pixels, name: str, images: list[bytes], device, batch: int, autocast) -> np.ndarray:
    out = []
    for x in pixels.batches(name, images, batch):
        with autocast():
            f = model.encode_image(x.to(device))
        out.append(torch.nn.functional.normalize(f.float(), dim=-1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 1), np.float32)


@torch.no_grad()
def encode_texts(model, tokenizer, texts: list[str], device, batch: int, autocast) -> np.ndarray:
    out = []
    for i in range(0, len(texts), batch):
        t = tokenizer(texts[i:i + batch]).to(device)
        with autocast():
            f = model.encode_text(t)
        out.append(torch.nn.functional.normalize(f.float(), dim=-1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 1), np.float32)


def class_embeddings(model, tokenizer, classes: list[dict], device, batch, autocast) -> np.ndarray:
    """One unit vector per class: the normalised mean of its prompts' embeddings (CLIP's zero-shot recipe).
    Classes may have different numbers of prompts."""
    prompts = [p for c in classes for p in c["prompts"]]
    ends = np.cumsum([len(c["prompts"]) for c in classes])[:-1]
    emb = encode_texts(model, tokenizer, prompts, device, batch, autocast)
    emb = np.stack([part.mean(0) for part in np.split(emb, ends)])
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def retrieval_scores(img: np.ndarray, txt: np.ndarray, metas: list[dict]) -> dict[str, float]:
    """Headline (mean R@1 over the two directions, averaged over seeds) per subset, in percent."""
    out = {}
    subsets = sorted({s for m in metas for s in m.get("subsets", {"all": [0]})})
    for subset in subsets:
        seeds = sorted({s for m in metas for s in m.get("subsets", {}).get(subset, [])})
        per_seed = []
        for seed in seeds:
            idx = [i for i, m in enumerate(metas) if seed in m.get("subsets", {}).get(subset, [])]
            if len(idx) >= 2:
                per_seed.append(retrieval_metrics(img[idx], txt[idx]))
        if per_seed:
            avg = average_over_seeds(per_seed)
            out[subset] = 100 * avg["mean_R@1"]
            if subset == "all":
                out.update({f"all_{k}": 100 * v for k, v in avg.items() if k != "mean_R@1"})
    return out


def evaluate(model, pixels: Pixels, tokenizer, eval_sets: dict, net_doc: dict | None, subtree: str, device,
             batch: int, autocast) -> dict:
    """{"retrieval": {year: {...}}, "net": {year: {"acc", "acc_<subtree>"}}, "static": {"acc"}} in percent.
    Classification is zero-shot over the classes that occur in each set; the subtree accuracy is over
    the samples whose class lies in the WordNet subtree."""
    model.eval()
    results: dict = {}
    for year, es in eval_sets.get("retrieval", {}).items():
        img = encode_images(model, pixels, es.name, es.images, device, batch, autocast)
        txt = encode_texts(model, tokenizer, es.texts, device, batch, autocast)
        results.setdefault("retrieval", {})[year] = retrieval_scores(img, txt, es.meta)
    if net_doc and (eval_sets.get("net") or eval_sets.get("static")):
        # Only the classes that occur in some set are embedded: the label set of each set is the classes
        # occurring in it (a world with ~100 classes would otherwise be scored against 1000 ImageNet
        # prompts it never saw).
        occurring = sorted({int(m["class_id"]) for task in ("net", "static")
                            for es in eval_sets.get(task, {}).values() for m in es.meta})
        by_id = {int(c["class_id"]): c for c in net_doc["classes"]}
        cls_rows = {c: k for k, c in enumerate(occurring)}
        cls = class_embeddings(model, tokenizer, [by_id[c] for c in occurring], device, batch, autocast)
        sub = set(net_doc.get("subtrees", {}).get(subtree, []))
        for task in ("net", "static"):
            for year, es in eval_sets.get(task, {}).items():
                labels = np.array([int(m["class_id"]) for m in es.meta])
                if not len(labels):
                    continue
                present = np.unique(labels)
                img = encode_images(model, pixels, es.name, es.images, device, batch, autocast)
                scores = img @ cls[[cls_rows[c] for c in present]].T
                pred = present[np.argmax(scores, axis=1)]
                r = {"acc": 100 * float((pred == labels).mean()), "n": int(len(labels))}
                in_sub = np.isin(labels, list(sub))
                if in_sub.any():
                    r[f"acc_{subtree}"] = 100 * float((pred[in_sub] == labels[in_sub]).mean())
                results.setdefault(task, {})[year] = r
    return results
