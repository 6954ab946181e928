"""cgraph ir: the graph IR as text, JSON or DOT."""

from __future__ import annotations

from typing import List, Optional

import typer

from cgraph_cli.cli.commands.common import PARAM, out, out_json, warn
from cgraph_cli.run.request import Options, check_choice

HELP = """Print the graph IR: one line per node in topological order.

Each line shows the node id, its name, op, operands, shape and source location.

Examples:

  cgraph ir examples/lecture.cg

  cgraph ir examples/mlp.cg --format json
"""


def ir_command(
    file: Optional[str] = PARAM["file"],
    expr: Optional[str] = PARAM["expr"],
    at: Optional[List[str]] = PARAM["at"],
    at_file: Optional[str] = PARAM["at_file"],
    fmt: str = typer.Option("text", "--format", "-f", metavar="text|json|dot", help="text, json or dot."),
    seed: int = PARAM["seed"],
    max_memory: Optional[str] = PARAM["max_memory"],
) -> None:
    from cgraph_cli.api import Program

    check_choice(fmt, ("text", "json", "dot"), "--format")
    program = Program.from_options(
        Options(file=file, expr=expr, at=at or (), at_file=at_file, seed=seed, max_memory=max_memory)
    )
    if fmt == "json":
        out_json(program.ir_data())  # strict: a constant 1e400 is "Infinity", not a bare Infinity
    else:
        out(program.ir(format=fmt))
    for w in program.warnings:
        warn(w)


def register(app: typer.Typer) -> None:
    app.command("ir", help=HELP)(ir_command)
