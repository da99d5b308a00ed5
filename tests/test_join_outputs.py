"""The timestamp join's outputs do not depend on how the job counts them (issue 27): every output
(first_seen/, unmatched/, sightings/, seen_urls/, warc_files/, candidates/) and stats.json of a full,
an incremental (--previous) and a WAT run equal a reference recorded from the job as it was before
the statistics moved into the passes that write the outputs (each count an extra Spark job over the
written files).

The reference holds, per run and output, a digest of the rows as a set (tests/output_digests.py; the
sample web's directory in paths replaced by `<web>`), the column names in file order, and stats.json
without `config` (paths). Record it again (only when the join's rules change, never to make a speed
change pass) with

    TIC_RECORD_JOIN_REFERENCE=1 python -m pytest tests/test_join_outputs.py
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from curation.timestamp_join import TimestampJoinConfig, run

from .output_digests import rows_digest

REFERENCE = Path(__file__).parent / "data" / "join_outputs_reference.json"
RECORD = os.environ.get("TIC_RECORD_JOIN_REFERENCE") == "1"

OUTPUTS = {  # output: the columns its rows are ordered by (None: every plain column)
    "first_seen": ("uid",), "unmatched": ("uid",), "sightings": ("url", "text"), "seen_urls": ("url",),
    "warc_files": ("warc_file",), "candidates": None,
}


def _digest(out: Path, stats: dict, web: Path) -> dict:
    outputs = {name: rows_digest(out / name, keys, {str(web): "<web>"})
               for name, keys in OUTPUTS.items() if (out / name).is_dir()}
    text = json.dumps({k: v for k, v in stats.items() if k != "config"}, sort_keys=True)
    return {"outputs": outputs, "stats": json.loads(text.replace(str(web), "<web>"))}


@pytest.fixture(scope="module")
def digests(spark, sample_web, tmp_path_factory):
    root = tmp_path_factory.mktemp("join-outputs")
    meta, quiet = str(sample_web / "metadata"), (lambda *_: None)
    lines = (sample_web / "warc.manifest").read_text().split()
    early = root / "early.manifest"
    early.write_text("".join(f"{sample_web / line}\n" for line in lines[:9]))
    runs = {  # name: config (in order: the incremental run folds into `early`)
        "full": TimestampJoinConfig(str(sample_web / "warc.manifest"), meta, str(root / "full"), files_per_year=2),
        "early": TimestampJoinConfig(str(early), meta, str(root / "early"), keep_candidates=True),
        "incremental": TimestampJoinConfig(str(sample_web / "warc.manifest"), meta, str(root / "incremental"),
                                           previous=str(root / "early")),
        "wat": TimestampJoinConfig(str(sample_web / "wat.manifest"), meta, str(root / "wat"), input_format="wat"),
    }
    return {name: _digest(Path(cfg.output_dir), run(spark, cfg, log=quiet), sample_web) for name, cfg in runs.items()}


def test_outputs_and_stats_equal_the_recorded_reference(digests):
    if RECORD:
        REFERENCE.parent.mkdir(exist_ok=True)
        REFERENCE.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"recorded {REFERENCE}")
    reference = json.loads(REFERENCE.read_text())
    assert digests.keys() == reference.keys()
    for name, got in digests.items():
        assert got["stats"] == reference[name]["stats"], name
        assert got["outputs"].keys() == reference[name]["outputs"].keys(), name
        for output, digest in got["outputs"].items():
            assert digest == reference[name]["outputs"][output], (name, output)
