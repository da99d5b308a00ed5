"""`tic-train`: continual CLIP training over TiC time steps, and its evaluation matrices.

    tic-train run --data SHARDS --out RUN --method cumulative-all --budget-samples 30000 [...]
    tic-train run --config run.yaml [--any-option VALUE]          (YAML keys = the option names, with _)
    tic-train metrics MATRIX.csv                                  (in_domain, backward, forward, *_rel as JSON)
    tic-train report RUN [RUN ...] [--out report.md]              (Table-2-style comparison + heatmaps)
    tic-train experiment --data SHARDS --out DIR --budget-samples N   (every method at the same budget)
    tic-train pretrain --data SHARDS --out DIR [--budget-samples N]   (an original model: DIR/original.pt, curve.csv)
    tic-train run ... --init DIR/original.pt                      (a method warm-started from that original)
    tic-train anytime --data SHARDS --checkpoint CKPT.pt --out RUN [...]   (AnytimeCL on the labelled stream)
    tic-train anytime-compare --data SHARDS --checkpoint CKPT.pt --out DIR  (AnytimeCL and its baselines)
    tic-train embed --checkpoint CKPT.pt --data SHARDS --pool POOL --out DIR [--uids PARQUET]
                                                                  (image embeddings, DataComp-metadata style)

Multi-GPU: `torchrun --nproc-per-node K -m training.cli run ...` (DDP; gloo on CPU).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
from pathlib import Path

from ticcore.validate import ArgumentParser, number
from ticcore.errors import InputError, report_user_errors

from .anytime.compare import compare
from .anytime.run import REPLAY_MODES, AnytimeConfig
from .anytime.run import run as run_anytime
from .config import METHODS, TrainConfig
from .embed import embed
from .pretrain import PretrainConfig, pretrain
from .metrics import matrix_summary, read_matrix_csv, summarize
from .report import write_report
from .trainer import run

TOOL = "tic-train"


def _base_type(hint):
    """X of `X | None` (the type an option's value is converted to)."""
    return typing.get_args(hint)[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) else hint


def _add_config_options(p: argparse.ArgumentParser) -> None:
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        if hint is bool:
            p.add_argument(flag, action="store_true", default=None)
        elif f.name in ("patching_alphas", "steps_filter"):
            p.add_argument(flag, nargs="+", default=None, type=number(float, 0, 1) if f.name == "patching_alphas" else str)
        else:
            base = _base_type(hint)
            kw = {"type": number(base) if base in (int, float) else str, "default": None}
            if f.name == "method":
                kw["choices"] = METHODS
            p.add_argument(flag, **kw)


def _add_anytime_options(p: argparse.ArgumentParser) -> None:
    hints = typing.get_type_hints(AnytimeConfig)
    for f in dataclasses.fields(AnytimeConfig):
        hint = hints[f.name]
        if hint is bool:  # on by default: the flag switches the part off (an ablation)
            p.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false", default=None)
            continue
        base = _base_type(hint)
        kw = {"type": number(base) if base in (int, float) else base, "default": None,
              "required": f.default is dataclasses.MISSING}
        if f.name == "replay":
            kw["choices"] = REPLAY_MODES
        p.add_argument("--" + f.name.replace("_", "-"), **kw)


def _add_pretrain_options(p: argparse.ArgumentParser) -> None:
    hints = typing.get_type_hints(PretrainConfig)
    for f in dataclasses.fields(PretrainConfig):
        base = _base_type(hints[f.name])
        if f.name == "steps_filter":
            p.add_argument("--steps-filter", nargs="+", default=None, type=str)
            continue
        p.add_argument("--" + f.name.replace("_", "-"), type=number(base) if base in (int, float) else base,
                       default=None, required=f.default is dataclasses.MISSING)


def _add_embed_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a tic-train checkpoint (checkpoints/step_*.pt)")
    p.add_argument("--data", required=True, help="a tic-shards output")
    p.add_argument("--pool", required=True)
    p.add_argument("--out", required=True, help="the embeddings directory (00000.parquet, 00000.npz, stats.json)")
    p.add_argument("--uids", help="a parquet file whose uid column lists the images to embed (default: all)")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=TOOL, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    run_p = sub.add_parser("run", help="train one method over all steps")
    run_p.add_argument("--config", help="YAML file with any of the options below")
    _add_config_options(run_p)
    metrics = sub.add_parser("metrics", help="in-domain / backward / forward transfer of a matrix CSV")
    metrics.add_argument("matrix_csv")
    metrics.add_argument("--clip-benchmark-names", action="store_true",
                         help="also name the matrix's metric as clip_benchmark does (retrieval matrices: mean_recall@1)")
    report = sub.add_parser("report", help="Table-2-style comparison of several runs")
    report.add_argument("runs", nargs="+")
    report.add_argument("--out", default="report.md")
    exp = sub.add_parser("experiment", help="every method on the same steps at an equal budget, then a report")
    exp.add_argument("--data", required=True)
    exp.add_argument("--out", required=True)
    exp.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    exp.add_argument("--config", help="YAML with shared options (budget, model, batch size, ...)")
    exp.add_argument("--budget-samples", type=number(int, 1))
    exp.add_argument("--budget-macs", type=number(float, 0, lo_open=True))
    exp.add_argument("--pool", default=None)
    exp.add_argument("--seed", type=number(int, 0), default=None)
    exp.add_argument("--seeds", type=number(int, 0), nargs="+", default=None,
                     help="run every method once per seed (OUT/seed-S/METHOD); the report gives each method's "
                          "mean over the seeds and their spread (max - min)")
    exp.add_argument("--init", default=None, help="warm-start every method from this checkpoint (run --init)")
    _add_pretrain_options(sub.add_parser("pretrain", help="an original model trained on every step at once "
                                                          "(AnytimeCL's starting point, a warm start for run --init)"))
    for name, text in (("anytime", "AnytimeCL: online learning on the time-ordered labelled stream"),
                       ("anytime-compare", "AnytimeCL and its baselines on the same stream, one summary table")):
        _add_anytime_options(sub.add_parser(name, help=text))
    _add_embed_options(sub.add_parser("embed", help="a checkpoint's image embeddings of a pool's training images"))
    return p


def anytime_config_from_args(args) -> AnytimeConfig:
    return AnytimeConfig.from_dict({f.name: getattr(args, f.name) for f in dataclasses.fields(AnytimeConfig)
                                    if getattr(args, f.name, None) is not None})


def config_from_args(args) -> TrainConfig:
    overrides = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(TrainConfig)}
    if args.config:
        return TrainConfig.from_yaml(args.config, overrides)
    return TrainConfig.from_dict({k: v for k, v in overrides.items() if v is not None})


