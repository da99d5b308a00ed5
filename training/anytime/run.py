"""`tic-train anytime`: AnytimeCL on a time-ordered labelled stream, read top to bottom.

Every example is first predicted (that prediction feeds the OCW accuracy estimates), then learned from:
`updates_per_example` steps on a batch of the example plus `batch_size - 1` class-balanced replayed ones,
then stored (compressed) in the replay memory. Every `eval_every` examples the held-out set is scored over
the labels seen so far and over the full label set (the anytime curves); at the end of each TiC step every
step's held-out examples are scored (one row of the T x T matrix)."""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ticcore.errors import InputError, UserError
from ticcore.outputs import atomic_file, open_run_dir, write_json
from ticcore.validate import check_config_numbers, config_from_dict
from ticcore.steps import StepMap

from ..evaluate import class_embeddings
from ..metrics import summarize, write_matrix_csv
from ..models import CheckpointError, model_from_checkpoint, read_checkpoint
from ..report import pyplot, save_figure
from .model import SplitCLIP, other_loss, tuned_probabilities
from .ocw import ClassAccuracy, combine, tuned_weights
from .replay import Codec, ReplayStore, ReplayStoreError
from .stream import Example, StreamError, load_classes, load_examples, split_and_order, step_of, stream_steps

RUN_KIND = "tic-train anytime"  # the ownership marker of an AnytimeCL run directory

REPLAY_MODES = ("compressed", "raw", "none")
CHUNK = 256  # stream images decoded and encoded together
NEXT_STORE = "replay.next.bin"


class AnytimeError(UserError):
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
    other_weight: float = 0.1        # the "other" calibration term's weight (AnytimeCL's default, see other_loss)
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
        check_config_numbers(self, {"lr": (0, None, True), "weight_decay": (0, None), "eta": (0, 1),
                                    "other_weight": (0, None),
                                    "max_examples": (1, None), "seed": (0, None)})
        if self.replay not in REPLAY_MODES:
            raise InputError(f"--replay must be one of {', '.join(REPLAY_MODES)}, got {self.replay!r}")
        if not 0 <= self.holdout < 1:
            raise InputError(f"--holdout must be in [0, 1), got {self.holdout}")
        for name in ("batch_size", "updates_per_example", "eval_every", "memory_size"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
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
        return config_from_dict(cls, d)


# ------------------------------------------------------------------ loading

def load_original(cfg: AnytimeConfig, device):
    """(clip, preprocess_eval, tokenizer, model name, checkpoint sha256)."""
    path = Path(cfg.checkpoint)
    raw, state, named = read_checkpoint(path)
    if cfg.model and named and Path(cfg.model).stem != Path(named).stem:
        raise CheckpointError(f"{path}: a checkpoint of model {named!r}, not {cfg.model!r}")
    name = cfg.model or named
    if not name:
        raise CheckpointError(f"{path}: the checkpoint does not name its model; pass --model")
    clip, preprocess_eval, tokenizer = model_from_checkpoint(path, state, name, device)
    return clip, preprocess_eval, tokenizer, name, hashlib.sha256(raw).hexdigest()


@torch.no_grad()
def encode_tokens(split: SplitCLIP, preprocess, images: list[bytes], device, batch: int = 256) -> torch.Tensor:
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
        loss = other_loss(logits, split.other_bias, target, cfg.other_weight) if cfg.other_loss else F.cross_entropy(logits, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    split.tuned_block.eval()
    if store is not None:
        store.add(store.codec.encode(x, split.cls_attention(x)), y, rng)
    return float(loss.detach())


# ------------------------------------------------------------------ the run

@dataclass
class Learner:
    """Everything a run holds: its inputs and models, the held-out set, and the learner's resumable state."""
    cfg: AnytimeConfig
    device: torch.device
    stream: list[Example]
    held: list[Example]
    all_labels: list[int]
    step_map: StepMap                # the TiC time steps
    split: SplitCLIP
    preprocess: object
    text: torch.Tensor               # one unit vector per label
    predictor: Predictor
    model_name: str
    ckpt_sha: str
    held_labels: np.ndarray
    held_steps: np.ndarray
    held_tokens: torch.Tensor
    z_original_held: torch.Tensor
    store: ReplayStore
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator
    tuned_acc: ClassAccuracy
    original_acc: ClassAccuracy
    seen: set = field(default_factory=set)
    position: int = 0
    curves: list = field(default_factory=list)
    latencies: list = field(default_factory=list)
    matrix: dict = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)

    @property
    def steps(self) -> list[str]:
        return list(self.step_map.labels)

    @property
    def ocw_state(self):
        return self.tuned_acc, self.original_acc, self.seen


def run(cfg: AnytimeConfig, log=print) -> dict:
    r = setup(cfg, log)
    resume(r, log)
    if r.position == 0 and not r.curves:
        evaluate_point(r, 0, r.predictor.logits(r.held_tokens, tuned=True))
    t_start = time.perf_counter()
    learn_stream(r)
    return finish(r, time.perf_counter() - t_start, log)


def setup(cfg: AnytimeConfig, log) -> Learner:
    """Data, labels, the models and the held-out set's tokens; the output directory is claimed only once
    every input has been read, so bad input leaves nothing behind."""
    device = torch.device("cuda" if (cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()))
                          else "cpu")
    torch.manual_seed(cfg.seed)
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
    _claim(Path(cfg.out), cfg)
    step_map = stream_steps(cfg.data, [e.year for e in examples])
    held_tokens = encode_tokens(split, preprocess, [e.image for e in held], device)
    r = Learner(cfg, device, stream, held, all_labels, step_map, split, preprocess, text, predictor,
                model_name, ckpt_sha, np.array([e.label for e in held]),
                np.array([step_of(step_map, e.year) for e in held]), held_tokens,
                predictor.logits(held_tokens, tuned=False), *_new_learner(cfg, split))
    log(f"[anytime] {len(stream)} stream / {len(held)} held-out examples, {len(all_labels)} labels, "
        f"steps {r.steps[0]}..{r.steps[-1]}, model {model_name}, replay {cfg.replay}, device {device}")
    return r


