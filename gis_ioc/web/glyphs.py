"""The web map's label glyphs: MapLibre GL draws text only from signed-distance-field glyph ranges
(``{fontstack}/{range}.pbf``, 256 code points each). gis_ioc serves its own under ``/static/glyphs``,
made from DejaVu Sans Bold (Debian's ``fonts-dejavu-core``; free licence, every Vietnamese letter with its
tone marks) for the ranges Vietnamese needs, so that commune names are drawn offline:

    python -m gis_ioc.web.glyphs /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf

The format is MapLibre's (and fontnik's): glyphs rendered at 24 px with a 3 px buffer, distances over a
radius of 8 px with the edge at 0.75 (value 191); the field is computed at four times the size and
averaged down, which keeps the edges smooth.
"""

from __future__ import annotations

import hashlib
import math
import sys
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFont

from gis_ioc.web import STATIC_DIR

FONTSTACK = "DejaVu Sans Bold"
#: Basic Latin and Latin-1, Latin Extended-A/B (Đ đ Ơ ơ Ư ư), combining marks, Latin Extended Additional
#: (ạ ả ấ … ỹ) and general punctuation (– — … ‘ ’ “ ”).
RANGES = (0, 256, 768, 7680, 8192)
SIZE, BUFFER, RADIUS, CUTOFF, SCALE = 24, 3, 8.0, 0.25, 4
GLYPHS_DIR = STATIC_DIR / "glyphs"
DEJAVU_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes | str) -> bytes:
    """One protocol-buffer field: a varint (wire type 0) or length-delimited bytes (wire type 2)."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 31)


def _edges(ink: NDArray[np.bool_]) -> NDArray[np.float64]:
    """The centres of the ink's boundary pixels (ink beside no ink), as (row, column) pairs."""
    padded = np.pad(ink, 1)
    around = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return np.argwhere(ink & ~around).astype(np.float64)


def _nearest(shape: tuple[int, ...], edges: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each pixel's distance to the nearest of ``edges`` (exact, by brute force in chunks)."""
    if not len(edges):
        return np.full(shape, np.inf)
    rows, cols = np.indices(shape)
    points = np.stack([rows.ravel(), cols.ravel()], axis=1).astype(np.float64)
    nearest = np.empty(len(points))
    for i in range(0, len(points), 2048):
        chunk = points[i : i + 2048]
        nearest[i : i + 2048] = np.sqrt(((chunk[:, None, :] - edges[None, :, :]) ** 2).sum(axis=2).min(axis=1))
    return nearest.reshape(shape)


def _distances(ink: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Each pixel's distance to the ink's outline (half-way between ink and no ink), negative inside."""
    outside = _nearest(ink.shape, _edges(ink)) - 0.5
    inside = _nearest(ink.shape, _edges(~ink)) - 0.5
    return np.where(ink, -inside, outside)


def _sdf(font: ImageFont.FreeTypeFont, char: str) -> tuple[bytes, int, int, int, int]:
    """The glyph's distance field (with its buffer) and its width, height, left and top (above the baseline)."""
    mask, (ox, oy) = font.getmask2(char, mode="L", anchor="ls")
    w, h = mask.size
    if w == 0 or h == 0:
        return b"", 0, 0, 0, 0
    ink = np.asarray(Image.frombytes("L", (w, h), bytes(mask)), dtype=np.uint8)
    left, top = math.floor(ox / SCALE), math.floor(oy / SCALE)
    right, bottom = math.ceil((ox + w) / SCALE), math.ceil((oy + h) / SCALE)
    width, height = right - left, bottom - top
    pad = BUFFER * SCALE
    canvas = np.zeros(((height + 2 * BUFFER) * SCALE, (width + 2 * BUFFER) * SCALE), dtype=bool)
    y0, x0 = oy - top * SCALE + pad, ox - left * SCALE + pad
    canvas[y0 : y0 + h, x0 : x0 + w] = ink >= 128
    signed = _distances(canvas) / SCALE  # in pixels of the 24 px glyph, positive outside the ink
    rows, cols = canvas.shape[0] // SCALE, canvas.shape[1] // SCALE
    small = signed.reshape(rows, SCALE, cols, SCALE).mean(axis=(1, 3))
    values = np.clip(255 - 255 * (small / RADIUS + CUTOFF), 0, 255).round().astype(np.uint8)
    return values.tobytes(), width, height, left, -top


def _bitmap(font: ImageFont.FreeTypeFont, char: str) -> bytes:
    mask, _offset = font.getmask2(char, mode="L", anchor="ls")
    return bytes(mask)


def _missing(font: ImageFont.FreeTypeFont, char: str, notdef: bytes) -> bool:
    """Whether the font lacks the character (it would draw its empty box)."""
    return _bitmap(font, char) == notdef


def glyph_range(font_path: Path, start: int) -> bytes:
    """One range file (code points ``start`` to ``start + 255``) of the glyphs the font has."""
    # one character at a time: no shaping (raqm refuses separators such as U+2028)
    font = ImageFont.truetype(str(font_path), SIZE * SCALE, layout_engine=ImageFont.Layout.BASIC)
    small = ImageFont.truetype(str(font_path), SIZE, layout_engine=ImageFont.Layout.BASIC)
    notdef = _bitmap(font, "\uffff")  # a non-character: what the font draws for what it lacks
    glyphs = b""
    for code in range(start, start + 256):
        char = chr(code)
        if code < 32 or 0x7F <= code < 0xA0 or (char != " " and _missing(font, char, notdef)):
            continue
        bitmap, width, height, left, top = _sdf(font, char)
        advance = round(small.getlength(char))
        glyph = _field(1, code)
        if bitmap:
            glyph += _field(2, bitmap)
        glyph += _field(3, width) + _field(4, height) + _field(5, _zigzag(left)) + _field(6, _zigzag(top - SIZE))
        glyph += _field(7, advance)
        glyphs += _field(3, glyph)
    stack = _field(1, FONTSTACK) + _field(2, f"{start}-{start + 255}") + glyphs
    return _field(1, stack)


def build(font_path: Path, out: Path = GLYPHS_DIR) -> list[Path]:
    """Write every range of :data:`RANGES` under ``out/FONTSTACK`` and the folder's SHA256SUMS."""
    folder = out / FONTSTACK
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for start in RANGES:
        path = folder / f"{start}-{start + 255}.pbf"
        path.write_bytes(glyph_range(font_path, start))
        written.append(path)
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name not in ("SHA256SUMS", "VERSION"))
    sums = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(out).as_posix()}\n" for p in files)
    (out / "SHA256SUMS").write_text(sums)
    return written


if __name__ == "__main__":
    for written in build(Path(sys.argv[1] if len(sys.argv) > 1 else DEJAVU_BOLD)):
        print(written)
