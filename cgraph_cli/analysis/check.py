"""``cgraph check``: reverse-mode gradients against finite differences with an error estimate.

The numeric derivative of every checked entry ``x[i]`` is computed in float64 by re-running only the
forward pass (:func:`cgraph_cli.engine.forward`) of the graph, which is built once. The analytic
derivative ``a`` is the engine's backward pass. Two ways (issue 18):

* the default, :func:`_richardson`: central differences ``D(h) = (f(x+h) - f(x-h)) / 2h`` at three
  steps ``h, h/2, h/4`` (``h`` from the scale of ``x[i]``: ``2^-9·max(|x[i]|, 1)``), combined by
  Richardson extrapolation into ``n = (64·D(h/4) - 20·D(h/2) + D(h)) / 45``. Its error estimate ``e`` is
  the distance to the previous extrapolation level plus the round-off of ``f`` amplified by the
  quotients. An entry passes when ``|a - n| <= e + RTOL·|n|``. A step whose estimate is poor, or
  whose verdict is a failure, is retried at smaller steps and the attempt with the smallest estimate
  counts. Where the stencil leaves the function's domain (a NaN or an infinity while ``f(x)`` is
  finite), smaller steps are tried, then a one-sided difference (forward, else backward) at six
  steps, extrapolated by Aitken's Δ² (which also removes an error ``c·h^p`` of unknown power, as
  ``x^1.1`` at 0 has); the row says so.
* ``method="complex"``, where every op on the way from the inputs to the output has a ``complex_step``
  record (its forward is analytic on complex numbers): ``n = Im f(x + i·h) / h``, free of
  cancellation, at ``h = 1e-20`` and, for the estimate, at ``h = 1e-10·max(|x|, 1)``; their distance plus
  a few ulp is the estimate. An entry whose two values disagree (a branch point such as ``x^1.1`` at 0),
  or whose derivative is near 0 beside ``|f| / |x|`` (a minimum), falls back to the default for that entry.
* fixed settings, when ``eps``, ``rtol`` or ``atol`` is given: ``n = (f(x+eps) - f(x-eps)) / 2eps`` and
  ``|a - n| <= atol + rtol·|n|`` (SPEC §3, the behaviour before issue 18). NaN never passes.

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
from cgraph_cli.engine.forward_mode import tangents
from cgraph_cli.engine.reference import Result, backward, forward
from cgraph_cli.errors import CgraphError, format_located
from cgraph_cli.fmt import fmt_number, fmt_shape, fmt_value, json_number, json_value
from cgraph_cli.ir.graph import Graph
from cgraph_cli.ir.names import node_names
from cgraph_cli.ops import LEAF_OPS, OPS
from cgraph_cli.progress import Progress


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
    error: np.ndarray | None = None  # the numeric derivative's error estimate per entry
    method: list[str] | None = None  # "central", "one-sided (forward)", "one-sided (backward)", "complex step"
    step: np.ndarray | None = None  # the (largest) step used per entry
    of: str | None = None  # check --order 2: the gradient entry whose derivatives these are ("a", "x[1]")

    def note(self, k: int) -> str:
        """What to say in entry k's row about how its numeric derivative was taken."""
        m = self.method[k] if self.method is not None else "central"
        return "one-sided" if m.startswith("one-sided") else ""

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
        """``x[1, 2]``; for a second derivative ``∂²out/∂a∂x[1, 2]``, ``a, x[1, 2]``."""
        name = self.name
        if self.shape:
            idx = np.unravel_index(int(self.index[k]), self.shape)
            name = f"{self.name}[{', '.join(str(int(i)) for i in idx)}]"
        return name if self.of is None else f"{self.of}, {name}"


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
    eps: float | None  # None: the default, Richardson extrapolation with a step per entry
    rtol: float
    atol: float
    inputs: list[InputCheck] = field(default_factory=list)
    kinks: list[Kink] = field(default_factory=list)
    how: str = "richardson"  # "richardson", "complex" or "fixed"
    order: int = 1  # 2: the entries are second derivatives, checked against differences of the gradient
    modes: ModesCheck | None = None  # check --modes: forward against reverse mode

    @property
    def method(self) -> str:
        return self.how

    @property
    def checked(self) -> int:
        return sum(len(c.index) for c in self.inputs)

    @property
    def failed(self) -> int:
        return sum(c.failed for c in self.inputs)

    @property
    def passed(self) -> bool:
        return self.failed == 0 and (self.modes is None or self.modes.passed)


