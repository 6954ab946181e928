"""The graph IR and its builder.

A :class:`Graph` stores nodes in topological order as parallel lists (op,
operand ids, attributes, shape, name, source span, call frame), so a large
program costs a few list slots per node rather than an object: spans are two
integer columns, and equal scalar constants share one read-only array and one
attributes dict.  The :class:`Builder` lowers the parser's statements (a list,
or an iterator whose statements are dropped once lowered) into a Graph with
sequential semantics (a name refers to its newest assignment; a name used
before any assignment is an input), inlines ``def`` functions at each call,
and infers shapes as it goes so that a shape error points at its source.
Nothing here recurses over the program.
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from cgraph_cli.errors import CgraphError, Source, closest, did_you_mean
from cgraph_cli.fmt import fmt_attr, fmt_const, fmt_index, fmt_shape
from cgraph_cli.ir.backward import gradient_nodes
from cgraph_cli.ir.trace import Traced
from cgraph_cli.lang.parser import (
    ASSIGN_EXPR,
    ASSIGN_NAME,
    ASSIGN_NAME_SPAN,
    BARE_EXPR,
    BIN_LHS,
    BIN_OP,
    BIN_RHS,
    CALL_ARGS,
    CALL_FNAME,
    CALL_KEYWORDS,
    CALL_NAME_END,
    DEF_BODY,
    DEF_NAME,
    DEF_NAME_SPAN,
    DEF_PARAMS,
    END,
    FOR_ARGS,
    FOR_BODY,
    FOR_RANGE_SPAN,
    FOR_VAR,
    INDEX_SUBS,
    INDEX_X,
    INPUT_DATA,
    INPUT_ITEMS,
    KIND,
    KW_NAME,
    KW_SPAN,
    NAME_ID,
    NEG_X,
    NUM_VALUE,
    OUTPUT_NAMES,
    SLICE_START,
    SLICE_STEP,
    SLICE_STOP,
    START,
    SUB_EXPR,
    SUB_KIND,
    TENSOR_ITEMS,
    TUPLE_ITEMS,
)
from cgraph_cli.limits import DEFAULT_MAX_MEMORY, fmt_bytes, suggest_size
from cgraph_cli.ops import CONSTRUCTORS, FUNCTIONS, OPS, arity_bounds, pick_call
from cgraph_cli.ops.core import index_problem

Span = tuple[int, int]
MAX_NODES = 10_000_000
MAX_DIMS = 32  # numpy 1.x's limit on dimensions (2.x allows 64)


class TooManyNodes(CgraphError):
    """The graph grew past the builder's node limit (a command with a smaller limit words its own refusal)."""


class Spans:
    """The nodes' source spans as two integer columns (16 bytes a node, not a tuple of two ints).

    Reads like a list of ``(start, end)`` tuples: ``spans[i]``, ``spans[i] = (s, e)``, ``len``, iteration."""

    __slots__ = ("starts", "ends")

    def __init__(self, pairs=()) -> None:
        self.starts = array("q")
        self.ends = array("q")
        for s, e in pairs:
            self.starts.append(s)
            self.ends.append(e)

    @classmethod
    def from_columns(cls, starts, ends) -> Spans:
        """From the starts and the ends: sequences of ints, or each as the bytes of native int64s."""
        sp = cls()
        sp.starts = array("q", starts)
        sp.ends = array("q", ends)
        return sp

    def append(self, span: Span) -> None:
        self.starts.append(span[0])
        self.ends.append(span[1])

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return list(zip(self.starts[i], self.ends[i]))
        return (self.starts[i], self.ends[i])

    def __setitem__(self, i: int, span: Span) -> None:
        self.starts[i], self.ends[i] = span

    def __iter__(self):
        return zip(self.starts, self.ends)

    def __eq__(self, other) -> bool:
        if isinstance(other, Spans):
            return self.starts == other.starts and self.ends == other.ends
        try:
            return list(self) == list(other)
        except TypeError:
            return NotImplemented

    def __repr__(self) -> str:
        return f"Spans({list(self)!r})"


@dataclass(slots=True)
class Frame:
    """One inlined call of a user function (drawn as a cluster); slots: a def tower makes one a few nodes."""

    name: str
    span: Span
    parent: int  # -1: top level
    defs: dict = field(default_factory=dict, repr=False)  # functions visible inside


class LazyRng:
    """The random generator of ``randn()`` and ``rand()``, seeded by ``--seed``, made at the first draw: most
    programs draw nothing, and importing numpy.random costs about 10 ms of a command's start-up."""

    __slots__ = ("seed", "_gen")

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._gen: np.random.Generator | None = None

    def get(self) -> np.random.Generator:
        if self._gen is None:
            self._gen = np.random.default_rng(self.seed)
        return self._gen


# a name (with its combining marks, as in x̂) or a number (2.5e-3): the words a cut must not split
_WORD = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|(?:\w|[\u0300-\u036f\u1ab0-\u1aff\u20d0-\u20ff])+")
_REACH = 40  # the longest word a cut moves past (a longer one is cut where it falls)


def _word_around(text: str, cut: int) -> tuple[int | None, int | None] | None:
    """The word ``cut`` falls inside, as (start, end), None for an end that may lie past the search window (a word
    longer than :data:`_REACH`); None if ``cut`` falls between words."""
    lo, hi = max(0, cut - _REACH), min(len(text), cut + _REACH)
    for m in _WORD.finditer(text, lo, hi):
        if m.start() >= cut:
            break
        if cut < m.end():
            return (
                m.start() if m.start() > lo or lo == 0 else None,
                m.end() if m.end() < hi or hi == len(text) else None,
            )
    return None


