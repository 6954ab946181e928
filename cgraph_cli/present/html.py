"""The interactive page of `cgraph render --format html`: one self-contained HTML file per graph.

The page is the picture `cgraph render` draws (the same DOT from :mod:`cgraph_cli.present.dot`, laid out
by Graphviz in a child process through :func:`cgraph_cli.present.render.render_dot`) as inline SVG, with
inline CSS and a small hand-written script (``assets/page.css`` and ``assets/page.js``, shipped in the
package): pan and zoom, a panel with a node's value and gradient in full and its chain-rule step, and a
stepper through the forward and backward passes whose captions are the ``--steps`` frames' captions.

Everything the page shows is computed here, in Python: numbers are :mod:`cgraph_cli.fmt`'s text, names
are :func:`cgraph_cli.ir.names.node_names`' (through the picture), the steps and their text come from
:func:`cgraph_cli.analysis.explain.explain` (:func:`step_lines`) and the frames of
:meth:`GraphPicture.steps`. The script only shows and hides what it is given.

Safety. Every piece of program text (file name, names, expressions, source lines with their comments)
reaches the page either escaped by Graphviz inside the SVG, escaped by :func:`html.escape`, or inside the
JSON data block, where ``<``, ``>`` and ``&`` are written as ``\\u003c``, ``\\u003e``, ``\\u0026`` (so no
``</script>`` or ``<!--`` can end the block); the script reads that block with ``JSON.parse`` and writes
text with ``textContent`` only. A content security policy meta tag allows nothing but this page's own
style and script, named by their SHA-256 hashes: no network, no other script, no plug-ins, no forms.

:func:`build_page` is pure (the SVG text in, the HTML text out); :func:`html_page` runs Graphviz first.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from cgraph_cli.analysis.explain import MAX_STEPS, step_lines
from cgraph_cli.fmt import fmt_list, fmt_norm, fmt_number, fmt_shape, fmt_value
from cgraph_cli.present.dot import EDGE_MEANING, GraphPicture, State, op_text
from cgraph_cli.present.render import render_dot
from cgraph_cli.present.style import DARK, Palette

MATRIX_MAX = 400  # a tensor with at most this many entries is shown in full in the panel (e.g. 20 × 20)
SOURCE_MAX = 200_000  # characters: a longer program is not embedded in the page (the panel keeps its lines)
# nodes: a larger graph's page has no stepper (the --steps frames it reuses hold each step's sets of shown nodes,
# memory quadratic in the nodes: about 50 MB at 1,000 nodes, 200 MB at 2,000); explain stops at MAX_STEPS
STEPPER_MAX = min(2_000, MAX_STEPS)
PAGE_FORMAT = 1  # the data block's "format": bumped when its layout changes


# -- numbers as text ----------------------------------------------------------------


def tensor_text(v: Any) -> dict[str, Any] | None:
    """A value or gradient for the panel, as text from :mod:`cgraph_cli.fmt`.

    ``{"shape": "()", "text": "3"}`` for a scalar; ``{"shape": "(2, 3)", "rows": [[...], ...]}`` for a vector
    (one row) or a matrix of at most :data:`MATRIX_MAX` entries; ``{"shape", "text"}`` with nested lists for a
    small tensor of three or more axes; beyond that a summary ``{"shape", "summary": [[label, text], ...]}``.
    """
    if v is None:
        return None
    a = np.asarray(v, dtype=np.float64)
    shape = fmt_shape(a.shape)
    if a.ndim == 0:
        return {"shape": shape, "text": fmt_number(a)}
    if a.size <= MATRIX_MAX and a.ndim <= 2:
        rows = a.reshape(1, -1) if a.ndim == 1 else a
        return {"shape": shape, "rows": [[fmt_number(x) for x in row] for row in rows]}
    if a.size <= MATRIX_MAX:
        return {"shape": shape, "text": fmt_list(a)}
    with np.errstate(all="ignore"):
        finite = a[np.isfinite(a)]
        summary = [
            ["entries", f"{a.size:,}"],
            ["‖·‖", fmt_norm(a)],
            ["min", fmt_number(np.min(a))],
            ["max", fmt_number(np.max(a))],
            ["mean", fmt_number(np.mean(a))],
        ]
        if finite.size != a.size:
            summary.append(["non-finite", f"{a.size - finite.size:,}"])
    summary.append(["first, last", fmt_value(a)])
    return {"shape": shape, "summary": summary}


# -- the data block ----------------------------------------------------------------


def page_data(picture: GraphPicture, title: str) -> dict[str, Any]:
    """Everything the page's script shows, as JSON-ready data (text only: no number is formatted in the page)."""
    g = picture.g
    n = len(g)
    values, grads = picture.values, picture.grads
    ex = None
    note = None
    if values is not None and n <= STEPPER_MAX:
        ex = picture.explanation()
    elif values is not None:
        note = f"no stepper: the graph has {n:,} nodes, more than the {STEPPER_MAX:,} that the page steps through"
    fwd_of: dict[int, int] = {}
    bwd_of: dict[int, int] = {}
    if ex is not None:
        fwd_of = {st.node: k for k, st in enumerate(ex.forward)}
        bwd_of = {st.node: k for k, st in enumerate(ex.backward)}
    nodes = []
    for i in range(n):
        line, col = g.line_col(i)
        op = g.ops[i]
        node: dict[str, Any] = {
            "name": picture.labels[i],
            "id": f"%{i}",
            "op": op,
            "glyph": "" if op in ("input", "const") else op_text(op, g.attrs[i]),
            "expr": g.short_text(i),
            "line": line,
            "col": col,
            "src": g.source.line_text(line),
            "value": tensor_text(values[i]) if values is not None else None,
            "grad": tensor_text(grads[i]) if grads is not None else None,
        }
        if i in fwd_of:
            node["forward"] = step_lines(ex, "forward", fwd_of[i])  # type: ignore[arg-type]
        if i in bwd_of:
            node["backward"] = step_lines(ex, "backward", bwd_of[i])  # type: ignore[arg-type]
        nodes.append(node)
    steps = []
    if ex is not None:
        prev_v: set[int] = set()
        prev_g: set[int] = set()
        for phase, i, st in picture.steps(ex):
            step: dict[str, Any] = {
                "phase": phase,
                "node": i,
                "edges": sorted(int(e[1:]) for e in st.active_edges),
                "caption": st.caption,
            }
            # what this step shows that the previous one did not ("all": every value / gradient)
            if st.values is None:
                step["values"] = "all"
            else:
                step["values"] = sorted(st.values - prev_v)
                prev_v = st.values
            if st.grads is None:
                step["grads"] = "all"
            else:
                step["grads"] = sorted(st.grads - prev_g)
                prev_g = st.grads
            steps.append(step)
    edges = [[e.src, e.dst, -1 if e.copy is None else e.copy] for e in picture.edges]
    source = g.source.text if len(g.source.text) <= SOURCE_MAX else None
    return {
        "format": PAGE_FORMAT,
        "title": title,
        "output": picture.out_name,
        "out": picture.out,
        "values": values is not None,
        "grads": grads is not None,
        "nodes": nodes,
        "edges": edges,
        "steps": steps,
        "source": source,
        "note": note,
    }


