"""The command line: thin Typer commands that gather options, call the library and print.

Each command lives in ``cgraph_cli/commands/`` and registers itself here. All
errors leave through :func:`main`: one ``error:`` message on stderr, exit 2
(1 for a failed check or ``--strict``), never a traceback unless CGRAPH_DEBUG=1.
A standard output that cannot be written (closed, full) is such an error too; a
closed or full standard error loses messages, never the exit code.
"""

from __future__ import annotations

import codecs
import errno
import io
import os
import sys

from cgraph_cli import allocator
from cgraph_cli.cli import completion
from cgraph_cli.cli.terminal import FALLBACK_ERRORS, ascii_fallback, can_encode
from cgraph_cli.errors import CgraphError, OutputClosed
from cgraph_cli.version import __version__

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
            "to see every node's value and its gradient ∂z/∂node (backpropagation).\n\n"
            "The example programs come with cgraph: 'cgraph examples' lists them, and every command takes\n"
            "an example's name for its file ('cgraph eval lecture')."
        ),
        no_args_is_help=True,
        add_completion=True,  # --install-completion / --show-completion (cli/completion.py)
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
        from cgraph_cli.cli.commands import (
            check_cmd,
            eval_cmd,
            examples_cmd,
            explain_cmd,
            export_cmd,
            ir_cmd,
            render_cmd,
        )

        for mod in (eval_cmd, render_cmd, check_cmd, explain_cmd, ir_cmd, export_cmd, examples_cmd):
            mod.register(app)

    _register()
    completion.attach(app)
    return app


def _fail(message: str, code: int) -> None:
    try:
        sys.stderr.write(message.rstrip("\n") + "\n")
        sys.stderr.flush()
    except (BrokenPipeError, OSError):
        pass
    raise SystemExit(code)


# -- the standard streams -------------------------------------------------------------------
# cgraph keeps its exit codes whatever is attached to fds 0-2: a closed or full stdout is a clear
# "error: cannot write to standard output" (exit 2); a closed or full stderr loses the messages but
# not the exit code; a terminal that cannot show ∂, ₁ or box characters gets readable ASCII.


class StdoutBroken(OSError):
    """Standard output cannot be written (closed, full, I/O error); not a broken pipe."""


class _StdoutRaw(io.FileIO):
    """fd 1, whose write errors say that they are standard output's (a broken pipe stays one)."""

    closed_at_start = False

    def write(self, b):  # type: ignore[override]
        if self.closed_at_start:
            raise StdoutBroken(errno.EBADF, "it is closed")
        try:
            return super().write(b)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise StdoutBroken(e.errno, e.strerror or str(e)) from None


class _StderrRaw(io.FileIO):
    """fd 2, where a write that fails (closed, full, gone) is dropped: messages must not change exit codes."""

    def write(self, b):  # type: ignore[override]
        try:
            return super().write(b)
        except OSError:
            return len(b)


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def _setup_streams() -> None:
    """Reserve closed fds 0-2 (on /dev/null) and wrap the real stdout/stderr as described above.

    Only the process's own streams are touched (not a test's capture); idempotent."""
    closed = [fd for fd in (0, 1, 2) if not _fd_open(fd)]
    for fd in closed:  # so that no file the run opens lands on them (and children get /dev/null)
        try:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
        except OSError:
            pass
    if 0 in closed and sys.stdin is None:
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    codecs.register_error(FALLBACK_ERRORS, ascii_fallback)
    for name, raw_type in (("stdout", _StdoutRaw), ("stderr", _StderrRaw)):
        fd = 1 if name == "stdout" else 2
        current = getattr(sys, name)
        original = getattr(sys, "__" + name + "__")
        if current is not original:
            continue  # already wrapped, or someone else's stream (a test's capture, an embedding program)
        encoding = getattr(current, "encoding", None) or "utf-8"
        errors = getattr(current, "errors", None) or "strict"
        line_buffering = bool(getattr(current, "line_buffering", False))
        if current is not None and not can_encode(current):
            errors = FALLBACK_ERRORS
        elif name == "stderr" and errors == "strict":
            errors = "backslashreplace"
        try:
            raw = raw_type(fd, "w", closefd=False)
        except OSError:
            continue
        if raw_type is _StdoutRaw and fd in closed:
            raw.closed_at_start = True
        buffered = io.BufferedWriter(raw)
        setattr(
            sys,
            name,
            io.TextIOWrapper(
                buffered,
                encoding=encoding,
                errors=errors,
                line_buffering=line_buffering,
                write_through=name == "stderr",
            ),
        )


