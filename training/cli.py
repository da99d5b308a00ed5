"""`tic-train`: continual CLIP training over TiC time steps, and its evaluation matrices.

    tic-train run --data SHARDS --out RUN --method cumulative-all --budget-samples 30000 [...]
    tic-train run --config run.yaml [--any-option VALUE]          (YAML keys = the option names, with _)
    tic-train metrics MATRIX.csv                                  (in_domain, backward, forward, *_rel as JSON)
    tic-train report RUN [RUN ...] [--out report.md]              (Table-2-style comparison + heatmaps)
    tic-train experiment --data SHARDS --out DIR --budget-samples N   (every method at the same budget)

Multi-GPU: `torchrun --nproc-per-node K -m training.cli run ...` (DDP; gloo on CPU).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path

from .config import METHODS, TrainConfig


def _add_config_options(p: argparse.ArgumentParser) -> None:
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        if hint is bool:
            p.add_argument(flag, action="store_true", default=None)
        elif f.name in ("patching_alphas", "steps_filter"):
            p.add_argument(flag, nargs="+", default=None, type=float if f.name == "patching_alphas" else str)
        else:
            base = typing.get_args(hint)[0] if typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)) else hint
            kw = {"type": base if base in (int, float, str) else str, "default": None}
            if f.name == "method":
                kw["choices"] = METHODS
            p.add_argument(flag, **kw)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tic-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="train one method over all steps")
    run.add_argument("--config", help="YAML file with any of the options below")
    _add_config_options(run)
    metrics = sub.add_parser("metrics", help="in-domain / backward / forward transfer of a matrix CSV")
    metrics.add_argument("matrix_csv")
    report = sub.add_parser("report", help="Table-2-style comparison of several runs")
    report.add_argument("runs", nargs="+")
    report.add_argument("--out", default="report.md")
    exp = sub.add_parser("experiment", help="every method on the same steps at an equal budget, then a report")
    exp.add_argument("--data", required=True)
    exp.add_argument("--out", required=True)
    exp.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    exp.add_argument("--config", help="YAML with shared options (budget, model, batch size, ...)")
    exp.add_argument("--budget-samples", type=int)
    exp.add_argument("--budget-macs", type=float)
    exp.add_argument("--pool", default=None)
    exp.add_argument("--seed", type=int, default=None)
    return p


def config_from_args(args) -> TrainConfig:
    overrides = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(TrainConfig)}
    if args.config:
        return TrainConfig.from_yaml(args.config, overrides)
    return TrainConfig.from_dict({k: v for k, v in overrides.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from .budget import BudgetError
    from .data import DataError
    from .trainer import RunError

    try:
        if args.command == "metrics":
            from .metrics import read_matrix_csv, summarize

            print(json.dumps(summarize(read_matrix_csv(args.matrix_csv)), indent=1))
            return 0
        if args.command == "report":
            from .report import write_report

            print(write_report(args.runs, Path(args.out)))
            return 0
        if args.command == "run":
            from .trainer import run

            run(config_from_args(args))
            return 0
        if args.command == "experiment":
            from .report import write_report
            from .trainer import run

            shared = {"data": args.data, "budget_samples": args.budget_samples, "budget_macs": args.budget_macs,
                      "pool": args.pool, "seed": args.seed}
            dirs = []
            for method in args.methods:
                over = {**shared, "method": method, "out": str(Path(args.out) / method)}
                cfg = (TrainConfig.from_yaml(args.config, over) if args.config
                       else TrainConfig.from_dict({k: v for k, v in over.items() if v is not None}))
                run(cfg)
                dirs.append(cfg.out)
            print(write_report(dirs, Path(args.out) / "report.md"))
            return 0
    except (ValueError, FileNotFoundError, BudgetError, DataError, RunError) as exc:
        print(f"tic-train: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
