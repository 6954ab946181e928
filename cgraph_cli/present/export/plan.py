"""What every export target writes from: the nodes the output depends on, in order, each with an identifier
for generated code and its readable name and line for comments.

The program is compiled as ``eval`` compiles it (``--at`` values give input shapes; the program's defaults
and the ``--at`` values become the module's defaults); an input with no value, declared shape or default is
taken as a scalar. Nothing here knows a target: the per-op spellings are the op records' ``lower`` fields.
"""

from __future__ import annotations

import keyword
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cgraph_cli.errors import CgraphError
from cgraph_cli.fmt import fmt_shape
from cgraph_cli.ir.backward import NoGradientNodes
from cgraph_cli.ir.graph import BackwardPass, Graph, backward_pass
from cgraph_cli.ir.names import node_names
from cgraph_cli.ops import LEAF_OPS, OPS
from cgraph_cli.ops.core import Code, NoEquivalent, Site

TARGETS = ("numpy", "jax", "torch", "onnx")
SHOWN = {"numpy": "numpy", "jax": "JAX", "torch": "PyTorch", "onnx": "ONNX"}
# what to do when the backward pass cannot be exported
HINT_FORWARD_ONLY = {
    "numpy": "--forward-only writes forward() alone; the JAX and PyTorch exports differentiate it",
    "onnx": "export without --with-gradients; the JAX and PyTorch exports differentiate it",
}

_SUBSCRIPT_DIGITS = str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")
_SUBSCRIPTED = re.compile(r"([A-Za-z_]\w*?)([₀-₉]+)")
# names the generated modules use for themselves, and names ruff refuses for a variable (E741)
RESERVED = frozenset({"np", "jnp", "jax", "torch", "forward", "value_and_grad", "f", "DEFAULTS", "l", "I", "O"})


@dataclass
class Plan:
    """The forward graph of one output, ready to be written out."""

    g: Graph
    out: int
    inputs: list[int]  # every input node, in program order (also those the output does not depend on)
    nodes: list[int]  # the non-leaf nodes the output depends on, in topological order
    consts: list[int]  # the constants they use
    ident: dict[int, str]  # node -> identifier in generated code
    label: list[str]  # node -> readable name (names.py)
    defaults: dict[str, np.ndarray]  # input name -> default value (program default, or --at)
    used: set[int] = field(default_factory=set)  # the inputs the output depends on
    # the backward pass (:func:`plan_with_gradients`; empty for the forward pass alone): g then holds it too
    gradients: bool = False  # planned with the backward pass
    grads: dict[int, int] = field(default_factory=dict)  # input node -> the node holding ∂output/∂input
    backward: list[int] = field(default_factory=list)  # the backward pass's non-leaf nodes, in order
    made_by: dict[int, int] = field(default_factory=dict)  # backward node -> the forward node whose VJP made it
    gradient_of: dict[int, int] = field(default_factory=dict)  # backward node -> the node it is ∂output/∂ of

    @property
    def name(self) -> str:
        """The output's readable name."""
        return self.label[self.out]

    def line(self, i: int) -> int:
        return self.g.line_col(i)[0]

    def comment(self, i: int) -> str:
        """``x, line 9``: the node's readable name and its source line; for a node of the backward pass,
        ``∂z/∂x, back through y, line 9``: what it holds, if a gradient, and the forward node whose
        derivative it applies."""
        f = self.made_by.get(i)
        if f is None:
            return f"{self.label[i]}, line {self.line(i)}"
        of = self.gradient_of.get(i)
        what = f"∂{self.name}/∂{self.label[of]}, " if of is not None else ""
        return f"{what}back through {self.label[f]}, line {self.line(f)}"

    def shape(self, i: int) -> tuple[int, ...]:
        s = self.g.shapes[i]
        assert s is not None, "shapes are known once every input has one"
        return tuple(s)


def compile_for_export(request: Any) -> Graph:
    """The request's graph with every shape known: inputs with no value, declared shape or default are
    compiled as scalars."""
    g = request.compile()
    unknown = [n for n, i in g.inputs.items() if g.shapes[i] is None]
    if not unknown:
        return g
    from dataclasses import replace

    values = dict(request.values)
    for name in unknown:
        values[name] = np.zeros((), dtype=g.dtype)
    return replace(request, values=values).compile()


