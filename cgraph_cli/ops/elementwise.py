"""Functions applied entry by entry: ``exp log sqrt abs sin cos tan tanh sigmoid relu softplus
square atan2`` and ``max``/``min`` of several operands."""

from __future__ import annotations

import numpy as np

from cgraph_cli.ops.core import ROWWISE, Call, Kernel, Kink, Op, broadcast_shape, near_zero, same_shape, traceable
from cgraph_cli.ops.text import call, paren


@traceable
def _sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))


def unary(name, fwd, vjp, local, *, glyph=None, kernel=Kernel.NP, also=(), numpy=None, **kw) -> Op:
    """A one-operand function called by its own name (and by the names in ``also``)."""
    return Op(
        name,
        fwd,
        (vjp,),
        same_shape,
        1,
        glyph or name,
        calls=tuple(Call(n) for n in (name, *also)),
        local=local,
        elementwise=True,
        rows=ROWWISE,
        kernel=kernel,
        numpy=fwd if numpy is None and isinstance(fwd, np.ufunc) else numpy,
        **kw,
    )


def _fold(f, args):
    out = args[0]
    for a in args[1:]:
        out = f(out, a)
    return out


def _extreme_vjp(ks, g, ans, args):
    """The VJPs of operands ``ks`` of max/min: g where the operand is the extreme, divided by the number of
    operands that tie there. One pass counts the ties, one pass per operand in ``ks`` (no n-by-n work)."""
    count = (args[0] == ans) + 0  # integers (in a trace, a node: ir/trace.py)
    for a in args[1:]:
        count = count + (a == ans)
    div = np.maximum(count, 1).astype(np.result_type(g))  # keep float32 float32
    return [g * (args[k] == ans) / div for k in ks]


def _tie(xs, ans, attrs, eps) -> bool:
    """Two or more operands within eps of the extreme, at some entry."""
    a = np.asarray(ans, dtype=np.float64)
    hits = sum(np.abs(np.asarray(x, dtype=np.float64) - a) <= eps for x in xs)
    return bool(np.any(np.asarray(hits) > 1))


# With more operands (or longer operand text) ∂m/∂a is written [a = m] rather than [a = max(a, b, ...)]:
# listing n operands in each of the n operands' steps would make an explanation quadratic in n.
MAX_LISTED = 8
MAX_LISTED_CHARS = 40


def _extreme_local(which: str, k: int, L: list[str], A: str) -> str:
    listed = ", ".join(L) if len(L) <= MAX_LISTED else ""
    if not listed or len(listed) > MAX_LISTED_CHARS:
        return f"[{L[k]} = {A}]"
    return f"[{L[k]} = {which}({listed})]"


def _extreme(name: str, which: str, f, numpy) -> Op:
    return Op(
        name,
        lambda *a: _fold(f, a),
        _extreme_vjp,
        broadcast_shape,
        None,
        which,
        call=which,
        calls=(Call(which, 2, None),),
        commutative=True,
        local=lambda k, L, A, at, sh: _extreme_local(which, k, L, A),
        elementwise=True,
        rows=ROWWISE,
        kink=Kink(
            _tie,
            f"{which} is not differentiable at a tie (cgraph splits the gradient evenly)",
            "a tie: the gradient is split evenly",
        ),
        numpy=numpy,
    )


def _atan2_local(k, L, A, at, sh):
    y, x = (paren(s) for s in L)
    return f"{x}/({y}^2 + {x}^2)" if k == 0 else f"-{y}/({y}^2 + {x}^2)"


def _atan2_vjp_y(g, ans, y, x):
    return g * x / (x * x + y * y)


def _atan2_vjp_x(g, ans, y, x):
    return -g * y / (x * x + y * y)


def _origin(xs, ans, attrs, eps) -> bool:
    y, x = np.broadcast_arrays(*(np.abs(np.asarray(v, dtype=np.float64)) for v in xs))
    return bool(np.any((y <= eps) & (x <= eps)))


