"""Reductions: ``sum mean max min logsumexp norm prod var std`` of one tensor, over all entries or
over ``axis=`` (an integer, a negative integer counting from the end, or a tuple of them), with
``keepdims=`` keeping the reduced axes as length 1 (numpy's keywords)."""

from __future__ import annotations

import math

import numpy as np

from cgraph_cli.fmt import fmt_keyword, fmt_shape
from cgraph_cli.ops.core import (
    ALL,
    CARRIES,
    CARRIES_GRAD,
    Call,
    Carry,
    Code,
    Derive,
    Kernel,
    Kink,
    Lower,
    Op,
    Rows,
    Site,
    expand_reduced,
    keep,
    norm_axes,
    reduce_shape,
    reduced_count,
    traceable,
)
from cgraph_cli.ops.elementwise import JAX_ABS
from cgraph_cli.ops.text import call, keyword_call, keyword_label, paren

REDUCE_KEYWORDS = ("axis", "keepdims")
REDUCE_DEFAULTS = {"axis": None, "keepdims": False}


def _reduction_call(name: str, doc: str, extra: tuple[str, ...] = ()) -> Call:
    """``name(x)``, ``name(x, axis)`` and the keywords ``axis= keepdims=`` (and ``extra``)."""
    return Call(name, 1, 2, "axis", keywords=REDUCE_KEYWORDS + extra, doc=doc)


def _texts(fname: str, defaults: dict = REDUCE_DEFAULTS) -> dict:
    """The formula and picture label of a reduction, writing its keywords as the language does."""
    return {
        "formula": lambda L, at: keyword_call(fname, L, at, defaults, ("axis",)),
        "label": lambda at: keyword_label(fname, at, defaults),
    }


def _along(at: dict) -> str:
    axis = at.get("axis")
    return "" if axis is None else f" along axis {fmt_keyword(axis)}"


def extreme_shape(shapes, axis=None, keepdims=False, **_):
    """max(x)/min(x): like any reduction, but an empty one has no value (as in numpy and PyTorch)."""
    s = shapes[0]
    axes = norm_axes(axis, len(s))
    if any(s[a] == 0 for a in range(len(s)) if axes is None or a in axes):
        raise ValueError(f"max/min of an empty tensor of shape {fmt_shape(s)} has no value")
    return reduce_shape(shapes, axis, keepdims)


def _logsumexp(x, axis=None, keepdims=False):
    out_shape = reduce_shape([np.shape(x)], axis=axis, keepdims=keepdims)
    if np.size(x) == 0:  # an empty sum: log(0) = -inf (scipy's logsumexp agrees)
        return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    s = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return s.reshape(out_shape)


def _lse_rows(x, axis=None, keepdims=False):
    m = np.where(np.isfinite(x), x, 0)
    return np.log(np.exp(x - m)) + m


def _lse_vjp(g, ans, x, axis=None, keepdims=False):
    s = np.shape(x)
    return expand_reduced(g, s, axis, keepdims) * np.exp(x - expand_reduced(ans, s, axis, keepdims))


def _reduce_extreme_vjp(g, ans, x, axis=None, keepdims=False):
    s = np.shape(x)
    mask = x == keep(ans, s, axis)
    count = np.sum(mask, axis=norm_axes(axis, len(s)), keepdims=True).astype(np.result_type(g))
    return expand_reduced(g, s, axis, keepdims) * mask / count


def _extreme_rows_vjp(g, ans, x, axis=None, keepdims=False):
    mask = x == ans
    return g * mask / mask.astype(np.result_type(g))  # float32 stays float32, as in _reduce_extreme_vjp


def _reduce_ties(xs, ans, attrs, eps) -> bool:
    x = np.asarray(xs[0], dtype=np.float64)
    a = keep(np.asarray(ans, dtype=np.float64), x.shape, attrs.get("axis"))
    close = np.abs(x - a) <= eps
    return bool(np.any(np.sum(close, axis=norm_axes(attrs.get("axis"), x.ndim)) > 1))


# -- norm: p = 2 (the default), 1 or inf ---------------------------------------------------------------

NORM_DEFAULTS = {**REDUCE_DEFAULTS, "p": 2}
_NORM_PS = (1, 2, np.inf)


def _norm_shape(shapes, axis=None, keepdims=False, p=2, **_):
    if isinstance(p, bool) or p not in _NORM_PS:
        raise ValueError(f"norm(x, p={fmt_keyword(p)}) is not supported: p is 1, 2 or inf")
    return reduce_shape(shapes, axis, keepdims)


def _norm(x, axis=None, keepdims=False, p=2):
    if p == 1:
        return np.sum(np.abs(x), axis=axis, keepdims=keepdims)
    if p == np.inf:
        if np.size(x) == 0:  # the largest of no magnitudes: 0 (PyTorch's inf-norm of an empty tensor)
            return np.sum(np.abs(x), axis=axis, keepdims=keepdims)
        return np.max(np.abs(x), axis=axis, keepdims=keepdims)
    return np.sqrt(np.sum(np.square(x), axis=axis, keepdims=keepdims))


