"""Tensor ops: ``transpose``/``permute reshape expand_dims squeeze softmax log_softmax cumsum concat
stack diag trace outer``, indexing and tensor literals (``stack``)."""

from __future__ import annotations

import operator

import numpy as np

from cgraph_cli.fmt import fmt_index, fmt_shape
from cgraph_cli.ops.core import (
    ALL,
    CARRIES,
    CARRIES_GRAD,
    Call,
    Carry,
    Code,
    Derive,
    Kernel,
    Lower,
    Op,
    Rows,
    Site,
    index_shape,
    norm_axes,
    norm_axis,
    place,
    sum_to,
)
from cgraph_cli.ops.text import call, keyword_call, keyword_label, paren, transposed


def _perm(dims: tuple[int, ...], ndim: int) -> tuple[int, ...]:
    """transpose's ``dims``: () reverses the axes (numpy's default); otherwise a permutation of them."""
    if not dims:
        return tuple(reversed(range(ndim)))
    if len(dims) != ndim:
        raise ValueError(
            f"transpose needs a permutation of all {ndim} axes, got {len(dims)} ({', '.join(map(str, dims))})"
        )
    perm = tuple(norm_axis(d, ndim) for d in dims)
    if len(set(perm)) != ndim:
        raise ValueError(f"transpose({', '.join(map(str, dims))}) names an axis twice: not a permutation")
    return perm  # type: ignore[return-value]


def transpose_shape(shapes, dims=(), **_):
    s = shapes[0]
    return tuple(s[a] for a in _perm(dims, len(s)))


def _transpose(x, dims=()):
    return np.transpose(x, _perm(dims, np.ndim(x)))


def _transpose_vjp(g, ans, x, dims=()):
    return np.transpose(g, np.argsort(_perm(dims, np.ndim(x))))


def _inverse(dims: tuple[int, ...], ndim: int) -> tuple[int, ...]:
    """The permutation that undoes transpose(x, *dims) (the VJP's)."""
    return tuple(int(k) for k in np.argsort(_perm(dims, ndim)))


def _transpose_formula(L, at):
    dims = at.get("dims", ())
    if not dims:
        return transposed(L[0])
    return f"transpose({', '.join([L[0], *map(str, dims)])})"


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


def softmax_shape(shapes, axis=None, **_):
    """softmax(x) normalises along the last axis (none for a 0-d value); an explicit axis must exist."""
    norm_axes(axis, len(shapes[0]))
    return shapes[0]


def _softmax_axes(x, axis):
    return norm_axes(-1 if axis is None else axis, np.ndim(x))


def _softmax(x, axis=None):
    if np.ndim(x) == 0:
        return np.ones_like(x)
    if np.size(x) == 0:
        return np.zeros_like(x)
    axes = _softmax_axes(x, axis)
    m = np.max(x, axis=axes, keepdims=True)
    e = np.exp(x - np.where(np.isfinite(m), m, 0))
    return e / np.sum(e, axis=axes, keepdims=True)


def _softmax_vjp(g, ans, x, axis=None):
    if np.ndim(x) == 0:
        return np.zeros_like(g)
    return ans * (g - np.sum(g * ans, axis=_softmax_axes(x, axis), keepdims=True))


def _softmax_jvp(ts, ans, x, axis=None):
    """s ⊙ (t - Σ t ⊙ s) along the axes: the softmax's Jacobian is symmetric, so this is the VJP's form."""
    if np.ndim(x) == 0:
        return np.zeros_like(ts[0])
    return ans * (ts[0] - np.sum(ts[0] * ans, axis=_softmax_axes(x, axis), keepdims=True))


def _log_softmax_jvp(ts, ans, x, axis=None):
    """t - Σ t ⊙ exp(log_softmax(x)) along the axes (the adjoint of its VJP, g - exp(ans) ⊙ Σ g)."""
    if np.ndim(x) == 0:
        return ts[0] - np.exp(ans) * ts[0]
    return ts[0] - np.sum(ts[0] * np.exp(ans), axis=_softmax_axes(x, axis), keepdims=True)


def _lse_entries(x):
    """logsumexp of one entry, entry by entry (log_softmax of a 0-d value is x minus it: 0)."""
    m = np.where(np.isfinite(x), x, 0)
    return np.log(np.exp(x - m)) + m


