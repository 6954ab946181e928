"""The shape and size of a picture: ``render --size``, ``--width``, ``--height`` and ``--font-size``.

A :class:`Canvas` is the picture's size in pixels of the PNG (at :data:`SLIDE_DPI`, so 1920 × 1080 pixels
is a 13.33 × 7.5 inch slide, the size of a 16:9 slide in presentation programs; an SVG or PDF has the same
shape at that size in inches). :func:`parse_canvas` reads the options:

- ``--size 16:9`` (any ``A:B``): that aspect ratio, 1920 pixels along the longer side (1920 × 1080;
  ``4:3`` is 1920 × 1440); with ``--width W`` or ``--height H`` that side instead;
- ``--size 1600x900``: exactly that many pixels;
- ``--width W --height H`` without ``--size``: the same as ``--size WxH``;
- ``--width W`` or ``--height H`` alone: the picture keeps the drawing's own shape, scaled to that side.

With an aspect ratio, :mod:`cgraph_cli.present.render` lays the graph out to fill it (see its docstring):
``--rankdir`` not given picks the direction whose drawing is nearest that shape, the drawing is scaled to
fit (up to :data:`MAX_ZOOM` times the font size, or never beyond ``--font-size`` when given) and its nodes
are spread apart to fill what remains, so there is no empty band around the drawing.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from cgraph_cli.errors import CgraphError
from cgraph_cli.present.style import FONT_SIZE

SLIDE_DPI = 144  # pixels per inch of a PNG: 1920 pixels = 13.33 inches
SLIDE_PIXELS = 1920  # the longer side when --size gives an aspect ratio alone (a full-HD slide)
MIN_PIXELS = 16
MAX_PIXELS = 12000  # a side; the renderer's own limit too
MAX_ZOOM = 2.0  # a small drawing on a large canvas: its text grows to at most twice --font-size (24 points)
FONT_RANGE = (4.0, 96.0)  # points

_RATIO = re.compile(r"\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*\Z")
_PIXELS = re.compile(r"\s*(\d+)\s*[x×X]\s*(\d+)\s*\Z")
SIZE_HINT = "for example --size 16:9, --size 4:3 or --size 1920x1080"


@dataclass(frozen=True)
class Look:
    """A picture's slide options, checked: its canvas (None: the drawing's own size), the font size given (None:
    the default) and the theme's name (a key of :data:`cgraph_cli.present.style.THEMES`)."""

    canvas: Canvas | None = None
    font_size: float | None = None
    theme: str = "light"


@dataclass(frozen=True)
class Canvas:
    """A picture's size in PNG pixels; one side may be None (that side follows the drawing's shape)."""

    width: int | None
    height: int | None

    @property
    def aspect(self) -> float | None:
        """Width / height, when both are fixed."""
        if self.width is None or self.height is None:
            return None
        return self.width / self.height

    def inches(self) -> tuple[float | None, float | None]:
        """The canvas in inches (at :data:`SLIDE_DPI`)."""
        return (
            None if self.width is None else self.width / SLIDE_DPI,
            None if self.height is None else self.height / SLIDE_DPI,
        )

    def __str__(self) -> str:
        return f"{self.width or '?'}x{self.height or '?'}"


def _pixels(value: int, option: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_PIXELS <= value <= MAX_PIXELS:
        shown = value if isinstance(value, int) and not isinstance(value, bool) else repr(value)
        raise CgraphError(
            f"{option} must be a whole number of pixels from {MIN_PIXELS} to {MAX_PIXELS:,}, not {shown}",
            hint="for example --width 1920, or --size 16:9",
        )
    return value


def parse_canvas(size: str | None = None, width: int | None = None, height: int | None = None) -> Canvas | None:
    """The canvas that ``--size``, ``--width`` and ``--height`` ask for (None: the drawing's own size).

    Refuses (:class:`CgraphError`, exit 2) a size that is neither ``A:B`` nor ``WxH``, a zero or negative
    side, a side beyond :data:`MAX_PIXELS`, and options that say the same thing twice."""
    if width is not None:
        _pixels(width, "--width")
    if height is not None:
        _pixels(height, "--height")
    if size is None:
        if width is None and height is None:
            return None
        return Canvas(width, height)
    if not isinstance(size, str):
        raise CgraphError(f"--size: {size!r} is not a text such as 16:9 or 1920x1080", hint=SIZE_HINT)
    m = _PIXELS.match(size)
    if m:
        if width is not None or height is not None:
            raise CgraphError(
                f"--size {size.strip()} gives the size in pixels already: drop --width and --height",
                hint="or give an aspect ratio, e.g. --size 16:9 --width 1280",
            )
        w, h = int(m.group(1)), int(m.group(2))
        if w == 0 or h == 0:
            raise CgraphError(f"--size: '{size.strip()}' has a side of 0 pixels", hint=SIZE_HINT)
        return Canvas(_pixels(w, "--size's width"), _pixels(h, "--size's height"))
    m = _RATIO.match(size)
    if not m:
        raise CgraphError(
            f"--size: '{size}' is neither an aspect ratio such as 16:9 nor a size in pixels such as 1920x1080",
            hint=SIZE_HINT,
        )
    a, b = float(m.group(1)), float(m.group(2))
    if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
        raise CgraphError(
            f"--size: '{size.strip()}' is not a shape: both sides of an aspect ratio must be positive",
            hint=SIZE_HINT,
        )
    if width is not None and height is not None:
        raise CgraphError(
            f"--size {size.strip()} with both --width and --height says the shape twice: give one of them",
            hint="for example --size 16:9 --width 1280, or --width 1280 --height 720 without --size",
        )
    if width is not None:
        w, h = width, round(width * b / a)
    elif height is not None:
        w, h = round(height * a / b), height
    elif a >= b:
        w, h = SLIDE_PIXELS, round(SLIDE_PIXELS * b / a)
    else:
        w, h = round(SLIDE_PIXELS * a / b), SLIDE_PIXELS
    for side in (w, h):
        if not MIN_PIXELS <= side <= MAX_PIXELS:
            raise CgraphError(
                f"--size {size.strip()} makes a picture of {w} × {h} pixels; each side must be from "
                f"{MIN_PIXELS} to {MAX_PIXELS:,}",
                hint="give a less extreme aspect ratio, or set the size with --width/--height",
            )
    return Canvas(w, h)


def check_font_size(font_size: float | None) -> float:
    """``--font-size`` in points (default :data:`FONT_SIZE`), refused outside :data:`FONT_RANGE`."""
    if font_size is None:
        return FONT_SIZE
    lo, hi = FONT_RANGE
    ok = not isinstance(font_size, bool) and isinstance(font_size, (int, float))
    if not ok or not (math.isfinite(font_size) and lo <= font_size <= hi):
        shown = f"{font_size:g}" if ok else repr(font_size)
        raise CgraphError(
            f"--font-size must be a number of points from {lo:g} to {hi:g}, not {shown}",
            hint="for example --font-size 16",
        )
    return float(font_size)


def fit_job(canvas: Canvas, font_given: bool) -> dict:
    """What the renderer's child needs to fit a drawing to ``canvas`` (JSON-ready)."""
    return {
        "width": canvas.width,
        "height": canvas.height,
        "dpi": SLIDE_DPI,
        "max_zoom": 1.0 if font_given else MAX_ZOOM,
    }
