"""Small helpers for writing formulas as text, shared by the op records' templates and ``explain``."""

from __future__ import annotations

import re

from cgraph_cli.fmt import fmt_keyword

_ATOM = re.compile(r"-?[\w.%₀-₉]+")
_CALL = re.compile(r"[\w.%₀-₉σ]*\(.*\)")


def paren(s: str) -> str:
    """Parenthesise a compound expression (for use as a factor)."""
    if _ATOM.fullmatch(s):
        return s
    if _CALL.fullmatch(s) and balanced_outer(s):
        return s
    if s.startswith("[") and s.endswith("]") and balanced_outer(s, "[]"):  # [a > 0], [[1, 2], [3, 4]]
        return s
    return f"({s})"


def call(name: str, s: str) -> str:
    """A call ``name(s)``, without doubling the parentheses of ``(a + b)``."""
    if s.startswith("(") and s.endswith(")") and balanced_outer(s):
        return name + s
    return f"{name}({s})"


def transposed(s: str) -> str:
    return f"{paren(s)}ᵀ"


def balanced_outer(s: str, pair: str = "()") -> bool:
    """False for text like '(a) + (b)' whose first '(' closes before the end."""
    op, cl = pair
    if op not in s:
        return True
    depth = 0
    start = s.index(op)
    for i, ch in enumerate(s[start:], start):
        if ch == op:
            depth += 1
        elif ch == cl:
            depth -= 1
            if depth == 0 and i != len(s) - 1:
                return False
    return True


def keyword_call(name: str, L: list[str], at: dict, defaults: dict, positional: tuple[str, ...] = ()) -> str:
    """``name(L..., p..., k=v...)`` as the language writes the call: the attributes named in
    ``positional`` (an integer axis, as ``sum(x, 1)`` is written) after the operands, the others as
    keywords; attributes at their default value are left out."""
    parts = list(L)
    for k in positional:
        v = at.get(k, defaults.get(k))
        if v != defaults.get(k) and isinstance(v, int) and not isinstance(v, bool):
            parts.append(str(v))
    for k in sorted(at):
        v = at[k]
        if (k in positional and isinstance(v, int) and not isinstance(v, bool)) or v == defaults.get(k, object()):
            continue
        parts.append(f"{k}={fmt_keyword(v)}")
    if len(parts) == 1:
        return call(name, parts[0])
    return f"{name}({', '.join(parts)})"


def keyword_label(glyph: str, at: dict, defaults: dict) -> str:
    """A node's text in pictures: the glyph and its attributes that are not at their default."""
    shown = [f"{k}={fmt_keyword(v)}" for k, v in sorted(at.items()) if v != defaults.get(k, object())]
    return " ".join([glyph, *shown])
