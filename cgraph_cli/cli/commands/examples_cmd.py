"""cgraph examples: the example programs shipped with cgraph, listed or printed."""

from __future__ import annotations

from typing import Optional

import typer

from cgraph_cli.cli.commands.common import out
from cgraph_cli.errors import CgraphError
from cgraph_cli.run import examples

HELP = """List the example programs shipped with cgraph, or print one.

Every command takes an example's name where it takes a program file (a file of that name in the current
folder wins):

  cgraph examples

  cgraph examples lecture

  cgraph eval lecture --at a=-1,b=3,c=4

  cgraph examples mlp > mlp.cg      (a copy to edit)
"""


def complete_name(incomplete: str) -> list[tuple[str, str]]:
    """The example names that start with ``incomplete``, with their descriptions (for shell completion)."""
    return [(n, examples.description(n)) for n in examples.names() if n.startswith(incomplete)]


def examples_command(
    name: Optional[str] = typer.Argument(
        None,
        metavar="NAME",
        help="The example to print (its program text); without it, the list.",
        autocompletion=complete_name,
        show_default=False,
    ),
) -> None:
    if name is not None:
        out(examples.text(name))
        return
    names = examples.names()
    if not names:
        raise CgraphError("no examples are installed with this copy of cgraph")
    width = max((len(n) for n in names), default=0)
    out("\n".join(f"{n.ljust(width)}  {examples.description(n)}".rstrip() for n in names))


def register(app: typer.Typer) -> None:
    app.command("examples", help=HELP)(examples_command)
