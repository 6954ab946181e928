"""cgraph eval: values and gradients as a table, JSON or CSV."""

from __future__ import annotations

from typing import List, Optional

import typer

from cgraph_cli.cli.commands.common import PARAM, param
from cgraph_cli.cli.fastpath import EVAL_OPTION, FORMATS, EvalArgs, run_eval
from cgraph_cli.cli.watch import check_watch, watch_paths
from cgraph_cli.cli.watch import watch as watch_loop
from cgraph_cli.run.request import WATCH_OPTION, Options, check_choice

HELP = """Evaluate a program: every node's value and its gradient ∂out/∂node.

Examples:

  cgraph eval examples/lecture.cg --at a=-1,b=3,c=4

  cgraph eval -e 'z = (a + b) * (b + c)' --at a=-1,b=3,c=4 --format json

  echo 'y = sum(x^2)' | cgraph eval - --at x=[1,2,3] --format csv

  cgraph eval examples/lecture.cg --mode forward --tangent a=1,b=0,c=0

  cgraph eval -e 'y = x * x' --at x=[1,2,3] --jacobian

  cgraph eval examples/mlp.cg --wrt W1,b1,W2,b2

  cgraph eval examples/lecture.cg --at a=-1,b=3,c=4 --watch   (again at every save; Ctrl-C ends)
"""


def eval_command(
    file: Optional[str] = PARAM["file"],
    expr: Optional[str] = PARAM["expr"],
    at: Optional[List[str]] = PARAM["at"],
    at_file: Optional[str] = PARAM["at_file"],
    of: Optional[str] = PARAM["of"],
    fmt: str = param(EVAL_OPTION["fmt"]),
    all_nodes: bool = param(EVAL_OPTION["all_nodes"]),
    batch: Optional[str] = param(EVAL_OPTION["batch"]),
    seed: int = PARAM["seed"],
    dtype: str = PARAM["dtype"],
    strict: bool = param(EVAL_OPTION["strict"]),
    wrt: Optional[str] = param(EVAL_OPTION["wrt"]),
    hessian: bool = param(EVAL_OPTION["hessian"]),
    hvp: Optional[str] = param(EVAL_OPTION["hvp"]),
    max_memory: Optional[str] = PARAM["max_memory"],
    no_cache: bool = PARAM["no_cache"],
    mode: Optional[str] = param(EVAL_OPTION["mode"]),
    tangent: Optional[List[str]] = param(EVAL_OPTION["tangent"]),
    cotangent: Optional[str] = param(EVAL_OPTION["cotangent"]),
    jacobian: bool = param(EVAL_OPTION["jacobian"]),
    watch: bool = param(WATCH_OPTION),
) -> None:
    options = Options(
        file=file,
        expr=expr,
        at=at or (),
        at_file=at_file,
        of=of,
        seed=seed,
        dtype=dtype,
        max_memory=max_memory,
        no_cache=no_cache,
    )
    args = EvalArgs(
        options,
        fmt=fmt,
        all_nodes=all_nodes,
        batch=batch,
        strict=strict,
        wrt=wrt,
        mode=mode,
        tangent=tangent or None,
        cotangent=cotangent,
        jacobian=jacobian,
        hessian=hessian,
        hvp=hvp,
    )
    if watch:
        check_watch(
            file,
            expr,
            conflicts=[(batch is not None, "evaluates one point again and again; it cannot be combined with --batch")],
        )
        check_choice(fmt, FORMATS, EVAL_OPTION["fmt"].name)
        raise typer.Exit(watch_loop(watch_paths(file, at_file), lambda: run_eval(args), redraw=True))
    code = run_eval(args)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("eval", help=HELP)(eval_command)
