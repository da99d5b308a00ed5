"""The sample web's image server: renders every image from the token in its URL.

It answers both origin-form requests (`GET /path`, any Host) and proxy-form requests
(`GET http://farm3.staticflickr.com/path`), so a client can reach the world's many
hosts through it as an HTTP proxy (http_proxy=http://127.0.0.1:PORT) without DNS.

Failures are part of the world, chosen by the token: 404, a slow answer (`slow_seconds`),
bytes that are not an image, and an over-large picture. Anything without a valid token is 404.

A minimal asyncio HTTP/1.1 server (keep-alive, no body parsing) in one or more forked
worker processes that share the listening socket; templates are cached per process. The
too-large template is encoded before the server reports ready (and before workers fork), so
that no client's timeout runs while it is encoded.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from urllib.parse import urlsplit

from .images import (CONTENT_TYPES, FAIL_NOT_FOUND, FAIL_NOT_IMAGE, FAIL_SLOW, FORMATS, NOT_IMAGE_BODY,
                     TemplateStore, decode_token)

NOT_FOUND_BODY = b"<html><body><h1>404 Not Found</h1></body></html>\n"


class ImageResponder:
    def __init__(self, slow_seconds: float = 3.0, cache_bytes: int = 256 << 20):
        self.slow_seconds = slow_seconds
        self.templates = TemplateStore(max_bytes=cache_bytes)

    def respond(self, target: str) -> tuple[int, str, bytes, float]:
        """(status, content type, body, delay seconds) for a request target."""
        path = urlsplit(target).path if "://" in target else target.split("?", 1)[0]
        last = path.rsplit("/", 1)[-1]
        if path == "/healthz":
            return 200, "text/plain", b"ok\n", 0.0
        tok = decode_token(last)
        if tok is None or tok.failure == FAIL_NOT_FOUND:
            return 404, "text/html", NOT_FOUND_BODY, 0.0
        ctype = CONTENT_TYPES[FORMATS[tok.key.fmt]]
        if tok.failure == FAIL_NOT_IMAGE:
            return 200, ctype, NOT_IMAGE_BODY, 0.0
        delay = self.slow_seconds if tok.failure == FAIL_SLOW else 0.0
        return 200, ctype, self.templates.image_bytes(tok), delay


async def _handle(responder: ImageResponder, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            parts = line.decode("latin-1").split()
            keep_alive = len(parts) == 3 and parts[2] == "HTTP/1.1"
            while True:  # headers
                h = await reader.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                low = h.lower()
                if low.startswith(b"connection:"):
                    keep_alive = b"keep-alive" in low
            if len(parts) != 3 or parts[0] not in ("GET", "HEAD"):
                status, ctype, body, delay = 400, "text/plain", b"bad request\n", 0.0
            else:
                status, ctype, body, delay = responder.respond(parts[1])
            if delay:
                await asyncio.sleep(delay)
            reason = {200: "OK", 404: "Not Found", 400: "Bad Request"}[status]
            head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                    f"Connection: {'keep-alive' if keep_alive else 'close'}\r\nServer: tic-sample-web\r\n\r\n")
            writer.write(head.encode() + (body if parts[0] != "HEAD" else b""))
            await writer.drain()
            if not keep_alive:
                break
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def _serve_socket(sock: socket.socket, responder: ImageResponder) -> None:
    async def main():
        server = await asyncio.start_server(lambda r, w: _handle(responder, r, w), sock=sock, backlog=1024)
        async with server:
            await server.serve_forever()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


def serve(host: str = "127.0.0.1", port: int = 0, workers: int = 1, slow_seconds: float = 3.0,
          ready=None) -> None:
    """Serve until SIGTERM/SIGINT. `ready(port)` is called once the socket listens."""
    sock = socket.create_server((host, port), backlog=1024)
    sock.setblocking(False)
    bound = sock.getsockname()[1]
    responder = ImageResponder(slow_seconds)
    responder.templates.warm_too_large()
    if ready:
        ready(bound)
    if workers <= 1:
        _serve_socket(sock, responder)
        return
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # child: serve on the shared socket until killed
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            try:
                _serve_socket(sock, responder)
            finally:
                os._exit(0)
        children.append(pid)

    def stop(*_):
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for pid in children:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    sock.close()


def main_serve(host: str, port: int, workers: int, slow_seconds: float) -> None:
    def ready(p):
        print(f"tic-sample-web: serving images on http://{host}:{p}/ ({workers} worker(s)); "
              f"use it as http_proxy=http://{host}:{p} for the world's hosts", flush=True)

    serve(host, port, workers, slow_seconds, ready)
    sys.stdout.flush()
