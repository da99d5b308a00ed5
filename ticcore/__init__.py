"""The foundation every pipeline package stands on: I/O, schemas, errors and the step map.

It imports nothing of the project's, so `curation`, `benchmarks`, `training` and `sample_web` may all
import it (import-linter contracts in pyproject.toml keep it that way).

    errors     UserError: a user's mistake, reported as one line with exit code 2
    outputs    the one file-writing pattern: staged outputs, atomic files, "is this our output?"
    pkgdata    where a package's data files are (ours: sql/, model configs; others': timm, fastText, ...)
    schemas    every parquet contract's columns and types
    steps      the year -> step (and month -> step) map: one rule, written once into steps.json
    localfs    write-behind files for bulk writers
    sparkio    Spark sessions and atomic output through Hadoop file systems
    spark_standalone  a Spark standalone cluster on 127.0.0.1, for the cluster test and benchmark
    sqlfiles   named DuckDB queries (sql/*.sql)
    imagenet   the ImageNet-1K class table (wnids, lemmas) from timm's package data
"""
