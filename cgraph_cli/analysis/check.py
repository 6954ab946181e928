"""``cgraph check``: reverse-mode gradients against central finite differences.

For every checked entry ``x[i]`` of an input, the numeric derivative is

    n = (f(x + eps·e_i) - f(x - eps·e_i)) / (2·eps)

computed in float64 by re-running only the forward pass (:func:`cgraph_cli.engine.forward`) of the
graph, which is built once. The analytic derivative ``a`` is the engine's backward pass. An entry
passes when ``|a - n| <= atol + rtol·|n|`` (SPEC §3; NaN never passes).

At a kink (relu or abs at 0, a tie of max/min, a zero vector under norm, sqrt at 0) the function is
not differentiable: the engine follows PyTorch's convention there while finite differences see the
average of the two one-sided slopes, so the check fails honestly, and :func:`find_kinks` names each
node whose operand sits on (within ``eps`` of) its op's kink so the report can say why.

Large inputs: ``samples`` checks that many randomly chosen entries per input (seeded), so the cost is
``2·samples`` forward passes per input instead of two per entry. The command line samples
:data:`DEFAULT_SAMPLES` entries of a larger input unless told otherwise (``--samples N``, ``--all-entries``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from cgraph_cli.engine import evaluate
from cgraph_cli.engine.reference import Result, forward
from cgraph_cli.errors import CgraphError, closest, format_located
from cgraph_cli.fmt import fmt_number, fmt_shape, fmt_value, json_number, json_value
from cgraph_cli.ir.graph import Graph
from cgraph_cli.ir.names import node_names
from cgraph_cli.ops import LEAF_OPS, OPS


@dataclass
class InputCheck:
    """The checked entries of one input."""

    name: str
    shape: tuple[int, ...]
    index: np.ndarray  # flat indices checked
    analytic: np.ndarray
    numeric: np.ndarray
    abs_error: np.ndarray
    rel_error: np.ndarray
    ok: np.ndarray  # bool per entry
    sampled: bool = False
    roundoff: np.ndarray | None = None  # the finite difference's round-off level per entry

    @property
    def noisy(self) -> int:
        """Failed entries whose error is within the finite differences' own round-off."""
        if self.roundoff is None:
            return 0
        return int(np.sum(~self.ok & (self.abs_error <= self.roundoff)))

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def failed(self) -> int:
        return int(np.sum(~self.ok))

    def entry_name(self, k: int) -> str:
        if not self.shape:
            return self.name
        idx = np.unravel_index(int(self.index[k]), self.shape)
        return f"{self.name}[{', '.join(str(int(i)) for i in idx)}]"


@dataclass
class Kink:
    node: int
    label: str
    op: str
    message: str
    span: tuple[int, int]
    line: int
    column: int


@dataclass
class CheckReport:
    result: Result
    eps: float
    rtol: float
    atol: float
    inputs: list[InputCheck] = field(default_factory=list)
    kinks: list[Kink] = field(default_factory=list)

    @property
    def checked(self) -> int:
        return sum(len(c.index) for c in self.inputs)

    @property
    def failed(self) -> int:
        return sum(c.failed for c in self.inputs)

    @property
    def passed(self) -> bool:
        return self.failed == 0


# -- kinks ----------------------------------------------------------------------------


def find_kinks(result: Result, eps: float) -> list[Kink]:
    """Nodes on the way to the output whose operand sits on (within eps of) their op's kink."""
    g = result.graph
    out = result.out
    need = g.needs_grad()
    anc = g.ancestors(out)
    labels: list[str] | None = None
    kinks = []
    for i in range(out + 1):
        kink = None if g.ops[i] in LEAF_OPS else OPS[g.ops[i]].kink
        if kink is None or not (anc[i] and need[i]):
            continue
        xs = [result.values[j] for j in g.args[i]]
        if not kink.at(xs, result.values[i], g.attrs[i] or {}, eps):
            continue
        why = kink.why
        labels = labels or node_names(g)
        operands = ", ".join(f"{labels[j]} = {fmt_value(result.values[j])}" for j in g.args[i])
        line, col = g.line_col(i)
        msg = f"{labels[i]} sits on a kink ({operands}): {why}; finite differences may not match there"
        kinks.append(Kink(i, labels[i], g.ops[i], msg, g.spans[i], line, col))
    return kinks


# -- the check ------------------------------------------------------------------------


def pick_inputs(g: Graph, wrt: list[str] | None) -> list[str]:
    if not wrt:
        return list(g.inputs)
    unknown = [w for w in wrt if w not in g.inputs]
    if unknown:
        best = closest(unknown[0], list(g.inputs))
        verb = "is not an input" if len(unknown) == 1 else "are not inputs"
        raise CgraphError(
            f"--wrt: {', '.join(repr(u) for u in unknown)} {verb} of the program;"
            f" its inputs are: {', '.join(g.inputs) or 'none'}",
            hint=f"did you mean '{best}'?" if best else None,
        )
    return list(dict.fromkeys(wrt))


