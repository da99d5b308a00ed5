"""Kill tests (issue 24): every stage that writes output is killed with SIGKILL three times at seeded random
points, then rerun to completion. The output must equal an uninterrupted run's, an earlier output must
survive every kill, and no temporary sibling (`.NAME.tmp-HOST-PID`, `.NAME.old-HOST-PID`) may be left.

Each CLI runs as a real process in its own session, and the whole process group is killed (a Spark job's
JVM, img2dataset's and the download's forked workers die with the driver), as `kill -9` of a job would.

The kill points, per stage (seeded by TIC_KILL_SEED, default 24; the reference run gives the timings):
- early: before the stage's first temporary file exists (imports, JVM start, reading inputs);
- writing: a random moment after this run's staging directory appeared;
- commit: the instant the staging directory holds its ownership marker, which is written just before the
  rename into place, or a random moment in the last part of the run if that comes first (the marker's
  window is often shorter than the polling interval; outputs that grow in place have no marker).

Staged outputs are killed with the reference output in place (the rerun-to-update case, where a kill
between the two renames of the swap could lose it); outputs that grow across runs (training runs,
downloads) and the sample web start empty, since a finished one makes their rerun a no-op.
"""
from __future__ import annotations

import fnmatch
import importlib.util
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pyarrow.parquet as pq
import pytest

from ticcore.outputs import OWNER_MARKER

from .conftest import REPO, SPLIT_CFG

# Opt-in: three kills and two complete runs of every stage take longer than the CI budget allows on two
# cores (tic-splits alone runs five times). Run them with TIC_KILL_TESTS=1 scripts/test.sh tests/test_kill.py.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("TIC_KILL_TESTS") != "1", reason="opt-in: set TIC_KILL_TESTS=1")]

SEED = int(os.environ.get("TIC_KILL_SEED", "24"))
SIBLING = re.compile(r"^\..+\.(tmp|old)-[A-Za-z0-9_-]+-(\d+)$")
QUIET = lambda *_: None  # noqa: E731

_spec = importlib.util.spec_from_file_location("diff_outputs", REPO / "scripts" / "diff_outputs.py")
diff_outputs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(diff_outputs)

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
       "OMP_NUM_THREADS": "1", "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
SPARK = ["--master", "local[2]"]
TIMING_KEYS = {"latencies"}  # timing entries of torch states (JSON timing keys: diff_outputs' list)


# ------------------------------------------------------------------ the stages

@dataclass(frozen=True)
class Stage:
    argv: Callable[[Callable[[str], object], Path], list]  # (fixture getter, OUT) -> the CLI's arguments
    grows: bool = False           # an output that grows in place (open_output_dir / open_run_dir), not a staged swap
    unordered: tuple = ()         # globs of files whose writer orders rows or members nondeterministically
    skips_done: bool = False      # a rerun over its own finished output does nothing: kill runs that start empty
    timeout: float = 240


def _sample_web_args(fx, out):
    return ["sample_web.cli", "generate", "--out", out, "--pairs", 300, "--seed", 5, "--shard-rows", 150,
            "--imagenet-per-class", 1, "--no-big-page", "--quiet"]


def _download_args(fx, out):
    splits, web, server = fx("splits")[0], fx("sample_web"), fx("slow_server")
    return ["benchmarks.shards_cli", "download", splits, out, "--extra", web / "imagenet_like" / "images.parquet",
            "--allow-loopback", "--resolve", f"*=127.0.0.1:{server.port}", "--image-size", 32, "--processes", 2,
            "--threads", 16, "--timeout", 1, "--samples-per-shard", 400]


def _yfcc_args(fx, out):
    src = fx("small_sources")
    return ["benchmarks.source_cli", "yfcc", src / "yfcc" / "yfcc100m_dataset.tsv", out,
            "--subset", src / "yfcc" / "yfcc100m_subset_data.tsv", "--recipe", "ours", "--eval-size", 20,
            "--now", "2026-01-01",
            *SPARK]


