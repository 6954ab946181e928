"""Second derivatives as a table: the Hessian as a matrix (small ones) or block by block, an HVP per input."""

from __future__ import annotations

from typing import Any

import numpy as np

from cgraph_cli.fmt import fmt_number, fmt_shape
from cgraph_cli.ir.graph import Graph
from cgraph_cli.present.tables import text_cell

MATRIX_SIDE = 12  # a Hessian with at most this many input entries in all is shown as one matrix


def _entry_names(name: str, shape: tuple[int, ...]) -> list[str]:
    if not shape:
        return [name]
    return [f"{name}[{','.join(str(i) for i in idx)}]" for idx in np.ndindex(*shape)]


def hessian_tables(g: Graph, out: int, hess: dict[str, dict[str, np.ndarray]]) -> list[Any]:
    """Rich tables: one matrix ``∂²out/∂u∂v`` over every entry of every input when there are at most
    :data:`MATRIX_SIDE` entries, else one row per pair of inputs (shape, largest entry, symmetry)."""
    from rich.table import Table

    names = list(hess)
    shapes = {x: tuple(np.shape(hess[x][x]))[: len(np.shape(hess[x][x])) // 2] for x in names}
    entries = [(x, lab) for x in names for lab in _entry_names(x, shapes[x])]
    title = f"Hessian ∂²{g.label(out)}/∂u∂v"
    if not entries:  # every input declared data (or --wrt of none): a line, not a table of no columns
        from rich.text import Text

        return [Text(f"{title}: no entries (no input is differentiated)")]
    if len(entries) <= MATRIX_SIDE:
        t = Table(title=title, title_justify="left")
        t.add_column("", style="bold", no_wrap=True)
        for _, lab in entries:
            t.add_column(lab, justify="right", style="magenta")
        flat = {x: {y: np.reshape(hess[x][y], (-1, max(1, int(np.prod(shapes[y]))))) for y in names} for x in names}
        for x in names:
            for k, lab in enumerate(_entry_names(x, shapes[x])):
                cells = [fmt_number(v) for y in names for v in flat[x][y][k]]
                t.add_row(lab, *cells)
        return [t]
    t = Table(title=title + " (blocks; --format json for every entry)", title_justify="left")
    for col in ("u", "v", "shape", "max |entry|", "block"):
        t.add_column(col, no_wrap=col != "block", overflow="fold")
    for x in names:
        for y in names:
            h = hess[x][y]
            big = float(np.max(np.abs(h))) if np.size(h) else 0.0
            t.add_row(x, y, fmt_shape(np.shape(h)), fmt_number(big), text_cell(h))
    return [t]


def hvp_table(g: Graph, out: int, hvp: dict[str, np.ndarray]) -> Any:
    """A rich table: each input, its shape and its entry of the Hessian-vector product."""
    from rich.table import Table

    t = Table(title=f"Hessian-vector product (∇²{g.label(out)}) v", title_justify="left")
    t.add_column("input", style="bold", no_wrap=True)
    t.add_column("shape", style="dim", no_wrap=True)
    t.add_column("(H v)[input]", justify="right", style="magenta", overflow="fold")
    for x, v in hvp.items():
        t.add_row(x, fmt_shape(np.shape(v)) if np.ndim(v) else "()", text_cell(v))
    return t
