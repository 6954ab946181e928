"""Presenters: turn a Result into data, text or renderables. Only the CLI prints."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import numpy as np

from cgraph_cli.engine import Result
from cgraph_cli.ir import Graph
from cgraph_cli.ops import fmt_shape


def fmt_number(x: float, digits: int = 6) -> str:
    """Short, exact-looking numbers: 14, -1, 0.5, 1.2346e-05, NaN, inf."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    return format(x, f".{digits}g")


def fmt_value(v: Any, *, limit: int = 4) -> str:
    """A scalar as a number; a tensor abbreviated to its first and last entries."""
    if v is None:
        return "—"
    a = np.asarray(v)
    if a.ndim == 0:
        return fmt_number(a)
    with np.printoptions(precision=4, threshold=limit, edgeitems=2, suppress=False):
        text = np.array2string(a, separator=", ", formatter={"float_kind": lambda x: fmt_number(x)})
    return " ".join(text.split())


def json_number(x: Any) -> Any:
    """Strict JSON: non-finite numbers become the strings NaN / Infinity / -Infinity."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def json_value(v: Any) -> Any:
    if v is None:
        return None
    a = np.asarray(v, dtype=np.float64)
    if a.ndim == 0:
        return json_number(a)
    if np.all(np.isfinite(a)):
        return a.tolist()
    flat = [json_number(x) for x in a.ravel()]
    out: Any = flat
    for d in reversed(a.shape[1:]):
        out = [out[i : i + d] for i in range(0, len(out), d)]
    return out


def rows(result: Result, all_nodes: bool = False) -> list[int]:
    g = result.graph
    return list(range(len(g))) if all_nodes else g.named_nodes()


def to_data(result: Result) -> dict[str, Any]:
    """The JSON document of SPEC §3."""
    g = result.graph
    vals, grads = result.values, result.grads
    nodes = []
    for i in range(len(g)):
        line, col = g.line_col(i)
        nodes.append(
            {
                "id": i,
                "name": g.names[i],
                "op": g.ops[i],
                "args": list(g.args[i]),
                "shape": list(np.shape(vals[i])),
                "value": json_value(vals[i]),
                "grad": json_value(grads[i]),
                "expr": g.short_text(i),
                "line": line,
                "column": col,
                "nonfinite": not (_finite(vals[i]) and _finite(grads[i])),
            }
        )
    from cgraph_cli.anomaly import find

    nonfinite = [  # backward: the op whose local derivative made it, and the operand it flowed to
        {
            "pass": a.where,
            "id": a.node,
            "name": g.names[a.node],
            "op": g.ops[a.node],
            "line": g.line_col(a.node)[0],
            "column": g.line_col(a.node)[1],
            **({"operand": a.operand} if a.where == "backward" else {}),
        }
        for a in find(result)
    ]
    return {
        "output": g.label(result.out),
        "value": json_value(vals[result.out]),
        "inputs": {k: json_value(v) for k, v in result.inputs.items()},
        "gradients": {k: json_value(grads[i]) for k, i in g.inputs.items()},
        "outputs": {g.label(i): json_value(vals[i]) for i in g.outputs},
        "nodes": nodes,
        "nonfinite": nonfinite,
    }


def _finite(v: Any) -> bool:
    return v is None or bool(np.all(np.isfinite(v)))


def to_json(result: Result) -> str:
    return json.dumps(to_data(result), indent=2, allow_nan=False)


def to_csv(result: Result, all_nodes: bool = False) -> str:
    """One row per node: node,op,expr,shape,value,grad (tensors as JSON lists)."""
    g = result.graph
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["node", "op", "expr", "shape", "value", "grad"])
    for i in rows(result, all_nodes):
        v, gr = result.values[i], result.grads[i]
        w.writerow(
            [
                g.label(i),
                g.ops[i],
                g.short_text(i),
                "x".join(str(d) for d in np.shape(v)),
                _csv_cell(v),
                _csv_cell(gr),
            ]
        )
    return buf.getvalue()


def _csv_cell(v: Any) -> str:
    if v is None:
        return ""
    a = np.asarray(v)
    if a.ndim == 0:
        return repr(float(a)) if np.isfinite(a) else fmt_number(a)
    return json.dumps(json_value(a), separators=(",", ":"))


def grad_header(g: Graph, out: int) -> str:
    return f"∂{g.label(out)}/∂node"


def fmt_cell(v: Any) -> str:
    """A table cell: scalars in full, tensors as a few entries with 4 significant digits."""
    if v is None:
        return "—"
    a = np.asarray(v)
    if a.ndim == 0:
        return fmt_number(a)
    if a.size == 0:
        return "[]"
    if a.size <= 3:
        with np.printoptions(threshold=1000):
            text = np.array2string(a, separator=", ", formatter={"float_kind": lambda x: format(float(x), ".4g")})
        return " ".join(text.split())
    flat = a.ravel()
    return f"[{format(float(flat[0]), '.4g')}, {format(float(flat[1]), '.4g')}, ..., {format(float(flat[-1]), '.4g')}]"


def display_names(g: Graph) -> list[str]:
    """Labels for people: a name assigned several times gets subscripts (s₁, s₂, …)."""
    counts: dict[str, int] = {}
    for n in g.names:
        if n is not None:
            counts[n] = counts.get(n, 0) + 1
    seen: dict[str, int] = {}
    out = []
    for i, n in enumerate(g.names):
        if n is None:
            out.append(f"%{i}")
        elif counts[n] > 1:
            seen[n] = seen.get(n, 0) + 1
            out.append(n + str(seen[n]).translate(_SUBSCRIPTS))
        else:
            out.append(n)
    return out


_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def to_table(result: Result, all_nodes: bool = False):
    """A rich Table: node, op, expression, shape, value, gradient."""
    from rich.table import Table

    g = result.graph
    labels = display_names(g)
    t = Table(title=f"{g.label(result.out)} = {fmt_value(result.values[result.out])}", title_justify="left")
    t.add_column("node", style="bold", no_wrap=True)
    t.add_column("op", style="dim", no_wrap=True)
    t.add_column("expression", overflow="fold", min_width=6)
    t.add_column("shape", style="dim", no_wrap=True)
    t.add_column("value", justify="right", style="cyan", overflow="fold")
    t.add_column(grad_header(g, result.out), justify="right", style="magenta", overflow="fold")
    for i in rows(result, all_nodes):
        t.add_row(
            labels[i],
            g.ops[i],
            g.short_text(i),
            fmt_shape(tuple(np.shape(result.values[i]))) if np.ndim(result.values[i]) else "()",
            fmt_cell(result.values[i]),
            fmt_cell(result.grads[i]),
        )
    return t


def nonfinite_warnings(result: Result) -> list[str]:
    """One warning per pass naming the first node where a non-finite number appeared."""
    from cgraph_cli import anomaly

    return anomaly.warnings(result)


def domain_hint(g: Graph, i: int, vals: list[Any]) -> str | None:
    """Why node ``i``'s value is not finite (see :func:`cgraph_cli.anomaly.domain_hint`)."""
    from cgraph_cli import anomaly

    return anomaly.domain_hint(g, i, vals)
