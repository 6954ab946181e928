"""Tensor ops: ``transpose reshape softmax cumsum``, indexing and tensor literals (``stack``)."""

from __future__ import annotations

import numpy as np

from cgraph_cli.fmt import fmt_index, fmt_shape
from cgraph_cli.ops.core import Call, Derive, Kernel, Op, Rows, index_shape, norm_axis
from cgraph_cli.ops.text import paren, transposed


def transpose_shape(shapes, **_):
    return tuple(reversed(shapes[0]))


def reshape_shape(shapes, dims=(), **_):
    s = shapes[0]
    size = int(np.prod(s, dtype=np.int64))
    if sum(1 for d in dims if d == -1) > 1:
        raise ValueError("reshape: only one dimension can be -1")
    if any(d < -1 for d in dims):
        raise ValueError(f"reshape: negative dimension in {fmt_shape(dims)}")
    known = int(np.prod([d for d in dims if d != -1], dtype=np.int64))
    if -1 in dims:
        if known == 0 or size % known:
            raise ValueError(f"cannot reshape {fmt_shape(s)} into {fmt_shape(dims)}")
        dims = tuple(size // known if d == -1 else d for d in dims)
    elif known != size:
        raise ValueError(f"cannot reshape {fmt_shape(s)} ({size} elements) into {fmt_shape(dims)}")
    return tuple(dims)


def softmax_shape(shapes, axis=-1, **_):
    s = shapes[0]
    if len(s) > 0:
        norm_axis(axis, len(s))
    elif axis not in (-1, 0):
        raise ValueError(f"axis {axis} is out of range for a scalar")
    return s


def _softmax(x, axis=-1):
    if np.ndim(x) == 0:
        return np.ones_like(x)
    if np.size(x) == 0:
        return np.zeros_like(x)
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - np.where(np.isfinite(m), m, 0))
    return e / np.sum(e, axis=axis, keepdims=True)


def _softmax_vjp(g, ans, x, axis=-1):
    if np.ndim(x) == 0:
        return np.zeros_like(g)
    return ans * (g - np.sum(g * ans, axis=axis, keepdims=True))


def _softmax_jvp(ts, ans, x, axis=-1):
    """s ⊙ (t - Σ t ⊙ s) along the axis (the softmax's Jacobian is symmetric: the VJP's form)."""
    if np.ndim(x) == 0:
        return np.zeros_like(ts[0])
    return ans * (ts[0] - np.sum(ts[0] * ans, axis=axis, keepdims=True))


def _index_vjp(g, ans, x, idx=()):
    out = np.zeros(np.shape(x), dtype=np.result_type(g, x))
    out[idx] = g
    return out


def _stack_shape(shapes, **_):
    first = shapes[0]
    for s in shapes[1:]:
        if s != first:
            raise ValueError(f"tensor literal items have different shapes {fmt_shape(first)} and {fmt_shape(s)}")
    return (len(shapes),) + first


def cumsum_shape(shapes, axis=None, **_):
    s = shapes[0]
    if axis is None:
        return (int(np.prod(s, dtype=np.int64)),)
    norm_axis(axis, len(s))
    return s


def _cumsum_vjp(g, ans, x, axis=None):
    """Each entry of x feeds every later running sum: the gradient is the reversed running sum."""
    if axis is None:
        return np.flip(np.cumsum(np.flip(g))).reshape(np.shape(x))
    return np.flip(np.cumsum(np.flip(g, axis), axis=axis), axis)


def _cumsum_vjp_text(k, U, L, A, at, sh):
    along = "" if at.get("axis") is None else f" along axis {at['axis']}"
    return (f"the running sum of {U} from the end{along}", f"{fmt_shape(sh[-1])} → {fmt_shape(sh[0])}")


def _shape_change_text(what):
    return lambda k, U, L, A, at, sh: (what(U, at, sh), f"{fmt_shape(sh[-1])} → {fmt_shape(sh[0])}")


