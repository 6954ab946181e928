"""Forward mode, vector-Jacobian products with a given cotangent, and whole Jacobians.

Forward mode carries with every node's value its tangent, the derivative of the node along one
direction in input space (dual numbers: ``x = a + b``, ``ẋ = ȧ + ḃ``). One pass in topological
order; each node's tangent is its op's JVP (:meth:`cgraph_cli.ops.Op.tangent`) of its operands'
tangents. A node no direction reaches has no tangent (None), the way a node that does not depend on
an input has no gradient; a node that depends on an input but is not moved by this direction has
tangent 0.

A Jacobian ``∂out/∂x`` for every input ``x`` takes one forward pass per input entry (a column each) or
one reverse pass per output entry (a row each); :func:`jacobian` takes whichever needs fewer passes.

Read beside :mod:`cgraph_cli.engine.reference`: the same loops, the same Result. (Not named ``forward``:
that name is the forward pass, :func:`cgraph_cli.engine.forward`.)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from cgraph_cli.engine.reference import Result, backward, forward, nonfinite_report, scan_plan
from cgraph_cli.ir.graph import Graph
from cgraph_cli.ops import OPS


def tangents(
    g: Graph, vals: list[Any], direction: dict[str, Any], upto: int | None = None, *, count: Counter | None = None
) -> list[Any]:
    """Every node's tangent along ``direction`` (input name -> its tangent; a missing input: 0).

    ``count``: each JVP run is tallied under its op's name (``explain --cost``)."""
    n = len(vals) if upto is None else upto + 1
    ts: list[Any] = [None] * n
    with np.errstate(all="ignore"):
        for i in range(n):
            op, args = g.ops[i], g.args[i]
            if op == "input":
                t = direction.get(g.names[i])  # type: ignore[arg-type]
                ts[i] = None if t is None else np.asarray(t, dtype=np.result_type(vals[i], np.float32))
            elif op != "const":
                operand_ts = [ts[j] for j in args]
                if any(t is not None for t in operand_ts):
                    ts[i] = OPS[op].tangent(operand_ts, vals[i], [vals[j] for j in args], g.attrs[i])
                    if count is not None:
                        count[op] += 1
    need = g.needs_grad()
    for i in range(n):  # moved by no direction but depending on an input: tangent 0
        if need[i] and ts[i] is None:
            ts[i] = np.zeros(np.shape(vals[i]), dtype=np.result_type(vals[i], np.float32))
    return ts


def default_direction(g: Graph, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """1 for the first input in source order (every entry), 0 for the others; inputs declared data have none."""
    names = g.grad_inputs()
    return {name: (np.ones_like if k == 0 else np.zeros_like)(inputs[name]) for k, name in enumerate(names)}


def jvp(
    g: Graph,
    inputs: dict[str, np.ndarray],
    direction: dict[str, Any],
    out: int | None = None,
    *,
    values: list[Any] | None = None,
) -> Result:
    """Forward mode: values and tangents of every node along ``direction``; ``result.jvp`` is the output's.
    ``values``: the forward pass's values when already known."""
    out = g.output if out is None else out
    vals = forward(g, inputs) if values is None else values
    ts = tangents(g, vals, direction)
    grads: list[Any] = [None] * len(vals)
    bad, _ = nonfinite_report(vals, grads, ts)  # (the node masks are of values and tangents: made when asked)
    return Result(g, vals, grads, out, inputs, bad, mode="forward", tangents=ts, direction=dict(direction))


def vjp(
    g: Graph,
    inputs: dict[str, np.ndarray],
    cotangent: Any,
    out: int | None = None,
    *,
    values: list[Any] | None = None,
    wrt: list[str] | None = None,
) -> Result:
    """Reverse mode from a given cotangent ``v`` of the output's shape: every node's ``vᵀ ∂out/∂node``.
    ``values``: the forward pass's values when already known; ``wrt``: only for the nodes that depend on
    these inputs, as :func:`cgraph_cli.engine.evaluate` (default: every input not declared data)."""
    out = g.output if out is None else out
    vals = forward(g, inputs) if values is None else values
    seed = np.asarray(np.broadcast_to(cotangent, np.shape(vals[out])), dtype=np.result_type(vals[out], np.float32))
    grads = backward(g, vals, out, seed=seed, wrt=wrt)
    # (the nodes that could hide a NaN or an infinity first, as evaluate: whatever the seed, the same ops carry them)
    bad, masks = nonfinite_report(vals, grads, plan=scan_plan(g, g.grad_inputs(wrt)))
    return Result(g, vals, grads, out, inputs, bad, mode="cotangent", cotangent=seed, masks=masks, wrt=wrt)


@dataclass
class Jacobian:
    """``blocks[x]``: ∂out/∂x of shape ``out.shape + x.shape``, for every input x differentiated (in source order,
    or as ``--wrt`` names them)."""

    blocks: dict[str, np.ndarray]
    mode: str  # "forward" (a pass per input entry) or "reverse" (a pass per output entry)
    passes: int
    other: int  # the passes the other mode would have taken


def pick_mode(out_size: int, in_size: int) -> str:
    """The mode with fewer passes: forward takes one per input entry, reverse one per output entry
    (a tie goes to reverse, the engine's usual mode)."""
    return "forward" if in_size < out_size else "reverse"


def jacobian(
    g: Graph, vals: list[Any], out: int, mode: str | None = None, *, wrt: Sequence[str] | None = None
) -> Jacobian:
    """The Jacobian of node ``out`` with respect to every input not declared data (or those named in ``wrt``,
    in that order), by forward or reverse passes.

    ``vals`` are the forward pass's values (shared by every pass); ``mode`` None picks by :func:`pick_mode`."""
    names = g.grad_inputs() if wrt is None else list(wrt)
    oshape = tuple(np.shape(vals[out]))
    m = int(np.prod(oshape, dtype=np.int64))
    sizes = {x: int(np.size(vals[g.inputs[x]])) for x in names}
    n = sum(sizes.values())
    mode = mode or pick_mode(m, n)
    dtype = np.result_type(vals[out], np.float32)
    blocks = {x: np.zeros(oshape + tuple(np.shape(vals[g.inputs[x]])), dtype=dtype) for x in names}
    with np.errstate(all="ignore"):
        if mode == "forward":
            for x in names:
                shape = tuple(np.shape(vals[g.inputs[x]]))
                flat = blocks[x].reshape(m, sizes[x])
                for e in range(sizes[x]):
                    t = np.zeros(sizes[x], dtype=dtype)
                    t[e] = 1
                    ts = tangents(g, vals, {x: t.reshape(shape)}, upto=out)
                    flat[:, e] = np.reshape(ts[out], -1)
            passes, other = n, m
        else:
            for r in range(m):
                seed = np.zeros(m, dtype=dtype)
                seed[r] = 1
                grads = backward(g, vals, out, seed=seed.reshape(oshape), wrt=names)
                for x in names:
                    blocks[x].reshape(m, sizes[x])[r] = np.reshape(grads[g.inputs[x]], -1)
            passes, other = m, n
    return Jacobian(blocks, mode, passes, other)
