"""`tic-train anytime-compare`: AnytimeCL and its baselines on the same stream, one summary table.

Runs (each in OUT/<name>): `anytime` (OCW + "other" loss + compressed replay; its original and tuned
predictions give the zero-shot and tuned-alone rows), `anytime-raw` (uncompressed replay: the compression's
accuracy cost), `finetune` (last block with replay, plain cross-entropy, no OCW) and `sequential`
(last block on the stream alone, no replay)."""
from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

from ticcore.outputs import atomic_write, write_json

from .run import AnytimeConfig, plot_curves, run

VARIANTS = {
    "anytime": {},
    "anytime-raw": {"replay": "raw"},
    "finetune": {"other_loss": False, "ocw": False},
    "sequential": {"other_loss": False, "ocw": False, "replay": "none"},
}
# (row label, run, predictor)
ROWS = (
    ("original model alone (zero-shot)", "anytime", "original"),
    ("tuned model alone", "anytime", "tuned"),
    ("AnytimeCL (OCW, compressed replay)", "anytime", "anytime"),
    ("AnytimeCL, uncompressed replay", "anytime-raw", "anytime"),
    ("fine-tune last block, no OCW", "finetune", "tuned"),
    ("sequential fine-tuning", "sequential", "tuned"),
)


def _curves(run_dir: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    with open(run_dir / "curves.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            out.setdefault(r["predictor"], []).append(
                {"examples": int(r["examples"]), **{k: float(r[k]) if r[k] else math.nan
                                                    for k in ("acc_seen", "acc_all", "acc_unseen")}})
    return out


def compare(base: AnytimeConfig, out: Path, variants: tuple[str, ...] = tuple(VARIANTS), log=print) -> str:
    out.mkdir(parents=True, exist_ok=True)
    metrics = {}
    for name in variants:
        cfg = dataclasses.replace(base, out=str(out / name), **VARIANTS[name])
        metrics[name] = run(cfg, log=log)
    lines = ["# AnytimeCL on the stream", "",
             f"Stream: `{base.data}`; original model: `{base.checkpoint}`; batch {base.batch_size} "
             f"(1 new + {base.batch_size - 1} replayed), {base.updates_per_example} update(s) per example, "
             f"held-out share {base.holdout}, OCW eta {base.eta}, PCA k={base.pca_k}, {base.quant_bits}-bit.", "",
             "Accuracy in percent on the held-out set: *seen* = over the labels seen so far, *all* = over the full "
             "label set (open vocabulary). AUC = mean accuracy over the curve. T×T = the yearly matrix (each "
             "step's held-out examples, full label set, after each step).", "",
             "| method | final seen | final all | AUC seen | AUC all | T×T in-domain | backward | forward "
             "| bytes / stored example | update ms (median / p95) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    series = {}
    for label, run_name, predictor in ROWS:
        m = metrics.get(run_name)
        if not m:
            continue
        f, a, tt = m["final"][predictor], m["auc"][predictor], m["matrix"].get(predictor, {})
        mem = "-" if predictor == "original" else (str(m["memory"]["bytes_per_example"]) if m["memory"]["replay"] != "none" else "0")
        lat = "-" if predictor == "original" else f"{m['latency_ms']['median']:.1f} / {m['latency_ms']['p95']:.1f}"
        lines.append(f"| {label} | {f['acc_seen']:.2f} | {f['acc_all']:.2f} | {a['acc_seen']:.2f} | {a['acc_all']:.2f} "
                     f"| {tt.get('in_domain', math.nan):.2f} | {tt.get('backward', math.nan):.2f} "
                     f"| {tt.get('forward', math.nan):.2f} | {mem} | {lat} |")
        series[label] = _curves(out / run_name)[predictor]
    if "anytime" in metrics:
        mem = metrics["anytime"]["memory"]
        lines += ["", f"Replay memory: {mem['bytes_per_example']} bytes per example (tokens {mem['tokens_per_example'][0]}×"
                  f"{mem['tokens_per_example'][1]}; float32 would take {mem['raw_float32_bytes_per_example']} bytes: "
                  f"{mem['raw_float32_bytes_per_example'] / max(1, mem['bytes_per_example']):.1f}× smaller)."]
        if "anytime-raw" in metrics:
            d = {k: metrics["anytime"]["final"]["anytime"][k] - metrics["anytime-raw"]["final"]["anytime"][k]
                 for k in ("acc_seen", "acc_all")}
            lines.append(f"Compressed minus uncompressed replay, final accuracy: seen {d['acc_seen']:+.2f}, "
                         f"all {d['acc_all']:+.2f} points.")
    plot_curves(out / "curves.png", series)
    text = "\n".join(lines) + "\n"
    atomic_write(out / "summary.md", text)
    write_json(out / "summary.json", metrics)
    return text
