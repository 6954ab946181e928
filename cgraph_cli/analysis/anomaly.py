"""Numerical diagnostics, in the spirit of PyTorch's anomaly mode.

When a value or a gradient is not finite, name the node where it first appeared:

- forward: the first node in topological order whose value is NaN/inf, with its op, its
  operands' values, its source line and a caret;
- backward: the first node, in the order the backward pass visits them, whose local derivative
  turned a finite incoming gradient into a non-finite one (``sqrt(a)`` at ``a = 0``), i.e. the
  forward op to blame, not the input the bad number finally lands on;

plus a domain hint where one applies (``log`` of a non-positive value, ``sqrt`` of a negative
one, a negative base to a non-integer power, division by zero, overflow).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cgraph_cli.engine.reference import Result
from cgraph_cli.errors import format_located
from cgraph_cli.fmt import fmt_value
from cgraph_cli.ir.graph import Graph
from cgraph_cli.ir.names import node_names
from cgraph_cli.ops import OPS, unbroadcast


@dataclass
class Anomaly:
    where: str  # "forward" | "backward" | "tangent" (forward mode)
    node: int  # the op node to blame
    operand: int | None = None  # backward: the operand the non-finite gradient flowed to
    bad: Any = None  # the non-finite value or gradient contribution
    overflow: bool = False  # backward: finite contributions whose sum overflowed


def _np(v: Any) -> Any:
    """numpy semantics (1/0 is inf, not ZeroDivisionError) for values a fast engine keeps as floats."""
    return np.float64(v) if isinstance(v, (float, int)) else v


def _finite(v: Any) -> bool:
    return v is None or bool(np.all(np.isfinite(v)))


def find(result: Result) -> list[Anomaly]:
    """The first non-finite value (forward) and the first op whose backward made one."""
    vals = result.values
    found: list[Anomaly] = []
    kinds = {where for where, _ in result.nonfinite}
    if "forward" in kinds:
        i = next(i for where, i in result.nonfinite if where == "forward")
        found.append(Anomaly("forward", i, None, vals[i]))
    if "backward" in kinds:
        found.append(_backward_origin(result) or _fallback(result))
    if "tangent" in kinds:  # forward mode runs in topological order: the first non-finite tangent is the origin
        i = next(i for where, i in result.nonfinite if where == "tangent")
        found.append(Anomaly("tangent", i, None, (result.tangents or [])[i]))
    return found


def _fallback(result: Result) -> Anomaly:
    i = next(i for where, i in result.nonfinite if where == "backward")
    return Anomaly("backward", i, None, result.grads[i])


def _backward_origin(result: Result) -> Anomaly | None:
    """Replay the local derivatives in backward order; the first that is non-finite from finite inputs,
    or the first sum of finite contributions (the chain rule's sum over successors) that overflows."""
    g, vals, grads = result.graph, result.values, result.grads
    need = g.needs_grad()
    acc: dict[int, Any] = {}
    with np.errstate(all="ignore"):
        for i in range(result.out, -1, -1):
            gi = grads[i]
            op = g.ops[i]
            if gi is None or op in ("input", "const") or not _finite(gi):
                continue
            spec = OPS[op]
            attrs = g.attrs[i] or {}
            gi = _np(gi)
            xs = [_np(vals[j]) for j in g.args[i]]
            many = None
            if spec.vjp_many is not None:  # max/min of n operands: all VJPs in one pass, not one pass each
                ks = [k for k, j in enumerate(g.args[i]) if need[j]]
                try:
                    many = dict(zip(ks, spec.vjps(ks, gi, _np(vals[i]), xs, attrs)))
                except Exception:  # a diagnostic must never fail the run
                    return None
            for k, j in enumerate(g.args[i]):
                if not need[j]:
                    continue
                try:
                    if many is not None:
                        d = many[k]
                    else:
                        rule = spec.vjp_for(k)
                        d = None if rule is None else rule(gi, _np(vals[i]), *xs, **attrs)
                    if d is None:
                        continue
                    gk = unbroadcast(d, np.shape(vals[j]), op)
                except Exception:  # a diagnostic must never fail the run
                    return None
                if not _finite(gk):
                    return Anomaly("backward", i, j, gk)
                total = gk if j not in acc else acc[j] + gk
                if not _finite(total):
                    return Anomaly("backward", i, j, total, overflow=True)
                acc[j] = total
    return None


def warnings(result: Result) -> list[str]:
    """One warning per pass, each with the source line, a caret and a hint where one applies."""
    g, vals, grads = result.graph, result.values, result.grads
    out = []
    found = find(result)
    label = node_names(g) if found else []
    for a in found:
        i = a.node
        node = f"node {label[i]} ({g.ops[i]})"
        operands = ", ".join(  # a constant operand is shown as its value alone
            fmt_value(vals[j]) if g.ops[j] == "const" and g.names[j] is None else f"{label[j]} = {fmt_value(vals[j])}"
            for j in g.args[i]
        )
        if a.where == "forward":
            msg = f"non-finite value {fmt_value(a.bad)} first appears in the forward pass at {node}"
            if operands:
                msg += f" from {operands}"
            hint = domain_hint(g, i, vals)
        elif a.where == "tangent":
            msg = f"non-finite tangent {fmt_value(a.bad)} first appears in forward mode at {node}"
            if operands:
                msg += f" (at {operands})"
            hint = next((h for j in g.args[i] if (h := backward_hint(g, i, j, vals))), None) if g.args[i] else None
        elif a.operand is None:  # the input or node itself (no op to blame was found)
            msg = f"non-finite gradient {fmt_value(a.bad)} first appears in the backward pass at {node}"
            hint = None
        elif a.overflow:
            msg = (
                f"non-finite gradient first appears in the backward pass at {node}: adding its contribution "
                f"to ∂{label[result.out]}/∂{label[a.operand]} makes the sum {fmt_value(a.bad)}"
            )
            hint = f"overflow: the sum is beyond the range of {np.dtype(g.dtype).name} (about ±{_largest(g)})"
        else:
            msg = (
                f"non-finite gradient first appears in the backward pass at {node}: its local derivative "
                f"turns ∂{label[result.out]}/∂{label[i]} = {fmt_value(grads[i])} into "
                f"{fmt_value(a.bad)} for {label[a.operand]}"
            )
            if operands:
                msg += f" (at {operands})"
            hint = backward_hint(g, i, a.operand, vals)
        out.append("warning: " + format_located(msg, g.spans[i], g.source, hint))
    return out


def _largest(g: Graph) -> str:
    return "3.4e38" if np.dtype(g.dtype) == np.float32 else "1.8e308"


def domain_hint(g: Graph, i: int, vals: list[Any]) -> str | None:
    """Why an op's value is not finite: a domain error, division by zero or overflow."""
    op = g.ops[i]
    xs = [np.asarray(vals[j]) for j in g.args[i]]
    big = _largest(g)
    if op == "const":
        return f"the number {g.text(i)} is beyond the range of {np.dtype(g.dtype).name} (about ±{big})"
    if op == "input":
        return f"the value given for input '{g.label(i)}' is not finite"
    if any(not _finite(x) for x in xs):
        return None  # the non-finite number came in from an operand
    why = OPS[op].hint
    if why is not None and (text := why(xs, vals[i])) is not None:
        return text
    v = np.asarray(vals[i])
    if np.any(np.isinf(v)):
        return f"overflow: the result is beyond the range of {np.dtype(g.dtype).name} (about ±{big})"
    return None


def backward_hint(g: Graph, i: int, j: int, vals: list[Any]) -> str | None:
    """Why an op's local derivative is not finite although its value is."""
    op = g.ops[i]
    args = g.args[i]
    xs = [np.asarray(vals[k]) for k in args]
    why = OPS[op].grad_hint
    return None if why is None else why(args.index(j), xs)
