"""Resource limits: whatever a program says, cgraph answers within bounded time and memory.

- ``max_memory``: the bytes of values a program may create (constructors, literals and every
  node's value counted by its inferred shape), checked before anything is allocated;
  ``--max-memory`` changes it (``512M``, ``2G``, ``1e9``...).
- ``MAX_FILE_BYTES`` / ``MAX_LINE_CHARS``: a program file (or stdin, or ``-e``) larger than this,
  or with a longer line, is refused before it is parsed. Every input is read through
  :func:`cgraph_cli.fsutil.read_bounded`: a stream with no size known in advance (stdin, a pipe, a FIFO,
  ``<(yes)``, /dev/zero) is read in chunks and refused as soon as it passes its limit.
- ``--at-file``: a JSON file holds at most ``MAX_FILE_BYTES``; a ``.npz`` archive read from a stream at
  most ``max_memory + NPZ_OVERHEAD_BYTES`` (a regular file is bounded by its arrays' sizes instead).
- ``--batch``: the CSV is streamed, so its size is unbounded, but each line holds at most ``MAX_LINE_CHARS``
  characters (an endless line, such as /dev/zero, is refused there), as do the blank lines before the header.
- the node cap of the IR builder (``ir.MAX_NODES``) is enforced before a ``def`` call is inlined,
  from each function's expanded size estimated when it is defined.
"""

from __future__ import annotations

import re

from cgraph_cli.errors import CgraphError

DEFAULT_MAX_MEMORY = 1 << 30  # 1 GiB of values
CACHE_MIN_CHARS = 20_000  # programs this long or longer are cached compiled (cgraph_cli.run.cache)
MAX_FILE_BYTES = 64 << 20  # 64 MiB of program text
MAX_LINE_CHARS = 1_000_000  # one line: a 20,000-term sum is ~200 kB; parsing 1 MB takes seconds
NPZ_OVERHEAD_BYTES = 1 << 20  # an archive's headers beyond its arrays' bytes (a few hundred bytes per array)

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*\Z")


def parse_size(text: str | int | None, option: str = "--max-memory") -> int:
    """``1G``, ``512M``, ``64KiB``, ``1e9`` or a plain number of bytes -> bytes."""
    if text is None:
        return DEFAULT_MAX_MEMORY
    if isinstance(text, int):
        return text
    m = _SIZE.match(text)
    if m is None:
        raise CgraphError(
            f"{option}: cannot read {text!r} as a size", hint="write a number of bytes or use a unit: 512M, 2G, 64K"
        )
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not value >= 1 or value > 1 << 62:
        raise CgraphError(f"{option}: {text!r} is out of range (at least 1 byte)")
    return int(value)


def fmt_bytes(n: float) -> str:
    """``1 GiB``, ``76.3 MiB``, ``512 bytes``."""
    if n < 1024:
        return f"{int(n)} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        n /= 1024
        if n < 1024 or unit == "EiB":
            return f"{n:.3g} {unit}" if n < 1000 else f"{n:,.0f} {unit}"
    return f"{n:.3g} EiB"  # pragma: no cover


def suggest_size(nbytes: int) -> str:
    """A round --max-memory value of at least ``nbytes``: 16M, 512M, 4G, 128G..."""
    for unit, scale in (("M", 1 << 20), ("G", 1 << 30), ("T", 1 << 40)):
        k = 1
        while k * scale < nbytes and k < 1024:
            k *= 2
        if k * scale >= nbytes and (k < 1024 or unit == "T"):
            return f"{k}{unit}"
    return f"{-(-nbytes // (1 << 40))}T"


def check_size(nbytes: int, name: str) -> None:
    """Refuse a program text of more than MAX_FILE_BYTES."""
    if nbytes > MAX_FILE_BYTES:
        raise CgraphError(
            f"{name} is too large ({fmt_bytes(nbytes)}); the limit is {fmt_bytes(MAX_FILE_BYTES)} per program",
            hint="split the program, or pass large values with --at-file",
        )


def check_read(nread: int, name: str) -> None:
    """Refuse a program read from a stream that went on past MAX_FILE_BYTES (only MAX_FILE_BYTES + 1 bytes
    were read: its size is unknown, and it may never end, like /dev/zero or ``<(yes)``)."""
    if nread > MAX_FILE_BYTES:
        limit = fmt_bytes(MAX_FILE_BYTES)
        raise CgraphError(
            f"{name} is too large (over {limit}, not read further); the limit is {limit} per program",
            hint="split the program, or pass large values with --at-file",
        )


def line_too_long(name: str, line: int, what: str = "") -> CgraphError:
    """The error for a line of an input (a --batch CSV) over MAX_LINE_CHARS, found without reading all of it."""
    return CgraphError(
        f"{what}{name}:{line}: the line is too long; the limit is {MAX_LINE_CHARS:,} characters per line",
        hint="a CSV file has one point per line: a header of input names, then rows of numbers",
    )


def check_text(text: str, name: str) -> None:
    """Refuse a program over the size limit or with a line over the length limit."""
    check_size(len(text), name)
    if len(text) <= MAX_LINE_CHARS:
        return
    start = 0
    line = 1
    while True:
        end = text.find("\n", start)
        stop = len(text) if end == -1 else end
        if stop - start > MAX_LINE_CHARS:
            raise CgraphError(
                f"{name}:{line}: the line is too long ({stop - start:,} characters); "
                f"the limit is {MAX_LINE_CHARS:,} characters per line",
                hint="break long expressions over several lines with intermediate names",
            )
        if end == -1:
            return
        start = end + 1
        line += 1
