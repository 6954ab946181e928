"""Options shared by the commands, and the printing helpers they use."""

from __future__ import annotations

import sys
from typing import Any

import typer

from cgraph_cli.cli.terminal import can_encode, fallback_text
from cgraph_cli.run.request import COMMON_OPTIONS, OptionSpec


def param(spec: OptionSpec) -> Any:
    """The Typer declaration of an option from its entry in an option table (names, default, help, rule)."""
    if not spec.flags:
        return typer.Argument(spec.default, metavar=spec.metavar, help=spec.help, show_default=spec.show_default)
    extra: dict[str, Any] = {}
    if spec.metavar is not None:
        extra["metavar"] = spec.metavar
    if spec.minimum is not None:
        extra["min"] = spec.minimum
    if not spec.show_default:
        extra["show_default"] = False
    return typer.Option(spec.default, *spec.flags, help=spec.help, **extra)


PARAM: dict[str, Any] = {spec.key: param(spec) for spec in COMMON_OPTIONS}
"""The common options' Typer declarations, made from :data:`cgraph_cli.run.request.COMMON_OPTIONS`."""


def out(text: str) -> None:
    """Print to stdout (plain text)."""
    from cgraph_cli.errors import OutputClosed

    try:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    except BrokenPipeError:  # not an OSError any more, so that cli.main ends quietly (exit 0)
        raise OutputClosed() from None


def warn(text: str) -> None:
    """A message on stderr; a closed or full stderr loses it but changes nothing else (exit codes)."""
    try:
        sys.stderr.write(text.rstrip("\n") + "\n")
    except (OSError, ValueError, AttributeError):
        pass


def strict_json_data(obj: Any) -> Any:
    """Non-finite floats anywhere in ``obj`` as the strings "NaN", "Infinity", "-Infinity" (SPEC §3)."""
    from cgraph_cli.fmt import json_data

    return json_data(obj)


def out_json(data: Any) -> None:
    """Strict JSON on stdout: no bare NaN/Infinity; non-ASCII text kept as is where stdout can show it,
    else as \\u escapes (the same JSON data either way)."""
    from cgraph_cli.fmt import json_text

    out(json_text(data, ensure_ascii=not can_encode(sys.stdout, "∂₁ᵀ·…")))


MIN_WIDTH = 40


def console_width(stream: Any = None) -> int | None:
    """The width for rich output: None (rich decides) unless COLUMNS is 0, negative or tiny.

    rich takes COLUMNS=0 literally and prints nothing; cgraph treats COLUMNS <= 0 or garbage as unset
    and never goes below MIN_WIDTH columns."""
    import os

    raw = os.environ.get("COLUMNS")
    if raw is None:
        return None
    try:
        n = int(raw)
    except ValueError:
        return None  # rich ignores what is not a number
    if n >= MIN_WIDTH:
        return None
    if n > 0:
        return MIN_WIDTH
    stream = stream if stream is not None else sys.stdout
    try:
        if stream.isatty():
            return max(MIN_WIDTH, os.get_terminal_size(stream.fileno()).columns)
    except (OSError, ValueError, AttributeError):
        pass
    return 80


def make_console(stderr: bool = False):
    from rich.console import Console

    from cgraph_cli.errors import OutputClosed

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            # rich's own handling exits 1; a reader that went away (| head -1) is a quiet exit 0
            self.quiet = True
            raise OutputClosed()

    stream = sys.stderr if stderr else sys.stdout
    # (emoji=False: an expression is the program's text, so '# :thumbs_up:' in a comment stays as written)
    return _Console(highlight=False, soft_wrap=False, emoji=False, width=console_width(stream), stderr=stderr)


def _fit_encoding(renderable: Any, encoding: str) -> Any:
    """A rich Table's text in what the terminal can show (∂ -> d, s₁ -> s_1) before rich measures it,
    so that the columns stay aligned; other renderables are left to the stream's fallback."""
    from rich.table import Table

    if not isinstance(renderable, Table):
        return renderable
    if isinstance(renderable.title, str):
        renderable.title = fallback_text(renderable.title, encoding)
    for col in renderable.columns:
        if isinstance(col.header, str):
            col.header = fallback_text(col.header, encoding)
        col._cells = [fallback_text(c, encoding) if isinstance(c, str) else c for c in col._cells]
    return renderable


MAX_PIPED_WIDTH = 240


def _columns_given() -> bool:
    """Whether COLUMNS asks for a width (garbage is ignored)."""
    import os

    return os.environ.get("COLUMNS", "").strip().lstrip("-").isdigit()


def piped_width(console: Any, renderable: Any) -> int:
    """The width of a table written to a file or a pipe: COLUMNS if set, else the table's own width (at least
    80 columns, at most :data:`MAX_PIPED_WIDTH`), so that a matrix in a cell keeps its rows whole."""

    if _columns_given():
        return console.width
    try:
        natural = console.measure(renderable, options=console.options.update_width(MAX_PIPED_WIDTH)).maximum
    except Exception:  # a renderable rich cannot measure: its usual width
        return console.width
    return max(console.width, min(natural, MAX_PIPED_WIDTH))


def print_rich(renderable: Any) -> None:
    from rich.table import Table

    from cgraph_cli.errors import OutputClosed
    from cgraph_cli.present.tables import FAST_ROWS, narrowed, plain_text

    if not can_encode(sys.stdout):
        renderable = _fit_encoding(renderable, sys.stdout.encoding)
    try:
        console = make_console()
        tty = sys.stdout.isatty()
        sized = tty or _columns_given()  # a width to keep to (else a pipe's table is as wide as it needs)
        if sized:  # a table too wide for its terminal: the columns that matter
            from rich.console import Group

            for table in renderable.renderables if isinstance(renderable, Group) else [renderable]:
                if isinstance(table, Table):
                    narrowed(table, console)
        if isinstance(renderable, Table) and len(renderable.rows) > FAST_ROWS:  # laid out here, not by rich
            text = plain_text(renderable, console, console.width if sized else MAX_PIPED_WIDTH)
            if text is not None:
                sys.stdout.write(text)
                return
        if tty:
            console.print(renderable)
        else:  # piped: the same text without the padding rich adds to titles (no trailing spaces)
            console.width = piped_width(console, renderable)
            with console.capture() as captured:
                console.print(renderable)
            sys.stdout.write("\n".join(line.rstrip() for line in captured.get().split("\n")))
    except BrokenPipeError:
        raise OutputClosed() from None
