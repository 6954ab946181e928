"""A hot scalar plan as straight-line Python: the float loop with its dispatch compiled away.

The float loop (:meth:`ScalarPlan.run_scalar`) spends most of its time choosing each node's kernel. Once a plan
has run :data:`HOT` times (or at once with ``CGRAPH_ENGINE=compiled``), its forward and backward passes to
an output are written out as one Python function, one statement per operation, every value and gradient a local
variable::

    v5 = math_sin(v0)               # forward, in node order
    v6 = v5 * v2
    ...
    g6 = g7                     # backward: the first contribution to a gradient is assigned,
    g1 += g7                    # the next ones added, in the float loop's order
    g5 = g6 * v2

Each line is the loop's own IEEE operation, written from the kernel's template below, so the results are the
loop's bit for bit (``-0.0 + x`` is ``x`` for every ``x``, so assigning the first contribution is the loop's
adding it to ``-0.0``). Contributions to nodes that need no gradient (constants; inputs not asked for) are left
out: their gradients are reported as none anyway.

Compiling costs about 100-200 runs of the loop (CPython compiles some 10^5 statements a second), so a plan is
compiled only once it is hot: that many runs makes the compile cost at most what the loop had already spent
(the ski-rental rule), and every later run about twice as fast. A plan with NP nodes (ops run by their records
on numpy values, tensors) is not compiled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from cgraph_cli.ops import Kernel

# the backward code of an NP1 node whose record's VJP is plain arithmetic (Op.float_vjp): called on the floats
FLOAT_VJP = max(k.value for k in Kernel) + 1

# A plan is compiled on its HOT-th run to the same output (see the module's docstring).
HOT = 100
# The most statements compiled: CPython's compiler holds about 3 kB per statement while it runs (so at most about
# 100 MB, for a moment); a larger plan stays on the float loop.
MAX_STATEMENTS = 32_768


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
}
FLOAT_VJP_TEMPLATE = "{d}({g}, {y}, {a})"


def _sign(a: float) -> float:
    return 1.0 if a > 0 else (-1.0 if a < 0 else (0.0 if a == 0 else math.nan))


Compiled = Callable[[list[float]], tuple[list[float], list[float]]]


def source(code: Any, bc: Any, out: int) -> tuple[str, dict[str, Any]] | None:
    """The Python source of ``run(X)`` for the float loop's passes to ``out`` (``code``: its FloatCode; ``bc``:
    the BackCode, None if ``out`` needs no gradient; both from :mod:`cgraph_cli.engine.scalar`, which imports
    this), X being the values of the leaves in :func:`leaf_order`; it returns every node's value and gradient as
    two lists. Also the names the source uses. None if a node is an NP node."""
    if code.np_at or code.mixed:
        return None
    if len(code.nodes) + (0 if bc is None else len(bc.nodes)) > MAX_STATEMENTS:  # (at least one line each)
        return None
    n = len(code.need)
    leaves = leaf_order(code)
    names: dict[str, Any] = {"math_sin": math.sin, "math_cos": math.cos, "math_sqrt": math.sqrt}
    names |= {"float_sign": _sign, "f64": np.float64}
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
    seen: set[int] = set()
    if bc is not None:
        lines.append(f"    g{out} = 1.0")
        seen.add(out)
        baux = bc.aux
        for k, (i, c, a, b) in enumerate(zip(bc.nodes, bc.back, bc.a0, bc.a1)):
            if i not in seen:  # (no contribution reached it: the loop's -0.0)
                lines.append(f"    g{i} = -0.0")
                seen.add(i)
            f = baux[k] if baux is not None else None
            if c == FLOAT_VJP:
                back: tuple[str, ...] = (FLOAT_VJP_TEMPLATE,)
            else:
                back = TEMPLATES[c].back
            d = fname(f.vjp) if f is not None else ""
            for t, tmpl in zip((a, b), back):
                if not need[t]:
                    continue
                expr = tmpl.format(g=f"g{i}", y=f"v{i}", a=f"v{a}", b=f"v{b}", d=d)
                lines.append(f"    g{t} {'+=' if t in seen else '='} {expr}")
                seen.add(t)
    if len(lines) > MAX_STATEMENTS:
        return None
    values = "".join(f"v{i}, " for i in range(n))
    grads = "".join(f"g{i}, " if i in seen else "-0.0, " for i in range(n))
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