def json_block(data: Any) -> str:
    """JSON for a ``<script type="application/json">`` block: ``<``, ``>`` and ``&`` escaped (as ``\\u003c`` ...),
    so the text can hold neither ``</script>`` nor ``<!--``; U+2028/U+2029 escaped as well."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


# -- the SVG ------------------------------------------------------------------------


_PREAMBLE = re.compile(r"\A.*?(?=<svg\b)", re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_SIZE = re.compile(r'\A<svg width="[^"]*" height="[^"]*"')
_TITLE = re.compile(r"<title>[^<]*</title>\n?")
_TOOLTIP = re.compile(r' xlink:title="[^"]*"')


def inline_svg(svg: str) -> str:
    """Graphviz's SVG for inlining: without the XML prolog, comments, ``<title>`` elements and tooltips (the panel
    shows all that; a browser tooltip would cover it), as large as its pane. Text stays as Graphviz escaped it."""
    if "<svg" not in svg:
        raise ValueError("not an SVG document")
    svg = _PREAMBLE.sub("", svg, count=1)
    # the page sizes the picture (it fills its pane; the script pans and zooms through the viewBox)
    svg = _SIZE.sub(r'<svg width="100%" height="100%" preserveAspectRatio="xMidYMid meet"', svg, count=1)
    svg = _COMMENT.sub("", svg)
    svg = _TITLE.sub("", svg)
    svg = _TOOLTIP.sub("", svg)
    return svg.strip() + "\n"


def layout_state() -> State:
    """The state the page's picture is drawn in: everything shown, anonymous nodes named as in the captions."""
    return State(names=True)


# -- the page -------------------------------------------------------------------------


