"""The Version Check badge older admin pages load as an image: "up-to-date", "update available", "update asap".

SVG as text; PNG drawn with a tiny built-in bitmap font and encoded by hand (no imaging dependency).
"""

from __future__ import annotations

import struct
import zlib
from functools import cache

BADGES = {  # severity -> (text, RGB background)
    "success": ("up-to-date", (0x10, 0x85, 0x48)),
    "warning": ("update available", (0xC1, 0x74, 0x00)),
    "danger": ("update asap", (0xDD, 0x2B, 0x0E)),
}

# 5x9 glyphs (rows 7-8 are the descender), only the letters the three texts use.
_GLYPHS = {
    "a": ".....|.....|.###.|....#|.####|#...#|.####|.....|.....",
    "b": "#....|#....|####.|#...#|#...#|#...#|####.|.....|.....",
    "d": "....#|....#|.####|#...#|#...#|#...#|.####|.....|.....",
    "e": ".....|.....|.###.|#...#|#####|#....|.###.|.....|.....",
    "i": "..#..|.....|.##..|..#..|..#..|..#..|.###.|.....|.....",
    "l": ".##..|..#..|..#..|..#..|..#..|..#..|.###.|.....|.....",
    "o": ".....|.....|.###.|#...#|#...#|#...#|.###.|.....|.....",
    "p": ".....|.....|####.|#...#|#...#|#...#|####.|#....|#....",
    "s": ".....|.....|.####|#....|.###.|....#|####.|.....|.....",
    "t": "..#..|..#..|#####|..#..|..#..|..#..|...##|.....|.....",
    "u": ".....|.....|#...#|#...#|#...#|#...#|.####|.....|.....",
    "v": ".....|.....|#...#|#...#|#...#|.#.#.|..#..|.....|.....",
    "-": ".....|.....|.....|.....|#####|.....|.....|.....|.....",
    " ": ".....|.....|.....|.....|.....|.....|.....|.....|.....",
}
_PAD, _ADVANCE, _GLYPH_ROWS, _SCALE = 4, 6, 9, 2


def svg(severity: str) -> bytes:
    text, (r, g, b) = BADGES[severity]
    width = 12 + 7 * len(text)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" aria-label="{text}">'
        f'<title>{text}</title><rect width="{width}" height="20" rx="3" fill="#{r:02x}{g:02x}{b:02x}"/>'
        f'<text x="{width // 2}" y="14" fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif"'
        f' font-size="11">{text}</text></svg>'
    ).encode()


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def encode_png(width: int, height: int, rows: list[bytes]) -> bytes:
    """8-bit RGB PNG from `height` rows of 3*`width` bytes."""
    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 on every row
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


@cache
def png(severity: str) -> bytes:
    text, background = BADGES[severity]
    width, height = 2 * _PAD + _ADVANCE * len(text) - 1, 2 * _PAD + _GLYPH_ROWS
    pixels = [[background] * width for _ in range(height)]
    for index, char in enumerate(text):
        for y, line in enumerate(_GLYPHS[char].split("|")):
            for x, dot in enumerate(line):
                if dot == "#":
                    pixels[_PAD + y][_PAD + index * _ADVANCE + x] = (255, 255, 255)
    rows = [bytes(v for pixel in row for _ in range(_SCALE) for v in pixel) for row in pixels]
    return encode_png(width * _SCALE, height * _SCALE, [row for row in rows for _ in range(_SCALE)])
