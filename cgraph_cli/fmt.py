"""The one formatter family: numbers, tensors, shapes and indices as text, used by every layer.

Every view (tables, ``explain``, pictures, ``check``, ``ir``, error messages) writes a number through
:func:`fmt_number`, so a value reads the same everywhere; the views differ only in the number of
significant digits and in the style:

- ``"plain"``: ``14``, ``-1``, ``0.5``, ``1.2346e-05``, ``NaN``, ``inf``, ``-inf`` (0 for -0);
- ``"picture"``: as plain, with ``∞`` and short exponents (``1e-5``);
- ``"python"``: Python's ``format(x, ".{digits}g")`` as it is (``nan``, ``-0``);
- ``"sci"``: ``1.00e-05`` (``digits`` after the point) for finite numbers, plain otherwise.

Tensors are built from those numbers: :func:`fmt_list` (every entry, as nested lists),
:func:`fmt_matrix` (every entry, a line per row), :func:`fmt_value` (numpy's summary with ``...``),
:func:`fmt_cell` (a table cell), :func:`fmt_picture` and :func:`picture_grid` (a box of a picture),
:func:`fmt_norm` (an L2 norm), :func:`fmt_operand` (a value inside a formula) and :func:`fmt_const`
(``cgraph ir``'s constants). The JSON and CSV spellings (:func:`json_number`, :func:`json_value`,
:func:`csv_cell`) keep full precision: the shortest text that round-trips in the dtype computed (:func:`shortest`).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

FULL = 6  # a tensor with at most this many entries is written in full (explain, node names)
SMALL = 12  # tables and pictures show a tensor of at most this many entries in full, as a matrix


# -- numbers -------------------------------------------------------------------------


def fmt_number(x: Any, digits: int = 6, style: str = "plain") -> str:
    """A number as text: ``digits`` significant digits in one of the styles of the module's docstring."""
    x = float(x)
    if style == "python":
        return format(x, f".{digits}g")
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        if style == "picture":
            return "∞" if x > 0 else "-∞"
        return "inf" if x > 0 else "-inf"
    if style == "sci":
        return format(x, f".{digits}e")
    if x == 0:
        return "0"
    s = format(x, f".{digits}g")
    if style == "picture" and "e" in s:
        mant, exp = s.split("e")
        s = f"{mant}e{int(exp)}"
    return s


def shortest(v: Any) -> Any:
    """Numbers as float64 whose shortest text (``repr``, as JSON and CSV write floats) is the shortest text that
    round-trips in the dtype they were computed in: a float32 3.1415927 stays ``3.1415927``, not its float64
    widening ``3.1415927410125732``. float64 numbers are returned as they are (a float, or a float64 array)."""
    a = np.asarray(v)
    if a.dtype not in (np.float32, np.float16):
        return float(a) if a.ndim == 0 and not isinstance(v, np.ndarray) else a.astype(np.float64, copy=False)
    if a.ndim == 0:
        return float(str(a[()]))
    return np.array([float(str(x)) for x in a.ravel()], dtype=np.float64).reshape(a.shape)


# strict JSON has no token for a non-finite number: cgraph writes these strings, and reads them back (--at-file)
JSON_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def json_nonfinite(x: float) -> str:
    """The string of :data:`JSON_NONFINITE` for a NaN or an infinity."""
    return "NaN" if x != x else ("Infinity" if x > 0 else "-Infinity")


def json_number(x: Any) -> Any:
    """Strict JSON: non-finite numbers become the strings of :data:`JSON_NONFINITE`; float32 numbers keep
    their own shortest text (:func:`shortest`)."""
    x = float(shortest(x))
    return x if math.isfinite(x) else json_nonfinite(x)