def _new_learner(cfg: AnytimeConfig, split: SplitCLIP):
    """(replay store, optimizer, generator, tuned and original OCW estimates) at the start of the stream."""
    codec = Codec(cfg.replay if cfg.replay != "none" else "raw", cfg.pca_k, cfg.quant_bits)
    params = list(split.tuned_block.parameters()) + ([split.other_bias] if cfg.other_loss else [])
    return (ReplayStore(codec, cfg.memory_size), make_optimizer(params, cfg), np.random.default_rng(cfg.seed),
            ClassAccuracy(cfg.eta), ClassAccuracy(cfg.eta))


def resume(r: Learner, log) -> None:
    """The state of the last save (and its replay store), when the run directory holds one."""
    state_path, store_path = r.out / "state.pt", r.out / "replay.bin"
    if not state_path.is_file():
        return
    st = torch.load(state_path, map_location="cpu", weights_only=False)
    if st["checkpoint_sha256"] != r.ckpt_sha:
        raise CheckpointError(f"{r.cfg.checkpoint}: not the checkpoint this run started from "
                              f"({state_path} was made with another)")
    if r.cfg.replay != "none":
        _finish_interrupted_save(store_path, st["replay_sha256"], log)
        if not store_path.is_file():
            raise ReplayStoreError(f"{store_path}: missing, but {state_path} expects it")
        r.store, sha = ReplayStore.load(store_path)
        if sha != st["replay_sha256"]:
            raise ReplayStoreError(f"{store_path}: not the replay store {state_path} was saved with")
    r.split.load_trainable_state(st["trainable"])
    r.optimizer.load_state_dict(st["optimizer"])
    r.rng.bit_generator.state = st["rng"]
    r.tuned_acc = ClassAccuracy.from_state(st["tuned_acc"])
    r.original_acc = ClassAccuracy.from_state(st["original_acc"])
    r.seen, r.position, r.curves = set(st["seen"]), st["position"], st["curves"]
    r.latencies, r.matrix = st["latencies"], st["matrix"]
    log(f"[anytime] resumed at example {r.position} of {len(r.stream)}")


def evaluate_point(r: Learner, n_seen_examples: int, z_t: torch.Tensor) -> None:
    """A point of the anytime curves; z_t: the tuned model's held-out logits at this position."""
    res = score(r.predictor, z_t, r.z_original_held, r.held_labels, r.seen, r.all_labels, r.ocw_state)
    for name, row in res.items():
        r.curves.append({"examples": n_seen_examples, "predictor": name, "seen_classes": len(r.seen), **row})


def evaluate_step(r: Learner, step: str, z_t: torch.Tensor) -> None:
    """Step `step`'s row of the T x T matrix: every step's held-out examples over the full label set."""
    cols = r.predictor.columns(r.all_labels)
    probs = r.predictor.probabilities(z_t, r.z_original_held, cols, r.ocw_state)
    row = {}
    for name, p in probs.items():
        correct = r.predictor.labels[cols][p.argmax(axis=1)] == r.held_labels
        row[name] = [100 * float(correct[r.held_steps == s].mean()) if (r.held_steps == s).any() else float("nan")
                     for s in r.steps]
    r.matrix[step] = row


def save(r: Learner) -> None:
    """Store first (as replay.next.bin), then the state naming its sha256, then the store takes its place:
    a crash at any point leaves a state and a store that belong together."""
    state_path, store_path = r.out / "state.pt", r.out / "replay.bin"
    next_path = store_path.with_name(NEXT_STORE)
    replay_sha = r.store.save(next_path) if r.cfg.replay != "none" else None
    with atomic_file(state_path) as tmp:
        torch.save({"checkpoint_sha256": r.ckpt_sha, "replay_sha256": replay_sha,
                    "trainable": r.split.trainable_state(), "optimizer": r.optimizer.state_dict(),
                    "rng": r.rng.bit_generator.state, "tuned_acc": r.tuned_acc.state(),
                    "original_acc": r.original_acc.state(), "seen": sorted(r.seen), "position": r.position,
                    "curves": r.curves, "latencies": r.latencies, "matrix": r.matrix}, tmp)
    if replay_sha:
        next_path.replace(store_path)