def _neutralize_stdout() -> None:
    """After stdout failed: point fd 1 at /dev/null so that the final flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
    raw = getattr(getattr(sys.stdout, "buffer", None), "raw", None)
    if isinstance(raw, _StdoutRaw):
        raw.closed_at_start = False


def stdout_error_message(e: OSError) -> str:
    return f"error: cannot write to standard output: {e.strerror or e}"


def _stdout_failed(e: OSError) -> None:
    _neutralize_stdout()
    _fail(stdout_error_message(e), 2)


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except StdoutBroken as e:
        _stdout_failed(e)
    except (OSError, ValueError, AttributeError):  # a broken pipe: end quietly, as cli.main does
        _neutralize_stdout()


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


def console() -> None:
    """The ``cgraph`` command's process (its console script, ``python -m cgraph_cli``): the process is the command
    line's own, so its evaluations keep freed memory for the next (:mod:`cgraph_cli.allocator`); a program that
    calls :func:`main` itself keeps its allocator as it is."""
    allocator.claim()
    main()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``cgraph`` command."""
    try:
        _run_main(argv)
    except KeyboardInterrupt:  # Ctrl-C outside _main's own handling (while loading it): as inside it
        _quiet_exit(130)


def _run_main(argv: list[str] | None) -> None:
    import signal

    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (embedded use): leave signals alone
        previous = None
    try:
        _setup_streams()
        try:
            _main(argv)  # ends with SystemExit
        except SystemExit:
            _flush_stdout()  # buffered output fails here (stdout on a full disk): exit 2, not at shutdown
            raise
        except StdoutBroken as e:  # raised by an error handler's own output (usage text)
            _stdout_failed(e)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _on_sigint(signum, frame) -> None:
    """Ctrl-C while the command runs: a KeyboardInterrupt, so that cleanup runs (``finally``, temp files) before
    the quiet exit 130; but inside an import, an immediate exit 130. Python may swallow an exception raised
    there ("Exception ignored in ..._get_module_lock") or a library turn it into an ImportError (numpy does),
    and the command would go on or report an internal error."""
    f = frame
    while f is not None:
        if f.f_code.co_filename.startswith("<frozen importlib"):
            os._exit(130)
        f = f.f_back
    raise KeyboardInterrupt


def _is_interrupted_early(handler: object) -> bool:
    """Whether ``handler`` is the package's early Ctrl-C handler (known by name: the package's ``__init__``
    is its public face, which no module inside imports)."""
    return getattr(handler, "__module__", None) == "cgraph_cli" and getattr(handler, "__name__", "") == (
        "_interrupted_early"
    )


def _interruptible() -> None:
    """From here on (the command runs) Ctrl-C goes through :func:`_on_sigint`; until now it was
    :func:`cgraph_cli._interrupted_early`'s immediate exit 130 (nothing was written yet)."""
    import signal

    try:
        if _is_interrupted_early(signal.getsignal(signal.SIGINT)):
            signal.signal(signal.SIGINT, _on_sigint)
    except ValueError:  # not the main thread
        pass


class _NotRaised(Exception):
    """Stands in for Typer's exception classes when the fast path runs without Typer."""


# the options whose values are program text or the program's names (not paths, which stay as the OS gave them)
_TEXT_OPTIONS = ("-e", "--expr", "--at", "--of", "--wrt", "--tangent", "--hvp")


def utf8_args(args: list[str]) -> list[str]:
    """The program text and names among the arguments (the values of :data:`_TEXT_OPTIONS`) as UTF-8 text where
    the locale could not decode them: under ``LC_ALL=C`` without UTF-8 mode Python keeps each byte it cannot read
    as a surrogate, so ``θ`` arrives as ``'\\udcce\\udcb8'``; its bytes are UTF-8 (what a terminal and a shell
    script send), and read as such it is ``θ`` again. Paths are left alone: the OS opens them by those bytes."""
    out = []
    value = False  # the previous argument is one of the options: this is its value
    for a in args:
        text = value or (a.startswith("--") and a.split("=", 1)[0] in _TEXT_OPTIONS and "=" in a)
        text = text or (a.startswith("-e") and not a.startswith("--") and len(a) > 2)  # -e'TEXT'
        if text and any("\udc80" <= ch <= "\udcff" for ch in a):
            try:
                a = os.fsencode(a).decode("utf-8")
            except UnicodeDecodeError:  # not UTF-8 either: as it came (the message names the bad bytes)
                pass
        value = a in _TEXT_OPTIONS
        out.append(a)
    return out


def _main(argv: list[str] | None) -> None:
    from cgraph_cli.cli.fastpath import parse_eval_args

    argv = utf8_args(list(sys.argv[1:] if argv is None else argv))
    fast = parse_eval_args(argv)
    if fast is None:
        from typer.exceptions import Abort, Exit, TyperException
    else:
        Abort = Exit = TyperException = _NotRaised  # noqa: N806
    debug = bool(os.environ.get("CGRAPH_DEBUG"))
    code = 0
    try:
        if fast is not None:
            from cgraph_cli.cli.fastpath import run_eval

            _interruptible()
            rv = run_eval(fast)
        else:
            app = _get_app()
            _interruptible()
            rv = app(args=argv, standalone_mode=False, prog_name="cgraph")
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
    except StdoutBroken as e:
        _stdout_failed(e)
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
