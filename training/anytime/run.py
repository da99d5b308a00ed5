"""`tic-train anytime`: AnytimeCL on a time-ordered labelled stream, read top to bottom.

Every example is first predicted (that prediction feeds the OCW accuracy estimates), then learned from:
`updates_per_example` steps on a batch of the example plus `batch_size - 1` class-balanced replayed ones,
then stored (compressed) in the replay memory. Every `eval_every` examples the held-out set is scored over
the labels seen so far and over the full label set (the anytime curves); at the end of each TiC step every
step's held-out examples are scored (one row of the T x T matrix)."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..evaluate import class_embeddings
from ..metrics import summarize, write_matrix_csv
from ..trainer import RunError, atomic_write, create_model, load_fitting_state
from .model import CheckpointError, SplitCLIP, other_loss, tuned_probabilities
from .ocw import ClassAccuracy, combine, tuned_weights
from .replay import Codec, ReplayStore, ReplayStoreError
from .stream import StreamError, load_classes, load_examples, split_and_order, step_labels, step_of

REPLAY_MODES = ("compressed", "raw", "none")
CHUNK = 256  # stream images decoded and encoded together
NEXT_STORE = "replay.next.bin"


class AnytimeError(ValueError):
    pass


@dataclass(frozen=True)
class AnytimeConfig:
    data: str                        # a tic-shards output (TiC-DataComp-Net) or a directory of labelled tars
    checkpoint: str                  # the original model: a tic-train checkpoint or any open_clip checkpoint
    out: str
    model: str | None = None         # open_clip model name / config JSON; default: the checkpoint's
    classes: str | None = None       # class list with prompts; default DATA/net_classes.json
    label_key: str = "class_id"
    holdout: float = 0.2             # share of examples (by uid hash) held out for the curves
    batch_size: int = 32             # the new example plus batch_size - 1 replayed ones
    updates_per_example: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.0
    other_loss: bool = True          # ablation: plain cross-entropy when off
    ocw: bool = True                 # ablation: no mixing with the original when off
    replay: str = "compressed"       # compressed | raw (uncompressed tokens) | none (sequential fine-tuning)
    pca_k: int = 5
    quant_bits: int = 8
    memory_size: int = 20000         # examples the replay memory holds at most
    eta: float = 0.99                # OCW EMA decay
    eval_every: int = 250
    max_examples: int | None = None
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        if self.replay not in REPLAY_MODES:
            raise ValueError(f"--replay must be one of {', '.join(REPLAY_MODES)}, got {self.replay!r}")
        if not 0 <= self.holdout < 1:
            raise ValueError(f"--holdout must be in [0, 1), got {self.holdout}")
        for name in ("batch_size", "updates_per_example", "eval_every", "memory_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        Codec("compressed", self.pca_k, self.quant_bits)  # validates k and bits

    @property
    def predictors(self) -> tuple[str, ...]:
        return ("original", "tuned", "anytime") if self.ocw else ("original", "tuned")

    @property
    def primary(self) -> str:
        return self.predictors[-1]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AnytimeConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(sorted(unknown))}")
        return cls(**d)


# ------------------------------------------------------------------ loading

def load_original(cfg: AnytimeConfig, device):
    """(clip, preprocess_eval, tokenizer, model name, checkpoint sha256)."""
    path = Path(cfg.checkpoint)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    raw = path.read_bytes()
    try:
        ckpt = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {exc})") from None
    if isinstance(ckpt, dict) and "model" in ckpt:           # tic-train
        state, named = ckpt["model"], ckpt.get("model_name")
    elif isinstance(ckpt, dict) and "state_dict" in ckpt:    # open_clip_train
        state, named = ckpt["state_dict"], None
    elif isinstance(ckpt, dict):
        state, named = ckpt, None
    else:
        raise CheckpointError(f"{path}: holds no state dict")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if cfg.model and named and Path(cfg.model).stem != Path(named).stem:
        raise CheckpointError(f"{path}: a checkpoint of model {named!r}, not {cfg.model!r}")
    name = cfg.model or named
    if not name:
        raise CheckpointError(f"{path}: the checkpoint does not name its model; pass --model")
    try:
        clip, _, preprocess_eval, tokenizer = create_model(name, device)
    except (RunError, RuntimeError) as exc:
        raise CheckpointError(f"{name}: cannot build the model ({exc})") from None
    try:
        load_fitting_state(clip, state, path, name)
    except RunError as exc:
        raise CheckpointError(str(exc)) from None
    return clip.to(device), preprocess_eval, tokenizer, name, hashlib.sha256(raw).hexdigest()


@torch.no_grad()
def encode_tokens(split: SplitCLIP, preprocess, images: list[bytes], device, batch: int = 256) -> torch.Tensor:
    from PIL import Image

    parts = []
    for i in range(0, len(images), batch):
        x = torch.stack([preprocess(Image.open(io.BytesIO(b)).convert("RGB")) for b in images[i:i + batch]])
        parts.append(split.tokens(x.to(device)).float())
    return torch.cat(parts)


# ------------------------------------------------------------------ prediction and scoring

class Predictor:
    """Scores tokens with the original, the tuned and the OCW-combined model over a candidate label set."""

    def __init__(self, split: SplitCLIP, text: torch.Tensor, labels: list[int], cfg: AnytimeConfig):
        self.split, self.text, self.labels, self.cfg = split, text, np.array(labels), cfg
        self.column = {y: i for i, y in enumerate(labels)}

    def columns(self, labels) -> np.ndarray:
        try:
            return np.array([self.column[y] for y in labels], np.int64)
        except KeyError as exc:
            raise AnytimeError(f"label {exc.args[0]} is not in the label set") from None

    @torch.no_grad()
    def logits(self, tokens: torch.Tensor, tuned: bool, batch: int = 512) -> torch.Tensor:
        feats = self.split.tuned_features if tuned else self.split.original_features
        return torch.cat([self.split.logit_scale * feats(tokens[i:i + batch]) @ self.text.T
                          for i in range(0, len(tokens), batch)])

    def probabilities(self, z_tuned, z_original, cols, ocw_state) -> dict[str, np.ndarray]:
        """{predictor: (N, len(cols)) probabilities}; the tuned and combined rows may sum to < 1 (the rest is
        "other")."""
        if not len(cols):
            raise AnytimeError("the label set is empty")
        other = self.split.other_bias.detach() if self.cfg.other_loss else None
        p_t = tuned_probabilities(z_tuned[:, cols], other).cpu().numpy()
        p_o = z_original[:, cols].softmax(dim=1).cpu().numpy()
        out = {"original": p_o, "tuned": p_t}
        if self.cfg.ocw:
            # The mix takes the tuned model's candidate probabilities renormalised, and its "other" share
            # lowers the weight it gets instead: left in P_t, that share went to no label at all, so a tuned
            # model unsure between its labels and "other" was outvoted by any confident original.
            tuned_acc, original_acc, seen = ocw_state
            if other is None:  # no "other" option: p_t is already the candidates' softmax
                p_cands, p_other = p_t, None
            else:
                p_cands, p_other = z_tuned[:, cols].softmax(dim=1).cpu().numpy(), 1 - p_t.sum(axis=1)
            alpha = tuned_weights(self.labels[cols], tuned_acc, original_acc, seen, p_other)
            out["anytime"] = combine(p_cands, p_o, alpha)
        return out

    def predict(self, tokens, candidates: list[int], ocw_state, allow_other: bool = False) -> dict[str, np.ndarray]:
        """Predicted labels per predictor. Candidates need not contain the true label (open vocabulary):
        with allow_other, a row whose leftover "other" mass beats every candidate predicts -1. (The OCW mix
        always names a candidate: what the tuned model calls "other" is weighed towards the original.)"""
        cols = self.columns(candidates)
        probs = self.probabilities(self.logits(tokens, True), self.logits(tokens, False), cols, ocw_state)
        out = {}
        for name, p in probs.items():
            pred = self.labels[cols][p.argmax(axis=1)]
            if allow_other:
                pred = np.where(1 - p.sum(axis=1) > p.max(axis=1), -1, pred)
            out[name] = pred
        return out


def score(predictor: Predictor, z_tuned, z_original, held_labels: np.ndarray, seen: set[int], all_labels,
          ocw_state) -> dict[str, dict[str, float]]:
    """{predictor: {acc_seen, acc_all, acc_unseen}} in percent (NaN where no example qualifies)."""
    seen_mask = np.isin(held_labels, sorted(seen))
    res: dict[str, dict[str, float]] = {}
    for key, cands, mask in (("acc_seen", sorted(seen), seen_mask), ("acc_all", all_labels, None),
                             ("acc_unseen", all_labels, ~seen_mask)):
        rows = np.ones(len(held_labels), bool) if mask is None else mask
        if not cands or not rows.any():
            for name in predictor.cfg.predictors:
                res.setdefault(name, {})[key] = float("nan")
            continue
        cols = predictor.columns(cands)
        probs = predictor.probabilities(z_tuned[rows], z_original[rows], cols, ocw_state)
        for name, p in probs.items():
            pred = predictor.labels[cols][p.argmax(axis=1)]
            res.setdefault(name, {})[key] = 100 * float((pred == held_labels[rows]).mean())
    return res


def make_optimizer(params, cfg: AnytimeConfig) -> torch.optim.Optimizer:
    """AdamW, fused: one kernel over all parameters instead of a loop per tensor (~2 ms of a ~50 ms CPU
    update with the tiny model)."""
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def learn_one(split: SplitCLIP, optimizer, store: ReplayStore | None, predictor: Predictor, text: torch.Tensor,
              x: torch.Tensor, y: int, seen: set[int], cfg: AnytimeConfig, rng: np.random.Generator) -> float:
    """One example's learning: `updates_per_example` optimiser steps on the example plus batch_size - 1
    class-balanced replayed ones, over the labels seen so far; then the example is stored. Returns the
    last loss. This is what the update latency measures."""
    train_cols = predictor.columns(sorted(seen))
    cols_t = torch.from_numpy(train_cols).to(x.device)
    split.tuned_block.train()
    loss = torch.zeros(())
    for _ in range(cfg.updates_per_example):
        tokens, labels = x, [y]
        if store is not None and len(store):
            replay_tokens, replay_labels = store.get(store.sample(cfg.batch_size - 1, rng))
            tokens = torch.cat([x, replay_tokens.to(x.device)])
            labels = labels + replay_labels.tolist()
        target = torch.from_numpy(np.searchsorted(train_cols, predictor.columns(labels))).to(x.device)
        logits = split.logit_scale * split.tuned_features(tokens) @ text[cols_t].T
        loss = other_loss(logits, split.other_bias, target) if cfg.other_loss else F.cross_entropy(logits, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    split.tuned_block.eval()
    if store is not None:
        store.add(store.codec.encode(x, split.cls_attention(x)), y, rng)
    return float(loss.detach())


# ------------------------------------------------------------------ the run

def run(cfg: AnytimeConfig, log=print) -> dict:
    device = torch.device("cuda" if (cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()))
                          else "cpu")
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)

    # ---------------- data, labels, models
    examples = load_examples(cfg.data, cfg.label_key)
    stream, held = split_and_order(examples, cfg.holdout, cfg.seed)
    if cfg.max_examples:
        stream = stream[:cfg.max_examples]
    if not stream or not held:
        raise StreamError(f"{cfg.data}: {len(stream)} stream and {len(held)} held-out examples; need both")
    all_labels = sorted({e.label for e in stream} | {e.label for e in held})
    prompts = load_classes(cfg.classes or Path(cfg.data) / "net_classes.json", set(all_labels))
    clip, preprocess, tokenizer, model_name, ckpt_sha = load_original(cfg, device)
    split = SplitCLIP(clip).to(device)
    with torch.no_grad():  # one unit vector per label: CLIP's zero-shot recipe, as tic-train evaluates Net
        text = torch.from_numpy(class_embeddings(clip, tokenizer, [{"prompts": prompts[y]} for y in all_labels],
                                                 device, 256, contextlib.nullcontext)).to(device)
    predictor = Predictor(split, text, all_labels, cfg)
    _claim(out, cfg)  # only once every input has been read: bad input leaves nothing behind
    steps = step_labels(cfg.data, [e.year for e in examples])
    held_labels = np.array([e.label for e in held])
    held_steps = np.array([step_of(e.year, steps) for e in held])
    held_tokens = encode_tokens(split, preprocess, [e.image for e in held], device)
    z_original_held = predictor.logits(held_tokens, tuned=False)
    log(f"[anytime] {len(stream)} stream / {len(held)} held-out examples, {len(all_labels)} labels, "
        f"steps {steps[0]}..{steps[-1]}, model {model_name}, replay {cfg.replay}, device {device}")

    codec = Codec(cfg.replay if cfg.replay != "none" else "raw", cfg.pca_k, cfg.quant_bits)
    store = ReplayStore(codec, cfg.memory_size)
    params = list(split.tuned_block.parameters()) + ([split.other_bias] if cfg.other_loss else [])
    optimizer = make_optimizer(params, cfg)
    rng = np.random.default_rng(cfg.seed)
    tuned_acc, original_acc = ClassAccuracy(cfg.eta), ClassAccuracy(cfg.eta)
    seen: set[int] = set()
    position, curves, latencies, matrix = 0, [], [], {}

    # ---------------- resume
    state_path, store_path = out / "state.pt", out / "replay.bin"
    if state_path.is_file():
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        if st["checkpoint_sha256"] != ckpt_sha:
            raise CheckpointError(f"{cfg.checkpoint}: not the checkpoint this run started from "
                                  f"({state_path} was made with another)")
        if cfg.replay != "none":
            _finish_interrupted_save(store_path, st["replay_sha256"], log)
            if not store_path.is_file():
                raise ReplayStoreError(f"{store_path}: missing, but {state_path} expects it")
            store, sha = ReplayStore.load(store_path)
            if sha != st["replay_sha256"]:
                raise ReplayStoreError(f"{store_path}: not the replay store {state_path} was saved with")
        split.load_trainable_state(st["trainable"])
        optimizer.load_state_dict(st["optimizer"])
        rng.bit_generator.state = st["rng"]
        tuned_acc, original_acc = ClassAccuracy.from_state(st["tuned_acc"]), ClassAccuracy.from_state(st["original_acc"])
        seen, position, curves = set(st["seen"]), st["position"], st["curves"]
        latencies, matrix = st["latencies"], st["matrix"]
        log(f"[anytime] resumed at example {position} of {len(stream)}")

    # z_t: the tuned model's held-out logits at this position (a step end is often a curve point too)
    def evaluate_point(n_seen_examples: int, z_t: torch.Tensor) -> None:
        res = score(predictor, z_t, z_original_held, held_labels, seen, all_labels, (tuned_acc, original_acc, seen))
        for name, r in res.items():
            curves.append({"examples": n_seen_examples, "predictor": name, "seen_classes": len(seen), **r})

    def evaluate_step(step: str, z_t: torch.Tensor) -> None:
        cols = predictor.columns(all_labels)
        probs = predictor.probabilities(z_t, z_original_held, cols, (tuned_acc, original_acc, seen))
        row = {}
        for name, p in probs.items():
            correct = predictor.labels[cols][p.argmax(axis=1)] == held_labels
            row[name] = [100 * float(correct[held_steps == s].mean()) if (held_steps == s).any() else float("nan")
                         for s in steps]
        matrix[step] = row

    def save() -> None:
        # store first (as replay.next.bin), then the state naming its sha256, then the store takes its
        # place: a crash at any point leaves a state and a store that belong together
        next_path = store_path.with_name(NEXT_STORE)
        replay_sha = store.save(next_path) if cfg.replay != "none" else None
        tmp = state_path.with_name(".state.pt.tmp")
        torch.save({"checkpoint_sha256": ckpt_sha, "replay_sha256": replay_sha, "trainable": split.trainable_state(),
                    "optimizer": optimizer.state_dict(), "rng": rng.bit_generator.state,
                    "tuned_acc": tuned_acc.state(), "original_acc": original_acc.state(), "seen": sorted(seen),
                    "position": position, "curves": curves, "latencies": latencies, "matrix": matrix}, tmp)
        tmp.replace(state_path)
        if replay_sha:
            next_path.replace(store_path)

    if position == 0 and not curves:
        evaluate_point(0, predictor.logits(held_tokens, tuned=True))

    # ---------------- the stream
    chunk_tokens, chunk_start = None, -1
    t_start = time.perf_counter()
    while position < len(stream):
        if chunk_tokens is None or position >= chunk_start + len(chunk_tokens):
            # chunks start at multiples of CHUNK, so a resumed run encodes exactly the batches the first did
            chunk_start = position - position % CHUNK
            chunk_tokens = encode_tokens(split, preprocess, [e.image for e in stream[chunk_start:chunk_start + CHUNK]],
                                         device, batch=CHUNK)
        example = stream[position]
        x = chunk_tokens[position - chunk_start:position - chunk_start + 1]
        y = example.label

        # predict first: that is what the OCW estimates measure
        cands = sorted(seen | {y})
        cols = predictor.columns(cands)
        with torch.no_grad():
            pred_t = cands[int((predictor.logits(x, True)[:, cols]).argmax())]
            pred_o = cands[int((predictor.logits(x, False)[:, cols]).argmax())]
        tuned_acc.update(y, pred_t == y)
        original_acc.update(y, pred_o == y)
        seen.add(y)

        t0 = time.perf_counter()
        learn_one(split, optimizer, store if cfg.replay != "none" else None, predictor, text, x, y, seen, cfg, rng)
        if device.type == "cuda":
            torch.cuda.synchronize()
        latencies.append(1000 * (time.perf_counter() - t0))

        position += 1
        step = step_of(example.year, steps)
        step_ends = position == len(stream) or step_of(stream[position].year, steps) != step
        curve_point = position % cfg.eval_every == 0 or position == len(stream)
        if curve_point or step_ends:
            z_t = predictor.logits(held_tokens, tuned=True)
            if curve_point:
                evaluate_point(position, z_t)
            if step_ends:
                evaluate_step(step, z_t)
        if step_ends or position % cfg.eval_every == 0:
            save()
    seconds = time.perf_counter() - t_start

    # ---------------- outputs
    metrics = _write_outputs(out, cfg, curves, matrix, steps, latencies, store, held_tokens, model_name, seconds,
                             len(stream), len(held))
    final = {p: next(r for r in reversed(curves) if r["predictor"] == p) for p in cfg.predictors}
    log(f"[anytime] {len(stream)} examples in {seconds:.1f} s; update latency median "
        f"{metrics['latency_ms']['median']:.1f} ms (p95 {metrics['latency_ms']['p95']:.1f}); "
        + "; ".join(f"{p} seen {final[p]['acc_seen']:.1f} / all {final[p]['acc_all']:.1f}" for p in cfg.predictors)
        + f"; memory {metrics['memory']['bytes_per_example']} B/example; outputs in {out}")
    return metrics


def _finish_interrupted_save(store_path: Path, state_sha: str, log) -> None:
    """A replay.next.bin is the store of a save that stopped before its last rename: it takes the place of
    replay.bin when the state names it, and is dropped when the state was never written."""
    nxt = store_path.with_name(NEXT_STORE)
    if not nxt.is_file():
        return
    try:
        _, sha = ReplayStore.load(nxt)
    except ReplayStoreError:
        sha = None
    if sha == state_sha:
        nxt.replace(store_path)
    else:
        log(f"[anytime] {nxt}: left by a save that did not finish; the last complete save is used")
        nxt.unlink()


def _claim(out: Path, cfg: AnytimeConfig) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    if cfg_path.is_file():
        if json.loads(cfg_path.read_text()) != cfg.to_json():
            raise AnytimeError(f"{out}: holds a run with another configuration; choose another --out")
        return
    if any(out.iterdir()):
        raise AnytimeError(f"{out}: not empty and not an anytime run directory")
    atomic_write(cfg_path, json.dumps(cfg.to_json(), indent=1) + "\n")


def auc(xs: list[float], ys: list[float]) -> float:
    """Area under the accuracy curve over the examples seen, divided by their range (a mean accuracy)."""
    pts = [(x, y) for x, y in zip(xs, ys) if not math.isnan(y)]
    if len(pts) < 2:
        return pts[0][1] if pts else float("nan")
    x, y = np.array(pts).T
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / (x[-1] - x[0]))


def _write_outputs(out: Path, cfg, curves, matrix, steps, latencies, store, held_tokens, model_name, seconds,
                   n_stream, n_held) -> dict:
    import csv

    tmp = out / ".curves.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, ["examples", "predictor", "seen_classes", "acc_seen", "acc_all", "acc_unseen"])
        w.writeheader()
        for r in curves:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    tmp.replace(out / "curves.csv")
    rows = [s for s in steps if s in matrix]
    summaries = {}
    for p in cfg.predictors:
        E = [[matrix[s][p][j] for j in range(len(steps))] for s in rows]
        if len(rows) == len(steps):
            write_matrix_csv(out / ("matrix_net.csv" if p == cfg.primary else f"matrix_net_{p}.csv"), E)
            summaries[p] = summarize(E)
    lat = np.array(latencies) if latencies else np.zeros(1)
    L, D = held_tokens.shape[1:]
    metrics = {
        "steps": steps, "trained_steps": rows, "model": model_name, "seconds": round(seconds, 2),
        "stream_examples": n_stream, "held_out_examples": n_held,
        "final": {p: {k: v for k, v in next(r for r in reversed(curves) if r["predictor"] == p).items()
                      if k.startswith("acc")} for p in cfg.predictors},
        "auc": {p: {k: auc([r["examples"] for r in curves if r["predictor"] == p],
                           [r[k] for r in curves if r["predictor"] == p]) for k in ("acc_seen", "acc_all")}
                for p in cfg.predictors},
        "matrix": summaries,
        "memory": {"replay": cfg.replay, "stored_examples": len(store), "tokens_per_example": [int(L), int(D)],
                   "bytes_per_example": store.bytes_per_example() if cfg.replay != "none" else 0,
                   "raw_float32_bytes_per_example": int(L * D * 4),
                   "codec": store.codec.describe()},
        "latency_ms": {"median": float(np.median(lat)), "p95": float(np.percentile(lat, 95)),
                       "mean": float(lat.mean()), "updates": len(latencies), "batch_size": cfg.batch_size},
        "config": cfg.to_json(),
    }
    atomic_write(out / "metrics.json", json.dumps(metrics, indent=1) + "\n")
    plot_curves(out / "curves.png", {p: [r for r in curves if r["predictor"] == p] for p in cfg.predictors})
    return metrics


def plot_curves(path: Path, series: dict[str, list[dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((axes[0], "acc_seen", "held-out, labels seen so far"),
                           (axes[1], "acc_all", "held-out, full label set")):
        for name, rows in series.items():
            ax.plot([r["examples"] for r in rows], [r[key] for r in rows], label=name, marker=".")
        ax.set_title(title)
        ax.set_xlabel("examples seen")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