@dataclass
class Graph:
    source: Source
    ops: list[str] = field(default_factory=list)
    args: list[tuple[int, ...]] = field(default_factory=list)
    attrs: list[dict | None] = field(default_factory=list)
    shapes: list[tuple[int, ...] | None] = field(default_factory=list)
    names: list[str | None] = field(default_factory=list)
    spans: Spans = field(default_factory=Spans)
    frames_of: list[int] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    # program-level facts
    inputs: dict[str, int] = field(default_factory=dict)  # in order of first appearance
    declared_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    defaults: dict[str, np.ndarray] = field(default_factory=dict)
    outputs: list[int] = field(default_factory=list)
    bindings: dict[str, int] = field(default_factory=dict)  # every name's newest node at the end
    dtype: Any = np.float64
    data_inputs: set[str] = field(default_factory=set)  # inputs declared `input data X`: no gradient, ever
    derived: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # caches, e.g. the engine's plan
    warnings: list[tuple[str, Span]] = field(default_factory=list, compare=False)  # (message, span), from building

    def __len__(self) -> int:
        return len(self.ops)

    def text(self, i: int) -> str:
        """The node's source text."""
        s, e = self.spans[i]
        return self.source.text[s:e]

    def short_text(self, i: int, limit: int = 160) -> str:
        """The node's source text, its middle elided beyond ``limit`` characters.

        Each node of a long left-associative sum covers a prefix of the line, so the full
        texts of all nodes grow quadratically; listings and JSON use this instead."""
        s, e = self.spans[i]
        text = self.source.text
        if e - s <= limit:
            return text[s:e]
        half = limit // 2
        # no cut inside a name or a number (a17 must not read as 17, nor 2.5e-3 as 3): each end moves out of the
        # word it falls in, by at most a quarter of the limit
        head, tail = s + half, e - half
        word = _word_around(text, head)
        if word is not None and word[0] is not None and word[0] >= s + half // 2:
            head = word[0]
        word = _word_around(text, tail)
        if word is not None and word[1] is not None and word[1] <= e - half // 2:
            tail = word[1]
        return text[s:head].rstrip() + " … " + text[tail:e].lstrip()

    def line_col(self, i: int) -> tuple[int, int]:
        return self.source.line_col(self.spans[i][0])

    def label(self, i: int) -> str:
        """A deterministic display name: the node's name or ``%i``."""
        return self.names[i] or f"%{i}"

    @property
    def output(self) -> int:
        return self.outputs[0]

    def named_nodes(self) -> list[int]:
        return [i for i, n in enumerate(self.names) if n is not None]

    def ancestors(self, out: int) -> list[bool]:
        """Which nodes ``out`` depends on (itself included)."""
        anc = [False] * len(self.ops)
        anc[out] = True
        for i in range(out, -1, -1):
            if anc[i]:
                for j in self.args[i]:
                    anc[j] = True
        return anc

    def needs_grad(self, wrt: Iterable[str] | None = None) -> list[bool]:
        """Which nodes depend on an input that is differentiated (only those get gradients): the inputs
        ``wrt`` (default: :meth:`grad_inputs`, every input not declared data)."""
        seeds = set(self.grad_inputs() if wrt is None else wrt)
        need = [False] * len(self.ops)
        names = self.names
        for i, (op, args) in enumerate(zip(self.ops, self.args)):
            if op == "input":
                need[i] = names[i] in seeds
            else:
                for j in args:
                    if need[j]:
                        need[i] = True
                        break
        return need

    def grad_inputs(self, wrt: Iterable[str] | None = None, *, option: str = "--wrt") -> list[str]:
        """The inputs whose gradient is asked for: ``wrt`` in the order given (duplicates dropped), checked to
        be inputs that are not data; default: every input not declared ``input data``, in source order. An
        unknown name or a data input is a :class:`CgraphError` worded for ``option``."""
        if wrt is None:
            if not self.data_inputs:
                return list(self.inputs)
            return [x for x in self.inputs if x not in self.data_inputs]
        names = list(dict.fromkeys(wrt))
        unknown = [w for w in names if w not in self.inputs]
        if unknown:
            best = closest(unknown[0], list(self.inputs))
            verb = "is not an input" if len(unknown) == 1 else "are not inputs"
            raise CgraphError(
                f"{option}: {', '.join(repr(u) for u in unknown)} {verb} of the program;"
                f" its inputs are: {', '.join(self.inputs) or 'none'}",
                hint=f"did you mean '{best}'?" if best else None,
            )
        data = [w for w in names if w in self.data_inputs]
        if data:
            i = self.inputs[data[0]]
            raise CgraphError(
                f"{option}: '{data[0]}' is declared as data (input data {data[0]}), so it has no gradient",
                self.spans[i],
                hint="declare it with plain 'input' to differentiate with respect to it",
                source=self.source,
            )
        return names

    def copy(self) -> Graph:
        """A graph with the same nodes whose columns can be extended without touching this one."""
        return Graph(
            self.source,
            list(self.ops),
            list(self.args),
            list(self.attrs),
            list(self.shapes),
            list(self.names),
            Spans.from_columns(self.spans.starts, self.spans.ends),
            list(self.frames_of),
            list(self.frames),
            dict(self.inputs),
            dict(self.declared_shapes),
            dict(self.defaults),
            list(self.outputs),
            dict(self.bindings),
            self.dtype,
            set(self.data_inputs),
            warnings=list(self.warnings),
        )


# -- the builder -------------------------------------------------------------------

# functions of the language that are not ops: grad(loss, w), the gradient as nodes of the graph
GRAD = "grad"
BUILTINS = (GRAD,)


class _CallEnd(NamedTuple):
    """A marker on the builder's stack: the body of an inlined call has been lowered."""

    kind: str  # "callend", where an AST node has its kind
    span: Span  # the call's span, given to the body's root node
    first_node: int  # the first node the body added


@dataclass
class _Def:
    name: str
    span: Span
    params: list[tuple[str, Span]]
    body: tuple
    defs: dict[str, _Def]  # the functions visible to the body (earlier definitions)
    size: int = 0  # nodes one call adds when inlined (estimated at definition, capped)


def _span(e: tuple) -> Span:
    """An AST node's span in the source."""
    return (e[START], e[END])


def _subscript_exprs(sub: tuple) -> tuple:
    """The expressions in a subscript: ("i", expr), ("s", start, stop, step) or ("e",)."""
    if sub[SUB_KIND] == "i":
        return (sub[SUB_EXPR],)
    if sub[SUB_KIND] == "e":
        return ()
    return tuple(x for x in (sub[SLICE_START], sub[SLICE_STOP], sub[SLICE_STEP]) if x is not None)


def subexprs(e: tuple) -> tuple:
    """The direct sub-expressions of an AST expression."""
    k = e[KIND]
    if k == "bin":
        return (e[BIN_LHS], e[BIN_RHS])
    if k == "neg":
        return (e[NEG_X],)
    if k == "call":
        return e[CALL_ARGS]
    if k == "tensor":
        return e[TENSOR_ITEMS]
    if k == "tuple":
        return e[TUPLE_ITEMS]
    if k == "index":
        return (e[INDEX_X],) + tuple(x for sub in e[INDEX_SUBS] for x in _subscript_exprs(sub))
    return ()


def _reads(e: tuple, name: str) -> bool:
    """Whether the expression ``e`` reads the name ``name`` anywhere."""
    stack = [e]
    while stack:
        x = stack.pop()
        if x[KIND] == "name" and x[NAME_ID] == name:
            return True
        stack.extend(subexprs(x))
    return False


class _NotStatic(Exception):
    """An expression that is not a constant known when the program is compiled (at ``span``)."""

    def __init__(self, span: Span) -> None:
        self.span = span


# names a static argument reads as values (elsewhere they are ordinary names)
STATIC_NAMES = {"true": True, "false": False, "inf": math.inf}


def static_value(expr: tuple, consts: dict[str, int]) -> Any:
    """The value of a static argument, fixed when the program is compiled: a number (an int when whole), a loop
    variable of ``consts``, ``true``, ``false``, ``inf``, a tuple of whole numbers, and + - * of numbers.
    Raises :class:`_NotStatic` at the first part that is none of these."""
    k = expr[KIND]
    if k == "num":
        v = expr[NUM_VALUE]
        return int(v) if float(v).is_integer() else v
    if k == "name":
        name = expr[NAME_ID]
        if name in consts:
            return consts[name]
        if name in STATIC_NAMES:
            return STATIC_NAMES[name]
        raise _NotStatic(_span(expr))
    if k == "neg":
        v = static_value(expr[NEG_X], consts)
        if isinstance(v, bool):
            raise _NotStatic(_span(expr))
        return -v
    if k == "bin" and expr[BIN_OP] in OPS:  # arithmetic on constants, such as x[i - 1]: the op's own forward
        a = static_value(expr[BIN_LHS], consts)
        b = static_value(expr[BIN_RHS], consts)
        if isinstance(a, (bool, tuple)) or isinstance(b, (bool, tuple)):
            raise _NotStatic(_span(expr))
        with np.errstate(all="ignore"):
            try:
                v = float(OPS[expr[BIN_OP]].fwd(np.float64(a), np.float64(b)))
            except (ValueError, TypeError):  # an op that takes no scalars (1 @ 1): not a static number
                raise _NotStatic(_span(expr)) from None
        return int(v) if v.is_integer() else v
    if k == "tuple":
        items = []
        for x in expr[TUPLE_ITEMS]:
            v = static_value(x, consts)
            if type(v) is not int:
                raise CgraphError("a tuple may hold only whole numbers, such as (0, 1)", _span(x))
            items.append(v)
        return tuple(items)
    raise _NotStatic(_span(expr))