def _experiment(args) -> None:
    if args.seeds and args.seed is not None:
        raise InputError("give --seed or --seeds, not both")
    shared = {"data": args.data, "budget_samples": args.budget_samples, "budget_macs": args.budget_macs,
              "pool": args.pool, "init": args.init}
    # one seed keeps the flat layout OUT/METHOD; several nest it, OUT/seed-S/METHOD
    runs = ([(args.seed, Path(args.out))] if not args.seeds
            else [(s, Path(args.out) / f"seed-{s}") for s in dict.fromkeys(args.seeds)])
    configs = []
    for seed, base in runs:  # every config is built (and validated) before the first run starts
        for method in args.methods:
            over = {**shared, "seed": seed, "method": method, "out": str(base / method)}
            configs.append(TrainConfig.from_yaml(args.config, over) if args.config
                           else TrainConfig.from_dict({k: v for k, v in over.items() if v is not None}))
    for cfg in configs:
        run(cfg)
    print(write_report([cfg.out for cfg in configs], Path(args.out) / "report.md"))


def _compare(args) -> None:
    cfg = anytime_config_from_args(args)
    print(compare(cfg, Path(cfg.out)))


COMMANDS = {
    "run": lambda args: run(config_from_args(args)),
    "metrics": lambda args: print(json.dumps(matrix_summary(args.matrix_csv, args.clip_benchmark_names), indent=1)),
    "report": lambda args: print(write_report(args.runs, Path(args.out))),
    "experiment": _experiment,
    "pretrain": lambda args: pretrain(PretrainConfig.from_dict(
        {f.name: getattr(args, f.name) for f in dataclasses.fields(PretrainConfig) if getattr(args, f.name) is not None})),
    "anytime": lambda args: run_anytime(anytime_config_from_args(args)),
    "anytime-compare": _compare,
    "embed": lambda args: embed(args.checkpoint, args.data, args.pool, args.out, args.uids),
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    def body() -> int:
        COMMANDS[args.command](args)
        return 0

    # a missing file named on the command line (a matrix CSV, a run's metrics.json) is the user's to fix too
    return report_user_errors(TOOL, body, also=(FileNotFoundError,))


if __name__ == "__main__":
    sys.exit(main())
