"""Accuracy against time of `tic-train pretrain` on the sample web (issue 26).

Trains the original model on a tic-shards output of the sample web (`scripts/demo.sh` builds one; the
figures in the issue's note used DEMO_PAIRS=50000) and prints, at every evaluation, the training seconds,
the samples seen and static zero-shot top-1 over the 112 ImageNet-like classes (chance 0.89%), mean Net
top-1 and mean retrieval R@1, each with its ratio to chance where there is one. Goal: static >= 40% and
Net >= 25% within 1,800 training seconds on the 2-core build machine; the last lines say when (or whether)
each was reached. Evaluation time is not counted as training time.

    python perf/bench_pretrain.py --data demo-out/shards --out /tmp/pretrain --threads 2   (the defaults: 640k samples, batch 256)
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.pretrain import PretrainConfig, pretrain  # noqa: E402

STATIC_GOAL, NET_GOAL, SECONDS_GOAL = 40.0, 25.0, 1800


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a tic-shards output of the sample web")
    ap.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    ap.add_argument("--model", default=PretrainConfig.model)
    ap.add_argument("--pool", default=PretrainConfig.pool)
    ap.add_argument("--budget-samples", type=int, default=PretrainConfig.budget_samples)
    ap.add_argument("--batch-size", type=int, default=PretrainConfig.batch_size)
    ap.add_argument("--lr", type=float, default=PretrainConfig.lr)
    ap.add_argument("--warmup", type=int, default=PretrainConfig.warmup, help="iterations of linear warm-up")
    ap.add_argument("--schedule", default=PretrainConfig.schedule, choices=("cosine", "const-cosine"))
    ap.add_argument("--eval-every", type=int, default=25_000)
    ap.add_argument("--workers", type=int, default=0, help="data-loading processes (0: in the training process, "
                    "so its CPU time counts everything)")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="bench-pretrain-") + "/run"
    cfg = PretrainConfig(data=args.data, out=out, model=args.model, pool=args.pool, budget_samples=args.budget_samples,
                         batch_size=args.batch_size, lr=args.lr, warmup=args.warmup, schedule=args.schedule, eval_every=args.eval_every, workers=args.workers,
                         threads=args.threads)
    m = pretrain(cfg, log=lambda line: print(line, file=sys.stderr, flush=True))
    n_static = len({int(c) for c in _static_classes(Path(args.data))}) or 112
    chance = 100.0 / n_static
    print(f"model {cfg.model}, pool {cfg.pool}, batch {cfg.batch_size}, lr {cfg.lr}, {m['samples_per_s']} samples/s; "
          f"static chance {chance:.2f}% ({n_static} classes)")
    print(f"{'train_s':>8} {'cpu_s':>8} {'samples':>8} {'static%':>8} {'x chance':>8} {'net%':>6} {'R@1%':>6}")
    for row in m["curve"]:
        s = row["static"]
        print(f"{row['train_seconds']:>8.0f} {row['cpu_seconds']:>8.0f} {row['samples']:>8} {_f(s):>8} "
              f"{_f(s / chance if s is not None else None):>8} {_f(row['net']):>6} {_f(row['retrieval_r1']):>6}")
    for name, goal in (("static", STATIC_GOAL), ("net", NET_GOAL)):
        hit = next((r for r in m["curve"] if (r[name] or 0) >= goal), None)
        print(f"{name} >= {goal:.0f}%: " + (f"reached at {hit['train_seconds']:.0f} s wall, "
                                              f"{hit['cpu_seconds']:.0f} CPU-s (goal <= {SECONDS_GOAL} s)"
                                              if hit else f"not reached (best {max((r[name] or 0) for r in m['curve']):.1f}%)"))
    print(json.dumps({"final": {k: m["curve"][-1][k] for k in ("static", "net", "retrieval_r1")},
                      "train_seconds": m["train_seconds"],
                      "cpu_seconds": m["cpu_seconds"], "samples_per_s": m["samples_per_s"]}))
    return 0


def _static_classes(shards: Path) -> list:
    import tarfile

    ids = []
    for tar in sorted((shards / "eval" / "static").glob("*.tar")):
        with tarfile.open(tar) as tf:
            for member in tf.getmembers():
                if member.name.endswith(".json"):
                    ids.append(json.loads(tf.extractfile(member).read())["class_id"])
    return ids


def _f(v) -> str:
    return "-" if v is None else f"{v:.1f}"


if __name__ == "__main__":
    sys.exit(main())