def _static_int(expr: tuple, what: str, consts: dict[str, int] | None = None) -> int:
    try:
        v = static_value(expr, consts or {})
    except _NotStatic:
        v = None
    if type(v) is int:
        if abs(v) > 2**53:
            raise CgraphError(f"{what} is too large", _span(expr))
        return v
    raise CgraphError(f"{what} must be a whole-number constant", _span(expr))


def _const_tensor(expr: tuple) -> list | float | None:
    """A tensor literal made only of numbers, as nested lists; None if it has expressions."""
    if expr[KIND] == "num":
        return expr[NUM_VALUE]
    if expr[KIND] != "tensor":
        return None
    out: list = []
    stack = [(expr, out)]
    while stack:
        e, dest = stack.pop()
        for item in e[TENSOR_ITEMS]:
            if item[KIND] == "num":
                dest.append(item[NUM_VALUE])
            elif item[KIND] == "tensor":
                sub: list = []
                dest.append(sub)
                stack.append((item, sub))
            else:
                return None
    return out


class Builder:
    """Lowers statements to a Graph. ``values`` gives input values (for their shapes)."""

    def __init__(
        self,
        source: Source,
        values: dict[str, np.ndarray] | None = None,
        *,
        seed: int = 0,
        dtype: Any = np.float64,
        constants_only: bool = False,
        rng: LazyRng | None = None,
        max_nodes: int = MAX_NODES,
        max_memory: int | None = None,
    ) -> None:
        self.g = Graph(source, dtype=dtype)
        self.values = values or {}
        self.rng = rng if rng is not None else LazyRng(seed)  # (shared with the builders of input defaults)
        self.seed = seed
        self.dtype = dtype
        self.constants_only = constants_only
        self.max_nodes = max_nodes
        self.max_memory = DEFAULT_MAX_MEMORY if max_memory is None else max_memory
        self.itemsize = np.dtype(dtype).itemsize
        self.n_values = 0  # values held by all nodes so far (from their shapes)
        self.tensors_checked: set[int] = set()  # ids of tensor literals whose nesting depth is known to be fine
        self.defs: dict[str, _Def] = {}
        self.last_assigned: int | None = None
        self.declared: set[str] = set()
        # one read-only 0-d array per distinct scalar literal, in one attrs dict that its nodes share
        self.scalars: dict[Any, dict] = {}
        self.consts: dict[str, int] = {}  # the loop variables of the loops being unrolled, and their values

    # -- nodes ---------------------------------------------------------------------
    def node(self, op: str, args: tuple[int, ...], span: Span, frame: int, attrs: dict | None = None) -> int:
        g = self.g
        shapes = [g.shapes[j] for j in args]
        if op in ("input", "const"):
            shape = None  # set by the caller
        elif any(s is None for s in shapes):
            shape = None
        elif not attrs and shapes and shapes.count(shapes[0]) == len(shapes) and OPS[op].elementwise:
            shape = shapes[0]  # elementwise on equal shapes (the common case): no broadcasting to work out
        else:
            try:
                shape = OPS[op].shape(shapes, **(attrs or {}))
            except ValueError as e:
                raise CgraphError(str(e), span) from None
        if shape:  # a tensor: check the memory limit before anything is allocated
            if len(shape) > MAX_DIMS:
                raise CgraphError(f"the result of this '{op}' has {len(shape)} dimensions (at most {MAX_DIMS})", span)
            self.count_values(math.prod(shape) or max(shape), span, f"the result of this '{op}'")
        else:
            self.n_values += 1
        i = len(g.ops)
        if i >= self.max_nodes:
            raise TooManyNodes(
                f"the program expands to more than {self.max_nodes:,} nodes",
                span,
                hint="a function that calls others many times multiplies the graph; simplify the program",
            )
        g.ops.append(op)
        g.args.append(args)
        g.attrs.append(attrs)
        g.shapes.append(shape)
        g.names.append(None)
        spans = g.spans
        spans.starts.append(span[0])
        spans.ends.append(span[1])
        g.frames_of.append(frame)
        return i

    def count_values(self, size: int, span: Span, what: str) -> None:
        """Refuse a node whose value, or the program's values in all, would pass the memory limit."""
        self.n_values += size
        if self.n_values * self.itemsize > self.max_memory:
            alone = size * self.itemsize > self.max_memory
            needed = size * self.itemsize if alone else self.n_values * self.itemsize
            total = fmt_bytes(needed)
            what = f"{what} would hold {size:,} values ({total})" if alone else f"the values would take {total}"
            raise CgraphError(
                f"{what}, more than the memory limit of {fmt_bytes(self.max_memory)}",
                span,
                hint=f"use smaller shapes, or raise the limit: --max-memory {suggest_size(needed)}",
            )

    def const(self, value: Any, span: Span, frame: int) -> int:
        if type(value) is float:  # a scalar literal: shared with every equal one (0.0 and -0.0 apart)
            key = value if value else (value, math.copysign(1.0, value))
            attrs = self.scalars.get(key)
            if attrs is None:
                arr = np.asarray(value, dtype=self.dtype)
                arr.flags.writeable = False
                attrs = self.scalars[key] = {"value": arr}
            i = self.node("const", (), span, frame, attrs)
            self.g.shapes[i] = ()
            return i
        arr = np.asarray(value, dtype=self.dtype)
        i = self.node("const", (), span, frame, {"value": arr})
        self.g.shapes[i] = arr.shape
        if arr.ndim:
            self.n_values -= 1
            self.count_values(arr.size, span, "the tensor literal")
        return i

    def new_input(self, name: str, span: Span) -> int:
        if self.constants_only:
            raise CgraphError(f"a default value may use only constants and constructors, not the name '{name}'", span)
        s, e = span
        k = self.g.source.text.find(name, s, e)  # '((x))' -> the name itself
        if k >= 0:
            span = (k, k + len(name))
        i = self.node("input", (), span, -1)
        g = self.g
        g.names[i] = name
        g.inputs[name] = i
        value = self.values.get(name)
        if value is not None:
            g.shapes[i] = tuple(np.shape(value))
            self.n_values += np.size(value) - 1
            want = g.declared_shapes.get(name)
            if want is not None and want != g.shapes[i]:
                raise CgraphError(
                    f"input '{name}' is declared with shape {fmt_shape(want)}, "
                    f"but the value given has shape {fmt_shape(g.shapes[i])}",
                    span,
                )
        elif name in g.declared_shapes:
            g.shapes[i] = g.declared_shapes[name]
        elif name in g.defaults:
            g.shapes[i] = tuple(np.shape(g.defaults[name]))
        return i

    # -- statements ----------------------------------------------------------------
    def build(self, stmts: Iterable[tuple]) -> Graph:
        """Lower the statements one at a time (an iterator's statements can be dropped once lowered)."""
        g = self.g
        it = iter(stmts)
        st = next(it, None)
        if st is None:
            raise CgraphError("the program is empty", hint="write at least one assignment, such as: z = x * y")
        bare_out: int | None = None
        while st is not None:
            following = next(it, None)  # one statement ahead: is this one the last?
            self.tensors_checked.clear()  # ids of tensors of statements dropped since may be reused
            kind = st[KIND]
            if kind == "assign":
                self.assign(st[ASSIGN_NAME], st[ASSIGN_NAME_SPAN], st[ASSIGN_EXPR], _span(st))
            elif kind == "input":
                self.declare_inputs(st[INPUT_ITEMS], st[INPUT_DATA])
            elif kind == "output":
                for name, span in st[OUTPUT_NAMES]:
                    if name not in g.bindings:
                        raise CgraphError(f"output '{name}' is not defined" + did_you_mean(name, g.bindings), span)
                    g.outputs.append(g.bindings[name])
            elif kind == "def":
                self.define(st)
            elif kind == "for":
                self.loop(st)
            elif kind == "bare":
                if following is not None:
                    raise CgraphError(
                        "an expression on its own is only allowed as the last statement",
                        _span(st),
                        hint="give it a name, such as: t = ...",
                    )
                bare_out = self.assign("out", _span(st), st[BARE_EXPR], _span(st))
            st = following
        if not g.outputs:
            if bare_out is not None:
                g.outputs.append(bare_out)
            elif self.last_assigned is not None:
                g.outputs.append(self.last_assigned)
            elif g.inputs:
                g.outputs.append(next(iter(g.inputs.values())))
            else:
                raise CgraphError("the program computes nothing", hint="write an assignment, such as: z = x * y")
        return g

    def assign(self, name: str, name_span: Span, expr: tuple, stmt_span: Span, frame: int = -1) -> int:
        g = self.g
        if name in self.declared:
            raise CgraphError(f"cannot assign to '{name}': it is declared as an input", name_span)
        if name in self.consts:
            raise CgraphError(f"cannot assign to '{name}': it is the variable of a loop", name_span)
        before = len(g.ops)
        i = self.lower(expr, None, frame)
        if i < before or g.names[i] is not None:  # an existing node: the assignment makes a copy
            i = self.node("id", (i,), _span(expr), frame)
        g.names[i] = name
        g.bindings[name] = i
        self.last_assigned = i
        return i

    # -- loops ---------------------------------------------------------------------
    def loop(self, st: tuple) -> None:
        """Unroll ``for i in range(...) { body }``: the body is lowered once per value of ``i``, which reads as
        a constant there, each time in a frame of its own (drawn as a cluster). Nested loops are unrolled
        with an explicit stack; the nodes a loop adds are estimated and refused past the node limit before
        anything is built."""
        g = self.g
        saved = dict(self.consts)
        # each entry: [loop statement, its values, the next value's position, the iteration's frame, body position]
        stack: list[list] = [[st, self.loop_values(st), 0, -1, None]]
        self.check_loop_size(st, stack[0][1])
        try:
            while stack:
                top = stack[-1]
                loop_st, values, k, fr, pos = top
                body = loop_st[FOR_BODY]
                if pos is None or pos == len(body):  # the next iteration
                    if k == len(values):
                        stack.pop()
                        var = loop_st[FOR_VAR]
                        outer = [e for e in stack if e[0][FOR_VAR] == var]
                        if outer:
                            self.consts[var] = outer[-1][1][outer[-1][2] - 1]
                        elif var in saved:
                            self.consts[var] = saved[var]
                        else:
                            self.consts.pop(var, None)
                        continue
                    v = values[k]
                    self.consts[loop_st[FOR_VAR]] = v
                    parent = stack[-2][3] if len(stack) > 1 else -1
                    top[3] = len(g.frames)
                    g.frames.append(Frame(f"{loop_st[FOR_VAR]} = {v}", _span(loop_st), parent, self.defs))
                    top[2] = k + 1
                    top[4] = 0
                    continue
                sub = body[pos]
                top[4] = pos + 1
                kind = sub[KIND]
                if kind == "assign":
                    self.assign(sub[ASSIGN_NAME], sub[ASSIGN_NAME_SPAN], sub[ASSIGN_EXPR], _span(sub), fr)
                elif kind == "for":
                    stack.append([sub, self.loop_values(sub), 0, -1, None])
                else:
                    what = {"input": "an input declaration", "output": "an output declaration", "def": "a function"}
                    raise CgraphError(
                        f"{what.get(kind, 'an expression on its own')} cannot be inside a loop",
                        _span(sub),
                        hint="a loop's body holds assignments and loops; declare and define before the loop",
                    )
        finally:
            self.consts = saved

    def loop_values(self, st: tuple) -> range:
        """The values of a loop's variable: range(n), range(a, b) or range(a, b, step), as in Python."""
        args = st[FOR_ARGS]
        if not 1 <= len(args) <= 3:
            raise CgraphError(f"range() takes 1 to 3 arguments, got {len(args)}", st[FOR_RANGE_SPAN])
        bounds = [_static_int(a, "a bound of range()", self.consts) for a in args]
        if len(bounds) == 3 and bounds[2] == 0:
            raise CgraphError("the step of range() cannot be zero", _span(args[2]))
        return range(*bounds)

    def check_loop_size(self, st: tuple, values: range) -> None:
        """Refuse a loop whose unrolled iterations would take the program past the node limit, before building."""
        cap = self.max_nodes + 1
        size = self.loop_size(st, values, cap)
        if len(self.g.ops) + size > self.max_nodes:
            about = f"over {self.max_nodes:,}" if size >= cap else f"about {size:,}"
            raise TooManyNodes(
                f"this loop would add {about} nodes when unrolled ({len(values):,} iterations), "
                f"taking the program past the limit of {self.max_nodes:,} nodes",
                (st[START], st[FOR_RANGE_SPAN][1]),
                hint="a loop is unrolled when the program is compiled: every iteration adds its body's nodes; "
                "use fewer iterations",
            )

    def loop_size(self, st: tuple, values: range, cap: int) -> int:
        """The nodes a loop adds, counting each iteration as at least one (capped at ``cap``). An iteration's size
        is worked out once when no nested loop's range depends on a loop variable, else for each value."""
        var = st[FOR_VAR]
        saved = self.consts.get(var)
        vary = _nested_ranges_use_names(st[FOR_BODY])
        total = 0
        try:
            for v in values:
                self.consts[var] = v
                one = 1
                for sub in st[FOR_BODY]:
                    if sub[KIND] == "assign":
                        one += self.expanded_size(sub[ASSIGN_EXPR]) + 1
                    elif sub[KIND] == "for":
                        one += self.loop_size(sub, self.loop_values(sub), cap)
                    if one >= cap:
                        return cap
                if not vary:
                    return min(cap, one * len(values))
                total += one
                if total >= cap:
                    return cap
        finally:
            if saved is None:
                self.consts.pop(var, None)
            else:
                self.consts[var] = saved
        return total

    def declare_inputs(self, items: list, data: bool = False) -> None:
        g = self.g
        for name, span, kind, payload in items:
            if name in self.declared:
                raise CgraphError(f"input '{name}' is declared twice", span)
            if name in g.bindings:
                raise CgraphError(
                    f"input '{name}' is declared after '{name}' is used or assigned",
                    span,
                    hint="declare inputs before the statements that use them",
                )
            if name == "pi":
                raise CgraphError("'pi' is a constant and cannot be an input", span)
            self.declared.add(name)
            if kind == "shape":
                g.declared_shapes[name] = payload
            elif kind == "default":
                g.defaults[name] = self.constant_value(payload)
            i = self.new_input(name, span)
            g.bindings[name] = i
            if data:
                g.data_inputs.add(name)

    def constant_value(self, expr: tuple) -> np.ndarray:
        """Evaluate a constant expression (an input's default) now."""
        sub = Builder(self.g.source, dtype=self.dtype, constants_only=True, rng=self.rng)
        sub.defs = self.defs
        i = sub.lower(expr, None, -1)
        return np.asarray(fold_constants(sub.g, i), dtype=self.dtype)

    def define(self, st: tuple) -> None:
        fname, fspan, params, body = st[DEF_NAME], st[DEF_NAME_SPAN], st[DEF_PARAMS], st[DEF_BODY]
        if fname in FUNCTIONS or fname in CONSTRUCTORS or fname in BUILTINS:
            raise CgraphError(f"cannot redefine the built-in function '{fname}'", fspan)
        if fname in self.defs:
            raise CgraphError(f"function '{fname}' is defined twice", fspan)
        seen: set[str] = set()
        for p, pspan in params:
            if p in seen:
                raise CgraphError(f"parameter '{p}' appears twice in '{fname}'", pspan)
            seen.add(p)
        # check the body now: only parameters, earlier functions, no recursion
        stack = [body]
        while stack:
            x = stack.pop()
            if x[KIND] == "name" and x[NAME_ID] not in seen and x[NAME_ID] != "pi":
                raise CgraphError(
                    f"unknown name '{x[NAME_ID]}' in function '{fname}'",
                    _span(x),
                    hint="a function sees only its parameters" + _suggest_plain(x[NAME_ID], seen),
                )
            if x[KIND] == "call":
                callee = x[CALL_FNAME]
                callee_span = (x[START], x[CALL_NAME_END])
                if callee == fname:
                    raise CgraphError(f"function '{fname}' calls itself; recursion is not allowed", callee_span)
                known = callee in self.defs or callee in FUNCTIONS or callee in CONSTRUCTORS or callee in BUILTINS
                if not known:
                    raise _unknown_function(callee, callee_span, self.defs)
            stack.extend(subexprs(x))
        self.defs[fname] = _Def(fname, fspan, params, body, dict(self.defs), self.expanded_size(body))

    def expanded_size(self, body: tuple) -> int:
        """How many nodes one call of a body adds when inlined (capped just above max_nodes).

        Known when the function is defined, so an exponential tower of functions
        (f2(x) = f1(f1(x)), f3(x) = f2(f2(x)), ...) is refused at its call, before building.
        """
        cap = self.max_nodes + 1
        n = 0
        stack = [body]
        while stack:
            x = stack.pop()
            k = x[KIND]
            if k == "call" and x[CALL_FNAME] in self.defs:
                n += self.defs[x[CALL_FNAME]].size
            elif k != "name" or x[NAME_ID] == "pi" or x[NAME_ID] in self.consts:  # constants are nodes
                n += 1
            if n >= cap:
                return cap
            stack.extend(subexprs(x))
        return n

    # -- expressions ---------------------------------------------------------------
    def lookup(self, name: str, span: Span, env: dict[str, int] | None, frame: int) -> int:
        if env is not None:  # inside a function body
            if name in env:
                return env[name]
            if name == "pi":
                return self.const(math.pi, span, frame)
            fname = self.g.frames[frame].name
            raise CgraphError(
                f"unknown name '{name}' in function '{fname}'",
                span,
                hint="a function sees only its parameters" + _suggest_plain(name, env),
            )
        if name in self.consts:  # a loop's variable: a constant
            return self.const(float(self.consts[name]), span, frame)
        g = self.g
        i = g.bindings.get(name)
        if i is not None:
            return i
        if name == "pi":
            return self.const(math.pi, span, frame)
        i = self.new_input(name, span)
        if self.declared and not self.constants_only:  # a program that declares its inputs: this one may be a typo
            best = closest(name, list(g.bindings))
            g.warnings.append(
                (
                    f"'{name}' is not declared with 'input', so it is an input"
                    + (f"; did you mean '{best}'?" if best else ""),
                    span,
                )
            )
        g.bindings[name] = i
        return i

    def _operands(self, e: tuple, env: dict[str, int] | None = None) -> list[tuple]:
        kind = e[KIND]
        if kind == "bin":
            return [e[BIN_LHS], e[BIN_RHS]]
        if kind == "neg":
            return [e[NEG_X]]
        if kind == "index":
            return [e[INDEX_X]]
        if kind == "tensor":
            if id(e) not in self.tensors_checked:
                self.check_tensor_depth(e)
            return [] if _const_tensor(e) is not None else list(e[TENSOR_ITEMS])
        if kind == "call":
            fname, args = e[CALL_FNAME], e[CALL_ARGS]
            picked = pick_call(fname, len(args), tuple(kw[KW_NAME] for kw in e[CALL_KEYWORDS]))
            call = None if picked is None else picked[0]  # (call, op)
            if call is not None and call.static is not None:  # the static arguments are not operands
                return list(args[: call.min_args if call.static == "axis" else 1])
            if fname in CONSTRUCTORS:
                return []
            if fname == GRAD:
                return self.grad_operands(e, env)
            return list(args)
        return []

    def check_tensor_depth(self, e: tuple) -> None:
        """Refuse a tensor literal nested deeper than MAX_DIMS, once per outermost literal (O(size))."""
        stack = [(e, 1)]
        while stack:
            x, depth = stack.pop()
            if depth > MAX_DIMS:
                raise CgraphError(f"a tensor literal may nest at most {MAX_DIMS} levels deep", _span(x))
            self.tensors_checked.add(id(x))
            stack.extend((item, depth + 1) for item in x[TENSOR_ITEMS] if item[KIND] == "tensor")

    def lower(self, expr: tuple, env: dict[str, int] | None, frame: int) -> int:
        """Lower an expression to nodes (post-order, with an explicit stack)."""
        results: list[int] = []
        stack: list[tuple] = [(expr, env, frame, False)]
        while stack:
            e, env, frame, done = stack.pop()
            kind = e[KIND]
            if kind == "num":
                results.append(self.const(e[NUM_VALUE], (e[START], e[END]), frame))
            elif kind == "name":
                results.append(self.lookup(e[NAME_ID], (e[START], e[END]), env, frame))
            elif kind == "callend":  # a user function's body has been lowered: its root gets the call's span
                root = results[-1]
                if root >= e.first_node:
                    self.g.spans[root] = e.span
            elif not done:
                stack.append((e, env, frame, True))
                for c in reversed(self._operands(e, env)):
                    stack.append((c, env, frame, False))
            else:
                n = len(self._operands(e, env))
                ids = tuple(results[len(results) - n :]) if n else ()
                if n:
                    del results[len(results) - n :]
                r = self.combine(e, ids, env, frame, stack)
                if r is not None:
                    results.append(r)
        return results[-1]

    def combine(self, e: tuple, ids: tuple[int, ...], env, frame: int, stack: list) -> int | None:
        kind = e[KIND]
        span = (e[START], e[END])
        if kind == "bin":
            return self.node(e[BIN_OP], ids, span, frame)
        if kind == "neg":
            return self.node("neg", ids, span, frame)
        if kind == "index":
            return self.index(e, ids, span, frame)
        if kind == "tuple":
            raise CgraphError(
                "a tuple such as (0, 1) is only a static argument, such as axis=(0, 1)",
                span,
                hint="for a vector, write a tensor literal: [0, 1]",
            )
        if kind == "tensor":
            if not ids:
                data = _const_tensor(e)
                try:
                    arr = np.array(data, dtype=self.dtype)
                except ValueError:
                    raise CgraphError("tensor literal rows have different lengths", span) from None
                return self.const(arr, span, frame)
            if len(ids) == 0:
                raise CgraphError("empty tensor literal", span)
            return self.node("stack", ids, span, frame)
        if kind == "call":
            return self.call(e, ids, env, frame, stack)
        raise CgraphError(f"internal error: cannot lower {kind}", span)

    def index(self, e: tuple, ids: tuple[int, ...], span: Span, frame: int) -> int:
        """An indexing node: integers (negative from the end), slices, ``...``, ``None`` (a new axis) and lists
        of integers (numpy's integer-array indexing), all fixed when the program is compiled."""
        idx: list = []
        spans: list[Span] = []
        for sub in e[INDEX_SUBS]:
            kind = sub[SUB_KIND]
            if kind == "e":
                idx.append(Ellipsis)
                spans.append(span)
            elif kind == "i":
                x = sub[SUB_EXPR]
                spans.append(_span(x))
                if x[KIND] == "name" and x[NAME_ID] == "None" and "None" not in self.consts:
                    idx.append(None)
                elif x[KIND] == "tensor":
                    idx.append(self.index_array(x))
                else:
                    idx.append(_static_int(x, "an index", self.consts))
            else:
                start, stop, step = (
                    None if p is None else _static_int(p, "a slice bound", self.consts)
                    for p in (sub[SLICE_START], sub[SLICE_STOP], sub[SLICE_STEP])
                )
                if step == 0:
                    raise CgraphError("a slice step cannot be zero", span)
                idx.append(slice(start, stop, step))
                spans.append(span)
        shape = self.g.shapes[ids[0]]
        if shape is not None:
            problem = index_problem(shape, tuple(idx))
            if problem is not None:
                k, message = problem
                raise CgraphError(message, spans[k] if k is not None else span)
        return self.node("index", ids, span, frame, {"idx": tuple(idx)})

    def index_array(self, x: tuple) -> np.ndarray:
        """A list of whole numbers as an index (``x[[0, 2, 2]]``), nested lists for several dimensions."""
        if id(x) not in self.tensors_checked:
            self.check_tensor_depth(x)

        def items(t: tuple) -> list:
            return [
                items(item) if item[KIND] == "tensor" else _static_int(item, "an index in a list", self.consts)
                for item in t[TENSOR_ITEMS]
            ]

        try:
            return np.array(items(x), dtype=np.intp)
        except ValueError:
            raise CgraphError("the rows of an index list have different lengths", _span(x)) from None

    def call(self, e: tuple, ids: tuple[int, ...], env, frame: int, stack: list) -> int | None:
        fname, args = e[CALL_FNAME], e[CALL_ARGS]
        span = _span(e)
        name_span = (e[START], e[CALL_NAME_END])
        visible = self.defs if env is None else self.g.frames[frame].defs
        user = visible.get(fname)
        if e[CALL_KEYWORDS] and (user is not None or fname in CONSTRUCTORS):
            kind = "a function of the program" if user is not None else "a constructor"
            raise CgraphError(f"{fname}() is {kind} and takes no keyword arguments", e[CALL_KEYWORDS][0][KW_SPAN])
        if user is not None:
            if len(args) != len(user.params):
                raise CgraphError(f"{fname}() takes {_n_args(len(user.params))}, got {len(args)}", span)
            if len(self.g.ops) + user.size > self.max_nodes:
                about = f"over {self.max_nodes:,}" if user.size > self.max_nodes else f"about {user.size:,}"
                raise TooManyNodes(
                    f"this call of {fname}() would add {about} nodes when inlined, "
                    f"taking the program past the limit of {self.max_nodes:,} nodes",
                    span,
                    hint="each call of a function is inlined, so functions that call others several times "
                    "grow exponentially; simplify the program",
                )
            fr = len(self.g.frames)
            self.g.frames.append(Frame(fname, span, frame, user.defs))
            new_env = {p: i for (p, _), i in zip(user.params, ids)}
            stack.append((_CallEnd("callend", span, len(self.g.ops)), new_env, fr, False))
            stack.append((user.body, new_env, fr, False))
            return None
        if fname in CONSTRUCTORS:
            return self.construct(fname, args, span, frame)
        if fname == GRAD:
            return self.grad(e, ids, frame)
        if fname not in FUNCTIONS:
            if fname in self.defs:
                raise CgraphError(f"function '{fname}' is defined after the function that calls it", name_span)
            raise _unknown_function(fname, name_span, visible)
        n = len(args)
        keywords = e[CALL_KEYWORDS]
        names = self.check_keywords(fname, args, keywords)
        picked = pick_call(fname, n, names)
        if picked is None and pick_call(fname, n) is not None:
            raise self.keyword_error(fname, n, keywords)
        if picked is None:
            least, most = arity_bounds(fname)
            if most is None:
                want = f"at least {_n_args(least)}"
            elif least == most:
                want = _n_args(least)
            else:
                want = f"{least} to {most} arguments"
            keywords_taken = list(dict.fromkeys(k for c, _ in FUNCTIONS[fname] for k in c.keywords))
            hint = None
            if most is not None and n > most and keywords_taken:  # norm(x, 2): numpy's spelling, not cgraph's
                shown = ", ".join(f"{k}=…" for k in keywords_taken)
                hint = f"{fname}'s other parameters are given by name: {fname}(…, {shown})"
            elif keywords and not keywords_taken:  # sin(x=1): a name given to an argument that has none
                hint = f"{fname}() takes no keyword arguments: give its arguments in order, without names"
            raise CgraphError(f"{fname}() takes {want}, got {n}", span, hint=hint)
        call, spec = picked
        op = spec.name
        attrs: dict | None = None
        if call.static == "axis" and n > call.min_args:
            attrs = {"axis": self.static_axis(args[-1], f"the axis of {fname}()")}
        elif call.static == "dims":
            if len(args) == 2 and args[1][KIND] == "tuple":  # reshape(x, (2, 3)), reshape(x, ())
                attrs = {"dims": self.static_axis(args[1], f"a dimension of {fname}()")}
            else:
                attrs = {"dims": tuple(_static_int(a, f"a dimension of {fname}()", self.consts) for a in args[1:])}
        for name, kspan, value in keywords:
            if attrs is not None and name in attrs:
                raise CgraphError(f"{fname}() got {name} twice: as an argument and as {name}=", kspan)
            attrs = attrs if attrs is not None else {}
            attrs[name] = self.keyword_value(fname, name, value)
        if call.scalar_op is not None and not keywords and any(self.g.shapes[i] == () for i in ids):
            op = call.scalar_op
        return self.node(op, ids, span, frame, attrs)

    def grad_operands(self, e: tuple, env: dict[str, int] | None) -> list[tuple]:
        """``grad(loss, w)``: both arguments are operands; ``w`` must name a node that exists already."""
        args = e[CALL_ARGS]
        if e[CALL_KEYWORDS]:
            raise CgraphError("grad() takes no keyword arguments", e[CALL_KEYWORDS][0][KW_SPAN])
        if len(args) != 2:
            raise CgraphError(f"grad() takes 2 arguments, got {len(args)}", _span(e), hint="write grad(loss, w)")
        w = args[1]
        if w[KIND] != "name":
            raise CgraphError(
                "the second argument of grad() must be the name of a node (an input or an assigned value)",
                _span(w),
            )
        name = w[NAME_ID]
        known = self.g.bindings if env is None else env
        # a name the loss reads before any assignment is an input (declared or not), made as the loss is lowered:
        # grad(x^3, x) on the first line differentiates with respect to the input x
        implicit = env is None and name != "pi" and name not in self.consts and _reads(args[0], name)
        if name not in known and not implicit:
            raise CgraphError(
                f"'{name}' is not a node: grad() differentiates with respect to an input or a value assigned "
                "before it" + _suggest_plain(name, known),
                _span(w),
            )
        return list(args)

    def grad(self, e: tuple, ids: tuple[int, ...], frame: int) -> int:
        """The nodes of ``∂loss/∂w`` (:func:`cgraph_cli.ir.backward.gradient_nodes`), all with the call's span."""
        g = self.g
        loss, w = ids
        span = _span(e)
        loss_expr, w_expr = e[CALL_ARGS]
        shape = g.shapes[loss]
        if shape is not None and math.prod(shape) != 1:
            raise CgraphError(
                f"grad() differentiates a scalar, but its first argument has shape {fmt_shape(shape)}",
                _span(loss_expr),
                hint="differentiate a scalar such as sum(...) or mean(...)",
            )
        tape = _Tape(self, span, frame, follow=False)
        tape.shape(loss)
        node = gradient_nodes(tape, g.ops, g.args, g.attrs, loss, [w])[w]
        if node is None:
            wname = w_expr[NAME_ID]
            g.warnings.append(
                (
                    f"'{self.g.source.text[loss_expr[START] : loss_expr[END]]}' does not depend on '{wname}': "
                    "the gradient is zero",
                    span,
                )
            )
            node = tape.const(np.zeros(tape.shape(w)))
        return node

    def static_axis(self, expr: tuple, what: str) -> int | tuple[int, ...]:
        """A whole number or a tuple of them, such as an axis (0, 1)."""
        if expr[KIND] == "tuple":
            try:
                return static_value(expr, self.consts)
            except _NotStatic as err:
                raise CgraphError(f"{what} must be a whole-number constant", err.span) from None
        return _static_int(expr, what, self.consts)

    def keyword_value(self, fname: str, name: str, expr: tuple) -> Any:
        """A keyword argument's value, fixed when the program is compiled (:func:`static_value`)."""
        try:
            return static_value(expr, self.consts)
        except _NotStatic as err:
            raise CgraphError(
                f"the value of {name}= in {fname}() must be a constant: a number, true, false, inf "
                "or a tuple such as (0, 1)",
                err.span,
            ) from None

    def check_keywords(self, fname: str, args: tuple, keywords: tuple) -> tuple[str, ...]:
        """The names of a call's keyword arguments, once none is given twice and no positional argument follows
        one."""
        if not keywords:
            return ()
        first = keywords[0][KW_SPAN][0]
        for a in args:
            if a[START] > first:
                raise CgraphError(
                    "a positional argument cannot follow a keyword argument",
                    _span(a),
                    hint=f"write the positional arguments of {fname}() first",
                )
        seen: set[str] = set()
        for name, kspan, _ in keywords:
            if name in seen:
                raise CgraphError(f"keyword argument {name}= is given twice", kspan)
            seen.add(name)
        return tuple(kw[KW_NAME] for kw in keywords)

    def keyword_error(self, fname: str, n: int, keywords: tuple) -> CgraphError:
        """Why no call of ``fname`` with ``n`` positional arguments takes these keywords."""
        fits = [c for c, _ in FUNCTIONS[fname] if n >= c.min_args and (c.max_args is None or n <= c.max_args)]
        allowed = sorted({k for c in fits for k in c.keywords})
        anywhere = {k for c, _ in FUNCTIONS[fname] for k in c.keywords}
        for name, kspan, _ in keywords:
            if name in allowed:
                continue
            if name in anywhere:
                with_it = sorted(
                    {_n_args(c.min_args) for c, _ in FUNCTIONS[fname] if name in c.keywords},
                )
                return CgraphError(
                    f"{fname}() takes {name}= only with {' or '.join(with_it)}, got {n}",
                    kspan,
                )
            takes = ", ".join(f"{k}=" for k in allowed)
            return CgraphError(
                f"{fname}() has no keyword argument {name}="
                + (f"; it takes {takes}" if allowed else "; it takes no keyword arguments"),
                kspan,
                hint=f"did you mean {best}=?" if (best := closest(name, allowed)) else None,
            )
        return CgraphError(f"{fname}() does not take these keyword arguments together", keywords[0][KW_SPAN])

    def construct(self, fname: str, args: tuple, span: Span, frame: int) -> int:
        dims = tuple(_static_int(a, f"a dimension of {fname}()", self.consts) for a in args)
        if any(d < 0 for d in dims):
            raise CgraphError(f"{fname}() needs non-negative dimensions", span)
        if fname == "eye":
            if len(dims) != 1:
                raise CgraphError(f"eye() takes 1 argument, got {len(dims)}", span)
            shape: tuple[int, ...] = (dims[0], dims[0])
        else:
            shape = dims
        if len(shape) > MAX_DIMS:
            raise CgraphError(f"{fname}() can make at most {MAX_DIMS} dimensions, not {len(shape)}", span)
        size = math.prod(shape) or max(shape, default=0)  # (0, 10**30) is refused too
        self.count_values(size, span, f"{fname}{fmt_shape(shape)}")  # before allocating
        self.n_values -= size  # counted again by const()
        if fname == "zeros":
            v = np.zeros(shape)
        elif fname == "ones":
            v = np.ones(shape)
        elif fname == "eye":
            v = np.eye(dims[0])
        elif fname == "randn":
            v = self.rng.get().standard_normal(shape)
        else:
            v = self.rng.get().random(shape)
        return self.const(v, span, frame)


