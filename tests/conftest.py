"""Shared fixtures: a small generated sample web and its image server (both offline, deterministic)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _find_real_warc_dir() -> Path:
    """$TIC_REAL_WARC_DIR, else the nearest ancestor's shared/data/warc (the checkout sits beside shared/)."""
    if os.environ.get("TIC_REAL_WARC_DIR"):
        return Path(os.environ["TIC_REAL_WARC_DIR"])
    for parent in REPO.parents:
        candidate = parent / "shared" / "data" / "warc"
        if candidate.is_dir():
            return candidate
    return REPO.parent / "shared" / "data" / "warc"


REAL_WARC_DIR = _find_real_warc_dir()

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

SAMPLE_PAIRS = 2000


@pytest.fixture(scope="session")
def sample_web(tmp_path_factory) -> Path:
    """A 2,000-pair world in two metadata shards (generated once per test session, ~5 s)."""
    from sample_web.generate import generate
    from sample_web.world import SampleWebConfig

    out = tmp_path_factory.mktemp("sample-web") / "world"
    generate(SampleWebConfig(out=out, pairs=SAMPLE_PAIRS, seed=7, shard_rows=1000, imagenet_per_class=3),
             progress=False, log=lambda *_: None)
    return out


class ImageServer:
    def __init__(self, proc: subprocess.Popen, port: int):
        self.proc, self.port = proc, port
        self.base = f"http://127.0.0.1:{port}"
        self.proxy = self.base

    def opener(self):
        import urllib.request

        return urllib.request.build_opener(urllib.request.ProxyHandler({"http": self.proxy}))

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def start_image_server(workers: int = 1, slow_seconds: float = 1.0) -> ImageServer:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sample_web.cli", "serve", "--port", "0", "--workers", str(workers),
         "--slow-seconds", str(slow_seconds)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    line = proc.stdout.readline()
    m = re.search(r"127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"image server did not start: {line!r}")
    return ImageServer(proc, int(m.group(1)))


@pytest.fixture(scope="session")
def image_server():
    server = start_image_server()
    yield server
    server.stop()


def real_warc_files() -> list[Path]:
    return sorted(p for p in REAL_WARC_DIR.iterdir() if p.name != "SOURCES.md") if REAL_WARC_DIR.is_dir() else []


@pytest.fixture(scope="session")
def spark():
    """One local[1] Spark session for the whole test run."""
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[1]").appName("tic-clip-tests")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.default.parallelism", "2")
               .config("spark.driver.memory", "2g")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def timestamps_out(spark, sample_web, tmp_path_factory):
    """The timestamp join over the sample web (one run per test session): (output dir, stats)."""
    from curation.timestamp_join import TimestampJoinConfig, run

    out = tmp_path_factory.mktemp("join") / "full"
    stats = run(spark, TimestampJoinConfig(str(sample_web / "warc.manifest"), str(sample_web / "metadata"), str(out)),
                log=lambda *_: None)
    return out, stats


from benchmarks.splits import SplitConfig  # noqa: E402

SPLIT_CFG = SplitConfig(eval_size=40, seeds=3, max_holdout_fraction=0.15, net_max_per_year=200, net_max_fraction=0.2)


@pytest.fixture(scope="session")
def filtered_pools(spark, sample_web, timestamps_out, tmp_path_factory):
    from curation.filter_job import FilterConfig, run

    ts_dir, _ = timestamps_out
    root = tmp_path_factory.mktemp("filtered-for-splits")
    for name in ("basic", "bestpool"):
        run(spark, FilterConfig(name, str(sample_web / "metadata"), str(root / name), timestamps=str(ts_dir)),
            log=lambda *_: None)
    return root


@pytest.fixture(scope="session")
def splits(spark, sample_web, timestamps_out, filtered_pools, tmp_path_factory):
    ts_dir, _ = timestamps_out
    out = tmp_path_factory.mktemp("splits") / "out"
    from benchmarks.cli import SplitsJob, build

    stats = build(spark, SplitsJob(str(out), str(ts_dir), str(sample_web / "metadata"), str(filtered_pools), SPLIT_CFG,
                                   keep_net_candidates=True), log=lambda *_: None)
    return out, stats




@pytest.fixture(scope="session")
def slow_server():
    server = start_image_server(workers=2, slow_seconds=3.0)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def downloaded(splits, sample_web, slow_server, tmp_path_factory):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from benchmarks.download import DownloadConfig, download
    from benchmarks.netguard import NetPolicy
    from benchmarks.pools import url_list

    out_splits, _ = splits
    root = tmp_path_factory.mktemp("download")
    urls = url_list(out_splits, [str(sample_web / "imagenet_like" / "images.parquet")])
    pq.write_table(pa.Table.from_pandas(urls, preserve_index=False), root / "requested.parquet")
    cfg = DownloadConfig(image_size=32, processes=2, threads=16, timeout=1, samples_per_shard=400,
                         policy=NetPolicy(allow_loopback=True, resolve={"*": ("127.0.0.1", slow_server.port)}))
    stats = download(root / "requested.parquet", root / "dl", cfg, log=lambda *_: None)
    return root / "dl", stats, urls




@pytest.fixture(scope="session")
def shards_dir(splits, downloaded, sample_web, tmp_path_factory):
    """The test world resharded into steps (samples_per_shard 100)."""
    from benchmarks.reshard import ReshardConfig, reshard

    out_splits, _ = splits
    dl, _, _ = downloaded
    out = tmp_path_factory.mktemp("shards") / "shards"
    reshard(ReshardConfig(out_splits, dl, out, samples_per_shard=100,
                          static=str(sample_web / "imagenet_like" / "images.parquet")), log=lambda *_: None)
    return out
