"""The checks every tool applies where data and numbers enter: uids, column types, numeric flags.

uids. A uid becomes a tar member name (`tic-shards reshard` writes `UID.jpg`, `UID.txt`, ...), a file
name and a join key, so a pool's uids are checked where the pool is read and a bad one is never passed
on:
- a DataComp pool's uids must be 32 lowercase hex digits (`DATACOMP_UID`): DataComp's `uid` is a
  128-bit hash written as hex; its subset files hold each uid as two uint64 taken from the first and
  the last 16 hex digits, `(int(uid[:16], 16), int(uid[16:32], 16))` in a `np.dtype("u8,u8")` array
  (mlfoundations/datacomp, `baselines/utils.py`), which only round-trips for exactly 32 hex digits;
  lowercase is what its metadata holds, and the one spelling keeps joins exact;
- any other uid (YFCC photo ids, RedCaps image ids, what a user brings) must be a safe member name
  (`SAFE_UID`): 1-64 of [A-Za-z0-9_-], starting with a letter or digit. No dot (webdataset splits a
  member name at its first dot into key and extension), no slash, NUL or `..` (Python's tarfile and
  webdataset would write or read outside the sample), and a length that fits ustar's 100-byte names
  together with the extension.
A pool whose uids break the rule, or repeat, is refused with the first few named (`uid_problems`,
`spark_uid_problems`): one line, exit 2. Sources whose records are parsed one by one (tic-yfcc,
tic-redcaps) drop such a record with the reason `bad_uid` instead, as they drop every other bad record.

Numbers. Every numeric flag goes through `number()` (an argparse type): it must parse, be finite
(`nan` and `inf` are refused) and lie in its range. Configs read from YAML/JSON go through
`check_number`.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import re
import types
import typing
from typing import Iterable

from ticcore.errors import InputError

DATACOMP_UID = re.compile(r"[0-9a-f]{32}")
SAFE_UID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
UID_RULES = {"datacomp": (DATACOMP_UID, "32 lowercase hex digits, as DataComp's uids are"),
             "safe": (SAFE_UID, "1-64 of A-Z a-z 0-9 _ - (starting with a letter or digit)")}
SHOWN = 3  # how many offending values an error message names


def uid_ok(uid, rule: str = "safe") -> bool:
    return isinstance(uid, str) and UID_RULES[rule][0].fullmatch(uid) is not None


def _show(values: Iterable) -> str:
    return ", ".join(repr(v if not isinstance(v, str) or len(v) <= 70 else v[:67] + "...") for v in values)


def uid_problems(uids: Iterable, rule: str = "datacomp", repeats_allowed: bool = False) -> str | None:
    """Why these uids (all of a pool's, in memory) may not be used, or None: bad ones, then repeats
    (unless `repeats_allowed`: tables with a row per uid and subset)."""
    pattern, says = UID_RULES[rule]
    seen: set = set()
    bad, repeated = [], []
    n_bad = n_repeated = 0
    for uid in uids:
        if not (isinstance(uid, str) and pattern.fullmatch(uid)):
            n_bad += 1
            if len(bad) < SHOWN:
                bad.append(uid)
        elif uid in seen and not repeats_allowed:
            n_repeated += 1
            if len(repeated) < SHOWN:
                repeated.append(uid)
        else:
            seen.add(uid)
    if n_bad:
        return f"{n_bad} uid(s) are not {says}: {_show(bad)}"
    if n_repeated:
        return f"{n_repeated} uid(s) repeat: {_show(repeated)}"
    return None


def spark_uid_problems(df, rule: str = "datacomp") -> str | None:
    """`uid_problems` for a DataFrame with a `uid` column: one aggregation, the first few offenders."""
    from pyspark.sql import functions as F  # only the Spark jobs call this; pyspark costs ~0.4 s to import

    pattern = UID_RULES[rule][0]
    # One pass over the pool in the usual (clean) case: uids grouped once, bad ones and repeats both read
    # off the groups. Only a refused pool pays for the count of its bad rows.
    offenders = (df.groupBy("uid").count()
                 .withColumn("bad", F.col("uid").isNull() | ~F.col("uid").rlike("^" + pattern.pattern + "$"))
                 .where("bad OR count > 1"))
    first = offenders.orderBy(F.col("bad").desc(), "uid").limit(SHOWN).collect()
    if not first:
        return None
    if first[0]["bad"]:
        n_bad = offenders.where("bad").agg(F.sum("count")).collect()[0][0]
        return offenders_problem(rule, n_bad, [r.uid for r in first if r["bad"]], [])
    return offenders_problem(rule, 0, [], [(r.uid, r["count"]) for r in first])


def offenders_problem(rule: str, n_bad: int, first_bad: list, first_repeats: list[tuple[str, int]]) -> str | None:
    """The message for a pool's uid offenders found by a distributed pass (`spark_uid_problems`, or
    tic-filter's, which checks them in its one pass over the pool): how many break the rule and the first
    few of them (sorted), else the first few repeated uids (sorted) with their counts; None if neither."""
    if n_bad:
        return f"{n_bad} uid(s) are not {UID_RULES[rule][1]}: {_show(first_bad[:SHOWN])}"
    if first_repeats:
        return "uid(s) repeat: " + ", ".join(f"{u!r} ({n} times)" for u, n in first_repeats[:SHOWN])
    return None


# ------------------------------------------------------------------ column types

def _type_ok(t, kind: str) -> bool:
    import pyarrow as pa  # the foundation's one pyarrow user here; every caller has it loaded already

    if pa.types.is_null(t):  # an all-null column: the values are checked where they are used
        return True
    return {"string": pa.types.is_string(t) or pa.types.is_large_string(t),
            "float": pa.types.is_floating(t) or pa.types.is_integer(t),
            "int": pa.types.is_integer(t)}[kind]


def type_problems(schema, expected: dict[str, str]) -> list[str]:
    """Columns of a pyarrow `schema` whose type is not the expected kind ("string", "float" (any
    number), "int"). Missing columns are the caller's business (it knows which are optional)."""
    return [f"column {name} is {schema.field(name).type}, not {kind}" for name, kind in expected.items()
            if name in schema.names and not _type_ok(schema.field(name).type, kind)]


def check_types(path, schema, expected: dict[str, str]) -> None:
    """InputError naming `path` if a column has the wrong type (`type_problems`)."""
    problems = type_problems(schema, expected)
    if problems:
        raise InputError(f"{path}: {'; '.join(problems)}")


# ------------------------------------------------------------------ numbers

def check_number(name: str, value, kind: type = float, lo=None, hi=None, lo_open: bool = False,
                 hi_open: bool = False, allow_none: bool = False):
    """`value` as `kind` if it is a finite number in range, else InputError naming `name`. Strings that
    parse are accepted (YAML reads `1e-3`, without a dot, as a string)."""
    if value is None and allow_none:
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        number = kind(value) if not isinstance(value, str) else kind(float(value) if kind is float else int(value, 10))
        if kind is int and not isinstance(value, (int, str)) and float(value) != number:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    if lo is not None and (number < lo or (lo_open and number == lo)):
        raise InputError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {value!r}")
    if hi is not None and (number > hi or (hi_open and number == hi)):
        raise InputError(f"{name} must be {'<' if hi_open else '<='} {hi}, got {value!r}")
    return number


def number(kind: type = float, lo=None, hi=None, lo_open: bool = False, hi_open: bool = False):
    """An argparse `type=` for a numeric flag: finite, of `kind`, in [lo, hi] (ends open as asked)."""
    def parse(text: str):
        try:
            return check_number("the value", text, kind, lo, hi, lo_open, hi_open)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc).replace("the value ", "")) from None
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def check_config_numbers(cfg, ranges: dict[str, tuple] | None = None) -> None:
    """Check (and coerce) every int/float field of a frozen config dataclass, whatever it was read from
    (flags, YAML, JSON): finite, of its type, in `ranges[name]` = (lo, hi[, lo_open]) where given.
    A field typed `X | None` may be None."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        hint, optional = hints[f.name], False
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            optional, hint = len(args) < len(typing.get_args(hint)), args[0]
        if hint not in (int, float):
            continue
        lo, hi, *open_ = (ranges or {}).get(f.name, (None, None))
        value = check_number(f"--{f.name.replace('_', '-')}", getattr(cfg, f.name), hint, lo, hi,
                             lo_open=bool(open_ and open_[0]), allow_none=optional)
        object.__setattr__(cfg, f.name, value)


def config_from_dict(cls, d: dict, what: str = "config key(s)"):
    """A frozen config dataclass from a mapping (a config.json, YAML, flags); keys it does not know are
    one InputError naming them ("unknown <what>: a, b"), not a TypeError from the constructor."""
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise InputError(f"unknown {what}: {', '.join(sorted(unknown))}")
    return cls(**d)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (`PROG: error: MESSAGE`, exit 2), like every other error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


__all__ = ["ArgumentParser", "DATACOMP_UID", "SAFE_UID", "check_config_numbers", "check_number", "check_types", "number",
           "spark_uid_problems", "type_problems", "uid_ok", "uid_problems"]
