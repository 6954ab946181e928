"""What to differentiate, and how: ``--mode``, ``--tangent``, ``--cotangent`` and ``--jacobian``.

The default is reverse mode from the seed 1 (a scalar output's gradient, :meth:`Request.run`). These
options ask instead for forward mode along a direction (every node's tangent), reverse mode from a
given cotangent v (every node's ``vᵀ ∂out/∂node``: a non-scalar output inspected node by node), or the
whole Jacobian of the output with respect to every input. :class:`Derivatives` holds the options as
text; :meth:`Derivatives.check` refuses a bad combination before any work, and :func:`run` reads the
values against the program (an unknown input, a tangent or cotangent of the wrong shape) and runs
:mod:`cgraph_cli.engine.forward_mode`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from cgraph_cli.engine.forward_mode import default_direction, jacobian, jvp, vjp
from cgraph_cli.engine.reference import Result, forward, nonfinite_report
from cgraph_cli.errors import CgraphError, closest
from cgraph_cli.fmt import fmt_shape
from cgraph_cli.ir.graph import Graph
from cgraph_cli.run.request import MODES, Request, check_choice
from cgraph_cli.run.values import bind_inputs, parse_value, split_top_level

COTANGENT_KEY = "cotangent"  # the --at-file key that holds the cotangent (unless an input has that name)


@dataclass(frozen=True)
class Derivatives:
    """The derivative options of a command line (text; nothing read yet)."""

    mode: str | None = None  # None: reverse, unless --jacobian picks
    tangent: Sequence[str] = ()
    cotangent: str | None = None
    jacobian: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "tangent", tuple(self.tangent or ()))

    @property
    def forward_pass(self) -> bool:
        """Whether the options ask for forward mode's tangents along one direction (not a Jacobian)."""
        return (self.mode == "forward" and not self.jacobian) or bool(self.tangent)

    @property
    def given(self) -> bool:
        return self.mode is not None or bool(self.tangent) or self.cotangent is not None or self.jacobian

    def check(self, *, cotangent_in_file: bool = False) -> None:
        """Refuse a combination that asks for two things at once (exit 2), before any work."""
        if self.mode is not None:
            check_choice(self.mode, MODES, "--mode")
        cot = "the --at-file key 'cotangent'" if cotangent_in_file else None
        cot = "--cotangent" if self.cotangent is not None else cot
        if self.jacobian and cot:
            raise CgraphError(
                f"--jacobian and {cot} cannot be combined: the Jacobian holds every vector-Jacobian product already"
            )
        if self.mode == "forward" and cot:
            raise CgraphError(
                f"--mode forward and {cot} cannot be combined: a cotangent seeds reverse mode",
                hint="forward mode takes its direction from --tangent NAME=VALUE,...",
            )
        if self.jacobian and self.tangent:
            raise CgraphError(
                "--jacobian and --tangent cannot be combined: the Jacobian moves every input entry in turn"
            )
        if self.tangent and self.mode != "forward":
            raise CgraphError(
                "--tangent gives the direction of forward mode" + (" (not --mode reverse)" if self.mode else ""),
                hint="add --mode forward",
            )


def parse_direction(g: Graph, specs: Sequence[str], inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``--tangent a=1,x=[1,0,0]`` (repeatable) as each input's tangent: a tensor literal of the input's
    shape, or a number for every entry; an input not named has tangent 0; none named: the default."""
    if not specs:
        return default_direction(g, inputs)
    given: dict[str, np.ndarray] = {}
    for spec in specs:
        for part in split_top_level(spec):
            if not part.strip():
                continue
            if "=" not in part:
                raise CgraphError(
                    f"--tangent: expected name=value, got {part.strip()!r}", hint="for example: --tangent a=1,b=0"
                )
            name, text = (s.strip() for s in part.split("=", 1))
            if name not in g.inputs:
                best = closest(name, list(g.inputs))
                listed = ", ".join(g.inputs) or "none"
                raise CgraphError(
                    f"--tangent: {name!r} is not an input of the program; its inputs are: {listed}",
                    hint=f"did you mean '{best}'?" if best else None,
                )
            g.grad_inputs([name], option="--tangent")  # refuses an input declared data
            t = parse_value(text, f"--tangent {name}")
            want = np.shape(inputs[name])
            if t.ndim and t.shape != want:
                raise CgraphError(
                    f"--tangent {name}: the tangent has shape {fmt_shape(t.shape)} but input '{name}' has shape"
                    f" {fmt_shape(want)}",
                    hint="give a tensor of the input's shape, or a number for every entry",
                )
            given[name] = np.broadcast_to(t, want).astype(g.dtype)
    return {name: given.get(name, np.zeros_like(inputs[name])) for name in g.grad_inputs()}


def _cotangent(g: Graph, out: int, v: np.ndarray, shape: tuple[int, ...], where: str) -> np.ndarray:
    if v.ndim and v.shape != shape:
        raise CgraphError(
            f"{where}: the cotangent has shape {fmt_shape(v.shape)} but the output '{g.label(out)}' has shape"
            f" {fmt_shape(shape)}",
            hint="give a tensor of the output's shape, or a number for every entry",
        )
    return np.broadcast_to(v, shape).astype(g.dtype)


def run(request: Request, d: Derivatives, wrt: str | Sequence[str] | None = None) -> Result:
    """Compile and run the request as the options ask (see the module's docstring). ``wrt``: the inputs
    whose gradients (or Jacobian blocks) are wanted, default every input not declared data; refused with
    forward mode's tangents."""
    g = request.compile()
    if isinstance(wrt, str):
        wrt = [w.strip() for w in wrt.split(",") if w.strip()] or [wrt]
    names = g.grad_inputs(None if wrt is None else list(wrt))
    if wrt is not None and d.forward_pass:
        raise CgraphError("--wrt picks which gradients the reverse pass computes; forward mode has no gradients")
    values = dict(request.values)
    cot: tuple[Any, str] | None = None
    if COTANGENT_KEY in values and COTANGENT_KEY not in g.inputs:
        cot = (values.pop(COTANGENT_KEY), "--at-file cotangent")
    d.check(cotangent_in_file=cot is not None)
    if d.cotangent is not None:
        cot = (parse_value(d.cotangent, "--cotangent"), "--cotangent")
    inputs = bind_inputs(g, values)
    out = request.output(g)
    if d.mode == "forward" and not d.jacobian:
        return jvp(g, inputs, parse_direction(g, d.tangent, inputs), out)
    if cot is not None:
        vals = forward(g, inputs, upto=out)
        v = _cotangent(g, out, np.asarray(cot[0], dtype=np.float64), tuple(np.shape(vals[out])), cot[1])
        return vjp(g, inputs, v, out, wrt=names)
    if d.jacobian:
        vals = forward(g, inputs)
        jac = jacobian(g, vals, out, d.mode, names=names)
        none: list[Any] = [None] * len(vals)
        bad, masks = nonfinite_report(vals, none)
        return Result(g, vals, none, out, inputs, bad, mode="jacobian", jacobian=jac, masks=masks)
    return request.run(None if wrt is None else names)  # --mode reverse: the default
