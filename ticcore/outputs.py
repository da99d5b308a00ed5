"""The one file-writing pattern: build an output beside its final place, then rename it into place.

Readers never see a half-written output, an earlier output is only removed once the new one is in
place, and a failure cleans up what it wrote. Directories go through `staged_dir`, single files
through `atomic_write`. Spark jobs write through Hadoop file systems with the same pattern
(`sparkio.commit`).

A tool overwrites an existing directory only when it can tell it wrote it: `is_our_output` reads the
`tool` field of the directory's `stats.json`, which every tool writes.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterator

from ticcore.errors import InputError


def is_our_output(path: Path, tool: str) -> bool:
    """Whether `path` holds a `stats.json` written by `tool`."""
    try:
        return json.loads((Path(path) / "stats.json").read_text()).get("tool") == tool
    except (OSError, ValueError, AttributeError):
        return False


def check_output_dir(path: str | Path, tool: str) -> None:
    """Refuse an existing path that is a file, or a non-empty directory that `tool` did not write."""
    out = Path(path)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not is_our_output(out, tool))):
        raise InputError(f"{path}: exists and is not an earlier {tool} output; refusing to overwrite it")


def staging_path(out: Path) -> Path:
    """The temporary sibling an output is built in: `.NAME.tmp-PID` next to it."""
    return out.parent / f".{out.name}.tmp-{os.getpid()}"


def swap_into_place(staging: Path, out: Path) -> None:
    """Replace `out` by the finished `staging` directory (a sibling); the old one goes only after."""
    if out.exists():
        trash = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, trash)
        os.replace(staging, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staging, out)


@contextlib.contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """Yield an empty staging directory; on success it replaces `out`, on any failure it is removed."""
    out = Path(out)
    tmp = staging_path(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write(path: Path, data: bytes | str, encoding: str = "utf-8") -> Path:
    """Write a whole file under a temporary name, then rename it over `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")  # two processes filling one cache file never share it
    try:
        with open(tmp, "wb") as fh:
            fh.write(data.encode(encoding) if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """For writers that want a path (torch.save, savefig, np.savez, ParquetWriter): yield a path with the
    final file's own name inside a temporary sibling directory, and move the file over `path` after.

    The writer sees the final name, so what it derives from the name is the same as writing in place:
    torch.save names its zip's root folder after it (checkpoints stay byte-identical run to run),
    savefig and np.savez pick their format from its suffix.
    """
    path = Path(path)
    tmp_dir = path.parent / f".{path.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    try:
        yield tmp_dir / path.name
        os.replace(tmp_dir / path.name, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def write_json(path: Path, doc, **dump_args) -> Path:
    """A JSON document, atomically, with a final newline."""
    dump_args.setdefault("indent", 1)
    return atomic_write(path, json.dumps(doc, **dump_args) + "\n")