def _log_softmax(x, axis=None):
    if np.ndim(x) == 0:
        return x - _lse_entries(x)
    if np.size(x) == 0:
        return np.zeros_like(x)
    axes = _softmax_axes(x, axis)
    m = np.max(x, axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    return x - (np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m)


def _log_softmax_vjp(g, ans, x, axis=None):
    if np.ndim(x) == 0:
        return g - np.exp(ans) * g
    return g - np.exp(ans) * np.sum(g, axis=_softmax_axes(x, axis), keepdims=True)


def _softmax_texts(fname: str) -> dict:
    return {
        "formula": lambda L, at: keyword_call(fname, L, at, {"axis": None}, ("axis",)),
        "label": lambda at: keyword_label(fname, at, {"axis": None}),
    }


# -- expand_dims, squeeze ---------------------------------------------------------------------------


def expand_dims_shape(shapes, axis=None, **_):
    s = shapes[0]
    if axis is None:
        raise ValueError("expand_dims needs the axis to insert: expand_dims(x, 0) or expand_dims(x, axis=0)")
    axes = axis if isinstance(axis, tuple) else (axis,)
    n = len(s) + len(axes)
    new = norm_axes(axes, n)
    assert new is not None
    rest = iter(s)
    return tuple(1 if i in new else next(rest) for i in range(n))


def squeeze_shape(shapes, axis=None, **_):
    s = shapes[0]
    axes = norm_axes(axis, len(s))
    if axes is None:
        return tuple(d for d in s if d != 1)
    for a in axes:
        if s[a] != 1:
            raise ValueError(f"cannot squeeze axis {a} of shape {fmt_shape(s)}: its length is {s[a]}, not 1")
    return tuple(d for i, d in enumerate(s) if i not in axes)


def _reshape_back(g, ans, x, **_):
    return np.reshape(g, np.shape(x))


# -- concat, stack ------------------------------------------------------------------------------------


def concat_shape(shapes, axis=0, **_):
    first = shapes[0]
    if any(len(s) == 0 for s in shapes):
        raise ValueError("concat joins tensors along an existing axis: a 0-d operand has none (stack makes one)")
    ax = norm_axis(axis, len(first))
    assert ax is not None
    for s in shapes[1:]:
        if len(s) != len(first) or s[:ax] + s[ax + 1 :] != first[:ax] + first[ax + 1 :]:
            raise ValueError(
                f"concat along axis {axis} needs the other axes to agree: shapes {fmt_shape(first)} and {fmt_shape(s)}"
            )
    return first[:ax] + (sum(s[ax] for s in shapes),) + first[ax + 1 :]


def _concat_vjp(ks, g, ans, args, axis=0):
    ends = np.cumsum([np.shape(a)[axis] for a in args])
    ax = axis % np.ndim(g)
    out = []
    for k in ks:
        start = int(ends[k - 1]) if k else 0
        sl = [slice(None)] * np.ndim(g)
        sl[ax] = slice(start, int(ends[k]))
        out.append(g[tuple(sl)])
    return out


def _stack_shape(shapes, axis=0, **_):
    first = shapes[0]
    for s in shapes[1:]:
        if s != first:
            raise ValueError(f"cannot stack items of different shapes {fmt_shape(first)} and {fmt_shape(s)}")
    ax = norm_axis(axis, len(first) + 1)
    assert ax is not None
    return first[:ax] + (len(shapes),) + first[ax:]


# -- diag, trace, outer -------------------------------------------------------------------------------


def diag_shape(shapes, **_):
    s = shapes[0]
    if len(s) == 1:
        return (s[0], s[0])
    if len(s) == 2:
        return (min(s),)
    raise ValueError(
        f"diag takes a vector (to a diagonal matrix) or a matrix (to its diagonal), not shape {fmt_shape(s)}"
    )


def _diag_vjp(g, ans, x):
    if np.ndim(x) == 1:
        return np.diag(g).copy()  # g's diagonal
    k = min(np.shape(x))
    return place(np.diag(g), np.shape(x), (slice(0, k), slice(0, k)))  # g on the diagonal of zeros


def trace_shape(shapes, **_):
    s = shapes[0]
    if len(s) != 2:
        raise ValueError(f"trace takes a matrix, not shape {fmt_shape(s)}")
    return ()


def outer_shape(shapes, **_):
    a, b = shapes
    if len(a) != 1 or len(b) != 1:
        raise ValueError(f"outer takes two vectors, not shapes {fmt_shape(a)} and {fmt_shape(b)}")
    return (a[0], b[0])


def _stack(*a, axis=0):
    """``np.stack(a, axis)``; along axis 0 that is ``np.array(a)`` of the operands (equal shapes, by the shape
    rule: the same copy in the same promoted dtype), which costs a tenth for small operands ([x, y, z] of
    scalars: 0.4 µs against 4)."""
    return np.array(a) if axis == 0 else np.stack(a, axis=axis)


def _index_vjp(g, ans, x, idx=()):
    """The gradient placed where the entries came from; an entry picked several times (``x[[0, 0]]``, integer
    arrays) gets the sum of its gradients (scatter-add): :func:`cgraph_cli.ops.core.place`."""
    return place(g, np.shape(x), idx)


def _sum_to_axes(site: Site) -> tuple[int, ...]:
    """The axes sum_to sums over: the leading ones its target lacks, then those it has as 1."""
    src, dst = site.shapes[0], tuple(site.attrs.get("shape", ()))
    extra = len(src) - len(dst)
    return tuple(range(extra)) + tuple(extra + i for i, d in enumerate(dst) if d == 1 and src[extra + i] != 1)


def _sum_to_code(sum_call: str, reshape: str):
    def write(site: Site) -> str:
        axes, x = _sum_to_axes(site), site.xs[0]
        if axes:
            x = sum_call.format(m=site.m, x=x, axes=axes)
        return reshape.format(m=site.m, x=x, shape=tuple(site.attrs.get("shape", ())))

    return write


def _sum_to_onnx(site) -> str:
    axes, x = _sum_to_axes(site), site.xs[0]
    if axes:
        x = site.node("ReduceSum", [x, site.ints(list(axes))], keepdims=1)
    return site.node("Reshape", [x, site.ints(list(site.attrs.get("shape", ())))])


NUMPY_PLACE = """\
def cg_place(g, shape, idx):
    out = np.zeros(shape)
    np.add.at(out, idx, g)  # an entry picked several times gets the sum of its gradients
    return out
"""

TORCH_PLACE = """\
def cg_place(g, shape, idx):
    out = torch.zeros(shape, dtype=torch.float64)
    return torch.index_put(out, idx, torch.broadcast_to(g, out[idx].shape), accumulate=True)
"""


def _jax_subscript(idx: tuple) -> str:
    """An index as jax.numpy takes it: integer arrays as arrays (JAX refuses a list)."""
    parts = [f"jnp.array({i.tolist()})" if isinstance(i, np.ndarray) else fmt_index((i,))[1:-1] for i in idx]
    return f"[{', '.join(parts)}]"


def _place_array(site: Site) -> str:
    """numpy: zeros with ``g`` added at the index (``np.s_`` writes the index as the program does); jax.numpy:
    the same with ``.at[idx].add``."""
    shape, idx = tuple(site.attrs.get("shape", ())), site.attrs.get("idx", ())
    if site.m == "jnp":
        return f"jnp.zeros({shape}).at{_jax_subscript(idx)}.add({site.xs[0]})"
    return f"cg_place({site.xs[0]}, {shape}, np.s_{fmt_index(idx)})"


def _torch_place(site: Site) -> str:
    """The entries' positions as integer tensors (torch has no negative slice steps), then a scatter-add."""
    shape = tuple(site.attrs.get("shape", ()))
    idx = _expanded(site.attrs.get("idx", ()), len(shape))
    if any(isinstance(i, np.ndarray) for i in idx):
        positions = np.indices(shape)[(slice(None), *idx)]  # each picked entry's coordinates, in g's shape
        picked = ", ".join(f"torch.tensor({p.tolist()})" for p in positions)
        return f"cg_place({site.xs[0]}, {shape}, ({picked},))"
    return f"cg_place({site.xs[0]}, {shape}, {_torch_subscript(idx, shape)})"


def _torch_subscript(idx: tuple, shape) -> str:
    """A basic index as torch.index_put takes it: one integer tensor per axis, broadcasting as numpy picks."""
    entries = _axes_entries(idx, shape)
    kept = [ax for ax, r in entries if isinstance(r, range)]
    parts = []
    for ax, r in entries:
        if isinstance(r, range):
            view = [1] * len(kept)
            view[kept.index(ax)] = len(r)
            parts.append(f"torch.tensor({list(r)}).reshape({tuple(view)})")
        else:
            parts.append(f"torch.tensor({r})")
    return f"({', '.join(parts)},)"


def _onnx_place(site) -> str:
    """ScatterND with reduction add of ``g`` into zeros at the flat positions of the picked entries."""
    shape = tuple(site.attrs.get("shape", ()))
    idx = site.attrs.get("idx", ())
    size = int(np.prod(shape, dtype=np.int64))
    positions = np.arange(size, dtype=np.int64).reshape(shape)[idx]
    flat = site.node("Reshape", [site.xs[0], site.ints([-1])])
    zeros = site.array(np.zeros(size))
    spots = site.ints(np.reshape(positions, (-1, 1)))
    return site.node("Reshape", [site.node("ScatterND", [zeros, spots, flat], reduction="add"), site.ints(list(shape))])


def _checked_broadcast(small, big):
    """``big`` if ``small`` broadcasts to it (else a ValueError naming both)."""
    try:
        fits = tuple(np.broadcast_shapes(small, big)) == big
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"shape {fmt_shape(small)} cannot be broadcast to {fmt_shape(big)}")
    return big