class _Tape:
    """Where :func:`cgraph_cli.ir.backward.gradient_nodes` puts the nodes of the backward pass: the builder's
    graph. Each node gets the span and frame of the forward node whose VJP made it (``follow``), or those of
    the ``grad()`` call; an operation on constants is folded into a constant. ``made_by`` maps each node made
    here to the forward node whose VJP (or, for the seed, whose gradient) made it; ``gradient_of`` each
    forward node to the node holding its complete gradient."""

    def __init__(self, b: Builder, span: Span, frame: int, *, follow: bool) -> None:
        self.b = b
        self.dtype = b.dtype
        self.span = span
        self.frame = frame
        self.follow = follow
        self.at: int | None = None
        self.made_by: dict[int, int] = {}
        self.gradient_of: dict[int, int] = {}

    def shape(self, i: int) -> tuple[int, ...]:
        s = self.b.g.shapes[i]
        if s is None:
            raise CgraphError(
                f"the gradient needs the shape of '{self.b.g.label(i)}', which is not known",
                self.span,
                hint="give the inputs values (--at) or declare their shapes",
            )
        return s

    def spans(self, i: int) -> Span:
        return self.b.g.spans[i]

    def focus(self, i: int) -> None:
        self.at = i
        if self.follow:
            self.span = self.b.g.spans[i]
            self.frame = self.b.g.frames_of[i]

    def gradient(self, i: int, node: int) -> None:
        self.gradient_of[i] = node

    def const(self, value: Any) -> int:
        if np.ndim(value) == 0:
            value = float(value)
        return self._made(self.b.const(value, self.span, self.frame))

    def op(self, name: str, args: tuple[int, ...], attrs: dict | None) -> int:
        g = self.b.g
        if all(g.ops[j] == "const" for j in args):
            with np.errstate(all="ignore"):
                v = OPS[name].fwd(*[g.attrs[j]["value"] for j in args], **(attrs or {}))  # type: ignore[index]
            return self.const(np.asarray(v, dtype=self.dtype))
        return self._made(self.b.node(name, args, self.span, self.frame, attrs))

    def _made(self, node: int) -> int:
        if self.at is not None:
            self.made_by[node] = self.at
        return node


