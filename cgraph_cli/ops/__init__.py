"""The op records: everything cgraph knows about each operation, one record per op.

``OPS`` maps an op's name to its :class:`~cgraph_cli.ops.core.Op`; ``FUNCTIONS`` maps each
function name of the language to the ops it may call (``max`` with one operand is the reduction
``amax``, with several the elementwise ``maximum``), derived from the records' ``calls``.
Adding an op is adding one record to one of the family modules below.
"""

from __future__ import annotations

from cgraph_cli.ops import arith, elementwise, reduce, tensor
from cgraph_cli.ops.core import (
    ROWWISE,
    Call,
    Carry,
    Derive,
    Kernel,
    Kink,
    Op,
    Rows,
    Shape,
    broadcast_shape,
    reduce_shape,
    same_shape,
    unbroadcast,
)

__all__ = [
    "CONSTRUCTORS",
    "FUNCTIONS",
    "LEAF_OPS",
    "NUMPY",
    "OPS",
    "ROWWISE",
    "Call",
    "Carry",
    "Derive",
    "Kernel",
    "Kink",
    "Op",
    "Rows",
    "Shape",
    "arity_text",
    "broadcast_shape",
    "reduce_shape",
    "same_shape",
    "signature",
    "unbroadcast",
]

OPS: dict[str, Op] = {}
for _family in (arith, elementwise, reduce, tensor):
    for _op in _family.RECORDS:
        assert _op.name not in OPS, f"op '{_op.name}' is registered twice"
        OPS[_op.name] = _op

# the numpy functions the records are (Op.numpy), for VJPs run on traced values (ir/trace.py)
NUMPY: dict = {}
for _op in OPS.values():
    if _op.numpy is not None:
        assert _op.numpy not in NUMPY, f"ops '{NUMPY[_op.numpy].name}' and '{_op.name}' are the same numpy function"
        NUMPY[_op.numpy] = _op

# the language's function names: name -> [(call, op)], in registration order
FUNCTIONS: dict[str, list[tuple[Call, Op]]] = {}
for _op in OPS.values():
    for _c in _op.calls:
        FUNCTIONS.setdefault(_c.name, []).append((_c, _op))

# Nodes that are not operations: their value comes from outside the records.
LEAF_OPS = ("input", "const")

# Constructors: constants (no gradient) built from integer arguments.
CONSTRUCTORS = ("zeros", "ones", "eye", "randn", "rand")


def pick_call(name: str, n: int, keywords: tuple[str, ...] = ()) -> tuple[Call, Op] | None:
    """The call of function ``name`` that takes ``n`` positional arguments and accepts every one of
    ``keywords`` (None: no such function, arity or keyword set)."""
    for c, op in FUNCTIONS.get(name, ()):
        if n >= c.min_args and (c.max_args is None or n <= c.max_args) and set(keywords) <= set(c.keywords):
            return c, op
    return None


def arity_bounds(name: str) -> tuple[int, int | None]:
    """The fewest and most arguments function ``name`` takes (None: no upper bound)."""
    calls = [c for c, _ in FUNCTIONS[name]]
    most = [c.max_args for c in calls]
    return min(c.min_args for c in calls), None if None in most else max(most)  # type: ignore[type-var]


def signature(call: Call, op: Op) -> str:
    """How a call is written, with its operands named: ``sum(x[, axis])``, ``clip(x, lo, hi)``,
    ``max(a, b, ...)``, ``reshape(x, d1, d2, ...)`` (its keywords are ``call.keywords``)."""
    if call.static == "dims":
        return f"{call.name}(x, d1, d2, ...)"
    if call.max_args is None:
        named = ["a", "b"][: max(call.min_args, 1)]
        return f"{call.name}({', '.join(named)}, ...)"
    n = call.min_args
    if op.ports is not None and len(op.ports) == n:
        named = list(op.ports)
    else:
        named = ["x"] if n == 1 else ["a", "b", "c"][:n]
    text = ", ".join(named)
    if call.static == "axis" and call.max_args > n:
        text += "[, axis]"
    return f"{call.name}({text})"


def arity_text(call: Call) -> str:
    """How many arguments a call takes (the operands and a positional axis or dimensions): ``1``, ``1–2``, ``2+``."""
    if call.max_args is None:
        return f"{call.min_args}+"
    if call.max_args == call.min_args:
        return str(call.min_args)
    return f"{call.min_args}–{call.max_args}"
