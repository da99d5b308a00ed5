"""The one output pattern (ticcore.outputs): ownership markers, deterministic temporary names that the next
run reclaims, strict JSON, and a failed check that leaves the earlier output in place (issue 24, items 1-3, 7)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ticcore.errors import AccountingError, InputError, report_user_errors, require_accounting
from ticcore.outputs import (OWNER_MARKER, claim_output, json_text, open_output_dir, open_run_dir, owner_of,
                             reclaim_stale, sibling_name, staged_dir, write_json)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_foreign_directory_is_refused_and_left_alone(tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("precious")
    (user / "stats.json").write_text('{"tool": "tic-extract"}')  # a stats.json is no proof of ownership
    with pytest.raises(InputError, match=f"{user}: exists and was not written by tic-extract"):
        with staged_dir(user, "tic-extract") as tmp:
            (tmp / "x").write_text("new")
    assert (user / "notes.txt").read_text() == "precious" and sorted(p.name for p in user.iterdir()) == ["notes.txt", "stats.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_another_tools_output_is_refused_by_name(tmp_path):
    out = tmp_path / "out"
    with staged_dir(out, "tic-filter") as tmp:
        (tmp / "a").write_text("1")
    assert owner_of(out) == "tic-filter"
    with pytest.raises(InputError, match="is a tic-filter output, not a tic-shards reshard one"):
        claim_output(out, "tic-shards reshard")
    with staged_dir(out, "tic-filter") as tmp:  # its own: replaced whole
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == [OWNER_MARKER, "b"]


def test_files_empty_dirs_and_unwritable_places(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file, not a directory"):
        claim_output(tmp_path / "file", "t")
    with pytest.raises(InputError, match="is a file, not a directory"):
        claim_output(tmp_path / "file" / "below", "t")
    (tmp_path / "empty").mkdir()
    claim_output(tmp_path / "empty", "t")  # an empty directory is free to take
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        with pytest.raises(InputError, match="not writable"):
            claim_output(ro / "out", "t")


def test_a_failure_leaves_the_earlier_output_and_no_temporary(tmp_path):
    out = tmp_path / "out"
    with staged_dir(out, "t") as tmp:
        (tmp / "good").write_text("1")
    with pytest.raises(AccountingError):
        with staged_dir(out, "t") as tmp:
            (tmp / "bad").write_text("2")
            require_accounting({"accounting": {"ok": False, "errors": ["1 + 1 != 3"]}}, out)
    assert sorted(p.name for p in out.iterdir()) == [OWNER_MARKER, "good"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_accounting_error_is_one_line_and_exit_1(capsys):
    def body():
        require_accounting({"accounting": {"ok": False, "errors": ["a", "b"]}}, "OUT")
    assert report_user_errors("tic-x", body) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "OUT: accounting FAILED: a; b; nothing was written" in err


def test_temporary_names_are_hidden_and_deterministic():
    assert sibling_name("basic", "tmp") == sibling_name("basic", "tmp")
    assert sibling_name("basic", "tmp").startswith(".basic.tmp-") and sibling_name("basic", "tmp").endswith(f"-{os.getpid()}")


def test_what_a_killed_run_left_is_reclaimed(tmp_path):
    dead, live = _dead_pid(), os.getpid()
    out = tmp_path / "basic"
    (tmp_path / sibling_name("basic", "tmp", dead)).mkdir()          # a killed run's staging
    (tmp_path / sibling_name("basic", "old", dead)).mkdir()          # a kill between the two renames
    (tmp_path / sibling_name("basic", "old", dead) / "kept").write_text("the earlier output")
    (tmp_path / sibling_name("other", "tmp", dead)).mkdir()          # another output's: not ours to touch
    parent_pid = os.getppid()
    (tmp_path / sibling_name("basic", "tmp", parent_pid)).mkdir()    # a live process's: left alone
    reclaim_stale(tmp_path, "basic")
    assert (out / "kept").read_text() == "the earlier output"        # put back, not lost
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["basic", sibling_name("other", "tmp", dead), sibling_name("basic", "tmp", parent_pid)])
    assert live == os.getpid()


def test_sql_globs_skip_temporary_siblings(tmp_path):
    import duckdb
    for name in ("basic", sibling_name("basic", "tmp", 1), sibling_name("basic", "old", 2)):
        (tmp_path / name / "kept" / "first_seen_year=2014").mkdir(parents=True)
        duckdb.sql(f"COPY (SELECT 'u' AS uid) TO '{tmp_path / name / 'kept' / 'first_seen_year=2014' / 'p.parquet'}'")
    n = duckdb.sql(f"SELECT count(*) FROM read_parquet('{tmp_path}/[!._]*/kept/[!._]*/*.parquet')").fetchall()[0][0]
    assert n == 1
    # ... and every directory wildcard of the named queries is written that way
    from ticcore.pkgdata import package_path
    for sql in sorted(package_path("ticcore", "sql").glob("*.sql")):
        assert "/*/" not in sql.read_text(), f"{sql.name}: a directory glob that would read temporary siblings"


def test_strict_json_writes_no_nan(tmp_path):
    text = json_text({"config": {"threshold": float("nan")}, "m": [[1.5, float("inf")]], "n": (float("-inf"),)})
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict constant {c}")) == \
        {"config": {"threshold": None}, "m": [[1.5, None]], "n": [None]}
    write_json(tmp_path / "s.json", {"x": float("nan")})
    assert (tmp_path / "s.json").read_text() == '{\n "x": null\n}\n'


def test_nan_flags_are_refused_with_one_line():
    from ticcore.validate import ArgumentParser, number
    p = ArgumentParser(prog="tic-filter")
    p.add_argument("--threshold", type=number(float))
    for bad in ("nan", "inf", "-inf", "1e999", "x"):
        with pytest.raises(SystemExit) as exc:
            p.parse_args(["--threshold", bad])
        assert exc.value.code == 2


def test_run_dirs_claim_only_after_validation_and_resume_by_config(tmp_path):
    run = tmp_path / "run"
    open_run_dir(run, "tic-train", {"lr": 1})
    assert json.loads((run / "config.json").read_text()) == {"lr": 1} and owner_of(run) == "tic-train"
    open_run_dir(run, "tic-train", {"lr": 1})  # resumed
    with pytest.raises(InputError, match="another config"):
        open_run_dir(run, "tic-train", {"lr": 2})
    with pytest.raises(InputError, match="is a tic-train output"):
        open_run_dir(run, "tic-train anytime", {"lr": 1})
    grown = open_output_dir(tmp_path / "dl", "tic-shards download")
    (grown / sibling_name("status.parquet", "tmp", _dead_pid())).write_text("half")
    open_output_dir(grown, "tic-shards download")
    assert sorted(p.name for p in grown.iterdir()) == [OWNER_MARKER]