@dataclass
class BackwardPass:
    """The backward pass of ``g``'s output ``out`` as nodes (:func:`backward_pass`)."""

    graph: Graph  # a copy of g with the backward nodes appended (ids from len(g) on)
    grads: dict[int, int]  # each source -> the node holding ∂out/∂source
    made_by: dict[int, int]  # each new node -> the forward node whose VJP made it (the seed ∂out/∂out: out)
    gradient_of: dict[int, int]  # each forward node the backward pass reached -> the node holding ∂out/∂it


def backward_graph(
    g: Graph, out: int, sources: list[int] | None = None, *, max_memory: int | None = None
) -> tuple[Graph, dict[int, int]]:
    """A copy of ``g`` extended with the backward pass as nodes: ``∂out/∂s`` for every node ``s`` of
    ``sources`` (default: every input), as a map from each source to its gradient node (a zero constant
    where ``out`` does not depend on it). The forward nodes keep their ids; the new ones come after them,
    each with the span of the forward node whose VJP made it. ``out`` must hold one number."""
    p = backward_pass(g, out, sources, max_memory=max_memory)
    return p.graph, p.grads


def backward_pass(
    g: Graph, out: int, sources: list[int] | None = None, *, max_memory: int | None = None
) -> BackwardPass:
    """:func:`backward_graph`, with which forward node made each backward node and each forward node's
    gradient node (for code that reads as the backward pass: ``cgraph export``)."""
    b = Builder(g.source, dtype=g.dtype, max_memory=max_memory)
    b.g = g.copy()
    b.n_values = sum(math.prod(s) if s else 1 for s in g.shapes if s is not None)
    sources = list(g.inputs.values()) if sources is None else list(sources)
    tape = _Tape(b, g.spans[out], g.frames_of[out], follow=True)
    try:
        found = gradient_nodes(tape, b.g.ops, b.g.args, b.g.attrs, out, sources)
    except CgraphError as err:
        raise err.with_source(g.source) from None
    grads = {}
    for s, n in found.items():
        if n is None:
            n = tape.const(np.zeros(tape.shape(s)))
            tape.made_by[n] = s  # out does not depend on s: a zero
        grads[s] = n
    return BackwardPass(b.g, grads, tape.made_by, tape.gradient_of)


