"""Numpy code run on graph nodes: the op records' VJPs, unchanged, emitting the backward pass as nodes.

A :class:`Traced` value stands for a node of a graph being extended. It implements numpy's protocols
(``__array_ufunc__``, ``__array_function__``), Python's operators, indexing, ``.shape``/``.ndim``/``.dtype``,
so a record's VJP written for numpy arrays, such as ``lambda g, ans, a, b: g * b``, run on traced
operands records a ``mul`` node instead of multiplying: the same one fact computes the numeric
gradient (called on arrays by the engine) and builds the gradient as a graph (called on traced values
here), in the way HIPS autograd writes its VJPs in ``autograd.numpy`` so that they are differentiable
again. Which op a numpy function records is the records' own fact, their ``numpy`` field
(:data:`cgraph_cli.ops.NUMPY`); functions of the records' modules made with
:func:`cgraph_cli.ops.core.traceable` reach the tracer the same way.

A few numpy functions are not ops but are written here with others (numpy identities, no op facts):
``np.expand_dims`` is a reshape, ``np.swapaxes`` a transpose, ``np.flip`` an index with negative steps,
``np.sum(..., keepdims=True)`` a sum then a reshape; ``np.shape``, ``np.ndim``, ``np.result_type``
read the traced value's static shape and dtype.

Where the nodes go is the caller's :class:`Tape` (``ir/graph.py`` appends them to a graph through the
builder, which infers their shapes and folds operations on constants).
"""

from __future__ import annotations

import operator
from typing import Any, Protocol

import numpy as np

from cgraph_cli.ops import NUMPY


class NotTraceable(RuntimeError):
    """A VJP used numpy in a way the tracer cannot record (an internal error: the VJP must be rewritten)."""


class Tape(Protocol):
    dtype: Any

    def shape(self, node: int) -> tuple[int, ...]: ...

    def const(self, value: Any) -> int: ...

    def op(self, name: str, args: tuple[int, ...], attrs: dict | None) -> int: ...


class Traced:
    """A node of the graph a :class:`Tape` extends, used as a numpy array by the op records' VJPs."""

    __slots__ = ("tape", "node", "shape")
    __array_priority__ = 1000  # numpy defers to our operators
    __hash__ = object.__hash__

    def __init__(self, tape: Tape, node: int) -> None:
        self.tape = tape
        self.node = node
        self.shape = tuple(tape.shape(node))

    def __repr__(self) -> str:
        return f"Traced(%{self.node}, shape={self.shape})"

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.tape.dtype)

    @property
    def T(self) -> Traced:
        return np.transpose(self)

    # -- numpy's protocols
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or any(v is not None for v in kwargs.values()):
            raise NotTraceable(f"np.{ufunc.__name__}.{method}({', '.join(kwargs)}) on a traced value")
        return record(ufunc, inputs, {})

    def __array_function__(self, func, types, args, kwargs):
        return record(func, args, kwargs)

    @staticmethod
    def __cgraph_trace__(func, args, kwargs):  # cgraph_cli.ops.core.traceable
        return record(func, args, kwargs)

    def __array__(self, *_, **__):
        raise NotTraceable("a VJP turned a traced value into a numpy array (np.asarray, np.array)")

    def __bool__(self):
        raise NotTraceable("a VJP branches on a traced value (use np.where)")

    # -- Python's operators
    def __add__(self, o):
        return np.add(self, o)

    def __radd__(self, o):
        return np.add(o, self)

    def __sub__(self, o):
        return np.subtract(self, o)

    def __rsub__(self, o):
        return np.subtract(o, self)

    def __mul__(self, o):
        return np.multiply(self, o)

    def __rmul__(self, o):
        return np.multiply(o, self)

    def __truediv__(self, o):
        return np.divide(self, o)

    def __rtruediv__(self, o):
        return np.divide(o, self)

    def __pow__(self, o):
        return np.power(self, o)

    def __rpow__(self, o):
        return np.power(o, self)

    def __matmul__(self, o):
        return np.matmul(self, o)

    def __rmatmul__(self, o):
        return np.matmul(o, self)

    def __neg__(self):
        return np.negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return np.absolute(self)

    def __lt__(self, o):
        return np.less(self, o)

    def __le__(self, o):
        return np.less_equal(self, o)

    def __gt__(self, o):
        return np.greater(self, o)

    def __ge__(self, o):
        return np.greater_equal(self, o)

    def __eq__(self, o):  # type: ignore[override]
        return np.equal(self, o)

    def __ne__(self, o):  # type: ignore[override]
        return np.not_equal(self, o)

    def __getitem__(self, idx):
        return record(operator.getitem, (self, idx if isinstance(idx, tuple) else (idx,)), {})

    # -- ndarray methods the VJPs use
    def astype(self, dtype, copy: bool = True) -> Traced:
        return self  # a graph has one number type

    def copy(self) -> Traced:
        return self  # nodes are never written

    def sum(self, axis=None, keepdims: bool = False):
        return np.sum(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape):
        return np.reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape)


def _tape_of(args) -> Tape:
    for a in args:
        if isinstance(a, Traced):
            return a.tape
    raise NotTraceable("no traced operand")