def cumsum_shape(shapes, axis=None, **_):
    s = shapes[0]
    if axis is None:
        return (int(np.prod(s, dtype=np.int64)),)
    if isinstance(axis, tuple):
        raise ValueError(f"cumsum runs along one axis, not {fmt_shape(axis)}")
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


def _transpose_array(site: Site) -> str:
    dims = site.attrs.get("dims", ())
    if not dims:
        return f"{site.m}.transpose({site.xs[0]})"
    return f"{site.m}.transpose({site.xs[0]}, {_perm(dims, len(site.shapes[0]))})"


def _torch_transpose(site: Site) -> str:
    perm = _perm(site.attrs.get("dims", ()), len(site.shapes[0]))
    if perm == tuple(range(len(perm))):
        return site.xs[0]
    return f"torch.permute({site.xs[0]}, {perm})"


def _expanded(idx: tuple, ndim: int) -> tuple:
    """``idx`` with its ``...`` (made by VJPs such as matmul's ``r[..., 0]``) written as the whole axes it
    stands for."""
    if not any(i is Ellipsis for i in idx):
        return idx
    k = next(n for n, i in enumerate(idx) if i is Ellipsis)
    return idx[:k] + (slice(None),) * (ndim - len(idx) + 1) + idx[k + 1 :]


