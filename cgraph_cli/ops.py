"""The op table: every op's forward function and vector-Jacobian products side by side.

Each :class:`Op` holds

- ``fwd(*args, **attrs)``: the forward computation on numpy values;
- ``vjp``: one function per operand, ``vjp[k](g, ans, *args, **attrs)`` returning
  ``g · ∂ans/∂args[k]`` in the shape of ``ans`` or of ``args[k]`` (the engine
  un-broadcasts it, in one place); ``None`` means "no gradient flows here".
  Variadic ops give a single function taking the operand index first, and
  ``vjp_many(ks, g, ans, args, **attrs)``, the VJPs of several operands at once
  in time linear in the number of operands (:meth:`Op.vjps` calls it);
- ``shape(shapes, **attrs)``: shape inference, raising ``ValueError`` with a
  readable message on a mismatch;
- test metadata (``domain``, ``test_shapes``) from which the finite-difference
  test of every op is generated, so an op added here is tested for free.

Kinks follow PyTorch: relu'(0) = 0, abs'(0) = 0, ties of max/min split evenly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Op:
    name: str
    fwd: Callable[..., Any]
    vjp: tuple[Callable[..., Any] | None, ...] | Callable[..., Any] | None
    shape: Callable[..., Shape]
    arity: int | None  # None: variadic, two or more operands
    symbol: str  # short label for pictures ("+", "*", "exp", ...)
    infix: bool = False  # shown as "a + b" rather than "f(a, b)"
    commutative: bool = False
    domain: tuple[float, float] = (-2.0, 2.0)  # where finite-difference tests sample operands
    test_shapes: tuple[Shape, ...] | None = None  # operand shapes for the generated tests
    test_attrs: dict | None = None
    vjp_many: Callable[..., list[Any]] | None = None  # variadic ops: the VJPs of operands ks at once

    def vjps(self, ks: list[int], g: Any, ans: Any, args: list[Any], attrs: dict | None = None) -> list[Any]:
        """``g · ∂ans/∂args[k]`` for each k in ``ks`` (None where no gradient flows), the same numbers as
        :meth:`vjp_for` gives one by one, but for a variadic op in one pass over its operands (``max`` of n
        operands: O(n), not O(n) per operand)."""
        attrs = attrs or {}
        if self.vjp_many is not None:
            return self.vjp_many(ks, g, ans, args, **attrs)
        out = []
        for k in ks:
            rule = self.vjp_for(k)
            out.append(None if rule is None else rule(g, ans, *args, **attrs))
        return out

    def vjp_for(self, k: int) -> Callable[..., Any] | None:
        """The VJP of operand ``k`` (None if no gradient flows to it)."""
        v = self.vjp
        if v is None:
            return None
        if callable(v):
            return lambda g, ans, *args, **attrs: v(k, g, ans, *args, **attrs)
        if k >= len(v):
            raise KeyError(f"op '{self.name}' has no gradient rule for operand {k}")
        return v[k]


# -- shape rules -------------------------------------------------------------------


def same_shape(shapes: list[Shape], **_: Any) -> Shape:
    return shapes[0]


def broadcast_shape(shapes: list[Shape], **_: Any) -> Shape:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        shown = " and ".join(fmt_shape(s) for s in shapes)
        raise ValueError(f"shapes {shown} cannot be broadcast together") from None


def fmt_shape(shape: Shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def matmul_shape(shapes: list[Shape], **_: Any) -> Shape:
    a, b = shapes
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"'@' needs operands with at least one dimension, got {fmt_shape(a)} and {fmt_shape(b)}")
    ka = a[-1]
    kb = b[0] if len(b) == 1 else b[-2]
    if ka != kb:
        raise ValueError(
            f"'@' cannot multiply shapes {fmt_shape(a)} and {fmt_shape(b)}: inner dimensions {ka} and {kb} differ"
        )
    batch_a = a[:-2] if len(a) > 1 else ()
    batch_b = b[:-2] if len(b) > 1 else ()
    try:
        batch = tuple(np.broadcast_shapes(batch_a, batch_b))
    except ValueError:
        raise ValueError(f"'@' cannot broadcast the batch dimensions of {fmt_shape(a)} and {fmt_shape(b)}") from None
    out = batch
    if len(a) > 1:
        out += (a[-2],)
    if len(b) > 1:
        out += (b[-1],)
    return out


def _norm_axis(axis: int | None, ndim: int) -> int | None:
    if axis is None:
        return None
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for a value with {ndim} dimension{'s' * (ndim != 1)}")
    return axis % ndim


def extreme_shape(shapes: list[Shape], axis: int | None = None, **_: Any) -> Shape:
    """max(x)/min(x): like any reduction, but an empty one has no value (as in numpy and PyTorch)."""
    s = shapes[0]
    ax = _norm_axis(axis, len(s))
    if (0 in s) if ax is None else s[ax] == 0:
        raise ValueError(f"max/min of an empty tensor of shape {fmt_shape(s)} has no value")
    return reduce_shape(shapes, axis)


def reduce_shape(shapes: list[Shape], axis: int | None = None, **_: Any) -> Shape:
    s = shapes[0]
    ax = _norm_axis(axis, len(s))
    if ax is None:
        return ()
    return s[:ax] + s[ax + 1 :]


def softmax_shape(shapes: list[Shape], axis: int = -1, **_: Any) -> Shape:
    s = shapes[0]
    if len(s) > 0:
        _norm_axis(axis, len(s))
    elif axis not in (-1, 0):
        raise ValueError(f"axis {axis} is out of range for a scalar")
    return s


def reshape_shape(shapes: list[Shape], dims: Shape = (), **_: Any) -> Shape:
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


def transpose_shape(shapes: list[Shape], **_: Any) -> Shape:
    return tuple(reversed(shapes[0]))


def index_shape(shapes: list[Shape], idx: tuple = (), **_: Any) -> Shape:
    probe = np.broadcast_to(np.empty((), dtype=np.int8), shapes[0])  # no allocation
    try:
        return probe[idx].shape
    except IndexError as e:
        raise ValueError(f"index {fmt_index(idx)} does not fit shape {fmt_shape(shapes[0])}: {e}") from None


def fmt_index(idx: tuple) -> str:
    parts = []
    for i in idx:
        if isinstance(i, slice):
            a = "" if i.start is None else str(i.start)
            b = "" if i.stop is None else str(i.stop)
            parts.append(f"{a}:{b}" + ("" if i.step is None else f":{i.step}"))
        else:
            parts.append(str(i))
    return "[" + ", ".join(parts) + "]"


# -- helpers -----------------------------------------------------------------------


def _sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))


def _expand_reduced(g, shape: Shape, axis: int | None):
    """Broadcast the gradient of a reduction back to the operand's shape."""
    if axis is not None and len(shape) > 0:
        g = np.expand_dims(g, axis % len(shape))
    return np.broadcast_to(g, shape)


