"""``cgraph explain``: the forward and backward passes written out step by step, as on a board.

The forward pass gives one line per node in topological order, first symbolically, then with the
numbers, then the value::

    x = a + b = -1 + 3 = 2

The backward pass gives one line per node, from the output back as the lecture goes (by distance from the output,
then in the program's order): the node's gradient as the
sum over its successors of (the successor's gradient) · (the local derivative), first symbolically,
then with the numbers, then the result, followed by the local derivatives it used::

    ∂z/∂b = ∂z/∂x · ∂x/∂b + ∂z/∂y · ∂y/∂b = 7 · 1 + 2 · 1 = 9
        where ∂x/∂b = 1, ∂y/∂b = 1

Names are those of :func:`cgraph_cli.ir.names.node_names` (the same in the eval table, ``check``, the
pictures, their ``--steps`` captions and the warnings): ``s₁``, ``s₂`` for a reassigned name, the source
text ``(w * x)`` for an anonymous node, ``%ID`` where that text would be long, repeated or inside a user
function, and a constant's value.

Tensors. A node whose value or gradient has more than :data:`cgraph_cli.fmt.FULL` entries is summarised by its
L2 norm (``‖W1‖ = 3.07``); every tensor line ends with its shapes. One rule decides whether a forward step
shows its numbers (``z = x + b = [1, 2] + [0, 1] = [1, 3]``): every operand is written in full, scalars and
tensors alike. Backward steps through tensors
are written as vector-Jacobian products in matrix form (``∂L/∂W = ∂L/∂u · xᵀ``), with ``⊙`` for an
elementwise product and ``sum_to(..., shape)`` where a broadcast operand's gradient is summed back
over the broadcast axes to the operand's shape.

Local derivatives come from the op records (:mod:`cgraph_cli.ops`: the ``local`` template and, for
tensors, ``vjp_text``); an op with no template still explains: its local derivative is shown as
``∂u/∂a`` and its number comes from the record's VJP evaluated at g = 1.

Every other view of the steps renders from :func:`explain`: ``explain --format json``
(:func:`to_data`) and the captions of ``cgraph render --steps`` (:func:`step_text`, one line per step).

Numbers are those of :func:`cgraph_cli.engine.evaluate` (the same as ``cgraph eval``).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cgraph_cli.engine.forward_mode import tangents
from cgraph_cli.engine.reference import Result, backward, forward
from cgraph_cli.errors import CgraphError
from cgraph_cli.fmt import fmt_list, fmt_norm, fmt_operand, fmt_shape, fmt_value, is_small, json_value
from cgraph_cli.ir.graph import Graph
from cgraph_cli.ir.names import node_names
from cgraph_cli.ops import OPS, Derive, unbroadcast
from cgraph_cli.ops.text import call, paren

MAX_STEPS = 10_000  # programs with more nodes are refused: a step per node, unreadable and slow beyond this


# -- the explanation as data ----------------------------------------------------------


@dataclass
class Term:
    successor: int
    slots: list[int]  # operand positions of the node in the successor (two for x * x)
    formula: str  # ∂z/∂x · ∂x/∂b, or the VJP for tensors
    local_formula: str  # ∂x/∂b's template (scalars and elementwise ops)
    local: Any  # ∂successor/∂node where that is a number or an elementwise factor; else None
    upstream: Any
    contribution: Any
    shapes: str | None = None
    note: str | None = None
    scalar: bool = False  # a number times a number (else a VJP in matrix form)


@dataclass
class ForwardStep:
    node: int
    label: str
    op: str
    expr: str | None  # symbolic right-hand side (None for inputs)
    numbers: str | None  # right-hand side with the numbers
    value: Any
    shapes: str | None
    # forward mode (dual numbers): the tangent, its name (ẋ), its formula and the formula with the numbers
    tangent: Any = None
    dot: str = ""
    tangent_expr: str | None = None
    tangent_numbers: str | None = None


@dataclass
class BackwardStep:
    node: int
    label: str
    terms: list[Term]
    grad: Any
    seed: bool = False
    shape: tuple[int, ...] = ()


@dataclass
class Explanation:
    result: Result
    labels: list[str]
    forward: list[ForwardStep] = field(default_factory=list)
    backward: list[BackwardStep] = field(default_factory=list)
    off_path: list[int] = field(default_factory=list)  # named nodes the output does not depend on

    @property
    def out_label(self) -> str:
        return self.labels[self.result.out]

    def d(self, i: int) -> str:
        """``∂out/∂node`` for node i."""
        return f"∂{self.out_label}/∂{self.labels[i]}"


# -- the size limit ------------------------------------------------------------------


def too_large(n: int | None, max_steps: int, option: str | None = None) -> CgraphError:
    """The refusal of a program with more than ``max_steps`` nodes (``n`` of them, None when not counted)."""
    size = f"{n:,} nodes" if n is not None else f"more than {max_steps:,} nodes"
    hint = "explain a smaller program, or use cgraph eval --format json"
    if option:
        hint += f", or raise the limit with {option} N"
    return CgraphError(
        f"the program has {size}; explain writes a step for each node and stops at {max_steps:,}",
        hint=hint,
    )


def check_size(g: Graph, max_steps: int = MAX_STEPS, option: str | None = None) -> None:
    """Refuse a graph with more than ``max_steps`` nodes (see :func:`too_large`)."""
    if len(g) > max_steps:
        raise too_large(len(g), max_steps, option)


def explain(
    result: Result, max_steps: int = MAX_STEPS, option: str | None = None, *, backward: bool = True
) -> Explanation:
    """Build the step-by-step explanation of a finished forward and backward pass.

    A graph of more than ``max_steps`` nodes is refused before any work (:func:`check_size`).
    ``backward=False``: the forward steps only (a non-scalar output has no gradients)."""
    g = result.graph
    check_size(g, max_steps, option)
    labels = node_names(g)
    ex = Explanation(result, labels)
    vals, grads, out = result.values, result.grads, result.out
    # the forward pass: every node up to the output that it depends on
    anc = g.ancestors(out)
    ex.off_path = [i for i in range(len(g)) if not anc[i] and g.names[i] is not None]
    for i in range(out + 1):
        if not anc[i] or (g.ops[i] == "const" and g.names[i] is None):
            continue
        ex.forward.append(_forward_step(g, labels, vals, i))
    if result.mode == "forward":  # dual numbers: each step's tangent beside its value, no backward pass
        for st in ex.forward:
            _tangent_step(g, labels, vals, result.tangents or [], st)
        return ex
    if not backward:
        return ex
    # the backward pass (in _backward_order): nodes that depend on an input and reach the output
    need = g.needs_grad()
    rel = [anc[i] and need[i] for i in range(len(g))]
    succ: dict[int, list[int]] = {}
    for j in range(out + 1):
        if not rel[j]:
            continue
        for j2 in set(g.args[j]):  # each successor once (x * x), in increasing order of successor
            if rel[j2]:
                succ.setdefault(j2, []).append(j)
    cache: dict[int, _Succ] = {}
    for i in _backward_order(rel, succ, out):
        if i == out:
            ex.backward.append(BackwardStep(i, labels[i], [], grads[i], seed=True, shape=np.shape(vals[i])))
            continue
        terms = [_term(g, labels, vals, grads, i, j, out, cache) for j in succ.get(i, [])]
        ex.backward.append(BackwardStep(i, labels[i], terms, grads[i], shape=np.shape(vals[i])))
    return ex


def _backward_order(rel: list[bool], succ: dict[int, list[int]], out: int) -> list[int]:
    """The backward steps' order, as the lecture takes them: the output, then the nodes one step from it, then
    those two steps from it, ... (by the longest path to the output, so every node comes after every node it
    feeds: its gradient's terms are all known), and within a distance in the program's order (x before y, then
    a, b, c)."""
    far = [0] * (out + 1)
    for i in range(out - 1, -1, -1):
        if rel[i]:
            far[i] = 1 + max((far[j] for j in succ.get(i, ())), default=-1)
    return sorted((i for i in range(out + 1) if rel[i]), key=lambda i: (far[i], i))


def _formula(g: Graph, i: int, L: list[str]) -> str:
    """The right-hand side of node i with operand texts L."""
    spec = OPS[g.ops[i]]
    at = g.attrs[i] or {}
    if spec.formula is not None:
        return spec.formula(L, at)
    if spec.infix is not None and len(L) == 2:
        return f"{L[0]} {spec.infix} {paren(L[1]) if spec.paren_second else L[1]}"
    if len(L) == 1 and not at:
        return call(spec.fname, L[0])
    extra = []
    if "axis" in at and at["axis"] is not None:
        extra.append(str(at["axis"]))
    if "dims" in at:
        extra.extend(str(d) for d in at["dims"])
    return f"{spec.fname}({', '.join(list(L) + extra)})"


def _forward_step(g: Graph, labels: list[str], vals: list[Any], i: int) -> ForwardStep:
    op = g.ops[i]
    v = vals[i]
    if op in ("input", "const"):  # a leaf: its value (a named constant such as x = [1, 2, 3])
        return ForwardStep(i, labels[i], op, None, None, v, None)
    args = g.args[i]
    expr = _formula(g, i, [labels[j] for j in args])
    numbers = None
    if all(is_small(vals[j]) for j in args):  # one rule: the numbers when every operand is written in full
        numbers = _formula(
            g, i, [fmt_operand(vals[j], first=(k == 0 and not OPS[op].paren_first)) for k, j in enumerate(args)]
        )
    shapes = None
    if np.ndim(v) or any(np.ndim(vals[j]) for j in args):
        shapes = _shapes_text(g, i, [np.shape(vals[j]) for j in args], np.shape(v))
    return ForwardStep(i, labels[i], op, expr, numbers, v, shapes)


def _shapes_text(g: Graph, i: int, shapes: list[tuple[int, ...]], out: tuple[int, ...]) -> str:
    spec = OPS[g.ops[i]]
    if spec.infix is not None and len(shapes) == 2:
        return f"{fmt_shape(shapes[0])} {spec.infix} {fmt_shape(shapes[1])} → {fmt_shape(out)}"
    return ", ".join(fmt_shape(s) for s in shapes) + f" → {fmt_shape(out)}"


class _Succ:
    """What every term through successor j shares, built once: a max of n operands has n terms, and rebuilding
    its operand labels, shapes and VJPs for each of them would make explain quadratic in n."""

    def __init__(self, g: Graph, labels: list[str], vals: list[Any], j: int) -> None:
        args = g.args[j]
        self.L = [labels[a] for a in args]
        self.xs = [vals[a] for a in args]
        self.shapes = [tuple(np.shape(x)) for x in self.xs] + [tuple(np.shape(vals[j]))]
        self.slots: dict[int, list[int]] = {}
        for k, a in enumerate(args):
            self.slots.setdefault(a, []).append(k)
        self.vjps: dict[str, list[Any]] = {}  # variadic ops: every operand's VJP, per upstream ("up"/"one")
        self.note: Any = False  # the kink note (it depends on the node's operands, not on which one)


def _vjp_number(
    g: Graph,
    vals: list[Any],
    i: int,
    j: int,
    slots: list[int],
    upstream: Any,
    sc: _Succ | None = None,
    key: str = "",
) -> Any:
    """The contribution of successor j to node i's gradient: the sum of the op's VJPs."""
    spec = OPS[g.ops[j]]
    at = g.attrs[j] or {}
    xs = sc.xs if sc is not None else [vals[a] for a in g.args[j]]
    total = None
    with np.errstate(all="ignore"):
        if spec.vjp_many is not None:  # variadic: all operands' VJPs at once, kept for the other operands' terms
            parts = sc.vjps.get(key) if sc is not None else None
            if parts is None:
                parts = spec.vjps(list(range(len(xs))), upstream, vals[j], xs, at)
                if sc is not None:
                    sc.vjps[key] = parts
            found = [parts[k] for k in slots]
        else:
            found = spec.vjps(slots, upstream, vals[j], xs, at)
        for c in found:
            if c is None:
                continue
            c = unbroadcast(c, np.shape(vals[i]), g.ops[j])
            total = c if total is None else total + c
    return np.zeros(np.shape(vals[i])) if total is None else total


def _term(
    g: Graph,
    labels: list[str],
    vals: list[Any],
    grads: list[Any],
    i: int,
    j: int,
    out: int,
    cache: dict[int, _Succ] | None = None,
) -> Term:
    op = g.ops[j]
    at = g.attrs[j] or {}
    args = g.args[j]
    sc = cache.get(j) if cache is not None else None
    if sc is None:
        sc = _Succ(g, labels, vals, j)
        if cache is not None:
            cache[j] = sc
    slots = sc.slots[i]
    L = sc.L
    A = labels[j]
    shapes = sc.shapes
    upstream = grads[j]
    contribution = _vjp_number(g, vals, i, j, slots, upstream, sc, "up")
    spec = OPS[op]
    elementwise = spec.elementwise
    tmpl = spec.local
    # no template: the local derivative is known only by its number ("" here)
    local_parts = [tmpl(k, L, A, at, shapes) if tmpl else "" for k in slots]
    local_formula = local_parts[0] if len(local_parts) == 1 else " + ".join(paren(s) for s in local_parts if s)
    scalar = np.size(vals[i]) == 1 and np.size(vals[j]) == 1
    local = None
    if np.size(vals[j]) == 1:
        local = _vjp_number(g, vals, i, j, slots, np.ones_like(vals[j]), sc, "one")
    elif elementwise and np.shape(vals[j]) == np.shape(vals[i]):
        local = _vjp_number(g, vals, i, j, slots, np.ones_like(vals[j]), sc, "one")
    kink = spec.kink
    note = None
    if kink is not None and kink.note is not None:
        if sc.note is False:  # exactly on the kink (eps 0)
            sc.note = kink.note if kink.at(sc.xs, vals[j], at, 0.0) else None
        note = sc.note
    # the VJP in matrix form (the renderer writes scalars as ∂out/∂A · ∂A/∂node instead)
    U = f"∂{labels[out]}/∂{A}"
    parts = []
    shp = None
    for k in slots:
        if elementwise or spec.vjp_text is None:
            if tmpl is None and not elementwise:
                f = f"vjp_{op}[{k}]({U})"
            else:
                loc = tmpl(k, L, A, at, shapes) if tmpl else f"∂{A}/∂{labels[i]}"
                if loc == "1":
                    f = U
                elif loc == "-1":
                    f = f"-{U}"
                else:
                    prod = "·" if (np.size(vals[j]) == 1 or np.size(vals[args[k]]) == 1) else "⊙"
                    f = f"{U} {prod} {paren(loc) if tmpl else loc}"
            if elementwise and shapes[k] != shapes[-1]:
                f = f"sum_to({f}, {fmt_shape(shapes[k])})"
        else:
            f, shp = spec.vjp_text(k, U, L, A, at, shapes)
        parts.append(f)
    formula = parts[0] if len(parts) == 1 else " + ".join(f"({p})" for p in parts)
    return Term(j, slots, formula, local_formula, local, upstream, contribution, shp, note, scalar)


# -- rendering ------------------------------------------------------------------------

Seg = tuple[str, str | None]  # text, rich style


def _vtext(label: str, v: Any) -> list[Seg]:
    """``= value`` for small values, ``, ‖label‖ = n`` for large tensors."""
    if is_small(v):
        return [(" = ", None), (fmt_list(v), "cyan")]
    return [(f", ‖{label}‖ = ", None), (fmt_norm(v), "cyan")]


def lines(ex: Explanation) -> list[list[Seg]]:
    """The explanation as lines of styled segments (plain text is their concatenation)."""
    if ex.result.mode == "forward":
        return _forward_mode_lines(ex)
    outl = ex.out_label
    res: list[list[Seg]] = [[("Forward pass: each node's value, in topological order", "bold underline")]]
    res += [_forward_line(st) for st in ex.forward]
    res.append([])
    title = f"Backward pass: ∂{outl}/∂node, from {outl} back to the inputs (each node after every node it feeds)"
    res.append([(title, "bold underline")])
    if not ex.backward:
        res.append([(f"  {outl} does not depend on any input: there is nothing to differentiate", "dim")])
    for st in ex.backward:
        main, extra = _backward_lines(ex, st)
        res.extend(main + extra)
    if ex.off_path:
        names = ", ".join(ex.labels[i] for i in ex.off_path)
        res.append([])
        res.append(
            [
                (
                    f"{names}: not on a path to {outl} (no gradient flows to {'it' if len(ex.off_path) == 1 else 'them'})",  # noqa: E501
                    "dim",
                )
            ]
        )
    return res


def _forward_line(st: ForwardStep) -> list[Seg]:
    if st.op == "input":
        if is_small(st.value):
            line: list[Seg] = [("  ", None), (st.label, "bold")] + _vtext(st.label, st.value)
        else:
            line = [("  ‖", None), (st.label, "bold"), ("‖ = ", None), (fmt_norm(st.value), "cyan")]
    else:
        line = [("  ", None), (st.label, "bold")]
        shown = [st.label]
        if st.expr and st.expr not in (st.label, st.label[1:-1]):
            line += [(" = ", None), (st.expr, None)]
            shown.append(st.expr)
        value = fmt_list(st.value) if is_small(st.value) else None
        if st.numbers is not None and st.numbers not in shown and st.numbers != value and value is not None:
            line += [(" = ", None), (st.numbers, None)]
        line += _vtext(st.label, st.value)
    if st.shapes:
        line.append((f"    shapes {st.shapes}", "dim"))
    elif np.ndim(st.value):
        line.append((f"    shape {fmt_shape(np.shape(st.value))}", "dim"))
    return line


WIDE = 110  # a backward step longer than this is written one term per line


def _plain(line: list[Seg]) -> str:
    return "".join(s for s, _ in line)


def _backward_lines(ex: Explanation, st: BackwardStep) -> tuple[list[list[Seg]], list[list[Seg]]]:
    """The step's chain-rule lines, and its 'where'/'note' lines."""
    out = ex.result.out
    labels = ex.labels
    lab = labels[st.node]
    lhs = ex.d(st.node)
    scalar = all(t.scalar for t in st.terms)
    head: list[Seg] = [("  ", None), (lhs, "bold")]
    where: list[str] = []
    notes: list[str] = []
    for t in st.terms:
        if t.note:
            notes.append(t.note if len(st.terms) == 1 and t.successor == out else f"{labels[t.successor]}: {t.note}")
    extra_lines = [[("      note: ", "yellow"), (n, "yellow")] for n in notes]
    if st.seed:
        return [head + [(" = ", None), ("1", "cyan")]], []
    if scalar and len(st.terms) == 1 and st.terms[0].successor == out:
        t = st.terms[0]
        if t.local_formula and t.local_formula != fmt_list(st.grad):
            head += [(" = ", None), (t.local_formula, None)]
        head += [(" = ", None), (fmt_list(st.grad), "cyan")]
        return [head], extra_lines
    # the chain rule: one symbolic term per successor, then the numbers, then the result
    shape_note: list[Seg] = []
    if scalar:
        syms = [f"{ex.d(t.successor)} · ∂{labels[t.successor]}/∂{lab}" for t in st.terms]
        nums = [
            f"{fmt_operand(t.upstream, first=(k == 0))} · {fmt_operand(t.local, first=False)}"
            for k, t in enumerate(st.terms)
        ]
        number_line = " + ".join(nums)
        result = [(" = ", None), (fmt_list(st.grad), "cyan")]
        for t in st.terms:
            lt = fmt_list(t.local)
            d = f"∂{labels[t.successor]}/∂{lab}"
            if t.local_formula and t.local_formula != lt:
                d += f" = {t.local_formula}"
            where.append(d + f" = {lt}")
    else:
        syms = [t.formula for t in st.terms]
        number_line = None
        if len(st.terms) > 1 and all(is_small(t.contribution) for t in st.terms) and is_small(st.grad):
            number_line = " + ".join(fmt_operand(t.contribution, first=(k == 0)) for k, t in enumerate(st.terms))
        result = _vtext(lhs, st.grad)
        if len(st.terms) == 1 and st.terms[0].shapes:
            shape_note = [(f"    shapes {st.terms[0].shapes}", "dim")]
        elif np.ndim(st.grad):
            shape_note = [(f"    shape {fmt_shape(np.shape(st.grad))}", "dim")]
    one = head + [(" = ", None), (" + ".join(syms), None)]
    if number_line is not None:
        one += [(" = ", None), (number_line, None)]
    one += result + shape_note
    if len(_plain(one)) <= WIDE or len(st.terms) == 1:
        main = [one]
    else:  # one term per line, as on a board
        pad = " " * (2 + len(lhs) + 1)
        sh = [[(f"    shapes {t.shapes}", "dim")] if t.shapes and not scalar else [] for t in st.terms]
        main = [head + [(" = ", None), (syms[0], None)] + sh[0]]
        main += [[(pad + "+ ", None), (s, None)] + x for s, x in zip(syms[1:], sh[1:])]
        if number_line is not None and len(pad) + len(number_line) <= WIDE:
            main.append([(pad + "= ", None), (number_line, None)])
        if result[0][0] == " = ":
            main.append([(pad + "= ", None)] + result[1:] + shape_note)
        else:  # a large tensor: its norm
            main.append([(pad + "‖" + lhs + "‖ = ", None)] + result[1:] + shape_note)
    if where:
        joined = ", ".join(where)
        if len(joined) + 12 <= WIDE:
            extra_lines.insert(0, [("      where ", "dim"), (joined, "dim")])
        else:
            rows = [[("      where ", "dim"), (where[0], "dim")]]
            rows += [[("            ", "dim"), (w, "dim")] for w in where[1:]]
            extra_lines[:0] = rows
    return main, extra_lines


def forward_text(st: ForwardStep) -> str:
    """A forward step on one line, without its shapes: ``x = a + b = -1 + 3 = 2``."""
    return _plain(_forward_line(st)).split("    shape")[0].strip()


def backward_text(ex: Explanation, st: BackwardStep) -> str:
    """A backward step on one line (its lines joined), without its shapes and 'where' lines."""
    return " ".join(_plain(ln).split("    shape")[0].strip() for ln in _backward_lines(ex, st)[0])


def step_text(ex: Explanation, phase: str, k: int) -> str:
    """Step ``k`` of ``phase`` ("forward" | "backward") on one line: a ``--steps`` caption's text."""
    return forward_text(ex.forward[k]) if phase == "forward" else backward_text(ex, ex.backward[k])


def step_lines(ex: Explanation, phase: str, k: int) -> list[str]:
    """Step ``k`` of ``phase`` as ``explain`` writes it (its chain rule, shapes, 'where' and 'note' lines), without
    the two spaces that indent every step in ``explain``'s output: the node panel of the interactive page."""
    if phase == "forward":
        rows = [_forward_line(ex.forward[k])]
    else:
        main, extra = _backward_lines(ex, ex.backward[k])
        rows = main + extra
    return [_plain(row)[2:] if _plain(row).startswith("  ") else _plain(row) for row in rows]


def to_text(ex: Explanation) -> str:
    """Plain text (exactly predictable: used when stdout is not a terminal)."""
    return "\n".join("".join(s for s, _ in line) for line in lines(ex)) + "\n"


def to_rich(ex: Explanation):
    """A rich renderable with the same text, styled."""
    from rich.text import Text

    out = Text()
    for k, line in enumerate(lines(ex)):
        if k:
            out.append("\n")
        for s, style in line:
            out.append(s, style=style)
    return out


def to_data(ex: Explanation) -> dict[str, Any]:
    """The steps as JSON-ready data; the numbers are the engine's (as in ``eval --format json``)."""
    r = ex.result
    g = r.graph
    forward = []
    for st in ex.forward:
        forward.append(
            {
                "node": st.node,
                "name": st.label,
                "op": st.op,
                "expr": st.expr,
                "formula": forward_text(st),
                "shape": list(np.shape(st.value)),
                "value": json_value(st.value),
                **(
                    {"tangent": json_value(st.tangent), "tangent_formula": "".join(s for s, _ in _tangent_segs(st))[3:]}
                    if r.mode == "forward"
                    else {}
                ),
            }
        )
    if r.mode == "forward":
        return {
            "output": ex.out_label,
            "value": json_value(r.values[r.out]),
            "mode": "forward",
            "direction": {k: json_value(t) for k, t in (r.direction or {}).items()},
            "forward": forward,
            "jvp": json_value(r.jvp),
        }
    backward = []
    for st in ex.backward:
        backward.append(
            {
                "node": st.node,
                "name": st.label,
                "seed": st.seed,
                "formula": backward_text(ex, st),
                "shape": list(np.shape(st.grad)),
                "terms": [
                    {
                        "successor": ex.labels[t.successor],
                        "successor_node": t.successor,
                        "operand": t.slots,
                        "local_formula": t.local_formula,
                        "local": json_value(t.local),
                        "upstream": json_value(t.upstream),
                        "contribution": json_value(t.contribution),
                        **({"note": t.note} if t.note else {}),
                    }
                    for t in st.terms
                ],
                "grad": json_value(st.grad),
            }
        )
    return {
        "output": ex.out_label,
        "value": json_value(r.values[r.out]),
        "forward": forward,
        "backward": backward,
        "gradients": {k: json_value(r.grads[i]) for k, i in g.inputs.items()},
        "off_path": [ex.labels[i] for i in ex.off_path],
    }


# -- forward mode: dual numbers ---------------------------------------------------------------------


def dot(label: str) -> str:
    """The tangent's name: ``ẋ`` for a one-letter name (simpleautodiff's dual numbers), ``dW1``, ``d(w * x)``
    for a longer one."""
    if len(label) == 1 and label.isalpha():  # precomposed where Unicode has it (ṫ is a letter: no parentheses)
        return unicodedata.normalize("NFC", label + "\u0307")
    if re.fullmatch(r"[\w.%₀-₉]+", label) or (label.startswith("(") and label.endswith(")")):
        return "d" + label
    return f"d({label})"


def _tangent_step(g: Graph, labels: list[str], vals: list[Any], ts: list[Any], st: ForwardStep) -> None:
    """Fill in a forward step's tangent: ``ẋ = ȧ + ḃ = 1 + 0 = 1`` (the JVP of the node's op record)."""
    i = st.node
    st.tangent = ts[i]
    st.dot = dot(st.label)
    if st.op in ("input", "const") or ts[i] is None:
        return
    spec = OPS[st.op]
    args = g.args[i]
    at = g.attrs[i] or {}
    moved = [k for k, j in enumerate(args) if ts[j] is not None]
    L = [labels[j] for j in args]
    D = [dot(labels[j]) if ts[j] is not None else "0" for j in args]
    shapes = [tuple(np.shape(vals[j])) for j in args] + [tuple(np.shape(vals[i]))]
    scalar = all(np.size(vals[j]) == 1 for j in args) and np.size(vals[i]) == 1
    tn = [ts[j] if ts[j] is not None else 0.0 for j in args]

    def num(v: Any, first: bool = False) -> str:
        return fmt_operand(v, first=first)

    rule = spec.jvp
    if rule is Derive.LINEAR:
        st.tangent_expr = _formula(g, i, D)
        if scalar:
            st.tangent_numbers = _formula(g, i, [num(t, k == 0) for k, t in enumerate(tn)])
        return
    if rule is Derive.BILINEAR:
        st.tangent_expr = " + ".join(_formula(g, i, L[:k] + [D[k]] + L[k + 1 :]) for k in moved)
        if scalar:
            nv = [num(vals[j], k == 0) for k, j in enumerate(args)]
            st.tangent_numbers = " + ".join(_formula(g, i, nv[:k] + [num(tn[k], k == 0)] + nv[k + 1 :]) for k in moved)
        return
    xs = [vals[j] for j in args]
    terms, numbers = [], []
    for k in moved:
        if spec.local is not None and rule in (Derive.ELEMENTWISE, Derive.REDUCTION):
            loc = spec.local(k, L, labels[i], at, shapes)
            if rule is Derive.REDUCTION:
                terms.append(f"Σ {paren(loc)} ⊙ {D[k]}")
            else:
                terms.append(D[k] if loc == "1" else f"-{D[k]}" if loc == "-1" else f"{paren(loc)} · {D[k]}")
        else:
            terms.append(f"∂{labels[i]}/∂{L[k]} · {D[k]}")
        if scalar:
            one = [None] * len(args)
            one[k] = np.ones_like(np.asarray(xs[k], dtype=np.float64))
            with np.errstate(all="ignore"):
                local = spec.tangent(one, vals[i], xs, at)
            numbers.append(f"{num(local, not numbers)} · {num(tn[k])}")
    st.tangent_expr = " + ".join(terms).replace("+ -", "- ")
    if scalar:
        st.tangent_numbers = " + ".join(numbers)


def _tangent_segs(st: ForwardStep) -> list[Seg]:
    """``,  ẋ = ȧ + ḃ = 1 + 0 = 1`` (small tangents in full, large ones by their norm)."""
    if st.tangent is None:
        return []
    segs: list[Seg] = [(",  ", None), (st.dot, "bold")]
    shown = [st.dot]
    value = fmt_list(st.tangent) if is_small(st.tangent) else None
    if st.tangent_expr and st.tangent_expr not in shown:
        segs += [(" = ", None), (st.tangent_expr, None)]
        shown.append(st.tangent_expr)
    if st.tangent_numbers and st.tangent_numbers not in shown and st.tangent_numbers != value and value is not None:
        segs += [(" = ", None), (st.tangent_numbers, None)]
    if value is not None:
        return segs + [(" = ", None), (value, "magenta")]
    return segs + [(f", ‖{st.dot}‖ = ", None), (fmt_norm(st.tangent), "magenta")]


def _forward_mode_lines(ex: Explanation) -> list[list[Seg]]:
    r = ex.result
    outl = ex.out_label
    given = r.direction or {}
    small = all(is_small(t) for t in given.values())  # else only the inputs it moves
    moved = {k: t for k, t in given.items() if small or np.any(np.asarray(t) != 0)}
    direction = ", ".join(f"{k} = {fmt_value(t)}" for k, t in moved.items()) or "0"
    if moved and len(moved) < len(given):
        direction += ", 0 for the other inputs"
    res: list[list[Seg]] = [
        [(f"Forward mode: each node's value and its tangent along t ({direction})", "bold underline")],
        [("  (ẋ, or dname for a longer name, is the node's tangent ∂node/∂t: the dual number x + ẋ·ε)", "dim")],
    ]
    for st in ex.forward:
        line = _forward_line(st)
        cut = next((k for k, (s, _) in enumerate(line) if s.startswith("    shape")), len(line))
        res.append(line[:cut] + _tangent_segs(st) + line[cut:])
    jv = r.jvp
    res.append([])
    if jv is None:
        res.append([(f"  {outl} does not depend on any input: its tangent is 0", "dim")])
    else:
        shown = fmt_list(jv) if is_small(jv) else f"a tensor of norm {fmt_norm(jv)}"
        res.append([(f"∂{outl}/∂t = {dot(outl)} = ", "bold"), (shown, "magenta")])
    return res


# -- cost: forward mode against reverse mode, measured ------------------------------------------------------


@dataclass
class Cost:
    """The ops the engine ran for one forward pass, one reverse pass and forward mode for all gradients."""

    out: str
    out_size: int  # reverse mode takes one backward pass per output entry
    forward_ops: int  # one forward pass (values)
    backward_ops: int  # one backward pass (the VJPs it ran)
    inputs: list[tuple[str, int, int]]  # (input, entries, JVPs of one forward-mode pass moving it)

    @property
    def reverse(self) -> int:
        return self.forward_ops + self.out_size * self.backward_ops

    @property
    def passes(self) -> int:
        return sum(n for _, n, _ in self.inputs)

    @property
    def forward_mode(self) -> int:
        return sum(n * (self.forward_ops + j) for _, n, j in self.inputs)

    @property
    def ratio(self) -> float:
        return self.forward_mode / self.reverse if self.reverse else float("nan")


def cost(g: Graph, inputs: dict[str, Any], out: int) -> Cost:
    """Count the ops the engine runs (:func:`cgraph_cli.engine.reference.forward` and ``backward``, and
    :func:`cgraph_cli.engine.forward_mode.tangents`, each tallying the ops it ran). A forward-mode pass per
    input entry: the passes that move the entries of one input run the same ops, so one of them is run and
    counted, then multiplied by the input's entries."""
    fwd: Counter = Counter()
    vals = forward(g, inputs, upto=out, count=fwd)
    bwd: Counter = Counter()
    backward(g, vals, out, count=bwd)
    per_input = []
    for name in g.grad_inputs():  # (the inputs declared data have no gradient, in either mode)
        x = np.asarray(inputs[name])
        jv: Counter = Counter()
        if x.size:
            t = np.zeros(x.shape)
            t.reshape(-1)[0] = 1
            tangents(g, vals, {name: t}, upto=out, count=jv)
        per_input.append((name, int(x.size), sum(jv.values())))
    return Cost(g.label(out), int(np.size(vals[out])), sum(fwd.values()), sum(bwd.values()), per_input)


def cost_lines(c: Cost) -> list[list[Seg]]:
    """The cost as the lecture argues it, on this graph."""
    n = c.out_size

    def ops(k: int, what: str = "op") -> str:
        return f"{k:,} {what}{'s' if k != 1 else ''}"

    vjps = ops(c.backward_ops, "VJP")
    back = f"one backward pass ({vjps})" if n == 1 else f"{n} backward passes of {vjps}"
    title = f"Cost of all the derivatives of {c.out}, counted in the ops the engine ran on this graph"
    rows: list[list[Seg]] = [
        [(title, "bold underline")],
        [("  one forward pass (the values):     ", None), (ops(c.forward_ops), "cyan")],
        [
            ("  reverse mode, all gradients:       ", None),
            (ops(c.reverse), "cyan"),
            (f"  = {c.forward_ops:,} + {n * c.backward_ops:,}: the forward pass, then {back}", "dim"),
        ],
        [
            ("  forward mode, all gradients:       ", None),
            (ops(c.forward_mode), "cyan"),
            (
                f"  = {c.passes:,} pass{'' if c.passes == 1 else 'es'}, one per input entry, each running the values"
                " and the tangents",
                "dim",
            ),
        ],
    ]
    width = max((len(x) for x, _, _ in c.inputs), default=1)
    for name, entries, j in c.inputs:
        rows.append(
            [
                (f"      {name:<{width}}  ", None),
                (f"{entries:,} × ({c.forward_ops:,} + {j:,}) = {entries * (c.forward_ops + j):,}", "dim"),
            ]
        )
    ratio = "n/a" if not c.reverse or not c.passes else f"{c.ratio:.3g}×"  # (no pass: no input is differentiated)
    entries = (
        f"  ({c.passes:,} input entr{'y' if c.passes == 1 else 'ies'}, {n:,} output entr{'y' if n == 1 else 'ies'})"
    )
    rows.append([("  forward mode / reverse mode:       ", None), (ratio, "bold"), (entries, "dim")])
    return rows


def cost_data(c: Cost) -> dict[str, Any]:
    return {
        "output": c.out,
        "output_entries": c.out_size,
        "forward_pass": c.forward_ops,
        "backward_pass": c.backward_ops,
        "reverse_mode": c.reverse,
        "forward_mode": c.forward_mode,
        "forward_mode_passes": c.passes,
        "ratio": c.ratio if c.reverse else None,
        "inputs": [{"name": x, "entries": n, "jvp_ops": j, "ops": n * (c.forward_ops + j)} for x, n, j in c.inputs],
    }


def lines_text(rows: list[list[Seg]]) -> str:
    return "\n".join("".join(s for s, _ in line) for line in rows) + "\n"


def lines_rich(rows: list[list[Seg]]):
    from rich.text import Text

    out = Text()
    for k, line in enumerate(rows):
        if k:
            out.append("\n")
        for s, style in line:
            out.append(s, style=style)
    return out