def _axes_entries(idx: tuple, shape) -> list[tuple[int, range | int]]:
    """Each indexed axis of an operand of ``shape`` with the entries it keeps: an int (the axis goes away)
    or a range (normalised, possibly with a negative step)."""
    out: list[tuple[int, range | int]] = []
    for ax, i in enumerate(idx):
        n = shape[ax]
        out.append((ax, range(*i.indices(n)) if isinstance(i, slice) else i % n))
    return out


def _torch_index(site: Site) -> str:
    """Basic indexing; torch has no negative slice step, so such an axis is flipped first (the same entries
    in the same order)."""
    idx = _expanded(site.attrs.get("idx", ()), len(site.shapes[0]))
    entries = _axes_entries(idx, site.shapes[0])
    flip = [ax for ax, r in entries if isinstance(r, range) and r.step < 0]
    if not flip:
        return f"{site.xs[0]}{fmt_index(idx)}"
    parts: list = []
    for ax, r in entries:
        if not isinstance(r, range) or r.step > 0:
            parts.append(idx[ax] if isinstance(r, range) else r)
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
    for ax, r in _axes_entries(_expanded(site.attrs.get("idx", ()), len(site.shapes[0])), site.shapes[0]):
        if isinstance(r, range) and r == range(site.shapes[0][ax]):
            continue  # the whole axis
        picked = site.ints(list(r) if isinstance(r, range) else r)
        out = site.node("Gather", [out, picked], axis=ax - removed)
        removed += not isinstance(r, range)
    return out if out != x else site.node("Identity", [x])


def _softmax_axis(site: Site):
    """The softmax's axis as written in code: -1 by default, an int or a tuple."""
    axis = site.attrs.get("axis")
    return -1 if axis is None else axis


def _onnx_softmax_axes(site) -> list[int]:
    axes = norm_axes(_softmax_axis(site), len(site.shapes[0]))
    assert axes is not None
    return list(axes)


def _onnx_log_sum_exp_kept(site, x: str) -> tuple[str, str]:
    """(m, log(sum(exp(x - m))) + m) over the softmax axes, kept: cgraph's formula (m = 0 where not finite)."""
    axes = site.ints(_onnx_softmax_axes(site))
    m = site.node("ReduceMax", [x, axes], keepdims=1)
    finite = site.node("Not", [site.node("Or", [site.node("IsInf", [m]), site.node("IsNaN", [m])])])
    m = site.node("Where", [finite, m, site.number(0.0)])
    return m, axes


def _onnx_softmax(site) -> str:
    (x,) = site.xs
    if len(site.shapes[0]) == 0:
        return site.node("Identity", [site.number(1.0)])
    m, axes = _onnx_log_sum_exp_kept(site, x)
    e = site.node("Exp", [site.node("Sub", [x, m])])
    return site.node("Div", [e, site.node("ReduceSum", [e, axes], keepdims=1)])


def _onnx_log_softmax(site) -> str:
    (x,) = site.xs
    if len(site.shapes[0]) == 0:
        return site.node("Sub", [x, x])
    m, axes = _onnx_log_sum_exp_kept(site, x)
    total = site.node("ReduceSum", [site.node("Exp", [site.node("Sub", [x, m])]), axes], keepdims=1)
    return site.node("Sub", [x, site.node("Add", [site.node("Log", [total]), m])])


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

NUMPY_LOG_SOFTMAX = """\
def cg_log_softmax(x, axis=-1):
    if np.ndim(x) == 0:
        m = np.where(np.isfinite(x), x, 0)
        return x - (np.log(np.exp(x - m)) + m)
    if np.size(x) == 0:
        return np.zeros_like(x)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    return x - (np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m)
"""


def _jax_softmax(site: Site) -> str:
    if len(site.shapes[0]) == 0:
        return f"jnp.ones_like({site.xs[0]})"
    return f"jax.nn.softmax({site.xs[0]}, axis={_softmax_axis(site)!r})"


def _jax_log_softmax(site: Site) -> str:
    if len(site.shapes[0]) == 0:
        return f"jnp.zeros_like({site.xs[0]})"
    return f"jax.nn.log_softmax({site.xs[0]}, axis={_softmax_axis(site)!r})"


def _torch_softmax(site: Site) -> str:
    x, axis = site.xs[0], _softmax_axis(site)
    if len(site.shapes[0]) == 0:
        return f"torch.ones_like({x})"
    if isinstance(axis, tuple):
        return f"torch.exp({x} - torch.logsumexp({x}, dim={axis}, keepdim=True))"
    return f"torch.softmax({x}, dim={axis})"


def _torch_log_softmax(site: Site) -> str:
    x, axis = site.xs[0], _softmax_axis(site)
    if len(site.shapes[0]) == 0:
        return f"torch.zeros_like({x})"
    if isinstance(axis, tuple):
        return f"{x} - torch.logsumexp({x}, dim={axis}, keepdim=True)"
    return f"torch.log_softmax({x}, dim={axis})"


def _torch_cumsum(site: Site) -> str:
    axis = site.attrs.get("axis")
    if axis is None:
        return f"torch.cumsum({site.xs[0]}.reshape(-1), dim=0)"
    return f"torch.cumsum({site.xs[0]}, dim={axis})"