def _logsumexp(x, axis=None):
    if np.size(x) == 0:  # an empty sum: log(0) = -inf (scipy's logsumexp agrees)
        return np.log(np.sum(np.exp(x), axis=axis))
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    s = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return s.reshape(reduce_shape([np.shape(x)], axis=axis))


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


def _pow_vjp_base(g, ans, a, b):
    # PyTorch: d/da a^0 = 0 everywhere, also at a = 0 (where b * a^(b-1) would be 0 * inf)
    return np.where(b == 0, 0.0, g * b * np.power(a, b - 1))


def _pow_vjp_exp(g, ans, a, b):
    # PyTorch: d/db a^b = a^b log(a), taken as 0 where a == 0 and b >= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        d = ans * np.log(np.where(a == 0, 1.0, a))
    return g * np.where((a == 0) & (b >= 0), 0.0, np.where(a == 0, ans * -np.inf, d))


def _extreme_vjp(k, g, ans, *args):
    """max/min over several operands: split the gradient evenly among ties."""
    return _extreme_vjp_many([k], g, ans, args)[0]


def _extreme_vjp_many(ks, g, ans, args):
    """The VJPs of operands ``ks`` of max/min: g where the operand is the extreme, divided by the number of
    operands that tie there. One pass counts the ties, one pass per operand in ``ks`` (no n-by-n work)."""
    count = np.zeros(np.shape(ans), dtype=np.int_)
    for a in args:
        count += np.asarray(a) == ans
    div = np.maximum(count, 1).astype(np.result_type(g))  # keep float32 float32
    return [g * (np.asarray(args[k]) == ans) / div for k in ks]