def _norm_vjp(g, ans, x, axis=None, keepdims=False, p=2):
    s = np.shape(x)
    up = expand_reduced(g, s, axis, keepdims)
    if p == 1:  # sign(x): 0 at x = 0 (PyTorch)
        return up * np.sign(x)
    a = keep(ans, s, axis)
    if p == np.inf:  # the largest magnitudes share the gradient, with their signs (PyTorch)
        mask = np.abs(x) == a
        count = np.sum(mask, axis=norm_axes(axis, len(s)), keepdims=True).astype(np.result_type(g))
        return np.sign(x) * (up / count * mask)
    with np.errstate(divide="ignore", invalid="ignore"):
        return up * np.where(a == 0, 0.0, x / np.where(a == 0, 1.0, a))


def _norm_rows(x, axis=None, keepdims=False, p=2):
    return np.abs(x) if p != 2 else np.sqrt(np.square(x))


def _norm_rows_vjp(g, ans, x, axis=None, keepdims=False, p=2):
    if p == 1:
        return g * np.sign(x)
    if p == np.inf:
        mask = np.abs(x) == ans
        return np.sign(x) * (g / mask.astype(np.result_type(g)) * mask)
    with np.errstate(divide="ignore", invalid="ignore"):
        return g * np.where(ans == 0, 0.0, x / np.where(ans == 0, 1.0, ans))


def _norm_kink(xs, ans, attrs, eps) -> bool:
    x = np.asarray(xs[0], dtype=np.float64)
    p = attrs.get("p", 2)
    if p == 1:
        return near_zero_any(x, eps)
    a = keep(np.asarray(ans, dtype=np.float64), x.shape, attrs.get("axis"))
    if p == np.inf:
        close = np.abs(np.abs(x) - a) <= eps
        return bool(np.any(np.sum(close, axis=norm_axes(attrs.get("axis"), x.ndim)) > 1) or np.any(np.abs(a) <= eps))
    return bool(np.any(np.abs(a) <= eps))


def near_zero_any(x, eps) -> bool:
    return bool(np.any(np.abs(x) <= eps))


def _norm_local(k, L, A, at, sh):
    p = at.get("p", 2)
    if p == 1:
        return call("sign", L[0])
    if p == np.inf:
        return f"sign({L[0]}) · [|{L[0]}| = {A}]"
    return f"{paren(L[0])}/{paren(A)}"


# -- mean, var, std -------------------------------------------------------------------------------------


def _mean_fwd(x, axis=None, keepdims=False):
    return np.sum(x, axis=axis, keepdims=keepdims) / reduced_count(np.shape(x), axis)


def _mean_vjp(g, ans, x, axis=None, keepdims=False):
    return expand_reduced(g, np.shape(x), axis, keepdims) / reduced_count(np.shape(x), axis)


VAR_DEFAULTS = {**REDUCE_DEFAULTS, "ddof": 0}


def _var_shape(shapes, axis=None, keepdims=False, ddof=0, **_):
    if not isinstance(ddof, int) or isinstance(ddof, bool) or ddof < 0:
        raise ValueError(f"ddof must be a non-negative whole number, not {fmt_keyword(ddof)}")
    return reduce_shape(shapes, axis, keepdims)


def _deviation(x, axis):
    """x minus its mean over ``axis`` (numpy's var subtracts the mean the same way)."""
    m = np.sum(x, axis=norm_axes(axis, np.ndim(x)), keepdims=True) / reduced_count(np.shape(x), axis)
    return x - m


def _var(x, axis=None, keepdims=False, ddof=0):
    d = _deviation(x, axis)
    return np.sum(d * d, axis=axis, keepdims=keepdims) / (reduced_count(np.shape(x), axis) - ddof)


def _var_vjp(g, ans, x, axis=None, keepdims=False, ddof=0):
    d = _deviation(x, axis)
    return expand_reduced(g, np.shape(x), axis, keepdims) * (2 * d) / (reduced_count(np.shape(x), axis) - ddof)


def _std(x, axis=None, keepdims=False, ddof=0):
    return np.sqrt(_var(x, axis, keepdims, ddof))