def _array_cumsum(site: Site) -> str:
    axis = site.attrs.get("axis")
    return f"{site.m}.cumsum({site.xs[0]})" if axis is None else f"{site.m}.cumsum({site.xs[0]}, axis={axis})"


def _onnx_cumsum(site) -> str:
    (x,) = site.xs
    axis = site.attrs.get("axis")
    if axis is None:
        x, axis = site.node("Reshape", [x, site.ints([-1])]), 0
    return site.node("CumSum", [x, site.ints(axis)])


def _onnx_stack(site) -> str:
    axis = _stack_axis(site)
    return site.node("Concat", [site.node("Unsqueeze", [x, site.ints([axis])]) for x in site.xs], axis=axis)


def _stack_axis(site) -> int:
    return int(norm_axis(site.attrs.get("axis", 0), len(site.shapes[0]) + 1))  # type: ignore[arg-type]


def _with_axis(site: Site, word: str, default=0) -> str:
    axis = site.attrs.get("axis", default)
    return "" if axis == default else f", {word}={axis}"


def _onnx_diag(site) -> str:
    (x,) = site.xs
    s = site.shapes[0]
    if len(s) == 1:  # a vector on the diagonal of zeros
        n = s[0]
        eye = site.node("Equal", [site.array(np.eye(n)), site.number(1.0)])
        row = site.node("Unsqueeze", [x, site.ints([0])])
        return site.node("Where", [eye, site.node("Expand", [row, site.ints([n, n])]), site.number(0.0)])
    k = min(s)
    flat = site.node("Reshape", [x, site.ints([-1])])
    return site.node("Gather", [flat, site.ints([i * (s[1] + 1) for i in range(k)])], axis=0)


def _onnx_trace(site) -> str:
    s = site.shapes[0]
    flat = site.node("Reshape", [site.xs[0], site.ints([-1])])
    diagonal = site.node("Gather", [flat, site.ints([i * (s[1] + 1) for i in range(min(s))])], axis=0)
    return site.node("ReduceSum", [diagonal, site.ints([0])], keepdims=0)


def _onnx_outer(site) -> str:
    a, b = site.xs
    return site.node("Mul", [site.node("Unsqueeze", [a, site.ints([1])]), site.node("Unsqueeze", [b, site.ints([0])])])


