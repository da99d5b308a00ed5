"""Deterministic images for the sample web, addressed by a token in their URL.

An image URL carries a 40-hex token (see `encode_token`) that fixes everything about the
image: concept, the year whose "look" it has, colour, scene, format, size, a failure
mode and a serial number. The image server renders straight from the token, so nothing is
stored on disk.

Served bytes = template(key) + trailer(token). The template is the encoded picture of an
`ImageKey` (shared by many images); the fixed-length trailer after the end-of-image marker
makes every image's bytes, and so its sha256, unique. Decoders (PIL, OpenCV, libwebp)
ignore trailing bytes. Because the trailer comes last, the generator computes an image's
sha256 from a cached hash state of its template plus the trailer, without re-encoding.
"""
from __future__ import annotations

import functools
import hashlib
import io
import re
import struct
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .vocabulary import ALL_CONCEPTS, COLORS, SCENES

FORMATS = ("jpg", "png", "webp")
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
FAILURES = ("ok", "not_found", "slow", "not_image", "too_large")
FAIL_OK, FAIL_NOT_FOUND, FAIL_SLOW, FAIL_NOT_IMAGE, FAIL_TOO_LARGE = range(5)
TOO_LARGE_SIZE = (6000, 4500)
NOT_IMAGE_BODY = b"<html><body><h1>Access denied</h1><p>Hotlinking is not allowed.</p></body></html>\n"

_TOKEN = struct.Struct(">HBBBBBHHQ")  # concept, look_year-2000, color, scene, fmt, failure, w, h, serial
TOKEN_HEX_LEN = 2 * (_TOKEN.size + 1)  # + 1 check byte
TOKEN_RE = re.compile(rf"(?<![0-9a-f])([0-9a-f]{{{TOKEN_HEX_LEN}}})(?![0-9a-f])")
TRAILER_MAGIC = b"\x00TIC-SAMPLE-WEB\x00"

# Web images come in a few standard sizes; sizes are tied to template keys so that the
# number of distinct templates (and renders) stays bounded whatever --pairs is.
SIZES = (
    (640, 480), (800, 600), (500, 375), (400, 300), (300, 225), (600, 400), (480, 640), (450, 600),
    (512, 512), (600, 600), (300, 300), (250, 250), (220, 330), (960, 540), (640, 360), (728, 90),
    (1000, 250), (160, 600), (150, 150), (120, 90), (180, 120), (199, 300), (200, 200), (900, 300),
    (901, 300), (320, 240), (720, 480), (336, 280), (400, 400), (350, 500), (1024, 683), (560, 420),
)


@dataclass(frozen=True)
class ImageKey:
    """What decides an image's pixels (and its template bytes)."""
    concept: int
    look_year: int
    color: int
    scene: int
    fmt: int
    width: int
    height: int


@dataclass(frozen=True)
class ImageToken:
    key: ImageKey
    failure: int
    serial: int

    @functools.cached_property
    def hex(self) -> str:  # a URL, a trailer and the truth each need it: packed once
        return encode_token(self)

    @property
    def ext(self) -> str:
        return FORMATS[self.key.fmt]


def _check_byte(raw: bytes) -> int:
    return zlib.crc32(raw) & 0xFF


def encode_token(tok: ImageToken) -> str:
    k = tok.key
    raw = _TOKEN.pack(k.concept, k.look_year - 2000, k.color, k.scene, k.fmt, tok.failure,
                      k.width, k.height, tok.serial)
    return (raw + bytes([_check_byte(raw)])).hex()


_TOKEN_FIELDS = np.dtype([("concept", ">u2"), ("look", "u1"), ("color", "u1"), ("scene", "u1"), ("fmt", "u1"),
                          ("failure", "u1"), ("width", ">u2"), ("height", ">u2"), ("serial", ">u8")])
_CRC_TABLE = np.array([functools.reduce(lambda c, _: (c >> 1) ^ (0xEDB88320 if c & 1 else 0), range(8), b)
                       for b in range(256)], np.uint32)


