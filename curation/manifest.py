"""WARC manifests: one WARC path per line, read by tic-extract and the timestamp join alike.

Lines may be local paths, file:// or any Hadoop-readable URI (hdfs://, s3a://, ...); blank lines
and `#` comments are skipped. Relative lines are resolved against `input_base`, by default the
manifest's own directory (so a sample web's warc.manifest, or Common Crawl's warc.paths with
`input_base` s3a://commoncrawl/, work as they are).
"""
from __future__ import annotations

from ticcore.errors import InputError
from ticcore.sparkio import is_local, local_path, read_text


def read_manifest(manifest: str, input_base: str | None, spark=None) -> list[str]:
    """The manifest's WARC paths, resolved; a remote manifest is read through `spark`."""
    try:
        text = read_text(spark, manifest)
    except FileNotFoundError:
        raise InputError(f"{manifest}: manifest not found") from None
    except IsADirectoryError:
        raise InputError(f"{manifest}: is a directory, not a manifest (a file with one WARC path per line)") from None
    except PermissionError:
        raise InputError(f"{manifest}: permission denied") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{manifest}: not UTF-8 text (byte {exc.start}); a manifest lists one WARC path per line") from None
    if is_local(manifest):
        base = input_base or str(local_path(manifest).resolve().parent)
    else:
        base = input_base or manifest.rsplit("/", 1)[0]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if not lines:
        raise InputError(f"{manifest}: manifest is empty (no WARC paths)")
    out = []
    for line in lines:
        if "://" in line or line.startswith("/"):
            out.append(line)
        else:
            out.append(base.rstrip("/") + "/" + line)
    return out
