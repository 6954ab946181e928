"""Jupyter display: what the API's objects show in a notebook, and the ``%%cgraph`` cell magic.

- a :class:`~cgraph_cli.api.Program` shows its structure (SVG, with a PNG fallback, and its IR listing as
  text for terminals);
- an :class:`~cgraph_cli.api.Evaluation` shows the table of values and gradients (HTML; numbers through
  :mod:`cgraph_cli.fmt`, rows and labels as ``cgraph eval`` prints them) above its annotated graph, and the
  graph alone as SVG and PNG, and a plain-text table;
- :meth:`Evaluation.steps() <cgraph_cli.api.Evaluation.steps>` shows the stepped passes (the frames of
  :meth:`~cgraph_cli.present.dot.GraphPicture.steps`, which are :mod:`cgraph_cli.analysis.explain`'s steps)
  as a slider where ipywidgets is installed, else as a strip of every frame;
- ``%load_ext cgraph_cli`` adds ``%%cgraph --at a=-1,b=3,c=4``: the cell is a program, evaluated and shown.

This module sits between the presenters and the API: it turns results into HTML, SVG and widgets and
does not run programs itself (the magic is given :func:`cgraph_cli.api.parse`). IPython and ipywidgets
are imported only when something is displayed.
"""

from __future__ import annotations

import html
import re
import shlex
import sys
from typing import Any, Callable

import numpy as np

from cgraph_cli.engine.reference import Result
from cgraph_cli.errors import CgraphError
from cgraph_cli.fmt import fmt_cell, fmt_shape
from cgraph_cli.ir.names import node_names
from cgraph_cli.present.tables import derivative_column, rows, table_title

STYLE = (
    "<style>.cgraph-table td,.cgraph-table th{padding:2px 10px;text-align:left}"
    ".cgraph-table td.num{text-align:right;font-family:monospace}"
    ".cgraph-table td.value{color:#0b5cad}.cgraph-table td.grad{color:#c2410c}</style>"
)


def _svg_inline(svg: bytes) -> str:
    """An SVG document as markup to put inside HTML (its XML prolog and doctype dropped)."""
    text = svg.decode("utf-8")
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


def _shape(v: Any) -> str:
    return fmt_shape(tuple(np.shape(v))) if np.ndim(v) else "()"


def table_rows(result: Result, all_nodes: bool = False) -> list[tuple[str, ...]]:
    """The rows of ``cgraph eval``'s table: node, op, expression, shape, value, and the derivative column
    (:func:`~cgraph_cli.present.tables.derivative_column`: the gradient, or forward mode's tangent; none for
    a Jacobian), as text."""
    g = result.graph
    labels = node_names(g)
    header, second = derivative_column(result)
    return [
        (labels[i], g.ops[i], g.short_text(i), _shape(result.values[i]), fmt_cell(result.values[i]))
        + (() if header is None else (fmt_cell(second[i]),))
        for i in rows(result, all_nodes)
    ]


def _head(result: Result) -> tuple[str, ...]:
    header, _ = derivative_column(result)
    return ("node", "op", "expression", "shape", "value") + (() if header is None else (header,))


