"""Freed memory kept for the next evaluation (cgraph_cli/allocator.py): glibc's thresholds are set once per
process at the first evaluation, so repeated evaluations of a tensor program reuse their memory instead of taking
it fresh from the kernel page by page; CGRAPH_KEEP_MEMORY=0 leaves them alone. Each case runs in a fresh process,
as the setting is the process's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest


def _glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError, AttributeError):
        return False


GLIBC = _glibc()

# A program of about 6 MB of float64 arrays held at once (values and gradients), evaluated five times; the page
# faults of the last three evaluations are counted.
PROBE = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    import cgraph_cli as cg
    from cgraph_cli import allocator

    before = allocator._state[0]
    p = cg.parse("input W[300, 300], X[40, 300]\\nh = tanh(X @ W)\\nh2 = tanh(h @ W)\\nloss = sum(h2 * h2)\\n")
    rng = np.random.default_rng(0)
    W, X = rng.standard_normal((300, 300)) * 0.05, rng.standard_normal((40, 300))
    for _ in range(2):
        p.eval(W=W, X=X)
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        ev = p.eval(W=W, X=X)
        del ev
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 3
    print(json.dumps({"before": before, "after": allocator._state[0], "faults": faults}))
    """
)


def _probe(**env: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env={**os.environ, **env}, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_first_evaluation_keeps_freed_memory_for_the_next() -> None:
    r = _probe()
    assert r["before"] is None and r["after"] is True  # set at the first evaluation, not at import
    # with the memory kept, a repeated evaluation takes (almost) no page from the kernel; without, about
    # 6 MB / 4 kB = 1,500 (below)
    assert r["faults"] < 100, r


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_keep_memory_0_leaves_glibc_alone() -> None:
    r = _probe(CGRAPH_KEEP_MEMORY="0")
    assert r["after"] is False
    # (glibc's defaults then hand the memory back between evaluations on this kind of machine; the count is
    # not asserted, as it depends on glibc's dynamic thresholds)


def test_retain_is_idempotent_and_cheap() -> None:
    from cgraph_cli import allocator

    first = allocator.retain()
    assert allocator.retain() is first and allocator._state[0] is first
