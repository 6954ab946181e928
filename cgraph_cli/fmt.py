"""The one formatter family: numbers, shapes and indices as text, used by every layer.

Every view (tables, ``explain``, pictures, ``check``, error messages) writes numbers through
:func:`number`, so a value reads the same everywhere; the variants differ only in the number of
significant digits and in styling (pictures write ``∞`` and short exponents).
"""

from __future__ import annotations

import math
from typing import Any


def fmt_number(x: Any, digits: int = 6) -> str:
    """Short, exact-looking numbers: 14, -1, 0.5, 1.2346e-05, NaN, inf."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    return format(x, f".{digits}g")


def fmt_shape(shape: tuple[int, ...]) -> str:
    """``(2, 3)``, ``(3,)``, ``()``: Python's spelling of a shape."""
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def fmt_index(idx: tuple) -> str:
    """An index as written in the language: ``[0:2, 1]``."""
    parts = []
    for i in idx:
        if isinstance(i, slice):
            a = "" if i.start is None else str(i.start)
            b = "" if i.stop is None else str(i.stop)
            parts.append(f"{a}:{b}" + ("" if i.step is None else f":{i.step}"))
        else:
            parts.append(str(i))
    return "[" + ", ".join(parts) + "]"
