"""Functions applied entry by entry: ``exp log sqrt abs sin cos tan tanh sigmoid relu softplus
square sign sinh cosh asin acos atan log1p expm1 erf atan2 logaddexp clip where``, ``max``/``min``
of several operands, and the comparisons ``< <= > >= == !=`` (0/1 masks)."""

from __future__ import annotations

import math

import numpy as np

from cgraph_cli.ops.core import (
    ROWWISE,
    Call,
    Derive,
    Kernel,
    Kink,
    Op,
    broadcast_shape,
    near_zero,
    same_shape,
    traceable,
)
from cgraph_cli.ops.text import call, paren


@traceable
def _sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))


def unary(name, fwd, vjp, local, *, doc: str, glyph=None, kernel=Kernel.NP, also=(), numpy=None, **kw) -> Op:
    """A one-operand function called by its own name (and by the names in ``also``); its JVP is its VJP
    with the tangent in place of g (``Derive.ELEMENTWISE``: the VJP is ``g ⊙ f'(x)``)."""
    return Op(
        name,
        fwd,
        (vjp,),
        same_shape,
        1,
        glyph or name,
        jvp=Derive.ELEMENTWISE,
        calls=tuple(Call(n, doc=doc) for n in (name, *also)),
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


def _extreme_jvp(ts, ans, *args):
    """Σ_k t_k where operand k is the extreme, over the number of operands that tie there: the adjoint of
    :func:`_extreme_vjp` (one pass counts the ties, one pass per operand)."""
    count = np.zeros(np.shape(ans), dtype=np.int_)
    for a in args:
        count += np.asarray(a) == ans
    out = None
    for a, t in zip(args, ts):
        if t is not None:
            term = t * (np.asarray(a) == ans)
            out = term if out is None else out + term
    return out / np.maximum(count, 1).astype(np.result_type(out))


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


def _extreme_shape(which: str):
    def shape(shapes, **_):
        try:
            return broadcast_shape(shapes)
        except ValueError as e:  # max(X, 1) meant as numpy's max along axis 1?
            raise ValueError(
                f"{e}; {which}(a, b, ...) is the entry-by-entry {which}imum of its operands: "
                f"for the {which}imum along an axis, write {which}(x, axis=1)"
            ) from None

    return shape


def _extreme(name: str, which: str, f, numpy) -> Op:
    return Op(
        name,
        lambda *a: _fold(f, a),
        _extreme_vjp,
        _extreme_shape(which),
        None,
        which,
        jvp=_extreme_jvp,
        call=which,
        calls=(Call(which, 2, None, doc=f"the {which}imum of the operands, entry by entry"),),
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


# -- sign, erf and the comparisons: functions whose derivative is 0 (or that pass none) ----------------


def _zero_vjp(g, ans, *xs, **_):
    """No gradient flows: zeros of the operand's shape (a step function's derivative, PyTorch's
    convention for sign and the comparisons)."""
    return np.zeros(np.shape(xs[0]), dtype=np.result_type(g))


def _zero_vjp_of(k: int):
    return lambda g, ans, *xs, **_: np.zeros(np.shape(xs[k]), dtype=np.result_type(g))


_erf_entries = np.frompyfunc(math.erf, 1, 1)


def _erf(x):
    """The error function entry by entry, by Python's math.erf (numpy has none; scipy is not needed)."""
    x = np.asarray(x)
    return np.asarray(_erf_entries(x), dtype=x.dtype if x.dtype.kind == "f" else np.float64)


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _near(xs, ans, attrs, eps) -> bool:
    """Two operands within eps of each other at some entry (where a comparison jumps)."""
    a, b = (np.asarray(x, dtype=np.float64) for x in xs[:2])
    return bool(np.any(np.abs(a - b) <= eps))


def comparison(name: str, symbol: str, glyph: str, f, *, commutative: bool = False) -> Op:
    """A comparison ``a < b``: 1 where it holds, 0 where not (the operands' float type), no gradient."""
    return Op(
        name,
        lambda a, b: f(a, b).astype(np.result_type(a, b)),
        (_zero_vjp_of(0), _zero_vjp_of(1)),
        broadcast_shape,
        2,
        glyph,
        jvp=Derive.ELEMENTWISE,
        infix=symbol,
        ports=None if commutative else ("a", "b"),
        commutative=commutative,
        formula=lambda L, at: f"{L[0]} {symbol} {L[1]}",
        local=lambda k, L, A, at, sh: "0",
        elementwise=True,
        rows=ROWWISE,
        kink=Kink(
            _near,
            f"a comparison '{symbol}' jumps from 0 to 1 where its operands are equal "
            "(cgraph takes its derivative as 0 everywhere: no gradient flows through a comparison)",
        ),
        numpy=f,
    )


# -- where and clip ---------------------------------------------------------------------------------


def _where(c, a, b):
    return np.where(c != 0, a, b)


def _clip_masks(x, lo, hi):
    """Which of x, lo, hi the result of min(max(x, lo), hi) is, entry by entry: hi where max(x, lo) >= hi,
    else lo where x <= lo, else x (strictly inside lo < x < hi)."""
    to_hi = np.maximum(x, lo) >= hi
    to_lo = np.where(to_hi, False, x <= lo)  # where, not ~ and &: traceable (ir/trace.py)
    return np.where(to_hi, False, np.where(to_lo, False, True)), to_lo, to_hi


def _clip_vjp(k: int):
    return lambda g, ans, x, lo, hi: g * _clip_masks(x, lo, hi)[k]


def _at_bound(xs, ans, attrs, eps) -> bool:
    x, lo, hi = (np.asarray(v, dtype=np.float64) for v in xs)
    return bool(np.any((np.abs(x - lo) <= eps) | (np.abs(x - hi) <= eps)))


def _clip_local(k, L, A, at, sh):
    x, lo, hi = L
    return [f"[{lo} < {x} < {hi}]", f"[{x} ≤ {lo} < {hi}]", f"[max({x}, {lo}) ≥ {hi}]"][k]


def _asin_like_hint(name):
    return lambda xs, v: f"{name} is defined only for -1 ≤ x ≤ 1" if np.any(np.abs(xs[0]) > 1) else None


def _asin_like_grad_hint(name):
    return lambda k, xs: (
        f"the derivative of {name}, ±1/sqrt(1 - x^2), is infinite at x = ±1" if np.any(np.abs(xs[0]) == 1) else None
    )


RECORDS = [
    unary(
        "exp",
        np.exp,
        lambda g, ans, a: g * ans,
        lambda k, L, A, at, sh: call("exp", L[0]),
        kernel=Kernel.NP1,
        complex_step=True,
        doc="e to the x",
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
        doc="natural logarithm",
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
        doc="square root",
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
        doc="absolute value",
    ),
    unary(
        "sin",
        np.sin,
        lambda g, ans, a: g * np.cos(a),
        lambda k, L, A, at, sh: call("cos", L[0]),
        kernel=Kernel.SIN,
        complex_step=True,
        doc="sine",
    ),
    unary(
        "cos",
        np.cos,
        lambda g, ans, a: -g * np.sin(a),
        lambda k, L, A, at, sh: f"-{call('sin', L[0])}",
        kernel=Kernel.COS,
        complex_step=True,
        doc="cosine",
    ),
    unary(
        "tan",
        np.tan,
        lambda g, ans, a: g * (1 + ans * ans),
        lambda k, L, A, at, sh: f"1 + {call('tan', L[0])}^2",
        kernel=Kernel.NP1,
        domain=(-1.2, 1.2),
        complex_step=True,
        doc="tangent",
    ),
    unary(
        "tanh",
        np.tanh,
        lambda g, ans, a: g * (1 - ans * ans),
        lambda k, L, A, at, sh: f"1 - {call('tanh', L[0])}^2",
        kernel=Kernel.NP1,
        complex_step=True,
        doc="hyperbolic tangent",
    ),
    unary(
        "sigmoid",
        _sigmoid,
        lambda g, ans, a: g * ans * (1 - ans),
        lambda k, L, A, at, sh: f"{call('σ', L[0])} · (1 - {call('σ', L[0])})",
        glyph="σ",
        call="σ",
        doc="1 / (1 + exp(-x))",
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
        doc="max(x, 0)",
    ),
    unary(
        "softplus",
        lambda a: np.logaddexp(0, a),
        lambda g, ans, a: g * _sigmoid(a),
        lambda k, L, A, at, sh: call("σ", L[0]),
        doc="log(1 + exp(x))",
    ),
    unary(
        "square",
        np.square,
        lambda g, ans, a: 2 * g * a,
        lambda k, L, A, at, sh: f"2 · {paren(L[0])}",
        kernel=Kernel.SQUARE,
        complex_step=True,
        doc="x^2",
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
        jvp=Derive.ELEMENTWISE,
        calls=(Call("atan2", 2, 2, doc="the angle of the point (x, y), in (-π, π]"),),
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
    unary(
        "sign",
        np.sign,
        _zero_vjp,
        lambda k, L, A, at, sh: "0",
        kernel=Kernel.NP1,
        kink=Kink(
            lambda xs, ans, at, eps: near_zero(xs[0], eps),
            "sign jumps at 0 (cgraph takes its derivative as 0 everywhere, as PyTorch)",
        ),
        doc="-1, 0 or 1",
    ),
    unary(
        "sinh",
        np.sinh,
        lambda g, ans, a: g * np.cosh(a),
        lambda k, L, A, at, sh: call("cosh", L[0]),
        kernel=Kernel.NP1,
        complex_step=True,
        doc="hyperbolic sine",
    ),
    unary(
        "cosh",
        np.cosh,
        lambda g, ans, a: g * np.sinh(a),
        lambda k, L, A, at, sh: call("sinh", L[0]),
        kernel=Kernel.NP1,
        complex_step=True,
        doc="hyperbolic cosine",
    ),
    unary(
        "asin",
        np.arcsin,
        lambda g, ans, a: g / np.sqrt(1 - a * a),
        lambda k, L, A, at, sh: f"1/sqrt(1 - {paren(L[0])}^2)",
        kernel=Kernel.NP1,
        hint=_asin_like_hint("asin"),
        grad_hint=_asin_like_grad_hint("asin"),
        domain=(-0.9, 0.9),
        complex_step=True,
        doc="inverse sine",
    ),
    unary(
        "acos",
        np.arccos,
        lambda g, ans, a: -g / np.sqrt(1 - a * a),
        lambda k, L, A, at, sh: f"-1/sqrt(1 - {paren(L[0])}^2)",
        kernel=Kernel.NP1,
        hint=_asin_like_hint("acos"),
        grad_hint=_asin_like_grad_hint("acos"),
        domain=(-0.9, 0.9),
        complex_step=True,
        doc="inverse cosine",
    ),
    unary(
        "atan",
        np.arctan,
        lambda g, ans, a: g / (1 + a * a),
        lambda k, L, A, at, sh: f"1/(1 + {paren(L[0])}^2)",
        kernel=Kernel.NP1,
        complex_step=True,
        doc="inverse tangent",
    ),
    unary(
        "log1p",
        np.log1p,
        lambda g, ans, a: g / (1 + a),
        lambda k, L, A, at, sh: f"1/(1 + {L[0]})",
        kernel=Kernel.NP1,
        hint=lambda xs, v: "log1p(x) is defined only for x > -1" if np.any(xs[0] <= -1) else None,
        grad_hint=lambda k, xs: (
            "the derivative of log1p, 1/(1 + x), is infinite at x = -1" if np.any(xs[0] == -1) else None
        ),
        domain=(-0.5, 2.0),
        complex_step=True,
        doc="log(1 + x), exact for small x",
    ),
    unary(
        "expm1",
        np.expm1,
        lambda g, ans, a: g * np.exp(a),
        lambda k, L, A, at, sh: call("exp", L[0]),
        kernel=Kernel.NP1,
        complex_step=True,
        doc="exp(x) - 1, exact for small x",
    ),
    unary(
        "erf",
        _erf,
        lambda g, ans, a: g * (_TWO_OVER_SQRT_PI * np.exp(-(a * a))),
        lambda k, L, A, at, sh: f"2/sqrt(π) · exp(-{paren(L[0])}^2)",
        kernel=Kernel.NP1,
        doc="the error function",
    ),
    Op(
        "logaddexp",
        np.logaddexp,
        (lambda g, ans, a, b: g * np.exp(a - ans), lambda g, ans, a, b: g * np.exp(b - ans)),
        broadcast_shape,
        2,
        "logaddexp",
        jvp=Derive.ELEMENTWISE,
        calls=(Call("logaddexp", 2, 2, doc="log(exp(a) + exp(b)), without overflow"),),
        commutative=True,
        local=lambda k, L, A, at, sh: call("exp", f"{L[k]} - {A}"),
        elementwise=True,
        rows=ROWWISE,
        test_shapes=((3,), (2, 1)),
        numpy=np.logaddexp,
    ),
    comparison("lt", "<", "<", np.less),
    comparison("le", "<=", "≤", np.less_equal),
    comparison("gt", ">", ">", np.greater),
    comparison("ge", ">=", "≥", np.greater_equal),
    comparison("eq", "==", "=", np.equal, commutative=True),
    comparison("ne", "!=", "≠", np.not_equal, commutative=True),
    Op(
        "where",
        _where,
        (
            _zero_vjp_of(0),
            lambda g, ans, c, a, b: np.where(c != 0, g, 0.0).astype(np.result_type(g), copy=False),
            lambda g, ans, c, a, b: np.where(c != 0, 0.0, g).astype(np.result_type(g), copy=False),
        ),
        broadcast_shape,
        3,
        "where",
        jvp=Derive.ELEMENTWISE,
        calls=(Call("where", 3, 3, doc="then where cond ≠ 0, else elsewhere (cond: a mask such as a < b)"),),
        ports=("cond", "then", "else"),
        local=lambda k, L, A, at, sh: ["0", f"[{L[0]} ≠ 0]", f"[{L[0]} = 0]"][k],
        elementwise=True,
        rows=ROWWISE,
        test_shapes=((2, 3), (3,), (2, 1)),
        numpy=np.where,
    ),
    Op(
        "clip",
        lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi),
        (_clip_vjp(0), _clip_vjp(1), _clip_vjp(2)),
        broadcast_shape,
        3,
        "clip",
        jvp=Derive.ELEMENTWISE,
        calls=(Call("clip", 3, 3, doc="x limited to [lo, hi]: min(max(x, lo), hi)"),),
        ports=("x", "lo", "hi"),
        local=_clip_local,
        elementwise=True,
        rows=ROWWISE,
        kink=Kink(
            _at_bound,
            "clip is not differentiable at x = lo or x = hi (cgraph passes the gradient to x only strictly "
            "inside lo < x < hi, and to the bound that is the result elsewhere)",
            "on a bound: the gradient goes to the bound",
        ),
        domain=(-2.0, 2.0),
        test_shapes=((2, 3), (), (3,)),
    ),
]