def _train_args(fx, out):
    return ["training.cli", "run", "--data", fx("shards_dir"), "--out", out, "--method", "sequential",
            "--pool", "unfiltered", "--budget-samples", 96, "--batch-size", 16, "--warmup", 2, "--workers", 0,
            "--max-steps", 1, "--deterministic", "--checkpoint-every", 1, "--eval-batch-size", 64]


def _anytime_args(fx, out):
    return ["training.cli", "anytime", "--data", fx("shards_dir"), "--checkpoint", fx("tiny_checkpoint"),
            "--out", out, "--lr", "1e-3", "--eval-every", 20, "--max-examples", 60, "--holdout", 0.3]


STAGES = {
    "tic-sample-web": Stage(_sample_web_args, skips_done=True),
    "tic-extract": Stage(lambda fx, out: ["curation.extract_cli", fx("sample_web") / "warc.manifest", out]),
    "tic-timestamp-join": Stage(lambda fx, out: ["curation.timestamp_join", fx("tiny_world") / "warc.manifest",
                                                 fx("tiny_world") / "metadata", out, *SPARK],
                                unordered=("*.parquet",)),
    "tic-filter": Stage(lambda fx, out: ["curation.filter_job", "basic", fx("tiny_world") / "metadata", out, *SPARK],
                        unordered=("*.parquet",)),
    "tic-splits": Stage(lambda fx, out: ["benchmarks.cli", "build", out, "--timestamps", fx("timestamps_out")[0],
                                         "--metadata", fx("sample_web") / "metadata", "--filtered", fx("filtered_pools"),
                                         "--eval-size", SPLIT_CFG.eval_size, "--seeds", SPLIT_CFG.seeds,
                                         "--max-holdout-fraction", SPLIT_CFG.max_holdout_fraction,
                                         "--net-max-per-year", SPLIT_CFG.net_max_per_year,
                                         "--net-max-fraction", SPLIT_CFG.net_max_fraction, *SPARK],
                        unordered=("*.parquet",)),
    "tic-yfcc": Stage(_yfcc_args, unordered=("*.parquet",)),
    "tic-shards download": Stage(_download_args, grows=True, unordered=("*.tar", "*.parquet")),
    "tic-shards reshard": Stage(lambda fx, out: ["benchmarks.shards_cli", "reshard", fx("splits")[0],
                                                 fx("downloaded")[0], out, "--samples-per-shard", 100,
                                                 "--static", fx("sample_web") / "imagenet_like" / "images.parquet"]),
    "tic-analyze": Stage(lambda fx, out: ["benchmarks.analyze_cli", fx("splits")[0], out, "--pool", "unfiltered",
                                          "--per-step", 100, "--embeddings", fx("sample_web") / "metadata"]),
    "tic-train": Stage(_train_args, grows=True),
    "tic-train anytime": Stage(_anytime_args, grows=True, unordered=("state.pt",)),
}


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    """A 300-pair world for the Spark stages that need no session fixture: every run pays a JVM start, and
    five runs per stage over the 2,000-pair world cost minutes."""
    from sample_web.generate import generate
    from sample_web.world import SampleWebConfig

    out = tmp_path_factory.mktemp("kill-world") / "world"
    generate(SampleWebConfig(out=out, pairs=300, seed=5, shard_rows=150, imagenet_per_class=1, big_page=False),
             progress=False, log=QUIET)
    return out


@pytest.fixture(scope="module")
def small_sources(tmp_path_factory):
    from sample_web.sources import generate_sources

    root = tmp_path_factory.mktemp("kill-sources") / "src"
    generate_sources(root, yfcc=600, redcaps=50, seed=3, log=QUIET)
    return root


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """An untrained tic-tiny model in tic-train's checkpoint form: AnytimeCL only needs a model to start from."""
    import torch

    from training.models import create_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("kill-ckpt") / "step_2016.pt"
    torch.save({"model_name": "tic-tiny", "model": create_model("tic-tiny", "cpu")[0].state_dict()}, path)
    return path


