"""Summaries of the T x T evaluation matrix E, where E[i][j] is the model after training step i
evaluated on step j's data (the paper's definitions)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ticcore.errors import InputError
from ticcore.outputs import atomic_file


def summarize(E) -> dict[str, float]:
    """in_domain: mean of the diagonal; backward: mean of E[i][j] over j < i; forward: mean over j > i;
    backward_rel / forward_rel (appendix F): the same means of E[i][j] - E[j][j] and E[i][j] - E[i][i].
    NaN cells (not evaluated) are skipped; an empty triangle gives NaN."""
    E = np.asarray(E, dtype=float)
    if E.ndim != 2 or E.shape[0] != E.shape[1]:
        raise InputError(f"the matrix must be square, got shape {E.shape}")
    n = E.shape[0]
    lower = [(i, j) for i in range(n) for j in range(n) if j < i]
    upper = [(i, j) for i in range(n) for j in range(n) if j > i]

    def mean(values):
        v = [x for x in values if not np.isnan(x)]
        return float(np.mean(v)) if v else float("nan")

    return {
        "in_domain": mean(E[i, i] for i in range(n)),
        "backward": mean(E[i, j] for i, j in lower),
        "forward": mean(E[i, j] for i, j in upper),
        "backward_rel": mean(E[i, j] - E[j, j] for i, j in lower),
        "forward_rel": mean(E[i, j] - E[i, i] for i, j in upper),
    }


def read_matrix_csv(path: str | Path) -> np.ndarray:
    """Rows = training steps, columns = evaluation steps, no index column, values in percent.
    A header row of step labels is allowed (and skipped)."""
    rows = []
    with open(path, newline="") as fh:
        for k, row in enumerate(csv.reader(fh)):
            if not row or all(not c.strip() for c in row):
                continue
            try:
                rows.append([float(c) if c.strip() else float("nan") for c in row])
            except ValueError:
                if k == 0 and not rows:
                    continue  # a header row
                raise InputError(f"{path}: row {k + 1} is not numbers: {row}")
    if not rows:
        raise InputError(f"{path}: no rows")
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise InputError(f"{path}: rows have different lengths {sorted(widths)}")
    return np.array(rows)


def write_matrix_csv(path: str | Path, E) -> None:
    """The format `read_matrix_csv` and `tic-train metrics` take: no header (step labels are years, which
    would read as numbers; they are in metrics.json's "steps"), written to a temporary file, then renamed."""
    with atomic_file(Path(path)) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        for row in np.asarray(E, float):
            w.writerow(["" if np.isnan(x) else f"{x:.4f}" for x in row])