def name_gradients(bg: Graph, g: Graph, out: int, grads: dict[int, int]) -> None:
    """Name the gradient nodes of a backward graph ``∂out/∂x`` (those made by the backward pass, not yet named),
    for pictures of it."""
    for s, n in grads.items():
        if n >= len(g) and bg.names[n] is None:
            bg.names[n] = f"∂{g.label(out)}/∂{g.label(s)}"


def direction_prefix() -> str:
    """How :func:`hvp_graph` names the input holding the direction of input ``x``: ``v[x]`` (no program can)."""
    return "v["


def hvp_graph(g: Graph, out: int, *, max_memory: int | None = None) -> tuple[Graph, int, dict[str, str]]:
    """The graph of ``s = Σ_x sum(∂out/∂x · v[x])`` over the inputs ``x`` of ``g``, with one new input
    ``v[x]`` of ``x``'s shape each: the backward pass as nodes (:func:`backward_graph`) and a dot product.
    Reverse mode on it gives, for each input ``x``, ``∂s/∂x = (H v)[x]``: a Hessian-vector product at a few
    times the cost of a gradient, without forming the Hessian. Returns the graph, ``s`` and the map from
    each input's name to its direction's name."""
    bg, grads = backward_graph(g, out, max_memory=max_memory)
    b = Builder(bg.source, dtype=bg.dtype, max_memory=max_memory)
    b.g = bg
    b.n_values = sum(math.prod(s) if s else 1 for s in bg.shapes if s is not None)
    tape = _Tape(b, bg.spans[out], bg.frames_of[out], follow=False)
    names: dict[str, str] = {}
    total: Any = None
    for x, i in g.inputs.items():
        v = b.node("input", (), bg.spans[i], -1)
        names[x] = bg.names[v] = direction_prefix() + x + "]"
        bg.shapes[v] = bg.shapes[i]
        bg.inputs[names[x]] = v
        term = np.sum(Traced(tape, grads[i]) * Traced(tape, v))
        total = term if total is None else total + term
    if total is None:  # no inputs: s = 0
        return bg, tape.const(0.0), names
    bg.outputs = [total.node]
    return bg, total.node, names