# ------------------------------------------------------------------ running and killing

def siblings_under(root: Path) -> list[Path]:
    """Every temporary sibling left anywhere under `root` (names as ticcore.outputs.sibling_name makes them)."""
    return sorted(p for p in root.rglob(".*") if SIBLING.match(p.name))


def _own_siblings(parent: Path, pid: int, depth: int) -> list[Path]:
    """The temporary siblings process `pid` has made so far, up to `depth` levels below `parent`."""
    found, level = [], [parent]
    for _ in range(depth):
        nxt = []
        for d in level:
            try:
                entries = list(os.scandir(d))
            except OSError:
                continue
            for e in entries:
                m = SIBLING.match(e.name)
                if m and int(m.group(2)) == pid:
                    found.append(Path(e.path))
                elif e.is_dir(follow_symlinks=False) and not m:
                    nxt.append(Path(e.path))
        level = nxt
    return found


@dataclass
class Outcome:
    returncode: int
    seconds: float
    killed: bool
    first_temp: float | None = None  # seconds until this run's first temporary sibling appeared
    events: list = field(default_factory=list)


def run_stage(argv: list, parent: Path, log: Path, timeout: float, cache: Path, kill_when=None,
              depth: int = 1) -> Outcome:
    """Run `python -m argv` in its own session, with its caches (WordNet, caption embeddings) in `cache`;
    `kill_when(elapsed, own temporary siblings)` returning True kills its whole process group with SIGKILL."""
    with open(log, "ab") as fh:
        fh.write(f"\n=== {' '.join(map(str, argv))}\n".encode())
        fh.flush()
        proc = subprocess.Popen([sys.executable, "-m", *map(str, argv)], cwd=log.parent, stdout=fh,
                                env={**ENV, "TIC_CACHE_DIR": str(cache)},
                                stderr=subprocess.STDOUT, start_new_session=True)
    t0 = time.monotonic()
    first_temp = None
    try:
        while proc.poll() is None:
            elapsed = time.monotonic() - t0
            if elapsed > timeout:
                raise AssertionError(f"{argv[0]}: still running after {timeout} s (log: {log})")
            own = _own_siblings(parent, proc.pid, depth)
            if own and first_temp is None:
                first_temp = elapsed
            if kill_when is not None and kill_when(elapsed, own):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                _wait_group_gone(proc.pid)
                return Outcome(-9, elapsed, True, first_temp)
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return Outcome(proc.returncode, time.monotonic() - t0, False, first_temp)


