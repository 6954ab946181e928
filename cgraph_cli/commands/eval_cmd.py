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
    SEED_OPT,
    check_choice,
    max_memory_bytes,
    out,
    print_rich,
    warn,
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
    of: Optional[str] = typer.Option(
        None, "--of", metavar="NAME", help="The output to differentiate (default: the first output)."
    ),
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
    from cgraph_cli.program import load_source, run
    from cgraph_cli.values import gather_values

    check_choice(fmt, ("table", "json", "csv"), "--format")
    check_choice(dtype, ("float64", "float32"), "--dtype")
    limit = max_memory_bytes(max_memory)
    source = load_source(file, expr)
    if batch is not None:
        from cgraph_cli.batch import run_batch

        run_batch(
            source,
            batch,
            gather_values(at, at_file, limit),
            of=of,
            seed=seed,
            dtype=dtype,
            max_memory=limit,
            use_cache=not no_cache,
        )
        return
    given = gather_values(at, at_file, limit)
    result = run(source, given, of=of, seed=seed, dtype=dtype, max_memory=limit, use_cache=not no_cache)
    from cgraph_cli import present

    if fmt == "json":
        out(present.to_json(result))
    elif fmt == "csv":
        out(present.to_csv(result, all_nodes))
    else:
        print_rich(present.to_table(result, all_nodes))
    for w in present.nonfinite_warnings(result):
        warn(w)
    if strict and result.nonfinite:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("eval", help=HELP)(eval_command)
