"""Forward and backward passes: plain loops over the node list, never recursion.

The backward pass is reverse-mode autodiff: each node's gradient
``∂out/∂node`` is the sum over its successors of the successor's gradient
times the local derivative, accumulated on write as successors are visited in
reverse topological order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cgraph_cli.errors import CgraphError
from cgraph_cli.ir import Graph
from cgraph_cli.ops import OPS, fmt_shape, unbroadcast


def forward(g: Graph, inputs: dict[str, np.ndarray], upto: int | None = None) -> list[Any]:
    """Every node's value, in topological order (nodes after ``upto`` are skipped)."""
    n = len(g.ops) if upto is None else upto + 1
    vals: list[Any] = [None] * n
    ops, args, attrs, names = g.ops, g.args, g.attrs, g.names
    table = OPS
    with np.errstate(all="ignore"):
        for i in range(n):
            op = ops[i]
            if op == "const":
                vals[i] = attrs[i]["value"]  # type: ignore[index]
            elif op == "input":
                vals[i] = inputs[names[i]]  # type: ignore[index]
            else:
                a = attrs[i]
                xs = [vals[j] for j in args[i]]
                vals[i] = table[op].fwd(*xs, **a) if a else table[op].fwd(*xs)
    return vals


def backward(g: Graph, vals: list[Any], out: int) -> list[Any]:
    """``∂out/∂node`` for every node that depends on an input (None elsewhere)."""
    n = len(g.ops)
    need = g.needs_grad()
    grads: list[Any] = [None] * n
    if not need[out]:
        return _zero_grads(g, need, grads)
    grads[out] = np.ones_like(vals[out])
    ops, args, attrs = g.ops, g.args, g.attrs
    with np.errstate(all="ignore"):
        for i in range(out, -1, -1):
            gi = grads[i]
            if gi is None:
                continue
            op = ops[i]
            if op == "input" or op == "const":
                continue
            spec = OPS[op]
            a = attrs[i] or {}
            xs = [vals[j] for j in args[i]]
            for k, j in enumerate(args[i]):
                if not need[j]:
                    continue
                rule = spec.vjp_for(k)
                if rule is None:
                    continue
                gk = unbroadcast(rule(gi, vals[i], *xs, **a), np.shape(vals[j]), op)
                grads[j] = gk if grads[j] is None else grads[j] + gk
    return _zero_grads(g, need, grads, vals)


def _zero_grads(g: Graph, need: list[bool], grads: list[Any], vals: list[Any] | None = None) -> list[Any]:
    """Nodes that depend on an input but do not reach the output have gradient 0."""
    for i, nd in enumerate(need):
        if nd and grads[i] is None:
            shape = np.shape(vals[i]) if vals is not None and i < len(vals) else (g.shapes[i] or ())
            grads[i] = np.zeros(shape, dtype=g.dtype)
    return grads


@dataclass
class Result:
    graph: Graph
    values: list[Any]
    grads: list[Any]
    out: int  # the differentiated output node
    inputs: dict[str, np.ndarray]
    nonfinite: list[tuple[str, int]]  # ("forward"|"backward", node) first occurrences


def first_nonfinite(items: list[Any], order) -> int | None:
    for i in order:
        v = items[i]
        if v is None:
            continue
        if not np.all(np.isfinite(v)):
            return i
    return None


def evaluate(g: Graph, inputs: dict[str, np.ndarray], out: int | None = None) -> Result:
    """Forward and backward pass; the output must be a scalar (one element)."""
    out = g.output if out is None else out
    vals = forward(g, inputs)
    v = vals[out]
    if np.size(v) != 1:
        name = g.label(out)
        raise CgraphError(
            f"output '{name}' has shape {fmt_shape(np.shape(v))}; only a scalar can be differentiated",
            g.spans[out],
            hint=f"differentiate a scalar such as sum({name}) or mean({name})",
            source=g.source,
        )
    grads = backward(g, vals, out)
    bad: list[tuple[str, int]] = []
    fi = first_nonfinite(vals, range(len(vals)))
    if fi is not None:
        bad.append(("forward", fi))
    bi = first_nonfinite(grads, range(len(grads) - 1, -1, -1))
    if bi is not None:
        bad.append(("backward", bi))
    return Result(g, vals, grads, out, inputs, bad)
