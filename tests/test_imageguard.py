"""What one image may cost (issue 24, item 11): bytes read per response, pixels declared before decoding."""
from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from benchmarks.imageguard import ResponseCap, ResponseTooLarge, header_refusal

from .conftest import REPO


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def black_png(width: int, height: int) -> bytes:
    """A valid RGB PNG of `width` x `height` black pixels, small whatever its size (the issue's probe:
    20000 x 20000 in 1.2 MB). Every 100-row block compresses to the same bytes after a full flush, so
    the stream is one block repeated (zlib header and Adler-32 written by hand)."""
    rows = 100
    assert height % rows == 0
    block = b"\0" * ((1 + 3 * width) * rows)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    assert first == again
    adler = 1
    for _ in range(height // rows):
        adler = zlib.adler32(block, adler)
    idat = b"\x78\xda" + again * (height // rows) + c.flush() + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def test_the_header_is_read_without_decoding():
    assert Image.open(io.BytesIO(black_png(300, 200))).load() is not None  # the generator makes real PNGs
    bomb = black_png(20000, 20000)
    assert len(bomb) < 1_300_000
    t0 = time.perf_counter()
    assert header_refusal(io.BytesIO(bomb), 25e6).startswith("tic-imageguard refused: too_large")
    big = header_refusal(io.BytesIO(black_png(8000, 8000)), 25e6)
    assert time.perf_counter() - t0 < 1.0
    assert "too_large" in big and "8000x8000" in big
    assert header_refusal(io.BytesIO(black_png(300, 200)), 25e6) is None
    assert "decode_error" in header_refusal(io.BytesIO(b"<html>hotlinking denied</html>"), 25e6)


class _Bodies(BaseHTTPRequestHandler):
    """Serves BODIES[path] = (bytes, send Content-Length); counts the bytes it managed to send."""
    bodies: dict = {}
    sent: dict = {}

    def do_GET(self):  # noqa: N802
        body, with_length = type(self).bodies.get(self.path, (None, True))
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        if with_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        sent = 0
        try:
            for i in range(0, len(body), 1 << 16):
                self.wfile.write(body[i:i + (1 << 16)])
                sent += len(body[i:i + (1 << 16)])
        except OSError:
            pass
        type(self).sent[self.path] = sent

    def log_message(self, *args):
        pass


@pytest.fixture
def bodies():
    big = black_png(300, 200) + b"\0" * (64 << 20)  # a 64 MB body
    _Bodies.bodies = {"/bomb.png": (black_png(20000, 20000), True), "/big8k.png": (black_png(8000, 8000), True),
                      "/big.png": (big, True), "/nolength.png": (big, False), "/ok.png": (black_png(300, 200), True)}
    _Bodies.sent = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Bodies)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], _Bodies.sent
    server.shutdown()
    server.server_close()


def test_a_response_is_not_read_past_the_cap(bodies):
    port, sent = bodies
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), ResponseCap(1 << 20))
    with pytest.raises(ResponseTooLarge, match="body_too_large .Content-Length"):
        opener.open(f"http://127.0.0.1:{port}/big.png", timeout=5)
    with opener.open(f"http://127.0.0.1:{port}/nolength.png", timeout=5) as r:
        with pytest.raises(ResponseTooLarge, match="body_too_large .more than 1048576 bytes"):
            r.read()
    with opener.open(f"http://127.0.0.1:{port}/ok.png", timeout=5) as r:
        assert r.read() == black_png(300, 200)
    with pytest.raises(urllib.error.HTTPError):  # an error status keeps its reason
        opener.open(f"http://127.0.0.1:{port}/missing.png", timeout=5)


DOWNLOAD = """
import json, resource, sys, time
from pathlib import Path
from benchmarks.download import DownloadConfig, download
from benchmarks.netguard import NetPolicy
t0 = time.perf_counter()
stats = download(Path(sys.argv[1]), Path(sys.argv[2]), DownloadConfig(processes=1, threads=4, timeout=5,
                 samples_per_shard=50, verify_hash=False, policy=NetPolicy(allow_loopback=True)), log=lambda *_: None)
print(json.dumps({"seconds": time.perf_counter() - t0, "stats": stats,
                  "worker_max_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def test_bombs_are_refused_with_a_reason_quickly_and_without_memory(bodies, tmp_path):
    """The probe: a 20000 x 20000 PNG (1.2 MB) was decoded before being refused (+1.9 GB, 19 s), and a
    64 MB body was read whole."""
    port, sent = bodies
    names = ["bomb.png", "big8k.png", "big.png", "nolength.png", "ok.png"]
    urls = [f"http://127.0.0.1:{port}/{n}" for n in names]
    df = pd.DataFrame({"uid": [f"{i:032x}" for i in range(len(urls))], "url": urls, "text": ["t"] * len(urls)})
    pq.write_table(pa.Table.from_pandas(df), tmp_path / "urls.parquet")
    res = subprocess.run([sys.executable, "-c", DOWNLOAD, str(tmp_path / "urls.parquet"), str(tmp_path / "dl")],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    status = pd.read_parquet(tmp_path / "dl" / "status.parquet").set_index("url")
    reasons = {n: status.loc[u, "reason"] for n, u in zip(names, urls)}
    assert reasons == {"bomb.png": "too_large", "big8k.png": "too_large", "big.png": "body_too_large",
                       "nolength.png": "body_too_large", "ok.png": "success"}
    assert "header declares 8000x8000" in status.loc[urls[1], "error_message"]
    assert report["stats"]["reasons"] == {"body_too_large": 2, "too_large": 2}
    assert report["stats"]["accounting"]["ok"]
    assert report["stats"]["config"]["max_body_bytes"] == 20 << 20
    # Neither body was read whole (the socket buffers hold a few MB more than the 20 MiB read).
    assert sent.get("/nolength.png", 0) < 40 << 20 and sent.get("/big.png", 0) < 40 << 20
    # Decoding the bomb takes 1.2 GB (RGB 20000 x 20000) on top of the worker's own, and 15-20 s.
    assert report["worker_max_rss_mb"] < 1500, report  # 784 MB here after the fix, 2750 MB before
    assert report["seconds"] < 60, report


def test_the_byte_cap_flag_is_validated(tmp_path, capsys):
    from benchmarks import shards_cli

    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "stats.json").write_text("{}\n")
    try:  # refused by the flag's parser (argparse exits) or by the job's own check
        rc = shards_cli.main(["download", str(tmp_path / "splits"), str(tmp_path / "dl"), "--max-body-bytes", "0"])
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--max-body-bytes" in err and not (tmp_path / "dl").exists()