def fold_constants(g: Graph, upto: int) -> Any:
    """The value of node ``upto`` of a graph of constants and ops on them, by the op records' forward functions
    (the engine's reference forward, for a graph without inputs: an input's default is folded while building)."""
    vals: list[Any] = []
    with np.errstate(all="ignore"):
        for op, args, attrs in zip(g.ops[: upto + 1], g.args, g.attrs):
            if op == "const":
                vals.append(attrs["value"])  # type: ignore[index]
            else:
                vals.append(OPS[op].fwd(*[vals[j] for j in args], **(attrs or {})))
    return vals[upto]


def _nested_ranges_use_names(body: list) -> bool:
    """Whether a loop nested in ``body`` has a range that reads a name (an outer loop's variable)."""
    stack = [st for st in body if st[KIND] == "for"]
    while stack:
        st = stack.pop()
        exprs = list(st[FOR_ARGS])
        while exprs:
            x = exprs.pop()
            if x[KIND] == "name":
                return True
            exprs.extend(subexprs(x))
        stack.extend(sub for sub in st[FOR_BODY] if sub[KIND] == "for")
    return False


def _n_args(n: int) -> str:
    return f"{n} argument{'s' * (n != 1)}"


def _unknown_function(name: str, span: Span, defs: dict) -> CgraphError:
    known = set(FUNCTIONS) | set(CONSTRUCTORS) | set(BUILTINS) | set(defs)
    return CgraphError(f"unknown function '{name}'" + did_you_mean(name, known), span)


