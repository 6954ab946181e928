"""Second derivatives: Hessian-vector products and Hessians, by reverse mode over the backward pass as nodes.

The backward pass of a program, recorded as graph nodes (:func:`cgraph_cli.ir.graph.backward_graph`), is an
ordinary graph; dotted with a direction ``v`` it is a scalar ``s = ∇f · v`` (:func:`cgraph_cli.ir.graph.hvp_graph`),
and the engine's ordinary reverse mode on that graph gives ``∇s = H v``: a Hessian-vector product for a few
gradients' cost, never forming the Hessian (reverse-over-reverse, as in Pearlmutter 1994 and JAX's
``grad(lambda x: vdot(grad(f)(x), v))``). The Hessian is one such product per input entry.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from cgraph_cli.engine import evaluate
from cgraph_cli.engine.reference import Result
from cgraph_cli.ir.graph import Graph, hvp_graph

MAX_HESSIAN_ENTRIES = 4096  # inputs' entries in all: the Hessian is that many products (and squared entries)


class HvpProgram:
    """A program's Hessian-vector product: the graph of ``∇f · v`` built once, evaluated per direction."""

    def __init__(self, g: Graph, out: int, *, max_memory: int | None = None) -> None:
        self.g = g
        self.out = out
        self.graph, self.dot, self.names = hvp_graph(g, out, max_memory=max_memory)

    def run(self, inputs: dict[str, np.ndarray], direction: dict[str, Any]) -> Result:
        """The engine's result on the graph of ``∇f · v``: its gradients of the inputs are ``H v``."""
        values = dict(inputs)
        for x, v in self.names.items():
            d = direction.get(x)
            shape = np.shape(inputs[x])
            values[v] = (
                np.zeros(shape, dtype=self.g.dtype)
                if d is None
                else np.broadcast_to(np.asarray(d, dtype=self.g.dtype), shape)
            )
        return evaluate(self.graph, values, self.dot)

    def hvp(self, inputs: dict[str, np.ndarray], direction: dict[str, Any]) -> dict[str, np.ndarray]:
        """``(H v)[x]`` for every input ``x`` (``v``: a direction per input; a missing one is 0)."""
        res = self.run(inputs, direction)
        return {x: np.asarray(res.grads[self.g.inputs[x]]) for x in self.g.grad_inputs()}


def hvp(g: Graph, inputs: dict[str, np.ndarray], out: int, direction: dict[str, Any], **kw: Any):
    """``H v`` of output ``out`` (one number) at ``inputs``: see :class:`HvpProgram`."""
    return HvpProgram(g, out, **kw).hvp(inputs, direction)


def hessian(
    g: Graph, inputs: dict[str, np.ndarray], out: int, *, wrt: Sequence[str] | None = None, **kw: Any
) -> dict[str, dict[str, np.ndarray]]:
    """``{x: {y: ∂²out/∂x∂y}}`` for the inputs x, y (those named in ``wrt``, in that order), each of shape
    ``x.shape + y.shape``: one Hessian-vector product per entry of those inputs (direction the unit vector of
    that entry)."""
    prog = HvpProgram(g, out, **kw)
    names = g.grad_inputs() if wrt is None else list(wrt)  # inputs declared data have no derivatives
    shapes = {x: np.shape(inputs[x]) for x in names}
    out_h: dict[str, dict[str, np.ndarray]] = {
        x: {y: np.zeros(shapes[x] + shapes[y], dtype=g.dtype) for y in names} for x in names
    }
    for x in names:
        n = int(np.prod(shapes[x], dtype=np.int64))
        for k in range(n):
            e = np.zeros(n, dtype=g.dtype)
            e[k] = 1
            row = prog.hvp(inputs, {x: e.reshape(shapes[x])})
            idx = np.unravel_index(k, shapes[x]) if shapes[x] else ()
            for y in names:
                out_h[x][y][idx] = row[y]
    return out_h


def hessian_size(g: Graph, inputs: dict[str, np.ndarray], wrt: Sequence[str] | None = None) -> int:
    """The number of entries of the inputs (those named in ``wrt``; default every input not declared data):
    the Hessian's side."""
    return sum(int(np.size(inputs[x])) for x in (g.grad_inputs() if wrt is None else wrt))
