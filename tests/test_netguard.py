"""The address guard (issue 24, item 10): literal hosts in every notation, IPv6 forms that embed IPv4,
and proxies, which must never be handed a metadata or private target."""
from __future__ import annotations

import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks import shards_cli
from benchmarks.download import DownloadConfig, download
from benchmarks.netguard import (NetPolicy, address_refusal, check_proxy_environment, install, parse_host_address,
                                 target_refusal, uninstall)
from ticcore.errors import InputError

QUIET = lambda *_: None  # noqa: E731
PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy",
              "NO_PROXY", "REQUEST_METHOD")
METADATA_FORMS = ["169.254.169.254", "2852039166", "0xA9FEA9FE", "0251.0376.0251.0376", "169.254.43518",
                  "0xa9.0xfe.0xa9.0xfe", "169.254.169.254.", "[::ffff:169.254.169.254]", "[::ffff:a9fe:a9fe]",
                  "[::169.254.169.254]", "[2002:a9fe:a9fe::1]", "[64:ff9b::169.254.169.254]",
                  "[64:ff9b:1:a9fe:a9:fe00::]", "[2001:0:a9fe:a9fe::1]", "[2001:0:4136:e378:8000:63bf:5601:5601]"]


class _ProxyRecorder(BaseHTTPRequestHandler):
    """A forward proxy that fetches nothing: it records each request line's target and answers 404."""
    hits: list = []

    def do_GET(self):  # noqa: N802
        type(self).hits.append(self.path)
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_CONNECT(self):  # noqa: N802
        type(self).hits.append("CONNECT " + self.path)
        self.send_response(502)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def proxy(monkeypatch):
    """A recording proxy on loopback, named by every proxy variable (and no other proxy setting)."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    _ProxyRecorder.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyRecorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    for name in ("http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, url)
    yield url, _ProxyRecorder.hits
    server.shutdown()
    server.server_close()


def test_literal_hosts_in_every_notation_are_read_as_the_resolver_reads_them():
    for form in METADATA_FORMS[:7]:
        assert str(parse_host_address(form)) == "169.254.169.254", form
    assert str(parse_host_address("127.1")) == "127.0.0.1" and str(parse_host_address("10.1")) == "10.0.0.1"
    assert str(parse_host_address("0x7f.1")) == "127.0.0.1" and str(parse_host_address("017700000001")) == "127.0.0.1"
    for name in ("example.com", "1.2.3.4.5", "256.1.1.1", "08.1.1.1", "a.1", "0x1g.1"):
        assert parse_host_address(name) is None, name


def test_ipv6_forms_that_embed_ipv4_are_judged_by_what_they_embed():
    strict, lax = NetPolicy(), NetPolicy(allow_loopback=True, allow_private=True)
    for form in METADATA_FORMS:
        addr = parse_host_address(form)
        assert address_refusal(addr, strict) == address_refusal(addr, lax) == "metadata_address", form
    private = {"::ffff:10.0.0.1": "private_address", "2002:a00:1::1": "private_address",
               "64:ff9b::10.0.0.1": "private_address", "::ffff:127.0.0.1": "loopback_address",
               "2002:7f00:1::1": "loopback_address", "64:ff9b::127.0.0.1": "loopback_address",
               "2001:0:4136:e378:8000:63bf:f5ff:fffe": "private_address",  # Teredo client 10.0.0.1, obfuscated
               "::ffff:169.254.1.1": "link_local_address", "::ffff:0.0.0.5": "reserved_address",
               "fec0::1": "private_address", "64:ff9b:1::8.8.8.8": "private_address"}
    for ip, reason in private.items():
        assert address_refusal(ip, strict) == reason, ip
    for ip in ("::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::8.8.8.8", "2606:4700::1111", "8.8.8.8"):
        assert address_refusal(ip, strict) is None, ip
    assert address_refusal("0.0.0.0", lax) == address_refusal("0.1.2.3", lax) == "reserved_address"
    assert address_refusal("::1", lax) is None and address_refusal("192.0.0.192", lax) == "metadata_address"


def test_target_hosts_are_checked_as_a_proxy_would_read_them():
    p = NetPolicy()
    assert target_refusal("http://2852039166/latest/meta-data/", p) == "metadata_address"
    assert target_refusal("http://10.1/a.jpg", p) == "private_address"
    assert target_refusal("http://localhost:9/a.jpg", p) == "loopback_address"
    assert target_refusal("http://no-such-host.invalid/a.jpg", p) == "unresolvable_host"  # fail closed
    assert target_refusal("http://user@8.8.8.8/a.jpg", p) == "ambiguous_host"
    assert target_refusal("http://8.8.8.8\\@169.254.169.254/a.jpg", p) == "ambiguous_host"
    assert target_refusal("http://8.8.8.8/a.jpg", p) is None


def _open(url: str) -> str:
    try:
        urllib.request.urlopen(url, timeout=5).close()
        return "ok"
    except urllib.error.HTTPError as exc:
        return f"http_{exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return str(exc)


def test_a_proxy_is_never_handed_a_refused_target(proxy, monkeypatch):
    url, hits = proxy
    targets = [f"http://{h}/latest/meta-data/" for h in METADATA_FORMS] + [
        "http://10.0.0.1/a.jpg", "http://10.1/a.jpg", "http://192.168.1.1/b.jpg", "http://[fd00::1]/c.jpg",
        "https://10.0.0.1/d.jpg", "https://169.254.169.254/e.jpg", "http://127.0.0.1:9/loop.jpg",
        "http://u:p@8.8.8.8/f.jpg", "http://no-such-host.invalid/g.jpg"]
    install(NetPolicy(allow_proxy=True))
    try:
        results = {t: _open(t) for t in targets}
    finally:
        uninstall()
    assert hits == []
    for t, res in results.items():
        assert "tic-netguard blocked" in res, (t, res)
    # The proxy is used for an allowed target (here loopback, allowed; the proxy answers 404), for https too.
    install(NetPolicy(allow_loopback=True, allow_proxy=True))
    try:
        assert _open("http://127.0.0.1:9/loop.jpg") == "http_404"
        assert "tic-netguard blocked" in _open("http://169.254.169.254/")
        _open("https://127.0.0.1:9/tls.jpg")
    finally:
        uninstall()
    assert hits == ["http://127.0.0.1:9/loop.jpg", "CONNECT 127.0.0.1:9"]


def test_no_proxy_hosts_go_direct_and_are_checked_there(proxy, monkeypatch):
    _, hits = proxy
    monkeypatch.setenv("no_proxy", "169.254.169.254,10.0.0.1")
    install(NetPolicy(allow_proxy=True))
    try:
        meta, private = _open("http://169.254.169.254/x"), _open("http://10.0.0.1/x")
    finally:
        uninstall()
    assert hits == [] and "metadata_address" in meta and "private_address" in private


def test_all_proxy_alone_is_not_used_by_urllib(proxy, monkeypatch):
    _, hits = proxy
    monkeypatch.delenv("http_proxy")
    monkeypatch.delenv("HTTPS_PROXY")
    check_proxy_environment(NetPolicy())  # ALL_PROXY alone: nothing urllib would use, nothing to refuse
    install(NetPolicy())
    try:
        assert "metadata_address" in _open("http://169.254.169.254/x")
    finally:
        uninstall()
    assert hits == []


def _urls(path, urls):
    df = pd.DataFrame({"uid": [f"{i:032x}" for i in range(len(urls))], "url": urls, "text": ["t"] * len(urls)})
    pq.write_table(pa.Table.from_pandas(df), path)
    return path


def test_download_refuses_a_proxy_unless_allowed_and_then_checks_every_target(proxy, tmp_path):
    """The probe: with http_proxy set, 169.254.169.254 and 10.0.0.1 reached the proxy."""
    _, hits = proxy
    urls = ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/a.jpg", "http://2852039166/b.jpg",
            "http://[::ffff:a9fe:a9fe]/c.jpg", "http://[64:ff9b::a00:1]/d.jpg", "http://127.1:9/ok.jpg"]
    src = _urls(tmp_path / "urls.parquet", urls)
    cfg = DownloadConfig(processes=1, threads=4, timeout=2, samples_per_shard=50, verify_hash=False)
    with pytest.raises(InputError, match="HTTPS_PROXY and http_proxy set"):
        download(src, tmp_path / "refused", cfg, log=QUIET)
    assert not (tmp_path / "refused").exists() and hits == []
    allowed = DownloadConfig(processes=1, threads=4, timeout=2, samples_per_shard=50, verify_hash=False,
                             policy=NetPolicy(allow_loopback=True, allow_proxy=True))
    stats = download(src, tmp_path / "proxied", allowed, log=QUIET)
    status = pd.read_parquet(tmp_path / "proxied" / "status.parquet").set_index("url")["reason"]
    assert hits == ["http://127.1:9/ok.jpg"]  # only the allowed target was handed to the proxy
    assert status[urls[0]] == status[urls[2]] == status[urls[3]] == "metadata_address"
    assert status[urls[1]] == status[urls[4]] == "private_address"
    assert status[urls[5]] == "not_found"
    assert stats["accounting"]["ok"] and stats["config"]["policy"]["allow_proxy"]


def test_the_cli_refuses_a_proxy_in_one_line(proxy, tmp_path, capsys):
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "stats.json").write_text("{}\n")
    rc = shards_cli.main(["download", str(tmp_path / "splits"), str(tmp_path / "dl")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--allow-proxy" in err and "127.0.0.1" not in err
    assert not (tmp_path / "dl").exists()
    rc = shards_cli.main(["download", str(tmp_path / "splits"), str(tmp_path / "dl"), "--allow-proxy",
                          "--resolve", "*=127.0.0.1:9"])
    assert rc == 2 and "do not combine" in capsys.readouterr().err
