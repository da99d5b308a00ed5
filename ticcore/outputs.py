"""The one file-writing pattern: build an output beside its final place, then rename it into place,
and the one check of who owns an output.

Readers never see a half-written output, an earlier output is only removed once the new one is in
place, and a failure cleans up what it wrote. Directories go through `staged_dir`, single files
through `atomic_write`. Spark jobs write through Hadoop file systems with the same pattern
(`ticcore.sparkio.staged_output`), with the same names and the same ownership marker.

Ownership. Every output directory a tool writes holds `OWNER_MARKER` (`.tic-clip-output`), a JSON
object naming the tool. A tool replaces or adds to an existing directory only when that marker names
it (`claim_output`): a user's own directory, or another tool's output, is refused, never deleted.
The marker is a dot file, so Spark, pyarrow and the SQL's `*.parquet` globs never read it.

Temporary names. An output OUT is built in `.OUT.tmp-HOST-PID` and an earlier OUT is moved to
`.OUT.old-HOST-PID` for the instant of the swap. Both are dot names beside OUT: the SQL globs read
only committed outputs (`[!.]*` never matches them), and a run that was killed leaves siblings whose
process no longer exists. The next run on OUT reclaims them (`stale_siblings`): a dead run's staging
is deleted, and a dead run's `.old-` is put back as OUT when OUT itself is missing (the kill fell
between the two renames), so a finished output is never lost. Siblings of live processes and of
other hosts are left alone.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Iterable, Iterator

from ticcore.errors import InputError

OWNER_MARKER = ".tic-clip-output"
_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"
_SIBLING = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)$")


# ------------------------------------------------------------------ strict JSON

def json_text(doc, **dump_args) -> str:
    """A JSON document as strict JSON (RFC 8259) with a final newline. JSON has no NaN or infinity
    (`json.dumps` would write `NaN`, which parsers other than Python's reject), so a non-finite float,
    such as the score of an evaluation set a step does not have, is written as null; readers that want
    NaN back convert with `float("nan") if v is None`. Inputs never carry them in: numeric flags and
    configs refuse nan and inf (`ticcore.validate`)."""
    dump_args.setdefault("indent", 1)
    return json.dumps(_finite_or_null(doc), allow_nan=False, **dump_args) + "\n"


def _finite_or_null(doc):
    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, dict):
        return {k: _finite_or_null(v) for k, v in doc.items()}
    if isinstance(doc, (list, tuple)):
        return [_finite_or_null(v) for v in doc]
    return doc


# ------------------------------------------------------------------ ownership

def owner_in_marker(text: str) -> str | None:
    """The tool an ownership marker's text names, or None (not a marker we wrote)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc.get("tool") if isinstance(doc, dict) else None


def owner_of(path: str | Path) -> str | None:
    """The tool named by `path`'s ownership marker, or None (no marker, or one we cannot read)."""
    try:
        return owner_in_marker((Path(path) / OWNER_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # (ValueError: text that is not UTF-8)
        return None


def is_our_output(path: str | Path, tool: str) -> bool:
    """Whether `path` is a directory whose ownership marker names `tool`."""
    return owner_of(path) == tool


def marker_text(tool: str) -> str:
    return json_text({"tool": tool, "marker_version": 1}, sort_keys=True)


def mark_output(path: str | Path, tool: str) -> None:
    """Write `tool`'s ownership marker into the directory `path` (for outputs built in place, such as a
    training run's directory; staged outputs get theirs from `staged_dir`)."""
    atomic_write(Path(path) / OWNER_MARKER, marker_text(tool))


def ownership_problem(exists: bool, is_dir: bool, empty: bool, owner: str | None, tool: str) -> str | None:
    """Why `tool` may not write an output with these properties, or None. The one rule, for local and
    Hadoop paths alike: a new path, an empty directory or a directory whose marker names `tool`."""
    if not exists:
        return None
    if not is_dir:
        return "exists and is a file, not a directory"
    if empty or owner == tool:
        return None
    if owner:
        return f"is a {owner} output, not a {tool} one; refusing to overwrite it (choose another path)"
    return (f"exists and was not written by {tool} (no {OWNER_MARKER} marker naming it); refusing to "
            f"overwrite it (choose another path, or remove it yourself)")


def claim_output(path: str | Path, tool: str) -> Path:
    """The one check before a tool writes an output directory: refuse (InputError, one line naming the
    path) a file, a directory another tool or the user wrote, or a place we cannot write to."""
    out = Path(path)
    exists = out.exists() or out.is_symlink()
    is_dir = out.is_dir()
    problem = ownership_problem(exists, is_dir, is_dir and not any(_visible_entries(out)), owner_of(out) if is_dir else None, tool)
    if problem:
        raise InputError(f"{path}: {problem}")
    parent = _nearest_existing(out.parent)
    if not parent.is_dir():
        raise InputError(f"{path}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK) or (exists and not os.access(out, os.W_OK | os.X_OK)):
        raise InputError(f"{path}: not writable (permission denied on {out if exists else parent})")
    return out


def _visible_entries(path: Path) -> Iterator[Path]:
    return (p for p in path.iterdir() if p.name != OWNER_MARKER)


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


# ------------------------------------------------------------------ temporary siblings

def sibling_name(final_name: str, kind: str, pid: int | None = None) -> str:
    """`.NAME.tmp-HOST-PID` (kind "tmp") or `.NAME.old-HOST-PID` (kind "old")."""
    return f".{final_name}.{kind}-{_HOST}-{os.getpid() if pid is None else pid}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def stale_siblings(final_name: str | None, names: Iterable[str]) -> list[tuple[str, str, str]]:
    """(name, kind, final name) of the temporary siblings among `names` that a dead process on this host
    left behind, for `final_name` only or for any name (None): kind is "tmp" (a staging file or
    directory) or "old" (an earlier output moved aside)."""
    out = []
    for name in names:
        m = _SIBLING.match(name)
        if (m and final_name in (None, m["name"]) and m["host"] == _HOST and int(m["pid"]) != os.getpid()
                and not _process_alive(int(m["pid"]))):
            out.append((name, m["kind"], m["name"]))
    return sorted(out)


def reclaim_stale(directory: Path, final_name: str | None = None) -> None:
    """Remove what killed runs left in `directory` (beside `final_name`, or beside anything); put back
    an earlier output that a kill left moved aside (the output missing, its `.old-` sibling present)."""
    directory = Path(directory)
    if not directory.is_dir():
        return
    for name, kind, final in stale_siblings(final_name, (p.name for p in directory.iterdir())):
        sibling, target = directory / name, directory / final
        if kind == "old" and not target.exists():
            os.replace(sibling, target)
        elif sibling.is_dir() and not sibling.is_symlink():
            shutil.rmtree(sibling, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                sibling.unlink()


def staging_path(out: Path) -> Path:
    """The temporary sibling an output is built in: `.NAME.tmp-HOST-PID` next to it."""
    return out.parent / sibling_name(out.name, "tmp")


def swap_into_place(staging: Path, out: Path) -> None:
    """Replace `out` by the finished `staging` directory (a sibling); the old one goes only after."""
    if out.exists():
        trash = out.parent / sibling_name(out.name, "old")
        os.replace(out, trash)
        os.replace(staging, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staging, out)


@contextlib.contextmanager
def staged_dir(out: Path, tool: str) -> Iterator[Path]:
    """Yield an empty staging directory for `tool`'s output `out` (checked with `claim_output` first);
    on success it gets `tool`'s marker and replaces `out`, on any failure it is removed and `out` is
    left as it was."""
    out = claim_output(out, tool)
    out.parent.mkdir(parents=True, exist_ok=True)
    reclaim_stale(out.parent, out.name)
    tmp = staging_path(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        (tmp / OWNER_MARKER).write_text(marker_text(tool), encoding="utf-8")
        swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def open_output_dir(out: Path, tool: str) -> Path:
    """For outputs that grow across runs (a training run, a download): claim `out`, create it with
    `tool`'s marker if new, reclaim what killed runs left inside it, and return it. Call only after the
    inputs are validated: creating the directory is the first thing written."""
    out = claim_output(out, tool)
    out.mkdir(parents=True, exist_ok=True)
    if owner_of(out) != tool:
        mark_output(out, tool)
    for directory in (out, *(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))):
        reclaim_stale(directory)  # temporary files that killed runs left inside it (one level down too)
    return out


# ------------------------------------------------------------------ single files

def atomic_write(path: Path, data: bytes | str, encoding: str = "utf-8") -> Path:
    """Write a whole file under a temporary name, then rename it over `path`. What a killed writer of
    `path` left is reclaimed first (a cache file is written outside any output directory, where nothing
    else would)."""
    path = Path(path)
    reclaim_stale(path.parent, path.name)
    tmp = path.with_name(sibling_name(path.name, "tmp"))  # two processes filling one cache file never share it
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
    reclaim_stale(path.parent, path.name)
    tmp_dir = path.parent / sibling_name(path.name, "tmp")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    try:
        yield tmp_dir / path.name
        os.replace(tmp_dir / path.name, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def write_json(path: Path, doc, **dump_args) -> Path:
    """A strict JSON document (`json_text`), atomically."""
    return atomic_write(path, json_text(doc, **dump_args))


def open_run_dir(out: Path, tool: str, config: dict, normalize=lambda doc: doc) -> Path:
    """A run directory that grows across runs (training, AnytimeCL), keyed on its `config.json`: a new
    or empty directory is claimed (marker, then config.json); one of ours with the same config is
    resumed; another config, or a directory that is not ours, is refused. `normalize` maps a stored
    config to the current form (keys added since the run started take their defaults). Call it only
    once every input has been validated: nothing is written before."""
    out = claim_output(out, tool)
    cfg_path = out / "config.json"
    resuming = is_our_output(out, tool) and cfg_path.is_file()
    if resuming:
        try:
            old = normalize(json.loads(cfg_path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as exc:
            raise InputError(f"{cfg_path}: not a config this {tool} can resume ({exc})") from None
        if old != config:
            diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            raise InputError(f"{out}: holds a run with another config (differs in {', '.join(diff)}); "
                             "use a new --out to start a different run")
    open_output_dir(out, tool)
    if not resuming:
        write_json(cfg_path, config, sort_keys=True)
    return out
