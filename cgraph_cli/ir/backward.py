"""The backward pass as graph nodes: reverse mode run on traced values (:mod:`cgraph_cli.ir.trace`).

:func:`gradient_nodes` is the reference engine's backward loop (:func:`cgraph_cli.engine.backward`) with
every value a :class:`~cgraph_cli.ir.trace.Traced` node instead of an array: each op record's VJP, the
same function the engine calls on arrays, records the nodes that compute ``g · ∂node/∂operand``; the
contributions to an operand are summed by ``add`` nodes and summed back to its shape by ``sum_to``.
The result is part of an ordinary graph: the engines evaluate it, the pictures draw it, and it can be
differentiated again (JAX's linearise-and-transpose, PyTorch's ``create_graph=True``). The engine's
numeric backward pass does not come here and is unchanged.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from cgraph_cli.errors import CgraphError
from cgraph_cli.ir.trace import NotTraceable, Tape, Traced
from cgraph_cli.ops import LEAF_OPS, OPS
from cgraph_cli.ops.core import sum_to


class NoGradientNodes(CgraphError):
    """An op's VJP cannot be recorded as graph nodes (``op``: the op's name, ``why``: the numpy it uses)."""

    def __init__(self, message: str, span: tuple[int, int] | None, *, op: str, why: str, hint: str) -> None:
        super().__init__(message, span, hint=hint)
        self.op = op
        self.why = why


def span_of(tape: Tape, i: int) -> tuple[int, int] | None:
    """Node ``i``'s source span, when the tape can tell."""
    spans = getattr(tape, "spans", None)
    return None if spans is None else spans(i)


def depends_on(ops: list[str], args: list[tuple[int, ...]], sources: Sequence[int], upto: int) -> list[bool]:
    """Which nodes up to ``upto`` depend on one of ``sources`` (themselves included)."""
    need = [False] * (upto + 1)
    for s in sources:
        if s <= upto:
            need[s] = True
    for i in range(min(sources, default=upto + 1), upto + 1):
        if not need[i]:
            need[i] = any(need[j] for j in args[i])
    return need


def gradient_nodes(
    tape: Tape, ops: list[str], args: list[tuple[int, ...]], attrs: list[dict | None], out: int, sources: Sequence[int]
) -> dict[int, int | None]:
    """Append to the tape's graph the nodes computing ``∂out/∂s`` for every node ``s`` in ``sources``;
    the result maps each source to its gradient node (None: ``out`` does not depend on it, the gradient
    is zero). ``out`` must hold one number. ``ops``/``args``/``attrs`` are the graph's columns (read only
    below ``out``, so the tape may append to them). ``tape.focus(i)``, when the tape has it, is called
    before the nodes of node ``i``'s VJP are recorded; ``tape.gradient(i, n)``, when the tape has it, once
    node ``i``'s gradient is complete (every contribution summed), ``n`` the node holding ``∂out/∂i``."""
    need = depends_on(ops, args, sources, out)
    grads: list[Any] = [None] * (out + 1)
    if not need[out]:
        return {s: None for s in sources}
    focus = getattr(tape, "focus", None)
    complete = getattr(tape, "gradient", None)
    if focus is not None:
        focus(out)
    grads[out] = Traced(tape, tape.const(np.ones(tape.shape(out))))
    lowest = min(sources)
    for i in range(out, lowest - 1, -1):
        gi = grads[i]
        op = ops[i]
        if gi is not None and complete is not None:
            complete(i, gi.node)
        if gi is None or op in LEAF_OPS:
            continue
        ks = [k for k, j in enumerate(args[i]) if need[j]]
        if not ks:
            continue
        if focus is not None:
            focus(i)
        xs = [Traced(tape, j) for j in args[i]]
        try:
            parts = OPS[op].vjps(ks, gi, Traced(tape, i), xs, attrs[i])
        except NotTraceable as e:
            raise NoGradientNodes(
                f"the gradient of '{OPS[op].fname}' cannot be built as graph nodes yet (its VJP uses {e}), so it "
                "cannot be drawn with --backward, differentiated again, or used inside grad()",
                span_of(tape, i),
                op=OPS[op].fname,
                why=str(e),
                hint="first-order gradients (eval, check, explain) are not affected",
            ) from None
        for k, gk in zip(ks, parts):
            if gk is None:
                continue
            j = args[i][k]
            if not isinstance(gk, Traced):
                if not np.any(gk):  # a constant zero (a comparison's, sign's): nothing flows
                    continue
                gk = Traced(tape, tape.const(np.asarray(gk, dtype=tape.dtype)))
            want = tuple(tape.shape(j))
            if gk.shape != want:
                gk = sum_to(gk, want)
            grads[j] = gk if grads[j] is None else grads[j] + gk
    return {s: None if s > out or grads[s] is None else grads[s].node for s in sources}
