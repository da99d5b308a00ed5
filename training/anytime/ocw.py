"""Online class-wise weighting (OCW): per label, an EMA estimate of how often the tuned and the original
model are right, and the mixing of their probabilities by those estimates."""
from __future__ import annotations

import numpy as np

EPS = 1e-8


class ClassAccuracy:
    """EMA of 0/1 correctness per label with decay eta. The first floor(1/(1-eta)) examples of a label give
    a plain running mean (an EMA started at 0 or 1 would take ~1/(1-eta) examples to forget its start)."""

    def __init__(self, eta: float = 0.99):
        if not 0 < eta < 1:
            raise ValueError(f"OCW decay eta must be in (0, 1), got {eta}")
        self.eta = eta
        self.warm = int(1 / (1 - eta) + 1e-9)
        self.count: dict[int, int] = {}
        self.value: dict[int, float] = {}

    def update(self, label: int, correct: bool) -> None:
        n = self.count.get(label, 0) + 1
        old = self.value.get(label, 0.0)
        c = float(correct)
        self.value[label] = old + (c - old) / n if n <= self.warm else self.eta * old + (1 - self.eta) * c
        self.count[label] = n

    def get(self, label: int) -> float:
        return self.value.get(label, 0.0)

    def state(self) -> dict:
        return {"eta": self.eta, "count": {str(k): v for k, v in self.count.items()},
                "value": {str(k): v for k, v in self.value.items()}}

    @classmethod
    def from_state(cls, d: dict) -> "ClassAccuracy":
        acc = cls(d["eta"])
        acc.count = {int(k): v for k, v in d["count"].items()}
        acc.value = {int(k): v for k, v in d["value"].items()}
        return acc


def tuned_weights(labels, tuned: ClassAccuracy, original: ClassAccuracy, seen: set[int]) -> np.ndarray:
    """alpha_t(y) = c_t / (c_t + c_o + eps) for each label; 0 for labels the tuned model never trained on."""
    return np.array([tuned.get(y) / (tuned.get(y) + original.get(y) + EPS) if y in seen else 0.0
                     for y in labels], np.float64)


def combine(p_tuned: np.ndarray, p_original: np.ndarray, alpha_t: np.ndarray) -> np.ndarray:
    """alpha_t(y) P_t(y|x) + (1 - alpha_t(y)) P_o(y|x) over the candidate columns."""
    return alpha_t[None, :] * p_tuned + (1 - alpha_t)[None, :] * p_original