RECORDS = [
    Op(
        "transpose",
        _transpose,
        (_transpose_vjp,),
        transpose_shape,
        1,
        "ᵀ",
        carry=CARRIES,
        jvp=Derive.LINEAR,
        calls=(
            Call("transpose", doc="the axes reversed (a matrix transposed)"),
            Call("transpose", 2, None, "dims", doc="the axes permuted: axis k of the result is axis dk of x"),
            Call("permute", 2, None, "dims", doc="transpose(x, d1, d2, ...)"),
        ),
        formula=_transpose_formula,
        label=lambda at: keyword_label("ᵀ", at, {"dims": ()}),
        local=lambda k, L, A, at, sh: "1",
        vjp_text=lambda k, U, L, A, at, sh: (
            transposed(U)
            if not at.get("dims")
            else _transpose_formula([U], {"dims": _inverse(at["dims"], len(sh[0]))}),
            f"{fmt_shape(sh[-1])} → {fmt_shape(sh[0])}",
        ),
        rows=Rows(lambda x, dims=(): x, (lambda g, ans, x, dims=(): g,)),
        kernel=Kernel.ID,
        test_shapes=((2, 3, 4),),
        test_attrs={"dims": (2, 0, 1)},
        complex_step=True,
        numpy=np.transpose,
        numpy_static=("dims",),
        lower=Lower(
            array=Code(_transpose_array),
            torch=Code(_torch_transpose),
            onnx=lambda site: site.node(
                "Transpose", site.xs, perm=list(_perm(site.attrs.get("dims", ()), len(site.shapes[0])))
            ),
        ),
    ),
    Op(
        "reshape",
        lambda x, dims=(): np.reshape(x, dims),
        (lambda g, ans, x, dims=(): np.reshape(g, np.shape(x)),),
        reshape_shape,
        1,
        "reshape",
        carry=CARRIES,
        jvp=Derive.LINEAR,
        calls=(
            Call(
                "reshape",
                2,
                None,
                "dims",
                doc="the entries in a new shape (one dk may be -1; reshape(x, ()) is a scalar)",
            ),
        ),
        local=lambda k, L, A, at, sh: "1",
        vjp_text=_shape_change_text(lambda U, at, sh: f"reshape({U}, {', '.join(str(d) for d in sh[0])})"),
        rows=Rows(lambda x, dims=(): x, (lambda g, ans, x, dims=(): g,)),
        kernel=Kernel.ID,
        test_shapes=((2, 3),),
        test_attrs={"dims": (3, 2)},
        complex_step=True,
        numpy=np.reshape,
        numpy_static=("dims",),
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
        jvp=_softmax_jvp,
        calls=(
            Call(
                "softmax", 1, 2, "axis", keywords=("axis",), doc="exp(x) / sum(exp(x)) along axis (default: the last)"
            ),
        ),
        **_softmax_texts("softmax"),
        local=lambda k, L, A, at, sh: "0",
        vjp_text=lambda k, U, L, A, at, sh: (f"{paren(A)} ⊙ ({U} - Σ({U} ⊙ {paren(A)}))", None),
        rows=Rows(lambda x, axis=None: np.ones_like(x), (lambda g, ans, x, axis=None: np.zeros_like(g),)),
        test_shapes=((2, 3),),
        complex_step=True,
        lower=Lower(
            numpy=Code(lambda site: f"cg_softmax({site.xs[0]}, axis={_softmax_axis(site)!r})", (NUMPY_SOFTMAX,)),
            jax=Code(_jax_softmax),
            torch=Code(_torch_softmax),
            onnx=_onnx_softmax,
        ),
    ),
    Op(
        "log_softmax",
        _log_softmax,
        (_log_softmax_vjp,),
        softmax_shape,
        1,
        "log_softmax",
        carry=CARRIES,
        jvp=_log_softmax_jvp,
        calls=(
            Call(
                "log_softmax", 1, 2, "axis", keywords=("axis",), doc="x - logsumexp(x) along axis (default: the last)"
            ),
        ),
        **_softmax_texts("log_softmax"),
        local=lambda k, L, A, at, sh: "0",
        vjp_text=lambda k, U, L, A, at, sh: (f"{U} - exp({A}) ⊙ Σ{U}", None),
        rows=Rows(
            lambda x, axis=None: x - _lse_entries(x),
            (lambda g, ans, x, axis=None: g - np.exp(ans) * g,),
        ),
        test_shapes=((2, 3),),
        test_attrs={"axis": 0},
        complex_step=True,
        lower=Lower(
            numpy=Code(
                lambda site: f"cg_log_softmax({site.xs[0]}, axis={_softmax_axis(site)!r})", (NUMPY_LOG_SOFTMAX,)
            ),
            jax=Code(_jax_log_softmax),
            torch=Code(_torch_log_softmax),
            onnx=_onnx_log_softmax,
        ),
    ),
    Op(
        "expand_dims",
        lambda x, axis=None: np.expand_dims(x, axis),
        (_reshape_back,),
        expand_dims_shape,
        1,
        "expand_dims",
        carry=CARRIES,
        jvp=Derive.LINEAR,
        calls=(Call("expand_dims", 1, 2, "axis", keywords=("axis",), doc="a new axis of length 1 at axis (required)"),),
        formula=lambda L, at: keyword_call("expand_dims", L, at, {}, ("axis",)),
        label=lambda at: keyword_label("expand_dims", at, {}),
        local=lambda k, L, A, at, sh: "1",
        vjp_text=_shape_change_text(lambda U, at, sh: f"reshape({U}, {', '.join(str(d) for d in sh[0])})"),
        test_shapes=((2, 3),),
        test_attrs={"axis": -1},
        complex_step=True,
        lower=Lower(
            array=Code(lambda site: f"{site.m}.reshape({site.xs[0]}, {site.shape})"),
            torch=Code(lambda site: f"torch.reshape({site.xs[0]}, {site.shape})"),
            onnx=lambda site: site.node("Reshape", [site.xs[0], site.ints(list(site.shape))]),
        ),
    ),
    Op(
        "squeeze",
        lambda x, axis=None: np.squeeze(x, axis),
        (_reshape_back,),
        squeeze_shape,
        1,
        "squeeze",
        carry=CARRIES,
        jvp=Derive.LINEAR,
        calls=(Call("squeeze", 1, 2, "axis", keywords=("axis",), doc="axes of length 1 removed (all, or axis)"),),
        formula=lambda L, at: keyword_call("squeeze", L, at, {"axis": None}, ("axis",)),
        label=lambda at: keyword_label("squeeze", at, {"axis": None}),
        local=lambda k, L, A, at, sh: "1",
        vjp_text=_shape_change_text(lambda U, at, sh: f"reshape({U}, {', '.join(str(d) for d in sh[0])})"),
        rows=Rows(lambda x, axis=None: x, (lambda g, ans, x, axis=None: g,)),
        kernel=Kernel.ID,
        test_shapes=((2, 1, 3),),
        test_attrs={"axis": 1},
        complex_step=True,
        lower=Lower(
            array=Code(lambda site: f"{site.m}.reshape({site.xs[0]}, {site.shape})"),
            torch=Code(lambda site: f"torch.reshape({site.xs[0]}, {site.shape})"),
            onnx=lambda site: site.node("Reshape", [site.xs[0], site.ints(list(site.shape))]),
        ),
    ),
    Op(
        "index",
        lambda x, idx=(): x[idx],
        (_index_vjp,),
        index_shape,
        1,
        "[]",
        carry=CARRIES_GRAD,
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
        numpy=operator.getitem,
        numpy_static=("idx",),
        lower=Lower(
            array=Code(lambda site: f"{site.xs[0]}{fmt_index(site.attrs.get('idx', ()))}"),
            jax=Code(lambda site: f"{site.xs[0]}{_jax_subscript(site.attrs.get('idx', ()))}"),
            torch=Code(_torch_index),
            onnx=_onnx_index,
        ),
    ),
    Op(
        "stack",
        _stack,
        lambda ks, g, ans, args, axis=0: [g[k] if axis == 0 else np.take(g, k, axis=axis) for k in ks],
        _stack_shape,
        None,
        "[ ]",
        carry=Carry(value=ALL),
        jvp=Derive.LINEAR,
        calls=(
            Call(
                "stack", 1, None, keywords=("axis",), doc="equal shapes joined along a new axis ([a, b] is stack(a, b))"
            ),
        ),
        formula=lambda L, at: (
            "[" + ", ".join(L) + "]" if not at.get("axis") else keyword_call("stack", L, at, {"axis": 0})
        ),
        label=lambda at: keyword_label("stack", at, {"axis": 0}),
        local=lambda k, L, A, at, sh: "1",
        vjp_text=lambda k, U, L, A, at, sh: (
            f"{U}[{k}]" if not at.get("axis") else f"{U}, entry {k} along axis {at['axis']}",
            f"{fmt_shape(sh[-1])} → {fmt_shape(sh[k])}",
        ),
        test_shapes=((2,), (2,)),
        complex_step=True,
        lower=Lower(
            array=Code(lambda site: f"{site.m}.stack([{', '.join(site.xs)}]{_with_axis(site, 'axis')})"),
            torch=Code(lambda site: f"torch.stack([{', '.join(site.xs)}]{_with_axis(site, 'dim')})"),
            onnx=_onnx_stack,
        ),
    ),
    Op(
        "concat",
        lambda *a, axis=0: np.concatenate(a, axis=axis),
        _concat_vjp,
        concat_shape,
        None,
        "concat",
        carry=Carry(value=ALL),
        jvp=Derive.LINEAR,
        calls=(Call("concat", 1, None, keywords=("axis",), doc="joined along an existing axis"),),
        formula=lambda L, at: keyword_call("concat", L, at, {"axis": 0}),
        label=lambda at: keyword_label("concat", at, {"axis": 0}),
        local=lambda k, L, A, at, sh: "1",
        vjp_text=lambda k, U, L, A, at, sh: (
            f"the part of {U} that came from operand {k + 1}",
            f"{fmt_shape(sh[-1])} → {fmt_shape(sh[k])}",
        ),
        test_shapes=((2, 3), (1, 3), (4, 3)),
        complex_step=True,
        lower=Lower(
            array=Code(lambda site: f"{site.m}.concatenate([{', '.join(site.xs)}]{_with_axis(site, 'axis')})"),
            torch=Code(lambda site: f"torch.cat([{', '.join(site.xs)}]{_with_axis(site, 'dim')})"),
            onnx=lambda site: site.node(
                "Concat",
                site.xs,
                axis=int(norm_axis(site.attrs.get("axis", 0), len(site.shapes[0]))),  # type: ignore[arg-type]
            ),
        ),
    ),
    Op(
        "diag",
        np.diag,
        (lambda g, ans, x: _diag_vjp(g, ans, x),),
        diag_shape,
        1,
        "diag",
        jvp=Derive.LINEAR,
        calls=(Call("diag", doc="a vector to a diagonal matrix; a matrix to its diagonal"),),
        local=lambda k, L, A, at, sh: "1",
        vjp_text=lambda k, U, L, A, at, sh: (
            call("diag", U) if len(sh[0]) == 1 else f"{U} placed on the diagonal of zeros{fmt_shape(sh[0])}",
            f"{fmt_shape(sh[-1])} → {fmt_shape(sh[0])}",
        ),
        test_shapes=((3,),),
        complex_step=True,
        numpy=np.diag,
        lower=Lower(array=Code("{m}.diag({0})"), torch=Code("torch.diag({0})"), onnx=_onnx_diag),
    ),
    Op(
        "trace",
        np.trace,
        (lambda g, ans, x: g * np.eye(*np.shape(x), dtype=np.result_type(g)),),
        trace_shape,
        1,
        "trace",
        carry=CARRIES_GRAD,
        jvp=Derive.LINEAR,
        calls=(Call("trace", doc="the sum of a matrix's diagonal"),),
        local=lambda k, L, A, at, sh: "I",
        vjp_text=lambda k, U, L, A, at, sh: (f"{U} · I", f"{fmt_shape(sh[-1])} → {fmt_shape(sh[0])}"),
        test_shapes=((3, 4),),
        complex_step=True,
        lower=Lower(array=Code("{m}.trace({0})"), torch=Code("torch.trace({0})"), onnx=_onnx_trace),
    ),
    Op(
        "outer",
        np.outer,
        (lambda g, ans, a, b: g @ b, lambda g, ans, a, b: np.swapaxes(g, 0, 1) @ a),
        outer_shape,
        2,
        "⊗",
        carry=CARRIES,
        jvp=Derive.BILINEAR,
        call="outer",
        calls=(Call("outer", 2, 2, doc="the matrix a_i · b_j of two vectors"),),
        ports=("a", "b"),
        local=lambda k, L, A, at, sh: L[1 - k],
        vjp_text=lambda k, U, L, A, at, sh: (
            f"{U} · {L[1]}" if k == 0 else f"{transposed(U)} · {L[0]}",
            f"{fmt_shape(sh[-1])} → {fmt_shape(sh[k])}",
        ),
        test_shapes=((3,), (4,)),
        complex_step=True,
        lower=Lower(array=Code("{m}.outer({0}, {1})"), torch=Code("torch.outer({0}, {1})"), onnx=_onnx_outer),
    ),
    Op(
        "cumsum",
        lambda x, axis=None: np.cumsum(x, axis=axis),
        (_cumsum_vjp,),
        cumsum_shape,
        1,
        "cumsum",
        carry=CARRIES,
        jvp=Derive.LINEAR,
        calls=(
            Call(
                "cumsum",
                1,
                2,
                "axis",
                keywords=("axis",),
                doc="running sums along axis (none: of the flattened entries)",
            ),
        ),
        local=lambda k, L, A, at, sh: "1",
        vjp_text=_cumsum_vjp_text,
        rows=None,  # a running sum along an axis: never entry by entry
        test_shapes=((2, 3),),
        test_attrs={"axis": 1},
        complex_step=True,
        numpy=np.cumsum,
        lower=Lower(array=Code(_array_cumsum), torch=Code(_torch_cumsum), onnx=_onnx_cumsum),
    ),
    # -- made only by the backward pass as graph nodes (ir/backward.py): each is the other's VJP
    Op(
        "broadcast_to",
        lambda x, shape=(): np.broadcast_to(x, shape),
        (lambda g, ans, x, shape=(): sum_to(g, np.shape(x)),),
        lambda shapes, shape=(), **_: _checked_broadcast(shapes[0], tuple(shape)),
        1,
        "⇱",
        carry=CARRIES,
        label=lambda at: f"⇱{fmt_shape(tuple(at['shape']))}",
        formula=lambda L, at: f"broadcast({L[0]}, {fmt_shape(tuple(at['shape']))})",
        local=lambda k, L, A, at, sh: "1",
        vjp_text=_shape_change_text(lambda U, at, sh: f"{U} summed to {fmt_shape(sh[0])}"),
        test_shapes=((3,),),
        test_attrs={"shape": (2, 3)},
        complex_step=True,
        numpy=np.broadcast_to,
        numpy_static=("shape",),
        lower=Lower(
            array=Code(lambda site: f"{site.m}.broadcast_to({site.xs[0]}, {tuple(site.attrs['shape'])})"),
            torch=Code(lambda site: f"torch.broadcast_to({site.xs[0]}, {tuple(site.attrs['shape'])})"),
            onnx=lambda site: site.node("Expand", [site.xs[0], site.ints(list(site.attrs["shape"]))]),
        ),
        jvp=Derive.LINEAR,
        internal=True,
    ),
    Op(
        "sum_to",
        sum_to,
        (lambda g, ans, x, shape=(): np.broadcast_to(g, np.shape(x)),),
        lambda shapes, shape=(), **_: (_checked_broadcast(tuple(shape), shapes[0]), tuple(shape))[1],
        1,
        "Σ⇲",
        carry=CARRIES,
        label=lambda at: f"Σ→{fmt_shape(tuple(at['shape']))}",
        formula=lambda L, at: f"sum_to({L[0]}, {fmt_shape(tuple(at['shape']))})",
        local=lambda k, L, A, at, sh: "1",
        vjp_text=_shape_change_text(lambda U, at, sh: f"{U} broadcast to {fmt_shape(sh[0])}"),
        test_shapes=((2, 3),),
        test_attrs={"shape": (3,)},
        complex_step=True,
        numpy=sum_to,
        numpy_static=("shape",),
        lower=Lower(
            array=Code(_sum_to_code("{m}.sum({x}, axis={axes}, keepdims=True)", "{m}.reshape({x}, {shape})")),
            torch=Code(_sum_to_code("torch.sum({x}, dim={axes}, keepdim=True)", "torch.reshape({x}, {shape})")),
            onnx=_sum_to_onnx,
        ),
        jvp=Derive.LINEAR,
        internal=True,
    ),
    Op(
        "place",
        place,
        (lambda g, ans, x, shape=(), idx=(): g[idx],),
        lambda shapes, shape=(), idx=(), **_: tuple(shape),
        1,
        "[]⁻¹",
        carry=Carry(value=ALL),
        label=lambda at: f"→{fmt_index(at.get('idx', ()))}",
        formula=lambda L, at: f"place({L[0]}, {fmt_index(at.get('idx', ()))})",
        local=lambda k, L, A, at, sh: "1",
        vjp_text=_shape_change_text(lambda U, at, sh: f"{U}{fmt_index(at.get('idx', ()))}"),
        test_shapes=((2,),),
        test_attrs={"shape": (3, 4), "idx": (slice(0, 2), 1)},
        complex_step=True,
        numpy=place,
        numpy_static=("shape", "idx"),
        lower=Lower(
            array=Code(_place_array),
            numpy=Code(_place_array, helpers=(NUMPY_PLACE,)),
            torch=Code(_torch_place, helpers=(TORCH_PLACE,)),
            onnx=_onnx_place,
        ),
        jvp=Derive.LINEAR,
        internal=True,
    ),
]