def plan_for(
    g: Graph, out: int, given: dict[str, Any], reserved: set[str] = frozenset(), back: BackwardPass | None = None
) -> Plan:
    """The plan of output ``out``; ``given`` are the ``--at`` values (they override the program's defaults).
    With ``back`` (``g``'s backward pass, :func:`cgraph_cli.ir.graph.backward_pass`), also the plan of the
    gradient of every input: see :func:`plan_with_gradients`."""
    if g.shapes[out] is None:
        raise CgraphError("cannot export a program whose shapes are unknown")
    anc = g.ancestors(out)
    inputs = list(g.inputs.values())
    nodes = [i for i in range(out + 1) if anc[i] and g.ops[i] not in LEAF_OPS]
    consts = [i for i in range(out + 1) if anc[i] and g.ops[i] == "const"]
    labels = node_names(g)
    taken = set(RESERVED) | set(reserved)
    ident: dict[int, str] = {}
    for i in inputs + sorted(set(nodes) | set(consts)):
        if g.ops[i] == "const":
            base = f"c{i}"
        elif g.names[i] is not None:
            base = _SUBSCRIPTED.sub(lambda m: f"{m.group(1)}_{m.group(2).translate(_SUBSCRIPT_DIGITS)}", labels[i])
        else:
            base = f"t{i}"
        ident[i] = _unique(_identifier(base), taken)
    grads: dict[int, int] = {}
    backward: list[int] = []
    gradient_of: dict[int, int] = {}
    if back is not None:
        bg, n = back.graph, len(g)
        need = [False] * len(bg)
        for s in back.grads.values():
            need[s] = True
        for i in range(len(bg) - 1, n - 1, -1):
            if need[i]:
                for j in bg.args[i]:
                    need[j] = True
        assert not any(need[i] and not anc[i] and bg.ops[i] not in LEAF_OPS for i in range(n)), "off the forward"
        for f, node in back.gradient_of.items():  # from the output back: a node holding several is named by the last
            if node >= n and node not in gradient_of:
                gradient_of[node] = f
        for i in range(n, len(bg)):
            if not need[i]:
                continue
            if bg.ops[i] == "const":
                consts.append(i)
                base = f"c{i}"
            else:
                backward.append(i)
                base = f"d_{ident[gradient_of[i]]}" if i in gradient_of else f"t{i}"
            ident[i] = _unique(_identifier(base), taken)
        labels += ["" for _ in range(n, len(bg))]
        grads = dict(back.grads)
        g = bg
    defaults = {}
    for name in g.inputs:
        if name in given:
            defaults[name] = np.asarray(given[name], dtype=np.float64)
        elif name in g.defaults:
            defaults[name] = np.asarray(g.defaults[name], dtype=np.float64)
    used = {i for i in inputs if anc[i]}
    made_by = back.made_by if back is not None else {}
    return Plan(
        g,
        out,
        inputs,
        nodes,
        consts,
        ident,
        labels,
        defaults,
        used,
        back is not None,
        grads,
        backward,
        made_by,
        gradient_of,
    )


def plan_with_gradients(
    g: Graph, out: int, given: dict[str, Any], target: str, reserved: set[str] = frozenset()
) -> Plan:
    """The plan of output ``out`` and of its gradient with respect to every input: the backward pass as
    nodes (:func:`cgraph_cli.ir.graph.backward_pass`, each op record's VJP recorded as the nodes it computes
    with), after the forward nodes. ``out`` must hold one number."""
    shape = g.shapes[out]
    if shape is not None and math.prod(shape) != 1:
        raise CgraphError(
            f"the output {node_names(g)[out]} has shape {fmt_shape(shape)}: only a one-number output has a gradient",
            g.spans[out],
            source=g.source,
            hint="export sum(...) or mean(...) of it, or choose another output with --of",
        )
    try:
        back = backward_pass(g, out)
    except NoGradientNodes as e:
        raise CgraphError(
            f"cannot export the gradient of '{e.op}' to {SHOWN[target]}: its derivative is not written as "
            "operations yet",
            e.span,
            source=g.source,
            hint=HINT_FORWARD_ONLY[target],
        ) from None
    return plan_for(g, out, given, reserved, back)


def _identifier(text: str) -> str:
    s = re.sub(r"\W", "_", text, flags=re.ASCII)
    if not s or s[0].isdigit():
        s = "_" + s
    return s


def _unique(base: str, taken: set[str]) -> str:
    name = base
    while name in taken or keyword.iskeyword(name) or name in RESERVED:
        name += "_"
    taken.add(name)
    return name


def code_for(plan: Plan, i: int, target: str) -> Code:
    """Node ``i``'s spelling in a Python target, or the error that it has none."""
    op = OPS[plan.g.ops[i]]
    code = op.lower.code(target) if op.lower is not None else None
    if code is None:
        raise no_equivalent(plan, i, target)
    return code


def no_equivalent(plan: Plan, i: int, target: str, why: str | None = None) -> CgraphError:
    op = plan.g.ops[i]
    shown = SHOWN[target]
    reason = f": {why}" if why else ""
    return CgraphError(
        f"cannot export op '{op}' ({plan.label[i]}) to {shown}: it has no equivalent there{reason}",
        plan.g.spans[i],
        source=plan.g.source,
        hint=f"export to another target, or write the program without '{op}' here",
    )


def write(plan: Plan, i: int, target: str, code: Code, site: Site) -> str:
    try:
        return code.write(site)
    except NoEquivalent as e:
        raise no_equivalent(plan, i, target, str(e)) from None
