"""The real WARC/ARC files in ../shared/data/warc (see its SOURCES.md) read without error.

Expected record counts are the ones SOURCES.md documents for each file, so nothing here is
tuned to the sample-web generator.
"""
from __future__ import annotations

import pytest
from warcio.archiveiterator import ArchiveIterator

from .conftest import REAL_WARC_DIR, real_warc_files

EXPECTED_RECORDS = {  # per SOURCES.md
    "cc.warc.gz": {"response": 1},
    "whirlwind.warc.gz": {"warcinfo": 1, "request": 1, "response": 1, "metadata": 1},
    "iana.warc.gz": {"warcinfo": 1, "request": 171, "response": 48, "revisit": 123},
    "example.warc.gz": {"warcinfo": 1, "response": 299, "request": 261, "metadata": 261},
    "example.arc.gz": {"warcinfo": 1, "response": 299},  # the filedesc header becomes warcinfo
    "issue-493.warc": {"warcinfo": 2, "request": 15, "response": 10, "revisit": 5},
    "IAH-urls-wget.warc.gz": {"warcinfo": 1, "request": 16, "response": 16, "resource": 3},
    "sample-0000.warc.gz": {"warcinfo": 1, "request": 22, "response": 22, "metadata": 1, "resource": 2},
    "sample-0001.warc.gz": {"warcinfo": 1, "request": 15, "response": 15, "metadata": 1, "resource": 2},
    "warcfile.warc.gz": {"warcinfo": 1, "request": 17, "response": 16, "metadata": 16},
    "clueweb-quirk.warc.gz": {"warcinfo": 1, "response": 29},
    "clipped.warc.gz": {"response": 1},
    "BL-20140325121225068-00000-32090~opera~8443.warc.gz": {"warcinfo": 1, "response": 65, "request": 62,
                                                           "metadata": 62},
    "BL-20140325122341434-00000-32090~opera~8443.warc.gz": {"warcinfo": 1, "response": 10, "revisit": 55,
                                                           "request": 62, "metadata": 62},
    "flashfrozen-jwat-recompressed.warc.gz": {"warcinfo": 1, "request": 39, "response": 39, "resource": 3},
    "books.toscrape.warc": {"request": 30, "response": 30},
    "parseMe.warc.gz": {"warcinfo": 1, "metadata": 1, "request": 14, "response": 14},
}

pytestmark = pytest.mark.skipif(not REAL_WARC_DIR.is_dir(), reason=f"{REAL_WARC_DIR} is not present")


def test_every_shared_file_is_known():
    assert sorted(p.name for p in real_warc_files()) == sorted(EXPECTED_RECORDS)


@pytest.mark.parametrize("name", sorted(EXPECTED_RECORDS))
def test_real_file_reads_without_error(name):
    counts: dict[str, int] = {}
    with open(REAL_WARC_DIR / name, "rb") as fh:
        for rec in ArchiveIterator(fh, arc2warc=True):
            rec.content_stream().read()
            counts[rec.rec_type] = counts.get(rec.rec_type, 0) + 1
    assert counts == EXPECTED_RECORDS[name]
