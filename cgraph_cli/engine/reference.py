"""The reference engine: the forward pass and the backward pass (reverse-mode autodiff) as plain loops.

Read these first: every fast strategy (:mod:`cgraph_cli.engine.scalar`) is tested bit-identical to them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from cgraph_cli.errors import CgraphError
from cgraph_cli.fmt import fmt_shape
from cgraph_cli.ir.graph import Graph
from cgraph_cli.ops import LEAF_OPS, OPS, unbroadcast


def forward(
    g: Graph,
    inputs: dict[str, np.ndarray],
    upto: int | None = None,
    *,
    rows: bool = False,
    count: Counter | None = None,
) -> list[Any]:
    """Every node's value, in topological order (nodes after ``upto`` are skipped).

    With ``rows``, every value is a 1-D array holding one scalar per row and each op runs in its
    row form (:class:`cgraph_cli.ops.Rows`): ``eval --batch``. ``count``: each op run is tallied
    under its name (``explain --cost``)."""
    n = len(g.ops) if upto is None else upto + 1
    vals: list[Any] = [None] * n
    with np.errstate(all="ignore"):
        for i, (op, args, attrs, name) in enumerate(zip(g.ops[:n], g.args, g.attrs, g.names)):
            if op == "const":
                vals[i] = attrs["value"]  # type: ignore[index]
            elif op == "input":
                vals[i] = inputs[name]  # type: ignore[index]
            else:
                spec = OPS[op]
                f = spec.row_fwd() if rows else spec.fwd
                vals[i] = f(*[vals[j] for j in args], **(attrs or {}))
                if count is not None:
                    count[op] += 1
    return vals


def backward(
    g: Graph,
    vals: list[Any],
    out: int,
    *,
    rows: bool = False,
    seed: Any = None,
    count: Counter | None = None,
    wrt: list[str] | None = None,
) -> list[Any]:
    """``∂out/∂node`` for every node that depends on a differentiated input (None elsewhere): the inputs
    ``wrt`` (default: every input not declared data, :meth:`Graph.grad_inputs`). Only the nodes on a path
    from one of them to the output are visited, so a gradient nobody asked for costs nothing.

    Reverse topological order; each node passes ``g · ∂node/∂operand`` (its op's VJPs) to every
    operand that needs a gradient, where it is summed: the chain rule over the successors.
    ``seed``: the output's cotangent v (default 1), giving ``vᵀ ∂out/∂node``; ``count``: each VJP run
    (one per operand that receives a gradient) is tallied under its op's name."""
    need = g.needs_grad(wrt)
    grads: list[Any] = [None] * len(g.ops)
    if not need[out]:
        return _zero_grads(g, need, grads)
    grads[out] = np.ones_like(vals[out]) if seed is None else seed
    with np.errstate(all="ignore"):
        for i in range(out, -1, -1):
            op, args, gi = g.ops[i], g.args[i], grads[i]
            if gi is None or op in LEAF_OPS:
                continue
            ks = [k for k, j in enumerate(args) if need[j]]
            xs = [vals[j] for j in args]
            for k, gk in zip(ks, OPS[op].vjps(ks, gi, vals[i], xs, g.attrs[i], rows=rows)):
                if gk is not None:
                    if count is not None:
                        count[op] += 1
                    j = args[k]
                    gk = unbroadcast(gk, np.shape(vals[j]), op)
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
    nonfinite: list[tuple[str, int]]  # ("forward"|"backward"|"tangent", node) first occurrences
    # what was differentiated (engine/forward_mode.py): "reverse" (∂out/∂node, the default), "cotangent"
    # (vᵀ ∂out/∂node for the given v) or "forward" (each node's tangent along ``direction``)
    mode: str = "reverse"
    tangents: list[Any] | None = None  # forward mode: every node's tangent
    direction: dict[str, Any] | None = None  # forward mode: each input's tangent
    cotangent: Any = None  # mode "cotangent": the output's cotangent v
    jacobian: Any = None  # mode "jacobian": the Jacobian (engine.forward_mode.Jacobian)
    masks: tuple[np.ndarray, np.ndarray] | None = None  # nonfinite_mask of values and of grads, when known
    wrt: list[str] | None = None  # the inputs differentiated (eval --wrt); None: every input not declared data

    def grad_inputs(self) -> list[str]:
        """The inputs whose gradients this run computed (the others have none)."""
        return self.graph.grad_inputs() if self.wrt is None else list(self.wrt)

    def nonfinite_nodes(self) -> np.ndarray:
        """For each node, whether its value or its gradient (forward mode: its tangent) holds a NaN or an
        infinity (scanned once)."""
        if self.masks is None:
            second = self.tangents if self.mode == "forward" and self.tangents is not None else self.grads
            self.masks = (nonfinite_mask(self.values), nonfinite_mask(second))
        return self.masks[0] | self.masks[1]

    @property
    def jvp(self) -> Any:
        """Forward mode: the output's tangent."""
        return None if self.tangents is None else self.tangents[self.out]


_SCAN_CHUNK = 1 << 18  # entries tested at a time in a large contiguous tensor (a bool temporary of 256 kB)


def all_finite(v: Any) -> bool:
    """Whether every entry of ``v`` is finite: numpy's vectorised ``isfinite`` (a float32 sum, the old test, is
    a scalar loop, 20 times slower), a chunk at a time in a large contiguous tensor."""
    a = np.asarray(v)
    if a.size <= _SCAN_CHUNK or not a.flags.c_contiguous:
        return bool(np.isfinite(a).all())
    flat = a.reshape(-1)  # a view (contiguous)
    return all(np.isfinite(flat[k : k + _SCAN_CHUNK]).all() for k in range(0, flat.size, _SCAN_CHUNK))


def nonfinite_mask(items: list[Any]) -> np.ndarray:
    """Whether each item (a number or an array; None: no value) holds a NaN or an infinity: the 0-d items
    in one vectorised scan, each tensor by one reduction."""
    bad = np.zeros(len(items), dtype=bool)
    where: list[int] = []
    scalars: list[Any] = []
    for i, v in enumerate(items):
        if v is None:
            continue
        if getattr(v, "ndim", 0) == 0:
            where.append(i)
            scalars.append(v)
        elif not all_finite(v):
            bad[i] = True
    if scalars:
        fin = np.isfinite(np.fromiter(map(float, scalars), dtype=np.float64, count=len(scalars)))
        if not fin.all():
            bad[np.asarray(where)[~fin]] = True
    return bad


@dataclass(frozen=True)
class ScanPlan:
    """The nodes a non-finite scan must look at, from the records' :class:`~cgraph_cli.ops.Carry` claims.

    A node whose non-finite value its consumer always passes on (``Carry.value``) needs no scan of its own:
    if the node held a NaN or an infinity, so would that consumer, and so on along the chain to a node that
    is scanned. ``values`` are the nodes at the ends of such chains; ``value_by`` the consumers that vouch for
    the others (a claim holds only for a result that is not empty: they are checked at run time). Likewise
    for gradients, which flow the other way: a node whose VJP passes a non-finite gradient on to an operand
    that gets a gradient (``Carry.grad``) is vouched for by that operand (``grad_by``, not empty), and only
    the ``grads`` of the others are scanned."""

    values: list[int]
    value_by: list[int]
    grads: list[int]
    grad_by: list[int]


def scan_plan(g: Graph, wrt: list[str]) -> ScanPlan:
    """The scan plan of ``g`` for a backward pass differentiating the inputs ``wrt`` (kept in ``g.derived``)."""
    key = (len(g.ops), tuple(wrt))
    plans = g.derived.setdefault("scan_plans", {})
    plan = plans.get(key)
    if plan is None:
        n = len(g.ops)
        need = g.needs_grad(wrt)
        vouch = [-1] * n  # a consumer showing the node's non-finite value
        gvouch = [-1] * n  # an operand whose gradient shows the node's non-finite gradient
        for i, (op, args) in enumerate(zip(g.ops, g.args)):
            if op in LEAF_OPS:
                continue
            carry = OPS[op].carry
            for k in carry.value_from(len(args)):
                if vouch[args[k]] < 0:
                    vouch[args[k]] = i
            if need[i]:
                for k in carry.grad_to(len(args)):
                    if need[args[k]]:
                        gvouch[i] = args[k]
                        break
        plan = ScanPlan(
            values=[i for i in range(n) if vouch[i] < 0],
            value_by=sorted({v for v in vouch if v >= 0}),
            grads=[i for i in range(n) if need[i] and gvouch[i] < 0],
            grad_by=sorted({v for v in gvouch if v >= 0}),
        )
        plans[key] = plan
    return plan


def _empty(v: Any) -> bool:
    return getattr(v, "size", 1) == 0


def all_finite_by(plan: ScanPlan, vals: list[Any], grads: list[Any]) -> bool:
    """Whether every value and gradient is finite, scanning only the plan's nodes; False also when a node that
    vouches for others is empty (then only a full scan can tell)."""
    if any(_empty(vals[i]) for i in plan.value_by) or any(_empty(grads[i]) for i in plan.grad_by):
        return False
    return not (
        nonfinite_mask([vals[i] for i in plan.values]).any() or nonfinite_mask([grads[i] for i in plan.grads]).any()
    )


def nonfinite_report(
    vals: list[Any], grads: list[Any], tangents: list[Any] | None = None, *, plan: ScanPlan | None = None
) -> tuple[list[tuple[str, int]], tuple[np.ndarray, np.ndarray]]:
    """Every node scanned once: the first non-finite node of the forward pass (and of the tangents, in forward
    mode), the one where the backward pass first met one (the last in node order), and the masks of values and
    gradients, which the presenters reuse.

    With a ``plan`` (:func:`scan_plan`; values and gradients from :func:`forward` and :func:`backward`), only
    its nodes are scanned first; when they are all finite, so is every node, and the full scan is skipped."""
    if plan is not None and tangents is None and all_finite_by(plan, vals, grads):
        none = np.zeros(len(vals), dtype=bool)
        return [], (none, none.copy())
    masks = (nonfinite_mask(vals), nonfinite_mask(grads))
    bad: list[tuple[str, int]] = []
    fi = first_true(masks[0])
    if fi is not None:
        bad.append(("forward", fi))
    ti = None if tangents is None else first_true(nonfinite_mask(tangents))
    if ti is not None:
        bad.append(("tangent", ti))
    bi = first_true(masks[1], last=True)
    if bi is not None:
        bad.append(("backward", bi))
    return bad, masks


def first_true(mask: np.ndarray, last: bool = False) -> int | None:
    """The first (or the last) index where ``mask`` holds, None if nowhere."""
    if not mask.any():
        return None
    return int(len(mask) - 1 - np.argmax(mask[::-1])) if last else int(np.argmax(mask))


def check_scalar_output(g: Graph, out: int, shape: tuple) -> None:
    if int(np.prod(shape, dtype=np.int64)) != 1:
        name = g.label(out)
        raise CgraphError(
            f"output '{name}' has shape {fmt_shape(shape)}; only a scalar can be differentiated",
            g.spans[out],
            hint=(
                f"differentiate a scalar such as sum({name}) or mean({name}); or, with cgraph eval, ask for the"
                f" Jacobian (--jacobian) or a vector-Jacobian product (--cotangent V, V of shape {fmt_shape(shape)})"
            ),
            source=g.source,
        )