def json_data(obj: Any) -> Any:
    """``obj`` (dicts, lists, numbers, text) with every non-finite float as the strings of :func:`json_number`,
    ready for strict JSON (SPEC §3)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else json_number(obj)
    if isinstance(obj, dict):
        return {k: json_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_data(v) for v in obj]
    return obj


def json_text(obj: Any, *, ensure_ascii: bool = True) -> str:
    """Strict JSON text of ``obj`` (through :func:`json_data`), indented by 2, as the CLI prints it."""
    return json.dumps(json_data(obj), indent=2, ensure_ascii=ensure_ascii, allow_nan=False)


# -- tensors -------------------------------------------------------------------------


def fmt_list(v: Any, digits: int = 6, style: str = "plain") -> str:
    """Every entry, as nested lists: ``[[1, 2], [3, 4]]`` (a scalar as a number)."""
    a = np.asarray(v, dtype=np.float64)
    if a.ndim == 0:
        return fmt_number(a, digits, style)
    return "[" + ", ".join(fmt_list(r, digits, style) for r in a) + "]"


def fmt_brief(v: Any, digits: int, style: str = "plain", dots: str = "…") -> str:
    """The first two and the last entry: ``[0, 1, …, 999]``."""
    flat = np.asarray(v).ravel()
    first, second, last = (fmt_number(flat[k], digits, style) for k in (0, 1, -1))
    return f"[{first}, {second}, {dots}, {last}]"


def fmt_norm(v: Any, digits: int = 6, style: str = "plain") -> str:
    """The L2 norm of a tensor."""
    a = np.asarray(v, dtype=np.float64)
    with np.errstate(all="ignore"):
        return fmt_number(np.sqrt(np.sum(a * a)), digits, style)


def fmt_value(v: Any, *, limit: int = 4) -> str:
    """A scalar as a number; a tensor abbreviated to its first and last entries (numpy's summary)."""
    if v is None:
        return "—"
    a = np.asarray(v)
    if a.ndim == 0:
        return fmt_number(a)
    with np.printoptions(precision=4, threshold=limit, edgeitems=2, suppress=False):
        text = np.array2string(a, separator=", ", formatter={"float_kind": lambda x: fmt_number(x)})
    return " ".join(text.split())


def fmt_grid(v: Any, digits: int = 4, style: str = "plain") -> list[list[str]]:
    """A tensor's entries as rows of texts: a vector is one row, a matrix a row per row, a tensor of more
    dimensions a row per innermost vector (its shape, shown beside it, tells how they stack)."""
    a = np.asarray(v)
    rows = a.reshape(1, -1) if a.ndim < 2 else a.reshape(-1, a.shape[-1])
    return [[fmt_number(x, digits, style) for x in r] for r in rows]


def fmt_matrix(v: Any, digits: int = 4, style: str = "python") -> str:
    """Every entry, nested in brackets as numpy prints them, a line per innermost vector and the columns
    right-aligned::

        [[1, -2,  3],
         [4,  5, 60]]
    """
    a = np.asarray(v)
    if a.ndim == 0:
        return fmt_number(a, digits, style)
    if a.size == 0:
        return fmt_list(a, digits, style)
    grid = fmt_grid(a, digits, style)
    widths = [max(len(r[k]) for r in grid) for k in range(len(grid[0]))]
    lines = ["[" + ", ".join(t.rjust(w) for t, w in zip(r, widths)) + "]" for r in grid]
    k = 1  # lines per block of the current depth
    for d in range(a.ndim - 2, -1, -1):  # wrap each block of shape[d] sub-blocks in brackets, innermost first
        k *= a.shape[d + 1] if d + 1 < a.ndim - 1 else 1
        n = a.shape[d]
        out = []
        for start in range(0, len(lines), n * k):
            block = lines[start : start + n * k]
            for m in range(k - 1, len(block) - 1, k):  # a comma after every sub-block but the last
                block[m] += ","
            out += ["[" + block[0]] + [" " + ln for ln in block[1:]]
            out[-1] += "]"
        lines = out
    return "\n".join(lines)


def fmt_cell(v: Any) -> str:
    """A table cell: scalars in full; tensors of up to :data:`SMALL` entries in full as a matrix (a line per
    row), larger ones as a few entries; 4 significant digits."""
    if v is None:
        return "—"
    a = np.asarray(v)
    if a.ndim == 0:
        return fmt_number(a)
    if a.size == 0:
        return "[]"
    if a.size <= SMALL:  # (entries spelled as a scalar cell spells them: NaN, and 0 for -0)
        return fmt_matrix(a, 4, "plain")
    return fmt_brief(a, 4, "plain", "...")


def fmt_picture(v: Any) -> str:
    """A value in a picture's box on one line: scalars in full, small tensors in full, larger ones abbreviated
    or as a norm (:func:`picture_grid` gives the matrix form of a small tensor)."""
    a = np.asarray(v)
    if a.size == 1:
        return fmt_number(a.reshape(()), 4, "picture")
    if a.size == 0:
        return "[]"
    if a.ndim == 1 and a.size > 4:
        return fmt_brief(a, 3, "picture")
    if a.ndim <= 2 and a.size <= 4:
        return fmt_list(a, 3, "picture")
    return f"‖·‖ = {fmt_norm(a, 4, 'picture')}"


def picture_grid(v: Any) -> list[list[str]] | None:
    """A tensor of 2 to :data:`SMALL` entries as the rows of a matrix for a picture (3 significant digits);
    None for a scalar, an empty or a larger tensor (:func:`fmt_picture` writes those)."""
    a = np.asarray(v)
    if a.ndim == 0 or not 2 <= a.size <= SMALL:
        return None
    return fmt_grid(a, 3, "picture")


def is_small(v: Any) -> bool:
    """Whether a value is written in full (at most :data:`FULL` entries)."""
    return np.size(v) <= FULL


def fmt_operand(v: Any, *, first: bool = True) -> str:
    """A value inside a formula: small values in full (negative ones in parentheses unless first), else ``…``."""
    s = fmt_list(v) if is_small(v) else "…"
    if not first and s.startswith("-"):
        return f"({s})"
    return s


def fmt_const(v: Any) -> str:
    """A constant in ``cgraph ir``: a number, or numpy's abbreviated array."""
    v = np.asarray(v)
    if v.ndim == 0:
        return fmt_number(v, 6, "python")
    return np.array2string(v, precision=4, threshold=6, edgeitems=2, separator=", ").replace("\n", "")


def json_value(v: Any) -> Any:
    """A value as JSON-ready data: a number or nested lists (non-finite numbers as strings)."""
    if v is None:
        return None
    a = np.asarray(shortest(v), dtype=np.float64)
    if a.ndim == 0:
        return json_number(a)
    if np.all(np.isfinite(a)):
        return a.tolist()
    flat = [json_number(x) for x in a.ravel()]
    out: Any = flat
    for d in reversed(a.shape[1:]):
        out = [out[i : i + d] for i in range(0, len(out), d)]
    return out


def csv_cell(v: Any) -> str:
    """A CSV cell: a number in full precision (``repr``, float32 as its own shortest text; NaN, inf, -inf), a
    tensor as compact JSON."""
    if v is None:
        return ""
    a = np.asarray(v)
    if a.ndim == 0:
        return repr(float(shortest(a))) if np.isfinite(a) else fmt_number(a)
    return json.dumps(json_value(a), separators=(",", ":"))


def csv_number(x: Any) -> str:
    """One number as a CSV cell (:func:`csv_cell` of a scalar): ``repr`` of its shortest text, NaN, inf, -inf."""
    a = np.asarray(x)
    return repr(float(shortest(a))) if np.isfinite(a) else fmt_number(a)


# orjson's C encoder writes the same shortest round-trip digits as repr (for float32, as numpy's str of the
# float32), spelt the same way except in these magnitude windows: it writes 0.00001 and 1.5e-7 where repr
# writes 1e-05 and 1.5e-07, and float32 numbers from 1e13 on as 1e+13 where repr writes 10000000000000.0.
# Cells in a window (widened by a decade on either side) and non-finite ones are written by csv_number.
_RESPELL = {np.dtype(np.float64): ((1e-10, 1e-4),), np.dtype(np.float32): ((1e-10, 1e-4), (1e12, 1e17))}
_TAILS = bytes.maketrans(b"]", b"\n")
_fast_ok: bool | None = None


def csv_row_tails(table: np.ndarray) -> list[bytes]:
    """Every row of a 2-D table of numbers as the end of a CSV line: ``b",14.0,7.0\\n"``, each cell as
    :func:`csv_number` writes it (``repr``; float32 numbers as their own shortest text; NaN, inf, -inf).

    Formatted by orjson's C encoder (shortest round-trip digits, about 30 ns a number, where ``repr`` takes
    about 400 ns); the cells orjson spells differently from ``repr`` (:data:`_RESPELL`) are rewritten one by
    one, and if this orjson's spelling does not pass a check on probe values, every cell is written by
    :func:`csv_number`."""
    a = np.asarray(table)
    if a.ndim != 2:
        raise ValueError(f"csv_row_tails takes a 2-D table, not shape {a.shape}")
    if a.dtype not in _RESPELL or not _orjson_spells_like_repr():
        return [("," + ",".join(map(csv_number, row)) + "\n").encode() for row in a]
    if a.shape[0] == 0:
        return []
    import orjson

    a = np.ascontiguousarray(a)
    text = orjson.dumps(a, option=orjson.OPT_SERIALIZE_NUMPY)  # [[1.0,2.0],[3.0,4.0]]
    # -> 1.0,2.0\n,3.0,4.0\n\n -> a piece per row (the first without its comma) and a last \n
    tails = text.translate(_TAILS, b"[").splitlines(keepends=True)
    tails.pop()
    tails[0] = b"," + tails[0]
    with np.errstate(invalid="ignore"):
        special = ~np.isfinite(a)
        size = np.abs(a)
        for lo, hi in _RESPELL[a.dtype]:
            special |= (size >= lo) & (size < hi)
    for r in np.flatnonzero(special.any(axis=1)).tolist():
        tails[r] = ("," + ",".join(map(csv_number, a[r])) + "\n").encode()
    return tails


def _orjson_spells_like_repr() -> bool:
    """Whether orjson writes numbers outside :data:`_RESPELL`'s windows exactly as :func:`csv_number` does,
    checked once on a few numbers of every decade (the encoder's spelling has changed between versions)."""
    global _fast_ok
    if _fast_ok is None:
        import orjson

        _fast_ok = True
        for dt in _RESPELL:
            info = np.finfo(dt)
            digits = np.array([1.0, 9.999999, 3.14159])
            low, high = int(np.log10(info.smallest_subnormal)) - 2, int(np.log10(info.max)) + 2
            with np.errstate(over="ignore", under="ignore"):
                x = (digits[None, :] * 10.0 ** np.arange(low, high)[:, None]).ravel()
                x = np.concatenate([x, [info.max, info.tiny, info.smallest_subnormal, 0.0]]).astype(dt)
            x = np.concatenate([x, -x])
            size = np.abs(x)
            keep = np.isfinite(x)
            for lo, hi in _RESPELL[dt]:
                keep &= (size < lo) | (size >= hi)
            x = x[keep].reshape(-1, 1)
            got = orjson.dumps(x, option=orjson.OPT_SERIALIZE_NUMPY)
            want = "[[" + "],[".join(map(repr, shortest(x).ravel().tolist())) + "]]"
            _fast_ok = _fast_ok and got == want.encode()
    return _fast_ok


# -- shapes, indices, attributes -----------------------------------------------------


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
        elif i is Ellipsis:
            parts.append("...")
        elif i is None:
            parts.append("None")
        elif isinstance(i, np.ndarray):  # integer-array indexing: the list as written
            parts.append(str(i.tolist()))
        else:
            parts.append(str(i))
    return "[" + ", ".join(parts) + "]"


def fmt_keyword(v: Any) -> str:
    """A keyword argument's static value as the language writes it: ``true``, ``inf``, ``(0, 1)``, ``2``."""
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, tuple):
        return fmt_shape(v)
    if isinstance(v, float):
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v.is_integer():
            return str(int(v))
    return str(v)


def fmt_attr(v: Any) -> str:
    """An op attribute: an index, a shape, or the value as it prints."""
    if isinstance(v, tuple) and any(isinstance(x, slice) or x is None or x is Ellipsis for x in v):
        return fmt_index(v)
    if isinstance(v, tuple) and any(isinstance(x, np.ndarray) for x in v):
        return fmt_index(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        return fmt_shape(v)
    return str(v)


def fmt_code(v: Any, inf: str = "inf", nan: str = "nan") -> str:
    """A value as Python source that reads back to the same float64 entries (``cgraph export``): a number as
    the shortest text that round-trips (``repr``), a tensor as nested lists; non-finite numbers are spelt
    with the names given (``np.inf``, ``torch.nan``)."""
    a = np.asarray(v, dtype=np.float64)
    if a.ndim == 0:
        x = float(a)
        if math.isnan(x):
            return nan
        if math.isinf(x):
            return inf if x > 0 else f"-{inf}"
        return repr(x)
    return "[" + ", ".join(fmt_code(r, inf, nan) for r in a) + "]"