@dataclass
class ModesCheck:
    """Forward mode against reverse mode: for random directions t and cotangents v, the JVP's ⟨v, J t⟩
    and the VJP's ⟨Jᵀ v, t⟩ (the same number: one linear map, two ways)."""

    forward: list[float]  # ⟨v, J t⟩ per trial
    reverse: list[float]  # ⟨Jᵀ v, t⟩ per trial
    scale: list[float]  # the sum of |terms| of the two inner products, the size of their round-off
    ok: list[bool]

    @property
    def passed(self) -> bool:
        return all(self.ok)


MODES_TRIALS = 3
MODES_RTOL = 1e-9  # of the terms' magnitude: both sides sum the same products in other orders


def check_modes(
    g: Graph, inputs: dict[str, np.ndarray], out: int, *, seed: int = 0, trials: int = MODES_TRIALS
) -> ModesCheck:
    """``trials`` random (t, v) from ``seed``: one tangent pass and one backward pass from v each."""
    rng = np.random.default_rng(seed)
    vals = forward(g, inputs)
    names = list(g.inputs)
    m = ModesCheck([], [], [], [])
    with np.errstate(all="ignore"):
        for _ in range(trials):
            t = {x: rng.standard_normal(np.shape(inputs[x])) for x in names}
            v = rng.standard_normal(np.shape(vals[out]))
            jt = np.asarray(tangents(g, vals, t, upto=out)[out], dtype=np.float64)
            grads = backward(g, vals, out, seed=v)
            fwd = float(np.sum(v * jt))
            parts = [np.asarray(grads[g.inputs[x]], dtype=np.float64) * t[x] for x in names]
            rev = float(sum(np.sum(p) for p in parts))
            scale = float(np.sum(np.abs(v * jt)) + sum(np.sum(np.abs(p)) for p in parts))
            ok = fwd == rev or abs(fwd - rev) <= MODES_RTOL * scale
            m.forward.append(fwd)
            m.reverse.append(rev)
            m.scale.append(scale)
            m.ok.append(bool(ok))
    return m


def modes_summary(m: ModesCheck) -> str:
    worst = max(range(len(m.ok)), key=lambda k: abs(m.forward[k] - m.reverse[k]))
    diff = abs(m.forward[worst] - m.reverse[worst])
    if m.passed:
        return (
            f"ok: forward and reverse mode agree: ⟨v, J t⟩ = ⟨Jᵀv, t⟩ for {len(m.ok)} random t and v"
            f" (largest difference {fmt_number(diff, 2, 'sci')})"
        )
    return (
        f"FAILED: forward and reverse mode differ: ⟨v, J t⟩ = {fmt_number(m.forward[worst])} but"
        f" ⟨Jᵀv, t⟩ = {fmt_number(m.reverse[worst])}"
    )


def modes_data(m: ModesCheck) -> dict[str, Any]:
    return {
        "passed": m.passed,
        "trials": [
            {"forward": json_number(f), "reverse": json_number(r), "scale": json_number(s), "ok": ok}
            for f, r, s, ok in zip(m.forward, m.reverse, m.scale, m.ok)
        ],
    }


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
    """The inputs to check: ``wrt`` (refused if one is unknown or declared data), default every input not
    declared ``input data`` (:meth:`Graph.grad_inputs`, as eval's ``--wrt``)."""
    return g.grad_inputs(wrt or None)


DEFAULT_SAMPLES = 1000  # the command line checks this many random entries of a larger input
METHODS = ("richardson", "complex")  # --method; fixed settings are chosen by --eps/--rtol/--atol

# the fixed settings (--eps/--rtol/--atol): any one given selects them, the others take these values
FIXED_EPS, FIXED_RTOL, FIXED_ATOL = 1e-6, 1e-5, 1e-8
RTOL = 1e-6  # the default's relative tolerance on top of each entry's error estimate


