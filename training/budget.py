"""Compute budgets in MACs, measured on the actual model, and the ledger that checks them."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode

from ticcore.errors import UserError


def measure_flops(fn) -> int:
    """FLOPs `fn()` performs (forward and backward, whatever it runs), counted by torch.utils.flop_counter."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def train_macs_per_sample(model, loss_fn, image_size: int, context_length: int, device="cpu", batch: int = 2) -> float:
    """MACs of one training sample (forward + backward through model and contrastive loss); one MAC = 2 FLOPs."""
    model = model.to(device)
    images = torch.randn(batch, 3, image_size, image_size, device=device)
    texts = torch.randint(1, 100, (batch, context_length), device=device)

    def step():
        out = model(images, texts)
        loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
        loss.backward()

    flops = measure_flops(step)
    model.zero_grad(set_to_none=True)
    return flops / 2 / batch


def forward_macs_per_sample(model, image_size: int, context_length: int, device="cpu", batch: int = 2) -> float:
    """MACs of one forward pass (what a frozen LwF teacher costs per sample)."""
    images = torch.randn(batch, 3, image_size, image_size, device=device)
    texts = torch.randint(1, 100, (batch, context_length), device=device)
    with torch.no_grad():
        flops = measure_flops(lambda: model(images, texts))
    return flops / 2 / batch


class BudgetError(UserError):
    """A budget too small for one batch, or a within-budget method that overspent."""


@dataclass
class Plan:
    """Iterations per step at a fixed global batch, from a total budget split evenly over the steps."""
    macs_per_sample: float
    batch_size: int
    steps: int
    total_macs: float

    @property
    def per_step_macs(self) -> float:
        return self.total_macs / self.steps

    @property
    def iterations_per_step(self) -> int:
        return int(self.per_step_macs // (self.macs_per_sample * self.batch_size))

    @classmethod
    def from_budget(cls, macs_per_sample: float, batch_size: int, steps: int, budget_macs=None, budget_samples=None):
        total = budget_macs if budget_macs is not None else budget_samples * macs_per_sample
        plan = cls(macs_per_sample, batch_size, steps, float(total))
        if plan.iterations_per_step < 1:
            raise BudgetError(f"budget too small for one batch: {plan.per_step_macs:.3g} MACs per step < "
                              f"{macs_per_sample * batch_size:.3g} MACs for one batch of {batch_size}")
        return plan


@dataclass
class Ledger:
    """Every MAC spent, per step and item; `check` fails loudly when a within-budget method overspends."""
    per_step_budget: float
    entries: list = field(default_factory=list)

    def spend(self, step: str, item: str, macs: float) -> None:
        self.entries.append({"step": step, "item": item, "macs": float(macs)})

    def step_total(self, step: str) -> float:
        return sum(e["macs"] for e in self.entries if e["step"] == step)

    def check(self, step: str, method: str, over_budget_allowed: bool) -> None:
        spent = self.step_total(step)
        if not over_budget_allowed and spent > self.per_step_budget * (1 + 1e-9):
            raise BudgetError(f"{method} spent {spent:.4g} MACs at step {step}, over its budget of "
                              f"{self.per_step_budget:.4g}")

    def table(self) -> str:
        steps = list(dict.fromkeys(e["step"] for e in self.entries))
        lines = [f"{'step':>8} {'item':<22} {'MACs':>12} {'x budget':>9}"]
        for s in steps:
            for e in (e for e in self.entries if e["step"] == s):
                lines.append(f"{s:>8} {e['item']:<22} {e['macs']:12.4g} {e['macs'] / self.per_step_budget:9.3f}")
            total = self.step_total(s)
            lines.append(f"{s:>8} {'= step total':<22} {total:12.4g} {total / self.per_step_budget:9.3f}")
        return "\n".join(lines)