def record(func, args, kwargs) -> Any:
    """Record ``func(*args, **kwargs)``: a numpy identity of :data:`_WRITTEN_WITH`, else the op whose
    ``numpy`` is ``func``."""
    written = _WRITTEN_WITH.get(func)
    if written is not None:
        return written(*args, **kwargs)
    return record_op(func, args, kwargs)


def record_op(func, args, kwargs) -> Any:
    op = NUMPY.get(func)
    name = getattr(func, "__name__", repr(func))
    if op is None:
        raise NotTraceable(f"{name} on a traced value: no op record has numpy={name}")
    n = func.nin if isinstance(func, np.ufunc) else op.arity
    if n is None:
        raise NotTraceable(f"{name}: a variadic op is recorded through a ufunc only")
    operands, static = args[:n], args[n:]
    if len(static) > len(op.numpy_static):
        raise NotTraceable(
            f"{name}: {len(static)} positional arguments after the operands, op '{op.name}' has names "
            f"for {len(op.numpy_static)}"
        )
    attrs = {k: _static(v) for k, v in zip(op.numpy_static, static)}
    attrs.update((k, _static(v)) for k, v in kwargs.items() if v is not None)
    tape = _tape_of(operands)
    ids = tuple(a.node if isinstance(a, Traced) else tape.const(_constant(a, tape)) for a in operands)
    return Traced(tape, tape.op(op.name, ids, attrs or None))


def _static(v: Any, top: bool = True) -> Any:
    """An attribute as the graph keeps it: tuples of ints; an array of ints given where a tuple is meant
    (``np.transpose(g, np.argsort(perm))``) as a tuple, but arrays inside an index stay arrays."""
    if top and isinstance(v, np.ndarray) and v.ndim == 1 and v.dtype.kind in "iu":
        return tuple(int(i) for i in v)
    if isinstance(v, (list, tuple)):
        return tuple(_static(x, False) for x in v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def _constant(v: Any, tape: Tape) -> Any:
    if isinstance(v, Traced):
        return v
    if np.ndim(v) == 0:
        return float(v)
    return np.asarray(v, dtype=tape.dtype)


# -- numpy functions written with others ---------------------------------------------------------------------------


def shape_of(x: Any) -> tuple[int, ...]:
    return x.shape if isinstance(x, Traced) else tuple(np.shape(x))


def _expand_dims(x, axis):
    s = list(shape_of(x))
    axes = axis if isinstance(axis, tuple) else (axis,)
    nd = len(s) + len(axes)
    for a in sorted(ax % nd for ax in axes):
        s.insert(a, 1)
    return np.reshape(x, tuple(s))


def _swapaxes(x, a, b):
    nd = len(shape_of(x))
    perm = list(range(nd))
    a, b = a % nd, b % nd
    perm[a], perm[b] = perm[b], perm[a]
    if perm == list(reversed(range(nd))):
        return np.transpose(x)
    return record_op(np.transpose, (x, tuple(perm)), {})


def _flip(x, axis=None):
    nd = len(shape_of(x))
    axes = range(nd) if axis is None else [a % nd for a in (axis if isinstance(axis, tuple) else (axis,))]
    return x[tuple(slice(None, None, -1) if d in axes else slice(None) for d in range(nd))]


def _take(x, indices, axis=None, **_):
    if axis is None or not isinstance(indices, (int, np.integer)):
        raise NotTraceable("np.take: only one whole-number index along an axis")
    nd = len(shape_of(x))
    return x[(slice(None),) * (axis % nd) + (int(indices),)]


def _sum(x, axis=None, dtype=None, out=None, keepdims=False, **_):
    s = shape_of(x)
    nd = len(s)
    if axis is None:
        r = record_op(np.sum, (x,), {})
        axes: tuple[int, ...] = tuple(range(nd))
    else:
        axes = tuple(sorted({a % nd for a in (axis if isinstance(axis, tuple) else (axis,))}))
        r = x
        for a in reversed(axes):  # the highest axis first: the lower ones keep their numbers
            r = record_op(np.sum, (r,), {"axis": a})
    if keepdims:
        r = np.reshape(r, tuple(1 if d in axes else n for d, n in enumerate(s)))
    return r


def _reshape(x, shape=None, *args, **kwargs):
    shape = kwargs.get("newshape", shape)
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    if shape == shape_of(x):
        return x
    return record_op(np.reshape, (x, shape), {})


def _broadcast_to(x, shape, **_):
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    if shape == shape_of(x):
        return x
    return record_op(np.broadcast_to, (x, shape), {})


def _like(fill: float):
    def make(x, dtype=None, **_):
        return np.full(shape_of(x), fill, dtype=dtype or (x.dtype if isinstance(x, Traced) else None))

    return make


def _result_type(*xs):
    return np.result_type(*(x.dtype if isinstance(x, Traced) else x for x in xs))


def _size(x, axis=None):
    s = shape_of(x)
    return int(np.prod(s, dtype=np.int64)) if axis is None else s[axis]


_WRITTEN_WITH = {
    np.shape: shape_of,
    np.ndim: lambda x: len(shape_of(x)),
    np.size: _size,
    np.result_type: _result_type,
    np.expand_dims: _expand_dims,
    np.swapaxes: _swapaxes,
    np.flip: _flip,
    np.take: _take,
    np.sum: _sum,
    np.reshape: _reshape,
    np.broadcast_to: _broadcast_to,
    np.zeros_like: _like(0.0),
    np.ones_like: _like(1.0),
}
