"""What every Spark job here needs around its DataFrame functions: a session, path kinds, and
atomic output (write a temporary sibling, then rename) through Hadoop's file systems, which
covers local paths too."""
from __future__ import annotations

import contextlib
import os
import re
from typing import Iterator
from pathlib import Path


from ticcore.errors import InputError  # noqa: F401  (re-exported: the jobs' one-line input errors)
from ticcore.outputs import (OWNER_MARKER, claim_output, json_text, marker_text, owner_in_marker, ownership_problem,
                             reclaim_stale, sibling_name, stale_siblings)


def build_session(app: str, master: str = "local[*]", **conf):
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app).config("spark.sql.session.timeZone", "UTC")
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # not launched by spark-submit, which sets the master
        builder = builder.master(master)
        if master.startswith("local"):
            # Spark's default of 200 shuffle partitions is made for clusters; on one machine a few
            # per core keep the per-task overhead down (adaptive execution still coalesces).
            builder = builder.config("spark.sql.shuffle.partitions", str(4 * (os.cpu_count() or 2)))
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    _quiet_task_failure_logs(spark)
    return spark


# A failed task's exception reaches the driver and is raised there (a user error is reported as one
# line, a bug keeps its traceback); these loggers print the same exception again, with its stack,
# once per task attempt. Only they are silenced; everything else Spark logs stays as configured.
_DUPLICATE_FAILURE_LOGGERS = ("org.apache.spark.executor.Executor", "org.apache.spark.scheduler.TaskSetManager",
                              "org.apache.spark.scheduler.TaskResultGetter")


def _quiet_task_failure_logs(spark) -> None:
    jvm = spark.sparkContext._jvm
    try:
        off = jvm.org.apache.logging.log4j.Level.OFF
        for name in _DUPLICATE_FAILURE_LOGGERS:
            jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(name, off)
    except Exception:  # noqa: BLE001 - another logging backend on a cluster: leave its configuration alone
        pass


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def local_path(path: str) -> Path:
    return Path(path[len("file://"):] if path.startswith("file://") else path)


def parquet_writer(df, plain_columns=()):
    """`df.write`, with parquet dictionary encoding off for the columns in `plain_columns` that df has.

    A dictionary only pays for columns with few distinct values. On nearly unique ones (ids, URLs,
    captions, exact times) parquet-mr fills a dictionary, overflows it and falls back to plain
    encoding: about 40% of the time spent writing the first-seen table, for a bigger file.
    """
    writer = df.write
    for column in df.columns:
        if column in plain_columns:
            writer = writer.option(f"parquet.enable.dictionary#{column}", "false")
    return writer


def hadoop_fs(spark, path: str):
    jvm = spark.sparkContext._jvm
    jpath = jvm.org.apache.hadoop.fs.Path(path)
    return jpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), jpath


def read_text(spark, path: str) -> str:
    if is_local(path):
        return local_path(path).read_text(encoding="utf-8")
    return "\n".join(spark.sparkContext.textFile(path).collect())


def write_text(spark, path: str, text: str) -> None:
    write_bytes(spark, path, text.encode("utf-8"))


def write_bytes(spark, path: str, data: bytes) -> None:
    fs, jp = hadoop_fs(spark, path)
    out = fs.create(jp, True)
    try:
        out.write(bytearray(data))
    finally:
        out.close()


def delete(spark, path: str) -> None:
    fs, jp = hadoop_fs(spark, path)
    if fs.exists(jp):
        fs.delete(jp, True)


def _split(final: str) -> tuple[str, str]:
    parent, _, name = final.rstrip("/").rpartition("/")
    return parent, name


def temp_sibling(final: str, kind: str = "tmp") -> str:
    """`.NAME.tmp-HOST-PID` beside `final` (`ticcore.outputs.sibling_name`): a dot name, so neither
    Spark nor the SQL's globs read it, and the next run can tell a dead run's leftovers."""
    parent, name = _split(final)
    return f"{parent}/{sibling_name(name, kind)}" if parent else sibling_name(name, kind)


def commit(spark, tmp: str, final: str) -> None:
    """Move a finished output into place; an earlier output is replaced only after that."""
    jvm = spark.sparkContext._jvm
    fs, jfinal = hadoop_fs(spark, final)
    jtmp = jvm.org.apache.hadoop.fs.Path(tmp)
    if fs.exists(jfinal):
        jold = jvm.org.apache.hadoop.fs.Path(temp_sibling(final, "old"))
        if fs.exists(jold):
            fs.delete(jold, True)
        if not fs.rename(jfinal, jold):
            raise OSError(f"{final}: could not move the earlier output aside")
        if not fs.rename(jtmp, jfinal):
            fs.rename(jold, jfinal)
            raise OSError(f"{final}: could not move the new output into place")
        fs.delete(jold, True)
    elif not fs.rename(jtmp, jfinal):
        raise OSError(f"{final}: could not move the new output into place")


