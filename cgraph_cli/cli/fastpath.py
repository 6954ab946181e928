"""A start-up fast path for the commonest scripted call, ``cgraph eval ... --format json|csv``.

Importing Typer (and through it click, rich and pydantic pieces) costs more than numpy itself, and a
script that asks for one value and its gradient pays it on every call.  :func:`parse_eval_args`
recognises an ``eval`` command line made only of options it knows, with values it can check exactly as
Typer would.  The options it knows are those of :data:`cgraph_cli.run.request.COMMON_OPTIONS` and
:data:`EVAL_OPTIONS`, the very tables the Typer declarations are made from; it gives the same
:class:`EvalArgs` as Typer's ``eval`` command, and both call :func:`run_eval`, which runs the program
through the Python API (:meth:`cgraph_cli.api.Program.eval`, whose request is built by the one builder).  Anything else
(``--help``, an unknown or malformed option, the table format, a value Typer would reject) returns None
and the ordinary Typer path handles it, errors included.  ``cli.main`` wraps both in the same error
handling, and tests/test_fastpath.py checks that both paths give the same stdout, stderr and exit code.
``CGRAPH_NO_FASTPATH=1`` turns it off, and a shell's completion request (``_CGRAPH_COMPLETE``) never takes it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from cgraph_cli.cli.completion import is_request as is_completion_request
from cgraph_cli.run.request import COMMON_OPTIONS, DERIVATIVE_OPTIONS, Options, OptionSpec, check_choice

if TYPE_CHECKING:
    from cgraph_cli.run.derivatives import Derivatives

FORMATS = ("table", "json", "csv")
EVAL_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("fmt", ("--format", "-f"), "text", "table", "table|json|csv", "table, json or csv.", choices=FORMATS),
    OptionSpec("all_nodes", ("--all",), "flag", False, None, "Also show anonymous intermediate nodes."),
    OptionSpec(
        "batch",
        ("--batch",),
        "text",
        None,
        "POINTS.CSV",
        "CSV of points (header = input names): one output row per point.",
    ),
    OptionSpec("strict", ("--strict",), "flag", False, None, "Exit 1 when a value or gradient is not finite."),
    OptionSpec(
        "wrt",
        ("--wrt",),
        "text",
        None,
        "NAME,...",
        "Only the gradients of these inputs (the backward pass skips the rest; default: every input not"
        " declared 'input data').",
    ),
    OptionSpec("hessian", ("--hessian",), "flag", False, None, "Also the Hessian of the (scalar) output."),
    OptionSpec(
        "hvp",
        ("--hvp",),
        "text",
        None,
        "NAME=VALUE,...",
        "Also the Hessian-vector product along a direction per input, e.g. --hvp a=1,b=0 (others 0).",
    ),
) + DERIVATIVE_OPTIONS
"""``eval``'s own options (and how to differentiate, :data:`cgraph_cli.run.request.DERIVATIVE_OPTIONS`); with
:data:`cgraph_cli.run.request.COMMON_OPTIONS`, all that the fast parser reads.
``commands/eval_cmd.py`` declares them to Typer from this table."""
EVAL_OPTION = {spec.key: spec for spec in EVAL_OPTIONS}
_BY_FLAG: dict[str, OptionSpec] = {flag: spec for spec in COMMON_OPTIONS + EVAL_OPTIONS for flag in spec.flags}
_FILE = next(spec for spec in COMMON_OPTIONS if not spec.flags)


@dataclass(frozen=True)
class EvalArgs:
    """An ``eval`` command line: the common options and eval's own."""

    options: Options
    fmt: str = EVAL_OPTION["fmt"].default
    all_nodes: bool = EVAL_OPTION["all_nodes"].default
    batch: str | None = EVAL_OPTION["batch"].default
    strict: bool = EVAL_OPTION["strict"].default
    wrt: str | None = EVAL_OPTION["wrt"].default
    hessian: bool = EVAL_OPTION["hessian"].default
    hvp: str | None = EVAL_OPTION["hvp"].default
    mode: str | None = EVAL_OPTION["mode"].default
    tangent: Sequence[str] | None = EVAL_OPTION["tangent"].default
    cotangent: str | None = EVAL_OPTION["cotangent"].default
    jacobian: bool = EVAL_OPTION["jacobian"].default

    @property
    def derivatives(self) -> Derivatives:
        from cgraph_cli.run.derivatives import Derivatives

        return Derivatives(self.mode, self.tangent or (), self.cotangent, self.jacobian)


