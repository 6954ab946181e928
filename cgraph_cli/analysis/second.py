"""``cgraph check --order 2``: second derivatives against finite differences of the gradient (PyTorch's
``gradgradcheck``).

For each checked entry ``x[k]`` of an input, the gradient entry ``∂out/∂x[k]`` is a scalar program: the
backward pass as nodes dotted with the unit direction of ``x[k]`` (:class:`cgraph_cli.engine.second.HvpProgram`).
Its derivatives ``∂²out/∂x[k]∂y`` come from the engine's reverse mode over those nodes (the second-order
path), and :func:`cgraph_cli.analysis.check.check_gradients` compares them, entry by entry and with the
same steps, error estimates, tolerances and report, with finite differences of that gradient entry.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cgraph_cli.analysis.check import CheckReport, check_gradients, find_kinks, pick_inputs
from cgraph_cli.engine import evaluate
from cgraph_cli.engine.second import HvpProgram
from cgraph_cli.ir.graph import Graph
from cgraph_cli.progress import Progress


def _entry(name: str, shape: tuple[int, ...], k: int) -> str:
    if not shape:
        return name
    return f"{name}[{', '.join(str(int(i)) for i in np.unravel_index(k, shape))}]"


def check_second_order(
    g: Graph,
    inputs: dict[str, np.ndarray],
    out: int | None = None,
    *,
    wrt: list[str] | None = None,
    samples: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    **settings: Any,
) -> CheckReport:
    """Every second derivative ``∂²out/∂x[k]∂y[j]`` of the inputs ``wrt`` (default: all), checked as
    :func:`check_gradients` checks a gradient (``settings``: its ``eps``, ``rtol``, ``atol``, ``method``).
    ``samples``: that many random entries ``x[k]`` per input, and as many ``y[j]`` per input.
    ``progress(done, total)`` is called as the entries ``x[k]`` (a gradient check each) are done."""
    out = g.output if out is None else out
    names = pick_inputs(g, wrt)
    base = {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}
    result = evaluate(g, base, out)
    prog = HvpProgram(g, out)
    rng = np.random.default_rng(seed)
    report: CheckReport | None = None
    checks = []
    plan = []
    for x in names:
        shape = tuple(np.shape(base[x]))
        size = int(np.prod(shape, dtype=np.int64))
        entries = np.arange(size)
        if samples is not None and samples < size:
            entries = np.sort(rng.choice(size, samples, replace=False))
        plan.append((x, shape, size, entries))
    total = sum(len(entries) for *_, entries in plan)
    done = 0
    for x, shape, size, entries in plan:
        for k in entries:
            values = dict(base)
            for y, v in prog.names.items():
                values[v] = np.zeros(np.shape(base[y]))
            unit = np.zeros(size)
            unit[k] = 1.0
            values[prog.names[x]] = unit.reshape(shape)
            sub = check_gradients(prog.graph, values, prog.dot, wrt=names, samples=samples, seed=seed, **settings)
            for c in sub.inputs:
                c.of = _entry(x, shape, int(k))
                c.sampled = c.sampled or len(entries) < size
            checks.extend(sub.inputs)
            report = sub
            done += 1
            if progress is not None:
                progress(done, total)
    how = report.how if report is not None else ("fixed" if settings.get("eps") is not None else "richardson")
    eps = report.eps if report is not None else settings.get("eps")
    rtol = report.rtol if report is not None else 0.0
    atol = report.atol if report is not None else 0.0
    final = CheckReport(result, eps, rtol, atol, checks, how=how, order=2)
    final.kinks = find_kinks(result, eps if eps is not None else 1e-6)
    return final
