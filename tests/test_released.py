"""The released formats: ml-tic-clip's uid lists (import, export, round trip, missing uids), DataComp's
subset file, clip_benchmark's eval layout. Every input is built by hand here from the formats as the
sources document them (apple/ml-tic-clip README and dataset_creation/tic-datacomp/*, mlfoundations/datacomp
resharder.py and baselines/utils.py, LAION-AI/CLIP_benchmark datasets/builder.py), so these run in seconds."""
from __future__ import annotations

import hashlib
import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks import cli as splits_cli
from benchmarks.released import NET_PKL, RETRIEVAL_PKL, membership
from ticcore.datacomp_uids import UID_PAIR, hex_to_pairs, load_uid_npy, pairs_to_hex
from ticcore.errors import InputError

WNID_A, WNID_B = "n02099601", "n03770679"   # golden retriever (207), minivan (656)


def uid(i: int) -> str:
    return hashlib.sha256(f"pair {i}".encode()).hexdigest()[:32]


def as_u8u8(uids) -> np.ndarray:
    """The rule exactly as ml-tic-clip's generate_eval_uids.py writes it, independent of our code."""
    arr = np.array([(int(u[:16], 16), int(u[16:32], 16)) for u in uids], np.dtype("u8,u8"))
    arr.sort()
    return np.unique(arr)


def npy(uids) -> bytes:
    buf = io.BytesIO()
    np.save(buf, as_u8u8(uids))
    return buf.getvalue()


N = 40
YEAR_OF = {i: 2014 + i % 3 for i in range(N)}           # 2014, 2015, 2016
MONTH_OF = {i: f"{YEAR_OF[i]}{1 + i % 12:02d}" for i in range(N)}
RETRIEVAL = {2014: [uid(0), uid(3)], 2016: [uid(2), uid(1000)]}          # uid(1000): not in the metadata
NET = {2015: {WNID_A: [uid(1), uid(4)], WNID_B: [uid(7), uid(1001)]}}    # uid(1001): not in the metadata
EVAL = {u for us in RETRIEVAL.values() for u in us} | {u for c in NET.values() for us in c.values() for u in us}
MISSING_TRAIN = {2015: [uid(2000), uid(2001)]}