def encode_tokens(concept, look_year, color, scene, fmt, failure, width, height, serial) -> list[str]:
    """`encode_token` for arrays (one token per row), byte for byte the same, built in bulk:
    the check byte's CRC-32 runs column by column over all rows at once."""
    n = len(concept)
    packed = np.empty(n, _TOKEN_FIELDS)
    for name, values in (("concept", concept), ("look", np.asarray(look_year) - 2000), ("color", color),
                         ("scene", scene), ("fmt", fmt), ("failure", failure), ("width", width),
                         ("height", height), ("serial", serial)):
        values = np.asarray(values)
        limit = np.iinfo(packed.dtype[name]).max
        if n and (values.min() < 0 or values.max() > limit):  # struct.pack would refuse it too
            raise ValueError(f"token field {name} out of range 0..{limit}")
        packed[name] = values
    raw = packed.view(np.uint8).reshape(n, _TOKEN.size)
    crc = np.full(n, 0xFFFFFFFF, np.uint32)
    for col in range(_TOKEN.size):
        crc = _CRC_TABLE[(crc ^ raw[:, col]) & 0xFF] ^ (crc >> 8)
    blob = np.empty((n, _TOKEN.size + 1), np.uint8)
    blob[:, :-1] = raw
    blob[:, -1] = ~crc & 0xFF
    text = blob.tobytes().hex()
    return [text[i:i + TOKEN_HEX_LEN] for i in range(0, n * TOKEN_HEX_LEN, TOKEN_HEX_LEN)]


def decode_token(text: str) -> ImageToken | None:
    """The token in a URL path (or None if there is no valid one)."""
    m = TOKEN_RE.search(text)
    if not m:
        return None
    blob = bytes.fromhex(m.group(1))
    raw, check = blob[:-1], blob[-1]
    if _check_byte(raw) != check:
        return None
    concept, look, color, scene, fmt, failure, w, h, serial = _TOKEN.unpack(raw)
    if (concept >= len(ALL_CONCEPTS) or color >= len(COLORS) or scene >= len(SCENES)
            or fmt >= len(FORMATS) or failure >= len(FAILURES) or not (0 < w <= 20000 and 0 < h <= 20000)):
        return None
    return ImageToken(ImageKey(concept, look + 2000, color, scene, fmt, w, h), failure, serial)


def trailer(token_hex: str) -> bytes:
    """The bytes after an image's template: they make each image's bytes (and sha256) unique."""
    return TRAILER_MAGIC + bytes.fromhex(token_hex)


def key_layout(concept: int, look_year: int, color: int, scene: int) -> tuple[int, int, int]:
    """(fmt, width, height) of the pictures of a (concept, look, colour, scene): a fixed function."""
    h = hashlib.blake2b(f"{concept}/{look_year}/{color}/{scene}".encode(), digest_size=8).digest()
    size = SIZES[h[0] % len(SIZES)]
    fmt = 0 if h[1] < 233 else (1 if h[1] < 248 else 2)  # ~91% jpg, 6% png, 3% webp
    return fmt, size[0], size[1]


# ---------------------------------------------------------------- pixels

# A concept's picture is an icon: one of 16 silhouettes with one of 9 marks (16 x 9 = 144 >= the 143
# concepts), drawn large with thick strokes. Arbitrary 5x5 bit-pattern glyphs (the world before issue 26)
# were not learnable by a small CLIP on CPU: after 57k samples static zero-shot stayed at chance, while the
# colour and scene were named almost perfectly. A silhouette and a mark are things a small model tells
# apart quickly (probes: a supervised conv-stem ViT reached 12% after 28k samples; contrastively, tic-pico reached
# 65% static zero-shot after 440k samples; `perf/bench_pretrain.py` measures it on the sample web itself).
def _star(points: int, inner: float, turn: float = 0.0) -> tuple:
    return tuple(((1.0 if k % 2 == 0 else inner) * np.cos(turn + np.pi * k / points),
                  (1.0 if k % 2 == 0 else inner) * np.sin(turn + np.pi * k / points)) for k in range(2 * points))


def _regular(sides: int, turn: float = 0.0) -> tuple:
    return tuple((np.cos(turn + 2 * np.pi * k / sides), np.sin(turn + 2 * np.pi * k / sides)) for k in range(sides))


