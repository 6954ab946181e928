"""A hot scalar plan as straight-line Python: the float loop with its dispatch compiled away.

The float loop (:meth:`ScalarPlan.run_scalar`) spends most of its time choosing each node's kernel. Once a plan
has run :data:`HOT` times to the same output (or at once with ``CGRAPH_ENGINE=compiled``), its forward and
backward passes are written out as one Python function, one statement per operation, every value and gradient
a local variable::

    v5 = math_sin(v0)                # forward, in node order
    v6 = v5 * v2
    ...
    g5 = (g7 * v2)                   # backward, in decreasing node order: a node's gradient is written
    g1 = g7 + g10 + (g13 * v4)       # once, when it is reached, as the sum of its contributions left to
                                     # right in the loop's order (one that is another's: its name)

Each operation is the loop's own IEEE operation, written from the kernel's template below, and every sum adds
the same contributions in the same order (the first one stands alone: the loop adds it to ``-0.0``, which gives
it back bit for bit), so the results are the loop's bit for bit; a float exception (``x / 0``) is raised by the
same operation, and the graph goes to numpy's rules as from the loop. Contributions to nodes that need no
gradient (constants, inputs not asked for) are left out: those gradients are reported as none anyway. A compiled
run looks for NaN and infinities only in the nodes that could hide one, as the generic path does
(:func:`cgraph_cli.engine.reference.scan_plan`).

Compiling costs about as much as 100-150 runs of the loop (CPython compiles some 10^5 statements a second), and
each later run takes 45-80% of the time (about half on a chain). So a plan is compiled on its HOT-th run: by then
the loop has spent about what compiling costs, so however many runs follow, the total is at most about twice the
best choice made in hindsight (the ski-rental rule). A plan with NP nodes (ops run by their records on numpy
values, tensors), or of more than :data:`MAX_STATEMENTS` statements or nodes, is not compiled. Results are the
loop's bit for bit, NaN payloads aside (as for every strategy: CPython may keep either NaN of a sum of two).

This is the package's one ``exec``. The source is made of node numbers and the templates' fixed text only: no
name, number or other text of the program reaches it (the leaves' values come in as ``X``), which
``tests/test_security.py`` checks token by token on programs of arbitrary names.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from cgraph_cli.ops import Kernel

# the code of an NP1 node whose record's VJP is plain arithmetic (Op.float_vjp): forward as NP1, its VJP called on
# the floats
FLOAT_VJP = max(k.value for k in Kernel) + 1

# A plan is compiled on its HOT-th run to the same output: compiling costs about 100-150 runs of the float loop
# (measured on the bench's chains and DAGs), see the module's docstring.
HOT = 100
# The most statements, and nodes, compiled (a scalar graph of 10,000 to 20,000 nodes): CPython's compiler holds
# about 4 kB per statement while it runs (measured: 117 MB for a 16,000-node chain's 26,836), and about 1 kB per
# name in the returned lists, so at most about 150 MB for the moment it compiles; a larger plan stays on the loop.
MAX_STATEMENTS = 24_576
TERMS = 32  # the most contributions summed in one statement


class Template(NamedTuple):
    """A Kernel as Python source: its value from ``{a}`` (and ``{b}``), and per operand the contribution to
    that operand's gradient from the node's gradient ``{g}``, its value ``{y}`` and its operands."""

    fwd: str
    back: tuple[str, ...]


# The float loop's kernels (ScalarPlan.run_scalar, ScalarPlan._backward_scalar), operation for operation.
TEMPLATES: dict[int, Template] = {
    Kernel.ID.value: Template("{a}", ("{g}",)),
    Kernel.ADD.value: Template("{a} + {b}", ("{g}", "{g}")),
    Kernel.SUB.value: Template("{a} - {b}", ("{g}", "-{g}")),
    Kernel.MUL.value: Template("{a} * {b}", ("{g} * {b}", "{g} * {a}")),
    Kernel.DIV.value: Template("{a} / {b}", ("{g} / {b}", "-{g} * {a} / ({b} * {b})")),
    Kernel.NEG.value: Template("-{a}", ("-{g}",)),
    Kernel.SIN.value: Template("math_sin({a})", ("{g} * math_cos({a})",)),
    Kernel.COS.value: Template("math_cos({a})", ("-{g} * math_sin({a})",)),
    Kernel.SQRT.value: Template("math_sqrt({a})", ("{g} / (2 * {y})",)),
    Kernel.ABS.value: Template("abs({a})", ("{g} * float_sign({a})",)),
    Kernel.SQUARE.value: Template("{a} * {a}", ("2 * {g} * {a}",)),
    Kernel.RELU.value: Template("{a} if ({a} > 0.0 or {a} != {a}) else 0.0", ("{g} * (1.0 if {a} > 0 else 0.0)",)),
    # an NP1 op: its record's functions {f} (forward) and {d} (VJP) on numpy scalars, or its VJP on the floats
    Kernel.NP1.value: Template("float({f}({a}))", ("float({d}(f64({g}), f64({y}), f64({a})))",)),
    FLOAT_VJP: Template("float({f}({a}))", ("{d}({g}, {y}, {a})",)),
}


def float_sign(a: float) -> float:
    """numpy's sign of a Python float (NaN for NaN): the derivative of abs in the float loop and here."""
    return 1.0 if a > 0 else (-1.0 if a < 0 else (0.0 if a == 0 else math.nan))


