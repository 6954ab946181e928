"""Functions applied entry by entry: ``exp log sqrt abs sin cos tan tanh sigmoid relu softplus
square sign sinh cosh asin acos atan log1p expm1 erf atan2 logaddexp clip where``, ``max``/``min``
of several operands, and the comparisons ``< <= > >= == !=`` (0/1 masks)."""

from __future__ import annotations

import math

import numpy as np

from cgraph_cli.ops.core import (
    CARRIES,
    CARRIES_GRAD,
    ROWWISE,
    Call,
    Code,
    Derive,
    Kernel,
    Kink,
    Lower,
    NoEquivalent,
    Op,
    Site,
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


# -- how other engines write them (cgraph export) --------------------------------------------


def same_everywhere(fn: str, onnx: str, torch: str | None = None) -> Lower:
    """A function numpy, jax.numpy and torch all have, with cgraph's derivative (``torch``: its torch name)."""
    return Lower(array=Code(f"{{m}}.{fn}({{0}})"), torch=Code(f"torch.{torch or fn}({{0}})"), onnx=onnx)


JAX_ABS = """\
@jax.custom_jvp
def cg_abs(x):
    return jnp.abs(x)


@cg_abs.defjvp
def _cg_abs_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return jnp.abs(x), jnp.sign(x) * t  # abs'(0) = 0, as in PyTorch
"""


def _log1p_onnx(site, y: str) -> str:
    """log(1 + y) to full precision without a Log1p operator (Kahan: log(u) * y / (u - 1) with u = 1 + y)."""
    one = site.number(1.0)
    u = site.node("Add", [one, y])
    um1 = site.node("Sub", [u, one])
    exact = site.node("Equal", [u, one])
    ratio = site.node("Div", [site.node("Mul", [site.node("Log", [u]), y]), site.node("Where", [exact, one, um1])])
    return site.node("Where", [exact, y, ratio])


def _softplus_onnx(site) -> str:
    """logaddexp(0, x) = max(x, 0) + log1p(exp(-|x|)), as numpy computes it."""
    (x,) = site.xs
    zero = site.number(0.0)
    e = site.node("Exp", [site.node("Neg", [site.node("Abs", [x])])])
    return site.node("Add", [site.node("Max", [x, zero]), _log1p_onnx(site, e)])


def _sigmoid_onnx(site) -> str:
    """exp(-logaddexp(0, -x)), cgraph's own formula."""
    (x,) = site.xs
    zero = site.number(0.0)
    nx = site.node("Neg", [x])
    e = site.node("Exp", [site.node("Neg", [site.node("Abs", [nx])])])
    lae = site.node("Add", [site.node("Max", [nx, zero]), _log1p_onnx(site, e)])
    return site.node("Exp", [site.node("Neg", [lae])])


def _extreme_python(fn: str, stacked: str):
    """max/min of two operands as the target's elementwise function (a tie splits the gradient in halves in
    numpy's, jax's and torch's convention alike); of more operands as a reduction over the stacked operands,
    whose derivative splits a tie evenly among all of them, as cgraph does (folding the two-operand function
    would give 1/4, 1/4, 1/2)."""

    def write(site: Site) -> str:
        if len(site.xs) == 2:
            return f"{site.m}.{fn}({site.xs[0]}, {site.xs[1]})"
        if site.m == "torch":
            return f"torch.{stacked}(torch.stack(torch.broadcast_tensors({', '.join(site.xs)})), dim=0)"
        return f"{site.m}.{stacked}({site.m}.stack({site.m}.broadcast_arrays({', '.join(site.xs)})), axis=0)"

    return write


def _extreme_lower(fn: str, stacked: str, onnx: str) -> Lower:
    note = (
        f"{fn} of more than two operands is written as {stacked} over the stacked operands: its derivative "
        f"splits a tie evenly among all of them, as cgraph does, where folding {fn} would split it in halves "
        "at each step"
    )
    code = Code(_extreme_python(fn, stacked), note=note)
    return Lower(array=code, torch=code, onnx=onnx)


# Cephes' atan (Moshier): a rational approximation after reducing |x| to [0, 0.66], accurate to about one ulp in
# float64. onnxruntime runs ONNX's Atan on float32 only, so the export builds atan from these operations.
_ATAN_P = (-8.750608600031904122785e-1, -1.615753718733365076637e1, -7.500855792314704667340e1)
_ATAN_P += (-1.228866684490136173410e2, -6.485021904942025371773e1)
_ATAN_Q = (2.485846490142306297962e1, 1.650270098316988542046e2, 4.328810604912902668951e2)
_ATAN_Q += (4.853903996359136964868e2, 1.945506571482613964425e2)
_MOREBITS = 6.123233995736765886130e-17
_PI = 3.141592653589793


def atan_onnx(site, x: str) -> str:
    """atan(x) in float64 from ONNX's arithmetic (Cephes' algorithm, branch by branch with Where)."""
    num = site.number
    a = site.node("Abs", [x])
    big = site.node("Greater", [a, num(2.414213562373095)])  # tan(3 pi / 8)
    mid = site.node("And", [site.node("Greater", [a, num(0.66)]), site.node("Not", [big])])
    reduced = site.node(
        "Where",
        [
            big,
            site.node("Div", [num(-1.0), a]),
            site.node(
                "Where", [mid, site.node("Div", [site.node("Sub", [a, num(1.0)]), site.node("Add", [a, num(1.0)])]), a]
            ),
        ],
    )
    base = site.node("Where", [big, num(_PI / 2), site.node("Where", [mid, num(_PI / 4), num(0.0)])])
    extra = site.node("Where", [big, num(_MOREBITS), site.node("Where", [mid, num(0.5 * _MOREBITS), num(0.0)])])
    z = site.node("Mul", [reduced, reduced])
    p = num(_ATAN_P[0])
    for c in _ATAN_P[1:]:
        p = site.node("Add", [site.node("Mul", [p, z]), num(c)])
    q = site.node("Add", [z, num(_ATAN_Q[0])])
    for c in _ATAN_Q[1:]:
        q = site.node("Add", [site.node("Mul", [q, z]), num(c)])
    r = site.node("Div", [site.node("Mul", [z, p]), q])
    r = site.node("Add", [site.node("Mul", [reduced, r]), reduced])
    r = site.node("Add", [base, site.node("Add", [r, extra])])
    return site.node("Where", [site.node("Less", [x, num(0.0)]), site.node("Neg", [r]), r])


def _atan2_onnx(site) -> str:
    """atan2(y, x) from atan(y / x) and the quadrant: +-pi for x < 0, +-pi/2 for x == 0."""
    y, x = site.xs
    zero, pi = site.number(0.0), site.number(_PI)
    base = atan_onnx(site, site.node("Div", [y, x]))
    shift = site.node("Where", [site.node("Less", [y, zero]), site.node("Neg", [pi]), pi])
    left = site.node("Add", [base, shift])
    axis = site.node("Mul", [site.node("Sign", [y]), site.number(_PI / 2)])
    x_neg, x_zero = site.node("Less", [x, zero]), site.node("Equal", [x, zero])
    return site.node("Where", [x_zero, axis, site.node("Where", [x_neg, left, base])])


def _expm1_onnx(site, x: str) -> str:
    """exp(x) - 1 to full precision without an Expm1 operator (Kahan: (u - 1) x / log(u) with u = exp(x))."""
    num = site.number
    u = site.node("Exp", [x])
    um1 = site.node("Sub", [u, num(1.0)])
    safe_log = site.node("Where", [site.node("Equal", [u, num(1.0)]), num(2.0), site.node("Log", [u])])
    ratio = site.node("Div", [site.node("Mul", [um1, x]), safe_log])
    out = site.node("Where", [site.node("Equal", [um1, num(-1.0)]), um1, ratio])
    out = site.node("Where", [site.node("IsInf", [u]), u, out])
    return site.node("Where", [site.node("Equal", [u, num(1.0)]), x, out])


_LN2 = 0.6931471805599453


def _sinh_onnx(site) -> str:
    """sinh from expm1 near 0 (u + u/(u + 1)) / 2, and exp(|x| - log 2) with x's sign beyond |x| = 20."""
    (x,) = site.xs
    num = site.number
    u = _expm1_onnx(site, x)
    small = site.node("Mul", [num(0.5), site.node("Add", [u, site.node("Div", [u, site.node("Add", [u, num(1.0)])])])])
    a = site.node("Abs", [x])
    big = site.node("Mul", [site.node("Sign", [x]), site.node("Exp", [site.node("Sub", [a, num(_LN2)])])])
    return site.node("Where", [site.node("Less", [a, num(20.0)]), small, big])


def _cosh_onnx(site) -> str:
    (x,) = site.xs
    num = site.number
    a = site.node("Abs", [x])
    small = site.node(
        "Mul", [num(0.5), site.node("Add", [site.node("Exp", [x]), site.node("Exp", [site.node("Neg", [x])])])]
    )
    big = site.node("Exp", [site.node("Sub", [a, num(_LN2)])])
    return site.node("Where", [site.node("Less", [a, num(20.0)]), small, big])


def _asin_onnx(site) -> str:
    """asin(x) = atan(x / sqrt((1 - x)(1 + x))) (onnxruntime runs Asin in float32 only)."""
    (x,) = site.xs
    one = site.number(1.0)
    root = site.node("Sqrt", [site.node("Mul", [site.node("Sub", [one, x]), site.node("Add", [one, x])])])
    return atan_onnx(site, site.node("Div", [x, root]))


def _acos_onnx(site) -> str:
    """acos(x) = 2 atan(sqrt((1 - x) / (1 + x)))."""
    (x,) = site.xs
    one = site.number(1.0)
    root = site.node("Sqrt", [site.node("Div", [site.node("Sub", [one, x]), site.node("Add", [one, x])])])
    return site.node("Mul", [site.number(2.0), atan_onnx(site, root)])


def _no_erf_onnx(site) -> str:
    raise NoEquivalent("onnxruntime computes ONNX's Erf in float32 only, and cgraph exports float64")


def _logaddexp_onnx(site) -> str:
    """numpy's logaddexp: a + log(2) where a == b, else max + log1p(exp(-|a - b|))."""
    a, b = site.xs
    tail = _log1p_onnx(site, site.node("Exp", [site.node("Neg", [site.node("Abs", [site.node("Sub", [a, b])])])]))
    general = site.node("Add", [site.node("Max", [a, b]), tail])
    same = site.node("Add", [a, site.number(_LN2)])
    return site.node("Where", [site.node("Equal", [a, b]), same, general])


def _comparison_lower(symbol: str, np_fn: str, torch_fn: str, onnx: str) -> Lower:
    """A 0/1 mask in the operands' float type: no gradient flows through it in any target."""

    def onnx_mask(site) -> str:
        if onnx == "NotEqual":
            mask = site.node("Not", [site.node("Equal", site.xs)])
        else:
            mask = site.node(onnx, site.xs)
        return site.node("Cast", [mask], to=11)  # DOUBLE

    return Lower(
        numpy=Code(f"np.{np_fn}({{0}}, {{1}}).astype(np.float64)"),
        jax=Code(f"jnp.{np_fn}({{0}}, {{1}}).astype(jnp.float64)"),
        torch=Code(f"torch.{torch_fn}({{0}}, {{1}}).to(torch.float64)"),
        onnx=onnx_mask,
    )


_WHERE = Lower(
    array=Code("{m}.where({0} != 0, {1}, {2})"),
    torch=Code("torch.where({0} != 0, {1}, {2})"),
    onnx=lambda site: site.node(
        "Where", [site.node("Not", [site.node("Equal", [site.xs[0], site.number(0.0)])]), site.xs[1], site.xs[2]]
    ),
)

_CLIP_NOTE = (
    "clip is written with where, so that the gradient goes to x strictly inside (lo, hi) and to the bound that "
    "is the result elsewhere, as cgraph sends it (min(max(x, lo), hi) would split ties in halves)"
)
_CLIP = Lower(
    numpy=Code("np.minimum(np.maximum({0}, {1}), {2})"),
    jax=Code("jnp.where(jnp.maximum({0}, {1}) >= {2}, {2}, jnp.where({0} <= {1}, {1}, {0}))", note=_CLIP_NOTE),
    torch=Code("torch.where(torch.maximum({0}, {1}) >= {2}, {2}, torch.where({0} <= {1}, {1}, {0}))", note=_CLIP_NOTE),
    onnx=lambda site: site.node("Min", [site.node("Max", site.xs[:2]), site.xs[2]]),
)

NUMPY_ERF = """\
def cg_erf(x):
    return np.asarray(np.frompyfunc(math.erf, 1, 1)(x), dtype=np.float64)
"""


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


def _extreme(name: str, which: str, f, numpy, lower: Lower) -> Op:
    return Op(
        name,
        lambda *a: _fold(f, a),
        _extreme_vjp,
        _extreme_shape(which),
        None,
        which,
        carry=CARRIES_GRAD,  # max(-inf, 0) = 0; the VJP is g times a 0/1 mask
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
        lower=lower,
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


def comparison(name: str, symbol: str, glyph: str, f, *, commutative: bool = False, lower: Lower | None = None) -> Op:
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
        lower=lower,
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
        carry=CARRIES_GRAD,
        kernel=Kernel.NP1,
        float_vjp=True,
        complex_step=True,
        lower=same_everywhere("exp", "Exp"),
        doc="e to the x",
    ),
    unary(
        "log",
        np.log,
        lambda g, ans, a: g / a,
        lambda k, L, A, at, sh: f"1/{paren(L[0])}",
        carry=CARRIES,
        kernel=Kernel.NP1,
        float_vjp=True,
        also=("ln",),
        hint=lambda xs, v: "log is defined only for positive values" if np.any(xs[0] <= 0) else None,
        grad_hint=lambda k, xs: "the derivative of log, 1/x, is infinite at x = 0" if np.any(xs[0] == 0) else None,
        domain=(0.2, 3.0),
        complex_step=True,
        lower=same_everywhere("log", "Log"),
        doc="natural logarithm",
    ),
    unary(
        "sqrt",
        np.sqrt,
        lambda g, ans, a: g / (2 * ans),
        lambda k, L, A, at, sh: f"1/(2 · {call('sqrt', L[0])})",
        carry=CARRIES,
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
        lower=same_everywhere("sqrt", "Sqrt"),
        doc="square root",
    ),
    unary(
        "abs",
        np.abs,
        lambda g, ans, a: g * np.sign(a),
        lambda k, L, A, at, sh: call("sign", L[0]),
        carry=CARRIES,
        kernel=Kernel.ABS,
        kink=Kink(
            lambda xs, ans, at, eps: near_zero(xs[0], eps),
            "abs is not differentiable at 0 (cgraph takes abs'(0) = 0)",
            "abs'(0) is taken as 0",
        ),
        lower=Lower(
            array=Code("{m}.abs({0})"),
            jax=Code(
                "cg_abs({0})",
                (JAX_ABS,),
                "jax's own abs'(0) is 1; cg_abs has a custom JVP with sign(x), so abs'(0) = 0 as in PyTorch",
            ),
            torch=Code("torch.abs({0})"),
            onnx="Abs",
        ),
        doc="absolute value",
    ),
    unary(
        "sin",
        np.sin,
        lambda g, ans, a: g * np.cos(a),
        lambda k, L, A, at, sh: call("cos", L[0]),
        carry=CARRIES,
        kernel=Kernel.SIN,
        complex_step=True,
        lower=same_everywhere("sin", "Sin"),
        doc="sine",
    ),
    unary(
        "cos",
        np.cos,
        lambda g, ans, a: -g * np.sin(a),
        lambda k, L, A, at, sh: f"-{call('sin', L[0])}",
        carry=CARRIES,
        kernel=Kernel.COS,
        complex_step=True,
        lower=same_everywhere("cos", "Cos"),
        doc="cosine",
    ),
    unary(
        "tan",
        np.tan,
        lambda g, ans, a: g * (1 + ans * ans),
        lambda k, L, A, at, sh: f"1 + {call('tan', L[0])}^2",
        carry=CARRIES,
        kernel=Kernel.NP1,
        float_vjp=True,
        domain=(-1.2, 1.2),
        complex_step=True,
        lower=Lower(
            array=Code("{m}.tan({0})"),
            torch=Code("torch.tan({0})"),
            # onnxruntime runs ONNX's Tan on float32 only
            onnx=lambda site: site.node("Div", [site.node("Sin", site.xs), site.node("Cos", site.xs)]),
        ),
        doc="tangent",
    ),
    unary(
        "tanh",
        np.tanh,
        lambda g, ans, a: g * (1 - ans * ans),
        lambda k, L, A, at, sh: f"1 - {call('tanh', L[0])}^2",
        carry=CARRIES_GRAD,
        kernel=Kernel.NP1,
        float_vjp=True,
        complex_step=True,
        lower=same_everywhere("tanh", "Tanh"),
        doc="hyperbolic tangent",
    ),
    unary(
        "sigmoid",
        _sigmoid,
        lambda g, ans, a: g * ans * (1 - ans),
        lambda k, L, A, at, sh: f"{call('σ', L[0])} · (1 - {call('σ', L[0])})",
        carry=CARRIES_GRAD,
        glyph="σ",
        call="σ",
        lower=Lower(
            numpy=Code("np.exp(-np.logaddexp(0.0, -{0}))"),
            jax=Code("jax.nn.sigmoid({0})"),
            torch=Code("torch.sigmoid({0})"),
            onnx=_sigmoid_onnx,
        ),
        doc="1 / (1 + exp(-x))",
        numpy=_sigmoid,
    ),
    unary(
        "relu",
        lambda a: np.maximum(a, 0),
        lambda g, ans, a: g * (a > 0),
        lambda k, L, A, at, sh: f"[{L[0]} > 0]",
        carry=CARRIES_GRAD,
        kernel=Kernel.RELU,
        kink=Kink(
            lambda xs, ans, at, eps: near_zero(xs[0], eps),
            "relu is not differentiable at 0 (cgraph takes relu'(0) = 0)",
            "relu'(0) is taken as 0",
        ),
        lower=Lower(
            numpy=Code("np.maximum({0}, 0.0)"),
            jax=Code(
                "jax.nn.relu({0})",
                note="jnp.maximum(x, 0) would give relu'(0) = 1/2 (a tie); jax.nn.relu's custom JVP gives 0",
            ),
            torch=Code("torch.relu({0})"),
            onnx="Relu",
        ),
        doc="max(x, 0)",
    ),
    unary(
        "softplus",
        lambda a: np.logaddexp(0, a),
        lambda g, ans, a: g * _sigmoid(a),
        lambda k, L, A, at, sh: call("σ", L[0]),
        carry=CARRIES_GRAD,
        lower=Lower(
            array=Code("{m}.logaddexp(0.0, {0})"),
            torch=Code(
                "torch.logaddexp(torch.zeros_like({0}), {0})",
                note="torch.nn.functional.softplus returns x itself beyond x > 20 (its threshold), which is off by "
                "up to 2e-9; logaddexp(0, x) is exact",
            ),
            onnx=_softplus_onnx,
        ),
        doc="log(1 + exp(x))",
    ),
    unary(
        "square",
        np.square,
        lambda g, ans, a: 2 * g * a,
        lambda k, L, A, at, sh: f"2 · {paren(L[0])}",
        carry=CARRIES,
        kernel=Kernel.SQUARE,
        complex_step=True,
        lower=Lower(
            array=Code("{m}.square({0})"),
            torch=Code("torch.square({0})"),
            onnx=lambda s: s.node("Mul", [s.xs[0], s.xs[0]]),
        ),
        doc="x^2",
    ),
    _extreme("maximum", "max", np.maximum, np.maximum, _extreme_lower("maximum", "amax", "Max")),
    _extreme("minimum", "min", np.minimum, np.minimum, _extreme_lower("minimum", "amin", "Min")),
    Op(
        "atan2",
        np.arctan2,
        (_atan2_vjp_y, _atan2_vjp_x),
        broadcast_shape,
        2,
        "atan2",
        carry=CARRIES_GRAD,
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
        lower=Lower(array=Code("{m}.arctan2({0}, {1})"), torch=Code("torch.atan2({0}, {1})"), onnx=_atan2_onnx),
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
        lower=same_everywhere("sign", "Sign"),
        doc="-1, 0 or 1",
    ),
    unary(
        "sinh",
        np.sinh,
        lambda g, ans, a: g * np.cosh(a),
        lambda k, L, A, at, sh: call("cosh", L[0]),
        carry=CARRIES,
        kernel=Kernel.NP1,
        complex_step=True,
        lower=Lower(array=Code("{m}.sinh({0})"), torch=Code("torch.sinh({0})"), onnx=_sinh_onnx),
        doc="hyperbolic sine",
    ),
    unary(
        "cosh",
        np.cosh,
        lambda g, ans, a: g * np.sinh(a),
        lambda k, L, A, at, sh: call("sinh", L[0]),
        carry=CARRIES,
        kernel=Kernel.NP1,
        complex_step=True,
        lower=Lower(array=Code("{m}.cosh({0})"), torch=Code("torch.cosh({0})"), onnx=_cosh_onnx),
        doc="hyperbolic cosine",
    ),
    unary(
        "asin",
        np.arcsin,
        lambda g, ans, a: g / np.sqrt(1 - a * a),
        lambda k, L, A, at, sh: f"1/sqrt(1 - {paren(L[0])}^2)",
        carry=CARRIES,
        kernel=Kernel.NP1,
        hint=_asin_like_hint("asin"),
        grad_hint=_asin_like_grad_hint("asin"),
        domain=(-0.9, 0.9),
        complex_step=True,
        lower=Lower(array=Code("{m}.arcsin({0})"), torch=Code("torch.asin({0})"), onnx=_asin_onnx),
        doc="inverse sine",
    ),
    unary(
        "acos",
        np.arccos,
        lambda g, ans, a: -g / np.sqrt(1 - a * a),
        lambda k, L, A, at, sh: f"-1/sqrt(1 - {paren(L[0])}^2)",
        carry=CARRIES,
        kernel=Kernel.NP1,
        hint=_asin_like_hint("acos"),
        grad_hint=_asin_like_grad_hint("acos"),
        domain=(-0.9, 0.9),
        complex_step=True,
        lower=Lower(array=Code("{m}.arccos({0})"), torch=Code("torch.acos({0})"), onnx=_acos_onnx),
        doc="inverse cosine",
    ),
    unary(
        "atan",
        np.arctan,
        lambda g, ans, a: g / (1 + a * a),
        lambda k, L, A, at, sh: f"1/(1 + {paren(L[0])}^2)",
        carry=CARRIES_GRAD,
        kernel=Kernel.NP1,
        float_vjp=True,
        complex_step=True,
        lower=Lower(
            array=Code("{m}.arctan({0})"), torch=Code("torch.atan({0})"), onnx=lambda site: atan_onnx(site, site.xs[0])
        ),
        doc="inverse tangent",
    ),
    unary(
        "log1p",
        np.log1p,
        lambda g, ans, a: g / (1 + a),
        lambda k, L, A, at, sh: f"1/(1 + {L[0]})",
        carry=CARRIES,
        kernel=Kernel.NP1,
        float_vjp=True,
        hint=lambda xs, v: "log1p(x) is defined only for x > -1" if np.any(xs[0] <= -1) else None,
        grad_hint=lambda k, xs: (
            "the derivative of log1p, 1/(1 + x), is infinite at x = -1" if np.any(xs[0] == -1) else None
        ),
        domain=(-0.5, 2.0),
        complex_step=True,
        lower=Lower(
            array=Code("{m}.log1p({0})"),
            torch=Code("torch.log1p({0})"),
            onnx=lambda site: _log1p_onnx(site, site.xs[0]),
        ),
        doc="log(1 + x), exact for small x",
    ),
    unary(
        "expm1",
        np.expm1,
        lambda g, ans, a: g * np.exp(a),
        lambda k, L, A, at, sh: call("exp", L[0]),
        carry=CARRIES_GRAD,
        kernel=Kernel.NP1,
        complex_step=True,
        lower=Lower(
            array=Code("{m}.expm1({0})"),
            torch=Code("torch.expm1({0})"),
            onnx=lambda site: _expm1_onnx(site, site.xs[0]),
        ),
        doc="exp(x) - 1, exact for small x",
    ),
    unary(
        "erf",
        _erf,
        lambda g, ans, a: g * (_TWO_OVER_SQRT_PI * np.exp(-(a * a))),
        lambda k, L, A, at, sh: f"2/sqrt(π) · exp(-{paren(L[0])}^2)",
        carry=CARRIES_GRAD,
        kernel=Kernel.NP1,
        lower=Lower(
            numpy=Code("cg_erf({0})", (NUMPY_ERF,)),
            jax=Code("jax.lax.erf({0})"),
            torch=Code("torch.erf({0})"),
            onnx=_no_erf_onnx,
        ),
        doc="the error function",
    ),
    Op(
        "logaddexp",
        np.logaddexp,
        (lambda g, ans, a, b: g * np.exp(a - ans), lambda g, ans, a, b: g * np.exp(b - ans)),
        broadcast_shape,
        2,
        "logaddexp",
        carry=CARRIES_GRAD,
        jvp=Derive.ELEMENTWISE,
        calls=(Call("logaddexp", 2, 2, doc="log(exp(a) + exp(b)), without overflow"),),
        commutative=True,
        local=lambda k, L, A, at, sh: call("exp", f"{L[k]} - {A}"),
        elementwise=True,
        rows=ROWWISE,
        test_shapes=((3,), (2, 1)),
        numpy=np.logaddexp,
        lower=Lower(
            array=Code("{m}.logaddexp({0}, {1})"), torch=Code("torch.logaddexp({0}, {1})"), onnx=_logaddexp_onnx
        ),
    ),
    comparison("lt", "<", "<", np.less, lower=_comparison_lower("<", "less", "lt", "Less")),
    comparison("le", "<=", "≤", np.less_equal, lower=_comparison_lower("<=", "less_equal", "le", "LessOrEqual")),
    comparison("gt", ">", ">", np.greater, lower=_comparison_lower(">", "greater", "gt", "Greater")),
    comparison(
        "ge", ">=", "≥", np.greater_equal, lower=_comparison_lower(">=", "greater_equal", "ge", "GreaterOrEqual")
    ),
    comparison("eq", "==", "=", np.equal, commutative=True, lower=_comparison_lower("==", "equal", "eq", "Equal")),
    comparison(
        "ne", "!=", "≠", np.not_equal, commutative=True, lower=_comparison_lower("!=", "not_equal", "ne", "NotEqual")
    ),
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
        lower=_WHERE,
    ),
    Op(
        "clip",
        lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi),
        (_clip_vjp(0), _clip_vjp(1), _clip_vjp(2)),
        broadcast_shape,
        3,
        "clip",
        carry=CARRIES_GRAD,
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
        lower=_CLIP,
    ),
]
