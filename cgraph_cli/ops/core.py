"""What an op record is, and the shape rules and helpers the records share.

An :class:`Op` is everything cgraph knows about one operation, in one place: how it computes
(``fwd``), its vector-Jacobian product per operand (``vjp``), its Jacobian-vector product (``jvp``,
forward mode), its shape rule, how the language
spells it, how it runs on rows of scalars and in the engine's Python-float loop, where it has a
kink and what cgraph takes there, why it may produce a non-finite number, and how ``explain``,
the ``--steps`` captions and the pictures write it. Every other module reads these records and
none keeps a per-op table of its own (``tests/test_op_records.py`` walks the registry).
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from cgraph_cli.fmt import fmt_index, fmt_keyword, fmt_shape

Shape = tuple[int, ...]
ShapeRule = Callable[..., Shape]
Vjp = Callable[..., Any]  # vjp(g, ans, *operands, **attrs) -> g · ∂ans/∂operand
Jvp = Callable[..., Any]  # jvp(ts, ans, *operands, **attrs) -> Σ_k ∂ans/∂operand_k · ts[k] (ts[k] None: zero)
# text templates: operand labels L, the node's own label A, attrs, operand shapes then the node's shape
LocalText = Callable[[int, list[str], str, dict, list[Shape]], str]
VjpText = Callable[[int, str, list[str], str, dict, list[Shape]], tuple[str, "str | None"]]


class Kernel(enum.IntEnum):
    """What an op is on Python floats, for the engine's scalar loop.

    ``NP`` runs the record's own ``fwd`` and ``vjp`` on numpy scalars (always right, slower);
    ``NP1`` does the same for a one-operand op without the generic dispatch; the others are
    written out in the loop with Python float arithmetic, which is bit-identical to numpy's.
    """

    ID = 1
    ADD = 2
    SUB = 3
    MUL = 4
    DIV = 5
    NEG = 6
    SIN = 7
    COS = 8
    SQRT = 9
    ABS = 10
    SQUARE = 11
    RELU = 12
    NP1 = 13
    NP = 14


class Derive(enum.Enum):
    """How an op's Jacobian-vector product (forward mode) follows from facts its record already holds,
    where that is exact and cheap (the rest give ``jvp`` as a function of their own).

    ``LINEAR``: the op is linear in its operands taken together (``add``, ``sum``, ``reshape``,
    ``index``, ``stack``, ``cumsum`` ...), so its JVP is the op itself applied to the tangents
    (HIPS autograd's ``def_linear``). ``BILINEAR``: linear in each operand separately (``mul``,
    ``matmul``): the product rule, the op applied with one operand replaced by its tangent, summed over
    the operands. ``ELEMENTWISE``: an elementwise op whose VJP of operand k is ``g ⊙ ∂f/∂x_k`` (linear
    in ``g``, entry by entry): the JVP is the sum of those VJPs with the tangent broadcast to the
    result in place of ``g``, so kinks and special points follow the VJP's convention exactly.
    ``REDUCTION``: a reduction over ``axis`` (with ``keepdims``) whose VJP is the upstream gradient
    spread back over the reduced axes times a local factor ``L(x)`` (``max``, ``logsumexp``, ``norm``,
    ``prod``, ``var`` ...): the JVP is ``Σ t ⊙ L(x)`` over those axes, ``L`` being the VJP of ones."""

    LINEAR = "linear"
    BILINEAR = "bilinear"
    ELEMENTWISE = "elementwise"
    REDUCTION = "reduction"


@dataclass(frozen=True)
class Rows:
    """How an op runs on 1-D arrays holding one scalar operand per entry (a level of a wide
    scalar graph, or a batch of CSV rows).

    ``fwd``/``vjp`` None: the record's own functions already act entry by entry.  Otherwise the
    row variants compute, for each entry, exactly what the op computes on one 0-d operand
    (``sum`` of a scalar is the scalar, not the sum over the rows)."""

    fwd: Callable[..., Any] | None = None
    vjp: tuple[Vjp | None, ...] | None = None


ROWWISE = Rows()  # the record's fwd and vjp act entry by entry as they are


@dataclass(frozen=True)
class Kink:
    """A point where the op is not differentiable, and the derivative cgraph takes there (PyTorch's).

    ``at(operands, value, attrs, eps)`` tells whether the operands sit within ``eps`` of the kink
    (``explain`` asks with eps = 0); ``why`` is the sentence ``check`` prints; ``note`` the short
    note ``explain`` writes under the step (None: none)."""

    at: Callable[[list[Any], Any, dict, float], bool]
    why: str
    note: str | None = None


ALL = "all"  # Carry: every operand (of a variadic op too)


@dataclass(frozen=True)
class Carry:
    """Which non-finite numbers (NaN, ±inf) the op always passes on, whatever its other operands hold, so that
    the engine's non-finite scan can skip the nodes whose NaN or infinity would show in a later node anyway
    (:func:`cgraph_cli.engine.reference.scan_plan`); ``tests/test_nonfinite_carry.py`` checks every claim.

    ``value``: the operands k such that a non-finite entry of operand k always makes some entry of the result
    non-finite (unless the result is empty). True of add, mul, matmul (nan · 0 and inf · 0 are NaN; this
    assumes a BLAS that does not skip zero products, as OpenBLAS, numpy's own, does not), log, sqrt, sum, a
    reshape ...; not of a function that maps an infinity to a finite number (``tanh(inf) = 1``,
    ``exp(-inf) = 0``, ``relu(-inf) = 0``, ``1 / inf = 0``, ``x^0 = 1``) nor of one that picks entries (max,
    where, an index, a comparison, softmax). ``grad``: the operands k whose VJP has a non-finite entry whenever
    the upstream gradient g has one (unless the operand is empty): a VJP that multiplies g entry by entry
    (``g · f'(x)``: nan · 0 is NaN), sums or moves it; not one that selects from it (where, an operand's slice of
    g for concat and stack) or returns zeros (sign, a comparison). ``ALL``: every operand.

    The default claims nothing: the engine then scans the node itself (slower, never wrong)."""

    value: tuple[int, ...] | str = ()
    grad: tuple[int, ...] | str = ()

    def value_from(self, n: int) -> tuple[int, ...] | range:
        """The operands (of ``n``) whose non-finite entry the result always shows."""
        return range(n) if self.value == ALL else self.value  # type: ignore[return-value]

    def grad_to(self, n: int) -> tuple[int, ...] | range:
        """The operands (of ``n``) whose VJP always shows a non-finite entry of the upstream gradient."""
        return range(n) if self.grad == ALL else self.grad  # type: ignore[return-value]


CARRIES = Carry(ALL, ALL)  # both: add, mul, log, sum, reshape ...
CARRIES_GRAD = Carry(grad=ALL)  # the gradient only: tanh, exp, relu, max ... (their value can hide an infinity)


@dataclass(frozen=True)
class Call:
    """How the language spells a call of the op: ``name(x, ...)`` with ``min_args`` to
    ``max_args`` operands (None: no upper bound), the trailing static integer arguments
    (``"axis"``: one optional axis; ``"dims"``: all the rest), and the op to use instead when an
    operand is a scalar (``dot`` of a scalar is ``mul``). ``keywords`` names the keyword arguments
    the call accepts (``sum(x, axis=1, keepdims=true)``); each becomes the op attribute of that name,
    a static value (int, float, bool or a tuple of ints) fixed when the program is compiled.
    ``doc`` says in a few words what the call computes (the README's table of functions)."""

    name: str
    min_args: int = 1
    max_args: int | None = 1
    static: str | None = None
    scalar_op: str | None = None
    keywords: tuple[str, ...] = ()
    doc: str = ""


class NoEquivalent(Exception):
    """Raised by a lowering (:class:`Code`, :class:`Lower`) for an instance of an op that the target cannot
    write with the same function (the message says why); ``cgraph export`` turns it into an error at the op's
    line."""


@dataclass(frozen=True)
class Site:
    """One node as a lowering sees it: the operands' variable names ``xs``, the attributes, the operands'
    shapes, the node's shape, and the array module's alias ``m`` (``np``, ``jnp``, ``torch``)."""

    xs: list[str]
    attrs: dict
    shapes: list[Shape]
    shape: Shape
    m: str

    def fill(self, template: str) -> str:
        """``template`` with ``{0}``, ``{1}``, ... the operands, ``{args}`` all of them comma-separated,
        ``{m}`` the module and ``{axis}`` etc. the attributes as Python literals."""
        extra = {k: repr(v) for k, v in self.attrs.items()}
        return template.format(*self.xs, args=", ".join(self.xs), m=self.m, **extra)


@dataclass(frozen=True)
class Code:
    """How one target of ``cgraph export`` writes the op as a Python expression.

    ``expr`` is a :meth:`Site.fill` template, or a function of the :class:`Site` returning the expression
    (it raises :class:`NoEquivalent` for an instance the target cannot write). ``helpers`` are module-level
    definitions the expression calls, written once into the module. ``note`` says where the target's own
    convention at a kink differs from cgraph's (PyTorch's) and how this spelling keeps cgraph's; the
    exported module's docstring lists the notes of the ops it uses."""

    expr: str | Callable[[Site], str]
    helpers: tuple[str, ...] = ()
    note: str | None = None

    def write(self, site: Site) -> str:
        return self.expr(site) if callable(self.expr) else site.fill(self.expr)


@dataclass(frozen=True)
class Lower:
    """How ``cgraph export`` writes the op in each target (None: the target has no equivalent).

    ``array`` serves numpy and jax.numpy alike (``{m}`` is ``np`` or ``jnp``) unless ``numpy`` or ``jax``
    says otherwise. ``onnx`` is an ONNX operator type applied to the operands (``"Add"``), or a function
    of an ONNX site (the exporter's builder: ``site.xs``, ``.attrs``, ``.shapes``, ``.shape`` as in
    :class:`Site`; ``site.node(op_type, inputs, **attributes)`` adds a node and returns its output's name,
    ``site.ints(values)``, ``site.number(x)`` and ``site.array(values)`` add int64, float and float-tensor
    constants) returning the name of the
    value that is the op's result."""

    array: Code | None = None
    numpy: Code | None = None
    jax: Code | None = None
    torch: Code | None = None
    onnx: str | Callable[[Any], str] | None = None

    def code(self, target: str) -> Code | None:
        """The Python spelling for target ``numpy``, ``jax`` or ``torch``."""
        own = getattr(self, target)
        if own is not None or target == "torch":
            return own
        return self.array


@dataclass(frozen=True)
class Op:
    name: str
    fwd: Callable[..., Any]
    vjp: tuple[Vjp | None, ...] | Callable[..., Any] | None  # variadic: vjp(ks, g, ans, args, **attrs) -> list
    shape: ShapeRule
    arity: int | None  # None: variadic
    glyph: str  # the symbol in pictures and listings ("+", "×", "exp", "σ")
    jvp: Jvp | Derive | None = None  # forward mode: a rule of its own, or how it follows from the record
    # -- how it is written
    infix: str | None = None  # the operator of an infix formula ("+", "*", "^"); None: a call
    call: str | None = None  # the function name in formulas (default: the op's name)
    calls: tuple[Call, ...] = ()  # how the language spells it
    ports: tuple[str, ...] | None = None  # operand port names in pictures (non-commutative ops)
    commutative: bool = False
    formula: Callable[[list[str], dict], str] | None = None  # the right-hand side (default: infix or call)
    paren_first: bool = False  # a negative first operand is parenthesised: (-1)^2, -(-1)
    paren_second: bool = False  # a compound second operand is parenthesised: a - (b + c)
    label: Callable[[dict], str] | None = None  # the picture's text for a node with attributes
    # -- derivatives as text (explain, captions)
    local: LocalText | None = None  # ∂A/∂L[k]: the factor of the chain rule
    vjp_text: VjpText | None = None  # the VJP in matrix form, for tensors (default: from ``local``)
    # -- how it runs
    elementwise: bool = False  # acts entry by entry on broadcast operands
    rows: Rows | None = None  # how it runs on rows of scalars; None: it does not
    kernel: Kernel = Kernel.NP
    # the VJP (of a one-operand NP1 op) is plain IEEE arithmetic on g, ans and x (no numpy function), so called on
    # Python floats it gives numpy's float64 result bit for bit: the scalar loop calls it on its floats
    float_vjp: bool = False
    complex_step: bool = False  # fwd is analytic on complex numbers: check --method complex may pass through
    # -- kinks and non-finite numbers
    kink: Kink | None = None
    hint: Callable[[list[Any], Any], str | None] | None = None  # why its value is not finite
    grad_hint: Callable[[int, list[Any]], str | None] | None = None  # why a local derivative is not
    carry: Carry = Carry()  # which non-finite numbers it always passes on (the engine scans the others' nodes)
    # -- the generated finite-difference tests
    domain: tuple[float, float] = (-2.0, 2.0)
    test_shapes: tuple[Shape, ...] | None = None
    test_attrs: dict | None = field(default=None, hash=False)
    # -- the numpy function it is, for VJPs run on traced values (ir/trace.py: the backward pass as graph nodes)
    numpy: Callable[..., Any] | None = None  # a VJP's call of this function on a traced value records this op
    numpy_static: tuple[str, ...] = ()  # that function's positional arguments after the operands: the attributes
    internal: bool = False  # made only by the backward pass as graph nodes (broadcast_to, sum_to), not by the language
    # -- how other engines write it (cgraph export)
    lower: Lower | None = None

    def vjps(
        self, ks: list[int], g: Any, ans: Any, args: list[Any], attrs: dict | None = None, *, rows: bool = False
    ) -> list[Any]:
        """``g · ∂ans/∂args[k]`` for each k in ``ks`` (None where no gradient flows); with ``rows``,
        in the op's row form (:class:`Rows`).

        A variadic op's ``vjp`` is one function of all the operands it is asked for, so that
        ``max`` of n operands costs O(n), not O(n) per operand."""
        attrs = attrs or {}
        v = self.vjp
        if rows:
            assert self.rows is not None, f"op '{self.name}' does not run on rows"
            v = self.rows.vjp or v
        if v is None:
            return [None] * len(ks)
        if callable(v):
            return v(ks, g, ans, args, **attrs)
        if ks and ks[-1] >= len(v):
            raise KeyError(f"op '{self.name}' has no gradient rule for operand {ks[-1]}")
        return [None if v[k] is None else v[k](g, ans, *args, **attrs) for k in ks]

    @property
    def vjp_many(self) -> Callable[..., Any] | None:
        """A variadic op's VJP of several operands at once (None for an op with one rule per operand)."""
        return self.vjp if callable(self.vjp) else None

    def vjp_for(self, k: int) -> Vjp | None:
        """The VJP of operand ``k`` (None if no gradient flows to it)."""
        v = self.vjp
        if v is None:
            return None
        if callable(v):
            return lambda g, ans, *args, **attrs: v([k], g, ans, args, **attrs)[0]
        if k >= len(v):
            raise KeyError(f"op '{self.name}' has no gradient rule for operand {k}")
        return v[k]

    def row_fwd(self) -> Callable[..., Any]:
        """The forward function on rows of scalars (see :class:`Rows`)."""
        assert self.rows is not None, f"op '{self.name}' does not run on rows"
        return self.rows.fwd or self.fwd

    def row_vjp(self, k: int) -> Vjp | None:
        """Operand ``k``'s VJP on rows of scalars (see :class:`Rows`)."""
        assert self.rows is not None, f"op '{self.name}' does not run on rows"
        if self.rows.vjp is not None:
            return self.rows.vjp[k]
        return self.vjp_for(k)

    def tangent(self, ts: list[Any], ans: Any, args: list[Any], attrs: dict | None = None) -> Any:
        """The JVP: ``Σ_k ∂ans/∂args[k] · ts[k]``, the result's tangent (shape of ``ans``), where ``ts[k]``
        is operand k's tangent (None: zero). None when every tangent is None (no direction reaches it)."""
        if all(t is None for t in ts):
            return None
        attrs = attrs or {}
        rule = self.jvp
        shape = np.shape(ans)
        if rule is None:
            raise KeyError(f"op '{self.name}' has no JVP rule")
        if rule is Derive.LINEAR:
            out = self.fwd(*[np.zeros_like(x) if t is None else t for t, x in zip(ts, args)], **attrs)
        elif rule is Derive.BILINEAR:
            out = None
            for k, t in enumerate(ts):
                if t is not None:
                    term = self.fwd(*args[:k], t, *args[k + 1 :], **attrs)
                    out = term if out is None else out + term
        elif rule is Derive.ELEMENTWISE:
            out = None
            for k, t in enumerate(ts):
                if t is not None:
                    term = self.vjps([k], np.broadcast_to(t, shape), ans, args, attrs)[0]
                    if term is not None:
                        out = term if out is None else out + term
            if out is None:
                return None
        elif rule is Derive.REDUCTION:
            local = self.vjps([0], np.ones(shape, dtype=np.result_type(ts[0])), ans, args, attrs)[0]
            out = np.sum(ts[0] * local, axis=attrs.get("axis"), keepdims=attrs.get("keepdims", False))
        else:
            out = rule(ts, ans, *args, **attrs)
        if np.shape(out) != shape:
            out = np.array(np.broadcast_to(out, shape))
        return out

    @property
    def fname(self) -> str:
        """The op's name in formulas."""
        return self.call or self.name


# -- shape rules -------------------------------------------------------------------


def same_shape(shapes: list[Shape], **_: Any) -> Shape:
    return shapes[0]


def broadcast_shape(shapes: list[Shape], **_: Any) -> Shape:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        shown = " and ".join(fmt_shape(s) for s in shapes)
        raise ValueError(f"shapes {shown} cannot be broadcast together") from None


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def norm_axis(axis: int | None, ndim: int) -> int | None:
    if axis is None:
        return None
    if not _is_int(axis):
        raise ValueError(f"an axis is a whole number, not {fmt_keyword(axis)}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for a value with {ndim} dimension{'s' * (ndim != 1)}")
    return axis % ndim


def norm_axes(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...] | None:
    """An ``axis=`` attribute (None, an int or a tuple of ints, negative from the end) as sorted axes
    counted from 0 (None: every axis). An axis on a 0-d value is out of range (numpy's rule)."""
    if axis is None:
        return None
    if isinstance(axis, tuple):
        if not all(map(_is_int, axis)):
            raise ValueError(f"axis is a whole number or a tuple of them such as (0, 1), not {fmt_keyword(axis)}")
        axes = tuple(norm_axis(a, ndim) for a in axis)
        if len(set(axes)) != len(axes):
            raise ValueError(f"axis {fmt_shape(axis)} names an axis twice")
        return tuple(sorted(axes))  # type: ignore[arg-type]
    return (norm_axis(axis, ndim),)  # type: ignore[return-value]


def check_flag(name: str, v: Any) -> None:
    """A keyword that is true or false (``keepdims=true``)."""
    if not isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{name}= is true or false, not {fmt_keyword(v)}")


def reduce_shape(shapes: list[Shape], axis=None, keepdims: bool = False, **_: Any) -> Shape:
    s = shapes[0]
    check_flag("keepdims", keepdims)
    axes = norm_axes(axis, len(s))
    if axes is None:
        axes = tuple(range(len(s)))
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(s))
    return tuple(d for i, d in enumerate(s) if i not in axes)


def reduced_count(shape: Shape, axis=None) -> int:
    """How many entries a reduction over ``axis`` combines into each entry of its result."""
    axes = norm_axes(axis, len(shape))
    if axes is None:
        return int(np.prod(shape, dtype=np.int64))
    return int(np.prod([shape[a] for a in axes], dtype=np.int64))


def index_problem(shape: Shape, idx: tuple) -> tuple[int | None, str] | None:
    """Why the index ``idx`` (ints, slices, ``None``, ``...``, integer arrays) does not fit ``shape``: the position
    of the subscript at fault and the message; None when it fits."""
    ndim = len(shape)
    ellipses = [k for k, i in enumerate(idx) if i is Ellipsis]
    if len(ellipses) > 1:
        return ellipses[1], "an index can have only one '...'"
    takes = [k for k, i in enumerate(idx) if i is not None and i is not Ellipsis]  # each takes one axis
    if len(takes) > ndim:
        return takes[ndim], (
            f"too many indices: {len(takes)} for a value of shape {fmt_shape(shape)} "
            f"({ndim} dimension{'s' * (ndim != 1)})"
        )
    axis = 0
    for k, i in enumerate(idx):
        if i is Ellipsis:
            axis += ndim - len(takes)
            continue
        if i is None:
            continue
        size = shape[axis]
        if isinstance(i, np.ndarray):
            bad = i[(i >= size) | (i < -size)]
            if bad.size:
                return k, f"index {int(bad.flat[0])} is out of range for axis {axis} of size {size}"
        elif not isinstance(i, slice) and not -size <= i < size:
            return k, f"index {i} is out of range for axis {axis} of size {size}"
        axis += 1
    return None


def index_shape(shapes: list[Shape], idx: tuple = (), **_: Any) -> Shape:
    problem = index_problem(shapes[0], idx)
    if problem is not None:
        raise ValueError(problem[1])
    probe = np.broadcast_to(np.empty((), dtype=np.int8), shapes[0])  # no allocation
    try:
        return probe[idx].shape
    except IndexError as e:
        raise ValueError(f"index {fmt_index(idx)} does not fit shape {fmt_shape(shapes[0])}: {e}") from None


# -- traceable functions ----------------------------------------------------------------


def traceable(f: Callable[..., Any]) -> Callable[..., Any]:
    """Make a function of arrays that is an op's ``numpy`` recordable: called with a traced value (one whose
    type has ``__cgraph_trace__``, :mod:`cgraph_cli.ir.trace`) it hands the call to the tracer, which records
    the op whose ``numpy`` it is, as numpy's ``__array_function__`` protocol does for numpy's own functions.
    On numpy arrays it is ``f`` (one attribute look-up per operand more)."""

    @functools.wraps(f)
    def call(*args: Any, **kwargs: Any) -> Any:
        for a in args:
            hook = getattr(type(a), "__cgraph_trace__", None)
            if hook is not None:
                return hook(call, args, kwargs)
        return f(*args, **kwargs)

    return call


# -- helpers shared by the records -------------------------------------------------------


def expand_reduced(g, shape: Shape, axis=None, keepdims: bool = False):
    """Broadcast the gradient (or value) of a reduction over ``axis`` back to the operand's shape."""
    axes = norm_axes(axis, len(shape))
    if axes is not None and axes and not keepdims:
        g = np.expand_dims(g, axes)
    elif axes is None and keepdims:
        g = np.reshape(g, ())
    return np.broadcast_to(g, shape)


def keep(v, shape: Shape, axis=None):
    """The result of a reduction over ``axis`` with its reduced axes kept (length 1), whether or not
    it was computed with ``keepdims``: the form that broadcasts against the operand."""
    axes = norm_axes(axis, len(shape))
    if axes is None:
        return np.reshape(v, (1,) * len(shape))
    return np.reshape(v, tuple(1 if i in axes else d for i, d in enumerate(shape)))


def near_zero(x: Any, eps: float) -> bool:
    return bool(np.any(np.abs(np.asarray(x, dtype=np.float64)) <= eps))


@traceable
def sum_to(x, shape: Shape = ()):
    """Sum ``x`` down to ``shape`` (the inverse of broadcasting ``shape`` to ``x``'s shape): the op ``sum_to``."""
    return unbroadcast(x, tuple(shape), "sum_to")


@traceable
def place(g, shape: Shape = (), idx: tuple = ()):
    """Zeros of ``shape`` with ``g`` added at ``idx``: the gradient of an index, the op ``place``."""
    out = np.zeros(shape, dtype=np.result_type(g))
    if any(isinstance(i, np.ndarray) for i in idx):
        np.add.at(out, idx, g)  # integer arrays may pick an entry several times: their gradients add up
    else:
        out[idx] = g  # basic indexing picks each entry at most once
    return out


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
