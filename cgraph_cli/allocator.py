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

:func:`retain` sets both thresholds once per process, at its first evaluation, in the command line's process only
(:func:`claim`, called by ``cli/entry.py``): blocks up to :data:`MMAP_MAX` then come from the heap and freed memory
stays with the process, so the next evaluation reuses it. The peak of memory is what an evaluation holds at once;
what changes is that the process's resident memory stays near its peak instead of falling back after each
evaluation. The Python API changes no global state, so a program that imports cgraph keeps its allocator as it is
(it can set glibc's own ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` before Python starts, for the same
effect): with these thresholds, a host that frees many 1 MB arrays of its own keeps their memory (measured: 844 MB
resident after freeing 760 MB of them, against 85 MB). ``CGRAPH_KEEP_MEMORY=0`` (or ``false``, ``no``, ``off``)
leaves glibc's settings alone in the command line too. Elsewhere (macOS, Windows, musl) nothing is done.
"""

from __future__ import annotations

import os
import sys

MMAP_MAX = 32 << 20  # glibc's largest mmap threshold on 64-bit systems: larger blocks are still mapped
TRIM = 256 << 20  # the most free memory kept at the top of the heap
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)

_OFF = {"0", "false", "no", "off"}

_own = [False]  # whether the process is the command line's (claim)
_state: list[bool | None] = [None]  # None: not tried yet; then whether the thresholds were set


def claim() -> None:
    """Mark the process as cgraph's own (the command line): its first evaluation may set the thresholds."""
    _own[0] = True


def retain() -> bool | None:
    """In the command line's process, set glibc's thresholds once (a list lookup on every later call); whether
    they are set (None: not tried, as in a process that only imports cgraph)."""
    if _state[0] is None and _own[0]:
        _state[0] = _set_thresholds()
    return _state[0]


def _set_thresholds() -> bool:
    if os.environ.get("CGRAPH_KEEP_MEMORY", "").strip().lower() in _OFF or not sys.platform.startswith("linux"):
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