def claim_output_any(spark, final: str, tool: str) -> None:
    """`ticcore.outputs.claim_output` for any Hadoop path: the same rule, through the file system."""
    if is_local(final):
        claim_output(local_path(final), tool)
        return
    fs, jp = hadoop_fs(spark, final)
    exists = fs.exists(jp)
    is_dir = exists and fs.getFileStatus(jp).isDirectory()
    owner, empty = None, True
    if is_dir:
        names = [st.getPath().getName() for st in fs.listStatus(jp)]
        empty = not [n for n in names if n != OWNER_MARKER]
        if OWNER_MARKER in names:
            owner = owner_in_marker(read_text(spark, final.rstrip("/") + "/" + OWNER_MARKER))
    problem = ownership_problem(exists, is_dir, empty, owner, tool)
    if problem:
        raise InputError(f"{final}: {problem}")


def reclaim_stale_any(spark, final: str) -> None:
    """`ticcore.outputs.reclaim_stale` for any Hadoop path."""
    if is_local(final):
        reclaim_stale(local_path(final).parent, local_path(final).name)
        return
    parent, name = _split(final)
    fs, jparent = hadoop_fs(spark, parent or ".")
    if not fs.exists(jparent):
        return
    jvm = spark.sparkContext._jvm
    _, jfinal = hadoop_fs(spark, final)
    for sib, kind, _ in stale_siblings(name, [st.getPath().getName() for st in fs.listStatus(jparent)]):
        jsib = jvm.org.apache.hadoop.fs.Path(jparent, sib)
        if kind == "old" and not fs.exists(jfinal):
            fs.rename(jsib, jfinal)
        else:
            fs.delete(jsib, True)


def check_output_local(output_dir: str, tool: str) -> None:
    """Refuse an existing local output that an earlier run of `tool` did not write (before a JVM starts)."""
    if is_local(output_dir):
        claim_output(local_path(output_dir), tool)


@contextlib.contextmanager
def staged_output(spark, final: str, tool: str) -> Iterator[str]:
    """A Spark job's output directory, built beside its final place (the Hadoop-path counterpart of
    `ticcore.outputs.staged_dir`): check that `tool` may write `final`, reclaim what killed runs left,
    yield a temporary sibling; on success it gets `tool`'s marker and replaces `final` (`commit`), on
    any failure (an accounting check that raises included) it is deleted and `final` is left as it was."""
    claim_output_any(spark, final, tool)
    reclaim_stale_any(spark, final)
    tmp = temp_sibling(final)
    delete(spark, tmp)
    try:
        yield tmp
        write_text(spark, tmp + "/" + OWNER_MARKER, marker_text(tool))
        commit(spark, tmp, final)
    except BaseException:
        delete(spark, tmp)
        raise


_FAILED_READ = re.compile(r"Encountered error while reading file (\S+?)\.?\s")
_READ_CAUSES = (("Unexpected end of input stream", "the compressed data ends early (a truncated file?)"),
                ("Not in GZIP format", "not gzip data"), ("incorrect header check", "not compressed data"),
                ("EOFException", "the file ends early (a truncated file?)"),
                ("MALFORMED", "malformed data"))


@contextlib.contextmanager
def unreadable_files_are_input_errors() -> Iterator[None]:
    """Turn Spark's failure to read an input file (a truncated .gz, random bytes named .bz2: Spark's
    FAILED_READ_FILE error) into one InputError naming the file, instead of a JVM stack trace."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - py4j's and Spark's error types; anything else is re-raised
        text = str(exc)
        m = _FAILED_READ.search(text)
        if not m:
            raise
        why = next((says for marker, says in _READ_CAUSES if marker in text), "damaged, or not data of the kind its name says")
        path = m.group(1)
        raise InputError(f"{path[len('file://'):] if path.startswith('file://') else path}: cannot be read: {why}") from None


def write_stats(spark, out_dir: str, stats: dict) -> None:
    """OUT_DIR/stats.json: strict JSON, sorted keys, indent 1, a final newline."""
    write_text(spark, out_dir + "/stats.json", json_text(stats, sort_keys=True))
