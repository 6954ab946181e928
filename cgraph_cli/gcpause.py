"""The garbage collector paused while acyclic structures are built (a program's AST, its graph, a result).

CPython starts a collection every few hundred container objects allocated, and the older generations' collections
traverse every tracked object, a large graph's hundreds of thousands of operand tuples included; while an AST, a
graph or an evaluation's lists are being built, none of them can free anything. Pausing them saves about a third
of the time of making the operand tuples of a large graph, and a tenth of building its evaluation plan.

The pause is one for the whole process, however many threads are inside a block: the first block in disables the
collector (if it was on) and the last block out turns it back on, under a lock, so that no interleaving of
threads leaves it off.
"""

from __future__ import annotations

import gc
import threading

_lock = threading.Lock()
_inside = 0  # blocks entered and not yet left, in every thread
_was_on = False  # whether the collector was on when the first of them was entered


class paused:  # noqa: N801  (used as a function: ``with gcpause.paused():``)
    """No automatic collection inside the block; afterwards, as it was before the first block (nested or in other
    threads) began. A class, not a generator: it costs a fraction of a microsecond, as it wraps every evaluation."""

    __slots__ = ()

    def __enter__(self) -> None:
        global _inside, _was_on
        with _lock:
            if _inside == 0:
                _was_on = gc.isenabled()
                gc.disable()
            _inside += 1

    def __exit__(self, *exc: object) -> None:
        global _inside
        with _lock:
            _inside -= 1
            if _inside == 0 and _was_on:
                gc.enable()
