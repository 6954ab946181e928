"""cgraph eval: values and gradients as a table, JSON or CSV."""

from __future__ import annotations

from typing import List, Optional

import typer

from cgraph_cli.commands.common import (
    AT_FILE_OPT,
    AT_OPT,
    DTYPE_OPT,
    EXPR_OPT,
    FILE_ARG,
    MAX_MEMORY_OPT,
    OF_OPT,
    SEED_OPT,
)

HELP = """Evaluate a program: every node's value and its gradient ∂out/∂node.

Examples:

  cgraph eval examples/lecture.cg --at a=-1,b=3,c=4

  cgraph eval -e 'z = (a + b) * (b + c)' --at a=-1,b=3,c=4 --format json

  echo 'y = sum(x^2)' | cgraph eval - --at x=[1,2,3] --format csv
"""


def eval_command(
    file: Optional[str] = FILE_ARG,
    expr: Optional[str] = EXPR_OPT,
    at: Optional[List[str]] = AT_OPT,
    at_file: Optional[str] = AT_FILE_OPT,
    of: Optional[str] = OF_OPT,
    fmt: str = typer.Option("table", "--format", "-f", metavar="table|json|csv", help="table, json or csv."),
    all_nodes: bool = typer.Option(False, "--all", help="Also show anonymous intermediate nodes."),
    batch: Optional[str] = typer.Option(
        None, "--batch", metavar="POINTS.CSV", help="CSV of points (header = input names): one output row per point."
    ),
    seed: int = SEED_OPT,
    dtype: str = DTYPE_OPT,
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when a value or gradient is not finite."),
    max_memory: Optional[str] = MAX_MEMORY_OPT,
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the compiled-program cache."),
) -> None:
    from cgraph_cli.fastpath import run_eval

    code = run_eval(
        {
            "file": file,
            "expr": expr,
            "at": at or None,
            "at_file": at_file,
            "of": of,
            "fmt": fmt,
            "batch": batch,
            "seed": seed,
            "dtype": dtype,
            "max_memory": max_memory,
            "all_nodes": all_nodes,
            "strict": strict,
            "no_cache": no_cache,
        }
    )
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("eval", help=HELP)(eval_command)
