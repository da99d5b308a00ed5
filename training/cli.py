"""`tic-train`: continual CLIP training over TiC time steps.

Only the command-line surface exists so far; the trainer lands with issue #8.
"""
from __future__ import annotations

import argparse
import sys

METHODS = ("sequential", "restart", "cumulative-all", "cumulative-exp", "cumulative-equal", "oracle", "patching",
           "lwf", "ewc")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tic-train",
        description="Train an open_clip model continually over the time steps written by the shard stage, "
                    "evaluate it after every step on every year, and write the T x T matrix and its summaries.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="train one method over all steps")
    run.add_argument("--method", choices=METHODS, required=True)
    run.add_argument("--data", required=True, help="directory of step shards (tic-shards output)")
    run.add_argument("--out", required=True, help="run directory")
    metrics = sub.add_parser("metrics", help="in-domain / backward / forward transfer of a matrix CSV")
    metrics.add_argument("matrix_csv")
    report = sub.add_parser("report", help="Table-2-style comparison of several runs")
    report.add_argument("runs", nargs="+")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    print(f"tic-train {args.command}: not implemented yet (the trainer is issue #8)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
