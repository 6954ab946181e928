"""Freed memory kept for the next evaluation, where the C library is glibc.

An evaluation holds every node's value and gradient until its result is dropped, then frees them together. With
glibc's defaults, a block above the mmap threshold (which glibc raises as such blocks are freed, up to 32 MB) is
mapped for its allocation and unmapped when freed, and free memory beyond the trim threshold at the top of the heap
is handed back to the system: the next evaluation then gets its memory fresh from the kernel, a page fault per
4 kB page, each page zeroed. Measured on the bench's MLP (784-512-512-10, batch 256, float32): 2,000 page faults
(8 MB) per evaluation, 14.3 ms against 10.2 ms with the memory kept (hand-written numpy 9.2 ms, with no page fault
in float32; in float64 it took 2,810 pages per call itself, 25.4 ms against 19.5 ms with these thresholds). Every
repeated evaluation of a program whose arrays take megabytes (``Program.eval`` in a loop, ``--batch`` chunks,
finite differences) paid that on each run.

:func:`retain` sets both thresholds once per process, at its first evaluation: blocks up to :data:`MMAP_MAX` come
from the heap and up to :data:`TRIM` of free memory stays with the process, so the next evaluation reuses it. The
peak of memory is unchanged (it is what an evaluation holds at once); what changes is that the process keeps up
to :data:`TRIM` of it after an evaluation instead of handing it back. ``CGRAPH_KEEP_MEMORY=0`` leaves glibc's
settings alone (for a process that embeds cgraph and tunes its allocator itself). Elsewhere (macOS, Windows, musl)
nothing is done.
"""

from __future__ import annotations

import os
import sys

MMAP_MAX = 32 << 20  # glibc's largest mmap threshold on 64-bit systems: larger blocks are still mapped
TRIM = 256 << 20  # the most free memory kept at the top of the heap
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)

_state: list[bool | None] = [None]  # None: not tried yet; then whether the thresholds were set


def retain() -> bool | None:
    """Set glibc's thresholds, once per process (a list lookup on every later call); whether they are set."""
    if _state[0] is None:
        _state[0] = _set_thresholds()
    return _state[0]


def _set_thresholds() -> bool:
    if os.environ.get("CGRAPH_KEEP_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes  # (numpy has loaded it: numpy._core._internal)

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        if not hasattr(libc, "gnu_get_libc_version"):  # not glibc (musl's mallopt does nothing)
            return False
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM))
