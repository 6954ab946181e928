"""``--watch``: run a command again whenever its program file is saved (live teaching: edit, the view follows).

``cgraph render F --watch`` draws the picture again at every save; ``cgraph eval F --watch`` and
``cgraph explain F --watch`` redraw their terminal view (cleared first when standard output is a terminal; each
new view appended when it is piped). The files are polled (size, modification time, then a hash of the content,
every :data:`POLL` seconds), so no extra dependency is needed; a change is acted on once the file has stopped
changing for :data:`SETTLE` seconds (an editor that truncates and then writes, or saves in pieces, is read
once, whole). A save that does not change the content (touch) runs nothing.

An error in the edited program is shown as usual (``error: FILE:LINE:COL: ...`` and the caret) and the watch goes
on; so does a file that disappears for a moment (editors that save by renaming). Ctrl-C ends the watch quietly,
with exit code 0: it is how a watch is meant to end.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from typing import Callable, Sequence

from cgraph_cli.errors import CgraphError, OutputClosed
from cgraph_cli.run import examples

POLL = 0.2  # seconds between two looks at the files
SETTLE = 0.15  # a change is acted on once the files have not changed for this long
CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear the screen


def check_watch(file: str | None, expr: str | None, *, conflicts: Sequence[tuple[bool, str]] = ()) -> None:
    """Refuse a ``--watch`` that makes no sense (:class:`CgraphError`, exit 2): no file to watch, or one of
    ``conflicts`` (``(given, why)`` pairs, such as ``(batch is not None, "--batch ...")``)."""
    if expr is not None or file in (None, "-"):
        raise CgraphError(
            "--watch needs a program FILE to watch, not -e or standard input",
            hint="save the program to a file: cgraph eval prog.cg --watch",
        )
    for given, why in conflicts:
        if given:
            raise CgraphError(f"--watch {why}")


def watch_paths(file: str, at_file: str | None = None) -> list[str]:
    """The files a watch looks at: the program (a shipped example's file for its name), and the ``--at-file``
    values when given (not stdin)."""
    return [examples.resolve(file)] + ([at_file] if at_file not in (None, "-") else [])  # type: ignore[list-item]


def _signature(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_mtime_ns, st.st_size


def _digest(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except (OSError, ValueError):
        return None


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _write(stream, text: str) -> None:
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError:
        raise OutputClosed() from None
    except (OSError, ValueError):
        if stream is sys.stdout:
            raise
        # a lost message on stderr changes nothing


def watch(
    paths: Sequence[str],
    run: Callable[[], object],
    *,
    redraw: bool = False,
    poll: float = POLL,
    settle: float = SETTLE,
    runs: int | None = None,
) -> int:
    """Run ``run()`` now and again after every change of the files ``paths``; return 0 when Ctrl-C ends it.

    ``redraw``: a terminal view (eval, explain): the screen is cleared before each run when standard output is a
    terminal. A :class:`CgraphError` from ``run`` is shown on stderr and the watch goes on. ``runs``: stop after
    that many runs (for tests; None: until Ctrl-C)."""
    clear = redraw and _is_terminal(sys.stdout)
    talk = _is_terminal(sys.stderr)
    shown = ", ".join(paths)
    done = 0
    try:
        while True:
            state = [(_signature(p), _digest(p)) for p in paths]
            if clear:
                _write(sys.stdout, CLEAR)
            _run_once(run)
            done += 1
            if talk:
                when = time.strftime("%H:%M:%S")
                _write(sys.stderr, f"watching {shown} (run at {when}); Ctrl-C ends\n")
            if runs is not None and done >= runs:
                return 0
            _wait_for_change(paths, state, poll, settle)
    except KeyboardInterrupt:
        return 0


def _run_once(run: Callable[[], object]) -> None:
    try:
        run()
    except CgraphError as err:
        _write(sys.stderr, err.render().rstrip("\n") + "\n")
    except (OutputClosed, OSError):  # standard output gone or full: the command's usual exit (cli.main)
        raise
    except RecursionError:
        _write(sys.stderr, "error: the program is nested too deeply to process\n")
    except MemoryError:
        _write(sys.stderr, "error: out of memory\n")
    except Exception as e:  # a bug in cgraph: reported as cli.main does, and the watch goes on
        if os.environ.get("CGRAPH_DEBUG"):
            raise
        _write(
            sys.stderr,
            f"error: internal error: {type(e).__name__}: {e}\n"
            "hint: this is a bug in cgraph; run with CGRAPH_DEBUG=1 for the traceback\n",
        )
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise OutputClosed() from None


def _wait_for_change(
    paths: Sequence[str], state: list[tuple[tuple[int, int] | None, str | None]], poll: float, settle: float
) -> None:
    """Until some file's content differs from ``state`` and has stopped changing for ``settle`` seconds."""
    seen = [s for s, _ in state]
    while True:
        time.sleep(poll)
        now = [_signature(p) for p in paths]
        if now == seen:
            continue
        while True:  # debounce: wait until a look after ``settle`` seconds sees the same
            time.sleep(settle)
            again = [_signature(p) for p in paths]
            if again == now:
                break
            now = again
        seen = now
        if any(d != _digest(p) for p, (_, d) in zip(paths, state)):
            return
