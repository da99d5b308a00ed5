"""Console entry points of the curation stages that are still to be built.

Each prints its intended usage; running one reports that the stage does not exist yet.
"""
from __future__ import annotations

import argparse
import sys


def _pending(prog: str, description: str, usage_args: list[tuple[str, str]], issue: int, argv):
    p = argparse.ArgumentParser(prog=prog, description=description)
    for name, help_text in usage_args:
        p.add_argument(name, help=help_text)
    p.parse_args(argv)
    print(f"{prog}: not implemented yet (issue #{issue})", file=sys.stderr)
    return 2


def filter_main(argv=None) -> int:
    return _pending("tic-filter", "DataComp basic / CLIP-score / image-based / bestpool filters.",
                    [("filter", "basic, clip, image or bestpool"), ("input_dir", "metadata directory"),
                     ("out_dir", "output directory")], 5, argv)
