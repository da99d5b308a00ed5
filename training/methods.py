"""The continual-learning methods, one record each: the one place that says what a method does.

A record names the method's data buffer policy (training/buffers.py), whether the model is re-initialised
at every step, how many per-step budgets it trains for at step t, whether it is over the budget by design,
and its hooks: what it adds to the loss (LwF's distillation, EWC's penalty), what it keeps in a mid-step
checkpoint, and what it does at the end of a step (EWC's Fisher estimate, Patching's interpolation).
The trainer (training/trainer.py) asks the record and calls the hooks; it never tests a method's name.
Adding a method is adding a record (and, when it needs them, a Hooks subclass) here.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .buffers import POLICIES
from .evaluate import evaluate
from .models import unwrap


class Hooks:
    """Plain training: nothing added to the loss, nothing done at the end of a step.

    One instance per run; `run` is the trainer's Session (cfg, ledger, eval sets, ...). What a method carries
    from one step to the next lives in `run.carry` ({"patched", "ewc"}), which every step checkpoint holds."""

    def __init__(self, run):
        self.run = run

    def begin_step(self, model, t: int) -> None:
        """Before step t's optimiser is made (after a re-initialisation)."""

    def partial_state(self) -> dict:
        """Fields a mid-step checkpoint adds (restored by `resume_partial`)."""
        return {"teacher_model": None}

    def resume_partial(self, ck: dict) -> None:
        pass

    def extra_loss(self, model, images, texts, outs):
        """A term added to the contrastive loss of a batch, or None."""
        return None

    def spend(self, ledger, step: str, samples: int) -> None:
        """MACs the method spends beside training on `samples` samples at a step."""

    def end_step(self, model, loader, step: str, t: int) -> str:
        """Work after a step's training, before its checkpoint; returns a note for the step's log line."""
        return ""


# ------------------------------------------------------------------ LwF

def lwf_loss(student_out, teacher_out, temperature: float) -> torch.Tensor:
    """KL(teacher || student) between the image-text similarity distributions, both directions."""
    def logits(o):
        return o["logit_scale"] * o["image_features"] @ o["text_features"].T

    s, t = logits(student_out) / temperature, logits(teacher_out).detach() / temperature
    kl = lambda a, b: F.kl_div(F.log_softmax(a, dim=1), F.softmax(b, dim=1), reduction="batchmean")  # noqa: E731
    return 0.5 * (kl(s, t) + kl(s.T, t.T))


class LwF(Hooks):
    """Distillation from a frozen copy of the model as it was when the step began (from the second step on)."""
    teacher = None

    def begin_step(self, model, t: int) -> None:
        self.teacher = copy.deepcopy(unwrap(model)).eval() if t > 0 else None
        if self.teacher is not None:
            for p in self.teacher.parameters():
                p.requires_grad_(False)

    def partial_state(self) -> dict:
        return {"teacher_model": self.teacher}

    def resume_partial(self, ck: dict) -> None:
        self.teacher = ck.get("teacher_model", self.teacher)

    def extra_loss(self, model, images, texts, outs):
        if self.teacher is None:
            return None
        with torch.no_grad():
            t_outs = self.teacher(images, texts)
        cfg = self.run.cfg
        return cfg.lwf_weight * lwf_loss(outs, t_outs, cfg.lwf_temperature)

    def spend(self, ledger, step: str, samples: int) -> None:
        if self.teacher is not None:
            ledger.spend(step, "lwf teacher forward", samples * self.run.teacher_macs)


# ------------------------------------------------------------------ EWC

def update_fisher(model, ewc, loader, loss_fn, batches: int, device, autocast) -> dict:
    """Diagonal Fisher of this step's loss (squared gradients over a few batches), summed over steps."""
    fisher = {n: torch.zeros_like(p) for n, p in model.named_parameters() if p.requires_grad}
    seen = 0
    for images, texts in loader:
        model.zero_grad(set_to_none=True)
        with autocast():
            o = model(images.to(device), texts.to(device))
            loss_fn(o["image_features"], o["text_features"], o["logit_scale"]).backward()
        for n, p in model.named_parameters():
            if p.grad is not None:
                fisher[n] += p.grad.detach() ** 2
        seen += 1
        if seen >= batches:
            break
    model.zero_grad(set_to_none=True)
    fisher = {n: f / max(seen, 1) for n, f in fisher.items()}
    if ewc is not None:
        fisher = {n: fisher[n] + ewc["fisher"][n] for n in fisher}
    anchor = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    return {"fisher": fisher, "anchor": anchor}