def _wait_group_gone(pgid: int, limit: float = 10.0) -> None:
    """Until no process of the killed group is left running (its JVM, its workers): a survivor could still
    write into the output. Zombies waiting for a parent to reap them do not count."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        alive = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    stat = Path(f"/proc/{pid}/stat").read_text()
                except OSError:
                    continue
                fields = stat[stat.rindex(")") + 2:].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    alive.append(pid)
        if not alive:
            return
        time.sleep(0.02)
    raise AssertionError(f"processes {alive} of the killed group {pgid} are still running")


# ------------------------------------------------------------------ comparing outputs

def _table_rows(path: Path) -> list:
    t = pq.read_table(path)
    return [t.schema.to_string(show_schema_metadata=False),
            sorted(json.dumps(r, sort_keys=True, default=str) for r in t.to_pylist())]


def _tar_members(path: Path) -> list:
    with tarfile.open(path) as tf:
        return sorted((m.name, tf.extractfile(m).read()) for m in tf.getmembers() if m.isfile())


def _same_values(x, y) -> bool:
    import torch

    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(_same_values(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)):
        return isinstance(y, (list, tuple)) and len(x) == len(y) and all(map(_same_values, x, y))
    if torch.is_tensor(x):
        return torch.is_tensor(y) and torch.equal(x, y)
    return x == y or (x != x and y != y)  # NaN cells equal themselves


def _unordered_equal(a: Path, b: Path) -> bool:
    if a.suffix == ".pt":  # a torch state whose only run-to-run difference may be timings (AnytimeCL's latencies)
        import torch

        x, y = (torch.load(p, weights_only=False, map_location="cpu") for p in (a, b))
        drop = lambda d: {k: v for k, v in d.items() if k not in TIMING_KEYS} if isinstance(d, dict) else d  # noqa: E731
        return _same_values(drop(x), drop(y))
    if a.suffix == ".parquet":
        return _table_rows(a) == _table_rows(b)
    if a.suffix == ".tar":
        return _tar_members(a) == _tar_members(b)
    return False


def output_differences(ref: Path, out: Path, unordered=()) -> list[str]:
    """What differs between two output trees, as diff_outputs classes it (byte-identical, the same table,
    or JSON that differs only in timing keys), plus row and member sets for nondeterministic writers."""
    a = diff_outputs.tree(ref, diff_outputs.DEFAULT_SKIPPED)
    b = diff_outputs.tree(out, diff_outputs.DEFAULT_SKIPPED)
    problems = [f"only in the reference: {k}" for k in sorted(set(a) - set(b))]
    problems += [f"only in the rerun: {k}" for k in sorted(set(b) - set(a))]
    for rel in sorted(set(a) & set(b)):
        kind, detail = diff_outputs.compare(a[rel], b[rel], set(diff_outputs.DEFAULT_IGNORED_KEYS))
        if kind in ("identical", "same-table", "timing-only"):
            continue
        if any(fnmatch.fnmatch(Path(rel).name, g) for g in unordered) and _unordered_equal(a[rel], b[rel]):
            continue
        problems.append(f"{kind} {rel} ({detail})")
    if (ref / OWNER_MARKER).read_bytes() != (out / OWNER_MARKER).read_bytes():
        problems.append(f"{OWNER_MARKER} differs")
    return problems


# ------------------------------------------------------------------ the test

# Found by this test, not fixed yet: strict JSON (issue 24, item 7) refuses the NaN cells a training run's
# state.json and metrics.json hold for what was not evaluated (retrieval_covid before 2020, transfer of a
# one-step run), so `tic-train run` on the test world dies with "Out of range float values are not JSON
# compliant: nan: rows.retrieval_covid.steps[0][0]" before its kill test can start.


@pytest.mark.parametrize("name", STAGES)
def test_killed_three_times_then_rerun_gives_the_uninterrupted_output(name, request, tmp_path):
    stage = STAGES[name]
    parent = tmp_path / "parent"  # holds OUT and nothing else: whatever else appears there is a leftover
    parent.mkdir()
    out = parent / "out"
    argv = stage.argv(request.getfixturevalue, out)
    log = tmp_path / "run.log"
    depth = 3 if stage.grows else 1  # growing outputs write their temporary files inside OUT (one level down too)

    # the reference run fills a cache of its own: the killed runs start cold (a kill may hit a cache write), and
    # the output must not depend on what was cached
    ref_run = run_stage(argv, parent, log, stage.timeout, tmp_path / "reference-cache", depth=depth)
    assert ref_run.returncode == 0, log.read_text()[-3000:]
    assert ref_run.first_temp is not None or stage.grows, "the uninterrupted run never showed its staging directory"
    reference = tmp_path / "reference" / "out"
    reference.parent.mkdir()
    fresh = stage.grows or stage.skips_done
    if fresh:  # the same path as the kills' runs (a run directory records it), kept aside
        os.replace(out, reference)
    else:
        shutil.copytree(out, reference, symlinks=True)
    total, first = ref_run.seconds, ref_run.first_temp or ref_run.seconds * 0.3

    rng = random.Random(f"{SEED}-{name}")
    early = rng.uniform(0.3, 0.9) * first
    writing = rng.uniform(0.0, 0.8) * max(total - first, 0.05)
    late = first + rng.uniform(0.5, 0.95) * max(total - first, 0.05)

    def staged_marker(elapsed, own):  # the marker is written just before the swap; the window is short, hence `late`
        return elapsed >= late or any((p / OWNER_MARKER).exists() for p in own if ".tmp-" in p.name)

    plans = [("early", lambda elapsed, own: elapsed >= early)]
    seen = {}

    def after_staging(delay):
        def when(elapsed, own):
            if own and "t" not in seen:
                seen["t"] = elapsed
            return "t" in seen and elapsed >= seen["t"] + delay
        return when

    if stage.grows:
        # A grown output resumes: a run after a kill has less left to do than the reference had, so both
        # kills are timed from this run's own first temporary file, within the first half of what is left.
        plans += [("writing", after_staging(writing / 2)), ("commit", after_staging(rng.uniform(0.0, 0.5) * (total - first)))]
    else:
        plans += [("writing", after_staging(writing)), ("commit", staged_marker)]

    outcomes = []
    for point, when in plans:
        seen.clear()
        o = run_stage(argv, parent, log, stage.timeout, tmp_path / "cache", kill_when=when, depth=depth)
        assert o.killed or o.returncode == 0, f"{name}: a run after a kill failed ({o.returncode}):\n" + log.read_text()[-3000:]
        outcomes.append((point, o))
        if not fresh:
            # a kill never damages the earlier output: it is whole, or (killed between the swap's two renames)
            # moved aside as .out.old-HOST-PID, for the next run to put back
            if out.exists():
                assert output_differences(reference, out, stage.unordered) == [], f"{name}: killed at {point}"
            else:
                assert [p for p in parent.iterdir() if p.name.startswith(".out.old-")], \
                    f"{name}: killed at {point}, the earlier output is gone: {sorted(p.name for p in parent.iterdir())}"
    kills = [point for point, o in outcomes if o.killed]
    assert len(kills) >= 2, f"{name}: only {kills} of the kills hit a running process: " \
                            f"{[(p, round(o.seconds, 2)) for p, o in outcomes]} (reference {total:.1f} s)"

    final = run_stage(argv, parent, log, stage.timeout, tmp_path / "cache", depth=depth)
    assert final.returncode == 0, log.read_text()[-3000:]
    assert siblings_under(tmp_path) == []  # the output's parent, the output, and the caches
    assert sorted(p.name for p in parent.iterdir()) == ["out"]
    assert output_differences(reference, out, stage.unordered) == []
    if stage.grows:
        assert not list(out.rglob("_tmp")), "img2dataset's _tmp survived"
    print(f"{name}: reference {total:.1f} s (first temp at {first:.1f} s); "
          + ", ".join(f"{p} at {o.seconds:.1f} s" + ("" if o.killed else " (finished first)") for p, o in outcomes)
          + f"; rerun {final.seconds:.1f} s")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_files_a_killed_writer_left_in_a_cache_are_reclaimed(tmp_path, monkeypatch):
    """Caches live outside every output directory (TIC_CACHE_DIR), so no run's open_output_dir reclaims them:
    a kill inside atomic_write (the noun categories) or atomic_file (caption embeddings, named by content,
    so the same name may never be written again) used to leave its temporary sibling there for good."""
    import numpy as np

    from benchmarks.analysis import CaptionEmbeddings
    from ticcore.outputs import atomic_write, sibling_name

    dead = _dead_pid()
    (tmp_path / sibling_name("noun_categories_8.json", "tmp", dead)).write_text("[{\"synset\": ")  # cut short
    atomic_write(tmp_path / "noun_categories_8.json", "[]")
    cache = tmp_path / "caption_embeddings" / "m"
    (cache / sibling_name("0123abcd.npz", "tmp", dead)).mkdir(parents=True)
    np.savez(cache / "fedcba98.npz", hashes=np.array(["k"]), vectors=np.zeros((1, 384), np.float16))
    monkeypatch.setattr(CaptionEmbeddings, "_model_key", lambda self: "m")
    assert list(CaptionEmbeddings(cache=cache).known) == ["k"]
    assert siblings_under(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["caption_embeddings", "noun_categories_8.json"]