def parse_eval_args(argv: list[str]) -> EvalArgs | None:
    """The options of a plain ``eval ... --format json|csv`` call, or None to leave it to Typer."""
    if os.environ.get("CGRAPH_NO_FASTPATH") or is_completion_request() or not argv or argv[0] != "eval":
        return None
    given: dict[str, object] = {spec.key: spec.default for spec in COMMON_OPTIONS + EVAL_OPTIONS}
    repeated: dict[str, list[str]] = {}
    args = argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        name, value = a, None
        if a.startswith("--") and "=" in a:
            name, value = a.split("=", 1)
        spec = _BY_FLAG.get(name)
        if spec is not None and spec.kind == "flag":
            if value is not None:
                return None  # --all=x: Typer's usage error
            given[spec.key] = True
            i += 1
            continue
        if spec is not None:
            if value is None:
                if i + 1 >= len(args):
                    return None
                value = args[i + 1]
                i += 1
            if value.startswith("-") and value != "-" and not _numberish(value):
                return None  # click's handling of option-like values is Typer's business
            if spec.kind == "texts":
                repeated.setdefault(spec.key, []).append(value)
            else:
                given[spec.key] = value
            i += 1
            continue
        if a.startswith("-") and a != "-":
            return None  # --help, -h, --, unknown options, combined short flags
        if given[_FILE.key] is not None:
            return None  # a second positional: Typer's usage error
        given[_FILE.key] = a
        i += 1
    given.update(repeated)
    for spec in COMMON_OPTIONS + EVAL_OPTIONS:
        if spec.kind == "int" and given[spec.key] != spec.default:
            try:
                given[spec.key] = int(str(given[spec.key]))
            except ValueError:
                return None  # Typer's conversion error
            if spec.minimum is not None and given[spec.key] < spec.minimum:  # type: ignore[operator]
                return None  # Typer's range check words the error
    if given["fmt"] not in ("json", "csv") and given["batch"] is None:
        return None
    options = Options(**{spec.key: given[spec.key] for spec in COMMON_OPTIONS})  # type: ignore[arg-type]
    return EvalArgs(options, **{spec.key: given[spec.key] for spec in EVAL_OPTIONS})  # type: ignore[arg-type]


def _numberish(text: str) -> bool:
    try:
        float(text.split("=", 1)[-1].split(",", 1)[0])
        return True
    except ValueError:
        return False


def run_eval(args: EvalArgs) -> int:
    """The one implementation of ``cgraph eval`` (Typer's command calls it too); returns the exit code."""
    from cgraph_cli.errors import CgraphError, OutputClosed

    check_choice(args.fmt, FORMATS, EVAL_OPTION["fmt"].name)
    if args.batch is not None and (args.fmt == "json" or args.all_nodes):
        raise CgraphError(
            "--batch writes CSV (one row per point); it cannot be combined with "
            + ("--format json" if args.fmt == "json" else "--all")
        )
    second = args.hessian or args.hvp is not None
    if second and (args.batch is not None or args.fmt == "csv"):
        flag = "--hessian" if args.hessian else "--hvp"
        raise CgraphError(
            f"{flag} is shown as a table or as JSON; it cannot be combined with "
            + ("--batch" if args.batch is not None else "--format csv"),
            hint="evaluate one point at a time (--at), as a table or with --format json"
            if args.batch is not None
            else "use --format json",
        )
    deriv = args.derivatives
    if args.batch is not None and deriv.given:
        raise CgraphError(
            "--batch gives each point's gradient; it cannot be combined with --mode, --tangent, --cotangent or"
            " --jacobian"
        )
    deriv.check()
    if second and deriv.given:
        raise CgraphError(
            f"{'--hessian' if args.hessian else '--hvp'} differentiates the gradient of reverse mode; it cannot be"
            " combined with --mode, --tangent, --cotangent or --jacobian"
        )
    if args.wrt is not None and (args.hvp is not None or args.batch is not None or deriv.forward_pass):
        flag = "--hvp" if args.hvp is not None else "--batch"
        if args.hvp is None and args.batch is None:
            flag = "--tangent" if deriv.tangent else "--mode forward"
        raise CgraphError(
            f"--wrt picks which gradients the reverse pass computes; it cannot be combined with {flag}",
            hint="--wrt works with the reverse pass, --cotangent, --jacobian and --hessian (the blocks of the inputs"
            " named)",
        )
    from cgraph_cli.api import Program

    program = Program.from_options(args.options)
    if args.batch is not None:
        from cgraph_cli.cli.progress import progress_bar

        _warn(program.warnings)  # (a name that mixes alphabets: as every other command says)

        # a bar beside rows written to the same terminal would be torn by them: only for redirected output
        with progress_bar("evaluating rows", unit="bytes", enabled=not _isatty(sys.stdout)) as progress:
            warnings = program.eval_batch(args.batch, sys.stdout, progress=progress)
        _warn(warnings)
        return 1 if args.strict and warnings else 0
    tangent, cotangent = deriv.values()
    ev = program.eval(
        mode=deriv.mode,  # type: ignore[arg-type]
        tangent=tangent,
        cotangent=cotangent,
        jacobian=deriv.jacobian,
        wrt=args.wrt,
    )
    hessian = hvp = None
    if args.hvp is not None:  # (before the Hessian: a bad direction is refused before that work)
        from cgraph_cli.run.second import parse_hvp

        hvp = ev.hvp(parse_hvp(args.hvp))
    if args.hessian:
        hessian = ev.hessian(args.wrt)  # (--wrt: the blocks of those inputs)
    try:
        if args.fmt == "table":  # only through Typer (parse_eval_args leaves tables to it)
            from cgraph_cli.cli.commands.common import print_rich

            print_rich(ev.to_rich(args.all_nodes, hessian=hessian, hvp=hvp))
        elif args.fmt == "json":  # written as it is formatted: memory bounded by a few chunks
            ev.write_json(sys.stdout, hessian=hessian, hvp=hvp)
            sys.stdout.write("\n")
        else:
            ev.write_csv(sys.stdout, args.all_nodes)
    except BrokenPipeError:
        raise OutputClosed() from None
    _warn(ev.warnings)
    if args.strict and ev.nonfinite:
        return 1
    return 0


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _warn(lines: list[str]) -> None:
    for w in lines:
        try:
            sys.stderr.write(w.rstrip("\n") + "\n")
        except (OSError, ValueError, AttributeError):  # a lost warning must not change the exit code
            pass
