"""Heatmaps of evaluation matrices, and the method-comparison table in the layout of the paper's Table 2."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ticcore.outputs import atomic_file, atomic_write


def pyplot():
    """matplotlib.pyplot on the Agg backend.

    Imported here, not at the top: it takes ~2 s to import (python -X importtime, 2,142,647 us cumulative
    after torch on the build machine), which `tic-train --help` and the report table need not pay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """A PNG, written atomically; the figure is closed."""
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=110)
    pyplot().close(fig)


def heatmap(E, labels: list[str], title: str, path: Path) -> None:
    plt = pyplot()
    E = np.asarray(E, float)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(labels), 0.8 + 0.6 * len(labels)))
    im = ax.imshow(E, cmap="viridis")
    ax.set_xticks(range(len(labels)), labels, rotation=45)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("evaluated on step")
    ax.set_ylabel("trained up to step")
    for i in range(E.shape[0]):
        for j in range(E.shape[1]):
            if not np.isnan(E[i, j]):
                ax.text(j, i, f"{E[i, j]:.1f}", ha="center", va="center", fontsize=7,
                        color="white" if E[i, j] < np.nanmean(E) else "black")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    save_figure(fig, path)


def _fmt(x) -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.2f}"


def _row(run_dir: str) -> tuple[str, str, list]:
    """(method label, compute, [static, retrieval bwd/ID/fwd, Net bwd/ID/fwd]) of one run."""
    m = json.loads((Path(run_dir) / "metrics.json").read_text())
    if "latency_ms" in m:  # a tic-train anytime run: its Net row only
        primary = "anytime" if m["config"]["ocw"] else "tuned"
        n = m["matrix"].get(primary, {})
        return f"AnytimeCL ({primary}) †", "-", [None] * 4 + [n.get(k) for k in ("backward", "in_domain", "forward")]
    budget = m["per_step_budget_macs"] * len(m["steps"])
    r, n = m["tasks"].get("retrieval", {}), m["tasks"].get("net", {})
    return (m["method"] + (" *" if m["over_budget"] else ""), f"{m['total_macs'] / budget:.2f}x",
            [m.get("static", {}).get("final")] + [r.get(k) for k in ("backward", "in_domain", "forward")]
            + [n.get(k) for k in ("backward", "in_domain", "forward")])


def table(run_dirs: list[str]) -> str:
    """Markdown: one row per method, Table-2 style (compute, static, retrieval and Net: backward / ID /
    forward). Runs of one method with several seeds make one row: the mean over the seeds, and in
    brackets their spread (max - min), the yardstick for a difference between two methods."""
    groups: dict[str, list] = {}
    for d in run_dirs:
        label, compute, values = _row(d)
        groups.setdefault(label, [compute, []])[1].append(values)
    rows = []
    for label, (compute, runs) in groups.items():
        cells = []
        for col in zip(*runs):
            vals = [v for v in col if v is not None and not np.isnan(v)]
            if len(runs) > 1 and len(vals) == len(runs):
                cells.append(f"{np.mean(vals):.2f} ({max(vals) - min(vals):.2f})")
            else:
                cells.append(_fmt(float(np.mean(vals)) if vals else None))
        rows.append([label + (f" ({len(runs)} seeds)" if len(runs) > 1 else ""), compute] + cells)
    head = ["Method", "Compute", "Static (ImageNet-like) acc",
            "Retrieval backward", "Retrieval ID", "Retrieval forward", "Net backward", "Net ID", "Net forward"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n\n* over the per-step budget by design (Oracle t*C, LwF teacher, EWC Fisher).\n" \
        "Compute is total MACs over the budget of C per step. Retrieval: mean recall@1 (both directions, 3 seeds), %; " \
        "Net and static: zero-shot top-1 over the classes occurring in the set, %. " \
        "With several training seeds: mean over them (spread, max - min).\n" \
        "† online (tic-train anytime): trained on the Net stream itself, scored on its held-out share of each " \
        "year's Net set over the full label set.\n"


def write_report(run_dirs: list[str], out: Path) -> str:
    text = "# tic-train report\n\n" + table(run_dirs)
    methods = [json.loads((Path(d) / "metrics.json").read_text()).get("method", "anytime") for d in run_dirs]
    for d, method in zip(run_dirs, methods):
        pngs = sorted(Path(d).glob("heatmap_*.png")) + sorted(Path(d).glob("curves.png"))
        if methods.count(method) > 1:  # one method, several seeds: say which
            cfg = Path(d) / "config.json"
            method += f", seed {json.loads(cfg.read_text()).get('seed')}" if cfg.is_file() else f" ({d})"
        if pngs:
            text += f"\n## {method}\n\n" + "\n".join(
                f"![{p.stem}]({os.path.relpath(p, out.resolve().parent)})" for p in (q.resolve() for q in pngs)) + "\n"
    atomic_write(out, text)
    return text
