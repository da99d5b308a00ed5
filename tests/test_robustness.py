"""Issue 24's numbered probes, each as it was found, on the real jobs (the table of bad inputs per CLI is
tests/test_bad_inputs.py; the output pattern itself, tests/test_outputs.py)."""
from __future__ import annotations

import datetime as dt
import shutil
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ticcore.errors import InputError
from ticcore.outputs import OWNER_MARKER, staged_dir

UID = "0123456789abcdef0123456789abcdef"


def _foreign(path):
    path.mkdir(parents=True)
    (path / "results.csv").write_text("a user's file\n")
    return path


def _unchanged(path) -> bool:
    return sorted(p.name for p in path.iterdir()) == ["results.csv"] and (path / "results.csv").read_text() == "a user's file\n"


# 1. foreign directories are refused, never replaced
def test_reshard_refuses_a_directory_it_did_not_write(splits, downloaded, tmp_path):
    from benchmarks.reshard import ReshardConfig, reshard
    out = _foreign(tmp_path / "shards")
    with pytest.raises(InputError, match="was not written by tic-shards reshard"):
        reshard(ReshardConfig(splits[0], downloaded[0], out), log=lambda *_: None)
    assert _unchanged(out)


def test_download_refuses_a_directory_it_did_not_write(tmp_path):
    from benchmarks.download import DownloadConfig, download
    out = _foreign(tmp_path / "dl")
    (out / "pool").mkdir()
    (out / "pool" / "00000.tar").write_bytes(b"the user's own shard")
    urls = tmp_path / "urls.parquet"
    pq.write_table(pa.table({"uid": [UID], "url": ["http://127.0.0.1:9/x.jpg"], "text": ["x"]}), urls)
    with pytest.raises(InputError, match="was not written by tic-shards download"):
        download(urls, out, DownloadConfig(), log=lambda *_: None)
    assert (out / "pool" / "00000.tar").read_bytes() == b"the user's own shard"


# 3. a failed check leaves the earlier output in place (here: duplicate uids, refused before any work)
def _pool_with(tmp_path, uids):
    meta = tmp_path / "meta"
    meta.mkdir()
    pq.write_table(pa.table({"uid": uids, "url": [f"http://x.test/{i}.jpg" for i in range(len(uids))],
                             "text": [f"a caption number {i}" for i in range(len(uids))],
                             "original_width": [512] * len(uids), "original_height": [512] * len(uids)}),
                   meta / "0.parquet")
    return meta


def test_join_with_duplicate_uids_keeps_the_earlier_output(spark, sample_web, tmp_path):
    from curation.timestamp_join import TimestampJoinConfig, run
    out = tmp_path / "join"
    with staged_dir(out, "tic-timestamp-join") as tmp:  # an earlier, good output
        (tmp / "stats.json").write_text('{"good": true}\n')
    meta = _pool_with(tmp_path, [UID, UID, "f" * 32])
    with pytest.raises(InputError, match=f"uid\\(s\\) repeat: '{UID}' \\(2 times\\)"):
        run(spark, TimestampJoinConfig(str(sample_web / "warc.manifest"), str(meta), str(out)), log=lambda *_: None)
    assert (out / "stats.json").read_text() == '{"good": true}\n'
    assert sorted(p.name for p in out.iterdir()) == [OWNER_MARKER, "stats.json"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# 5./6. uids are checked where a pool enters, the same way in every tool
@pytest.mark.parametrize("uids, says", [(["../../x", UID, "f" * 32], "not 32 lowercase hex"),
                                        ([UID.upper(), UID, "f" * 32], "not 32 lowercase hex"),
                                        ([UID, UID, "f" * 32], "repeat")])
def test_filter_refuses_bad_or_repeated_uids(spark, tmp_path, uids, says):
    from curation.filter_job import FilterConfig, run
    meta = _pool_with(tmp_path, uids)
    with pytest.raises(InputError, match=says):
        run(spark, FilterConfig("basic", str(meta), str(tmp_path / "out")), log=lambda *_: None)
    assert not (tmp_path / "out").exists()


def test_reshard_refuses_uids_that_are_not_member_names(splits, downloaded, tmp_path):
    from benchmarks.reshard import ReshardConfig, reshard
    bad = tmp_path / "splits"
    shutil.copytree(splits[0], bad)
    part = sorted((bad / "train" / "basic").rglob("*.parquet"))[0]
    table = pq.read_table(part)  # rewritten with its own schema (pandas would retype all-null columns)
    uids = table.column("uid").to_pylist()
    uids[0] = "../../escape"
    i = table.schema.get_field_index("uid")
    pq.write_table(table.set_column(i, table.schema.field(i), pa.array(uids, table.schema.field(i).type)), part)
    with pytest.raises(InputError, match="not 1-64 of A-Z a-z 0-9 _ -.*'../../escape'"):
        reshard(ReshardConfig(bad, downloaded[0], tmp_path / "shards"), log=lambda *_: None)
    assert not (tmp_path / "shards").exists()


def test_sources_drop_unsafe_uids_with_a_reason():
    from curation.sources import YFCC_FIELDS, FIELD, parse_redcaps_annotation, parse_yfcc_line
    now = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    fields = ["x"] * len(YFCC_FIELDS)
    fields[FIELD["photo_id"]], fields[FIELD["date_uploaded"]], fields[FIELD["marker"]] = "../../x", "1300000000", "0"
    assert parse_yfcc_line("\t".join(fields), now)["reason"] == "bad_uid"
    fields[FIELD["photo_id"]] = "12345"
    assert parse_yfcc_line("\t".join(fields), now)["reason"] != "bad_uid"
    ann = {"image_id": "a" * 150, "url": "http://i.redd.it/x.jpg", "caption": "a dog", "created_utc": 1500000000}
    assert parse_redcaps_annotation(ann, now)["reason"] == "bad_uid"


def test_shard_members_stay_inside_the_target(shards_dir, tmp_path):
    """What the probe did: extract a training shard with tarfile and look where the members went."""
    tar = sorted(shards_dir.rglob("train/*/*/*.tar"))[0]
    with tarfile.open(tar) as tf:
        names = tf.getnames()
        tf.extractall(tmp_path / "x", filter="data")
    assert names and all("/" not in n and not n.startswith(".") and n.count(".") == 1 for n in names)
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == sorted(names)
