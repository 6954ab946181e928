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
(:func:`claim`, called by ``cli/entry.py``): blocks up to :data:`MMAP_MAX` then come from the heap, and glibc hands
the free top of the heap back only once it passes :data:`TRIM`, so an evaluation that holds less than that reuses
the memory the last one freed (a larger one is handed back and taken fresh, as before), and the process's resident
memory stays near its peak between evaluations. The Python API changes no global state: a program that imports
cgraph keeps its allocator as it is. (In a host program these thresholds would keep the memory of its own freed
arrays too: 844 MB resident after freeing 760 MB of 1 MB arrays, against 85 MB; and glibc gives each thread its own
pools, so a second thread's evaluation raised the peak from 126 to 208 MB.) Such a program can set glibc's own
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` before Python starts. cgraph leaves the allocator alone
when ``CGRAPH_KEEP_MEMORY`` is ``0`` (or ``false``, ``no``, ``off``), when the user tunes glibc's malloc through its
own variables (any ``MALLOC_*``, or a ``glibc.malloc`` tunable in ``GLIBC_TUNABLES``), with another C library
(macOS, Windows, musl), and in a Python without ctypes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

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


def _tuned_by_user(env: Mapping[str, str]) -> bool:
    """Whether the user tunes glibc's malloc through its own variables (``MALLOC_TRIM_THRESHOLD_``,
    ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_ARENA_MAX``..., or a ``glibc.malloc`` tunable): then cgraph leaves it as
    they set it."""
    return any(k.startswith("MALLOC_") for k in env) or "glibc.malloc." in env.get("GLIBC_TUNABLES", "")


def _set_thresholds() -> bool:
    env = os.environ
    if env.get("CGRAPH_KEEP_MEMORY", "").strip().lower() in _OFF or _tuned_by_user(env):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes  # (numpy has loaded it: numpy._core._internal)

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        if not hasattr(libc, "gnu_get_libc_version"):  # not glibc (musl's mallopt does nothing)
            return False
        mmap_set = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_MAX))
        trim_set = bool(mallopt(_M_TRIM_THRESHOLD, TRIM))
    except Exception:  # (a Python without ctypes, a libc without mallopt: nothing is done, and nothing raised)
        return False
    return mmap_set or trim_set