def learn_stream(r: Learner) -> None:
    """Predict, then learn each example of the stream in order; score and save at curve points and step ends."""
    chunk_tokens, chunk_start = None, -1
    while r.position < len(r.stream):
        if chunk_tokens is None or r.position >= chunk_start + len(chunk_tokens):
            # chunks start at multiples of CHUNK, so a resumed run encodes exactly the batches the first did
            chunk_start = r.position - r.position % CHUNK
            chunk_tokens = encode_tokens(r.split, r.preprocess,
                                         [e.image for e in r.stream[chunk_start:chunk_start + CHUNK]],
                                         r.device, batch=CHUNK)
        example = r.stream[r.position]
        x = chunk_tokens[r.position - chunk_start:r.position - chunk_start + 1]
        observe(r, x, example.label)
        t0 = time.perf_counter()
        learn_one(r.split, r.optimizer, r.store if r.cfg.replay != "none" else None, r.predictor, r.text, x,
                  example.label, r.seen, r.cfg, r.rng)
        if r.device.type == "cuda":
            torch.cuda.synchronize()
        r.latencies.append(1000 * (time.perf_counter() - t0))
        r.position += 1
        after_example(r, example)


def observe(r: Learner, x: torch.Tensor, y: int) -> None:
    """Predict first, over the labels seen so far and y: that is what the OCW estimates measure."""
    cands = sorted(r.seen | {y})
    cols = r.predictor.columns(cands)
    with torch.no_grad():
        pred_t = cands[int((r.predictor.logits(x, True)[:, cols]).argmax())]
        pred_o = cands[int((r.predictor.logits(x, False)[:, cols]).argmax())]
    r.tuned_acc.update(y, pred_t == y)
    r.original_acc.update(y, pred_o == y)
    r.seen.add(y)


def after_example(r: Learner, example: Example) -> None:
    """At a curve point and at the end of a step (the next example is in another step): score, then save."""
    step = step_of(r.step_map, example.year)
    step_ends = r.position == len(r.stream) or step_of(r.step_map, r.stream[r.position].year) != step
    curve_point = r.position % r.cfg.eval_every == 0 or r.position == len(r.stream)
    if curve_point or step_ends:
        z_t = r.predictor.logits(r.held_tokens, tuned=True)
        if curve_point:
            evaluate_point(r, r.position, z_t)
        if step_ends:
            evaluate_step(r, step, z_t)
    if step_ends or r.position % r.cfg.eval_every == 0:
        save(r)


def finish(r: Learner, seconds: float, log) -> dict:
    cfg = r.cfg
    metrics = _write_outputs(r.out, cfg, r.curves, r.matrix, r.steps, r.latencies, r.store, r.held_tokens,
                             r.model_name, seconds, len(r.stream), len(r.held))
    final = {p: next(row for row in reversed(r.curves) if row["predictor"] == p) for p in cfg.predictors}
    log(f"[anytime] {len(r.stream)} examples in {seconds:.1f} s; update latency median "
        f"{metrics['latency_ms']['median']:.1f} ms (p95 {metrics['latency_ms']['p95']:.1f}); "
        + "; ".join(f"{p} seen {final[p]['acc_seen']:.1f} / all {final[p]['acc_all']:.1f}" for p in cfg.predictors)
        + f"; memory {metrics['memory']['bytes_per_example']} B/example; outputs in {r.out}")
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
    open_run_dir(out, RUN_KIND, cfg.to_json())


def auc(xs: list[float], ys: list[float]) -> float:
    """Area under the accuracy curve over the examples seen, divided by their range (a mean accuracy)."""
    pts = [(x, y) for x, y in zip(xs, ys) if not math.isnan(y)]
    if len(pts) < 2:
        return pts[0][1] if pts else float("nan")
    x, y = np.array(pts).T
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / (x[-1] - x[0]))


def _write_outputs(out: Path, cfg, curves, matrix, steps, latencies, store, held_tokens, model_name, seconds,
                   n_stream, n_held) -> dict:
    with atomic_file(out / "curves.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, ["examples", "predictor", "seen_classes", "acc_seen", "acc_all", "acc_unseen"])
        w.writeheader()
        for r in curves:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
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
    write_json(out / "metrics.json", metrics)
    plot_curves(out / "curves.png", {p: [r for r in curves if r["predictor"] == p] for p in cfg.predictors})
    return metrics


def plot_curves(path: Path, series: dict[str, list[dict]]) -> None:
    fig, axes = pyplot().subplots(1, 2, figsize=(11, 4))
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
    save_figure(fig, path)
