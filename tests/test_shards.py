"""Shards (issue 7): img2dataset downloads behind the network guard, resume after a kill, resharding
into time steps, shard-level leakage, and open_clip reading a step as is."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks.download import DownloadConfig, download
from benchmarks.netguard import NetPolicy, address_refusal, parse_resolve, scheme_refusal
from benchmarks.pools import url_list
from benchmarks.reshard import ReshardConfig, reshard
from benchmarks.shards_cli import check_leakage
from ticcore import sqlfiles
from ticcore.steps import StepScheme, read_steps

from .conftest import REPO

QUIET = lambda *_: None  # noqa: E731


def _reshard(splits, download_dir, out, **options) -> dict:
    return reshard(ReshardConfig(splits, download_dir, out, **options), log=QUIET)


class _Recorder(BaseHTTPRequestHandler):
    hits: list = []

    def do_GET(self):  # noqa: N802
        type(self).hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    _Recorder.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], _Recorder.hits
    server.shutdown()


def test_policy_rules():
    p = NetPolicy()
    assert address_refusal("169.254.169.254", NetPolicy(allow_loopback=True, allow_private=True)) == "metadata_address"
    assert address_refusal("127.0.0.1", p) == "loopback_address"
    assert address_refusal("127.0.0.1", NetPolicy(allow_loopback=True)) is None
    assert address_refusal("10.1.2.3", p) == "private_address" and address_refusal("192.168.0.5", p) == "private_address"
    assert address_refusal("fe80::1", p) == "link_local_address" and address_refusal("::1", p) == "loopback_address"
    assert address_refusal("8.8.8.8", p) is None
    assert scheme_refusal("file:///etc/passwd") == "scheme_not_allowed:file"
    assert scheme_refusal("https://x.example/a.jpg") is None
    assert parse_resolve(["*=127.0.0.1:8080"]) == {"*": ("127.0.0.1", 8080)}
    with pytest.raises(ValueError):
        parse_resolve(["host=not-an-ip"])


def _urls(path: Path, urls: list[str]) -> Path:
    df = pd.DataFrame({"uid": [f"{i:032x}" for i in range(len(urls))], "url": urls, "text": [f"t {i}" for i in range(len(urls))]})
    pq.write_table(pa.Table.from_pandas(df), path)
    return path


def test_no_refused_request_leaves_the_process(tmp_path, recorder):
    port, hits = recorder
    urls = ["file:///etc/passwd", "ftp://ftp.example.com/a.jpg", "data:image/png;base64,iVBOR", "gopher://x/1",
            "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/a.jpg", "http://192.168.1.1/b.jpg",
            f"http://127.0.0.1:{port}/loop.jpg", f"http://localhost:{port}/local.jpg", f"http://[::1]:{port}/v6.jpg",
            f"http://mapped.example.com:{port}/mapped.jpg"]
    src = _urls(tmp_path / "urls.parquet", urls)
    cfg = DownloadConfig(processes=1, threads=4, timeout=2, samples_per_shard=50, verify_hash=False,
                         policy=NetPolicy(resolve={"mapped.example.com": ("127.0.0.1", port)}))
    stats = download(src, tmp_path / "blocked", cfg, log=QUIET)
    assert hits == []  # nothing reached the loopback listener
    status = pd.read_parquet(tmp_path / "blocked" / "status.parquet").set_index("url")["reason"]
    assert status["file:///etc/passwd"] == "scheme_not_allowed:file"
    assert status["ftp://ftp.example.com/a.jpg"] == "scheme_not_allowed:ftp"
    assert status["data:image/png;base64,iVBOR"] == "scheme_not_allowed:data"
    assert status["http://169.254.169.254/latest/meta-data/"] == "metadata_address"
    assert status["http://10.0.0.1/a.jpg"] == status["http://192.168.1.1/b.jpg"] == "private_address"
    for u in urls[7:]:
        assert status[u] == "loopback_address", u
    assert stats["success"] + stats["failed"] == stats["input_urls"] == len(urls)
    # With --allow-loopback, loopback is reached; private and metadata addresses still are not.
    allow = DownloadConfig(processes=1, threads=4, timeout=2, samples_per_shard=50, verify_hash=False,
                           policy=NetPolicy(allow_loopback=True, resolve={"mapped.example.com": ("127.0.0.1", port)}))
    download(src, tmp_path / "allowed", allow, log=QUIET)
    assert sorted(hits) == ["/local.jpg", "/loop.jpg", "/mapped.jpg", "/v6.jpg"] or len(hits) >= 3
    status = pd.read_parquet(tmp_path / "allowed" / "status.parquet").set_index("url")["reason"]
    assert status["http://10.0.0.1/a.jpg"] == "private_address"
    assert status["http://169.254.169.254/latest/meta-data/"] == "metadata_address"


def test_every_url_ends_with_a_status(downloaded, sample_web):
    dl, stats, urls = downloaded
    status = pd.read_parquet(dl / "status.parquet")
    assert len(status) == len(urls) and set(status.uid) == set(urls.uid)
    assert stats["success"] + stats["failed"] == len(urls) and stats["accounting"]["ok"]
    truth = pd.read_parquet(sample_web / "truth", columns=["uid", "download_status"])
    m = status.merge(truth, on="uid")
    expect = {"ok": "success", "not_found": "not_found", "not_image": "hash_mismatch", "too_large": "too_large",
              "slow": "timeout"}
    for world_status, reason in expect.items():
        sub = m[m.download_status == world_status]
        if len(sub):
            assert (sub.reason == reason).mean() > 0.9, (world_status, sub.reason.value_counts())
    ok = status[status.status == "success"]
    assert (ok.sha256.str.len() == 64).all()


def test_reshard_layout_steps_and_identical_reruns(splits, downloaded, sample_web, tmp_path):
    out_splits, _ = splits
    dl, _, _ = downloaded
    a, b = tmp_path / "a", tmp_path / "b"
    static = str(sample_web / "imagenet_like" / "images.parquet")
    s = _reshard(out_splits, dl, a, samples_per_shard=100, static=static)
    _reshard(out_splits, dl, b, samples_per_shard=100, static=static)
    assert [st["step"] for st in s["steps"]["basic"]] == [str(y) for y in range(2016, 2023)]
    for step_dir in sorted((a / "train" / "basic").iterdir()):
        sizes = json.loads((step_dir / "sizes.json").read_text())
        tars = sorted(step_dir.glob("*.tar"))
        assert sorted(sizes) == [t.name for t in tars] and all(v > 0 for v in sizes.values())
        for t in tars:
            assert t.read_bytes() == (b / t.relative_to(a)).read_bytes()  # same members, same order, same bytes
            with tarfile.open(t) as tf:
                names = tf.getnames()
            assert names == sorted(names, key=lambda n: (n.split(".")[0], ["jpg", "txt", "json"].index(n.split(".")[1])))
            assert len(pd.read_parquet(t.with_suffix(".parquet"))) == sizes[t.name]
    assert (a / "eval" / "retrieval").is_dir() and (a / "eval" / "net").is_dir() and (a / "eval" / "static").is_dir()
    assert not list(a.rglob("*.tmp"))
    # steps.json: the step map (every year and first-seen month written) and each pool's steps
    step_map, pools = read_steps(a)
    assert step_map.labels == tuple(str(y) for y in range(2016, 2023)) and pools == s["steps"]
    assert (step_map.granularity, step_map.start_year) == ("year", 2016)
    assert step_map.year_to_step["2014"] == "2016" and step_map.year_to_step["2020"] == "2020"
    assert all(step_map.month_to_step[m] == step_map.year_to_step[m[:4]] for m in step_map.month_to_step)
    assert read_steps(b)[0] == step_map


def test_step_schemes():
    assert StepScheme().label("2015-04", 2015) == "2016"
    assert StepScheme().label("2019-08", 2019) == "2019"
    assert StepScheme("month").label("2015-04", 2015) == "2015-04"
    assert StepScheme("year", 2014).label("2015-04", 2015) == "2015"


def test_monthly_steps(splits, downloaded, tmp_path):
    out_splits, _ = splits
    dl, _, _ = downloaded
    s = _reshard(out_splits, dl, tmp_path / "m", granularity="month", samples_per_shard=1000)
    steps = [st["step"] for st in s["steps"]["unfiltered"]]
    assert len(steps) > 9 and all(len(x) == 7 and x[4] == "-" for x in steps)
    step_map, _ = read_steps(tmp_path / "m")
    assert step_map.granularity == "month" and all(step_map.month_to_step[m] == m for m in steps)


def test_shard_level_leakage_check(splits, downloaded, tmp_path):
    out_splits, _ = splits
    dl, _, _ = downloaded
    out = tmp_path / "s"
    _reshard(out_splits, dl, out, samples_per_shard=1000)
    assert check_leakage(out) == []
    res = subprocess.run([sys.executable, "-m", "benchmarks.shards_cli", "check-leakage", str(out)], capture_output=True,
                         text=True, cwd=REPO)
    assert res.returncode == 0
    ev = next((out / "eval" / "net").rglob("*.parquet"))
    leak = pd.read_parquet(ev).iloc[:2]
    target = next((out / "train" / "basic").rglob("00000.parquet"))
    pd.concat([pd.read_parquet(target), leak]).to_parquet(target)
    res = subprocess.run([sys.executable, "-m", "benchmarks.shards_cli", "check-leakage", str(out)], capture_output=True,
                         text=True, cwd=REPO)
    assert res.returncode == 1 and leak.uid.iloc[0] in res.stdout


def test_shard_leakage_check_fails_on_missing_input_and_checks_every_pool(tmp_path):
    """Issue 24, item 12: on a directory that does not exist it printed "no evaluation uid ... in any
    training shard" and exited 0."""
    def run(out):
        res = subprocess.run([sys.executable, "-m", "benchmarks.shards_cli", "check-leakage", str(out)],
                             capture_output=True, text=True, cwd=REPO)
        return res.returncode, res.stdout, res.stderr

    rc, stdout, stderr = run(tmp_path / "nope")
    assert rc == 2 and stderr.count("\n") == 1 and "nope: not found" in stderr and "no evaluation" not in stdout
    (tmp_path / "empty").mkdir()
    rc, _, stderr = run(tmp_path / "empty")
    assert rc == 2 and "empty/eval: no evaluation set" in stderr
    rows = lambda uids: pd.DataFrame({"uid": uids, "sha256": [None] * len(uids)})  # noqa: E731
    (tmp_path / "s" / "eval" / "retrieval" / "2012").mkdir(parents=True)
    rows(["a" * 32]).to_parquet(tmp_path / "s" / "eval" / "retrieval" / "2012" / "00000.parquet")
    rc, _, stderr = run(tmp_path / "s")
    assert rc == 2 and "s/train: no training pool" in stderr
    (tmp_path / "s" / "train" / "yfcc15m" / "2012").mkdir(parents=True)
    rc, _, stderr = run(tmp_path / "s")
    assert rc == 2 and "train/yfcc15m: no parquet file" in stderr
    rows(["b" * 32]).to_parquet(tmp_path / "s" / "train" / "yfcc15m" / "2012" / "00000.parquet")
    assert check_leakage(tmp_path / "s") == []
    rows(["a" * 32]).to_parquet(tmp_path / "s" / "train" / "yfcc15m" / "2012" / "00001.parquet")
    rc, stdout, _ = run(tmp_path / "s")
    assert rc == 1 and "a" * 32 in stdout


