"""Tensor ops: ``transpose reshape softmax cumsum``, indexing and tensor literals (``stack``)."""

from __future__ import annotations

import operator

import numpy as np

from cgraph_cli.fmt import fmt_index, fmt_shape
from cgraph_cli.ops.core import Call, Kernel, Op, Rows, index_shape, norm_axis, place, sum_to
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


def _index_vjp(g, ans, x, idx=()):
    return place(g, np.shape(x), idx)


def _checked_broadcast(small, big):
    """``big`` if ``small`` broadcasts to it (else a ValueError naming both)."""
    try:
        fits = tuple(np.broadcast_shapes(small, big)) == big
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"shape {fmt_shape(small)} cannot be broadcast to {fmt_shape(big)}")
    return big


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
        calls=(Call("transpose"),),
        formula=lambda L, at: transposed(L[0]),
        local=lambda k, L, A, at, sh: "1",
        vjp_text=lambda k, U, L, A, at, sh: (transposed(U), f"{fmt_shape(sh[-1])} → {fmt_shape(sh[0])}"),
        rows=Rows(lambda x: x, (lambda g, ans, x: g,)),
        kernel=Kernel.ID,
        test_shapes=((2, 3),),
        complex_step=True,
        numpy=np.transpose,
    ),
    Op(
        "reshape",
        lambda x, dims=(): np.reshape(x, dims),
        (lambda g, ans, x, dims=(): np.reshape(g, np.shape(x)),),
        reshape_shape,
        1,
        "reshape",
        calls=(Call("reshape", 2, None, "dims"),),
        local=lambda k, L, A, at, sh: "1",
        vjp_text=_shape_change_text(lambda U, at, sh: f"reshape({U}, {', '.join(str(d) for d in sh[0])})"),
        rows=Rows(lambda x, dims=(): x, (lambda g, ans, x, dims=(): g,)),
        kernel=Kernel.ID,
        test_shapes=((2, 3),),
        test_attrs={"dims": (3, 2)},
        complex_step=True,
        numpy=np.reshape,
        numpy_static=("dims",),
    ),
    Op(
        "softmax",
        _softmax,
        (_softmax_vjp,),
        softmax_shape,
        1,
        "softmax",
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
        formula=lambda L, at: f"{paren(L[0])}{fmt_index(at.get('idx', ()))}",
        label=lambda at: fmt_index(at["idx"]),
        local=lambda k, L, A, at, sh: "1",
        vjp_text=_shape_change_text(
            lambda U, at, sh: f"{U} placed at {fmt_index(at.get('idx', ()))} of zeros{fmt_shape(sh[0])}"
        ),
        test_shapes=((3, 4),),
        test_attrs={"idx": (slice(0, 2), 1)},
        complex_step=True,
        numpy=operator.getitem,
        numpy_static=("idx",),
    ),
    Op(
        "stack",
        lambda *a: np.stack(a),
        lambda ks, g, ans, args: [g[k] for k in ks],
        _stack_shape,
        None,
        "[ ]",
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
        calls=(Call("cumsum", 1, 2, "axis"),),
        local=lambda k, L, A, at, sh: "1",
        vjp_text=_cumsum_vjp_text,
        rows=None,  # a running sum along an axis: never entry by entry
        test_shapes=((2, 3),),
        test_attrs={"axis": 1},
        complex_step=True,
        numpy=np.cumsum,
    ),
    # -- made only by the backward pass as graph nodes (ir/backward.py): each is the other's VJP
    Op(
        "broadcast_to",
        lambda x, shape=(): np.broadcast_to(x, shape),
        (lambda g, ans, x, shape=(): sum_to(g, np.shape(x)),),
        lambda shapes, shape=(), **_: _checked_broadcast(shapes[0], tuple(shape)),
        1,
        "⇱",
        label=lambda at: f"⇱{fmt_shape(tuple(at['shape']))}",
        formula=lambda L, at: f"broadcast({L[0]}, {fmt_shape(tuple(at['shape']))})",
        local=lambda k, L, A, at, sh: "1",
        vjp_text=_shape_change_text(lambda U, at, sh: f"{U} summed to {fmt_shape(sh[0])}"),
        test_shapes=((3,),),
        test_attrs={"shape": (2, 3)},
        complex_step=True,
        numpy=np.broadcast_to,
        numpy_static=("shape",),
        internal=True,
    ),
    Op(
        "sum_to",
        sum_to,
        (lambda g, ans, x, shape=(): np.broadcast_to(g, np.shape(x)),),
        lambda shapes, shape=(), **_: (_checked_broadcast(tuple(shape), shapes[0]), tuple(shape))[1],
        1,
        "Σ⇲",
        label=lambda at: f"Σ→{fmt_shape(tuple(at['shape']))}",
        formula=lambda L, at: f"sum_to({L[0]}, {fmt_shape(tuple(at['shape']))})",
        local=lambda k, L, A, at, sh: "1",
        vjp_text=_shape_change_text(lambda U, at, sh: f"{U} broadcast to {fmt_shape(sh[0])}"),
        test_shapes=((2, 3),),
        test_attrs={"shape": (3,)},
        complex_step=True,
        numpy=sum_to,
        numpy_static=("shape",),
        internal=True,
    ),
    Op(
        "place",
        place,
        (lambda g, ans, x, shape=(), idx=(): g[idx],),
        lambda shapes, shape=(), idx=(), **_: tuple(shape),
        1,
        "[]⁻¹",
        label=lambda at: f"→{fmt_index(at.get('idx', ()))}",
        formula=lambda L, at: f"place({L[0]}, {fmt_index(at.get('idx', ()))})",
        local=lambda k, L, A, at, sh: "1",
        vjp_text=_shape_change_text(lambda U, at, sh: f"{U}{fmt_index(at.get('idx', ()))}"),
        test_shapes=((2,),),
        test_attrs={"shape": (3, 4), "idx": (slice(0, 2), 1)},
        complex_step=True,
        numpy=place,
        numpy_static=("shape", "idx"),
        internal=True,
    ),
]
