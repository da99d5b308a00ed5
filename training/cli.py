"""`tic-train`: continual CLIP training over TiC time steps, and its evaluation matrices.

    tic-train run --data SHARDS --out RUN --method cumulative-all --budget-samples 30000 [...]
    tic-train run --config run.yaml [--any-option VALUE]          (YAML keys = the option names, with _)
    tic-train metrics MATRIX.csv                                  (in_domain, backward, forward, *_rel as JSON)
    tic-train report RUN [RUN ...] [--out report.md]              (Table-2-style comparison + heatmaps)
    tic-train experiment --data SHARDS --out DIR --budget-samples N   (every method at the same budget)
    tic-train anytime --data SHARDS --checkpoint CKPT.pt --out RUN [...]   (AnytimeCL on the labelled stream)
    tic-train anytime-compare --data SHARDS --checkpoint CKPT.pt --out DIR  (AnytimeCL and its baselines)

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
    for name, text in (("anytime", "AnytimeCL: online learning on the time-ordered labelled stream"),
                       ("anytime-compare", "AnytimeCL and its baselines on the same stream, one summary table")):
        _add_anytime_options(sub.add_parser(name, help=text))
    return p


def _add_anytime_options(p: argparse.ArgumentParser) -> None:
    from .anytime.run import REPLAY_MODES, AnytimeConfig

    hints = typing.get_type_hints(AnytimeConfig)
    for f in dataclasses.fields(AnytimeConfig):
        hint = hints[f.name]
        if hint is bool:  # on by default: the flag switches the part off (an ablation)
            p.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false", default=None)
            continue
        base = typing.get_args(hint)[0] if typing.get_origin(hint) in (typing.Union, __import__("types").UnionType) else hint
        kw = {"type": base, "default": None, "required": f.default is dataclasses.MISSING}
        if f.name == "replay":
            kw["choices"] = REPLAY_MODES
        p.add_argument("--" + f.name.replace("_", "-"), **kw)


def anytime_config_from_args(args):
    from .anytime.run import AnytimeConfig

    return AnytimeConfig.from_dict({f.name: getattr(args, f.name) for f in dataclasses.fields(AnytimeConfig)
                                    if getattr(args, f.name, None) is not None})


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
    from .anytime.model import CheckpointError
    from .anytime.replay import ReplayStoreError
    from .anytime.run import AnytimeError
    from .anytime.stream import StreamError
    from .trainer import RunError

    try:
        if args.command == "anytime":
            from .anytime.run import run as run_anytime

            run_anytime(anytime_config_from_args(args))
            return 0
        if args.command == "anytime-compare":
            from .anytime.compare import compare

            cfg = anytime_config_from_args(args)
            print(compare(cfg, Path(cfg.out)))
            return 0
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
    except (ValueError, FileNotFoundError, BudgetError, DataError, RunError, CheckpointError, ReplayStoreError,
            AnytimeError, StreamError) as exc:
        print(f"tic-train: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
