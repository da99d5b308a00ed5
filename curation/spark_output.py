"""A Spark job's output directory, built beside its final place and moved in when complete.

The Hadoop-path counterpart of `ticcore.outputs.staged_dir`, made of `ticcore.sparkio`'s
`temp_sibling`, `commit` and `delete` (its natural home is beside them, so that the benchmarks
jobs can use it too).
"""
from __future__ import annotations

import contextlib
import json
from typing import Iterator

from ticcore.sparkio import commit, delete, temp_sibling, write_text


@contextlib.contextmanager
def staged_output(spark, final: str) -> Iterator[str]:
    """Yield a temporary sibling of `final`; on success it replaces `final` (`commit`), on any
    failure it is deleted."""
    tmp = temp_sibling(final)
    try:
        yield tmp
        commit(spark, tmp, final)
    except BaseException:
        delete(spark, tmp)
        raise


def write_stats(spark, out_dir: str, stats: dict) -> None:
    """OUT_DIR/stats.json: sorted keys, indent 1, a final newline."""
    write_text(spark, out_dir + "/stats.json", json.dumps(stats, indent=1, sort_keys=True) + "\n")
