"""Text for terminals that cannot show everything: readable ASCII for cgraph's symbols (∂ -> d, s₁ -> s_1)."""

from __future__ import annotations

import codecs

_FALLBACKS = {
    "∂": "d",
    "·": "*",
    "—": "-",
    "–": "-",
    "…": "...",
    "∞": "inf",
    "≤": "<=",
    "≥": ">=",
    "≠": "!=",
    "×": "x",
    "→": "->",
    "←": "<-",
    "ᵀ": "^T",
    "²": "^2",
    "³": "^3",
    "±": "+/-",
    "√": "sqrt",
    "Σ": "sum",
    "‖": "||",
    "‘": "'",
    "’": "'",
    "“": '"',
    "”": '"',
    "\u00a0": " ",
}
_FALLBACKS.update({chr(0x2080 + d): f"_{d}" for d in range(10)})  # subscripts: s₁ -> s_1
_FALLBACKS.update({chr(c): ch for c, ch in zip((0x2074, 0x2075, 0x2076, 0x2077, 0x2078, 0x2079), "456789")})
FALLBACK_ERRORS = "cgraph-ascii"


def ascii_fallback(err: UnicodeError):
    """Codec error handler: readable ASCII for cgraph's symbols (∂ -> d, s₁ -> s_1), else \\uXXXX."""
    if not isinstance(err, UnicodeEncodeError):
        raise err
    out = []
    for ch in err.object[err.start : err.end]:
        if ch in _FALLBACKS:
            out.append(_FALLBACKS[ch])
        elif 0x2500 <= ord(ch) <= 0x257F:  # box drawing
            out.append(
                "|" if ord(ch) in (0x2502, 0x2503, 0x2551) else "-" if ord(ch) in (0x2500, 0x2501, 0x2550) else "+"
            )
        else:
            out.append(ch.encode("ascii", "backslashreplace").decode("ascii"))
    return "".join(out), err.end


def fallback_text(text: str, encoding: str) -> str:
    """``text`` with what ``encoding`` cannot show replaced as on the standard streams (∂ -> d)."""
    codecs.register_error(FALLBACK_ERRORS, ascii_fallback)
    try:
        return text.encode(encoding, FALLBACK_ERRORS).decode(encoding)
    except (UnicodeError, LookupError):
        return text


def can_encode(stream, text: str = "∂₁│") -> bool:
    try:
        text.encode(getattr(stream, "encoding", None) or "utf-8")
        return True
    except (UnicodeError, LookupError):
        return False
