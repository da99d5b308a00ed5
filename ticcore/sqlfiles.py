"""Named DuckDB queries kept in `sql/*.sql` files (aiosql/dbt style).

A file holds queries, each under a header line `-- name: some_query`, optionally followed by
`-- ` comment lines that describe it. Parameters are DuckDB variables read with
`getvariable('name')`, so the same text runs in the duckdb CLI (`SET VARIABLE root = '...';`
then the query) and from Python (`run(path, "some_query", root="...")`).

    tic-sql sql/timestamps.sql --list
    tic-sql sql/timestamps.sql --var root=OUT --run pairs_per_year

The files ship with the package (ticcore/sql, linked as sql/ in a checkout): a name that is not an
existing path (`timestamps.sql`, `sql/timestamps.sql`, `timestamps`) is looked up there, so the same
commands work from an installed wheel, in any directory.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ticcore.validate import ArgumentParser, number
from ticcore.errors import report_user_errors
from ticcore.pkgdata import package_path

SQL_DIR = package_path("ticcore", "sql")  # shipped as package data; `sql/` in a checkout links here
_HEADER = re.compile(r"^--\s*name:\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")


@dataclass(frozen=True)
class NamedQuery:
    name: str
    doc: str
    sql: str


def load(path: str | Path) -> dict[str, NamedQuery]:
    path = Path(path)
    if not path.is_absolute() and not path.exists():
        path = SQL_DIR / (path.name if path.suffix == ".sql" else path.name + ".sql")
    queries: dict[str, NamedQuery] = {}
    name, doc, body = None, [], []

    def flush():
        if name is not None:
            sql = "\n".join(body).strip().rstrip(";").strip()
            if not sql:
                raise ValueError(f"{path}: query {name!r} has no SQL")
            queries[name] = NamedQuery(name, " ".join(doc).strip(), sql)

    for line in path.read_text(encoding="utf-8").splitlines():
        m = _HEADER.match(line.strip())
        if m:
            flush()
            name, doc, body = m.group(1), [], []
            if name in queries:
                raise ValueError(f"{path}: query {name!r} defined twice")
        elif name is not None and not body and line.startswith("--"):
            doc.append(line.lstrip("-").strip())
        elif name is not None:
            body.append(line)
    flush()
    return queries


def connect(con=None, **variables):
    con = con or duckdb.connect()
    for key, value in variables.items():
        con.execute(f"SET VARIABLE {key} = ?", [value])
    return con


def run(path: str | Path, name: str, con=None, **variables):
    """Run one named query; returns a DuckDB relation (call .df(), .fetchall(), .show())."""
    queries = load(path)
    if name not in queries:
        raise KeyError(f"{path}: no query named {name!r} (have: {', '.join(sorted(queries))})")
    return connect(con, **variables).sql(queries[name].sql)


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="tic-sql", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file")
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="set a DuckDB variable")
    p.add_argument("--run", action="append", default=[], metavar="QUERY", help="run a named query (repeatable)")
    p.add_argument("--list", action="store_true", help="list the file's queries")
    args = p.parse_args(argv)
    return report_user_errors("tic-sql", lambda: _run_cli(p, args), also=(OSError, duckdb.Error))


def _run_cli(p: argparse.ArgumentParser, args) -> int:
    queries = load(args.file)
    if args.list or not args.run:
        for q in queries.values():
            print(f"{q.name}: {q.doc}")
        return 0
    variables = {}
    for item in args.var:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--var expects NAME=VALUE, got {item!r}")
        variables[key] = value
    con = connect(None, **variables)
    for name in args.run:
        if name not in queries:
            print(f"error: {args.file}: no query named {name!r}", file=sys.stderr)
            return 2
        print(f"-- {name}: {queries[name].doc}")
        con.sql(queries[name].sql).show(max_rows=200, max_width=200)
    return 0


if __name__ == "__main__":
    sys.exit(main())
