"""Local-filesystem output helpers shared by the single-process tools (Spark jobs use sparkio.commit)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path


def swap_into_place(staging: Path, out: Path) -> None:
    """Replace `out` by the finished `staging` directory (a sibling): readers never see a half-written
    output, and an old output is only removed once the new one is in place."""
    if out.exists():
        trash = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, trash)
        os.replace(staging, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staging, out)