@pytest.fixture(scope="module")
def metadata(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("meta")
    rows = [{"uid": uid(i), "url": f"http://img.example/{i}.jpg", "text": f"caption {i}", "original_width": 300,
             "original_height": 200, "clip_b32_similarity_score": 0.3, "clip_l14_similarity_score": 0.3,
             "face_bboxes": [], "sha256": hashlib.sha256(str(i).encode()).hexdigest()} for i in range(N)]
    pq.write_table(pa.Table.from_pylist(rows[:25]), d / "00000.parquet")
    pq.write_table(pa.Table.from_pylist(rows[25:]), d / "00001.parquet")
    return d


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """A release as ml-tic-clip publishes it."""
    d = tmp_path_factory.mktemp("release")
    (d / "tic-datacomp_training_yearly_noeval").mkdir()
    (d / "tic-datacomp_training_monthly").mkdir()
    for year in (2014, 2015, 2016):
        uids = [uid(i) for i in range(N) if YEAR_OF[i] == year and uid(i) not in EVAL] + MISSING_TRAIN.get(year, [])
        (d / "tic-datacomp_training_yearly_noeval" / f"{year}.npy").write_bytes(npy(uids))
        with tarfile.open(d / "tic-datacomp_training_monthly" / f"{year}.tar", "w") as tf:
            for month in sorted({MONTH_OF[i] for i in range(N) if YEAR_OF[i] == year}):
                data = npy([uid(i) for i in range(N) if MONTH_OF[i] == month])
                info = tarfile.TarInfo(f"{year}/{month}.npy")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    (d / RETRIEVAL_PKL).write_bytes(pickle.dumps(RETRIEVAL))
    (d / NET_PKL).write_bytes(pickle.dumps(NET))
    return d


@pytest.fixture(scope="module")
def imported(release, metadata, tmp_path_factory, capsys_module=None):
    out = tmp_path_factory.mktemp("imp") / "splits"
    assert splits_cli.main(["import-released", str(release), str(out), "--metadata", str(metadata), "--threads", "1"]) == 0
    return out


def test_uid_pairs_match_datacomp_rule():
    uids = [uid(i) for i in range(50)] + ["0" * 32, "f" * 32]
    pairs = hex_to_pairs(uids)
    assert [tuple(p) for p in pairs] == [(int(u[:16], 16), int(u[16:32], 16)) for u in uids]
    assert list(pairs_to_hex(pairs)) == uids
    with pytest.raises(InputError, match="not 32 lowercase hex"):
        hex_to_pairs(["ABC" + "0" * 29])


def test_import_builds_the_splits_layout(imported):
    from benchmarks.pools import read_hive

    train = read_hive(imported / "train" / "unfiltered")
    expected = {uid(i) for i in range(N)} - EVAL
    assert set(train["uid"]) == expected
    row = train.set_index("uid").loc[uid(5)]
    assert row["year"] == YEAR_OF[5] and row["first_seen_year"] == YEAR_OF[5]
    assert row["first_seen_month"] == f"{MONTH_OF[5][:4]}-{MONTH_OF[5][4:]}"
    assert row["url"] == "http://img.example/5.jpg"
    ret = read_hive(imported / "eval" / "retrieval")
    assert {(u, int(y)) for u, y in zip(ret["uid"], ret["year"])} == {(uid(0), 2014), (uid(3), 2014), (uid(2), 2016)}
    assert set(ret["subset"]) == {"all"} and all(list(s) == [0] for s in ret["seeds"])
    net = read_hive(imported / "eval" / "net")
    by_uid = dict(zip(net["uid"], zip(net["wnid"], net["class_id"])))
    # class ids as ml-tic-clip assigns them: the wnid's index in ImageNet-1K's sorted-wnid order
    assert by_uid == {uid(1): (WNID_A, 207), uid(4): (WNID_A, 207), uid(7): (WNID_B, 656)}
    assert (imported / "net_classes.json").is_file()


def test_import_counts_every_missing_uid(imported, release, metadata, tmp_path, capsys):
    stats = json.loads((imported / "stats.json").read_text())
    missing = stats["missing_from_metadata"]
    assert missing["total"] == 4
    assert missing["by_year"] == {"2014": 0, "2015": 3, "2016": 1}
    assert missing["by_list"]["train"]["2015"] == 2 and missing["by_list"]["net"]["2015"] == 1
    assert stats["accounting"]["ok"]
    assert splits_cli.main(["import-released", str(release), str(tmp_path / "again"), "--metadata", str(metadata)]) == 0
    assert "missing from the metadata: 4 (2015: 3, 2016: 1)" in capsys.readouterr().out


def test_bad_release_files_are_one_line(release, metadata, tmp_path, capsys):
    bad = tmp_path / "bad"
    (bad / "tic-datacomp_training_yearly_noeval").mkdir(parents=True)
    np.save(bad / "tic-datacomp_training_yearly_noeval" / "2014.npy", np.arange(3))
    assert splits_cli.main(["import-released", str(bad), str(tmp_path / "o"), "--metadata", str(metadata)]) == 2
    err = capsys.readouterr().err.strip()
    assert "2014.npy" in err and "u8,u8" in err and "\n" not in err
    (bad / "tic-datacomp_training_yearly_noeval" / "2014.npy").write_bytes(npy([uid(1)]))
    (bad / RETRIEVAL_PKL).write_bytes(pickle.dumps({2014: Path("x")}))   # a pickled class: refused, not run
    assert splits_cli.main(["import-released", str(bad), str(tmp_path / "o"), "--metadata", str(metadata)]) == 2
    assert RETRIEVAL_PKL in capsys.readouterr().err


def test_export_is_what_ml_tic_clip_reads(imported, tmp_path):
    out = tmp_path / "rel"
    assert splits_cli.main(["export-released", str(imported), str(out)]) == 0
    ydir = out / "tic-datacomp_training_yearly_noeval"
    for year in (2014, 2015, 2016):
        kept = [uid(i) for i in range(N) if YEAR_OF[i] == year and uid(i) not in EVAL]
        assert (ydir / f"{year}.npy").read_bytes() == npy(kept)   # byte for byte as np.save writes it
        arr = np.load(ydir / f"{year}.npy")
        assert arr.dtype == np.dtype("u8,u8") and (np.sort(arr) == arr).all()
    assert json.loads((ydir / "sizes.json").read_text())["2014"] == len(
        [i for i in range(N) if YEAR_OF[i] == 2014 and uid(i) not in EVAL])
    with tarfile.open(out / "tic-datacomp_training_monthly" / "2015.tar") as tf:
        names = tf.getnames()
        assert all(n.startswith("2015/2015") and n.endswith(".npy") for n in names)
        # monthly lists include the eval pairs (that the metadata holds)
        m = MONTH_OF[4]
        arr = np.load(io.BytesIO(tf.extractfile(f"2015/{m}.npy").read()))
        assert uid(4) in set(pairs_to_hex(arr))
    ret = pickle.loads((out / RETRIEVAL_PKL).read_bytes())
    assert ret == {2014: sorted([uid(0), uid(3)]), 2016: [uid(2)]}
    net = pickle.loads((out / NET_PKL).read_bytes())
    assert net == {2015: {WNID_A: sorted([uid(1), uid(4)]), WNID_B: [uid(7)]}}
    # generate_eval_uids.py's own packing of the exported map gives what our reader gives
    assert (as_u8u8(ret[2014]) == np.unique(hex_to_pairs(ret[2014]))).all()


def test_export_then_import_keeps_membership(imported, metadata, tmp_path):
    rel = tmp_path / "rel"
    assert splits_cli.main(["export-released", str(imported), str(rel)]) == 0
    again = tmp_path / "again"
    assert splits_cli.main(["import-released", str(rel), str(again), "--metadata", str(metadata)]) == 0
    assert membership(again) == membership(imported)
    assert json.loads((again / "stats.json").read_text())["missing_from_metadata"]["total"] == 0


def test_load_uid_npy_refuses_other_dtypes(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, np.zeros(2, np.dtype("u8,u4")))
    with pytest.raises(InputError, match="x.npy"):
        load_uid_npy(p, str(p))
    np.save(p, np.zeros(2, UID_PAIR))
    assert len(load_uid_npy(p, str(p))) == 2


# ------------------------------------------------------------------ clip_benchmark's layout

def _fake_download(splits: Path, root: Path) -> Path:
    """A download pool as img2dataset leaves it (pool/00000.tar with <key>.jpg/.json, 00000_stats.json), one
    small JPEG per pair of the splits: the shard stage needs nothing else."""
    from PIL import Image

    from benchmarks.pools import url_list

    urls = url_list(splits, [])
    pool = root / "pool"
    pool.mkdir(parents=True)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, format="JPEG")
    jpg = buf.getvalue()
    with tarfile.open(pool / "00000.tar", "w") as tf:
        for k, u in enumerate(urls["uid"]):
            for ext, data in (("jpg", jpg), ("json", json.dumps({"uid": u, "width": 8, "height": 8}).encode())):
                info = tarfile.TarInfo(f"{k:09d}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    (pool / "00000_stats.json").write_text(json.dumps({"successes": len(urls)}))
    return root


def test_clip_benchmark_layout_reads_as_clip_benchmark_does(imported, tmp_path):
    import webdataset as wds

    from benchmarks import shards_cli

    dl = _fake_download(imported, tmp_path / "dl")
    out = tmp_path / "shards"
    assert shards_cli.main(["reshard", str(imported), str(dl), str(out), "--granularity", "month",
                            "--eval-layout", "clip_benchmark", "--samples-per-shard", "1"]) == 0
    ret_dir = out / "clip_benchmark" / "retrieval" / "yearly" / "2014"
    assert sorted(p.name for p in ret_dir.iterdir()) == ["0.tar", "1.tar", "count.txt", "dataset_type.txt", "nshards.txt"]
    assert (ret_dir / "dataset_type.txt").read_text().strip() == "retrieval"
    assert (ret_dir / "count.txt").read_text().strip() == "2"

    def read(data_dir: Path, label: str):
        # as clip_benchmark's build_wds_dataset(split="") does: nshards.txt, then {0..n-1}.tar, images decoded to PIL
        nshards = int((data_dir / "nshards.txt").read_text())
        pattern = str(data_dir / ("{0..%d}.tar" % (nshards - 1)))
        ds = (wds.WebDataset(pattern, nodesplitter=lambda src: src, shardshuffle=False)
              .decode(wds.autodecode.ImageHandler("pil", extensions=["webp", "png", "jpg", "jpeg"]))
              .to_tuple("webp;png;jpg;jpeg", label))
        return list(ds)

    samples = read(ret_dir, "txt")
    assert sorted(t for _, t in samples) == sorted(["caption 0", "caption 3"])
    assert samples[0][0].size == (8, 8)
    net_dir = out / "clip_benchmark" / "datacompnet" / "yearly" / "2015"
    assert (net_dir / "dataset_type.txt").read_text().strip() == "classification"
    classnames = (net_dir / "classnames.txt").read_text().splitlines()
    assert len(classnames) == 1000 and classnames[207].lower() == "golden retriever"
    assert all("{c}" in t for t in (net_dir / "zeroshot_classification_templates.txt").read_text().splitlines())
    assert sorted(c for _, c in read(net_dir, "cls")) == [207, 207, 656]
    month = MONTH_OF[7]
    monthly = out / "clip_benchmark" / "datacompnet" / "monthly" / month
    assert [c for _, c in read(monthly, "cls")] == [656]
    # the tic layout stays what tic-train reads
    assert (out / "eval" / "net" / "2015" / "sizes.json").is_file()


# ------------------------------------------------------------------ tic-filter --npy

def test_filter_npy_is_datacomp_subset_file(tmp_path):
    from curation.filter_job import parse_args, write_kept_npy

    cfg = parse_args(["basic", "META", str(tmp_path / "out"), "--npy", str(tmp_path / "kept")])
    assert cfg.npy == str(tmp_path / "kept")
    kept = tmp_path / "out" / "kept"
    for year, ids in ((2014, [5, 1, 9]), (2015, [3, 7])):
        (kept / f"first_seen_year={year}").mkdir(parents=True)
        pq.write_table(pa.table({"uid": [uid(i) for i in ids], "filter": ["basic"] * len(ids)}),
                       kept / f"first_seen_year={year}" / "part-0.parquet")
    assert write_kept_npy(None, str(tmp_path / "out"), cfg.npy) == 5
    data = (tmp_path / "kept").read_bytes()       # the name as given: np.save adds no .npy suffix here
    assert data == npy([uid(i) for i in (1, 3, 5, 7, 9)])
    # resharder.py's lookup: np.load, dtype check, searchsorted on divmod(int(uid, 16), 2**64)
    subset = np.load(tmp_path / "kept", mmap_mode="r")
    assert subset.dtype == np.dtype("u8,u8")
    key = np.array([divmod(int(uid(7), 16), 2 ** 64)], np.dtype("u8,u8"))[0]
    assert np.searchsorted(subset, key, "right") - np.searchsorted(subset, key, "left") == 1
    key = np.array([divmod(int(uid(8), 16), 2 ** 64)], np.dtype("u8,u8"))[0]
    assert np.searchsorted(subset, key, "right") - np.searchsorted(subset, key, "left") == 0


# ------------------------------------------------------------------ tic-train metrics --clip-benchmark-names

def test_metrics_print_clip_benchmark_names(tmp_path, capsys):
    from training.cli import main as train_main

    csv_path = tmp_path / "matrix_retrieval.csv"
    csv_path.write_text("10,5\n12,11\n")
    assert train_main(["metrics", str(csv_path), "--clip-benchmark-names"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["in_domain"] == 10.5
    assert doc["metric"] == {"ours": "mean_R@1", "clip_benchmark": "mean_recall@1"}
    # clip_benchmark's image retrieval ranks images for a caption: our text -> image direction
    assert doc["retrieval_names"]["text_to_image_R@5"] == "image_retrieval_recall@5"
    assert doc["retrieval_names"]["image_to_text_R@1"] == "text_retrieval_recall@1"
    assert train_main(["metrics", str(csv_path)]) == 0
    assert "metric" not in json.loads(capsys.readouterr().out)