class EWC(Hooks):
    """A quadratic penalty on moving the weights the past steps' Fisher information marks as important."""

    def extra_loss(self, model, images, texts, outs):
        ewc = self.run.carry["ewc"]
        if ewc is None:
            return None
        return self.run.cfg.ewc_weight / 2 * sum(
            (ewc["fisher"][n] * (p - ewc["anchor"][n]) ** 2).sum()
            for n, p in unwrap(model).named_parameters() if n in ewc["fisher"])

    def end_step(self, model, loader, step: str, t: int) -> str:
        r = self.run
        r.carry["ewc"] = update_fisher(unwrap(model), r.carry["ewc"], loader, r.loss_fn, r.cfg.ewc_batches,
                                       r.device, r.autocast)
        r.ledger.spend(step, "ewc fisher", r.cfg.ewc_batches * r.cfg.batch_size * r.macs)
        return ""


# ------------------------------------------------------------------ Patching

def interpolate(a: dict, b: dict, alpha: float) -> dict:
    """(1 - alpha) * a + alpha * b, parameter by parameter."""
    return {k: (1 - alpha) * a[k] + alpha * b[k] if a[k].is_floating_point() else b[k] for k in a}


class Patching(Hooks):
    """After each step, the interpolation between the previous patched weights and the fine-tuned ones whose
    alpha scores best on the retrieval sets of the steps so far (on the main process)."""

    def end_step(self, model, loader, step: str, t: int) -> str:
        r = self.run
        if not r.main_rank:
            return ""
        model = unwrap(model)
        finetuned = {k: v.detach().clone() for k, v in model.state_dict().items()}
        note = ""
        if r.carry["patched"] is not None:
            alpha = self._tune(model, r.carry["patched"], finetuned, t)
            model.load_state_dict(interpolate(r.carry["patched"], finetuned, alpha))
            note = f", patching alpha {alpha}"
        r.carry["patched"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return note

    def _tune(self, model, patched, finetuned, t: int) -> float:
        """The alpha whose interpolation scores best on the mean retrieval of steps 1..t (the previous steps'
        sets, and the current one: on the previous ones alone alpha = 0, no update, would always win)."""
        r, cfg = self.run, self.run.cfg
        retrieval = r.eval_sets.get("retrieval", {})
        sets = {"retrieval": {y: retrieval[y] for y in retrieval if (j := r.column_of(y)) is not None and j <= t}}
        best, best_score = cfg.patching_alphas[0], -1.0
        for alpha in cfg.patching_alphas:
            model.load_state_dict(interpolate(patched, finetuned, alpha))
            res = evaluate(model, r.pixels, r.tokenizer, sets, None, cfg.net_subtree, r.device, cfg.eval_batch_size,
                           r.autocast)
            score = float(np.mean([x.get("all", 0.0) for x in res["retrieval"].values()])) if res else 0.0
            if score > best_score:
                best, best_score = alpha, score
        return best


# ------------------------------------------------------------------ the table

def _one(t: int) -> int:
    return 1


@dataclass(frozen=True)
class Method:
    name: str
    buffer: str                                 # a training/buffers.py policy: new | all | exp | equal
    restart: bool = False                       # a freshly initialised model at every step
    budgets: Callable[[int], int] = _one        # per-step budgets trained for at step t (0-based)
    over_budget: bool = False                   # spends more than C per step by design (marked in the ledger)
    hooks: type[Hooks] = Hooks

    def __post_init__(self):
        if self.buffer not in POLICIES:
            raise ValueError(f"method {self.name}: unknown buffer policy {self.buffer!r}")


# Over budget by design: Oracle trains (t+1) C at step t, LwF pays for the teacher's forward pass, EWC for the
# Fisher estimate. The rest must stay within C per step (the ledger checks).
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("sequential", "new"),
    Method("restart", "all", restart=True),
    Method("cumulative-all", "all"),
    Method("cumulative-exp", "exp"),
    Method("cumulative-equal", "equal"),
    Method("oracle", "all", restart=True, budgets=lambda t: t + 1, over_budget=True),
    Method("patching", "new", hooks=Patching),
    Method("lwf", "new", over_budget=True, hooks=LwF),
    Method("ewc", "new", over_budget=True, hooks=EWC),
)}