def test_shard_queries(splits, downloaded, tmp_path):
    out_splits, _ = splits
    dl, _, _ = downloaded
    out = tmp_path / "q"
    _reshard(out_splits, dl, out, samples_per_shard=1000)
    for name in sqlfiles.load("sql/shards.sql"):
        assert sqlfiles.run("sql/shards.sql", name, root=str(out), download=str(dl)).fetchall(), name


def test_a_changed_url_list_is_not_answered_from_the_old_pool(splits, sample_web, slow_server, tmp_path):
    out_splits, _ = splits
    truth = pd.read_parquet(sample_web / "truth", columns=["uid", "download_status"])
    quick = set(truth[truth.download_status != "slow"].uid)
    urls = url_list(out_splits, [])
    urls = urls[urls.uid.isin(quick)].head(260).reset_index(drop=True)
    cfg = DownloadConfig(image_size=32, processes=1, threads=8, timeout=1, samples_per_shard=100,
                         policy=NetPolicy(True, False, {"*": ("127.0.0.1", slow_server.port)}))
    out, messages = tmp_path / "dl", []
    for rows in (urls.head(200), urls.tail(230)):  # overlapping lists; the second has rows the first lacks
        src = tmp_path / f"urls{len(rows)}.parquet"
        pq.write_table(pa.Table.from_pandas(rows.reset_index(drop=True), preserve_index=False), src)
        stats = download(src, out, cfg, log=messages.append)
        status = pd.read_parquet(out / "status.parquet")
        assert sorted(status.uid) == sorted(rows.uid) and stats["accounting"]["ok"]
    assert any("url list changed" in m for m in messages)
    again = download(src, out, cfg, log=messages.append)  # the same list again resumes, nothing discarded
    assert again["success"] == stats["success"] and sum("url list changed" in m for m in messages) == 1


