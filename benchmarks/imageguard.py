"""What one downloaded image may cost: bytes read, and pixels decoded.

img2dataset 1.47.0 (`img2dataset/downloader.py`, `resizer.py`) bounds a download by:
- `timeout`: urllib's socket timeout, per connect and per read, not per response: a server that
  sends a byte every few seconds holds a thread for as long as it likes;
- `thread_count`: at most 2 x thread_count samples held in memory per worker process (a semaphore);
- `max_image_area`, `min_image_size`, `max_aspect_ratio`: checked on the decoded array, after
  `cv2.imdecode` has allocated and filled it;
- `retries`, `verify_hash` (after the whole body is read), and X-Robots-Tag `noai`-style directives.
It has no limit on the bytes read (`download_image` calls `r.read()`), and nothing looks at an image
before decoding it: a 1.2 MB PNG that declares 20000 x 20000 pixels was decoded in full (+1.9 GB,
19 s) before being refused as too large.

This module adds, installed by `benchmarks.download` around img2dataset:
- `ResponseCap`, a urllib response processor (joins the opener `netguard.install` builds): a
  response that declares a Content-Length above `max_bytes`, or sends more than `max_bytes`, fails
  with reason `body_too_large` once max_bytes + 1 bytes are read, never more;
- `HeaderCheckedResizer`, wrapped around img2dataset's Resizer: PIL's `Image.open` reads the size
  from the header without decoding the pixels; an image whose width x height exceeds the pixel
  limit (img2dataset's `max_image_area`) fails as `too_large` before OpenCV sees it, and a body PIL
  cannot identify as an image fails as `decode_error` (so nothing reaches the decoder unmeasured).
  PIL's own ceiling (`Image.MAX_IMAGE_PIXELS`, 89.5 Mpx; `DecompressionBombError` above twice that)
  also counts as `too_large`.
Each refusal's message starts with LIMIT_MARK and its reason, which `download.classify_error`
turns into the status row's reason.
"""
from __future__ import annotations

import urllib.request

from PIL import Image

LIMIT_MARK = "tic-imageguard refused"
# 20 MiB: every JPEG or WebP within the default 25 Mpx pixel limit fits (a 24 Mpx camera JPEG at high
# quality is 8-15 MB), and a worker's worst case stays bounded: img2dataset holds at most 2 x threads
# bodies, 64 x 20 MiB = 1.3 GiB at the default 32 threads. What it refuses are PNG/TIFF photos near
# the pixel limit, which a 256 px training image does not need.
DEFAULT_MAX_BYTES = 20 * 2**20
_CHUNK = 1 << 20


class ResponseTooLarge(OSError):
    """Raised from a capped response's read; img2dataset records str(exc) as the error message."""


def _capped_read(read, limit: int, url: str):
    total = 0

    def capped(amt=None):
        nonlocal total
        budget = limit + 1 - total  # read one byte past the limit, to tell "exactly limit" from "more"
        if amt is not None and amt >= 0:
            data = read(min(amt, budget))
            total += len(data)
        else:
            parts = []
            while total <= limit:
                chunk = read(min(_CHUNK, limit + 1 - total))
                if not chunk:
                    break
                parts.append(chunk)
                total += len(chunk)
            data = b"".join(parts)
        if total > limit:
            raise ResponseTooLarge(f"{LIMIT_MARK}: body_too_large (more than {limit} bytes from {url})")
        return data

    return capped


class ResponseCap(urllib.request.BaseHandler):
    """Refuse, or stop reading, a response body over `max_bytes`."""

    handler_order = 1001  # after urllib's HTTPErrorProcessor (1000): an error status keeps its own reason

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes

    def http_response(self, req, response):
        if getattr(response, "_tic_capped", False):  # a redirect's final response passes through twice
            return response
        declared = (response.headers.get("Content-Length") or "").strip()
        if declared.isdigit() and int(declared) > self.max_bytes:
            response.close()
            raise ResponseTooLarge(f"{LIMIT_MARK}: body_too_large (Content-Length {declared} > {self.max_bytes})")
        response.read = _capped_read(response.read, self.max_bytes, req.full_url)
        response._tic_capped = True
        return response

    https_response = http_response


def header_refusal(stream, max_pixels: float) -> str | None:
    """None if the image's header declares at most `max_pixels` pixels, else a refusal message."""
    stream.seek(0)
    try:
        with Image.open(stream) as im:  # reads the header only; decoding waits for load()
            width, height = im.size
            fmt = im.format
    except Image.DecompressionBombError as exc:
        return f"{LIMIT_MARK}: too_large ({exc})"
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for a body that is not an image
        return f"{LIMIT_MARK}: decode_error (no image header PIL can read: {type(exc).__name__})"
    finally:
        stream.seek(0)
    if width * height > max_pixels:
        return f"{LIMIT_MARK}: too_large ({fmt} header declares {width}x{height} pixels, limit {max_pixels:.0f})"
    return None


class HeaderCheckedResizer:
    """img2dataset's Resizer, called only for images whose header is within the pixel limit. Same call
    and result shape as `img2dataset.resizer.Resizer.__call__`: (img, width, height, original_width,
    original_height, error_message)."""

    def __init__(self, resizer, max_pixels: float):
        self.resizer = resizer
        self.max_pixels = max_pixels

    def __call__(self, img_stream, blurring_bbox_list=None):
        refusal = header_refusal(img_stream, self.max_pixels)
        if refusal:
            return None, None, None, None, None, refusal
        return self.resizer(img_stream, blurring_bbox_list)
