"""``cgraph explain``: the forward and backward passes written out step by step, as on a board.

The forward pass gives one line per node in topological order, first symbolically, then with the
numbers, then the value::

    x = a + b = -1 + 3 = 2

The backward pass gives one line per node in reverse topological order: the node's gradient as the
sum over its successors of (the successor's gradient) · (the local derivative), first symbolically,
then with the numbers, then the result, followed by the local derivatives it used::

    ∂z/∂b = ∂z/∂x · ∂x/∂b + ∂z/∂y · ∂y/∂b = 7 · 1 + 2 · 1 = 9
        where ∂x/∂b = 1, ∂y/∂b = 1

Names. A named node is shown by its name; a name assigned several times gets a subscript per
assignment (``s₁``, ``s₂``, ...). An anonymous intermediate node is shown by its source text in
parentheses, such as ``(w * x)`` (no parentheses are added around a call such as ``dot(w, x)`` or
text that is already parenthesised); when that text is long, appears twice, or lies inside a user
function (where it would name the function's parameters), the node is shown as ``%ID``, its id in
``cgraph ir``. A constant is shown by its value.

Tensors. A node whose value or gradient has more than :data:`SMALL` entries is summarised by its
L2 norm (``‖W1‖ = 3.07``); every tensor line ends with its shapes. Backward steps through tensors
are written as vector-Jacobian products in matrix form (``∂L/∂W = ∂L/∂u · xᵀ``), with ``⊙`` for an
elementwise product and ``sum_to(..., shape)`` where a broadcast operand's gradient is summed back
over the broadcast axes to the operand's shape.

Local derivatives come from :data:`LOCAL` (symbolic templates keyed by op name) and, for tensors,
:data:`VJP`; an op with no template still explains: its local derivative is shown as ``∂u/∂a``
and its number comes from the op table's VJP evaluated at g = 1.

Numbers are those of :func:`cgraph_cli.engine.evaluate` (the same as ``cgraph eval``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from cgraph_cli.engine import Result
from cgraph_cli.errors import CgraphError
from cgraph_cli.ir import Graph
from cgraph_cli.ops import OPS, broadcast_shape, fmt_index, fmt_shape, same_shape, unbroadcast
from cgraph_cli.present import fmt_number, json_value

SMALL = 6  # tensors with more entries are shown by their norm
MAX_STEPS = 10_000  # programs with more nodes are refused: a step per node, unreadable and slow beyond this
MAX_LABEL = 20  # longer source text is shown as %ID

# function-style names of ops (the language's spelling)
CALL_NAMES = {"maximum": "max", "minimum": "min", "amax": "max", "amin": "min", "sigmoid": "σ"}

# -- symbolic local derivatives ------------------------------------------------------
# LOCAL[op](k, L, A, attrs, shapes) -> ∂A/∂L[k] as text, where L are the operand labels and A the
# node's own label. For scalars this is the number multiplied into the chain rule; for tensors of
# elementwise ops it is the factor of the elementwise product.

Template = Callable[[int, list[str], str, dict, list[tuple[int, ...]]], str]


def _p(s: str) -> str:
    """Parenthesise a compound expression (for use as a factor)."""
    if re.fullmatch(r"-?[\w.%₀-₉]+", s):
        return s
    if re.fullmatch(r"[\w.%₀-₉σ]*\(.*\)", s) and _balanced_outer(s):
        return s
    if s.startswith("[") and s.endswith("]") and _balanced_outer(s, "[]"):  # [a > 0], [[1, 2], [3, 4]]
        return s
    return f"({s})"


def _c(name: str, s: str) -> str:
    """A call ``name(s)``, without doubling the parentheses of ``(a + b)``."""
    if s.startswith("(") and s.endswith(")") and _balanced_outer(s):
        return name + s
    return f"{name}({s})"


def _balanced_outer(s: str, pair: str = "()") -> bool:
    """False for text like '(a) + (b)' whose first '(' closes before the end."""
    op, cl = pair
    if op not in s:
        return True
    depth = 0
    start = s.index(op)
    for i, ch in enumerate(s[start:], start):
        if ch == op:
            depth += 1
        elif ch == cl:
            depth -= 1
            if depth == 0 and i != len(s) - 1:
                return False
    return True


def _pow_base(k: int, L: list[str], A: str, attrs: dict, shapes) -> str:
    b = L[1]
    try:
        bm1 = float(b) - 1
    except ValueError:
        return f"{_p(b)} · {_p(L[0])}^({b} - 1)"
    if bm1 == 0:
        return b
    if bm1 == 1:
        return f"{_p(b)} · {_p(L[0])}"
    return f"{_p(b)} · {_p(L[0])}^{_p(fmt_number(bm1))}"


# max/min with more operands (or longer operand text) write ∂m/∂a = [a = m] rather than [a = max(a, b, ...)]:
# listing n operands in each of the n operands' steps would make the explanation quadratic in n
MAX_LISTED = 8
MAX_LISTED_CHARS = 40


def _extreme(which: str) -> Template:
    def t(k: int, L: list[str], A: str, attrs: dict, shapes) -> str:
        listed = ", ".join(L) if len(L) <= MAX_LISTED else ""
        if not listed or len(listed) > MAX_LISTED_CHARS:
            return f"[{L[k]} = {A}]"
        return f"[{L[k]} = {which}({listed})]"

    return t


def _mean_local(k: int, L: list[str], A: str, attrs: dict, shapes) -> str:
    s = shapes[0]
    n = int(np.prod(s)) if attrs.get("axis") is None else s[attrs["axis"]]
    return f"1/{n}"


LOCAL: dict[str, Template] = {
    "id": lambda k, L, A, at, sh: "1",
    "add": lambda k, L, A, at, sh: "1",
    "sub": lambda k, L, A, at, sh: "1" if k == 0 else "-1",
    "neg": lambda k, L, A, at, sh: "-1",
    "mul": lambda k, L, A, at, sh: L[1 - k],
    "div": lambda k, L, A, at, sh: f"1/{_p(L[1])}" if k == 0 else f"-{_p(L[0])}/{_p(L[1])}^2",
    "pow": lambda k, L, A, at, sh: (
        _pow_base(k, L, A, at, sh) if k == 0 else f"{_p(L[0])}^{_p(L[1])} · {_c('ln', L[0])}"
    ),
    "exp": lambda k, L, A, at, sh: f"{_c('exp', L[0])}",
    "log": lambda k, L, A, at, sh: f"1/{_p(L[0])}",
    "sqrt": lambda k, L, A, at, sh: f"1/(2 · {_c('sqrt', L[0])})",
    "abs": lambda k, L, A, at, sh: f"{_c('sign', L[0])}",
    "sin": lambda k, L, A, at, sh: f"{_c('cos', L[0])}",
    "cos": lambda k, L, A, at, sh: f"-{_c('sin', L[0])}",
    "tan": lambda k, L, A, at, sh: f"1 + {_c('tan', L[0])}^2",
    "tanh": lambda k, L, A, at, sh: f"1 - {_c('tanh', L[0])}^2",
    "sigmoid": lambda k, L, A, at, sh: f"{_c('σ', L[0])} · (1 - {_c('σ', L[0])})",
    "relu": lambda k, L, A, at, sh: f"[{L[0]} > 0]",
    "softplus": lambda k, L, A, at, sh: f"{_c('σ', L[0])}",
    "square": lambda k, L, A, at, sh: f"2 · {_p(L[0])}",
    "maximum": _extreme("max"),
    "minimum": _extreme("min"),
    "sum": lambda k, L, A, at, sh: "1",
    "mean": _mean_local,
    "amax": lambda k, L, A, at, sh: f"[{L[0]} = {_c('max', L[0])}]",
    "amin": lambda k, L, A, at, sh: f"[{L[0]} = {_c('min', L[0])}]",
    "logsumexp": lambda k, L, A, at, sh: f"{_c('softmax', L[0])}",
    "norm": lambda k, L, A, at, sh: f"{_p(L[0])}/‖{L[0]}‖",
    "matmul": lambda k, L, A, at, sh: L[1 - k],
    "transpose": lambda k, L, A, at, sh: "1",
    "reshape": lambda k, L, A, at, sh: "1",
    "index": lambda k, L, A, at, sh: "1",
    "stack": lambda k, L, A, at, sh: "1",
    "softmax": lambda k, L, A, at, sh: "0",
}

# -- vector-Jacobian products in matrix form, for tensors -----------------------------
# VJP[op](k, U, L, A, attrs, shapes) -> (formula, shapes text or None); U is the upstream gradient's
# label (∂L/∂u), shapes are the operands' shapes then the node's own shape.

VjpTemplate = Callable[[int, str, list[str], str, dict, list[tuple[int, ...]]], tuple[str, str | None]]


def _T(s: str) -> str:
    return f"{_p(s)}ᵀ"


def _matmul_vjp(k: int, U: str, L: list[str], A: str, at: dict, sh) -> tuple[str, str | None]:
    sa, sb, su = sh
    if len(sa) == 1 and len(sb) == 1:  # a dot product: U is a number
        return (f"{U} · {L[1 - k]}", f"() · {fmt_shape(sh[1 - k])} → {fmt_shape(sh[k])}")
    if k == 0:
        return (f"{U} · {_T(L[1])}", f"{fmt_shape(su)} · {fmt_shape(sb)}ᵀ → {fmt_shape(sa)}")
    return (f"{_T(L[0])} · {U}", f"{fmt_shape(sa)}ᵀ · {fmt_shape(su)} → {fmt_shape(sb)}")


def _sum_vjp(k: int, U: str, L: list[str], A: str, at: dict, sh) -> tuple[str, str | None]:
    axis = at.get("axis")
    if axis is None:
        return (f"{U} · 𝟙", f"() → {fmt_shape(sh[0])}")
    return (f"{U} repeated along axis {axis}", f"{fmt_shape(sh[-1])} → {fmt_shape(sh[0])}")


def _mean_vjp(k: int, U: str, L: list[str], A: str, at: dict, sh) -> tuple[str, str | None]:
    f, s = _sum_vjp(k, U, L, A, at, sh)
    return (f"{f} / {_mean_local(k, L, A, at, sh)[2:]}", s)


VJP: dict[str, VjpTemplate] = {
    "matmul": _matmul_vjp,
    "sum": _sum_vjp,
    "mean": _mean_vjp,
    "amax": lambda k, U, L, A, at, sh: (f"{U} · [{L[0]} = {_c('max', L[0])}] (ties share)", None),
    "amin": lambda k, U, L, A, at, sh: (f"{U} · [{L[0]} = {_c('min', L[0])}] (ties share)", None),
    "logsumexp": lambda k, U, L, A, at, sh: (f"{U} · {_c('softmax', L[0])}", None),
    "norm": lambda k, U, L, A, at, sh: (f"{U} · {_p(L[0])}/‖{L[0]}‖", None),
    "softmax": lambda k, U, L, A, at, sh: (f"{_p(A)} ⊙ ({U} - Σ({U} ⊙ {_p(A)}))", None),
    "transpose": lambda k, U, L, A, at, sh: (_T(U), f"{fmt_shape(sh[-1])} → {fmt_shape(sh[0])}"),
    "reshape": lambda k, U, L, A, at, sh: (
        f"reshape({U}, {', '.join(str(d) for d in sh[0])})",
        f"{fmt_shape(sh[-1])} → {fmt_shape(sh[0])}",
    ),
    "index": lambda k, U, L, A, at, sh: (
        f"{U} placed at {fmt_index(at.get('idx', ()))} of zeros{fmt_shape(sh[0])}",
        f"{fmt_shape(sh[-1])} → {fmt_shape(sh[0])}",
    ),
    "stack": lambda k, U, L, A, at, sh: (f"{U}[{k}]", f"{fmt_shape(sh[-1])} → {fmt_shape(sh[k])}"),
}

# kink conventions (PyTorch's), noted where a point sits exactly on one
KINK_NOTES: dict[str, Callable[[int, list[Any], Any], str | None]] = {
    "relu": lambda k, xs, ans: "relu'(0) is taken as 0" if np.any(np.asarray(xs[0]) == 0) else None,
    "abs": lambda k, xs, ans: "abs'(0) is taken as 0" if np.any(np.asarray(xs[0]) == 0) else None,
    "maximum": lambda k, xs, ans: "a tie: the gradient is split evenly" if _tie(xs, ans) else None,
    "minimum": lambda k, xs, ans: "a tie: the gradient is split evenly" if _tie(xs, ans) else None,
    "amax": lambda k, xs, ans: "a tie: the gradient is split evenly" if _rtie(xs, ans) else None,
    "amin": lambda k, xs, ans: "a tie: the gradient is split evenly" if _rtie(xs, ans) else None,
}


def _tie(xs: list[Any], ans: Any) -> bool:
    hits = sum(np.asarray(np.asarray(x) == ans, dtype=int) for x in xs)
    return bool(np.any(np.asarray(hits) > 1))


def _rtie(xs: list[Any], ans: Any) -> bool:
    return int(np.sum(np.asarray(xs[0]) == ans)) > 1 if np.ndim(ans) == 0 else False


ELEMENTWISE_SHAPES = (same_shape, broadcast_shape)

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

    @property
    def out_label(self) -> str:
        return self.labels[self.result.out]

    def d(self, i: int) -> str:
        """``∂out/∂node`` for node i."""
        return f"∂{self.out_label}/∂{self.labels[i]}"


def node_labels(g: Graph) -> list[str]:
    """The readable name of every node (see the module's docstring)."""
    from cgraph_cli.present import display_names

    labels = display_names(g)  # names, with subscripts for reassigned ones (as in eval's table)
    for i in range(len(g)):
        if g.names[i] is not None:
            continue
        if g.ops[i] == "const":
            v = np.asarray(g.attrs[i]["value"])  # type: ignore[index]
            labels[i] = _const_text(v) if v.size <= SMALL else f"%{i}"
        else:
            labels[i] = _text_label(g, i)
    # anonymous labels must be unique and must not look like a name
    taken: dict[str, int] = {}
    for i, lab in enumerate(labels):
        if g.names[i] is None and g.ops[i] != "const":
            taken[lab] = taken.get(lab, 0) + 1
    named = {lab for i, lab in enumerate(labels) if g.names[i] is not None}
    for i, lab in enumerate(labels):
        if g.names[i] is None and g.ops[i] != "const" and (taken[lab] > 1 or lab in named):
            labels[i] = f"%{i}"
    return labels


def _const_text(v: np.ndarray) -> str:
    if v.ndim == 0:
        return fmt_number(v)
    return _small(v)


def _text_label(g: Graph, i: int) -> str:
    if g.frames_of[i] != -1:
        return f"%{i}"
    text = " ".join(g.text(i).split())
    if not text or len(text) > MAX_LABEL:
        return f"%{i}"
    if text.startswith("(") and text.endswith(")") and _balanced_outer(text):
        return text
    if re.fullmatch(r"[A-Za-z_]\w*\(.*\)", text) and _balanced_outer(text):
        return text
    return f"({text})"


def _small(v: Any) -> str:
    a = np.asarray(v, dtype=np.float64)
    if a.ndim == 0:
        return fmt_number(a)
    if a.ndim == 1:
        return "[" + ", ".join(fmt_number(x) for x in a) + "]"
    return "[" + ", ".join(_small(r) for r in a) + "]"


def is_small(v: Any) -> bool:
    return np.size(v) <= SMALL


def num(v: Any, *, first: bool = True) -> str:
    """A value inside a formula: negative numbers in parentheses unless first."""
    s = _small(v) if is_small(v) else "…"
    if not first and s.startswith("-"):
        return f"({s})"
    return s


def norm_text(v: Any) -> str:
    a = np.asarray(v, dtype=np.float64)
    return fmt_number(np.sqrt(np.sum(a * a)))


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


def explain(result: Result, max_steps: int = MAX_STEPS, option: str | None = None) -> Explanation:
    """Build the step-by-step explanation of a finished forward and backward pass.

    A graph of more than ``max_steps`` nodes is refused before any work (:func:`check_size`)."""
    g = result.graph
    check_size(g, max_steps, option)
    labels = node_labels(g)
    ex = Explanation(result, labels)
    vals, grads, out = result.values, result.grads, result.out
    # the forward pass: every node up to the output that it depends on
    anc = g.ancestors(out)
    for i in range(out + 1):
        if not anc[i] or (g.ops[i] == "const" and g.names[i] is None):
            continue
        ex.forward.append(_forward_step(g, labels, vals, i))
    # the backward pass: reverse topological order, nodes that depend on an input and reach the output
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
    for i in range(out, -1, -1):
        if not rel[i]:
            continue
        if i == out:
            ex.backward.append(BackwardStep(i, labels[i], [], grads[i], seed=True, shape=np.shape(vals[i])))
            continue
        terms = [_term(g, labels, vals, grads, i, j, out, cache) for j in succ.get(i, [])]
        ex.backward.append(BackwardStep(i, labels[i], terms, grads[i], shape=np.shape(vals[i])))
    return ex


def _formula(g: Graph, i: int, L: list[str]) -> str:
    """The right-hand side of node i with operand texts L."""
    op = g.ops[i]
    at = g.attrs[i] or {}
    spec = OPS.get(op)
    if op == "id":
        return L[0]
    if op == "neg":
        return f"-{_p(L[0])}"
    if op == "transpose":
        return _T(L[0])
    if op == "index":
        return f"{_p(L[0])}{fmt_index(at.get('idx', ()))}"
    if op == "stack":
        return "[" + ", ".join(L) + "]"
    if spec is not None and spec.infix and len(L) == 2:
        if spec.symbol == "^":
            return f"{_p(L[0])}^{_p(L[1])}"
        return f"{L[0]} {spec.symbol} {_p(L[1]) if op in ('sub', 'div') else L[1]}"
    name = CALL_NAMES.get(op, op)
    if len(L) == 1 and not at:
        return _c(name, L[0])
    extra = []
    if "axis" in at and at["axis"] is not None:
        extra.append(str(at["axis"]))
    if "dims" in at:
        extra.extend(str(d) for d in at["dims"])
    return f"{name}({', '.join(list(L) + extra)})"


def _forward_step(g: Graph, labels: list[str], vals: list[Any], i: int) -> ForwardStep:
    op = g.ops[i]
    v = vals[i]
    if op in ("input", "const"):  # a leaf: its value (a named constant such as x = [1, 2, 3])
        return ForwardStep(i, labels[i], op, None, None, v, None)
    args = g.args[i]
    expr = _formula(g, i, [labels[j] for j in args])
    numbers = None
    if all(is_small(vals[j]) for j in args):
        numbers = _formula(g, i, [num(vals[j], first=(k == 0 and not _neg_left(op))) for k, j in enumerate(args)])
        if len(numbers) > 48 and any(np.ndim(vals[j]) for j in args):
            numbers = None  # too long to read: the value alone says it
    shapes = None
    if np.ndim(v) or any(np.ndim(vals[j]) for j in args):
        shapes = _shapes_text(g, i, [np.shape(vals[j]) for j in args], np.shape(v))
    return ForwardStep(i, labels[i], op, expr, numbers, v, shapes)


def _neg_left(op: str) -> bool:
    """Ops whose first operand needs parentheses when negative (-1)^2."""
    return op in ("pow", "neg")


def _shapes_text(g: Graph, i: int, shapes: list[tuple[int, ...]], out: tuple[int, ...]) -> str:
    op = g.ops[i]
    spec = OPS.get(op)
    if spec is not None and spec.infix and len(shapes) == 2:
        return f"{fmt_shape(shapes[0])} {spec.symbol} {fmt_shape(shapes[1])} → {fmt_shape(out)}"
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
            found = []
            for k in slots:
                rule = spec.vjp_for(k)
                found.append(None if rule is None else rule(upstream, vals[j], *xs, **at))
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
    spec = OPS.get(op)
    elementwise = spec is not None and spec.shape in ELEMENTWISE_SHAPES
    tmpl = LOCAL.get(op)
    # no template: the local derivative is known only by its number ("" here)
    local_parts = [tmpl(k, L, A, at, shapes) if tmpl else "" for k in slots]
    local_formula = local_parts[0] if len(local_parts) == 1 else " + ".join(_p(s) for s in local_parts if s)
    scalar = np.size(vals[i]) == 1 and np.size(vals[j]) == 1
    local = None
    if np.size(vals[j]) == 1:
        local = _vjp_number(g, vals, i, j, slots, np.ones_like(vals[j]), sc, "one")
    elif elementwise and np.shape(vals[j]) == np.shape(vals[i]):
        local = _vjp_number(g, vals, i, j, slots, np.ones_like(vals[j]), sc, "one")
    kink = KINK_NOTES.get(op)
    note = None
    if kink is not None:
        if sc.note is False:
            sc.note = kink(slots[0], sc.xs, vals[j])
        note = sc.note
    # the VJP in matrix form (the renderer writes scalars as ∂out/∂A · ∂A/∂node instead)
    U = f"∂{labels[out]}/∂{A}"
    parts = []
    shp = None
    for k in slots:
        if elementwise or op not in VJP:
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
                    f = f"{U} {prod} {_p(loc) if tmpl else loc}"
            if elementwise and shapes[k] != shapes[-1]:
                f = f"sum_to({f}, {fmt_shape(shapes[k])})"
        else:
            f, shp = VJP[op](k, U, L, A, at, shapes)
        parts.append(f)
    formula = parts[0] if len(parts) == 1 else " + ".join(f"({p})" for p in parts)
    return Term(j, slots, formula, local_formula, local, upstream, contribution, shp, note, scalar)


# -- rendering ------------------------------------------------------------------------

Seg = tuple[str, str | None]  # text, rich style


def _vtext(label: str, v: Any) -> list[Seg]:
    """``= value`` for small values, ``, ‖label‖ = n`` for large tensors."""
    if is_small(v):
        return [(" = ", None), (_small(v), "cyan")]
    return [(f", ‖{label}‖ = ", None), (norm_text(v), "cyan")]


def lines(ex: Explanation) -> list[list[Seg]]:
    """The explanation as lines of styled segments (plain text is their concatenation)."""
    outl = ex.out_label
    res: list[list[Seg]] = [[("Forward pass: each node's value, in topological order", "bold underline")]]
    res += [_forward_line(st) for st in ex.forward]
    res.append([])
    title = f"Backward pass: ∂{outl}/∂node, from {outl} back to the inputs (reverse topological order)"
    res.append([(title, "bold underline")])
    if not ex.backward:
        res.append([(f"  {outl} does not depend on any input: there is nothing to differentiate", "dim")])
    for st in ex.backward:
        main, extra = _backward_lines(ex, st)
        res.extend(main + extra)
    return res


def _forward_line(st: ForwardStep) -> list[Seg]:
    if st.op == "input":
        if is_small(st.value):
            line: list[Seg] = [("  ", None), (st.label, "bold")] + _vtext(st.label, st.value)
        else:
            line = [("  ‖", None), (st.label, "bold"), ("‖ = ", None), (norm_text(st.value), "cyan")]
    else:
        line = [("  ", None), (st.label, "bold")]
        shown = [st.label]
        if st.expr and st.expr not in (st.label, st.label[1:-1]):
            line += [(" = ", None), (st.expr, None)]
            shown.append(st.expr)
        value = _small(st.value) if is_small(st.value) else None
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
        if t.local_formula and t.local_formula != _small(st.grad):
            head += [(" = ", None), (t.local_formula, None)]
        head += [(" = ", None), (_small(st.grad), "cyan")]
        return [head], extra_lines
    # the chain rule: one symbolic term per successor, then the numbers, then the result
    shape_note: list[Seg] = []
    if scalar:
        syms = [f"{ex.d(t.successor)} · ∂{labels[t.successor]}/∂{lab}" for t in st.terms]
        nums = [f"{num(t.upstream, first=(k == 0))} · {num(t.local, first=False)}" for k, t in enumerate(st.terms)]
        number_line = " + ".join(nums)
        result = [(" = ", None), (_small(st.grad), "cyan")]
        for t in st.terms:
            lt = _small(t.local)
            d = f"∂{labels[t.successor]}/∂{lab}"
            if t.local_formula and t.local_formula != lt:
                d += f" = {t.local_formula}"
            where.append(d + f" = {lt}")
    else:
        syms = [t.formula for t in st.terms]
        number_line = None
        if len(st.terms) > 1 and all(is_small(t.contribution) for t in st.terms) and is_small(st.grad):
            number_line = " + ".join(num(t.contribution, first=(k == 0)) for k, t in enumerate(st.terms))
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
                "formula": _plain(_forward_line(st)).split("    shape")[0].strip(),
                "shape": list(np.shape(st.value)),
                "value": json_value(st.value),
            }
        )
    backward = []
    for st in ex.backward:
        backward.append(
            {
                "node": st.node,
                "name": st.label,
                "seed": st.seed,
                "formula": " ".join(_plain(ln).split("    shape")[0].strip() for ln in _backward_lines(ex, st)[0]),
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
    }
