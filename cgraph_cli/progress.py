"""Progress of long work: the one callback that cgraph's long loops take, and nothing that shows it.

A long loop (``check`` over many entries, ``eval --batch`` over many rows, ``render --steps`` frames and GIFs,
the Graphviz layout of a large picture) takes an optional ``progress`` argument of type :class:`Progress` and
calls it as ``progress(done, total)``: ``done`` never decreases, ``total`` is the amount of work when it is known
in advance (entries, bytes of a CSV file, frames) and None when it is not (a CSV read from a pipe); the last call
has ``done == total`` (a total not known in advance is the final ``done``). A loop may call it again with the
same ``done`` while it waits (a child process still drawing), so that whoever shows the progress can decide on
the time elapsed. The default everywhere is None: no progress, no cost.

The library never shows progress itself (presenters return data, only the CLI prints): the command line passes
a terminal progress bar (:mod:`cgraph_cli.cli.progress`) when standard error is a terminal, and a caller of the
Python API may pass any callable.
"""

from __future__ import annotations

from typing import Callable, Optional

Progress = Callable[[int, Optional[int]], None]
"""``progress(done, total)``: ``done`` units of work finished out of ``total`` (None: not known yet)."""


def report(progress: Progress | None, done: int, total: int | None) -> None:
    """Call ``progress(done, total)`` unless ``progress`` is None."""
    if progress is not None:
        progress(done, total)