Compiled = Callable[[list[float]], tuple[list[float], list[float]]]


def source(code: Any, bc: Any, out: int) -> tuple[str, dict[str, Any]] | None:
    """The Python source of ``run(X)`` for the float loop's passes to ``out`` (``code``: its FloatCode; ``bc``:
    the BackCode, None if ``out`` needs no gradient; both from :mod:`cgraph_cli.engine.scalar`, which imports
    this), X being the values of the leaves in :func:`leaf_order`; it returns every node's value and gradient as
    two lists. Also the names the source uses. None if a node is an NP node."""
    if code.np_at or code.mixed:
        return None
    n = len(code.need)
    if n > MAX_STATEMENTS:  # (every node is named in the returned lists, and op nodes have a line each)
        return None
    leaves = leaf_order(code)
    names: dict[str, Any] = {"math_sin": math.sin, "math_cos": math.cos, "math_sqrt": math.sqrt}
    names |= {"float_sign": float_sign, "f64": np.float64}
    funcs: dict[int, str] = {}  # id of an NP1 node's function -> its name in the source

    def fname(fn: Any) -> str:
        name = funcs.get(id(fn))
        if name is None:
            name = funcs[id(fn)] = f"u{len(funcs)}"
            names[name] = fn
        return name

    lines = [""]  # (the def line, once the names are known)
    lines.append(f"    {''.join(f'v{i}, ' for i in leaves)}= X")
    aux = code.aux
    for k, (i, c, a, b) in enumerate(zip(code.nodes, code.kernel, code.a0, code.a1)):
        f = aux[k] if aux is not None else None
        fwd = TEMPLATES[c].fwd.format(a=f"v{a}", b=f"v{b}", f=fname(f.fwd) if f is not None else "")
        lines.append(f"    v{i} = {fwd}")
    need = code.need
    # Each gradient is written once, when its node is reached (every consumer of a node comes before it on the way
    # back): the sum of its contributions, left to right in the loop's order, which is the loop's additions.
    pending: dict[int, list[str]] = {}
    grad: dict[int, str] = {}  # node -> the name holding its gradient (another node's, if it is the same number)

    def write(t: int, first: str) -> None:
        terms = pending.pop(t, None) or [first]
        if len(terms) == 1 and terms[0].isidentifier():  # g4 = g5: the same float, so no statement
            grad[t] = terms[0]
            return
        grad[t] = f"g{t}"
        for k in range(0, len(terms), TERMS):  # (a bounded expression for the compiler)
            lead = [f"g{t}"] if k else []
            lines.append(f"    g{t} = {' + '.join(lead + terms[k : k + TERMS])}")

    if bc is not None:
        pending[out] = ["1.0"]
        baux = bc.aux
        for k, (i, c, a, b) in enumerate(zip(bc.nodes, bc.kernel, bc.a0, bc.a1)):
            write(i, "-0.0")  # (-0.0: no contribution reached it, the loop's start)
            f = baux[k] if baux is not None else None
            back = TEMPLATES[c].back
            d = fname(f.vjp) if f is not None else ""
            for t, tmpl in zip((a, b), back):
                if need[t]:
                    term = tmpl.format(g=grad[i], y=f"v{i}", a=f"v{a}", b=f"v{b}", d=d)
                    pending.setdefault(t, []).append(term if term.isidentifier() else f"({term})")
        for t in sorted(pending):  # the leaves
            write(t, "-0.0")
    if len(lines) - 2 > MAX_STATEMENTS:  # (the operations' statements: not the def line and the unpacking)
        return None
    values = "".join(f"v{i}, " for i in range(n))
    grads = "".join(f"{grad.get(i, '-0.0')}, " for i in range(n))
    lines.append(f"    return [{values}], [{grads}]")
    lines[0] = f"def run(X, {', '.join(f'{k}={k}' for k in names)}):"  # (each name a local: a fast lookup)
    return "\n".join(lines) + "\n", names


def leaf_order(code: Any) -> list[int]:
    """The leaves in the order the compiled passes take their values: the inputs (``code.input_nodes``), then the
    others (constants) in node order."""
    ops = set(code.nodes).union(code.input_nodes)
    return code.input_nodes + [i for i in range(len(code.need)) if i not in ops]


def compile_passes(code: Any, bc: Any, out: int) -> Compiled | None:
    """The compiled passes to ``out`` (see :func:`source`); None if they cannot be compiled."""
    made = source(code, bc, out)
    if made is None:
        return None
    text, names = made
    namespace = dict(names)
    exec(compile(text, f"<cgraph compiled plan, output node {out}>", "exec"), namespace)  # noqa: S102
    return namespace["run"]