def check_options(eps: float | None, rtol: float | None, atol: float | None, samples: int | None) -> None:
    """Refuse tolerances that would make every check fail (or pass): NaN, infinities, negatives."""
    if eps is not None and not (math.isfinite(eps) and eps > 0):
        raise CgraphError(f"--eps must be a positive finite number, got {fmt_number(eps, 6, 'python')}")
    for option, value in (("--rtol", rtol), ("--atol", atol)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise CgraphError(f"{option} must be a finite number, 0 or more, got {fmt_number(value, 6, 'python')}")
    if samples is not None and samples < 1:
        raise CgraphError(f"--samples must be at least 1, got {samples}")


def check_gradients(
    g: Graph,
    inputs: dict[str, np.ndarray],
    out: int | None = None,
    *,
    eps: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    wrt: list[str] | None = None,
    samples: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    method: str = "richardson",
) -> CheckReport:
    """Compare the engine's gradient of ``out`` with finite differences, entry by entry.

    By default each entry's numeric derivative comes with an error estimate (Richardson extrapolation);
    any of ``eps``, ``rtol``, ``atol`` given selects the fixed-step central difference and fixed
    tolerances (the others default to :data:`FIXED_EPS`, :data:`FIXED_RTOL`, :data:`FIXED_ATOL`).
    ``method="complex"``: the complex-step derivative, where every op on the path allows it (else a
    CgraphError names the op that does not); not combined with fixed settings.
    ``samples``: check that many entries of each larger input, chosen at random (seeded by ``seed``);
    None checks every entry. ``progress(done, total)`` is called as entries are checked."""
    check_options(eps, rtol, atol, samples)
    fixed = eps is not None or rtol is not None or atol is not None
    if method not in METHODS:
        raise CgraphError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if fixed and method != "richardson":
        raise CgraphError(f"--method {method} and --eps/--rtol/--atol cannot be combined: pick one")
    if fixed:
        eps = FIXED_EPS if eps is None else eps
        rtol = FIXED_RTOL if rtol is None else rtol
        atol = FIXED_ATOL if atol is None else atol
    else:
        rtol, atol = RTOL, 0.0
    names = pick_inputs(g, wrt)
    base = {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}
    result = evaluate(g, base, out)
    out = result.out
    report = CheckReport(result, eps, rtol, atol, how="fixed" if fixed else method)
    if method == "complex":
        complex_path(result)
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

        if fixed:
            numeric, roundoff = _central_differences(g, base, name, index, out, eps, tick)
            error, how, step = roundoff, ["central"] * len(index), np.full(len(index), eps)
            ok = verdict(analytic, numeric, np.full(len(index), atol), rtol)
        else:
            f0 = float(np.asarray(result.values[out], dtype=np.float64).reshape(-1)[0])
            numerical = _complex_step if method == "complex" else _richardson
            numeric, error, roundoff, how, step = numerical(
                g, base, name, index, out, f0, analytic, tick, scale=_magnitude(result, out)
            )
            ok = verdict(analytic, numeric, error, rtol)
        done += len(index)
        with np.errstate(all="ignore"):
            same = analytic == numeric  # also the same infinity
            diff = np.where(same, 0.0, np.abs(analytic - numeric))
            rel = np.where(numeric != 0, diff / np.abs(numeric), np.where(diff == 0, 0.0, np.inf))
            rel = np.where(same, 0.0, rel)
        report.inputs.append(
            InputCheck(
                name, tuple(x.shape), index, analytic, numeric, diff, rel, ok, sampled, roundoff, error, how, step
            )
        )
    report.kinks = find_kinks(result, eps if eps is not None else 1e-6)
    return report


def verdict(analytic: np.ndarray, numeric: np.ndarray, allowed: np.ndarray, rtol: float) -> np.ndarray:
    """Pass where ``|a - n| <= allowed + rtol·|n|`` or a and n are the same (infinity); NaN fails."""
    analytic, numeric = np.asarray(analytic, dtype=np.float64), np.asarray(numeric, dtype=np.float64)
    with np.errstate(all="ignore"):
        same = analytic == numeric
        diff = np.abs(analytic - numeric)
        return same | (diff <= np.asarray(allowed) + rtol * np.abs(numeric))


BASE_STEP = 2.0**-9  # the first step is this times max(|x|, 1)
RETRY = 32.0  # each retry divides the step by this
TRIES = 7  # steps h0, h0/32, ..., h0/32^6: beyond h0/32^4 only when the larger leave the domain
ROUND = 16 * np.finfo(np.float64).eps  # f's relative round-off, with a margin for cancellation inside f
RESOLVED = 1e-4  # an estimate above this fraction of |n| is worth a retry at a smaller step


def _richardson(
    g: Graph,
    base: dict[str, np.ndarray],
    name: str,
    index: np.ndarray,
    out: int,
    f0: float,
    analytic: np.ndarray,
    tick: Callable[[int], None] | None = None,
    scale: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Per flat index: (numeric derivative, error estimate, round-off part, method, step).

    Central differences at h, h/2, h/4 extrapolated twice (see the module's docstring); the step is
    retried smaller (by RETRY) while the stencil leaves the domain, or the estimate is poor, or the
    entry fails, and the finite attempt with the smallest estimate counts. When no central stencil
    stays in the domain: a one-sided difference."""
    work = np.array(base[name], dtype=np.float64, copy=True)
    flat = work.reshape(-1)
    values = dict(base)
    values[name] = work
    n = len(index)
    res, err, noise, step = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    method = ["central"] * n

    def f(fi: int, v: float) -> float:
        flat[fi] = v
        return float(np.asarray(forward(g, values, upto=out)[out], dtype=np.float64).reshape(-1)[0])

    with np.errstate(all="ignore"):
        for k, fi in enumerate(index):
            x = float(flat[fi])
            h0 = BASE_STEP * max(abs(x), 1.0)
            best = None
            if math.isfinite(f0) and math.isfinite(x):
                steps = [h0 / RETRY**t for t in range(TRIES)]
                if 0 < abs(x) / 4 < steps[-1]:  # a boundary closer than the smallest step: inside it
                    steps += [abs(x) / 4, abs(x) / 4 / RETRY]
                tried = 0
                for h in steps:
                    got = _central_attempt(lambda v, _fi=fi: f(_fi, v), x, h, f0, scale)
                    if got is None:
                        continue  # the stencil leaves the domain: a smaller step
                    tried += 1
                    if best is None or got[1] < best[1]:
                        best = got
                    num, e = got[0], got[1]
                    good = bool(verdict(analytic[k : k + 1], np.array([num]), np.array([e]), RTOL)[0])
                    # resolved and passing: done; else up to four retries (a kink or a branch point
                    # within the stencil moves out of a smaller one)
                    if (good and e <= RESOLVED * abs(num)) or tried >= 5:
                        break
                if best is None:
                    best = _one_sided(lambda v, _fi=fi: f(_fi, v), x, h0, f0, scale)
                    if best is not None:
                        method[k] = best[4]
                flat[fi] = x
            if best is not None:
                res[k], err[k], noise[k], step[k] = best[:4]
            if tick is not None:
                tick(k + 1)
    return res, err, noise, method, step


def complex_path(result: Result) -> None:
    """Refuse the complex step unless every op between the inputs and the output allows it."""
    g = result.graph
    need, anc = g.needs_grad(), g.ancestors(result.out)
    for i in range(result.out + 1):
        if g.ops[i] in LEAF_OPS or not (need[i] and anc[i]) or OPS[g.ops[i]].complex_step:
            continue
        line, col = g.line_col(i)
        raise CgraphError(
            f"--method complex: {g.ops[i]} (line {line}, column {col}) is not analytic on complex numbers,"
            " so the complex step cannot pass through it",
            hint="leave --method out: the default (Richardson extrapolation) works for every program",
        )


CS_STEP, CS_CHECK = 1e-20, 1e-10  # the complex step, and the larger one that checks it (times max(|x|, 1))


def _complex_step(
    g: Graph,
    base: dict[str, np.ndarray],
    name: str,
    index: np.ndarray,
    out: int,
    f0: float,
    analytic: np.ndarray,
    tick: Callable[[int], None] | None = None,
    scale: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Per flat index: (Im f(x + ih) / h, estimate, round-off part, method, h).

    The estimate is the distance between the values at two steps plus a few ulp; an entry where it is
    not small (a branch point, a value that is not complex) is taken by :func:`_richardson` instead."""
    work = np.array(base[name], dtype=np.complex128, copy=True)
    flat = work.reshape(-1)
    values = dict(base)
    values[name] = work
    n = len(index)
    res, err, noise, step = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    how = ["complex step"] * n
    redo = []
    with np.errstate(all="ignore"):
        for k, fi in enumerate(index):
            x = flat[fi]
            ns = []
            for h in (CS_STEP, CS_CHECK * max(abs(x.real), 1.0)):
                flat[fi] = x + 1j * h
                v = np.asarray(forward(g, values, upto=out)[out]).reshape(-1)[0]
                ns.append(float(np.imag(v)) / h if np.iscomplexobj(v) else math.nan)
            flat[fi] = x
            u = np.finfo(np.float64).eps
            floor = 64 * u * (abs(ns[0]) + abs(analytic[k]))  # rounding in either, relative to the derivative
            est = abs(ns[0] - ns[1]) + floor
            # a derivative near 0 next to |f| / |x| (a stationary point): the terms of both derivatives
            # cancel and their rounding is not relative to the result; the default's estimate covers it
            flat_spot = abs(ns[0]) <= 1e3 * u * abs(f0) / max(abs(x.real), 1.0)
            if math.isfinite(est) and est <= RESOLVED * abs(ns[0]) and not flat_spot:
                res[k], err[k], noise[k], step[k] = ns[0], est, floor, CS_STEP
            else:
                redo.append(k)
            if tick is not None:
                tick(k + 1)
    if redo:
        r = _richardson(g, base, name, index[redo], out, f0, analytic[redo], scale=scale)
        for j, k in enumerate(redo):
            res[k], err[k], noise[k], how[k], step[k] = r[0][j], r[1][j], r[2][j], r[3][j], r[4][j]
    return res, err, noise, how, step


def _magnitude(result: Result, out: int) -> float:
    """The largest finite magnitude among the values on the way from the inputs to ``out``: f's round-off is
    relative to it, not to |f| (which may be small after a cancellation)."""
    g = result.graph
    anc, need = g.ancestors(out), g.needs_grad()
    big = 0.0
    for i, v in enumerate(result.values):
        if v is not None and anc[i] and need[i]:
            a = np.abs(np.asarray(v, dtype=np.float64))
            a = a[np.isfinite(a)]
            if a.size:
                big = max(big, float(a.max()))
    return big


def _central_attempt(f: Callable[[float], float], x: float, h: float, f0: float, scale: float = 0.0):
    """(n, estimate, round-off, h) from central differences at h, h/2, h/4; None if a value is not finite.
    ``scale``: the largest magnitude on the way to f (:func:`_magnitude`), which bounds f's round-off when f
    cancels (c + (1 - c) is 1 with the round-off of c)."""
    d, big = [], max(abs(f0), scale)
    for s in (h, h / 2, h / 4):
        xp, xm = x + s, x - s
        fp, fm = f(xp), f(xm)
        if not (math.isfinite(fp) and math.isfinite(fm)) or xp == xm:
            return None
        d.append((fp - fm) / (xp - xm))
        big = max(big, abs(fp), abs(fm))
    d1, d2, d4 = d
    r1 = (4 * d4 - d2) / 3  # h^2 removed
    r2 = (16 * r1 - (4 * d2 - d1) / 3) / 15  # h^4 removed: (64 d4 - 20 d2 + d1) / 45
    delta = ROUND * big / h  # the round-off of one quotient D(h), from |f| / h
    roundoff = (64 * 4 + 20 * 2 + 1) / 45 * delta + (16 + 2) / 3 * delta  # of r2 and of r1
    est = abs(r2 - r1) + roundoff
    if not (math.isfinite(r2) and math.isfinite(est)):
        return None
    return r2, est, roundoff, h


def _one_sided(f: Callable[[float], float], x: float, h0: float, f0: float, scale: float = 0.0):
    """(n, estimate, round-off, h, method): forward (else backward) differences at h0·4^-j, j < 6,
    extrapolated by Aitken's Δ² on the last three and on the three before; None if neither side works."""
    for sign, side in ((1.0, "forward"), (-1.0, "backward")):
        d, big, ok = [], max(abs(f0), scale), True
        for j in range(6):
            xs = x + sign * h0 / 4.0**j
            fs = f(xs)
            if not math.isfinite(fs) or xs == x:
                ok = False
                break
            d.append((fs - f0) / (xs - x))
            big = max(big, abs(fs))
        if not ok:
            continue
        delta = 2 * ROUND * big / (h0 / 4.0**5)  # round-off of the smallest step's quotient
        a2, a1 = _aitken(d[3], d[4], d[5]), _aitken(d[2], d[3], d[4])
        if a2 is None or a1 is None:  # not converging like c·h^p: the last quotient, with its last change
            num, est = d[5], abs(d[5] - d[4]) + delta
        else:
            num, est = a2, abs(a2 - a1) + 4 * delta
        return num, est, delta, h0, f"one-sided ({side})"
    return None


def _aitken(d0: float, d1: float, d2: float) -> float | None:
    """Aitken's Δ² limit of d0, d1, d2 (exact for d = n + c·r^j); None unless it converges (|r| < 1)."""
    a, b = d1 - d0, d2 - d1
    if a == b:
        return d2 if a == 0 else None
    r = b / a if a != 0 else math.inf
    if not (abs(r) < 0.99):
        return None
    return d2 - b * b / (b - a)


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


def settings_text(report: CheckReport) -> str:
    """How the numeric derivatives were taken and judged, for the summary line."""
    if report.eps is None:
        how = "complex step" if report.how == "complex" else "Richardson extrapolation"
        return f"{how}, per-entry error estimate, rtol {fmt_number(report.rtol, 6, 'python')}"
    return ", ".join(
        f"{k} {fmt_number(v, 6, 'python')}"
        for k, v in (("eps", report.eps), ("rtol", report.rtol), ("atol", report.atol))
    )


def summary(report: CheckReport) -> str:
    r = report.result
    out = node_names(r.graph)[r.out]
    n, bad = report.checked, report.failed
    tol = settings_text(report)
    sampled = " (sampled)" if any(c.sampled for c in report.inputs) else ""
    modes = "" if report.modes is None else "\n" + modes_summary(report.modes)
    if n == 0:
        return f"ok: nothing to check: {out} has no inputs to differentiate with respect to"
    kind = "gradient" if report.order == 1 else "second-derivative"
    what = f"{kind} entr{'y' if n == 1 else 'ies'}"
    against = "finite differences" if report.order == 1 else "finite differences of the gradient"
    onesided = sum(1 for c in report.inputs for k in range(len(c.index)) if c.note(k))
    domain = (
        f"\nnote: {onesided} entr{'y sits' if onesided == 1 else 'ies sit'} on the edge of the function's domain"
        " (the central difference gives NaN or an infinity there): taken one-sided"
        if onesided
        else ""
    )
    if bad == 0:
        every = f"all {n} {what} of {out} match" if n > 1 else f"the {what} of {out} matches"
        return f"ok: {every} {against}{sampled} ({tol}){domain}{modes}"
    worst = max(
        ((c, k) for c in report.inputs for k in range(len(c.index)) if not c.ok[k]),
        key=lambda ck: np.nan_to_num(ck[0].abs_error[ck[1]], nan=np.inf),
    )
    c, k = worst
    where = f"worst {c.entry_name(k)}: analytic {fmt_number(c.analytic[k])}, numeric {fmt_number(c.numeric[k])}"
    kink = f"; {len(report.kinks)} non-differentiable point{'s' * (len(report.kinks) != 1)}" if report.kinks else ""
    text = f"FAILED: {bad} of {n} {what} of {out} differ from {against} ({where}; {tol}){kink}"
    noisy = sum(c.noisy for c in report.inputs)
    if noisy:
        level = max(float(np.max(c.roundoff)) for c in report.inputs if c.roundoff is not None and len(c.index))
        text += (
            f"\nnote: {noisy} of these differ by less than the finite differences' own round-off"
            f" (up to {fmt_number(level, 1, 'sci')} here, from |{out}| / eps): a larger --eps or --atol may settle them"
        )
    return text + domain + modes


MAX_TITLE_INPUTS = 6  # a table title names its inputs (with their shapes) up to this many, else counts them


def to_table(report: CheckReport) -> Any:
    """One rich Table for every input checked: a row per entry (a section per tensor input), the title saying
    how many entries of which inputs were checked and whether they all pass."""
    from rich.table import Table

    r = report.result
    outl = node_names(r.graph)[r.out]
    cs = report.inputs
    checked = sum(len(c.index) for c in cs)
    size = sum(c.size for c in cs)
    sampled = any(c.sampled for c in cs)
    what = f"{checked} of {size} entries (sampled)" if sampled else f"{size} entr{'y' if size == 1 else 'ies'}"
    named = list({c.name: c.shape for c in cs}.items())  # order 2: each input once
    if len(named) <= MAX_TITLE_INPUTS:
        which = ", ".join(name + (f" {fmt_shape(shape)}" if shape else "") for name, shape in named)
    else:
        which = f"{len(named)} inputs"
    failed = sum(c.failed for c in cs)
    status = "ok" if failed == 0 else f"{failed} failed"
    head = f"∂{outl}/∂input" if report.order == 1 else f"∂²{outl}/∂input∂input"
    title = f"{head}: {what} of {which}: {status}" if cs else f"∂{outl}: no inputs"
    t = Table(title=title, title_justify="left")
    first = [c.entry_name(0) for c in cs if len(c.index)]
    t.add_column("entry", style="bold", no_wrap=True, min_width=min(12, max([5] + [len(n) for n in first])))
    t.add_column("analytic", justify="right", style="cyan", no_wrap=True)
    t.add_column("numeric", justify="right", style="magenta", no_wrap=True)
    t.add_column("± est.", justify="right", no_wrap=True)
    t.add_column("|a - n|", justify="right", no_wrap=True)
    t.add_column("rel. error", justify="right", no_wrap=True)
    notes = [c.note(k) for c in cs for k in range(len(c.index))]
    widest = max((len(w) for n in notes if n for w in n.split()), default=4)
    t.add_column("", min_width=widest)  # "pass, one-sided" wraps at its space rather than cut a number short
    for n, c in enumerate(cs):
        if n and (c.shape or cs[n - 1].shape or c.of != cs[n - 1].of):  # a tensor's entries: a section of their own
            t.add_section()
        shown = rows_to_show(c)
        for k in shown:
            t.add_row(
                c.entry_name(k),
                fmt_number(c.analytic[k]),
                fmt_number(c.numeric[k]),
                fmt_number(c.error[k], 2, "sci") if c.error is not None else "",
                fmt_number(c.abs_error[k], 2, "sci"),
                fmt_number(c.rel_error[k], 2, "sci"),
                ("pass" if c.ok[k] else "FAIL") + (f", {c.note(k)}" if c.note(k) else ""),
                style=None if c.ok[k] else "red",
            )
        hidden = len(c.index) - len(shown)
        if hidden:
            t.add_row(
                f"… {hidden} more of {c.name}",
                "",
                "",
                "",
                f"max {fmt_number(np.max(c.abs_error), 2, 'sci')}",
                "",
                "pass" if c.failed <= len(shown) else "",
            )
    return t


def to_data(report: CheckReport) -> dict[str, Any]:
    r = report.result
    return {
        "output": node_names(r.graph)[r.out],
        "value": json_value(r.values[r.out]),
        "eps": report.eps,
        "rtol": report.rtol,
        "atol": report.atol,
        "method": report.method,  # "richardson" (the default), "complex" or "fixed" (--eps/--rtol/--atol)
        "order": report.order,  # 2: second derivatives against finite differences of the gradient
        "passed": report.passed,
        "checked": report.checked,
        "size": sum(c.size for c in report.inputs),  # entries of the inputs checked; > checked if sampled
        "sampled": any(c.sampled for c in report.inputs),
        "failed": report.failed,
        "inputs": [
            {
                "name": c.name,
                **({"of": c.of} if c.of is not None else {}),
                "shape": list(c.shape),
                "size": c.size,
                "checked": len(c.index),
                "sampled": c.sampled,
                "failed": c.failed,
                "failed_within_roundoff": c.noisy,
                "max_abs_error": json_number(np.max(c.abs_error)) if len(c.index) else 0.0,
                "max_error_estimate": json_number(np.max(c.error)) if c.error is not None and len(c.index) else 0.0,
                "entries": [
                    {
                        "entry": c.entry_name(k),
                        "index": [int(i) for i in np.unravel_index(int(c.index[k]), c.shape)] if c.shape else [],
                        "analytic": json_number(c.analytic[k]),
                        "numeric": json_number(c.numeric[k]),
                        "abs_error": json_number(c.abs_error[k]),
                        "rel_error": json_number(c.rel_error[k]),
                        "roundoff": json_number(c.roundoff[k]) if c.roundoff is not None else None,
                        "error_estimate": json_number(c.error[k]) if c.error is not None else None,
                        "method": c.method[k] if c.method is not None else "central",
                        "step": json_number(c.step[k]) if c.step is not None else None,
                        "ok": bool(c.ok[k]),
                    }
                    for k in range(len(c.index))
                ],
            }
            for c in report.inputs
        ],
        **({"modes": modes_data(report.modes)} if report.modes is not None else {}),
        "kinks": [
            {"node": k.node, "name": k.label, "op": k.op, "line": k.line, "column": k.column, "message": k.message}
            for k in report.kinks
        ],
    }


def kink_warnings(report: CheckReport) -> list[str]:
    g = report.result.graph
    return ["warning: " + format_located(k.message, k.span, g.source) for k in report.kinks]
