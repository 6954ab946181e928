"""cgraph explain: the forward and backward passes step by step, as a teacher writes them."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from cgraph_cli.cli.commands.common import PARAM, out_json, print_rich, warn
from cgraph_cli.run.request import Options, check_choice

HELP = """Explain backpropagation step by step: the forward pass, then the backward pass.

The forward pass shows each node's formula, then with the numbers, then its value:
'x = a + b = -1 + 3 = 2'. The backward pass, in reverse topological order, shows each
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
) -> None:
    from cgraph_cli.api import Program

    check_choice(fmt, ("text", "json"), "--format")
    options = Options(file=file, expr=expr, at=at or (), at_file=at_file, of=of, seed=seed, max_memory=max_memory)
    ex = Program.from_options(options, max_nodes=max_steps).explain(max_steps=max_steps)
    if fmt == "json":
        out_json(ex.to_data())
    elif sys.stdout.isatty():
        print_rich(ex.to_rich())
    else:
        sys.stdout.write(ex.text)
    for w in ex.warnings:
        warn(w)


def register(app: typer.Typer) -> None:
    app.command("explain", help=HELP)(explain_command)
