"""What every export target writes from: the nodes the output depends on, in order, each with an identifier
for generated code and its readable name and line for comments.

The program is compiled as ``eval`` compiles it (``--at`` values give input shapes; the program's defaults
and the ``--at`` values become the module's defaults); an input with no value, declared shape or default is
taken as a scalar. Nothing here knows a target: the per-op spellings are the op records' ``lower`` fields.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cgraph_cli.errors import CgraphError
from cgraph_cli.ir.graph import Graph
from cgraph_cli.ir.names import node_names
from cgraph_cli.ops import LEAF_OPS, OPS
from cgraph_cli.ops.core import Code, NoEquivalent, Site

TARGETS = ("numpy", "jax", "torch", "onnx")

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

    @property
    def name(self) -> str:
        """The output's readable name."""
        return self.label[self.out]

    def line(self, i: int) -> int:
        return self.g.line_col(i)[0]

    def comment(self, i: int) -> str:
        """``x, line 9``: the node's readable name and its source line."""
        return f"{self.label[i]}, line {self.line(i)}"

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


def plan_for(g: Graph, out: int, given: dict[str, Any], reserved: set[str] = frozenset()) -> Plan:
    """The plan of output ``out``; ``given`` are the ``--at`` values (they override the program's defaults)."""
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
    defaults = {}
    for name in g.inputs:
        if name in given:
            defaults[name] = np.asarray(given[name], dtype=np.float64)
        elif name in g.defaults:
            defaults[name] = np.asarray(g.defaults[name], dtype=np.float64)
    used = {i for i in inputs if anc[i]}
    return Plan(g, out, inputs, nodes, consts, ident, labels, defaults, used)


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
    shown = {"numpy": "numpy", "jax": "JAX", "torch": "PyTorch", "onnx": "ONNX"}[target]
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
