"""`tic-train pretrain`: the *original* model, a CLIP trained once on every training step of a tic-shards output.

AnytimeCL starts from an open-vocabulary model (the paper's is OpenAI's CLIP), and a TiC method may start
warm instead of from scratch. On the sample web there is no such model to download, so this trains one on
the union of all steps' training pairs (one pass of a shuffled stream, no time order), evaluating the
static zero-shot set, TiC-DataComp-Net and retrieval every `eval_every` samples.

Writes OUT/original.pt (a tic-train checkpoint: `tic-train anytime --checkpoint` and `tic-train run --init`
take it), OUT/curve.csv (samples, train_seconds, cpu_seconds, static, net, retrieval_r1: accuracy against
time; cpu_seconds is the training process's own CPU time, data-loading workers not included) and
OUT/metrics.json (the final evaluation and the throughput).
"""
from __future__ import annotations

import contextlib
import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ticcore.errors import InputError
from ticcore.outputs import atomic_file, open_run_dir, write_json
from ticcore.validate import check_config_numbers, config_from_dict

from .config import SCHEDULES
from .data import BufferStream, find_steps, load_eval_sets, train_loader
from .evaluate import Pixels, evaluate
from .models import contrastive_loss, create_model, save_checkpoint

RUN_KIND = "tic-train pretrain"  # the ownership marker of a pretraining run directory
NUMBER_RANGES = {"budget_samples": (1, None), "batch_size": (1, None), "lr": (0, None, True),
                 "weight_decay": (0, None), "warmup": (0, None), "eval_every": (0, None), "workers": (0, None),
                 "shuffle_buffer": (1, None),
                 "seed": (0, None), "threads": (0, None)}
CURVE_COLUMNS = ("samples", "train_seconds", "cpu_seconds", "static", "net", "retrieval_r1")


