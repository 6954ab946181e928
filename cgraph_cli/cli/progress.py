"""The terminal progress bar of long commands: a transient rich bar on standard error, only when it is a terminal.

Used as ``with progress_bar("checking gradients") as progress:``, where ``progress`` is None when standard error
is not a terminal (piped, a file: nothing is shown and nothing changes) and otherwise a
:data:`cgraph_cli.progress.Progress` callback to hand to the library's long loop. The bar appears only for long
work: once ``min_total`` units are announced, or once :data:`DELAY` seconds have passed with the work not done;
it is removed when the work ends (transient), so the terminal keeps only the command's own output. rich is
imported only when a bar is actually drawn (start-up matters), and the bar never takes over standard output
(piped output stays byte for byte what it is without a terminal).
"""

from __future__ import annotations

import sys
import time
from typing import Any

DELAY = 0.5
"""Seconds of work after which a bar is shown even below ``min_total``; the environment variable
``CGRAPH_PROGRESS_DELAY`` changes it (0: a bar for any work that is not over at its first report)."""


def delay_setting() -> float:
    """:data:`DELAY`, or ``CGRAPH_PROGRESS_DELAY`` when it is a number of seconds (0 or more)."""
    import math
    import os

    raw = os.environ.get("CGRAPH_PROGRESS_DELAY")
    try:
        value = float(raw) if raw is not None else DELAY
    except ValueError:
        return DELAY
    return value if math.isfinite(value) and value >= 0 else DELAY


def stderr_is_terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _width() -> int | None:
    """None (rich asks the terminal) unless COLUMNS says less than 40 columns (rich would draw nothing at 0)."""
    import os

    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        return None
    return None if columns >= 40 else 80


class progress_bar:  # noqa: N801 - used as a function: ``with progress_bar(...) as progress``
    """A progress bar for one piece of long work (see the module's docstring).

    ``unit`` is ``"items"`` (shown as done/total) or ``"bytes"`` (shown as a percentage). ``console``: a rich
    Console to draw on instead of standard error (tests inject one with ``force_terminal=True``); given, the bar
    is shown whatever standard error is. ``delay``: seconds before a bar is shown below ``min_total`` (default
    :func:`delay_setting`). ``enabled=False``: no bar (the caller's own reason)."""

    def __init__(
        self,
        label: str,
        *,
        unit: str = "items",
        min_total: int | None = None,
        delay: float | None = None,
        console: Any = None,
        enabled: bool = True,
    ) -> None:
        self.label = label
        self.unit = unit
        self.min_total = min_total
        self.delay = delay_setting() if delay is None else delay
        self.console = console
        self.enabled = enabled
        self.bar: Any = None
        self.task: Any = None
        self.started = time.monotonic()

    def __enter__(self):
        self.started = time.monotonic()
        if not self.enabled or (self.console is None and not stderr_is_terminal()):
            return None
        return self.update

    def _long(self, total: int | None) -> bool:
        if self.min_total is not None and total is not None and total >= self.min_total:
            return True
        return time.monotonic() - self.started >= self.delay

    def update(self, done: int, total: int | None) -> None:
        if self.bar is None:
            if (total is not None and done >= total) or not self._long(total):
                return
            self._start(total)
        self.bar.update(self.task, completed=done, total=total)
        if total is not None and done >= total:  # finished: gone before the command prints its result
            self._stop()

    def _start(self, total: int | None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        console = self.console
        if console is None:
            console = Console(file=sys.stderr, highlight=False, width=_width())
        amount = TaskProgressColumn() if self.unit == "bytes" else MofNCompleteColumn()
        self.bar = Progress(
            TextColumn(self.label),
            BarColumn(),
            amount,
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            redirect_stdout=False,  # the command's output goes where it goes, untouched
            redirect_stderr=False,
        )
        self.bar.start()
        self.task = self.bar.add_task(self.label, total=total)

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        if self.bar is not None:
            try:
                self.bar.stop()
            except (OSError, ValueError):
                pass
            self.bar = None
