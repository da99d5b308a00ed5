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


def table(run_dirs: list[str]) -> str:
    """Markdown: one row per run, Table-2 style (compute, static, retrieval and Net: backward / ID / forward)."""
    rows = []
    for d in run_dirs:
        m = json.loads((Path(d) / "metrics.json").read_text())
        if "latency_ms" in m:  # a tic-train anytime run: its Net row only
            primary = "anytime" if m["config"]["ocw"] else "tuned"
            n = m["matrix"].get(primary, {})
            rows.append([f"AnytimeCL ({primary}) †", "-", "-", "-", "-", "-",
                         _fmt(n.get("backward")), _fmt(n.get("in_domain")), _fmt(n.get("forward"))])
            continue
        budget = m["per_step_budget_macs"] * len(m["steps"])
        r, n = m["tasks"].get("retrieval", {}), m["tasks"].get("net", {})
        rows.append([m["method"] + (" *" if m["over_budget"] else ""), f"{m['total_macs'] / budget:.2f}x",
                     _fmt(m.get("static", {}).get("final")),
                     _fmt(r.get("backward")), _fmt(r.get("in_domain")), _fmt(r.get("forward")),
                     _fmt(n.get("backward")), _fmt(n.get("in_domain")), _fmt(n.get("forward"))])
    head = ["Method", "Compute", "Static (ImageNet-like) acc",
            "Retrieval backward", "Retrieval ID", "Retrieval forward", "Net backward", "Net ID", "Net forward"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n\n* over the per-step budget by design (Oracle t*C, LwF teacher, EWC Fisher).\n" \
        "Compute is total MACs over the budget of C per step. Retrieval: mean recall@1 (both directions, 3 seeds), %; " \
        "Net and static: zero-shot top-1 over the classes occurring in the set, %.\n" \
        "† online (tic-train anytime): trained on the Net stream itself, scored on its held-out share of each " \
        "year's Net set over the full label set.\n"


def write_report(run_dirs: list[str], out: Path) -> str:
    text = "# tic-train report\n\n" + table(run_dirs)
    for d in run_dirs:
        m = json.loads((Path(d) / "metrics.json").read_text())
        pngs = sorted(Path(d).glob("heatmap_*.png")) + sorted(Path(d).glob("curves.png"))
        if pngs:
            text += f"\n## {m.get('method', 'anytime')}\n\n" + "\n".join(
                f"![{p.stem}]({os.path.relpath(p, out.resolve().parent)})" for p in (q.resolve() for q in pngs)) + "\n"
    atomic_write(out, text)
    return text