def test_resume_after_a_kill_redoes_nothing_finished_and_leaves_no_partial_shard(splits, sample_web, slow_server, tmp_path):
    out_splits, _ = splits
    urls = url_list(out_splits, []).head(600)  # four shards of 150
    src = tmp_path / "urls.parquet"
    pq.write_table(pa.Table.from_pandas(urls, preserve_index=False), src)
    out = tmp_path / "dl"
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r});"
            "from pathlib import Path; from benchmarks.download import DownloadConfig, download;"
            "from benchmarks.netguard import NetPolicy;"
            f"download(Path({str(src)!r}), Path({str(out)!r}), DownloadConfig(image_size=32, processes=1, threads=4,"
            f" timeout=1, samples_per_shard=150, policy=NetPolicy(True, False, {{'*': ('127.0.0.1', {slow_server.port})}})))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "pool").glob("*_stats.json")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-download: at least one shard done, others not
    proc.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in (out / "pool").glob("*_stats.json")}
    assert done_before
    cfg = DownloadConfig(image_size=32, processes=1, threads=4, timeout=1, samples_per_shard=150,
                         policy=NetPolicy(True, False, {"*": ("127.0.0.1", slow_server.port)}))
    stats = download(src, out, cfg, log=QUIET)
    for name, mtime in done_before.items():
        assert (out / "pool" / name).stat().st_mtime_ns == mtime  # not redone
    stems = {p.name.split(".")[0].split("_")[0] for p in (out / "pool").iterdir() if p.suffix in (".tar", ".parquet")}
    assert all((out / "pool" / f"{s}_stats.json").exists() for s in stems)  # no partial shard left
    assert stats["success"] + stats["failed"] == len(urls)