RECORDS = [
    unary(
        "exp",
        np.exp,
        lambda g, ans, a: g * ans,
        lambda k, L, A, at, sh: call("exp", L[0]),
        kernel=Kernel.NP1,
        complex_step=True,
    ),
    unary(
        "log",
        np.log,
        lambda g, ans, a: g / a,
        lambda k, L, A, at, sh: f"1/{paren(L[0])}",
        kernel=Kernel.NP1,
        also=("ln",),
        hint=lambda xs, v: "log is defined only for positive values" if np.any(xs[0] <= 0) else None,
        grad_hint=lambda k, xs: "the derivative of log, 1/x, is infinite at x = 0" if np.any(xs[0] == 0) else None,
        domain=(0.2, 3.0),
        complex_step=True,
    ),
    unary(
        "sqrt",
        np.sqrt,
        lambda g, ans, a: g / (2 * ans),
        lambda k, L, A, at, sh: f"1/(2 · {call('sqrt', L[0])})",
        kernel=Kernel.SQRT,
        kink=Kink(
            lambda xs, ans, at, eps: near_zero(xs[0], eps),
            "sqrt is not differentiable at 0 (its derivative is infinite)",
        ),
        hint=lambda xs, v: "sqrt is defined only for non-negative values" if np.any(xs[0] < 0) else None,
        grad_hint=lambda k, xs: (
            "the derivative of sqrt, 1/(2·sqrt(x)), is infinite at x = 0" if np.any(xs[0] == 0) else None
        ),
        domain=(0.2, 3.0),
        complex_step=True,
    ),
    unary(
        "abs",
        np.abs,
        lambda g, ans, a: g * np.sign(a),
        lambda k, L, A, at, sh: call("sign", L[0]),
        kernel=Kernel.ABS,
        kink=Kink(
            lambda xs, ans, at, eps: near_zero(xs[0], eps),
            "abs is not differentiable at 0 (cgraph takes abs'(0) = 0)",
            "abs'(0) is taken as 0",
        ),
    ),
    unary(
        "sin",
        np.sin,
        lambda g, ans, a: g * np.cos(a),
        lambda k, L, A, at, sh: call("cos", L[0]),
        kernel=Kernel.SIN,
        complex_step=True,
    ),
    unary(
        "cos",
        np.cos,
        lambda g, ans, a: -g * np.sin(a),
        lambda k, L, A, at, sh: f"-{call('sin', L[0])}",
        kernel=Kernel.COS,
        complex_step=True,
    ),
    unary(
        "tan",
        np.tan,
        lambda g, ans, a: g * (1 + ans * ans),
        lambda k, L, A, at, sh: f"1 + {call('tan', L[0])}^2",
        kernel=Kernel.NP1,
        domain=(-1.2, 1.2),
        complex_step=True,
    ),
    unary(
        "tanh",
        np.tanh,
        lambda g, ans, a: g * (1 - ans * ans),
        lambda k, L, A, at, sh: f"1 - {call('tanh', L[0])}^2",
        kernel=Kernel.NP1,
        complex_step=True,
    ),
    unary(
        "sigmoid",
        _sigmoid,
        lambda g, ans, a: g * ans * (1 - ans),
        lambda k, L, A, at, sh: f"{call('σ', L[0])} · (1 - {call('σ', L[0])})",
        glyph="σ",
        call="σ",
        numpy=_sigmoid,
    ),
    unary(
        "relu",
        lambda a: np.maximum(a, 0),
        lambda g, ans, a: g * (a > 0),
        lambda k, L, A, at, sh: f"[{L[0]} > 0]",
        kernel=Kernel.RELU,
        kink=Kink(
            lambda xs, ans, at, eps: near_zero(xs[0], eps),
            "relu is not differentiable at 0 (cgraph takes relu'(0) = 0)",
            "relu'(0) is taken as 0",
        ),
    ),
    unary(
        "softplus",
        lambda a: np.logaddexp(0, a),
        lambda g, ans, a: g * _sigmoid(a),
        lambda k, L, A, at, sh: call("σ", L[0]),
    ),
    unary(
        "square",
        np.square,
        lambda g, ans, a: 2 * g * a,
        lambda k, L, A, at, sh: f"2 · {paren(L[0])}",
        kernel=Kernel.SQUARE,
        complex_step=True,
    ),
    _extreme("maximum", "max", np.maximum, np.maximum),
    _extreme("minimum", "min", np.minimum, np.minimum),
    Op(
        "atan2",
        np.arctan2,
        (_atan2_vjp_y, _atan2_vjp_x),
        broadcast_shape,
        2,
        "atan2",
        calls=(Call("atan2", 2, 2),),
        ports=("y", "x"),
        local=_atan2_local,
        elementwise=True,
        rows=ROWWISE,
        kink=Kink(_origin, "atan2 is not differentiable at y = x = 0 (its derivative is undefined there)"),
        grad_hint=lambda k, xs: (
            "the derivative of atan2(y, x) is undefined at y = x = 0"
            if np.any((np.asarray(xs[0]) == 0) & (np.asarray(xs[1]) == 0))
            else None
        ),
        domain=(0.5, 2.0),
        test_shapes=((3,), (2, 1)),
        numpy=np.arctan2,
    ),
]