# unit polygons around (0, 0), y down; None = a circle
ICON_SHAPES: tuple = (
    None, _regular(3, -np.pi / 2), _regular(3, np.pi / 2), _regular(4, np.pi / 4), _regular(4, 0.0),
    _regular(5, -np.pi / 2), _regular(6, 0.0), _star(5, 0.45, -np.pi / 2), _star(4, 0.35), _star(8, 0.6),
    ((-1, -.3), (1, -.3), (1, .3), (-1, .3)),                                               # bar
    ((-.3, -1), (.3, -1), (.3, 1), (-.3, 1)),                                               # pillar
    ((-1, -.3), (-.3, -.3), (-.3, -1), (.3, -1), (.3, -.3), (1, -.3), (1, .3), (.3, .3), (.3, 1), (-.3, 1),
     (-.3, .3), (-1, .3)),                                                                  # plus
    ((-1, -1), (0, -1), (0, 0), (1, 0), (1, 1), (-1, 1)),                                   # L
    ((-1, 0), (0, -1), (1, 0), (.4, 0), (.4, 1), (-.4, 1), (-.4, 0)),                       # arrow
    ((-1, -1), (1, -1), (0, 1)),                                                            # wedge
)
ICON_MARKS = ("plain", "hole", "crossbar", "pole", "dot_above", "dot_below", "twin", "corner_dot", "frame")


def concept_icon(concept: int) -> tuple[int, int]:
    """(silhouette, mark) of a concept's icon: the concept's identity, the same in every year."""
    return concept % len(ICON_SHAPES), concept // len(ICON_SHAPES)


def look_style(look_year: int) -> tuple[str, float, float]:
    """(fill, rotation in degrees, stroke as a fraction of the image) of a year's look.

    The look drifts in style, never in identity, and away from 2014 monotonically: solid icons until 2016,
    solid with an inner outline from 2017, outlines only from 2020; a slow turn of 2.5 degrees a year and
    thicker strokes. Years before 2014 (YFCC's, RedCaps') are solid. A model trained on one era's style sees
    the next one as a new look, and the furthest era as the least familiar."""
    years_on = look_year - 2014
    fill = "solid" if years_on < 3 else ("double" if years_on < 6 else "outline")
    return fill, 2.5 * years_on, 0.05 + 0.006 * max(0, years_on)


