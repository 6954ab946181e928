"""The project's one error type and its rendering with source context."""

from __future__ import annotations

import bisect
import difflib
import re
from dataclasses import dataclass, field

# Characters a terminal would act on instead of showing (ESC and the other C0/C1 controls, DEL, a lone CR)
# and invisible ones that reorder or hide text (bidi controls such as U+202E, zero-width characters):
# escaped wherever program text or user input is shown in an error, so that a program cannot move the
# cursor, set the clipboard (OSC 52), ring the bell or make the excerpt read differently from the file.
# Tab and newline are kept.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


def _escape_char(m: re.Match) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def escape_controls(text: str) -> str:
    """``text`` with control and invisible formatting characters shown as ``\\x1b``, ``\\u202e``..."""
    return _UNSAFE.sub(_escape_char, text)


@dataclass
class Source:
    """A program's text and where it came from, with offset -> line/column mapping."""

    text: str
    filename: str = "<expr>"
    _line_starts: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        starts = [0]
        find = self.text.find
        i = find("\n")
        while i != -1:
            starts.append(i + 1)
            i = find("\n", i + 1)
        self._line_starts = starts

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based line and column of a character offset."""
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return line + 1, offset - self._line_starts[line] + 1

    def line_text(self, line: int) -> str:
        start = self._line_starts[line - 1]
        end = self.text.find("\n", start)
        if end == -1:
            end = len(self.text)
        return self.text[start:end].rstrip("\r")

    def snippet(self, start: int, end: int) -> str:
        return self.text[start:end]


class CgraphError(Exception):
    """Any error a user can cause. ``span`` is (start, end) character offsets in ``source``.

    ``str(err)`` is the message, :meth:`render` the command line's whole text (``error: FILE:LINE:COL: ...``,
    the source line, a caret and the hint); ``line``/``column`` locate it, ``hint`` suggests a fix and
    ``exit_code`` is the command line's exit status for it."""

    def __init__(
        self,
        message: str,
        span: tuple[int, int] | None = None,
        *,
        hint: str | None = None,
        source: Source | None = None,
        exit_code: int = 2,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint
        self.source = source
        self.exit_code = exit_code

    @property
    def line(self) -> int | None:
        """The 1-based line the error points at, or None when it points at no place in a program."""
        where = self._where()
        return None if where is None else where[0]

    @property
    def column(self) -> int | None:
        """The 1-based column the error points at, or None when it points at no place in a program."""
        where = self._where()
        return None if where is None else where[1]

    def _where(self) -> tuple[int, int] | None:
        if self.span is None or self.source is None:
            return None
        return self.source.line_col(max(0, min(self.span[0], len(self.source.text))))

    def with_source(self, source: Source) -> CgraphError:
        """This error, pointing into ``source`` unless it already points into a program."""
        if self.source is None:
            self.source = source
        return self

    def render(self) -> str:
        """The full message: ``error: FILE:LINE:COL: message``, source line, caret, hint."""
        return "error: " + format_located(self.message, self.span, self.source, self.hint)


def format_located(
    message: str,
    span: tuple[int, int] | None,
    source: Source | None,
    hint: str | None = None,
) -> str:
    """``FILE:LINE:COL: message`` followed by the source line and a caret (no prefix)."""
    message = escape_controls(message)
    hint = escape_controls(hint) if hint else hint
    lines = []
    if span is not None and source is not None:
        filename = escape_controls(source.filename)
        start, end = span
        start = max(0, min(start, len(source.text)))
        line, col = source.line_col(start)
        lines.append(f"{filename}:{line}:{col}: {message}")
        text = source.line_text(line)
        # caret covers the span on this line (at least one character)
        end_line, end_col = source.line_col(max(start, end - 1)) if end > start else (line, col)
        width = (end_col - col + 1) if end_line == line else max(1, len(text) - col + 1)
        width = max(1, min(width, max(1, len(text) - col + 1)))
        # the excerpt as shown: tabs as one space, control characters escaped; the caret is placed and sized
        # by the shown width of what precedes and what it covers
        before = escape_controls(text[: col - 1].expandtabs(1))
        covered = escape_controls(text[col - 1 : col - 1 + width].expandtabs(1))
        shown = before + covered + escape_controls(text[col - 1 + width :].expandtabs(1))
        col, width = len(before) + 1, max(1, len(covered))
        if len(shown) > 200:  # keep very long lines readable around the spot
            lo = max(0, col - 100)
            shown = ("..." if lo else "") + shown[lo : lo + 200]
            col = col - lo + (3 if lo else 0)
            width = min(width, 200)
        lines.append(f"  {line} | {shown}")
        pad = " " * (len(str(line)) + 1)
        lines.append(f"  {pad}| {' ' * (col - 1)}{'^' * width}")
    elif source is not None and source.filename not in ("<expr>",):
        lines.append(f"{escape_controls(source.filename)}: {message}")
    else:
        lines.append(message)
    if hint:
        lines.append(f"hint: {hint}")
    return "\n".join(lines)


class OutputClosed(Exception):
    """Standard output's reader went away (``cgraph eval ... | head -1``): end quietly."""


def closest(word: str, choices: list[str] | tuple[str, ...] | set[str]) -> str | None:
    """The closest spelling among ``choices`` (for 'did you mean' hints), or None.

    Short names get a looser cutoff: 'W9' is one letter from 'W1', a similarity of only 0.5."""
    match = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6 if len(word) > 3 else 0.5)
    return match[0] if match else None


def did_you_mean(word: str, choices) -> str:
    best = closest(word, choices)
    return f"; did you mean '{best}'?" if best else ""
