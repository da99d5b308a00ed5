"""The house's layers (issue 22): enforced by import-linter, and the SQL files ship in the wheel."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_the_layer_contracts_hold():
    """training > benchmarks > curation > ticcore; nothing imports sample_web or perf (pyproject.toml)."""
    assert LINT_IMPORTS.exists(), "import-linter is not installed (scripts/bootstrap.sh installs the dev extra)"
    proc = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "3 kept, 0 broken" in proc.stdout


def test_a_broken_layer_is_caught(tmp_path):
    """The contracts bite: a copy of the tree where curation imports training fails lint-imports."""
    for pkg in ("ticcore", "curation", "benchmarks", "training", "sample_web", "perf"):
        subprocess.run(["cp", "-r", str(REPO / pkg), str(tmp_path / pkg)], check=True)
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    (tmp_path / "curation" / "_bad.py").write_text("import training.cli  # noqa\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode != 0
    assert "curation is not allowed to import training" in proc.stdout


@pytest.mark.slow
def test_an_installed_wheel_finds_its_sql_files(tmp_path):
    """`pip install .` ships sql/*.sql as package data: the README's SQL step runs from the wheel alone."""
    src = tmp_path / "src"  # a copy of the tracked files: building writes build/ beside the sources
    src.mkdir()
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for rel in filter(None, tracked.decode().split("\0")):
        source = REPO / rel
        if source.is_file() and not source.is_symlink():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes(source.read_bytes())
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(src)], check=True, capture_output=True)
    wheel = next(wheels.glob("tic_clip-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "ticcore/sql/timestamps.sql" in names and "training/model_configs/tic-tiny.json" in names
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    data = tmp_path / "data"
    data.mkdir()
    (data / "world.json").write_text("{}")
    work = tmp_path / "elsewhere"  # not the checkout: only the installed copy can be imported
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = subprocess.run([sys.executable, "-c", "import ticcore.sqlfiles as s; print(s.__file__); "
                            "print(sorted(s.load('timestamps.sql')))"],
                           cwd=work, env=env, capture_output=True, text=True, check=True)
    assert probe.stdout.startswith(str(site)), probe.stdout
    assert "pairs_per_year" in probe.stdout
    # the README demo's step: `tic-sql sql/timestamps.sql --var root=OUT --run pairs_per_year` (here via -m)
    out = subprocess.run([sys.executable, "-m", "ticcore.sqlfiles", "sql/timestamps.sql", "--list"],
                         cwd=work, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "pairs_per_year" in out.stdout
