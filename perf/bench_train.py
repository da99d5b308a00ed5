"""tic-train's training loop against open_clip_train's own loop (issue 8), in one run.

Both train the same model on the same step's shards, at the same global batch, workers, precision
and device, for the same number of iterations, alternated A B B A. Each reports steady-state
samples/s with the first 10 iterations left out (worker start-up, allocator warm-up): tic-train in
its metrics.json ("throughput"), open_clip_train in its per-window log meters. The data-loader wait
is the share of the steady window spent waiting for the next batch.
Target: tic-train >= 0.95x open_clip_train's samples/s, data wait < 5%.

    python perf/bench_train.py --data demo-out/shards --pool unfiltered --samples 6400
    python perf/bench_train.py --data SHARDS --model ViT-B-16 --batch-size 256 --precision bf16   (on a GPU)
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ticcore.steps import read_steps  # noqa: E402
WINDOW = 10  # open_clip_train logs every WINDOW iterations; tic-train leaves out the same first WINDOW


def run_tic_train(args, step: str, out: Path) -> dict:
    cmd = [sys.executable, "-m", "training.cli", "run", "--data", args.data, "--out", str(out), "--method",
           "sequential", "--pool", args.pool, "--steps-filter", step, "--budget-samples", str(args.samples),
           "--batch-size", str(args.batch_size), "--workers", str(args.workers), "--model", args.model,
           "--warmup", str(WINDOW), "--checkpoint-every", "0", "--lr", "1e-3", "--seed", "0",
           "--precision", args.precision, "--device", args.device]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"tic-train failed:\n{res.stderr[-3000:]}")
    t = json.loads((out / "metrics.json").read_text())["throughput"][step]
    return {"samples_per_s": t["steady_samples_per_s"], "data_wait": t["steady_data_wait"],
            "iterations": t["steady_iterations"]}


LOG_LINE = re.compile(r"\[\s*(\d+)/\d+ .*?Data \(t\): ([\d.]+) Batch \(t\): ([\d.]+),")


def run_open_clip(args, pattern: str, out: Path) -> dict:
    precision = {"fp32": "fp32", "bf16": "amp_bf16", "auto": "fp32"}[args.precision]
    cmd = [sys.executable, "-m", "training.open_clip_main", "--model", args.model, "--train-data", pattern,
           "--train-num-samples", str(args.samples), "--dataset-type", "webdataset", "--batch-size",
           str(args.batch_size), "--epochs", "1", "--workers", str(args.workers), "--precision", precision,
           "--logs", str(out), "--name", "run", "--save-frequency", "0", "--lr", "1e-3", "--warmup", str(WINDOW),
           "--report-to", "", "--seed", "0", "--log-every-n-steps", str(WINDOW)]
    if args.device == "cpu":
        cmd += ["--device", "cpu"]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"open_clip_train failed:\n{res.stderr[-3000:]}")
    windows = []  # (iterations in window, mean data time, mean batch time)
    seen = 0
    for line in (out / "run" / "out.log").read_text().splitlines():
        m = LOG_LINE.search(line)
        if m:
            done = int(m.group(1)) // args.batch_size
            windows.append((done - seen, float(m.group(2)), float(m.group(3))))
            seen = done
    # the first log line covers iteration 1 alone, the second the rest of the first WINDOW: both are warm-up
    steady = [w for w in windows[2:] if w[0] > 0]
    if not steady:
        sys.exit("open_clip_train logged no steady window: raise --samples")
    iters = sum(n for n, _, _ in steady)
    batch_s = sum(n * b for n, _, b in steady)
    data_s = sum(n * d for n, d, _ in steady)
    return {"samples_per_s": args.batch_size * iters / batch_s, "data_wait": data_s / batch_s, "iterations": iters}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO / "demo-out" / "shards"))
    p.add_argument("--pool", default="unfiltered")
    p.add_argument("--step", help="step label (default: the largest step of the pool)")
    p.add_argument("--model", default="tic-tiny")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--samples", type=int, default=6400, help="samples per run (iterations = samples / batch)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)

    _, pools = read_steps(args.data)
    if args.pool not in pools:
        sys.exit(f"{args.data}/steps.json: no pool {args.pool!r} (pools: {', '.join(pools)})")
    steps = pools[args.pool]
    step = next(s for s in steps if s["step"] == args.step) if args.step else max(steps, key=lambda s: s["samples"])
    pattern = step["pattern"] if Path(step["pattern"].split("{")[0]).is_absolute() else str(REPO / step["pattern"])
    print(f"[bench-train] {args.model}, batch {args.batch_size}, {args.samples} samples "
          f"({args.samples // args.batch_size} iterations), {args.workers} workers, step {step['step']} of {args.pool} "
          f"({step['samples']} samples), device {args.device}, precision {args.precision}")
    ours, theirs = [], []
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        trainers = [("open_clip_train", theirs, lambda k: run_open_clip(args, pattern, Path(tmp) / f"open_clip-{k}")),
                    ("tic-train      ", ours, lambda k: run_tic_train(args, step["step"], Path(tmp) / f"tic-{k}"))]
        for k in range(args.repeats):
            # A B B A ...: whichever runs second in a pair no longer gets the same machine state every time.
            for name, results, train in (trainers if k % 2 == 0 else trainers[::-1]):
                r = train(k)
                results.append(r)
                print(f"  {name} run {k + 1}: {r['samples_per_s']:.1f} samples/s, "
                      f"data wait {r['data_wait']:.1%} over {r['iterations']} iterations", flush=True)
    a = statistics.median(r["samples_per_s"] for r in ours)
    b = statistics.median(r["samples_per_s"] for r in theirs)
    wa = statistics.median(r["data_wait"] for r in ours)
    wb = statistics.median(r["data_wait"] for r in theirs)
    print(f"[bench-train] tic-train {a:.1f} samples/s (data wait {wa:.1%}) vs open_clip_train {b:.1f} samples/s "
          f"(data wait {wb:.1%}): ratio {a / b:.3f}x (target >= 0.95x, wait < 5%)")


if __name__ == "__main__":
    main()