def _reduce_extreme_vjp(g, ans, x, axis=None):
    mask = x == (ans if axis is None else np.expand_dims(ans, axis))
    count = np.sum(mask, axis=axis, keepdims=axis is not None).astype(np.result_type(g))
    return _expand_reduced(g, np.shape(x), axis) * mask / count


def _matmul_vjp_a(g, ans, a, b):
    if np.ndim(g) == 0:  # vector @ vector
        return g * b
    if np.ndim(a) == 1:
        g = np.expand_dims(g, -2)
    if np.ndim(b) == 1:  # outer product
        r = np.expand_dims(g, -1) * b
    else:
        r = np.matmul(g, np.swapaxes(b, -1, -2))
    if np.ndim(a) == 1:
        r = r[..., 0, :]
    return r


def _matmul_vjp_b(g, ans, a, b):
    if np.ndim(g) == 0:
        return g * a
    if np.ndim(b) == 1:
        g = np.expand_dims(g, -1)
    if np.ndim(a) == 1:  # outer product
        r = np.expand_dims(a, -1) * np.expand_dims(g, -2)
    else:
        r = np.matmul(np.swapaxes(a, -1, -2), g)
    if np.ndim(b) == 1:
        r = r[..., 0]
    return r


def _index_vjp(g, ans, x, idx=()):
    out = np.zeros(np.shape(x), dtype=np.result_type(g, x))
    out[idx] = g
    return out


def _norm_vjp(g, ans, x):
    with np.errstate(divide="ignore", invalid="ignore"):
        return g * np.where(ans == 0, 0.0, x / np.where(ans == 0, 1.0, ans))


def _norm(x):
    return np.sqrt(np.sum(np.square(x)))


def _mean_vjp(g, ans, x, axis=None):
    n = np.size(x) if axis is None else np.shape(x)[axis]
    return _expand_reduced(g, np.shape(x), axis) / n


# -- the table ---------------------------------------------------------------------

