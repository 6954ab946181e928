"""Tensor ops: ``transpose reshape softmax cumsum``, indexing and tensor literals (``stack``)."""

from __future__ import annotations

import numpy as np

from cgraph_cli.fmt import fmt_index, fmt_shape
from cgraph_cli.ops.core import Call, Code, Kernel, Lower, Op, Rows, Site, index_shape, norm_axis
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


# -- how other engines write them (cgraph export) --------------------------------------------


def _torch_transpose(site: Site) -> str:
    nd = len(site.shapes[0])
    if nd < 2:
        return site.xs[0]
    return f"torch.permute({site.xs[0]}, {tuple(reversed(range(nd)))})"


def _axes_entries(idx: tuple, shape) -> list[tuple[int, range | int]]:
    """Each indexed axis of an operand of ``shape`` with the entries it keeps: an int (the axis goes away)
    or a range (normalised, possibly with a negative step)."""
    out = []
    for ax, i in enumerate(idx):
        n = shape[ax]
        if isinstance(i, slice):
            out.append((ax, range(*i.indices(n))))
        else:
            out.append((ax, i % n))
    return out


def _torch_index(site: Site) -> str:
    """Basic indexing; torch has no negative slice step, so such an axis is flipped first (the same entries
    in the same order)."""
    idx = site.attrs.get("idx", ())
    entries = _axes_entries(idx, site.shapes[0])
    flip = [ax for ax, r in entries if isinstance(r, range) and r.step < 0]
    if not flip:
        return f"{site.xs[0]}{fmt_index(idx)}"
    parts = []
    for ax, r in entries:
        if not isinstance(r, range):
            parts.append(r)
        elif r.step > 0:
            parts.append(idx[ax])
        elif len(r) == 0:
            parts.append(slice(0, 0))
        else:  # entries start, start + step, ... of the axis are n-1-start, ... of the flipped axis
            n = site.shapes[0][ax]
            first, last = n - 1 - r[0], n - 1 - r[-1]
            parts.append(slice(first, last + 1, -r.step if r.step != -1 else None))
    return f"torch.flip({site.xs[0]}, {tuple(flip)}){fmt_index(tuple(parts))}"


def _onnx_index(site) -> str:
    """Basic indexing as one Gather per indexed axis (an int index removes its axis, as in numpy)."""
    (x,) = site.xs
    out, removed = x, 0
    for ax, r in _axes_entries(site.attrs.get("idx", ()), site.shapes[0]):
        if isinstance(r, range) and r == range(site.shapes[0][ax]):
            continue  # the whole axis
        picked = site.ints(r) if not isinstance(r, range) else site.ints(list(r))
        out = site.node("Gather", [out, picked], axis=ax - removed)
        removed += not isinstance(r, range)
    return out if out != x else site.node("Identity", [x])


def _array_axis_call(fn: str, default_axis=None):
    def write(site: Site) -> str:
        axis = site.attrs.get("axis", default_axis)
        return f"{site.m}.{fn}({site.xs[0]})" if axis is None else f"{site.m}.{fn}({site.xs[0]}, axis={axis})"

    return write


def _jax_softmax(site: Site) -> str:
    if len(site.shapes[0]) == 0:
        return f"jnp.ones_like({site.xs[0]})"
    return f"jax.nn.softmax({site.xs[0]}, axis={site.attrs.get('axis', -1)})"


def _torch_softmax(site: Site) -> str:
    if len(site.shapes[0]) == 0:
        return f"torch.ones_like({site.xs[0]})"
    return f"torch.softmax({site.xs[0]}, dim={site.attrs.get('axis', -1)})"


def _onnx_softmax(site) -> str:
    if len(site.shapes[0]) == 0:
        return site.node("Identity", [site.number(1.0)])
    return site.node("Softmax", [site.xs[0]], axis=site.attrs.get("axis", -1))


NUMPY_SOFTMAX = """\
def cg_softmax(x, axis=-1):
    if np.ndim(x) == 0:
        return np.ones_like(x)
    if np.size(x) == 0:
        return np.zeros_like(x)
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - np.where(np.isfinite(m), m, 0))
    return e / np.sum(e, axis=axis, keepdims=True)
"""


def _torch_cumsum(site: Site) -> str:
    axis = site.attrs.get("axis")
    if axis is None:
        return f"torch.cumsum({site.xs[0]}.reshape(-1), dim=0)"
    return f"torch.cumsum({site.xs[0]}, dim={axis})"


def _onnx_cumsum(site) -> str:
    (x,) = site.xs
    axis = site.attrs.get("axis")
    if axis is None:
        x, axis = site.node("Reshape", [x, site.ints([-1])]), 0
    return site.node("CumSum", [x, site.ints(axis)])


def _onnx_stack(site) -> str:
    zero = site.ints([0])
    return site.node("Concat", [site.node("Unsqueeze", [x, zero]) for x in site.xs], axis=0)


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
        lower=Lower(
            array=Code("{m}.transpose({0})"),
            torch=Code(_torch_transpose),
            onnx=lambda site: site.node("Transpose", site.xs, perm=list(reversed(range(len(site.shapes[0]))))),
        ),
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
        lower=Lower(
            array=Code(lambda site: f"{site.m}.reshape({site.xs[0]}, {site.shape})"),
            torch=Code(lambda site: f"torch.reshape({site.xs[0]}, {site.shape})"),
            onnx=lambda site: site.node("Reshape", [site.xs[0], site.ints(list(site.shape))]),
        ),
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
        lower=Lower(
            numpy=Code(lambda site: f"cg_softmax({site.xs[0]}, axis={site.attrs.get('axis', -1)})", (NUMPY_SOFTMAX,)),
            jax=Code(_jax_softmax),
            torch=Code(_torch_softmax),
            onnx=_onnx_softmax,
        ),
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
        lower=Lower(
            array=Code(lambda site: f"{site.xs[0]}{fmt_index(site.attrs.get('idx', ()))}"),
            torch=Code(_torch_index),
            onnx=_onnx_index,
        ),
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
        lower=Lower(array=Code("{m}.stack([{args}])"), torch=Code("torch.stack([{args}])"), onnx=_onnx_stack),
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
        lower=Lower(array=Code(_array_axis_call("cumsum")), torch=Code(_torch_cumsum), onnx=_onnx_cumsum),
    ),
]
