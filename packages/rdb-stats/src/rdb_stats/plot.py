"""Pictures of the history: increment size (bars) and changed files (points) per session.

Hand-written SVG (with text), or a small PNG (no text) made with zlib only. Both share one
geometry, documented in docs/rdb-stats.md: the plot area spans x in [MARGIN, width - MARGIN)
and y in [MARGIN, height - MARGIN); session i of n owns the columns
[MARGIN + i*w/n, MARGIN + (i+1)*w/n) with w = width - 2*MARGIN; its bar rises from the
bottom of the area in proportion to its increment size (the largest reaches the top); its
point (the number of new + changed + deleted files) sits at the middle of its columns.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from rdb_format.errors import RdbError, UsageError
from rdb_format.timestamps import format_timestring
from rdb_stats.core import SessionReport, StatsReport

MARGIN = 60
HEIGHT = 400
MIN_WIDTH = 800

BACKGROUND = (255, 255, 255)
AXIS = (96, 96, 96)
BAR = (70, 130, 180)  # steelblue
POINT = (200, 40, 40)


@dataclass(frozen=True)
class Point:
    """One session in the picture."""

    time: int
    increment_bytes: int  # IncrementFileSize of the session (0 if unknown)
    changed_files: int  # NewFiles + ChangedFiles + DeletedFiles (0 if unknown)


def points(report: StatsReport) -> list[Point]:
    return [_point(s) for s in report.sessions]


def _point(session: SessionReport) -> Point:
    stats = session.statistics
    changed = sum(int(stats.get(k, 0)) for k in ("NewFiles", "ChangedFiles", "DeletedFiles"))
    return Point(session.time, int(stats.get("IncrementFileSize", 0)), changed)


@dataclass(frozen=True)
class Geometry:
    width: int
    height: int
    count: int

    @property
    def plot_width(self) -> float:
        return self.width - 2 * MARGIN

    @property
    def bottom(self) -> int:
        return self.height - MARGIN  # first row below the plot area

    def slot(self, i: int) -> tuple[float, float]:
        step = self.plot_width / self.count
        return MARGIN + i * step, MARGIN + (i + 1) * step

    def center(self, i: int) -> float:
        left, right = self.slot(i)
        return (left + right) / 2

    def y(self, value: int, largest: int) -> float:
        """The row for ``value`` on a 0..largest scale (the top of the area for ``largest``)."""
        area = self.height - 2 * MARGIN
        return self.bottom - (area * value / largest if largest else 0.0)


def geometry(count: int) -> Geometry:
    return Geometry(max(MIN_WIDTH, 2 * MARGIN + 2 * count), HEIGHT, max(count, 1))


def _size(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def render_svg(data: list[Point], *, title: str) -> str:
    g = geometry(len(data))
    top_bytes = max((p.increment_bytes for p in data), default=0)
    top_changed = max((p.changed_files for p in data), default=0)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{g.width}" height="{g.height}" '
        f'viewBox="0 0 {g.width} {g.height}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{g.width}" height="{g.height}" fill="white"/>',
        f'<text x="{g.width / 2:.1f}" y="24" text-anchor="middle" font-size="15">'
        f"{escape(title)}</text>",
        f'<line class="axis" x1="{MARGIN}" y1="{g.bottom}" x2="{g.width - MARGIN}" '
        f'y2="{g.bottom}" stroke="#606060"/>',
        f'<line class="axis" x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{g.bottom}" '
        'stroke="#606060"/>',
        f'<text x="{MARGIN - 4}" y="{MARGIN + 4}" text-anchor="end" fill="#4682b4">'
        f"{escape(_size(top_bytes))}</text>",
        f'<text x="{g.width - MARGIN + 4}" y="{MARGIN + 4}" fill="#c82828">{top_changed}</text>',
        f'<text x="{MARGIN}" y="{g.height - 20}" fill="#4682b4">■ increment size</text>',
        f'<text x="{MARGIN + 140}" y="{g.height - 20}" fill="#c82828">'
        "● files changed (new + changed + deleted)</text>",
    ]
    bars: list[str] = []
    dots: list[str] = []
    line: list[str] = []
    for i, p in enumerate(data):
        left, right = g.slot(i)
        gap = (right - left) * 0.15
        top = g.y(p.increment_bytes, top_bytes)
        stamp = escape(format_timestring(p.time, utc_offset=0))
        bars.append(
            f'<rect class="increment" data-time="{p.time}" x="{left + gap:.2f}" y="{top:.2f}" '
            f'width="{max(right - left - 2 * gap, 0.5):.2f}" height="{g.bottom - top:.2f}" '
            f'fill="#4682b4"><title>{stamp}: {escape(_size(p.increment_bytes))}</title></rect>'
        )
        cx, cy = g.center(i), g.y(p.changed_files, top_changed)
        line.append(f"{cx:.2f},{cy:.2f}")
        dots.append(
            f'<circle class="changed" data-time="{p.time}" cx="{cx:.2f}" cy="{cy:.2f}" r="3" '
            f'fill="#c82828"><title>{stamp}: {p.changed_files} files</title></circle>'
        )
    out += bars
    if len(line) > 1:
        out.append(
            f'<polyline points="{" ".join(line)}" fill="none" stroke="#c82828" '
            'stroke-width="1" stroke-opacity="0.6"/>'
        )
    out += dots
    if data:
        for i, anchor in ((0, "start"), (len(data) - 1, "end")):
            when = format_timestring(data[i].time, utc_offset=0)[:10]
            out.append(
                f'<text x="{g.slot(i)[0 if anchor == "start" else 1]:.1f}" '
                f'y="{g.bottom + 16}" text-anchor="{anchor}">{when}</text>'
            )
    out.append("</svg>")
    return "\n".join(out) + "\n"


class _Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(BACKGROUND) * (width * height))

    def fill(self, x0: int, y0: int, x1: int, y1: int, colour: tuple[int, int, int]) -> None:
        """Paint the rectangle [x0, x1) x [y0, y1), clipped."""
        x0, x1 = max(x0, 0), min(x1, self.width)
        y0, y1 = max(y0, 0), min(y1, self.height)
        if x0 >= x1 or y0 >= y1:
            return
        run = bytes(colour) * (x1 - x0)
        for y in range(y0, y1):
            start = (y * self.width + x0) * 3
            self.pixels[start : start + len(run)] = run

    def png(self) -> bytes:
        stride = self.width * 3
        raw = b"".join(
            b"\0" + bytes(self.pixels[y * stride : (y + 1) * stride]) for y in range(self.height)
        )

        def chunk(kind: bytes, body: bytes) -> bytes:
            crc = zlib.crc32(kind + body) & 0xFFFFFFFF
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def render_png(data: list[Point]) -> bytes:
    """An 8-bit RGB PNG: axes, one bar and one 5x5 point per session, no text."""
    g = geometry(len(data))
    canvas = _Canvas(g.width, g.height)
    canvas.fill(MARGIN - 1, MARGIN, MARGIN, g.bottom + 1, AXIS)
    canvas.fill(MARGIN - 1, g.bottom, g.width - MARGIN, g.bottom + 1, AXIS)
    top_bytes = max((p.increment_bytes for p in data), default=0)
    top_changed = max((p.changed_files for p in data), default=0)
    for i, p in enumerate(data):
        left, right = g.slot(i)
        gap = (right - left) * 0.15
        x0 = int(left + gap)
        x1 = max(int(right - gap), x0 + 1)
        if p.increment_bytes > 0:
            top = min(int(g.y(p.increment_bytes, top_bytes)), g.bottom - 1)
            canvas.fill(x0, top, x1, g.bottom, BAR)
    for i, p in enumerate(data):
        cx, cy = int(g.center(i)), int(g.y(p.changed_files, top_changed))
        cy = min(cy, g.bottom - 3)
        canvas.fill(cx - 2, cy - 2, cx + 3, cy + 3, POINT)
    return canvas.png()


def write_plot(report: StatsReport, path: Path) -> None:
    """Write ``path`` as SVG or PNG, by its suffix; UsageError for any other suffix."""
    suffix = path.suffix.lower()
    data = points(report)
    title = f"{report.repository.name or report.repository}: increments and changes per session"
    if suffix == ".svg":
        content = render_svg(data, title=title).encode("utf-8")
    elif suffix == ".png":
        content = render_png(data)
    else:
        raise UsageError(f"--plot {path}: the file name must end in .svg or .png")
    try:
        path.write_bytes(content)
    except OSError as error:
        raise RdbError(f"cannot write the picture: {error.strerror}", path=path) from None