_TABLE = [
    # structural ops
    Op("id", lambda a: a, (lambda g, ans, a: g,), same_shape, 1, "="),
    # arithmetic
    Op(
        "add",
        np.add,
        (lambda g, ans, a, b: g, lambda g, ans, a, b: g),
        broadcast_shape,
        2,
        "+",
        True,
        True,
        test_shapes=((3, 1), (4,)),
    ),
    Op(
        "sub",
        np.subtract,
        (lambda g, ans, a, b: g, lambda g, ans, a, b: -g),
        broadcast_shape,
        2,
        "-",
        True,
        test_shapes=((2, 3), (3,)),
    ),
    Op(
        "mul",
        np.multiply,
        (lambda g, ans, a, b: g * b, lambda g, ans, a, b: g * a),
        broadcast_shape,
        2,
        "*",
        True,
        True,
        test_shapes=((3,), (2, 1)),
    ),
    Op(
        "div",
        np.divide,
        (lambda g, ans, a, b: g / b, lambda g, ans, a, b: -g * a / (b * b)),
        broadcast_shape,
        2,
        "/",
        True,
        domain=(0.5, 2.0),
        test_shapes=((2, 3), (3,)),
    ),
    Op(
        "pow",
        np.power,
        (_pow_vjp_base, _pow_vjp_exp),
        broadcast_shape,
        2,
        "^",
        True,
        domain=(0.5, 2.0),
        test_shapes=((3,), ()),
    ),
    Op("matmul", np.matmul, (_matmul_vjp_a, _matmul_vjp_b), matmul_shape, 2, "@", True, test_shapes=((2, 3), (3, 4))),
    Op("neg", np.negative, (lambda g, ans, a: -g,), same_shape, 1, "-"),
    # elementwise functions
    Op("exp", np.exp, (lambda g, ans, a: g * ans,), same_shape, 1, "exp"),
    Op("log", np.log, (lambda g, ans, a: g / a,), same_shape, 1, "log", domain=(0.2, 3.0)),
    Op("sqrt", np.sqrt, (lambda g, ans, a: g / (2 * ans),), same_shape, 1, "sqrt", domain=(0.2, 3.0)),
    Op("abs", np.abs, (lambda g, ans, a: g * np.sign(a),), same_shape, 1, "abs"),
    Op("sin", np.sin, (lambda g, ans, a: g * np.cos(a),), same_shape, 1, "sin"),
    Op("cos", np.cos, (lambda g, ans, a: -g * np.sin(a),), same_shape, 1, "cos"),
    Op("tan", np.tan, (lambda g, ans, a: g * (1 + ans * ans),), same_shape, 1, "tan", domain=(-1.2, 1.2)),
    Op("tanh", np.tanh, (lambda g, ans, a: g * (1 - ans * ans),), same_shape, 1, "tanh"),
    Op("sigmoid", _sigmoid, (lambda g, ans, a: g * ans * (1 - ans),), same_shape, 1, "σ"),
    Op("relu", lambda a: np.maximum(a, 0), (lambda g, ans, a: g * (a > 0),), same_shape, 1, "relu"),
    Op("softplus", lambda a: np.logaddexp(0, a), (lambda g, ans, a: g * _sigmoid(a),), same_shape, 1, "softplus"),
    Op("square", np.square, (lambda g, ans, a: 2 * g * a,), same_shape, 1, "square"),
    Op(
        "maximum",
        lambda *a: _fold(np.maximum, a),
        _extreme_vjp,
        broadcast_shape,
        None,
        "max",
        vjp_many=_extreme_vjp_many,
    ),
    Op(
        "minimum",
        lambda *a: _fold(np.minimum, a),
        _extreme_vjp,
        broadcast_shape,
        None,
        "min",
        vjp_many=_extreme_vjp_many,
    ),
    # reductions
    Op(
        "sum",
        lambda x, axis=None: np.sum(x, axis=axis),
        (lambda g, ans, x, axis=None: _expand_reduced(g, np.shape(x), axis),),
        reduce_shape,
        1,
        "sum",
        test_shapes=((2, 3),),
        test_attrs={"axis": 1},
    ),
    Op(
        "mean",
        lambda x, axis=None: np.sum(x, axis=axis) / (np.size(x) if axis is None else np.shape(x)[axis]),
        (_mean_vjp,),
        reduce_shape,
        1,
        "mean",
        test_shapes=((2, 3),),
        test_attrs={"axis": 0},
    ),
    Op(
        "amax",
        lambda x, axis=None: np.max(x, axis=axis),
        (_reduce_extreme_vjp,),
        extreme_shape,
        1,
        "max",
        test_shapes=((4,),),
    ),
    Op(
        "amin",
        lambda x, axis=None: np.min(x, axis=axis),
        (_reduce_extreme_vjp,),
        extreme_shape,
        1,
        "min",
        test_shapes=((4,),),
    ),
    Op(
        "logsumexp",
        _logsumexp,
        (
            lambda g, ans, x, axis=None: (
                _expand_reduced(g, np.shape(x), axis) * np.exp(x - _expand_reduced(ans, np.shape(x), axis))
            ),
        ),
        reduce_shape,
        1,
        "logsumexp",
        test_shapes=((5,),),
    ),
    Op("norm", _norm, (_norm_vjp,), reduce_shape, 1, "norm", test_shapes=((2, 3),)),
    # tensor ops
    Op("transpose", np.transpose, (lambda g, ans, x: np.transpose(g),), transpose_shape, 1, "ᵀ", test_shapes=((2, 3),)),
    Op(
        "reshape",
        lambda x, dims=(): np.reshape(x, dims),
        (lambda g, ans, x, dims=(): np.reshape(g, np.shape(x)),),
        reshape_shape,
        1,
        "reshape",
        test_shapes=((2, 3),),
        test_attrs={"dims": (3, 2)},
    ),
    Op("softmax", _softmax, (_softmax_vjp,), softmax_shape, 1, "softmax", test_shapes=((2, 3),)),
    Op(
        "index",
        lambda x, idx=(): x[idx],
        (_index_vjp,),
        index_shape,
        1,
        "[]",
        test_shapes=((3, 4),),
        test_attrs={"idx": (slice(0, 2), 1)},
    ),
]