def _draw_silhouette(draw, shape, cx, cy, r, rot, fill, line, width) -> None:
    if shape is None:
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill, outline=line, width=width)
        return
    c, s = np.cos(rot), np.sin(rot)
    draw.polygon([(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in shape],
                 fill=fill, outline=line, width=width)


_SCENE_TOP = np.array([(120, 190, 240), (200, 215, 235), (10, 15, 45), (30, 80, 40), (150, 150, 155)], float)
_SCENE_BOTTOM = np.array([(235, 215, 160), (245, 248, 252), (30, 30, 60), (70, 110, 50), (90, 90, 95)], float)


# Each scene's colours drift, a straight line from its 2014 look to its 2022 look (the fashion in
# filters and presets, the time of day and season people shoot in), extrapolated outside those years.
# The scene is what a small CLIP trained from scratch learns first (colour and scene words), so this
# is the drift it can forget: with the glyph drift alone, Sequential stayed as good as
# Cumulative-All on old years in the sample-world experiment.
_SCENE_TOP_2022 = np.array([(250, 165, 110), (235, 200, 165), (90, 25, 100), (95, 95, 25), (90, 120, 205)], float)
_SCENE_BOTTOM_2022 = np.array([(190, 160, 215), (205, 220, 250), (80, 45, 30), (130, 75, 35), (120, 85, 60)], float)


def scene_colors(scene: int, look_year: int) -> tuple[np.ndarray, np.ndarray]:
    """(top, bottom) RGB of a scene's gradient in a given year's look, before the contrast."""
    f = (look_year - 2014) / 8
    return (_SCENE_TOP[scene] + f * (_SCENE_TOP_2022[scene] - _SCENE_TOP[scene]),
            _SCENE_BOTTOM[scene] + f * (_SCENE_BOTTOM_2022[scene] - _SCENE_BOTTOM[scene]))


def _background(scene: int, look_year: int, w: int, h: int):
    """The scene's vertical gradient in the year's colours (see `scene_colors`); later years are
    shot with more contrast."""
    t = np.linspace(0.0, 1.0, h)[:, None]
    top, bottom = scene_colors(scene, look_year)
    rows = top * (1 - t) + bottom * t
    rows = np.clip((rows - 128) * (1.0 + 0.04 * (look_year - 2014)) + 128, 0, 255)
    if scene == 4:  # street: lane stripes
        rows[(np.arange(h) // max(2, h // 12)) % 4 == 0] *= 0.8
    column = Image.fromarray(np.ascontiguousarray(rows.astype(np.uint8)[:, None, :]))
    return column.resize((w, h), Image.NEAREST)


def render_image(key: ImageKey):
    """The picture for a key, as a PIL image (drawn with PIL primitives: fast at any size)."""
    w, h = key.width, key.height
    seed = int.from_bytes(hashlib.blake2b(repr(key).encode(), digest_size=8).digest(), "big")
    rng = np.random.default_rng(seed)
    img = _background(key.scene, key.look_year, w, h)
    draw = ImageDraw.Draw(img)
    # The icon: centred within the image's middle square (what a centre crop keeps, even of a banner),
    # jittered in place and size.
    side = min(w, h)
    r = side * rng.uniform(0.26, 0.34)
    cx = w / 2 + rng.uniform(-0.12, 0.12) * side
    cy = h / 2 + rng.uniform(-0.12, 0.12) * side
    style, turn, stroke = look_style(key.look_year)
    rot = np.radians(turn + rng.uniform(-5, 5))
    width = max(1, int(side * stroke))
    fill = np.array(COLORS[key.color][1], float)
    # A contrasting rim, so that white on snow or black at night still shows.
    rim = fill * 0.35 if fill.mean() > 128 else np.minimum(fill * 1.9 + 60, 255)
    rim_rgb, fill_rgb = tuple(int(v) for v in rim), tuple(int(v) for v in fill)
    shape_i, mark = concept_icon(key.concept)
    shape = ICON_SHAPES[shape_i]
    body = None if style == "outline" else fill_rgb
    line = fill_rgb if style == "outline" else rim_rgb
    if ICON_MARKS[mark] == "twin":
        for dx in (-0.5, 0.5):
            _draw_silhouette(draw, shape, cx + dx * r, cy, 0.55 * r, rot, body, line, width)
    else:
        _draw_silhouette(draw, shape, cx, cy, r, rot, body, line, width)
        if style == "double":
            _draw_silhouette(draw, shape, cx, cy, 0.6 * r, rot, None, rim_rgb, max(1, width // 2))
    name = ICON_MARKS[mark]
    if name == "hole":
        top, bottom = scene_colors(key.scene, key.look_year)
        hole = tuple(int(v) for v in (top + bottom) / 2)
        draw.ellipse((cx - 0.3 * r, cy - 0.3 * r, cx + 0.3 * r, cy + 0.3 * r), fill=hole)
    elif name == "crossbar":
        draw.rectangle((cx - 1.2 * r, cy - 0.1 * r, cx + 1.2 * r, cy + 0.1 * r), fill=rim_rgb)
    elif name == "pole":
        draw.rectangle((cx - 0.1 * r, cy - 1.2 * r, cx + 0.1 * r, cy + 1.2 * r), fill=rim_rgb)
    elif name in ("dot_above", "dot_below"):
        dy = -1.2 * r if name == "dot_above" else 1.2 * r
        draw.ellipse((cx - 0.25 * r, cy + dy - 0.25 * r, cx + 0.25 * r, cy + dy + 0.25 * r), fill=rim_rgb)
    elif name == "corner_dot":
        draw.ellipse((cx - 1.3 * r, cy - 1.3 * r, cx - 0.8 * r, cy - 0.8 * r), fill=rim_rgb)
    elif name == "frame":
        draw.rectangle((cx - 1.25 * r, cy - 1.25 * r, cx + 1.25 * r, cy + 1.25 * r), outline=rim_rgb,
                       width=max(1, width // 2))
    # Sensor noise in one corner, fixed by the key.
    ph, pw = min(h, 48), min(w, 48)
    patch = np.asarray(img.crop((0, 0, pw, ph)), dtype=np.int16) + rng.integers(-6, 7, size=(ph, pw, 1), dtype=np.int16)
    img.paste(Image.fromarray(np.clip(patch, 0, 255).astype(np.uint8)), (0, 0))
    return img


def render_pixels(key: ImageKey) -> np.ndarray:
    """RGB uint8 array (height, width, 3) for a key."""
    return np.asarray(render_image(key))


def solid_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid PNG of any size in one colour, built row-wise in bounded memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(rgb) * width
    comp = zlib.compressobj(9)
    parts = []
    rows_per_step = max(1, (1 << 20) // len(row))
    for y in range(0, height, rows_per_step):
        parts.append(comp.compress(row * min(rows_per_step, height - y)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


TOO_LARGE_RGB = (128, 128, 128)


def encode_template(key: ImageKey, failure: int = FAIL_OK) -> bytes:
    if failure == FAIL_TOO_LARGE:
        return solid_png(key.width, key.height, TOO_LARGE_RGB)
    img = render_image(key)
    buf = io.BytesIO()
    fmt = FORMATS[key.fmt]
    if fmt == "jpg":
        img.save(buf, "JPEG", quality=85)
    elif fmt == "png":
        img.save(buf, "PNG", compress_level=1)
    else:
        img.save(buf, "WEBP", quality=80, method=0)
    return buf.getvalue()


def template_key(tok: ImageToken) -> tuple[ImageKey, int]:
    """The cache key of a token's template. Too-large images share one template per size: each takes
    ~0.6 s to encode, which a server must not spend while a client's timeout runs
    (see `TemplateStore.warm_too_large`)."""
    if tok.failure == FAIL_TOO_LARGE:
        k = tok.key
        return too_large_key(k.width, k.height), FAIL_TOO_LARGE
    return tok.key, FAIL_OK


def too_large_key(width: int, height: int) -> ImageKey:
    return ImageKey(0, 2014, 0, 0, 1, width, height)


class TemplateStore:
    """Encoded templates (LRU-bounded by bytes) and their sha256 prefix states. Thread-safe.

    With `keep_bytes=False` (the generator) only the hash states are kept: an image's sha256
    needs the template's hash state, not its bytes, and a state is ~200 bytes.
    """

    def __init__(self, max_bytes: int = 256 << 20, keep_bytes: bool = True):
        self.max_bytes = max_bytes
        self.keep_bytes = keep_bytes
        self._items: OrderedDict = OrderedDict()
        self._states: dict = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.renders = 0
        self.render_seconds = 0.0

    def _render(self, ck) -> bytes:
        # CPU time of the rendering thread, not wall time: the benchmark subtracts it from the process's
        # CPU time, and wall time would also count the moments this process was not running.
        t0 = time.thread_time()
        data = encode_template(*ck)
        state = hashlib.sha256(data)  # a one-off per template too, so it is timed with the render
        with self._lock:
            self.renders += 1
            self.render_seconds += time.thread_time() - t0
            self._states[ck] = state
            if self.keep_bytes and ck not in self._items:
                self._items[ck] = data
                self._bytes += len(data)
                while self._bytes > self.max_bytes and len(self._items) > 1:
                    _, old = self._items.popitem(last=False)
                    self._bytes -= len(old)
        return data

    def template_bytes(self, tok: ImageToken) -> bytes:
        ck = template_key(tok)
        with self._lock:
            data = self._items.get(ck)
            if data is not None:
                self._items.move_to_end(ck)
                return data
        return self._render(ck)

    def warm_too_large(self, size: tuple[int, int] = TOO_LARGE_SIZE) -> None:
        """Encode the too-large template now, so that serving it never stalls a request."""
        self.template_bytes(ImageToken(too_large_key(*size), FAIL_TOO_LARGE, 0))

    def image_bytes(self, tok: ImageToken) -> bytes:
        return self.template_bytes(tok) + trailer(tok.hex)

    def hash_state(self, tok: ImageToken):
        """sha256 state after the template's bytes (rendered once): `image_sha256` finishes it."""
        ck = template_key(tok)
        state = self._states.get(ck)
        if state is None:
            self._render(ck)
            state = self._states[ck]
        return state

    def sha256(self, tok: ImageToken) -> str:
        return image_sha256(self.hash_state(tok), tok.hex)


def image_sha256(template_state, token_hex: str) -> str:
    """sha256 of the served bytes (template + trailer), from the template's hash state."""
    h = template_state.copy()
    h.update(trailer(token_hex))
    return h.hexdigest()