@cache
def _asset(name: str) -> str:
    return resources.files("cgraph_cli.present").joinpath("assets", name).read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def page_css(palette: Palette) -> str:
    """``assets/page.css`` with the picture's colours (its theme's :class:`~cgraph_cli.present.style.Palette`) put
    in: its rules find value and gradient text in the SVG by those colours, and its legend shows the boxes' colours;
    the page's own dark theme takes the dark palette's value and gradient colours."""
    css = _asset("page.css")
    colours = {"VALUE": palette.value, "GRAD": palette.grad, "DARK_VALUE": DARK.value, "DARK_GRAD": DARK.grad}
    for kind in ("input", "const", "op"):
        colours[f"FILL_{kind.upper()}"] = palette.fill(kind)
        colours[f"BORDER_{kind.upper()}"] = palette.border(kind)
    for name, colour in colours.items():
        css = css.replace(f"__{name}__", colour)
    return css


def build_page(picture: GraphPicture, svg: str, title: str) -> str:
    """The whole page as text, from the picture and Graphviz's SVG of ``picture.dot(layout_state())``."""
    data = page_data(picture, title)
    theme = picture.opts.palette.name
    style = "\n" + page_css(picture.opts.palette)
    script = "\n" + _asset("page.js")
    csp = "; ".join(
        [
            "default-src 'none'",
            f"style-src '{_sha256(style)}'",
            f"script-src '{_sha256(script)}'",
            "img-src 'none'",
            "connect-src 'none'",
            "font-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )
    t = html.escape(title, quote=True)
    nsteps = len(data["steps"])
    return f"""<!DOCTYPE html>
<html lang="en" data-theme="{theme}" data-picture="{theme}">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="cgraph">
<title>{t} · cgraph</title>
<style>{style}</style>
</head>
<body>
<header>
<h1><span class="brand">cgraph</span> <span id="title">{t}</span></h1>
<div class="tools">
<button type="button" id="fit" title="Fit the graph to the window (0)">Fit</button>
<button type="button" id="zoom-out" title="Zoom out (−)">−</button>
<button type="button" id="zoom-in" title="Zoom in (+)">+</button>
<label><input type="checkbox" id="show-edges" checked> edge labels</label>
<label><input type="checkbox" id="show-values" checked> values</label>
<label><input type="checkbox" id="show-grads" checked> gradients</label>
<button type="button" id="theme" title="Switch between the light and the dark theme">Dark</button>
</div>
</header>
<div id="stepper"{"" if nsteps else " hidden"}>
<button type="button" id="first" title="Back to the whole picture (Home)">«</button>
<button type="button" id="prev" title="Previous step (←)">◀</button>
<input type="range" id="slider" min="0" max="{nsteps}" value="0" aria-label="step">
<button type="button" id="next" title="Next step (→)">▶</button>
<button type="button" id="last" title="Last step (End)">»</button>
<span id="position">0 / {nsteps}</span>
<span id="caption"></span>
</div>
<main>
<div id="viewport" tabindex="0" aria-label="the computation graph: drag to pan, wheel to zoom">
<div id="graph">
{inline_svg(svg)}</div>
</div>
<aside id="panel">
<div id="info"><p class="hint">Hover over a node, or click it to keep it here.</p></div>
<div id="legend">
<h2>Legend</h2>
<ul>
<li><span class="swatch value"></span> value (forward pass)</li>
<li><span class="swatch grad"></span> gradient ∂{html.escape(data["output"])}/∂node (backward pass)</li>
<li><span class="swatch edge"></span> edge label: {EDGE_MEANING}</li>
<li><span class="swatch box input"></span> input <span class="swatch box const"></span> constant
<span class="swatch box op"></span> operation</li>
<li><span class="swatch box active"></span> the current step's node</li>
</ul>
<p class="keys">Keys: ← → step, Home/End, + − zoom, 0 fit.</p>
</div>
</aside>
</main>
<script type="application/json" id="cgraph-data">{json_block(data)}</script>
<script>{script}</script>
</body>
</html>
"""


def html_page(picture: GraphPicture, title: str, timeout: float, fit: dict | None = None) -> str:
    """Lay the picture out with Graphviz (a child process, within ``timeout`` seconds; fitted to the canvas of
    ``fit``, :func:`cgraph_cli.present.render.render_dot`) and build the page. The page opens in the picture's
    theme when that is dark (else in the system's), and its other theme shows the picture's colours inverted."""
    svg = render_dot(picture.dot(layout_state()), "svg", timeout, fit=fit).decode("utf-8")
    return build_page(picture, svg, title)
