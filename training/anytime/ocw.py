"""Online class-wise weighting (OCW): per label, an EMA estimate of how often the tuned and the original
model are right, and the mixing of their probabilities by those estimates."""
from __future__ import annotations

import numpy as np

from ticcore.errors import InputError

EPS = 1e-8


class ClassAccuracy:
    """EMA of 0/1 correctness per label with decay eta. The first floor(1/(1-eta)) examples of a label give
    a plain running mean (an EMA started at 0 or 1 would take ~1/(1-eta) examples to forget its start)."""

    def __init__(self, eta: float = 0.99):
        if not 0 < eta < 1:
            raise InputError(f"OCW decay eta must be in (0, 1), got {eta}")
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


def tuned_weights(labels, tuned: ClassAccuracy, original: ClassAccuracy, seen: set[int],
                  p_other: np.ndarray | None = None) -> np.ndarray:
    """alpha_t(y) = c_t / (c_t + c_o + eps) for each label; 0 for labels the tuned model never trained on.

    With the tuned model's "other" probability per image (N,), its accuracy estimate is discounted by how
    sure it is that the image is none of its labels: alpha_t(y|x) = (1 - P_t(other|x)) c_t /
    ((1 - P_t(other|x)) c_t + c_o + eps), shape (N, labels). An image the tuned model calls "other" is
    left to the original, which can name any label (the AnytimeCL authors' code weighs it so)."""
    c_t = np.array([tuned.get(y) if y in seen else 0.0 for y in labels], np.float64)
    c_o = np.array([original.get(y) for y in labels], np.float64)
    if p_other is None:
        return c_t / (c_t + c_o + EPS)
    scaled = (1 - np.asarray(p_other, np.float64))[:, None] * c_t[None, :]
    return scaled / (scaled + c_o[None, :] + EPS)


def combine(p_tuned: np.ndarray, p_original: np.ndarray, alpha_t: np.ndarray) -> np.ndarray:
    """alpha_t(y) P_t(y|x) + (1 - alpha_t(y)) P_o(y|x) over the candidate columns; alpha_t is one weight
    per label (C,) or per image and label (N, C)."""
    alpha_t = np.broadcast_to(alpha_t, p_tuned.shape)
    return alpha_t * p_tuned + (1 - alpha_t) * p_original
