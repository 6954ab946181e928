"""cgraph ir: the graph IR as text, JSON or DOT."""

from __future__ import annotations

from typing import List, Optional

import typer

from cgraph_cli.commands.common import (
    AT_FILE_OPT,
    AT_OPT,
    EXPR_OPT,
    FILE_ARG,
    MAX_MEMORY_OPT,
    SEED_OPT,
    check_choice,
    max_memory_bytes,
    out,
    out_json,
)

HELP = """Print the graph IR: one line per node in topological order.

Each line shows the node id, its name, op, operands, shape and source location.

Examples:

  cgraph ir examples/lecture.cg

  cgraph ir examples/mlp.cg --format json
"""


def ir_command(
    file: Optional[str] = FILE_ARG,
    expr: Optional[str] = EXPR_OPT,
    at: Optional[List[str]] = AT_OPT,
    at_file: Optional[str] = AT_FILE_OPT,
    fmt: str = typer.Option("text", "--format", "-f", metavar="text|json|dot", help="text, json or dot."),
    seed: int = SEED_OPT,
    max_memory: Optional[str] = MAX_MEMORY_OPT,
) -> None:
    from cgraph_cli.ir import format_ir
    from cgraph_cli.program import compile_program, load_source
    from cgraph_cli.values import gather_values

    check_choice(fmt, ("text", "json", "dot"), "--format")
    source = load_source(file, expr)
    limit = max_memory_bytes(max_memory)
    given = gather_values(at, at_file, limit)
    g = compile_program(source, given, seed=seed, max_memory=limit)
    if fmt == "text":
        out(format_ir(g))
    elif fmt == "json":
        from cgraph_cli.ir import ir_data

        out_json(ir_data(g))  # strict: a constant 1e400 is "Infinity", not a bare Infinity
    else:
        from cgraph_cli.dot import ir_dot

        out(ir_dot(g, given))


def register(app: typer.Typer) -> None:
    app.command("ir", help=HELP)(ir_command)
