"""What every Spark job here needs around its DataFrame functions: a session, path kinds, and
atomic output (write a temporary sibling, then rename) through Hadoop's file systems, which
covers local paths too."""
from __future__ import annotations

import contextlib
import json
import os
import uuid
from typing import Iterator
from pathlib import Path


from ticcore.errors import InputError  # noqa: F401  (re-exported: the jobs' one-line input errors)
from ticcore.outputs import check_output_dir


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
    return builder.getOrCreate()


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
    fs, jp = hadoop_fs(spark, path)
    out = fs.create(jp, True)
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()


def delete(spark, path: str) -> None:
    fs, jp = hadoop_fs(spark, path)
    if fs.exists(jp):
        fs.delete(jp, True)


def temp_sibling(final: str) -> str:
    return final.rstrip("/") + f".tmp-{uuid.uuid4().hex[:8]}"


def commit(spark, tmp: str, final: str) -> None:
    """Move a finished output into place; an earlier output is replaced only after that."""
    jvm = spark.sparkContext._jvm
    fs, jfinal = hadoop_fs(spark, final)
    jtmp = jvm.org.apache.hadoop.fs.Path(tmp)
    if fs.exists(jfinal):
        jold = jvm.org.apache.hadoop.fs.Path(final.rstrip("/") + f".old-{uuid.uuid4().hex[:8]}")
        if not fs.rename(jfinal, jold):
            raise OSError(f"{final}: could not move the earlier output aside")
        if not fs.rename(jtmp, jfinal):
            fs.rename(jold, jfinal)
            raise OSError(f"{final}: could not move the new output into place")
        fs.delete(jold, True)
    elif not fs.rename(jtmp, jfinal):
        raise OSError(f"{final}: could not move the new output into place")


def check_output_local(output_dir: str, tool: str) -> None:
    """Refuse an existing local output that an earlier run of `tool` did not write."""
    check_output_dir(local_path(output_dir), tool)


@contextlib.contextmanager
def staged_output(spark, final: str) -> Iterator[str]:
    """A Spark job's output directory, built beside its final place: yield a temporary sibling of `final`;
    on success it replaces `final` (`commit`), on any failure it is deleted. (The Hadoop-path counterpart
    of `ticcore.outputs.staged_dir`.)"""
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
