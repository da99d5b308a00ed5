"""tic-train's trainer: continual CLIP training over time steps under one compute budget.

Read top to bottom: `run` sets up (process, data, model and budget, resume), then goes through the
steps. Each step (`run_step`) composes the method's data buffer, initialises the model (warm start or
random), trains for the budgeted iterations (`train_step`, one `train_batch` at a time, with the
method's extra loss term), does the method's end-of-step work (`end_step`), then checkpoints,
evaluates on every year and adds a row to the T x T matrices (`record_step`). What a method does is its
record in training/methods.py; models and checkpoints are training/models.py's. Models, tokenizers,
transforms and the contrastive loss are open_clip's; data comes through webdataset (training/data.py);
the year -> step map is the one tic-shards wrote (ticcore.steps). A run resumes from its last checkpoint
when the same command is run again.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from ticcore.outputs import atomic_file, open_run_dir, write_json
from ticcore.steps import StepMap, read_steps

from .budget import Ledger, Plan, forward_macs_per_sample, train_macs_per_sample
from .buffers import compose_buffer
from .config import TrainConfig
from .data import BufferStream, DataError, Step, find_steps, load_eval_sets, step_uids, train_loader
from .evaluate import Pixels, evaluate
from .methods import Hooks, Method
from .metrics import summarize, write_matrix_csv
from .models import (RunError, contrastive_loss, create_model, load_fitting_state, load_weights, read_checkpoint,
                     save_checkpoint, unwrap)
from .report import heatmap

__all__ = ["RunError", "Session", "create_model", "lr_at", "run"]

RUN_KIND = "tic-train"  # the ownership marker of a training run directory


def lr_at(it: int, total: int, base_lr: float, warmup: int, schedule: str) -> float:
    """Linear warm-up, then cosine to 0 (`cosine`), or constant then cosine over the last 20% (`const-cosine`)."""
    if it < warmup:
        return base_lr * (it + 1) / warmup
    if schedule == "const-cosine":
        start = max(warmup, int(total * 0.8))
        if it < start:
            return base_lr
        return 0.5 * base_lr * (1 + math.cos(math.pi * (it - start) / max(1, total - start)))
    return 0.5 * base_lr * (1 + math.cos(math.pi * (it - warmup) / max(1, total - warmup)))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Session:
    """What the steps of a run share: config and method, process, data, model, budget, and the record so far."""
    cfg: TrainConfig
    method: Method
    device: torch.device
    autocast: Callable
    rank: int
    world: int
    say: Callable
    steps: list[Step]
    uids: list[list[str]]                           # each step's training uids
    step_map: StepMap
    eval_sets: dict
    net_doc: dict | None
    model: Any = None
    preprocess_train: Any = None
    tokenizer: Any = None
    pixels: Pixels | None = None
    loss_fn: Any = None
    macs: float = 0.0
    teacher_macs: float = 0.0
    plan: Plan | None = None
    ledger: Ledger | None = None
    hooks: Hooks | None = None
    rows: dict = field(default_factory=dict)        # matrix name -> {"steps": rows so far, "by_year"}
    throughput: dict = field(default_factory=dict)  # step label -> training speed
    done: list = field(default_factory=list)        # finished step labels
    carry: dict = field(default_factory=lambda: {"patched": None, "ewc": None})  # the method's state, per step

    @property
    def main_rank(self) -> bool:
        return self.rank == 0

    @property
    def out(self) -> Path:
        return self.cfg.out_dir

    @property
    def ckpt_dir(self) -> Path:
        return self.out / "checkpoints"

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.steps]

    def column_of(self, year) -> int | None:
        """The matrix column (index among this run's steps) of an evaluation year, by the step map."""
        step = self.step_map.step_of_year(year)
        return self.labels.index(step) if step in self.labels else None


# ------------------------------------------------------------------ the run

def run(cfg: TrainConfig, log=print) -> dict:
    s = setup(cfg, log)
    for t, step in enumerate(s.steps):
        if step.label not in s.done:
            run_step(s, t, step)
    return finish(s)


# ---------------- setup: process, data, model and budget, resume

def setup(cfg: TrainConfig, log) -> Session:
    device, autocast, rank, world = _process(cfg)
    data = _load_data(cfg, rank == 0)  # every input is validated before the run directory is claimed
    if rank == 0:
        _claim_run_dir(cfg.out_dir, cfg)
        (cfg.out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    s = Session(cfg, cfg.method_record, device, autocast, rank, world, log if rank == 0 else (lambda *_: None), *data)
    _build_model(s)
    s.say(f"[tic-train] {cfg.method} on {len(s.steps)} steps of {cfg.pool} ({', '.join(s.labels)}); "
          f"{s.macs:.4g} MACs/sample measured on {cfg.model}; C = {s.plan.per_step_macs:.4g} MACs/step = "
          f"{s.plan.iterations_per_step} iterations of {cfg.batch_size}")
    _resume(s)
    return s


def _process(cfg: TrainConfig):
    """(device, autocast context factory, rank, world size); joins the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device("cuda" if (cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()))
                          else "cpu")
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if world > 1 and cfg.batch_size % world:
        raise RunError(f"--batch-size {cfg.batch_size} is not divisible by the {world} processes")
    return device, autocast, rank, world


def _load_data(cfg: TrainConfig, main_rank: bool):
    """(steps, their uids, step map, evaluation sets, class list): the sets checked on the main process only."""
    steps = find_steps(cfg.data, cfg.pool, cfg.steps_filter)
    if cfg.max_steps:
        steps = steps[:cfg.max_steps]
    uids = [step_uids(s) for s in steps]
    step_map, _ = read_steps(cfg.data)
    eval_sets = load_eval_sets(cfg.data) if main_rank else {}
    net_path = Path(cfg.data) / "net_classes.json"
    net_doc = json.loads(net_path.read_text()) if net_path.is_file() else None
    if main_rank:
        _check_eval_sets(eval_sets, [s.label for s in steps], step_map, cfg.data, net_doc)
    return steps, uids, step_map, eval_sets, net_doc


def _build_model(s: Session) -> None:
    """The model (seeded), its evaluation cache, the loss, the measured MACs and the budget plan."""
    cfg = s.cfg
    seed_everything(cfg.seed)
    s.model, s.preprocess_train, preprocess_eval, s.tokenizer = create_model(cfg.model, s.device)
    if cfg.init:
        _load_init(s.model, cfg)
    s.pixels = Pixels(preprocess_eval, cfg.eval_cache_mb << 20)
    s.loss_fn = contrastive_loss(s.rank, s.world)
    image_size = s.model.visual.image_size
    image_size = image_size if isinstance(image_size, int) else image_size[0]
    context = s.tokenizer.context_length
    s.macs = train_macs_per_sample(copy.deepcopy(s.model), contrastive_loss(), image_size, context, s.device)
    s.teacher_macs = forward_macs_per_sample(s.model, image_size, context, s.device)
    s.plan = Plan.from_budget(s.macs, cfg.batch_size, len(s.steps), cfg.budget_macs, cfg.budget_samples)
    s.ledger = Ledger(s.plan.per_step_macs)
    s.hooks = s.method.hooks(s)


def _load_init(model, cfg: TrainConfig) -> None:
    """The warm start: `--init`'s weights (a `tic-train pretrain` original, or any checkpoint of this model)."""
    path = Path(cfg.init)
    _, state, named = read_checkpoint(path)
    if named is not None and named != cfg.model:
        raise RunError(f"{path}: a checkpoint of model {named!r}, not {cfg.model!r}")
    load_fitting_state(model, state, path, cfg.model)


def _resume(s: Session) -> None:
    """The record, ledger, weights and method state of the finished steps, then the DDP / compile wrappers."""
    state = _load_state(s.out) if s.main_rank else {}
    if s.world > 1:
        state = _broadcast(state)
    s.rows, s.throughput, s.done = state.get("rows", {}), state.get("throughput", {}), state.get("done_steps", [])
    if s.done:
        path = s.ckpt_dir / f"step_{s.done[-1]}.pt"
        last = torch.load(path, map_location=s.device, weights_only=False)
        load_weights(s.model, last, path, s.cfg.model)
        s.carry = {"patched": last.get("patched"), "ewc": last.get("ewc")}
        s.ledger.entries.extend(state.get("ledger", []))
        s.say(f"[tic-train] resuming after step {s.done[-1]}")
    if s.world > 1:
        s.model = torch.nn.parallel.DistributedDataParallel(s.model)
    if s.cfg.compile:
        s.model = torch.compile(s.model)


# ---------------- one step

def run_step(s: Session, t: int, step: Step) -> None:
    cfg = s.cfg
    step_seed = cfg.seed * 1000 + t
    seed_everything(step_seed)
    buffer = compose_buffer(s.method.buffer, s.uids, s.labels, t, cfg.seed)
    if s.main_rank:
        _write_buffer(s.out / "buffers" / f"step_{step.label}.parquet", buffer)
    if s.method.restart:
        fresh = create_model(cfg.model, s.device)[0]
        if cfg.init:  # a warm-started run restarts from its original, not from random weights
            _load_init(fresh, cfg)
        unwrap(s.model).load_state_dict(fresh.state_dict())
    s.hooks.begin_step(s.model, t)
    iters = s.plan.iterations_per_step * s.method.budgets(t)
    loader, timing = train_step(s, t, step, {u for u, _ in buffer}, iters, step_seed)
    note = end_step(s, t, step, loader, iters)
    if s.main_rank:
        record_step(s, t, step, iters, timing, note)
    if s.world > 1:
        torch.distributed.barrier()


class Timing:
    """Seconds waiting for data and busy training. Throughput is also measured without the first iterations
    (worker start-up, allocator warm-up), the same window open_clip_train's per-log meters give, so
    perf/bench_train.py compares like with like."""

    def __init__(self, start_it: int, iters: int):
        self.start_it, self.skip = start_it, start_it + min(10, (iters - start_it) // 5)
        self.wait = self.busy = self.steady_wait = self.steady_busy = 0.0
        self.waited, self.t_data = 0.0, 0.0
        self.mark = time.perf_counter()

    def skipped(self) -> None:
        self.mark = time.perf_counter()

    def data_ready(self) -> None:
        self.t_data = time.perf_counter()
        self.waited = self.t_data - self.mark
        self.wait += self.waited

    def batch_done(self, it: int) -> None:
        self.mark = time.perf_counter()
        self.busy += self.mark - self.t_data
        if it > self.skip:
            self.steady_wait += self.waited
            self.steady_busy += self.mark - self.t_data

    def samples_per_s(self, batch_size: int, it: int) -> float:
        return batch_size * (it - self.start_it) / max(self.wait + self.busy, 1e-9)

    def record(self, batch_size: int, it: int) -> dict:
        total, steady = max(self.wait + self.busy, 1e-9), self.steady_wait + self.steady_busy
        return {"iterations": it - self.start_it, "seconds": round(self.wait + self.busy, 3),
                "samples_per_s": round(self.samples_per_s(batch_size, it), 2),
                "data_wait": round(self.wait / total, 4),
                "steady_iterations": max(0, it - self.skip),
                "steady_samples_per_s": round(batch_size * max(0, it - self.skip) / steady, 2) if steady else None,
                "steady_data_wait": round(self.steady_wait / steady, 4) if steady else None}


def train_step(s: Session, t: int, step: Step, buffer: set[str], iters: int, step_seed: int):
    """Step t's training: `iters` batches of the buffer's samples. Returns (the loader, its Timing)."""
    cfg = s.cfg
    warmup = cfg.warmup if (t == 0 or s.method.restart) else int(cfg.warmup * cfg.warmup_later)
    warmup = min(warmup, max(0, iters - 1))
    optimizer = torch.optim.AdamW([p for p in s.model.parameters() if p.requires_grad], lr=cfg.lr,
                                  betas=(0.9, 0.98), eps=1e-6, weight_decay=cfg.weight_decay)
    start_it = _resume_partial(s, step, optimizer)
    shards = [sh for st in s.steps[:t + 1] for sh in st.shards]
    stream = BufferStream(shards, buffer, iters * cfg.batch_size, step_seed, s.preprocess_train, s.tokenizer,
                          s.rank, s.world)
    loader = train_loader(stream, cfg.batch_size // s.world, cfg.workers)
    s.model.train()
    timing = Timing(start_it, iters)
    bar = tqdm(total=iters, initial=start_it, disable=not s.main_rank, unit="it", dynamic_ncols=True,
               desc=f"{cfg.method} step {t + 1}/{len(s.steps)} ({step.label})")
    it = 0
    for images, texts in loader:
        if it < start_it:  # replaying the stream up to where the interrupted run stopped
            it += 1
            timing.skipped()
            continue
        timing.data_ready()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(it, iters, cfg.lr, warmup, cfg.schedule)
        loss = train_batch(s, optimizer, images, texts)
        it += 1
        if it % 10 == 0 or it == iters:  # .item() synchronises a GPU; not every iteration
            bar.set_postfix(loss=f"{loss.item():.3f}", samples_s=f"{timing.samples_per_s(cfg.batch_size, it):.0f}")
        timing.batch_done(it)
        bar.update(1)
        if s.main_rank and cfg.checkpoint_every and it % cfg.checkpoint_every == 0 and it < iters:
            save_checkpoint(s.ckpt_dir / "partial.pt", {
                "step": step.label, "iteration": it, "model": unwrap(s.model).state_dict(),
                "optimizer": optimizer.state_dict(), "model_name": cfg.model, **s.hooks.partial_state()})
    bar.close()
    if it < iters:
        raise DataError(f"{step.dir}: the data stream ended after {it} of {iters} iterations")
    return loader, timing


def _resume_partial(s: Session, step: Step, optimizer) -> int:
    """The iteration a mid-step checkpoint of this step reached (its weights and optimizer loaded), or 0."""
    partial = s.ckpt_dir / "partial.pt"
    if not partial.is_file():
        return 0
    ck = torch.load(partial, map_location=s.device, weights_only=False)
    if ck.get("step") != step.label:
        return 0
    load_weights(unwrap(s.model), ck, partial, s.cfg.model)
    optimizer.load_state_dict(ck["optimizer"])
    s.hooks.resume_partial(ck)
    s.say(f"[tic-train] resuming step {step.label} at iteration {ck['iteration']}")
    return ck["iteration"]


def train_batch(s: Session, optimizer, images, texts) -> torch.Tensor:
    """One optimiser step on a batch: the contrastive loss plus the method's term. Returns the loss."""
    images, texts = images.to(s.device, non_blocking=True), texts.to(s.device, non_blocking=True)
    return contrastive_step(s.model, s.loss_fn, optimizer, images, texts, s.autocast,
                            lambda outs: s.hooks.extra_loss(s.model, images, texts, outs))


def contrastive_step(model, loss_fn, optimizer, images, texts, autocast=contextlib.nullcontext,
                     extra_loss=lambda outs: None) -> torch.Tensor:
    """One optimiser step of CLIP's contrastive loss (plus `extra_loss(outs)` when it is not None). Returns the loss."""
    with autocast():
        outs = model(images, texts)
        loss = loss_fn(outs["image_features"], outs["text_features"], outs["logit_scale"])
        extra = extra_loss(outs)
        if extra is not None:
            loss = loss + extra
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    with torch.no_grad():  # CLIP clamps its temperature
        unwrap(model).logit_scale.clamp_(0, math.log(100))
    return loss


def end_step(s: Session, t: int, step: Step, loader, iters: int) -> str:
    """The step's spending, the method's end-of-step work, the budget check. Returns the method's note."""
    samples = iters * s.cfg.batch_size
    s.ledger.spend(step.label, "training", samples * s.macs)
    s.hooks.spend(s.ledger, step.label, samples)
    note = s.hooks.end_step(s.model, loader, step.label, t)
    if s.world > 1:
        _sync_weights(s.model)
    s.ledger.check(step.label, s.cfg.method, s.cfg.over_budget)
    return note


def record_step(s: Session, t: int, step: Step, iters: int, timing: Timing, note: str) -> None:
    """On the main process: the step's checkpoint, its evaluation row, the run's state and log line."""
    cfg = s.cfg
    save_checkpoint(s.ckpt_dir / f"step_{step.label}.pt", {"step": step.label, "model": unwrap(s.model).state_dict(),
                                                            "model_name": cfg.model, **s.carry})
    (s.ckpt_dir / "partial.pt").unlink(missing_ok=True)
    res = evaluate(unwrap(s.model), s.pixels, s.tokenizer, s.eval_sets, s.net_doc, cfg.net_subtree, s.device,
                   cfg.eval_batch_size, s.autocast)
    _record(s.rows, res, s.labels, t, cfg.net_subtree, s.column_of)
    s.done.append(step.label)
    s.throughput[step.label] = timing.record(cfg.batch_size, iters)
    _save_state(s.out, {"done_steps": s.done, "rows": s.rows, "ledger": s.ledger.entries, "throughput": s.throughput})
    wait = timing.wait / max(timing.wait + timing.busy, 1e-9)
    s.say(f"[tic-train] step {step.label}: {iters} iterations, data wait {wait:.1%}" + note + "; "
          + _row_summary(s.rows, t))


# ---------------- the results

def finish(s: Session) -> dict:
    result = {}
    if s.main_rank:
        result = _write_results(s.out, s.cfg, s.rows, s.labels, s.ledger, s.plan, s.throughput)
        s.say(s.ledger.table())
    if s.world > 1:
        torch.distributed.barrier()
    return result


# ------------------------------------------------------------------ helpers of the loop

def _claim_run_dir(out: Path, cfg: TrainConfig) -> None:
    open_run_dir(out, RUN_KIND, cfg.to_json(), lambda doc: TrainConfig.from_dict(doc).to_json())


def _check_eval_sets(eval_sets: dict, labels: list[str], step_map: StepMap, data: str, net_doc: dict | None) -> None:
    """The evaluation sets must fit the steps and the class list they are scored with."""
    root = Path(data) / "eval"
    if not eval_sets.get("retrieval"):
        raise DataError(f"{root / 'retrieval'}: no retrieval evaluation sets")
    covered = {step_map.step_of_year(y) for y in eval_sets["retrieval"]}
    for label in labels:
        if label not in covered:
            raise DataError(f"{root / 'retrieval'}: no evaluation year for step {label} "
                            f"(years {', '.join(sorted(eval_sets['retrieval']))}; mismatched eval sets?)")
    known = {c["class_id"] for c in net_doc["classes"]} if net_doc else None
    for task, sets in eval_sets.items():
        for name, es in sets.items():
            where = root / task / name if task != "static" else root / task
            if not es.uids:
                raise DataError(f"{where}: empty evaluation set")
            if task in ("net", "static"):
                ids = [m.get("class_id") for m in es.meta]
                if any(c is None for c in ids):
                    raise DataError(f"{where}: evaluation samples without class_id (a mismatched eval set?)")
                if known is not None and not set(ids) <= known:
                    bad = sorted(set(ids) - known)[:5]
                    raise DataError(f"{where}: class ids {bad} are not in {Path(data) / 'net_classes.json'} "
                                    "(eval set and class list from different builds?)")


def _load_state(out: Path) -> dict:
    p = out / "state.json"
    state = json.loads(p.read_text()) if p.is_file() else {}
    if "rows" in state:  # scores are numbers: strict JSON wrote a NaN (a step without that set) as null
        state["rows"] = _null_to_nan(state["rows"])
    return state


def _null_to_nan(doc):
    if doc is None:
        return float("nan")
    if isinstance(doc, dict):
        return {k: _null_to_nan(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_null_to_nan(v) for v in doc]
    return doc


def _save_state(out: Path, state: dict) -> None:
    write_json(out / "state.json", state)


def _broadcast(obj):
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _sync_weights(model) -> None:
    for p in unwrap(model).state_dict().values():
        torch.distributed.broadcast(p, src=0)


def _write_buffer(path: Path, buffer: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        pq.write_table(pa.table({"uid": [u for u, _ in buffer], "source_step": [s for _, s in buffer]}), tmp)


TASKS = {  # matrix name -> (result task, key)
    "retrieval": ("retrieval", "all"),
    "retrieval_covid": ("retrieval", "covid"),
    "retrieval_flickr": ("retrieval", "flickr"),
    "net": ("net", "acc"),
}


def _record(rows: dict, res: dict, labels: list[str], t: int, subtree: str, column_of: Callable) -> None:
    """Add step t's row to every matrix (one column per step: the mean over that step's years)."""
    tasks = dict(TASKS)
    tasks[f"net_{subtree}"] = ("net", f"acc_{subtree}")
    for name, (task, key) in tasks.items():
        per_step: dict[int, list] = {}
        by_year = {}
        for year, r in res.get(task, {}).items():
            if key in r:
                by_year[year] = r[key]
                j = column_of(year)
                if j is not None:
                    per_step.setdefault(j, []).append(r[key])
        if not by_year:
            continue
        m = rows.setdefault(name, {"steps": [], "by_year": {}})
        m["steps"].append([float(np.mean(per_step[j])) if j in per_step else float("nan") for j in range(len(labels))])
        m["by_year"][labels[t]] = by_year
    static = res.get("static", {}).get("all")
    if static:
        rows.setdefault("static", {"steps": [], "by_year": {}})["steps"].append([static["acc"]])


def _row_summary(rows: dict, t: int) -> str:
    parts = []
    for name in ("retrieval", "net", "static"):
        if name in rows and rows[name]["steps"]:
            row = rows[name]["steps"][-1]
            parts.append(f"{name} {row[t] if name != 'static' else row[0]:.2f}")
    return ", ".join(parts)


def _write_results(out: Path, cfg: TrainConfig, rows: dict, labels: list[str], ledger: Ledger, plan: Plan,
                   throughput: dict) -> dict:
    metrics = {"method": cfg.method, "pool": cfg.pool, "steps": labels,
               "macs_per_sample": plan.macs_per_sample, "per_step_budget_macs": plan.per_step_macs,
               "iterations_per_step": plan.iterations_per_step,
               "total_macs": sum(e["macs"] for e in ledger.entries),
               "over_budget": cfg.over_budget, "throughput": throughput, "tasks": {}}
    for name, m in rows.items():
        if name == "static":
            metrics["static"] = {"per_step": [r[0] for r in m["steps"]], "final": m["steps"][-1][0]}
            continue
        E = np.array(m["steps"], dtype=float)
        if E.shape[0] == len(labels):
            write_matrix_csv(out / f"matrix_{name}.csv", E)
            heatmap(E, labels, f"{cfg.method}: {name}", out / f"heatmap_{name}.png")
            metrics["tasks"][name] = {**summarize(E), "matrix": E.tolist(), "by_year": m["by_year"]}
    write_json(out / "metrics.json", metrics)
    write_json(out / "ledger.json", ledger.entries)
    return metrics
