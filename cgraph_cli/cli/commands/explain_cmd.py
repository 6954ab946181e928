"""cgraph explain: the forward and backward passes step by step, as a teacher writes them."""

from __future__ import annotations

import sys
from typing import Any, List, Optional

import typer

from cgraph_cli.cli.commands.common import PARAM, out_json, param, print_rich, warn
from cgraph_cli.cli.watch import check_watch, watch_paths
from cgraph_cli.cli.watch import watch as watch_loop
from cgraph_cli.errors import CgraphError
from cgraph_cli.run.request import DERIVATIVE_OPTIONS, WATCH_OPTION, Options, check_choice

DERIVATIVE_OPTION = {spec.key: spec for spec in DERIVATIVE_OPTIONS}

HELP = """Explain backpropagation step by step: the forward pass, then the backward pass.

The forward pass shows each node's formula, then with the numbers, then its value:
'x = a + b = -1 + 3 = 2'. The backward pass, from the output back as the lecture goes
(the output, then the nodes one step from it, ...), shows each
gradient as the sum over the node's successors of (successor's gradient) · (local
derivative), first symbolically, then with the numbers, then the result:
'∂z/∂b = ∂z/∂x · ∂x/∂b + ∂z/∂y · ∂y/∂b = 7 · 1 + 2 · 1 = 9', and the local
derivatives it used. Tensors are shown with their shapes (by their norm when they
have more than 6 entries) and their gradients as matrix products such as
'∂L/∂W = ∂L/∂u · xᵀ'.

Anonymous intermediate nodes are named by their source text in parentheses, such as
'(w * x)', or by their id '%5' (as in 'cgraph ir') when the text is long, repeated, or
inside a user function. A name assigned several times gets subscripts: s₁, s₂, ...

Examples:

  cgraph explain examples/lecture.cg --at a=-1,b=3,c=4

  cgraph explain -e 'y = relu(w * x + b)' --at w=2,x=3,b=-1

  cgraph explain examples/mlp.cg --format json

  cgraph explain examples/lecture.cg --mode forward --tangent a=1

  cgraph explain examples/mlp.cg --cost

  cgraph explain examples/lecture.cg --at a=-1,b=3,c=4 --watch   (again at every save; Ctrl-C ends)
"""


def explain_command(
    file: Optional[str] = PARAM["file"],
    expr: Optional[str] = PARAM["expr"],
    at: Optional[List[str]] = PARAM["at"],
    at_file: Optional[str] = PARAM["at_file"],
    of: Optional[str] = PARAM["of"],
    fmt: str = typer.Option("text", "--format", "-f", metavar="text|json", help="text or json (the steps as data)."),
    seed: int = PARAM["seed"],
    max_memory: Optional[str] = PARAM["max_memory"],
    max_steps: int = typer.Option(
        10_000, "--max-steps", metavar="N", min=1, help="Refuse programs of more nodes than this (a step per node)."
    ),
    mode: Optional[str] = param(DERIVATIVE_OPTION["mode"]),
    tangent: Optional[List[str]] = param(DERIVATIVE_OPTION["tangent"]),
    cost: bool = typer.Option(
        False,
        "--cost",
        help="The cost of all the gradients instead: ops of one forward pass, of reverse mode and of forward"
        " mode (one pass per input entry), counted as the engine runs them, and their ratio.",
    ),
    watch: bool = param(WATCH_OPTION),
) -> None:
    from cgraph_cli.run.derivatives import Derivatives  # numpy and the engine: not when the app is built

    check_choice(fmt, ("text", "json"), "--format")
    deriv = Derivatives(mode, tangent or ())
    deriv.check()
    if cost and deriv.given:
        raise CgraphError("--cost compares both modes: it cannot be combined with --mode or --tangent")
    options = Options(file=file, expr=expr, at=at or (), at_file=at_file, of=of, seed=seed, max_memory=max_memory)
    if watch:
        check_watch(file, expr)
        again = lambda: _explain(options, fmt, max_steps, deriv, cost)  # noqa: E731
        raise typer.Exit(watch_loop(watch_paths(file, at_file), again, redraw=True))
    _explain(options, fmt, max_steps, deriv, cost)


def _explain(options: Options, fmt: str, max_steps: int, deriv: Any, cost: bool) -> None:
    from cgraph_cli.api import Program

    program = Program.from_options(options, max_nodes=max_steps)
    if cost:
        _print_cost(program.request, fmt)
        return
    tangent, _ = deriv.values()
    ex = program.explain(max_steps=max_steps, mode=deriv.mode, tangent=tangent)  # type: ignore[arg-type]
    if fmt == "json":
        out_json(ex.to_data())
    elif sys.stdout.isatty():
        print_rich(ex.to_rich())
    else:
        sys.stdout.write(ex.text)
    for w in ex.warnings:
        warn(w)


def _print_cost(request, fmt: str) -> None:
    from cgraph_cli.analysis import explain

    g = request.compile()
    c = explain.cost(g, request.inputs(g), request.output(g))
    if fmt == "json":
        out_json(explain.cost_data(c))
    elif sys.stdout.isatty():
        print_rich(explain.lines_rich(explain.cost_lines(c)))
    else:
        sys.stdout.write(explain.lines_text(explain.cost_lines(c)))


def register(app: typer.Typer) -> None:
    app.command("explain", help=HELP)(explain_command)
