"""Options shared by the commands, and the printing helpers they use."""

from __future__ import annotations

import sys
from typing import Any, Optional

import typer

FILE_ARG = typer.Argument(None, metavar="FILE|-", help="Program file, or '-' for stdin.", show_default=False)
EXPR_OPT = typer.Option(
    None, "-e", "--expr", metavar="PROGRAM", help="The program inline, e.g. -e 'z = (a + b) * (b + c)'."
)
AT_OPT = typer.Option(
    None,
    "--at",
    metavar="NAME=VALUE,...",
    help="Input values: name=value pairs, e.g. --at a=-1,b=3 --at x=[1,2,3]. Repeatable.",
)
AT_FILE_OPT = typer.Option(None, "--at-file", metavar="FILE", help="Input values from a JSON object or a .npz file.")
OF_OPT = typer.Option(None, "--of", metavar="NAME", help="The output to differentiate (default: the first output).")
SEED_OPT = typer.Option(0, "--seed", metavar="N", help="Seed for randn()/rand() in the program.")
DTYPE_OPT = typer.Option("float64", "--dtype", metavar="float64|float32", help="Number type: float64 or float32.")
MAX_MEMORY_OPT = typer.Option(
    None,
    "--max-memory",
    metavar="SIZE",
    help="Refuse programs whose values would take more than SIZE (default 1G; e.g. 512M, 4G).",
    show_default=False,
)


def max_memory_bytes(text: str | None) -> int:
    """The --max-memory option in bytes (default 1 GiB)."""
    from cgraph_cli.limits import parse_size

    return parse_size(text)


def check_choice(value: str, choices: tuple[str, ...], option: str) -> str:
    from cgraph_cli.errors import CgraphError

    if value not in choices:
        raise CgraphError(f"{option}: '{value}' is not one of: {', '.join(choices)}")
    return value


def out(text: str) -> None:
    """Print to stdout (plain text)."""
    from cgraph_cli.errors import OutputClosed

    try:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    except BrokenPipeError:  # not an OSError any more, so that cli.main ends quietly (exit 0)
        raise OutputClosed() from None


def warn(text: str) -> None:
    sys.stderr.write(text.rstrip("\n") + "\n")


def print_rich(renderable: Any) -> None:
    from rich.console import Console

    from cgraph_cli.errors import OutputClosed

    try:
        Console(highlight=False, soft_wrap=False).print(renderable)
    except BrokenPipeError:
        raise OutputClosed() from None


__all__ = ["Optional", "FILE_ARG", "EXPR_OPT", "AT_OPT", "AT_FILE_OPT", "SEED_OPT", "DTYPE_OPT", "MAX_MEMORY_OPT"]