def _std_vjp(g, ans, x, axis=None, keepdims=False, ddof=0):
    """(x - mean) / ((n - ddof) · std); 0 where std = 0 (all entries equal: PyTorch's convention)."""
    s = np.shape(x)
    d = _deviation(x, axis)
    a = keep(ans, s, axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = expand_reduced(g, s, axis, keepdims) * d / ((reduced_count(s, axis) - ddof) * a)
    return np.where(a == 0, 0.0, r).astype(np.result_type(r), copy=False)


def _var_rows(x, axis=None, keepdims=False, ddof=0):
    d = x - x / 1
    return d * d / (1 - ddof)


def _var_rows_vjp(g, ans, x, axis=None, keepdims=False, ddof=0):
    return g * (2 * (x - x / 1)) / (1 - ddof)


def _std_rows(x, axis=None, keepdims=False, ddof=0):
    return np.sqrt(_var_rows(x, ddof=ddof))


def _std_rows_vjp(g, ans, x, axis=None, keepdims=False, ddof=0):
    with np.errstate(divide="ignore", invalid="ignore"):
        r = g * (x - x / 1) / ((1 - ddof) * ans)
    return np.where(ans == 0, 0.0, r).astype(np.result_type(r), copy=False)


def _spread_hint(what: str):
    def hint(xs, v):
        if np.any(np.isnan(v)) and not np.any(np.isnan(xs[0])):
            return f"{what} divides by n - ddof, which is 0 here (too few entries for this ddof)"
        return None

    return hint


def _zero_variance(xs, ans, attrs, eps) -> bool:
    return bool(np.any(np.abs(np.asarray(ans, dtype=np.float64)) <= eps))


# -- prod ---------------------------------------------------------------------------------------------


def _groups(x, axis=None):
    """``x`` as rows of the entries each reduction over ``axis`` takes (the reduced axes moved last and
    flattened: shape ``lead + (k,)``), and the function that puts an array of that shape back as ``x``."""
    axes = norm_axes(axis, x.ndim)
    axes = tuple(range(x.ndim)) if axes is None else axes
    rest = tuple(i for i in range(x.ndim) if i not in axes)
    perm = rest + axes
    t = np.transpose(x, perm)
    lead = t.shape[: len(rest)]
    k = int(np.prod(t.shape[len(rest) :], dtype=np.int64))
    return t.reshape(lead + (k,)), lambda r: np.transpose(r.reshape(t.shape), np.argsort(perm))


@traceable
def _prod_others(x, axis=None):
    """Each entry's product of the other entries of its reduction (no division: exact with zeros): the
    internal op ``prod_others``, prod's derivative."""
    x = np.asarray(x)
    if x.ndim == 0:
        return np.ones_like(x)
    if np.size(x) == 0:
        return np.zeros_like(x)
    t, back = _groups(x, axis)
    ones = np.ones(t.shape[:-1] + (1,), dtype=t.dtype)
    left = np.cumprod(np.concatenate([ones, t[..., :-1]], axis=-1), axis=-1)
    right = np.flip(np.cumprod(np.concatenate([ones, np.flip(t, -1)[..., :-1]], axis=-1), axis=-1), -1)
    return back(left * right)


def _prod_others_vjp(g, ans, x, axis=None):
    """``Σ_j g_j ∂others_j/∂x_i``, where ``∂others_j/∂x_i`` is the product of the entries other than i and j
    (0 for i = j): a symmetric matrix, so this is also the JVP. O(k²) for k entries per reduction. Written
    in traceable numpy, so prod can be differentiated again and again."""
    if np.ndim(x) == 0 or np.size(x) == 0:
        return np.zeros(np.shape(x))
    t, back = _groups(x, axis)
    h, _ = _groups(np.broadcast_to(g, np.shape(x)), axis)
    k = t.shape[-1]
    if k < 2:
        return np.zeros(np.shape(x))
    drop = np.array([[j for j in range(k) if j != i] for i in range(k)])  # row i: every entry but i
    return back(np.sum(h[..., drop] * _prod_others(t[..., drop], -1), axis=-1))


def _prod_vjp(g, ans, x, axis=None, keepdims=False):
    return expand_reduced(g, np.shape(x), axis, keepdims) * _prod_others(x, axis)


NUMPY_PROD_OTHERS = """\
def cg_prod_others(x, perm, rows, inverse):
    t = np.reshape(np.transpose(x, perm), rows)  # each reduction's entries in a row
    ones = np.ones(t.shape[:-1] + (1,))
    left = np.cumprod(np.concatenate([ones, t[..., :-1]], axis=-1), axis=-1)
    right = np.flip(np.cumprod(np.concatenate([ones, np.flip(t, -1)[..., :-1]], axis=-1), axis=-1), -1)
    return np.transpose(np.reshape(left * right, np.transpose(x, perm).shape), inverse)
"""

TORCH_PROD_OTHERS = """\
def cg_prod_others(x, perm, rows, inverse):
    t = torch.reshape(torch.permute(x, perm), rows)  # each reduction's entries in a row
    ones = torch.ones(t.shape[:-1] + (1,), dtype=torch.float64)
    left = torch.cumprod(torch.cat([ones, t[..., :-1]], dim=-1), dim=-1)
    right = torch.flip(torch.cumprod(torch.cat([ones, torch.flip(t, (-1,))[..., :-1]], dim=-1), dim=-1), (-1,))
    return torch.permute(torch.reshape(left * right, torch.permute(x, perm).shape), inverse)
"""


def _prod_others_layout(site) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """The permutation that moves the reduced axes last, the rows' shape, and the inverse permutation."""
    shape = site.shapes[0]
    axes = norm_axes(site.attrs.get("axis"), len(shape))
    axes = tuple(range(len(shape))) if axes is None else axes
    perm = tuple(i for i in range(len(shape)) if i not in axes) + tuple(axes)
    lead = tuple(shape[i] for i in perm[: len(shape) - len(axes)])
    rows = lead + (int(np.prod([shape[i] for i in axes], dtype=np.int64)),)
    return perm, rows, tuple(int(i) for i in np.argsort(perm))


def _prod_others_code(m: str):
    def write(site: Site) -> str:
        x = site.xs[0]
        if not site.shapes[0]:
            return f"{m}.ones_like({x})"
        if math.prod(site.shapes[0]) == 0:
            return f"{m}.zeros_like({x})"
        perm, rows, inverse = _prod_others_layout(site)
        return f"cg_prod_others({x}, {perm}, {rows}, {inverse})"

    return write


def _onnx_prod_others(site) -> str:
    """Each row of entries repeated k times with the diagonal set to 1, then multiplied along the row."""
    x = site.xs[0]
    if not site.shapes[0]:
        return site.node("Identity", [site.number(1.0)])
    if math.prod(site.shapes[0]) == 0:
        return site.node("Identity", [site.array(np.zeros(site.shapes[0]))])
    perm, rows, inverse = _prod_others_layout(site)
    k = rows[-1]
    t = site.node("Reshape", [site.node("Transpose", [x], perm=list(perm)), site.ints(list(rows))])
    square = site.node("Expand", [site.node("Unsqueeze", [t, site.ints([-2])]), site.ints([*rows[:-1], k, k])])
    eye = site.node("Equal", [site.array(np.eye(k)), site.number(1.0)])
    out = site.node("ReduceProd", [site.node("Where", [eye, site.number(1.0), square]), site.ints([-1])], keepdims=0)
    moved = tuple(site.shapes[0][i] for i in perm)
    return site.node("Transpose", [site.node("Reshape", [out, site.ints(list(moved))])], perm=list(inverse))


def _has_zero(xs, ans, attrs, eps) -> bool:
    return near_zero_any(np.asarray(xs[0], dtype=np.float64), eps)


# -- VJP texts ------------------------------------------------------------------------------------------


def _count(attrs, shapes) -> int:
    return reduced_count(shapes[0], attrs.get("axis"))


def _sum_vjp_text(k, U, L, A, at, sh):
    axis = at.get("axis")
    if axis is None:
        return (f"{U} · 𝟙", f"{fmt_shape(sh[-1])} → {fmt_shape(sh[0])}")
    return (f"{U} repeated along axis {fmt_keyword(axis)}", f"{fmt_shape(sh[-1])} → {fmt_shape(sh[0])}")


def _mean_vjp_text(k, U, L, A, at, sh):
    f, s = _sum_vjp_text(k, U, L, A, at, sh)
    return (f"{f} / {_count(at, sh)}", s)


def _n_minus_ddof(at, sh) -> str:
    n = _count(at, sh)
    ddof = at.get("ddof", 0)
    return str(n - ddof)


def _centered(L, at) -> str:
    mean = keyword_call("mean", L, {"axis": at["axis"]} if at.get("axis") is not None else {}, REDUCE_DEFAULTS)
    return f"({L[0]} - {mean})"


def _extreme(name: str, which: str, f, onnx: str) -> Op:
    return Op(
        name,
        lambda x, axis=None, keepdims=False: f(x, axis=axis, keepdims=keepdims),
        (_reduce_extreme_vjp,),
        extreme_shape,
        1,
        which,
        carry=CARRIES_GRAD,  # max([-inf, 0]) = 0; the VJP is g times a 0/1 mask
        jvp=Derive.REDUCTION,
        call=which,
        calls=(Call(which, 1, 1, keywords=REDUCE_KEYWORDS, doc=f"the {which}imum entry (ties share the gradient)"),),
        **_texts(which),
        local=lambda k, L, A, at, sh: f"[{L[0]} = {call(which, L[0])}]",
        vjp_text=lambda k, U, L, A, at, sh: (f"{U} · [{L[0]} = {call(which, L[0])}]{_along(at)} (ties share)", None),
        rows=Rows(lambda x, axis=None, keepdims=False: x, (_extreme_rows_vjp,)),
        kink=Kink(
            _reduce_ties,
            f"{which} is not differentiable at a tie (cgraph splits the gradient evenly)",
            "a tie: the gradient is split evenly",
        ),
        test_shapes=((4,),),
        lower=reduction(
            which,
            "a" + which,
            onnx,
            note=f"torch.{which}(x, dim) sends the gradient to one of tied entries; torch.a{which} splits it evenly, "
            "as cgraph does",
        ),
    )


# -- how other engines write them (cgraph export) --------------------------------------------


def _keywords(site: Site, *, axis_word: str = "axis", keep_word: str = "keepdims", extra: str = "") -> str:
    """``, axis=(0, 1), keepdims=True`` as the site's attributes say (nothing for the defaults)."""
    out = ""
    axis = site.attrs.get("axis")
    if axis is not None:
        out += f", {axis_word}={axis!r}"
    if site.attrs.get("keepdims"):
        out += f", {keep_word}=True"
    return out + extra


def _torch_dims(site: Site) -> str:
    """``, dim=(0, 1)[, keepdim=True]``: every axis when there is no ``axis`` (nothing for a 0-d operand)."""
    nd = len(site.shapes[0])
    if nd == 0:
        return ""
    axes = norm_axes(site.attrs.get("axis"), nd)
    axes = tuple(range(nd)) if axes is None else axes
    return f", dim={axes!r}" + (", keepdim=True" if site.attrs.get("keepdims") else "")


def reduction(fn: str, torch_fn: str, onnx: str | None, *, note: str | None = None) -> Lower:
    """A reduction over ``axis`` (None: all) with ``keepdims``: ``{m}.fn``, ``torch.torch_fn`` and an ONNX
    ``Reduce*`` operator."""
    return Lower(
        array=Code(lambda site: f"{site.m}.{fn}({site.xs[0]}{_keywords(site)})"),
        torch=Code(lambda site: f"torch.{torch_fn}({site.xs[0]}{_torch_dims(site)})", note=note),
        onnx=(lambda site: onnx_reduce(site, onnx, site.xs[0])) if onnx else None,
    )


def onnx_reduce(site, op_type: str, x: str, keepdims: bool | None = None) -> str:
    """An ONNX ``Reduce*`` over the site's axes (a 0-d operand is its own reduction)."""
    nd = len(site.shapes[0])
    if nd == 0:
        return site.node("Identity", [x])
    axes = norm_axes(site.attrs.get("axis"), nd)
    axes = tuple(range(nd)) if axes is None else axes
    kd = site.attrs.get("keepdims", False) if keepdims is None else keepdims
    return site.node(op_type, [x, site.ints(list(axes))], keepdims=int(bool(kd)))


def _site_count(site) -> float:
    return float(reduced_count(site.shapes[0], site.attrs.get("axis")))


def _mean_onnx(site) -> str:
    """sum / n, as cgraph computes the mean."""
    return site.node("Div", [onnx_reduce(site, "ReduceSum", site.xs[0]), site.number(_site_count(site))])


def _logsumexp_onnx(site) -> str:
    """cgraph's formula: m = max (0 where not finite), log(sum(exp(x - m))) + m."""
    (x,) = site.xs
    if len(site.shapes[0]) == 0:
        return site.node("Identity", [x])
    m = onnx_reduce(site, "ReduceMax", x, keepdims=True)
    finite = site.node("Not", [site.node("Or", [site.node("IsInf", [m]), site.node("IsNaN", [m])])])
    m = site.node("Where", [finite, m, site.number(0.0)])
    total = onnx_reduce(site, "ReduceSum", site.node("Exp", [site.node("Sub", [x, m])]), keepdims=True)
    out = site.node("Add", [site.node("Log", [total]), m])
    return site.node("Reshape", [out, site.ints(list(site.shape))])


def _variance_onnx(site) -> str:
    """cgraph's formula: the deviations from the mean (sum / n), squared, summed, over n - ddof."""
    (x,) = site.xs
    if len(site.shapes[0]) == 0:
        d = site.node("Sub", [x, x])
        return site.node("Div", [site.node("Mul", [d, d]), site.number(1.0 - site.attrs.get("ddof", 0))])
    n = _site_count(site)
    m = site.node("Div", [onnx_reduce(site, "ReduceSum", x, keepdims=True), site.number(n)])
    d = site.node("Sub", [x, m])
    total = onnx_reduce(site, "ReduceSum", site.node("Mul", [d, d]))
    return site.node("Div", [total, site.number(n - site.attrs.get("ddof", 0))])


def _ddof(site: Site, word: str = "ddof") -> str:
    ddof = site.attrs.get("ddof", 0)
    return f", {word}={ddof}" if ddof else ""


NUMPY_LOGSUMEXP = """\
def cg_logsumexp(x, axis=None, keepdims=False):
    out_shape = np.sum(x, axis=axis, keepdims=keepdims).shape
    if np.size(x) == 0:
        return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    s = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return s.reshape(out_shape)
"""

JAX_NORM = """\
def _cg_norm(x, axis, keepdims):
    return jnp.sqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=keepdims))


cg_norm = jax.custom_jvp(_cg_norm, nondiff_argnums=(1, 2))


@cg_norm.defjvp
def _cg_norm_jvp(axis, keepdims, primals, tangents):
    # x / norm(x), taken as 0 where the norm is 0 (PyTorch's convention)
    (x,), (t,) = primals, tangents
    n = _cg_norm(x, axis, True)
    unit = jnp.where(n == 0, 0.0, x / jnp.where(n == 0, 1.0, n))
    return cg_norm(x, axis, keepdims), jnp.sum(unit * t, axis=axis, keepdims=keepdims)
"""

JAX_STD = """\
def cg_std(x, axis=None, keepdims=False, ddof=0):
    v = jnp.var(x, axis=axis, keepdims=keepdims, ddof=ddof)
    # 0 where the variance is 0, where PyTorch takes std's derivative as 0 (sqrt'(0) would give nan)
    return jnp.where(v == 0, 0.0, jnp.sqrt(jnp.where(v == 0, 1.0, v)))
"""


def _norm_numpy(site: Site) -> str:
    x, p = site.xs[0], site.attrs.get("p", 2)
    if p == 1:
        return f"np.sum(np.abs({x}){_keywords(site)})"
    if p == np.inf:
        return f"np.max(np.abs({x}){_keywords(site)})"
    return f"np.sqrt(np.sum(np.square({x}){_keywords(site)}))"


def _norm_jax(site: Site) -> str:
    x, p = site.xs[0], site.attrs.get("p", 2)
    if p == 1:
        return f"jnp.sum(cg_abs({x}){_keywords(site)})"
    if p == np.inf:
        return f"jnp.max(cg_abs({x}){_keywords(site)})"
    return f"cg_norm({x}, {site.attrs.get('axis')!r}, {bool(site.attrs.get('keepdims'))})"


def _norm_torch(site: Site) -> str:
    p = site.attrs.get("p", 2)
    order = "" if p == 2 else (", ord=torch.inf" if p == np.inf else f", ord={p}")
    return f"torch.linalg.vector_norm({site.xs[0]}{order}{_torch_dims(site)})"


def _norm_onnx(site) -> str:
    x, p = site.xs[0], site.attrs.get("p", 2)
    if p == 1:
        return onnx_reduce(site, "ReduceSum", site.node("Abs", [x]))
    if p == np.inf:
        return onnx_reduce(site, "ReduceMax", site.node("Abs", [x]))
    return site.node("Sqrt", [onnx_reduce(site, "ReduceSum", site.node("Mul", [x, x]))])


def _torch_prod(site: Site) -> str:
    """torch.prod reduces one dim at a time: the highest first, so the lower ones keep their numbers."""
    x, nd = site.xs[0], len(site.shapes[0])
    axes = norm_axes(site.attrs.get("axis"), nd)
    keepdim = ", keepdim=True" if site.attrs.get("keepdims") else ""
    if axes is None:
        if site.attrs.get("keepdims") and nd:
            return f"torch.reshape(torch.prod({x}), {site.shape})"
        return f"torch.prod({x})"
    for a in sorted(axes, reverse=True):
        x = f"torch.prod({x}, dim={a}{keepdim})"
    return x


_NORM_LOWER = Lower(
    numpy=Code(_norm_numpy),
    jax=Code(
        _norm_jax,
        (JAX_NORM, JAX_ABS),
        "jnp.linalg.norm's derivative at the zero vector is nan and jnp.abs's at 0 is 1; cg_norm and cg_abs "
        "have custom JVPs that take them as 0, as PyTorch does",
    ),
    torch=Code(_norm_torch),
    onnx=_norm_onnx,
)

_LOGSUMEXP_LOWER = Lower(
    numpy=Code(lambda site: f"cg_logsumexp({site.xs[0]}{_keywords(site)})", (NUMPY_LOGSUMEXP,)),
    jax=Code(lambda site: f"jax.nn.logsumexp({site.xs[0]}{_keywords(site)})"),
    torch=Code(
        lambda site: (
            f"torch.logsumexp({site.xs[0]}.reshape(-1), dim=0)"
            if not site.shapes[0]
            else f"torch.logsumexp({site.xs[0]}{_torch_dims(site)})"
        )
    ),
    onnx=_logsumexp_onnx,
)

_VAR_LOWER = Lower(
    array=Code(lambda site: f"{site.m}.var({site.xs[0]}{_keywords(site, extra=_ddof(site))})"),
    torch=Code(lambda site: f"torch.var({site.xs[0]}{_torch_dims(site)}, correction={site.attrs.get('ddof', 0)})"),
    onnx=_variance_onnx,
)

_STD_LOWER = Lower(
    numpy=Code(lambda site: f"np.std({site.xs[0]}{_keywords(site, extra=_ddof(site))})"),
    jax=Code(
        lambda site: f"cg_std({site.xs[0]}{_keywords(site, extra=_ddof(site))})",
        (JAX_STD,),
        "jnp.std's derivative where all entries are equal is nan (sqrt'(0)); cg_std takes it as 0, as PyTorch does",
    ),
    torch=Code(lambda site: f"torch.std({site.xs[0]}{_torch_dims(site)}, correction={site.attrs.get('ddof', 0)})"),
    onnx=lambda site: site.node("Sqrt", [_variance_onnx(site)]),
)


RECORDS = [
    Op(
        "sum",
        lambda x, axis=None, keepdims=False: np.sum(x, axis=axis, keepdims=keepdims),
        (lambda g, ans, x, axis=None, keepdims=False: expand_reduced(g, np.shape(x), axis, keepdims),),
        reduce_shape,
        1,
        "sum",
        carry=CARRIES,
        jvp=Derive.LINEAR,
        calls=(_reduction_call("sum", "the sum of the entries"),),
        **_texts("sum"),
        local=lambda k, L, A, at, sh: "1",
        vjp_text=_sum_vjp_text,
        # (on a scalar numpy's sum is 0.0 + x: +0.0 for x = -0.0, so not the identity)
        rows=Rows(lambda x, axis=None, keepdims=False: x + 0.0, (lambda g, ans, x, axis=None, keepdims=False: g,)),
        kernel=Kernel.NP1,
        test_shapes=((2, 3),),
        test_attrs={"axis": 1},
        complex_step=True,
        numpy=np.sum,
        lower=reduction("sum", "sum", "ReduceSum"),
    ),
    Op(
        "mean",
        _mean_fwd,
        (_mean_vjp,),
        reduce_shape,
        1,
        "mean",
        carry=CARRIES,
        jvp=Derive.LINEAR,
        calls=(_reduction_call("mean", "the mean of the entries"),),
        **_texts("mean"),
        local=lambda k, L, A, at, sh: f"1/{_count(at, sh)}",
        vjp_text=_mean_vjp_text,
        rows=Rows(  # (numpy's mean of a scalar is (0.0 + x) / 1: +0.0 for x = -0.0)
            lambda x, axis=None, keepdims=False: (x + 0.0) / 1, (lambda g, ans, x, axis=None, keepdims=False: g / 1,)
        ),
        test_shapes=((2, 3),),
        test_attrs={"axis": 0},
        complex_step=True,
        lower=Lower(
            array=reduction("mean", "mean", None).array, torch=reduction("mean", "mean", None).torch, onnx=_mean_onnx
        ),
    ),
    _extreme("amax", "max", np.max, "ReduceMax"),
    _extreme("amin", "min", np.min, "ReduceMin"),
    Op(
        "logsumexp",
        _logsumexp,
        (_lse_vjp,),
        reduce_shape,
        1,
        "logsumexp",
        carry=CARRIES_GRAD,
        jvp=Derive.REDUCTION,
        calls=(_reduction_call("logsumexp", "log(sum(exp(x))), without overflow"),),
        **_texts("logsumexp"),
        local=lambda k, L, A, at, sh: call("softmax", L[0]),
        vjp_text=lambda k, U, L, A, at, sh: (f"{U} · {call('softmax', L[0])}{_along(at)}", None),
        rows=Rows(_lse_rows, (lambda g, ans, x, axis=None, keepdims=False: g * np.exp(x - ans),)),
        test_shapes=((5,),),
        complex_step=True,
        lower=_LOGSUMEXP_LOWER,
    ),
    Op(
        "norm",
        _norm,
        (_norm_vjp,),
        _norm_shape,
        1,
        "norm",
        carry=CARRIES,
        jvp=Derive.REDUCTION,
        calls=(Call("norm", 1, 1, keywords=(*REDUCE_KEYWORDS, "p"), doc="the p-norm: p=2 (default), 1 or inf"),),
        formula=lambda L, at: keyword_call("norm", L, at, NORM_DEFAULTS),
        label=lambda at: keyword_label("norm", at, NORM_DEFAULTS),
        local=_norm_local,
        vjp_text=lambda k, U, L, A, at, sh: (f"{U} · {paren(_norm_local(k, L, A, at, sh))}{_along(at)}", None),
        rows=Rows(_norm_rows, (_norm_rows_vjp,)),
        kink=Kink(
            _norm_kink,
            "norm is not differentiable at the zero vector, the 1-norm where an entry is 0 and the inf-norm at a tie "
            "of the largest magnitudes (cgraph takes PyTorch's gradient: 0, sign(0) = 0, split evenly)",
        ),
        grad_hint=lambda k, xs: "the derivative of norm(x) is x/norm(x), undefined at x = 0",
        test_shapes=((2, 3),),
        lower=_NORM_LOWER,
    ),
    Op(
        "prod",
        lambda x, axis=None, keepdims=False: np.prod(x, axis=axis, keepdims=keepdims),
        (_prod_vjp,),
        reduce_shape,
        1,
        "prod",
        carry=CARRIES,
        jvp=Derive.REDUCTION,
        calls=(_reduction_call("prod", "the product of the entries"),),
        **_texts("prod"),
        local=lambda k, L, A, at, sh: f"the product of the other entries of {L[0]}",
        vjp_text=lambda k, U, L, A, at, sh: (
            f"{U} · (the product of the other entries{_along(at)})",
            f"{fmt_shape(sh[-1])} → {fmt_shape(sh[0])}",
        ),
        rows=Rows(lambda x, axis=None, keepdims=False: x, (lambda g, ans, x, axis=None, keepdims=False: g,)),
        kernel=Kernel.ID,
        kink=Kink(
            _has_zero,
            "prod where an entry is 0: cgraph takes each entry's derivative as the product of the other entries "
            "(no division by the entry, as PyTorch)",
        ),
        domain=(0.5, 2.0),
        test_shapes=((2, 3),),
        test_attrs={"axis": 1},
        complex_step=True,
        lower=Lower(
            array=reduction("prod", "prod", None).array,
            torch=Code(_torch_prod),
            onnx=lambda site: onnx_reduce(site, "ReduceProd", site.xs[0]),
        ),
    ),
    Op(  # made only by prod's backward pass as graph nodes (ir/backward.py)
        "prod_others",
        _prod_others,
        (_prod_others_vjp,),
        lambda shapes, axis=None, **_: shapes[0],
        1,
        "Π≠",
        jvp=lambda ts, ans, x, axis=None: _prod_others_vjp(ts[0], ans, x, axis),
        label=lambda at: "Π≠" if at.get("axis") is None else f"Π≠{fmt_keyword(at['axis'])}",
        formula=lambda L, at: keyword_call("prod_others", L, at, {"axis": None}),
        local=lambda k, L, A, at, sh: f"the product of the entries of {L[0]} other than the two",
        vjp_text=lambda k, U, L, A, at, sh: (
            f"Σ over the others j of {U}_j · (the product of the entries other than i and j{_along(at)})",
            None,
        ),
        domain=(0.5, 2.0),
        test_shapes=((2, 3),),
        test_attrs={"axis": 1},
        complex_step=True,
        numpy=_prod_others,
        numpy_static=("axis",),
        lower=Lower(
            numpy=Code(_prod_others_code("np"), helpers=(NUMPY_PROD_OTHERS,)),
            jax=Code(_prod_others_code("jnp"), helpers=(NUMPY_PROD_OTHERS.replace("np.", "jnp."),)),
            torch=Code(_prod_others_code("torch"), helpers=(TORCH_PROD_OTHERS,)),
            onnx=_onnx_prod_others,
        ),
        internal=True,
    ),
    Op(
        "var",
        _var,
        (_var_vjp,),
        _var_shape,
        1,
        "var",
        carry=CARRIES,
        jvp=Derive.REDUCTION,
        calls=(_reduction_call("var", "the variance: divides by n - ddof (ddof=1: unbiased, as PyTorch)", ("ddof",)),),
        formula=lambda L, at: keyword_call("var", L, at, VAR_DEFAULTS, ("axis",)),
        label=lambda at: keyword_label("var", at, VAR_DEFAULTS),
        local=lambda k, L, A, at, sh: f"2 · {_centered(L, at)} / {_n_minus_ddof(at, sh)}",
        vjp_text=lambda k, U, L, A, at, sh: (
            f"{U} · 2 · {_centered(L, at)} / {_n_minus_ddof(at, sh)}",
            f"{fmt_shape(sh[-1])} → {fmt_shape(sh[0])}",
        ),
        rows=Rows(_var_rows, (_var_rows_vjp,)),
        hint=_spread_hint("var"),
        test_shapes=((2, 3),),
        test_attrs={"axis": 1, "ddof": 1},
        complex_step=True,
        lower=_VAR_LOWER,
    ),
    Op(
        "std",
        _std,
        (_std_vjp,),
        _var_shape,
        1,
        "std",
        carry=Carry(value=ALL),
        jvp=Derive.REDUCTION,
        calls=(_reduction_call("std", "the standard deviation, sqrt(var(x))", ("ddof",)),),
        formula=lambda L, at: keyword_call("std", L, at, VAR_DEFAULTS, ("axis",)),
        label=lambda at: keyword_label("std", at, VAR_DEFAULTS),
        local=lambda k, L, A, at, sh: f"{_centered(L, at)} / ({_n_minus_ddof(at, sh)} · {A})",
        vjp_text=lambda k, U, L, A, at, sh: (
            f"{U} · {_centered(L, at)} / ({_n_minus_ddof(at, sh)} · {A})",
            f"{fmt_shape(sh[-1])} → {fmt_shape(sh[0])}",
        ),
        rows=Rows(_std_rows, (_std_rows_vjp,)),
        kink=Kink(
            _zero_variance,
            "std is not differentiable where all entries are equal (cgraph takes its gradient as 0, as PyTorch)",
            "zero spread: the gradient is taken as 0",
        ),
        hint=_spread_hint("std"),
        test_shapes=((2, 3),),
        test_attrs={"axis": 0},
        lower=_STD_LOWER,
    ),
]