def table_html(result: Result, all_nodes: bool = False) -> str:
    """The values and gradients (forward mode: tangents) as an HTML table, titled like the command line's."""
    head = _head(result)
    e = html.escape
    out = [STYLE, '<table class="cgraph-table">', f"<caption>{e(table_title(result))}</caption>", "<thead><tr>"]
    out += [f"<th>{e(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for node, op, expr, shape, value, *grad in table_rows(result, all_nodes):
        out.append(
            f"<tr><td><b>{e(node)}</b></td><td>{e(op)}</td><td><code>{e(expr)}</code></td><td>{e(shape)}</td>"
            f'<td class="num value">{e(value)}</td>'
            + "".join(f'<td class="num grad">{e(d)}</td>' for d in grad)
            + "</tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def table_text(result: Result, all_nodes: bool = False) -> str:
    """The same table as plain aligned text (for terminals and the ``text/plain`` fallback)."""
    head = _head(result)
    body = table_rows(result, all_nodes)
    widths = [max(len(r[k]) for r in [head, *body]) for k in range(len(head))]
    right = (False, False, False, False, True, True)

    def line(r: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if rj else c.ljust(w) for c, w, rj in zip(r, widths, right)).rstrip()

    return "\n".join([table_title(result), line(head), *(line(r) for r in body)])


def picture_bundle(render: Callable[[str], bytes], text: str) -> dict[str, Any]:
    """A picture for IPython: SVG, PNG as the fallback for front ends without SVG, and ``text``."""
    bundle: dict[str, Any] = {"text/plain": text}
    try:
        bundle["image/svg+xml"] = render("svg").decode("utf-8")
        bundle["image/png"] = render("png")
    except CgraphError as err:  # Graphviz failed or timed out: the text still shows
        bundle["text/plain"] = f"{text}\n({err.message})"
    return bundle


def evaluation_bundle(result: Result, render: Callable[[str], bytes]) -> dict[str, Any]:
    """An evaluation for IPython: its table above its annotated graph (HTML), the graph (SVG, PNG), a text table."""
    text = table_text(result)
    bundle = picture_bundle(render, text)
    picture = ""
    if "image/svg+xml" in bundle:
        picture = f'<div class="cgraph-picture">{_svg_inline(bundle["image/svg+xml"].encode("utf-8"))}</div>'
    bundle["text/html"] = table_html(result) + picture
    return bundle


def check_html(rows: list[Any], summary: str) -> str:
    """A gradient check's rows (:class:`~cgraph_cli.api.CheckRow`) as an HTML table, with its summary."""
    from cgraph_cli.fmt import fmt_number

    e = html.escape
    out = [STYLE, '<table class="cgraph-table"><thead><tr>']
    out += [f"<th>{h}</th>" for h in ("entry", "analytic", "numeric", "abs error", "rel error", "status")]
    out.append("</tr></thead><tbody>")
    for r in rows:
        cells = [fmt_number(x) for x in (r.analytic, r.numeric)] + [
            fmt_number(x, 2, "sci") for x in (r.abs_error, r.rel_error)
        ]
        out.append(
            f"<tr><td><b>{e(r.entry)}</b></td>"
            + "".join(f'<td class="num">{e(c)}</td>' for c in cells)
            + f"<td>{'ok' if r.ok else '<b>FAILED</b>'}</td></tr>"
        )
    out.append(f"</tbody></table><pre>{e(summary)}</pre>")
    return "".join(out)


def _frame_html(svg: bytes, caption: str) -> str:
    return (
        '<figure style="display:inline-block;margin:4px;vertical-align:top">'
        f"{_svg_inline(svg)}<figcaption><code>{html.escape(caption)}</code></figcaption></figure>"
    )


def strip_html(svgs: list[bytes], captions: list[str]) -> str:
    """Every frame of the stepped passes in one scrollable row, each with its caption (no widgets needed)."""
    frames = "".join(_frame_html(s, c) for s, c in zip(svgs, captions))
    return f'<div class="cgraph-steps" style="overflow-x:auto;white-space:nowrap">{frames}</div>'


def show_steps(svgs: list[bytes], captions: list[str]) -> None:
    """Display the stepped passes: a slider over the frames with ipywidgets, else the static strip."""
    from IPython.display import HTML, display

    try:
        import ipywidgets as widgets
    except ImportError:
        display(HTML(strip_html(svgs, captions)))
        return
    frames = [_frame_html(s, c) for s, c in zip(svgs, captions)]
    view = widgets.HTML(value=frames[0] if frames else "")
    slider = widgets.IntSlider(value=0, min=0, max=max(0, len(frames) - 1), description="step")
    play = widgets.Play(value=0, min=0, max=max(0, len(frames) - 1), interval=900)
    widgets.jslink((play, "value"), (slider, "value"))

    def on_change(change: dict[str, Any]) -> None:
        view.value = frames[change["new"]]

    slider.observe(on_change, names="value")
    display(widgets.VBox([widgets.HBox([play, slider]), view]))


# -- the %%cgraph cell magic ---------------------------------------------------------------------------------------

MAGIC_USAGE = "usage: %%cgraph [--at NAME=VALUE,...] [--of NAME] [--seed N] [--dtype float64|float32] [--steps]"


def magic_args(line: str) -> dict[str, Any]:
    """The options of a ``%%cgraph`` line (``--at`` repeatable, as on the command line)."""
    from cgraph_cli.run.values import parse_at

    try:
        words = shlex.split(line)
    except ValueError as e:
        raise CgraphError(f"%%cgraph: {e}", hint=MAGIC_USAGE) from None
    at: list[str] = []
    opts: dict[str, Any] = {"of": None, "seed": None, "dtype": None, "steps": False}
    k = 0
    while k < len(words):
        w = words[k]
        name, _, value = w.partition("=") if w.startswith("--") and "=" in w else (w, "", "")
        if name == "--steps":
            opts["steps"] = True
            k += 1
            continue
        if name not in ("--at", "--of", "--seed", "--dtype"):
            raise CgraphError(f"%%cgraph: unknown option {w!r}", hint=MAGIC_USAGE)
        if not value:
            if k + 1 >= len(words):
                raise CgraphError(f"%%cgraph: {name} needs a value", hint=MAGIC_USAGE)
            value = words[k + 1]
            k += 1
        k += 1
        if name == "--at":
            at.append(value)
        elif name == "--seed":
            if not re.fullmatch(r"\d+", value):
                raise CgraphError(f"--seed: {value!r} is not an integer")
            opts["seed"] = int(value)
        else:
            opts[name[2:]] = value
    opts["values"] = parse_at(at)
    return opts


def register_magic(ipython: Any, parse: Callable[..., Any]) -> None:
    """Register ``%%cgraph`` with ``ipython``; ``parse`` makes a program of the cell's text."""
    from IPython.display import display

    def cgraph(line: str, cell: str) -> Any:
        try:
            opts = magic_args(line)
            program = parse(cell, name="<cell>")
            ev = program.eval(opts["values"], of=opts["of"], seed=opts["seed"], dtype=opts["dtype"])
        except CgraphError as err:  # shown as the command line shows it, not as a traceback
            print(err.render(), file=sys.stderr)
            return None
        display(ev)
        if opts["steps"]:
            display(ev.steps())
        for w in ev.warnings:
            print(w, file=sys.stderr)
        return None

    ipython.register_magic_function(cgraph, magic_kind="cell", magic_name="cgraph")