DEFAULT_SAMPLES = 1000  # the command line checks this many random entries of a larger input


def check_options(eps: float, rtol: float, atol: float, samples: int | None) -> None:
    """Refuse tolerances that would make every check fail (or pass): NaN, infinities, negatives."""
    if not (math.isfinite(eps) and eps > 0):
        raise CgraphError(f"--eps must be a positive finite number, got {fmt_number(eps, 6, 'python')}")
    for option, value in (("--rtol", rtol), ("--atol", atol)):
        if not (math.isfinite(value) and value >= 0):
            raise CgraphError(f"{option} must be a finite number, 0 or more, got {fmt_number(value, 6, 'python')}")
    if samples is not None and samples < 1:
        raise CgraphError(f"--samples must be at least 1, got {samples}")


def check_gradients(
    g: Graph,
    inputs: dict[str, np.ndarray],
    out: int | None = None,
    *,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    wrt: list[str] | None = None,
    samples: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> CheckReport:
    """Compare the engine's gradient of ``out`` with central finite differences, entry by entry.

    ``samples``: check that many entries of each larger input, chosen at random (seeded by ``seed``);
    None checks every entry. ``progress(done, total)`` is called as entries are checked."""
    check_options(eps, rtol, atol, samples)
    names = pick_inputs(g, wrt)
    base = {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}
    result = evaluate(g, base, out)
    out = result.out
    report = CheckReport(result, eps, rtol, atol)
    rng = np.random.default_rng(seed)
    plan = []
    for name in names:
        size = base[name].size
        if samples is not None and samples < size:
            plan.append((name, np.sort(rng.choice(size, samples, replace=False)), True))
        else:
            plan.append((name, np.arange(size), False))
    total = sum(len(index) for _, index, _ in plan)
    done = 0
    for name, index, sampled in plan:
        x = base[name]
        grad = result.grads[g.inputs[name]]
        analytic = np.asarray(grad, dtype=np.float64).reshape(-1)[index] if grad is not None else np.zeros(len(index))
        tick = None
        if progress is not None:

            def tick(k: int, _start: int = done) -> None:
                progress(_start + k, total)

        numeric, roundoff = _central_differences(g, base, name, index, out, eps, tick)
        done += len(index)
        with np.errstate(all="ignore"):
            same = analytic == numeric  # also the same infinity
            diff = np.where(same, 0.0, np.abs(analytic - numeric))
            rel = np.where(numeric != 0, diff / np.abs(numeric), np.where(diff == 0, 0.0, np.inf))
            rel = np.where(same, 0.0, rel)
            ok = same | (diff <= atol + rtol * np.abs(numeric))  # False for NaN
        report.inputs.append(
            InputCheck(name, tuple(x.shape), index, analytic, numeric, diff, rel, ok, sampled, roundoff)
        )
    report.kinks = find_kinks(result, eps)
    return report


def _central_differences(
    g: Graph,
    base: dict[str, np.ndarray],
    name: str,
    index: np.ndarray,
    out: int,
    eps: float,
    tick: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(f(x + eps) - f(x - eps)) / 2eps for each flat index, perturbing one working copy in place.

    Also returns the round-off level of each quotient (4 ulp of f over 2 eps)."""
    work = np.array(base[name], dtype=np.float64, copy=True)
    flat = work.reshape(-1)  # a view: writing it perturbs work
    values = dict(base)
    values[name] = work
    res = np.empty(len(index), dtype=np.float64)
    noise = np.empty(len(index), dtype=np.float64)
    with np.errstate(all="ignore"):
        for k, fi in enumerate(index):
            orig = flat[fi]
            flat[fi] = orig + eps
            fp = float(np.asarray(forward(g, values, upto=out)[out], dtype=np.float64).reshape(-1)[0])
            flat[fi] = orig - eps
            fm = float(np.asarray(forward(g, values, upto=out)[out], dtype=np.float64).reshape(-1)[0])
            flat[fi] = orig
            res[k] = (fp - fm) / (2 * eps)
            # f is known to about 2 ulp each side: the quotient cannot resolve less than this
            noise[k] = 4 * np.finfo(np.float64).eps * max(abs(fp), abs(fm)) / (2 * eps)
            if tick is not None:
                tick(k + 1)
    return res, noise


# -- presentation ---------------------------------------------------------------------

MAX_ROWS = 20  # rows per input table; beyond, failures first and a summary row


def rows_to_show(c: InputCheck) -> list[int]:
    n = len(c.index)
    if n <= MAX_ROWS:
        return list(range(n))
    bad = [k for k in range(n) if not c.ok[k]]
    good = [k for k in range(n) if c.ok[k]]
    return sorted(bad[:MAX_ROWS] + good[: max(0, MAX_ROWS // 2 - len(bad))])


def summary(report: CheckReport) -> str:
    r = report.result
    out = node_names(r.graph)[r.out]
    n, bad = report.checked, report.failed
    tol = ", ".join(
        f"{k} {fmt_number(v, 6, 'python')}"
        for k, v in (("eps", report.eps), ("rtol", report.rtol), ("atol", report.atol))
    )
    sampled = " (sampled)" if any(c.sampled for c in report.inputs) else ""
    if n == 0:
        return f"ok: nothing to check: {out} has no inputs to differentiate with respect to"
    if bad == 0:
        return f"ok: all {n} gradient entries of {out} match finite differences{sampled} ({tol})"
    worst = max(
        ((c, k) for c in report.inputs for k in range(len(c.index)) if not c.ok[k]),
        key=lambda ck: np.nan_to_num(ck[0].abs_error[ck[1]], nan=np.inf),
    )
    c, k = worst
    where = f"worst {c.entry_name(k)}: analytic {fmt_number(c.analytic[k])}, numeric {fmt_number(c.numeric[k])}"
    kink = f"; {len(report.kinks)} non-differentiable point{'s' * (len(report.kinks) != 1)}" if report.kinks else ""
    text = f"FAILED: {bad} of {n} gradient entries of {out} differ from finite differences ({where}; {tol}){kink}"
    noisy = sum(c.noisy for c in report.inputs)
    if noisy:
        level = max(float(np.max(c.roundoff)) for c in report.inputs if c.roundoff is not None and len(c.index))
        text += (
            f"\nnote: {noisy} of these differ by less than the finite differences' own round-off"
            f" (up to {fmt_number(level, 1, 'sci')} here, from |{out}| / eps): a larger --eps or --atol may settle them"
        )
    return text


def to_tables(report: CheckReport) -> list[Any]:
    """One rich Table per input."""
    from rich.table import Table

    r = report.result
    outl = node_names(r.graph)[r.out]
    tables = []
    for c in report.inputs:
        what = (
            f"{len(c.index)} of {c.size} entries, sampled"
            if c.sampled
            else f"{c.size} entr{'y' if c.size == 1 else 'ies'}"
        )
        status = "ok" if c.failed == 0 else f"{c.failed} failed"
        t = Table(title=f"∂{outl}/∂{c.name}  shape {fmt_shape(c.shape)}, {what}: {status}", title_justify="left")
        t.add_column("entry", style="bold")
        t.add_column("analytic", justify="right", style="cyan", no_wrap=True)
        t.add_column("numeric", justify="right", style="magenta", no_wrap=True)
        t.add_column("|a - n|", justify="right", no_wrap=True)
        t.add_column("rel. error", justify="right", no_wrap=True)
        t.add_column("", no_wrap=True)
        shown = rows_to_show(c)
        for k in shown:
            t.add_row(
                c.entry_name(k),
                fmt_number(c.analytic[k]),
                fmt_number(c.numeric[k]),
                fmt_number(c.abs_error[k], 2, "sci"),
                fmt_number(c.rel_error[k], 2, "sci"),
                "pass" if c.ok[k] else "FAIL",
                style=None if c.ok[k] else "red",
            )
        hidden = len(c.index) - len(shown)
        if hidden:
            t.add_row(
                f"… {hidden} more",
                "",
                "",
                f"max {fmt_number(np.max(c.abs_error), 2, 'sci')}",
                "",
                "pass" if c.failed <= len(shown) else "",
            )
        tables.append(t)
    return tables


def to_data(report: CheckReport) -> dict[str, Any]:
    r = report.result
    return {
        "output": node_names(r.graph)[r.out],
        "value": json_value(r.values[r.out]),
        "eps": report.eps,
        "rtol": report.rtol,
        "atol": report.atol,
        "passed": report.passed,
        "checked": report.checked,
        "size": sum(c.size for c in report.inputs),  # entries of the inputs checked; > checked if sampled
        "sampled": any(c.sampled for c in report.inputs),
        "failed": report.failed,
        "inputs": [
            {
                "name": c.name,
                "shape": list(c.shape),
                "size": c.size,
                "checked": len(c.index),
                "sampled": c.sampled,
                "failed": c.failed,
                "failed_within_roundoff": c.noisy,
                "max_abs_error": json_number(np.max(c.abs_error)) if len(c.index) else 0.0,
                "entries": [
                    {
                        "entry": c.entry_name(k),
                        "index": [int(i) for i in np.unravel_index(int(c.index[k]), c.shape)] if c.shape else [],
                        "analytic": json_number(c.analytic[k]),
                        "numeric": json_number(c.numeric[k]),
                        "abs_error": json_number(c.abs_error[k]),
                        "rel_error": json_number(c.rel_error[k]),
                        "roundoff": json_number(c.roundoff[k]) if c.roundoff is not None else None,
                        "ok": bool(c.ok[k]),
                    }
                    for k in range(len(c.index))
                ],
            }
            for c in report.inputs
        ],
        "kinks": [
            {"node": k.node, "name": k.label, "op": k.op, "line": k.line, "column": k.column, "message": k.message}
            for k in report.kinks
        ],
    }


def kink_warnings(report: CheckReport) -> list[str]:
    g = report.result.graph
    return ["warning: " + format_located(k.message, k.span, g.source) for k in report.kinks]
