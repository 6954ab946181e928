"""Reductions: ``sum mean max min logsumexp norm`` of one tensor (over all entries or one axis)."""

from __future__ import annotations

import numpy as np

from cgraph_cli.fmt import fmt_shape
from cgraph_cli.ops.core import Call, Kernel, Kink, Op, Rows, expand_reduced, norm_axis, reduce_shape
from cgraph_cli.ops.text import call, paren


def extreme_shape(shapes, axis=None, **_):
    """max(x)/min(x): like any reduction, but an empty one has no value (as in numpy and PyTorch)."""
    s = shapes[0]
    ax = norm_axis(axis, len(s))
    if (0 in s) if ax is None else s[ax] == 0:
        raise ValueError(f"max/min of an empty tensor of shape {fmt_shape(s)} has no value")
    return reduce_shape(shapes, axis)


def _logsumexp(x, axis=None):
    if np.size(x) == 0:  # an empty sum: log(0) = -inf (scipy's logsumexp agrees)
        return np.log(np.sum(np.exp(x), axis=axis))
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    s = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return s.reshape(reduce_shape([np.shape(x)], axis=axis))


def _lse_rows(x, axis=None):
    m = np.where(np.isfinite(x), x, 0)
    return np.log(np.exp(x - m)) + m


def _reduce_extreme_vjp(g, ans, x, axis=None):
    mask = x == (ans if axis is None else np.expand_dims(ans, axis))
    count = np.sum(mask, axis=axis, keepdims=axis is not None).astype(np.result_type(g))
    return expand_reduced(g, np.shape(x), axis) * mask / count


def _extreme_rows_vjp(g, ans, x, axis=None):
    mask = x == ans
    return g * mask / mask.astype(np.result_type(g))  # float32 stays float32, as in _reduce_extreme_vjp


def _reduce_ties(xs, ans, attrs, eps) -> bool:
    x = np.asarray(xs[0], dtype=np.float64)
    a = np.asarray(ans, dtype=np.float64)
    axis = attrs.get("axis")
    if axis is not None and x.ndim:
        a = np.expand_dims(a, axis % x.ndim)
    close = np.abs(x - a) <= eps
    return bool(np.any(np.sum(close, axis=axis) > 1))


def _norm(x):
    return np.sqrt(np.sum(np.square(x)))


def _norm_vjp(g, ans, x):
    with np.errstate(divide="ignore", invalid="ignore"):
        return g * np.where(ans == 0, 0.0, x / np.where(ans == 0, 1.0, ans))


def _mean_fwd(x, axis=None):
    return np.sum(x, axis=axis) / (np.size(x) if axis is None else np.shape(x)[axis])


def _mean_vjp(g, ans, x, axis=None):
    n = np.size(x) if axis is None else np.shape(x)[axis]
    return expand_reduced(g, np.shape(x), axis) / n


def _count(attrs, shapes) -> int:
    s = shapes[0]
    return int(np.prod(s)) if attrs.get("axis") is None else s[attrs["axis"]]


def _sum_vjp_text(k, U, L, A, at, sh):
    axis = at.get("axis")
    if axis is None:
        return (f"{U} · 𝟙", f"() → {fmt_shape(sh[0])}")
    return (f"{U} repeated along axis {axis}", f"{fmt_shape(sh[-1])} → {fmt_shape(sh[0])}")


def _mean_vjp_text(k, U, L, A, at, sh):
    f, s = _sum_vjp_text(k, U, L, A, at, sh)
    return (f"{f} / {_count(at, sh)}", s)


def _extreme(name: str, which: str, f) -> Op:
    return Op(
        name,
        lambda x, axis=None: f(x, axis=axis),
        (_reduce_extreme_vjp,),
        extreme_shape,
        1,
        which,
        call=which,
        calls=(Call(which, 1, 1),),
        local=lambda k, L, A, at, sh: f"[{L[0]} = {call(which, L[0])}]",
        vjp_text=lambda k, U, L, A, at, sh: (f"{U} · [{L[0]} = {call(which, L[0])}] (ties share)", None),
        rows=Rows(lambda x, axis=None: x, (_extreme_rows_vjp,)),
        kink=Kink(
            _reduce_ties,
            f"{which} is not differentiable at a tie (cgraph splits the gradient evenly)",
            "a tie: the gradient is split evenly",
        ),
        test_shapes=((4,),),
    )


RECORDS = [
    Op(
        "sum",
        lambda x, axis=None: np.sum(x, axis=axis),
        (lambda g, ans, x, axis=None: expand_reduced(g, np.shape(x), axis),),
        reduce_shape,
        1,
        "sum",
        calls=(Call("sum", 1, 2, "axis"),),
        local=lambda k, L, A, at, sh: "1",
        vjp_text=_sum_vjp_text,
        rows=Rows(lambda x, axis=None: x, (lambda g, ans, x, axis=None: g,)),
        kernel=Kernel.ID,
        test_shapes=((2, 3),),
        test_attrs={"axis": 1},
        complex_step=True,
        numpy=np.sum,
    ),
    Op(
        "mean",
        _mean_fwd,
        (_mean_vjp,),
        reduce_shape,
        1,
        "mean",
        calls=(Call("mean", 1, 2, "axis"),),
        local=lambda k, L, A, at, sh: f"1/{_count(at, sh)}",
        vjp_text=_mean_vjp_text,
        rows=Rows(lambda x, axis=None: x / 1, (lambda g, ans, x, axis=None: g / 1,)),
        test_shapes=((2, 3),),
        test_attrs={"axis": 0},
        complex_step=True,
    ),
    _extreme("amax", "max", np.max),
    _extreme("amin", "min", np.min),
    Op(
        "logsumexp",
        _logsumexp,
        (
            lambda g, ans, x, axis=None: (
                expand_reduced(g, np.shape(x), axis) * np.exp(x - expand_reduced(ans, np.shape(x), axis))
            ),
        ),
        reduce_shape,
        1,
        "logsumexp",
        calls=(Call("logsumexp", 1, 2, "axis"),),
        local=lambda k, L, A, at, sh: call("softmax", L[0]),
        vjp_text=lambda k, U, L, A, at, sh: (f"{U} · {call('softmax', L[0])}", None),
        rows=Rows(_lse_rows, (lambda g, ans, x, axis=None: g * np.exp(x - ans),)),
        test_shapes=((5,),),
        complex_step=True,
    ),
    Op(
        "norm",
        _norm,
        (_norm_vjp,),
        reduce_shape,
        1,
        "norm",
        calls=(Call("norm"),),
        local=lambda k, L, A, at, sh: f"{paren(L[0])}/‖{L[0]}‖",
        vjp_text=lambda k, U, L, A, at, sh: (f"{U} · {paren(L[0])}/‖{L[0]}‖", None),
        rows=Rows(lambda x: np.sqrt(np.square(x)), (_norm_vjp,)),
        kink=Kink(
            lambda xs, ans, at, eps: float(np.abs(ans)) <= eps,
            "norm is not differentiable at the zero vector (cgraph takes its gradient as 0)",
        ),
        grad_hint=lambda k, xs: "the derivative of norm(x) is x/norm(x), undefined at x = 0",
        test_shapes=((2, 3),),
    ),
]