def _fold(f, args):
    out = args[0]
    for a in args[1:]:
        out = f(out, a)
    return out


OPS: dict[str, Op] = {op.name: op for op in _TABLE}

# Nodes that are not operations: their value comes from outside the table.
LEAF_OPS = ("input", "const")


def unbroadcast(g, shape: Shape, op_name: str = "?"):
    """Sum a gradient back to an operand's shape (undoing numpy broadcasting)."""
    gshape = np.shape(g)
    if gshape == shape:
        return g
    g = np.asarray(g)
    extra = g.ndim - len(shape)
    if extra < 0:
        raise RuntimeError(f"gradient rule of op '{op_name}' returned shape {gshape} for an operand of shape {shape}")
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, (gd, sd) in enumerate(zip(g.shape, shape)) if sd == 1 and gd != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    if g.shape != shape:
        raise RuntimeError(f"gradient rule of op '{op_name}' returned shape {gshape} for an operand of shape {shape}")
    return g


def _stack_vjp(k, g, ans, *args):
    return g[k]


def _stack_shape(shapes: list[Shape], **_: Any) -> Shape:
    first = shapes[0]
    for s in shapes[1:]:
        if s != first:
            raise ValueError(f"tensor literal items have different shapes {fmt_shape(first)} and {fmt_shape(s)}")
    return (len(shapes),) + first


OPS["stack"] = Op(
    "stack",
    lambda *a: np.stack(a),
    _stack_vjp,
    _stack_shape,
    None,
    "[ ]",
    test_shapes=((2,), (2,)),
    vjp_many=lambda ks, g, ans, args: [g[k] for k in ks],
)


@dataclass(frozen=True)
class Fn:
    """A built-in function: which op it calls, how many operands, which trailing static arguments."""

    op: str
    min_args: int
    max_args: int | None  # None: no upper bound
    static: str | None = None  # "axis": one optional integer; "dims": the rest are integers


FUNCTIONS: dict[str, Fn] = {
    # every unary elementwise op is callable by its own name
    **{
        name: Fn(name, 1, 1)
        for name, op in OPS.items()
        if op.arity == 1 and op.shape is same_shape and name not in ("id", "neg")
    },
    "ln": Fn("log", 1, 1),
    "pow": Fn("pow", 2, 2),
    "max": Fn("maximum", 1, None),  # one operand: the reduction amax
    "min": Fn("minimum", 1, None),  # one operand: the reduction amin
    "sum": Fn("sum", 1, 2, "axis"),
    "mean": Fn("mean", 1, 2, "axis"),
    "logsumexp": Fn("logsumexp", 1, 2, "axis"),
    "norm": Fn("norm", 1, 1),
    "dot": Fn("matmul", 2, 2),  # mul when an operand is a scalar
    "transpose": Fn("transpose", 1, 1),
    "reshape": Fn("reshape", 2, None, "dims"),
    "softmax": Fn("softmax", 1, 2, "axis"),
}

# Constructors: constants (no gradient) built from integer arguments.
CONSTRUCTORS = ("zeros", "ones", "eye", "randn", "rand")
