"""The pictures' style facts, in one place: the colours of each theme and the font sizes.

A theme is a :class:`Palette`: ``light`` (the default: white paper, printable) and ``dark`` (for dark
slides: dark background, light text and edges, values and gradients still told apart by colour).
:mod:`cgraph_cli.present.dot` draws every picture (the image, the ``--steps`` frames and GIF, the
interactive page's SVG) from one palette, and :mod:`cgraph_cli.present.html` puts the same colours into
the page's style sheet; nothing else names a colour of the picture.

Font sizes are written for the default node text of :data:`FONT_SIZE` points; ``--font-size F`` scales
every one of them by ``F / FONT_SIZE`` (:func:`font_pt`).
"""

from __future__ import annotations

from dataclasses import dataclass

FONT = "DejaVu Sans"
FONT_SIZE = 12.0  # points: a node's text; the other sizes below are relative to it

# points at the default FONT_SIZE: what each piece of text is
SIZES = {
    "node": 12.0,  # a node's name, value and gradient
    "legend": 11.0,  # the key under the picture
    "edge": 10.0,  # edge labels: the local derivatives
    "small": 10.0,  # a constant's box, a shape, a leaf's copies, "(×9 uses)"
    "port": 9.0,  # the operand ports of a non-commutative op (num, den, ...)
    "hint": 9.0,  # an anonymous node's name while stepping
    "caption": 13.0,  # a --steps frame's caption
}
CAPTION_CHAR = 6.7  # points: the width of one caption character at SIZES["caption"] (the caption cell's width)
CAPTION_HEIGHT = 22.0  # points: the caption row's height at the default font size


def font_pt(kind: str, font_size: float = FONT_SIZE) -> str:
    """The point size of text ``kind`` (a key of :data:`SIZES`) for node text of ``font_size`` points, as DOT
    text (``"10"``, ``"12.5"``)."""
    return f"{round(SIZES[kind] * font_size / FONT_SIZE, 2):g}"


@dataclass(frozen=True)
class Palette:
    """Every colour of a picture. ``text`` None: Graphviz's default (black), not written into the DOT text."""

    name: str
    background: str
    text: str | None
    value: str  # the forward pass: values
    grad: str  # the backward pass: gradients
    edge: str
    edge_label: str
    muted: str  # op symbols, shapes, notes
    off_path: str  # a node that does not reach the differentiated output: its border and text
    off_path_fill: str
    fill_input: str
    fill_const: str
    fill_op: str
    border_input: str
    border_const: str
    border_op: str
    backward_fill: str  # render --backward: the nodes of the backward pass
    cluster: str  # the frame of a function call
    cluster_label: str
    port_fill: str
    port_text: str

    def fill(self, kind: str) -> str:
        """The fill of a box of ``kind``: ``input``, ``const`` or ``op``."""
        return {"input": self.fill_input, "const": self.fill_const, "op": self.fill_op}[kind]

    def border(self, kind: str) -> str:
        """The border of a box of ``kind``: ``input``, ``const`` or ``op``."""
        return {"input": self.border_input, "const": self.border_const, "op": self.border_op}[kind]


LIGHT = Palette(
    name="light",
    background="white",
    text=None,
    value="#0b5cad",  # blue
    grad="#c2410c",  # vermillion (the pair reads in colour-blind palettes too)
    edge="#555555",
    edge_label="#6b6b6b",
    muted="#8a8a8a",
    off_path="#a0a0a0",
    off_path_fill="#f7f7f7",
    fill_input="#fdf6e3",
    fill_const="#f1f1f1",
    fill_op="#ffffff",
    border_input="#b08d3c",
    border_const="#a8a8a8",
    border_op="#4d4d4d",
    backward_fill="#fdece2",
    cluster="#9aa5b1",
    cluster_label="#52606d",
    port_fill="#eeeeee",
    port_text="#444444",
)

DARK = Palette(
    name="dark",
    background="#16181d",
    text="#e8eaed",
    value="#6fb3ff",  # light blue
    grad="#ff9b66",  # light vermillion: still apart from the blue, and from the inputs' amber
    edge="#aab2bd",
    edge_label="#a3a9b1",
    muted="#9aa0a6",
    off_path="#60656d",
    off_path_fill="#1c1f25",
    fill_input="#342c1c",
    fill_const="#2a2d33",
    fill_op="#22262d",
    border_input="#c9a24e",
    border_const="#7a7f87",
    border_op="#b8c0cc",
    backward_fill="#3d2418",
    cluster="#6b7785",
    cluster_label="#a9b4c0",
    port_fill="#343943",
    port_text="#d0d4da",
)

THEMES: dict[str, Palette] = {p.name: p for p in (LIGHT, DARK)}
