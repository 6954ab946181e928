"""Forward and backward passes: plain loops over the node list, never recursion.

The backward pass is reverse-mode autodiff: each node's gradient
``∂out/∂node`` is the sum over its successors of the successor's gradient
times the local derivative, accumulated on write as successors are visited in
reverse topological order.

:func:`evaluate` picks one of four strategies that give the same numbers:

- ``generic``: one numpy call per node (any shapes; the reference);
- ``scalar``: every node a float64 scalar and the graph narrow (chains, running
  sums): a tight loop over Python floats with small per-op kernels;
- ``levels``: every node a float64 scalar and the graph wide: nodes grouped by
  (depth, op) and each group evaluated with one numpy call over index arrays.
- ``compiled``: the ``scalar`` loop's operations written out as straight-line
  Python (:mod:`cgraph_cli.engine.compiled`); ``auto`` switches a plan to it on
  its HOT-th run, ``compiled`` at once.

The fast strategies are exact: the same IEEE operations as the generic path in
the same order (operands' gradients are accumulated in decreasing order of the
consumer, as the generic loop does), and Python's ``math`` is used only where
it agrees bit for bit with numpy; everything else calls numpy on the scalar.
A Python float exception (division by zero, a math domain error) makes the
scalar loop hand the graph to a numpy strategy, which follows numpy's rules.
"""

from __future__ import annotations

import os

import numpy as np

from cgraph_cli import allocator, gcpause
from cgraph_cli.engine.reference import (
    Result,
    backward,
    check_scalar_output,
    forward,
    nonfinite_report,
    scan_plan,
)
from cgraph_cli.engine.scalar import scalar_plan
from cgraph_cli.errors import CgraphError
from cgraph_cli.ir.graph import Graph

__all__ = ["STRATEGIES", "Result", "backward", "evaluate", "forward"]

STRATEGIES = ("auto", "generic", "scalar", "levels", "compiled")


def evaluate(
    g: Graph,
    inputs: dict[str, np.ndarray],
    out: int | None = None,
    *,
    strategy: str | None = None,
    wrt: list[str] | None = None,
) -> Result:
    """Forward and backward pass; the output must be a scalar (one element).

    ``strategy`` forces one of :data:`STRATEGIES` (default: ``$CGRAPH_ENGINE`` or ``auto``);
    a fast strategy that does not apply to the graph falls back to the generic one.
    ``wrt``: the inputs to differentiate (default: every input not declared data; checked by
    :meth:`Graph.grad_inputs`); nodes no requested gradient depends on get none (None), and no strategy
    visits them in the backward pass.

    The garbage collector is paused meanwhile (:mod:`cgraph_cli.gcpause`): a plan and a result are acyclic. The
    first evaluation in a process has glibc keep freed memory for the next (:mod:`cgraph_cli.allocator`).
    """
    allocator.retain()
    with gcpause.paused():
        return _evaluate(g, inputs, g.output if out is None else out, strategy, wrt)


def _evaluate(g: Graph, inputs: dict[str, np.ndarray], out: int, strategy: str | None, wrt: list[str] | None) -> Result:
    names = g.grad_inputs(wrt)
    pruned = len(names) < len(g.inputs)
    strategy = strategy or os.environ.get("CGRAPH_ENGINE") or "auto"
    if strategy not in STRATEGIES:
        raise CgraphError(f"unknown engine strategy '{strategy}' (one of: {', '.join(STRATEGIES)})")
    if strategy != "generic":
        plan = scalar_plan(g)
        xs = None if plan is None else plan.bind(inputs)  # every input a scalar, as a float
        if plan is not None and xs is not None:
            if pruned:  # only the nodes the requested gradients depend on get one
                plan = plan.pruned(names)
            kind = strategy
            if kind in ("auto", "compiled"):  # a hot plan runs compiled (at once if asked), else as auto picks
                fn = plan.hot(out, now=kind == "compiled")
                res = None if fn is None else plan.run_compiled(fn, inputs, out, xs)
                if res is not None:
                    return _asked(res, names) if pruned else res
                # not compiled (yet): as auto picks; a Python float exception: numpy's rules apply
                kind = "levels" if plan.wide(out) else ("scalar" if fn is None else "generic")
            res = None
            if kind == "scalar":
                res = plan.run_scalar(inputs, out, xs)
                if res is not None:
                    return _asked(res, names) if pruned else res
                # a Python float exception (x / 0, math domain): numpy's rules apply
                if strategy == "scalar" or not plan.wide(out):
                    kind = "generic"
            if kind == "levels" and plan.batchable():
                res = plan.run_levels(inputs, out, xs)
                return _asked(res, names) if pruned else res
    vals = forward(g, inputs)
    check_scalar_output(g, out, np.shape(vals[out]))
    grads = backward(g, vals, out, wrt=names)
    # the nodes that could hide a NaN or an infinity first; every node (kept for the presenters) only if one does
    bad, masks = nonfinite_report(vals, grads, plan=scan_plan(g, names))
    return Result(g, vals, grads, out, inputs, bad, masks=masks, wrt=names if pruned else None)


def _asked(res: Result, names: list[str]) -> Result:
    """A pruned fast strategy's result, saying which inputs it differentiated."""
    res.wrt = names
    return res