@pytest.mark.slow
def test_open_clip_train_reads_a_step_directory_as_is(splits, downloaded, tmp_path):
    out_splits, _ = splits
    dl, _, _ = downloaded
    out = tmp_path / "s"
    s = _reshard(out_splits, dl, out, samples_per_shard=100)
    step = next(st for st in s["steps"]["unfiltered"] if st["samples"] >= 128)
    res = subprocess.run(
        [sys.executable, "-m", "training.open_clip_main", "--model", "tic-tiny", "--train-data", step["pattern"],
         "--train-num-samples", "128", "--dataset-type", "webdataset", "--batch-size", "16", "--epochs", "1",
         "--workers", "1", "--precision", "fp32", "--logs", str(tmp_path / "logs"), "--name", "interop",
         "--save-frequency", "1", "--lr", "1e-3", "--warmup", "1", "--report-to", "", "--seed", "0"],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "logs" / "interop" / "checkpoints" / "epoch_1.pt").is_file()
    assert "Contrastive_loss" in (tmp_path / "logs" / "interop" / "out.log").read_text()


@pytest.mark.parametrize("ext", ["png", "webp"])
def test_png_and_webp_downloads_reshard_and_train(tmp_path, ext):
    """`tic-shards download --encode-format png|webp` stores `<key>.png`/`.webp` (img2dataset names the
    member by its encode format): reshard keeps that member and training reads it (issue 25: both
    hard-coded `jpg`, so such downloads gave empty shards)."""
    import io
    import tarfile

    from PIL import Image

    from benchmarks.reshard import TarReader, index_pool, write_step
    from training.data import BufferStream, load_eval_dir

    pool = tmp_path / "pool"
    pool.mkdir()
    with tarfile.open(pool / "00000.tar", "w") as tf:
        for i in range(3):
            buf = io.BytesIO()
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(buf, format=ext.upper())
            for member, data in ((f"00000{i:04d}.{ext}", buf.getvalue()),
                                 (f"00000{i:04d}.json", json.dumps({"uid": f"u{i}", "sha256": "x"}).encode())):
                info = tarfile.TarInfo(member)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    (pool / "00000_stats.json").write_text("{}")
    index = index_pool(pool)
    assert sorted(index) == ["u0", "u1", "u2"]
    with TarReader() as reader:
        sizes = write_step([{"uid": f"u{i}", "text": f"pic {i}"} for i in range(3)], index, tmp_path / "step", 10, reader)
    assert sizes == {"00000.tar": 3}
    with tarfile.open(tmp_path / "step" / "00000.tar") as tf:
        assert sorted(m.name for m in tf if m.name.endswith(ext)) == [f"u{i}.{ext}" for i in range(3)]
    ev = load_eval_dir(tmp_path / "step", "retrieval/x")
    assert ev.uids == ["u0", "u1", "u2"] and Image.open(io.BytesIO(ev.images[1])).size == (8, 8)
    stream = BufferStream([str(tmp_path / "step" / "00000.tar")], None, 3, 0, lambda im: im.size,
                          lambda texts: texts, shuffle_buffer=1)
    assert sorted(t for _, t in stream) == ["pic 0", "pic 1", "pic 2"]
