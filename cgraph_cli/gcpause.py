"""The garbage collector paused while acyclic structures are built (a program's AST, its graph, a result).

CPython starts a collection every few hundred container objects allocated, and the older generations' collections
traverse every tracked object, a large graph's hundreds of thousands of operand tuples included; while an AST, a
graph or an evaluation's lists are being built, none of them can free anything. Pausing them saves about a third
of the time of making the operand tuples of a large graph, and a tenth of building its evaluation plan.
"""

from __future__ import annotations

import gc


class paused:  # noqa: N801  (used as a function: ``with gcpause.paused():``)
    """No automatic collection inside the block (as it was after it: nested blocks leave it to the outermost).
    A class, not a generator: it costs a fraction of a microsecond, as it wraps every evaluation."""

    __slots__ = ("enabled",)

    def __enter__(self) -> None:
        self.enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            gc.enable()
