"""What to differentiate, and how: ``--mode``, ``--tangent``, ``--cotangent`` and ``--jacobian``.

The default is reverse mode from the seed 1 (a scalar output's gradient, :meth:`Request.run`). These
options ask instead for forward mode along a direction (every node's tangent), reverse mode from a
given cotangent v (every node's ``vᵀ ∂out/∂node``: a non-scalar output inspected node by node), or the
whole Jacobian of the output with respect to every input.

Two layers. :class:`Derivatives` holds the command line's options as text; :meth:`Derivatives.check`
refuses a bad combination before any work and :meth:`Derivatives.values` reads the text. Below it, the
functions the Python API calls (:meth:`cgraph_cli.api.Program.eval` and the derivative methods of
:class:`cgraph_cli.api.Evaluation`, which the command line calls in turn): :func:`run` runs a request as
the options ask, and :func:`forward_mode`, :func:`reverse_mode` and :func:`jacobian_of` compute one
derivative from an evaluation's values (checking a direction or cotangent against the program first),
all by :mod:`cgraph_cli.engine.forward_mode`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from cgraph_cli.engine.forward_mode import Jacobian, default_direction, jacobian, jvp, vjp
from cgraph_cli.engine.reference import Result, forward, nonfinite_report
from cgraph_cli.errors import CgraphError, closest
from cgraph_cli.fmt import fmt_shape
from cgraph_cli.ir.graph import Graph
from cgraph_cli.run.request import MODES, Request, check_choice
from cgraph_cli.run.values import bind_inputs, parse_value, real_array, split_top_level

COTANGENT_KEY = "cotangent"  # the --at-file key that holds the cotangent (unless an input has that name)


def check_combination(
    mode: str | None, tangent: bool, cotangent: str | None, jacobian: bool, *, api: bool = False
) -> None:
    """Refuse a combination that asks for two things at once (exit 2), before any work. ``cotangent`` names
    where a cotangent came from (``"--cotangent"``), None when there is none. ``api``: a direction given in
    Python implies forward mode (the command line asks for ``--mode forward`` as well)."""
    if mode is not None:
        check_choice(mode, MODES, "--mode")
    if jacobian and cotangent:
        raise CgraphError(
            f"--jacobian and {cotangent} cannot be combined: the Jacobian holds every vector-Jacobian product already"
        )
    if mode == "forward" and cotangent:
        raise CgraphError(
            f"--mode forward and {cotangent} cannot be combined: a cotangent seeds reverse mode",
            hint="forward mode takes its direction from --tangent NAME=VALUE,...",
        )
    if jacobian and tangent:
        raise CgraphError("--jacobian and --tangent cannot be combined: the Jacobian moves every input entry in turn")
    if tangent and cotangent:
        raise CgraphError(f"--tangent and {cotangent} cannot be combined: a cotangent seeds reverse mode")
    if tangent and (mode == "reverse" or (mode is None and not api)):
        raise CgraphError(
            "--tangent gives the direction of forward mode" + (" (not --mode reverse)" if mode else ""),
            hint="add --mode forward",
        )


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
        cot = "the --at-file key 'cotangent'" if cotangent_in_file else None
        cot = "--cotangent" if self.cotangent is not None else cot
        check_combination(self.mode, bool(self.tangent), cot, self.jacobian)

    def values(self) -> tuple[dict[str, np.ndarray] | None, np.ndarray | None]:
        """The direction (``--tangent``, name -> value; None when not given) and the cotangent (``--cotangent``),
        read from their text; their names and shapes are checked against the program when they are used."""
        tangent = parse_tangent(self.tangent) if self.tangent else None
        cotangent = None if self.cotangent is None else parse_value(self.cotangent, "--cotangent")
        return tangent, cotangent


def parse_tangent(specs: Sequence[str]) -> dict[str, np.ndarray]:
    """``--tangent a=1,x=[1,0,0]`` (repeatable) as name -> value (checked by :func:`direction`)."""
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
            given[name] = parse_value(text, f"--tangent {name}")
    return given


def direction(g: Graph, inputs: Mapping[str, np.ndarray], given: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    """Forward mode's direction: each input's tangent, a value of the input's shape or a number for every
    entry; an input not named has tangent 0; None: the default (1 for the first input, 0 for the others)."""
    if given is None:
        return default_direction(g, dict(inputs))
    out: dict[str, np.ndarray] = {}
    for name, v in given.items():
        if name not in g.inputs:
            best = closest(name, list(g.inputs))
            listed = ", ".join(g.inputs) or "none"
            raise CgraphError(
                f"--tangent: {name!r} is not an input of the program; its inputs are: {listed}",
                hint=f"did you mean '{best}'?" if best else None,
            )
        g.grad_inputs([name], option="--tangent")  # refuses an input declared data
        t = real_array(v, f"--tangent {name}")
        want = np.shape(inputs[name])
        if t.ndim and t.shape != want:
            raise CgraphError(
                f"--tangent {name}: the tangent has shape {fmt_shape(t.shape)} but input '{name}' has shape"
                f" {fmt_shape(want)}",
                hint="give a tensor of the input's shape, or a number for every entry",
            )
        out[name] = np.broadcast_to(t, want).astype(g.dtype)
    return {name: out.get(name, np.zeros_like(inputs[name])) for name in g.grad_inputs()}


def cotangent_of(g: Graph, out: int, v: Any, shape: tuple[int, ...], where: str = "--cotangent") -> np.ndarray:
    """A cotangent of the output's shape (a number fills every entry)."""
    a = real_array(v, where)
    if a.ndim and a.shape != shape:
        raise CgraphError(
            f"{where}: the cotangent has shape {fmt_shape(a.shape)} but the output '{g.label(out)}' has shape"
            f" {fmt_shape(shape)}",
            hint="give a tensor of the output's shape, or a number for every entry",
        )
    return np.broadcast_to(a, shape).astype(g.dtype)