@dataclass(frozen=True)
class PretrainConfig:
    data: str                          # a tic-shards output
    out: str                           # the run directory
    model: str = "tic-pico"            # an open_clip model name or model-config JSON (a ViT: AnytimeCL needs one)
    pool: str = "unfiltered"            # the most pairs: an original wants breadth (the bench and fixture use it)
    budget_samples: int = 640_000      # samples seen (with repeats: the sample web is small); about 27 minutes
                                       # on the 2-core build machine (perf/bench_pretrain.py)
    batch_size: int = 256              # more pairs of one colour and scene per batch than 128: as sample-
                                       # efficient, fewer optimiser steps
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: int = 150                  # iterations of linear warm-up
    schedule: str = "const-cosine"     # then constant with a cosine cool-down over the last 20% (or `cosine`
                                       # to 0 over the whole run): with plain cosine the concept signal only
                                       # took off (~200k samples) once the rate was already half gone
    eval_every: int = 50_000           # samples between evaluations (0: only at the end)
    shuffle_buffer: int = 20_000       # samples mixed at once: the shards are one year each, and a small buffer
                                       # would feed the years in blocks (sequential training, not one pool)
    workers: int = 1                   # data-loading processes
    threads: int = 0                   # torch threads of the training process (0: torch's default)
    seed: int = 0
    steps_filter: tuple = ()           # step labels to train on (default: every step), e.g. ("2016",): an
                                       # original that has seen no later year, for a warm-started experiment

    def __post_init__(self):
        check_config_numbers(self, NUMBER_RANGES)
        object.__setattr__(self, "steps_filter", tuple(str(s) for s in self.steps_filter))
        if self.schedule not in SCHEDULES:
            raise InputError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")

    @property
    def iterations(self) -> int:
        return max(1, self.budget_samples // self.batch_size)

    @classmethod
    def from_dict(cls, d: dict) -> "PretrainConfig":
        return config_from_dict(cls, d, "pretrain option(s)")


def pretrain(cfg: PretrainConfig, log=print) -> dict:
    from .trainer import contrastive_step, lr_at, seed_everything  # the trainer's own step and schedule

    steps = find_steps(cfg.data, cfg.pool, cfg.steps_filter)
    eval_sets = load_eval_sets(cfg.data)
    net_path = Path(cfg.data) / "net_classes.json"
    net_doc = json.loads(net_path.read_text()) if net_path.is_file() else None
    out = Path(cfg.out)
    open_run_dir(out, RUN_KIND, asdict(cfg), lambda d: asdict(PretrainConfig.from_dict(d)))
    if (out / "metrics.json").is_file():  # a finished run with this config: nothing to redo
        log(f"[tic-train pretrain] {out} is already done")
        return json.loads((out / "metrics.json").read_text())
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    device = torch.device("cpu") if not torch.cuda.is_available() else torch.device("cuda")
    model, preprocess_train, preprocess_eval, tokenizer = create_model(cfg.model, device)
    pixels, loss_fn = Pixels(preprocess_eval), contrastive_loss()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                  betas=(0.9, 0.98), eps=1e-6, weight_decay=cfg.weight_decay)
    shards = [sh for st in steps for sh in st.shards]
    stream = BufferStream(shards, None, cfg.iterations * cfg.batch_size, cfg.seed, preprocess_train, tokenizer,
                          shuffle_buffer=cfg.shuffle_buffer)
    curve: list[dict] = []
    train_seconds = cpu_seconds = 0.0  # wall and CPU time of training only (evaluations excluded)

    def score(samples: int) -> dict:
        res = evaluate(model, pixels, tokenizer, eval_sets, net_doc, "", device, 256, contextlib.nullcontext)
        row = {"samples": samples, "train_seconds": round(train_seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
               **headline(res)}
        curve.append(row)
        log(f"[tic-train pretrain] {samples} samples, {train_seconds:.0f} s: " +
            ", ".join(f"{k} {v:.1f}" for k, v in row.items() if k in CURVE_COLUMNS[3:] and v is not None))
        model.train()
        return res

    log(f"[tic-train pretrain] {cfg.model} on {len(steps)} steps of {cfg.pool} ({len(shards)} shards), "
        f"{cfg.iterations} iterations of {cfg.batch_size}")
    model.train()
    mark, cpu_mark = time.perf_counter(), time.process_time()
    next_eval = cfg.eval_every or None
    it = 0
    for images, texts in train_loader(stream, cfg.batch_size, cfg.workers):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(it, cfg.iterations, cfg.lr, min(cfg.warmup, cfg.iterations - 1), cfg.schedule)
        contrastive_step(model, loss_fn, optimizer, images.to(device), texts.to(device))
        it += 1
        if next_eval and it * cfg.batch_size >= next_eval and it < cfg.iterations:
            train_seconds += time.perf_counter() - mark
            cpu_seconds += time.process_time() - cpu_mark
            score(it * cfg.batch_size)
            next_eval += cfg.eval_every
            mark, cpu_mark = time.perf_counter(), time.process_time()
    train_seconds += time.perf_counter() - mark
    cpu_seconds += time.process_time() - cpu_mark
    final = score(it * cfg.batch_size)
    save_checkpoint(out / "original.pt", {"step": "pretrain", "model": model.state_dict(), "model_name": cfg.model})
    with atomic_file(out / "curve.csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, CURVE_COLUMNS)
            w.writeheader()
            w.writerows(curve)
    metrics = {"final": final, "curve": curve, "iterations": it, "train_seconds": round(train_seconds, 1),
               "cpu_seconds": round(cpu_seconds, 1),
               "samples_per_s": round(it * cfg.batch_size / max(train_seconds, 1e-9), 1)}
    write_json(out / "metrics.json", metrics)
    return metrics


def headline(res: dict) -> dict:
    """The curve's columns of an evaluation: static top-1, mean Net top-1 over years, mean retrieval R@1."""
    def mean(values):
        values = [v for v in values if v is not None]
        return round(float(np.mean(values)), 2) if values else None

    static = res.get("static", {})
    return {"static": mean(r["acc"] for r in static.values()),
            "net": mean(r["acc"] for r in res.get("net", {}).values()),
            "retrieval_r1": mean(r.get("all") for r in res.get("retrieval", {}).values())}
