"""cgraph check: the backward pass against finite differences with an error estimate."""

from __future__ import annotations

from typing import List, Optional

import typer

from cgraph_cli.cli.commands.common import PARAM, out, out_json, print_rich, warn
from cgraph_cli.cli.progress import progress_bar
from cgraph_cli.run.request import Options, check_choice

HELP = """Check every gradient entry against finite differences.

For each entry x[i] of each input (or of the inputs given by --wrt), the numeric
derivative is taken in float64 by central differences at three steps (from the
scale of x[i]) combined by Richardson extrapolation, with an error estimate e
(truncation and round-off). An entry passes when |a - n| <= e + 1e-6 * |n|. Where
the central stencil leaves the function's domain (a NaN or an infinity while
f(x) is finite) a one-sided difference is used, and the row says so. Prints one
table of every entry checked (analytic, numeric, its estimate, absolute and relative error)
and a summary line. Exits 0 when every entry passes and 1 when any differs.

Fixed settings: --eps, --rtol or --atol (any of them) switches to the central
difference (f(x + eps) - f(x - eps)) / 2eps and |a - n| <= atol + rtol * |n|
(defaults then: eps 1e-6, rtol 1e-5, atol 1e-8).

Large tensors: an input with more than 1000 entries is checked at 1000 entries
chosen at random (seeded by --seed), and a note on stderr says so; --samples N
checks N random entries per input, --all-entries checks every entry. On a
terminal a progress bar shows on stderr while entries are checked.

At a point where the program is not differentiable (relu or abs at 0, a tie of
max/min, sqrt at 0) a warning names the node and its line; where cgraph's
convention there differs from finite differences (relu'(0) = 0, they see 1/2)
the check fails.

--method complex takes Im f(x + ih) / h (h = 1e-20): no cancellation, exact to
machine precision, two forward passes per entry. It needs every op between the
inputs and the output to be analytic (not abs, relu, max, min, norm, atan2,
sigmoid, softplus); otherwise it is refused with exit 2.

Examples:

  cgraph check examples/lecture.cg --at a=-1,b=3,c=4

  cgraph check -e 'y = relu(a)' --at a=0

  cgraph check examples/mlp.cg --wrt W1,b1 --samples 5 --format json

  cgraph check -e 'y = sum(exp(x) * sin(x))' --at x=[1,2,3] --method complex
"""


def check_command(
    file: Optional[str] = PARAM["file"],
    expr: Optional[str] = PARAM["expr"],
    at: Optional[List[str]] = PARAM["at"],
    at_file: Optional[str] = PARAM["at_file"],
    of: Optional[str] = PARAM["of"],
    eps: Optional[float] = typer.Option(
        None,
        "--eps",
        metavar="X",
        help="Fixed finite-difference step (default 1e-6 once fixed settings are chosen).",
        show_default=False,
    ),
    rtol: Optional[float] = typer.Option(
        None, "--rtol", metavar="X", help="Fixed relative tolerance (1e-5 with fixed settings).", show_default=False
    ),
    atol: Optional[float] = typer.Option(
        None, "--atol", metavar="X", help="Fixed absolute tolerance (1e-8 with fixed settings).", show_default=False
    ),
    method: str = typer.Option(
        "richardson",
        "--method",
        metavar="richardson|complex",
        help="richardson (default, any program) or complex: the complex-step derivative, exact to machine"
        " precision, for programs whose every op on the path is analytic.",
    ),
    wrt: Optional[str] = typer.Option(None, "--wrt", metavar="NAME,...", help="Check only these inputs."),
    samples: Optional[int] = typer.Option(
        None,
        "--samples",
        metavar="N",
        help="Check N random entries per input (seeded by --seed); default: all of an input with up to"
        " 1000 entries, 1000 random ones of a larger input.",
        show_default=False,
    ),
    all_entries: bool = typer.Option(
        False, "--all-entries", help="Check every entry of every input, however large (no sampling)."
    ),
    order: int = typer.Option(
        1,
        "--order",
        metavar="1|2",
        help="2: check the second derivatives ∂²out/∂x∂y against finite differences of the gradient.",
    ),
    fmt: str = typer.Option("table", "--format", "-f", metavar="table|json", help="table or json."),
    seed: int = PARAM["seed"],
    max_memory: Optional[str] = PARAM["max_memory"],
    modes: bool = typer.Option(
        False,
        "--modes",
        help="Also check forward mode against reverse mode: ⟨v, J t⟩ from a JVP equals ⟨Jᵀv, t⟩ from a VJP"
        " for 3 random t and v (seeded by --seed).",
    ),
) -> None:
    from cgraph_cli.api import Program

    check_choice(fmt, ("table", "json"), "--format")
    options = Options(file=file, expr=expr, at=at or (), at_file=at_file, of=of, seed=seed, max_memory=max_memory)
    program = Program.from_options(options)  # float64: the finite differences are taken in float64
    with progress_bar("checking gradients", min_total=PROGRESS_FROM) as progress:
        report = program.check(
            wrt=wrt,
            eps=eps,
            rtol=rtol,
            atol=atol,
            method=method,
            samples=samples,
            all_entries=all_entries,
            progress=progress,
            order=order,
            modes=modes,
        )
    for note in report.notes:
        warn(note)
    if fmt == "json":
        out_json(report.to_data())
    else:
        print_rich(report.to_rich())
        out(report.summary)
    for w in report.warnings:
        warn(w)
    if not report.ok:
        raise typer.Exit(1)


PROGRESS_FROM = 200  # entries: a smaller check is over before a bar would be worth drawing (unless it takes 0.5 s)


def register(app: typer.Typer) -> None:
    app.command("check", help=HELP)(check_command)
