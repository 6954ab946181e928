"""The command line: thin Typer commands that gather options, call the library and print.

Each command lives in ``cgraph_cli/commands/`` and registers itself here. All
errors leave through :func:`main`: one ``error:`` message on stderr, exit 2
(1 for a failed check or ``--strict``), never a traceback unless CGRAPH_DEBUG=1.
"""

from __future__ import annotations

import os
import sys

from cgraph_cli import __version__
from cgraph_cli.errors import CgraphError, OutputClosed

_APP = None


def _get_app():
    """The Typer app, built on first use (``cgraph eval ... --format json|csv`` runs without Typer)."""
    global _APP
    if _APP is None:
        _APP = _build_app()
    return _APP


def __getattr__(name: str):
    if name == "app":  # ``from cgraph_cli.cli import app`` keeps working
        return _get_app()
    raise AttributeError(name)


def _build_app():
    import typer

    app = typer.Typer(
        name="cgraph",
        help=(
            "Evaluate, differentiate and draw computation graphs.\n\n"
            "Write a small program such as 'x = a + b; y = b + c; z = x * y' and run\n\n"
            "  cgraph eval examples/lecture.cg --at a=-1,b=3,c=4\n\n"
            "to see every node's value and its gradient ∂z/∂node (backpropagation)."
        ),
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    def _version(value: bool) -> None:
        if value:
            print(f"cgraph {__version__}")
            raise typer.Exit()

    @app.callback()
    def _root(
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ) -> None:
        """Evaluate, differentiate and draw computation graphs."""

    def _register() -> None:
        from cgraph_cli.commands import check_cmd, eval_cmd, explain_cmd, ir_cmd, render_cmd

        for mod in (eval_cmd, render_cmd, check_cmd, explain_cmd, ir_cmd):
            mod.register(app)

    _register()
    return app


def _fail(message: str, code: int) -> None:
    try:
        sys.stderr.write(message.rstrip("\n") + "\n")
        sys.stderr.flush()
    except (BrokenPipeError, OSError):
        pass
    raise SystemExit(code)


class Terminated(BaseException):
    """Raised by the SIGTERM handler so that cleanup (``finally``, temp files) runs; exit 143."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def _quiet_exit(code: int) -> None:
    """End on a signal: no message, no traceback, and no complaint about a closed stdout at shutdown."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, OSError, ValueError):
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``cgraph`` command."""
    import signal

    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (embedded use): leave signals alone
        previous = None
    try:
        _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _NotRaised(Exception):
    """Stands in for Typer's exception classes when the fast path runs without Typer."""


def _main(argv: list[str] | None) -> None:
    from cgraph_cli.fastpath import parse_eval_args

    fast = parse_eval_args(list(sys.argv[1:] if argv is None else argv))
    if fast is None:
        from typer.exceptions import Abort, Exit, TyperException
    else:
        Abort = Exit = TyperException = _NotRaised  # noqa: N806
    debug = bool(os.environ.get("CGRAPH_DEBUG"))
    code = 0
    try:
        if fast is not None:
            from cgraph_cli.fastpath import run_eval

            rv = run_eval(fast)
        else:
            rv = _get_app()(args=argv, standalone_mode=False, prog_name="cgraph")
        code = rv if isinstance(rv, int) else 0
        sys.stdout.flush()
    except CgraphError as err:
        if debug:
            raise
        _fail(err.render(), err.exit_code)
    except Exit as e:
        code = e.exit_code
    except Abort:
        _quiet_exit(130)
    except Terminated:
        _quiet_exit(143)
    except TyperException as e:  # click's usage errors, vendored by typer
        if type(e).__name__ == "NoArgsIsHelpError":
            sys.stdout.write(e.format_message() + "\n")
            raise SystemExit(0) from None
        ctx = getattr(e, "ctx", None)
        hint = f"\nhint: see '{ctx.command_path} --help'" if ctx is not None else ""
        _fail(f"error: {e.format_message()}{hint}", 2)
    except KeyboardInterrupt:
        _quiet_exit(130)
    except (BrokenPipeError, OutputClosed):
        # the reader went away (cgraph eval ... | head -1): end quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        raise SystemExit(0) from None
    except RecursionError:
        if debug:
            raise
        _fail("error: the program is nested too deeply to process", 2)
    except MemoryError:
        _fail("error: out of memory", 2)
    except Exception as e:  # an internal error: a bug in cgraph, reported briefly
        if debug:
            raise
        _fail(
            f"error: internal error: {type(e).__name__}: {e}\n"
            "hint: this is a bug in cgraph; run with CGRAPH_DEBUG=1 for the traceback",
            3,
        )
    raise SystemExit(code)