RECORDS = [
    Op(
        "transpose",
        np.transpose,
        (lambda g, ans, x: np.transpose(g),),
        transpose_shape,
        1,
        "ᵀ",
        jvp=Derive.LINEAR,
        calls=(Call("transpose"),),
        formula=lambda L, at: transposed(L[0]),
        local=lambda k, L, A, at, sh: "1",
        vjp_text=lambda k, U, L, A, at, sh: (transposed(U), f"{fmt_shape(sh[-1])} → {fmt_shape(sh[0])}"),
        rows=Rows(lambda x: x, (lambda g, ans, x: g,)),
        kernel=Kernel.ID,
        test_shapes=((2, 3),),
        complex_step=True,
    ),
    Op(
        "reshape",
        lambda x, dims=(): np.reshape(x, dims),
        (lambda g, ans, x, dims=(): np.reshape(g, np.shape(x)),),
        reshape_shape,
        1,
        "reshape",
        jvp=Derive.LINEAR,
        calls=(Call("reshape", 2, None, "dims"),),
        local=lambda k, L, A, at, sh: "1",
        vjp_text=_shape_change_text(lambda U, at, sh: f"reshape({U}, {', '.join(str(d) for d in sh[0])})"),
        rows=Rows(lambda x, dims=(): x, (lambda g, ans, x, dims=(): g,)),
        kernel=Kernel.ID,
        test_shapes=((2, 3),),
        test_attrs={"dims": (3, 2)},
        complex_step=True,
    ),
    Op(
        "softmax",
        _softmax,
        (_softmax_vjp,),
        softmax_shape,
        1,
        "softmax",
        jvp=_softmax_jvp,
        calls=(Call("softmax", 1, 2, "axis"),),
        local=lambda k, L, A, at, sh: "0",
        vjp_text=lambda k, U, L, A, at, sh: (f"{paren(A)} ⊙ ({U} - Σ({U} ⊙ {paren(A)}))", None),
        rows=Rows(lambda x, axis=-1: np.ones_like(x), (lambda g, ans, x, axis=-1: np.zeros_like(g),)),
        test_shapes=((2, 3),),
        complex_step=True,
    ),
    Op(
        "index",
        lambda x, idx=(): x[idx],
        (_index_vjp,),
        index_shape,
        1,
        "[]",
        jvp=Derive.LINEAR,
        formula=lambda L, at: f"{paren(L[0])}{fmt_index(at.get('idx', ()))}",
        label=lambda at: fmt_index(at["idx"]),
        local=lambda k, L, A, at, sh: "1",
        vjp_text=_shape_change_text(
            lambda U, at, sh: f"{U} placed at {fmt_index(at.get('idx', ()))} of zeros{fmt_shape(sh[0])}"
        ),
        test_shapes=((3, 4),),
        test_attrs={"idx": (slice(0, 2), 1)},
        complex_step=True,
    ),
    Op(
        "stack",
        lambda *a: np.stack(a),
        lambda ks, g, ans, args: [g[k] for k in ks],
        _stack_shape,
        None,
        "[ ]",
        jvp=Derive.LINEAR,
        formula=lambda L, at: "[" + ", ".join(L) + "]",
        local=lambda k, L, A, at, sh: "1",
        vjp_text=lambda k, U, L, A, at, sh: (f"{U}[{k}]", f"{fmt_shape(sh[-1])} → {fmt_shape(sh[k])}"),
        test_shapes=((2,), (2,)),
        complex_step=True,
    ),
    Op(
        "cumsum",
        lambda x, axis=None: np.cumsum(x, axis=axis),
        (_cumsum_vjp,),
        cumsum_shape,
        1,
        "cumsum",
        jvp=Derive.LINEAR,
        calls=(Call("cumsum", 1, 2, "axis"),),
        local=lambda k, L, A, at, sh: "1",
        vjp_text=_cumsum_vjp_text,
        rows=None,  # a running sum along an axis: never entry by entry
        test_shapes=((2, 3),),
        test_attrs={"axis": 1},
        complex_step=True,
    ),
]