def forward_mode(r: Result, tangent: Mapping[str, Any] | None) -> Result:
    """Forward mode at the values of ``r``: every node's tangent along ``tangent`` (see :func:`direction`)."""
    return jvp(r.graph, r.inputs, direction(r.graph, r.inputs, tangent), r.out, values=r.values)


def reverse_mode(r: Result, cotangent: Any, where: str = "--cotangent", wrt: Sequence[str] | None = None) -> Result:
    """Reverse mode at the values of ``r`` from ``cotangent`` (of the output's shape, or a number); ``wrt``:
    only the gradients of these inputs (default: every input not declared data)."""
    v = cotangent_of(r.graph, r.out, cotangent, tuple(np.shape(r.values[r.out])), where)
    names = None if wrt is None else r.graph.grad_inputs(wrt)
    return vjp(r.graph, r.inputs, v, r.out, values=r.values, wrt=names)


def jacobian_of(r: Result, wrt: Sequence[str] | None = None, mode: str | None = None) -> Jacobian:
    """The Jacobian of the output of ``r`` with respect to the inputs ``wrt`` (default: every input not declared
    data), by ``mode`` (``"forward"``, ``"reverse"``; None: whichever takes fewer passes)."""
    if mode is not None:
        check_choice(mode, MODES, "--mode")
    return jacobian(r.graph, r.values, r.out, mode, wrt=r.graph.grad_inputs(None if wrt is None else list(wrt)))


def run(
    request: Request,
    *,
    mode: str | None = None,
    tangent: Mapping[str, Any] | None = None,
    cotangent: Any = None,
    jacobian: bool = False,
    api: bool = True,
    cotangent_key: bool = True,
    wrt: Sequence[str] | None = None,
    compiler: Callable[[Request], Graph] | None = None,
) -> Result:
    """Compile and run the request as asked: reverse mode (the default, :meth:`Request.run`), forward mode
    along ``tangent`` (``mode="forward"``; in Python a ``tangent`` alone implies it), reverse mode from
    ``cotangent``, or the whole Jacobian (by ``mode``'s passes, or whichever take fewer). The request's
    value ``"cotangent"`` (the ``--at-file`` key) is the cotangent unless an input has that name (or
    ``cotangent_key`` is off). ``wrt``: only the gradients (or Jacobian blocks) of these inputs, default every
    input not declared data; forward mode along a direction is refused with it."""
    key = cotangent_key and COTANGENT_KEY in request.values
    if wrt is not None and (mode == "forward" or tangent is not None) and not jacobian:
        raise CgraphError(
            "--wrt picks which gradients the reverse pass computes; it cannot be combined with "
            + ("--tangent" if tangent is not None else "--mode forward"),
            hint="--wrt works with the reverse pass, --cotangent and --jacobian (the blocks of the inputs named)",
        )
    if mode is None and tangent is None and cotangent is None and not jacobian and not key:
        return request.run(wrt, compiler=compiler)  # the default, by the fastest engine
    g = request.compile() if compiler is None else compiler(request)
    values = dict(request.values)
    where = "--cotangent"
    if key and COTANGENT_KEY not in g.inputs:
        file_cot = values.pop(COTANGENT_KEY)
        if cotangent is None:
            cotangent, where = file_cot, "--at-file cotangent"
    named = None if cotangent is None else "--cotangent" if where == "--cotangent" else "the --at-file key 'cotangent'"
    check_combination(mode, tangent is not None, named, jacobian, api=api)
    inputs = bind_inputs(g, values)
    out = request.output(g)
    if (mode == "forward" or tangent is not None) and not jacobian:
        vals = forward(g, inputs)
        base = Result(g, vals, [None] * len(vals), out, inputs, [])
        return forward_mode(base, tangent)
    if cotangent is not None:
        vals = forward(g, inputs)
        return reverse_mode(Result(g, vals, [None] * len(vals), out, inputs, []), cotangent, where, wrt)
    if jacobian:
        vals = forward(g, inputs)
        none: list[Any] = [None] * len(vals)
        base = Result(g, vals, none, out, inputs, [])
        jac = jacobian_of(base, wrt, mode)
        bad, masks = nonfinite_report(vals, none)
        return Result(g, vals, none, out, inputs, bad, mode="jacobian", jacobian=jac, masks=masks)
    return request.run(wrt)  # --mode reverse: the default
