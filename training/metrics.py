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


# what each matrix tic-train writes holds (matrix_{task}.csv), in our names (benchmarks/retrieval.py)
MATRIX_METRICS = {"retrieval": "mean_R@1", "retrieval_covid": "mean_R@1", "retrieval_flickr": "mean_R@1",
                  "net": "accuracy", "static": "accuracy"}


def matrix_summary(path: str | Path, clip_benchmark_names: bool = False) -> dict:
    """`tic-train metrics`: the summaries of a matrix CSV; with `clip_benchmark_names`, also the metric its
    cells hold, in our name and clip_benchmark's, and every retrieval name pair (ours -> clip_benchmark's)."""
    out: dict = summarize(read_matrix_csv(path))
    if clip_benchmark_names:
        from benchmarks.retrieval import KS, clip_benchmark_name

        task = Path(path).stem.removeprefix("matrix_")
        ours = MATRIX_METRICS.get(task) or next((v for k, v in MATRIX_METRICS.items() if task.startswith(k)), None)
        names = {n: clip_benchmark_name(n) for k in KS for n in (f"image_to_text_R@{k}", f"text_to_image_R@{k}")}
        names["mean_R@1"] = clip_benchmark_name("mean_R@1")
        out["metric"] = {"ours": ours, "clip_benchmark": clip_benchmark_name(ours) if ours else None}
        out["retrieval_names"] = names
    return out


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