def _suggest_plain(name: str, choices) -> str:
    best = closest(name, list(choices))
    return f" (did you mean '{best}'?)" if best else ""


def build_graph(
    stmts: Iterable[tuple],
    source: Source,
    values: dict[str, np.ndarray] | None = None,
    *,
    seed: int = 0,
    dtype: Any = np.float64,
    max_memory: int | None = None,
    max_nodes: int = MAX_NODES,
) -> Graph:
    """Lower parsed statements into a Graph (see :class:`Builder`); ``stmts`` may be an iterator, whose
    statements are then dropped as soon as they are lowered."""
    try:
        return Builder(source, values, seed=seed, dtype=dtype, max_memory=max_memory, max_nodes=max_nodes).build(stmts)
    except CgraphError as err:
        raise err.with_source(source) from None


# -- printing ----------------------------------------------------------------------


def format_ir(g: Graph) -> str:
    """One line per node in topological order, in the spirit of a jaxpr listing."""
    lines = []
    width = len(str(len(g) - 1)) + 1
    for i in range(len(g)):
        op = g.ops[i]
        lhs = f"%{i}".rjust(width)
        shape = "?" if g.shapes[i] is None else fmt_shape(g.shapes[i])
        if op == "const":
            v = g.attrs[i]["value"]
            operands = fmt_const(v)
        elif op == "input":
            operands = ""
        else:
            operands = " ".join(f"%{j}" for j in g.args[i])
            if g.attrs[i]:
                operands += " " + " ".join(f"{k}={fmt_attr(v)}" for k, v in sorted(g.attrs[i].items()))
        line, col = g.line_col(i)
        name = f" {g.names[i]}" if g.names[i] else ""
        lines.append(f"{lhs}{name} = {op} {operands}".rstrip() + f" : {shape}  @{line}:{col}")
    outs = ", ".join(g.label(i) for i in g.outputs)
    lines.append(f"output {outs}")
    return "\n".join(lines)


def ir_data(g: Graph) -> dict[str, Any]:
    """The IR as JSON-ready data."""
    nodes = []
    for i in range(len(g)):
        line, col = g.line_col(i)
        attrs = {}
        for k, v in sorted((g.attrs[i] or {}).items()):
            if k == "value":
                attrs[k] = np.asarray(v).tolist()
            elif k == "idx":
                attrs[k] = fmt_index(v)
            else:
                attrs[k] = list(v) if isinstance(v, tuple) else v
        nodes.append(
            {
                "id": i,
                "name": g.names[i],
                "op": g.ops[i],
                "args": list(g.args[i]),
                "attrs": attrs,
                "shape": None if g.shapes[i] is None else list(g.shapes[i]),
                "expr": g.short_text(i),
                "line": line,
                "column": col,
                "frame": g.frames_of[i],
            }
        )
    return {
        "inputs": list(g.inputs),
        "outputs": [g.label(i) for i in g.outputs],
        "nodes": nodes,
        "frames": [{"id": k, "name": f.name, "parent": f.parent} for k, f in enumerate(g.frames)],
    }
