"""Second derivatives of an evaluation's output (``eval --hessian``, ``eval --hvp``): the requests read and
checked, then computed by :mod:`cgraph_cli.engine.second`. The Python API's :meth:`Evaluation.hessian
<cgraph_cli.api.Evaluation.hessian>` and :meth:`Evaluation.hvp <cgraph_cli.api.Evaluation.hvp>` call
:func:`hessian_of` and :func:`hvp_of`; the command line reads ``--hvp``'s text with :func:`parse_hvp` and
calls those methods."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from cgraph_cli.engine.reference import Result
from cgraph_cli.engine.second import MAX_HESSIAN_ENTRIES, HvpProgram, hessian, hessian_size
from cgraph_cli.errors import CgraphError, closest
from cgraph_cli.fmt import fmt_shape
from cgraph_cli.ir.graph import Graph
from cgraph_cli.run.values import parse_value, split_top_level

HVP_FLAG = "--hvp"


def parse_hvp(spec: str, option: str = HVP_FLAG) -> dict[str, np.ndarray]:
    """``a=1,x=[1,0,2]`` as name -> value (checked against the program by :func:`hvp_direction`)."""
    out: dict[str, np.ndarray] = {}
    for part in split_top_level(spec):
        if not part.strip():
            continue
        if "=" not in part:
            raise CgraphError(
                f"{option}: expected name=value, got {part.strip()!r}", hint=f"for example: {option} a=1,b=0"
            )
        name, text = (s.strip() for s in part.split("=", 1))
        out[name] = parse_value(text, f"{option} {name}")
    return out


def hvp_direction(
    g: Graph, inputs: Mapping[str, np.ndarray], given: Mapping[str, Any], option: str = HVP_FLAG
) -> dict[str, np.ndarray]:
    """A direction per input, each of the input's shape (a number fills a tensor input); inputs not named
    have direction 0 (left out)."""
    out: dict[str, np.ndarray] = {}
    for name, value in given.items():
        if name not in g.inputs:
            best = closest(name, list(g.inputs))
            raise CgraphError(
                f"{option}: '{name}' is not an input; the program's inputs are: {', '.join(g.inputs) or 'none'}",
                hint=f"did you mean '{best}'?" if best else None,
            )
        g.grad_inputs([name], option=option)  # refuses an input declared data
        if isinstance(value, (str, bytes)) or value is None:
            raise CgraphError(f"{option} {name}: {value!r} is not a number or a rectangular list of numbers")
        try:
            v = np.array(value, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise CgraphError(f"{option} {name}: the value is not a number or a rectangular list of numbers") from None
        want = np.shape(inputs[name])
        if v.ndim and v.shape != want:
            raise CgraphError(
                f"{option}: the direction for '{name}' has shape {fmt_shape(v.shape)}, "
                f"but '{name}' has shape {fmt_shape(want)}",
                hint="give a tensor of the input's shape, or one number for every entry",
            )
        out[name] = np.broadcast_to(np.asarray(v, dtype=g.dtype), want)
    if not out:
        raise CgraphError(f"{option}: no direction given", hint=f"for example: {option} a=1,b=0")
    return out


def scalar_output(result: Result) -> None:
    """Refuse a non-scalar output: second derivatives are of one number."""
    g, out = result.graph, result.out
    if int(np.size(result.values[out])) != 1:
        raise CgraphError(
            f"output '{g.label(out)}' has shape {fmt_shape(np.shape(result.values[out]))}; "
            "second derivatives need a scalar output",
            g.spans[out],
            hint=f"differentiate a scalar such as sum({g.label(out)})",
            source=g.source,
        )


def hessian_of(
    result: Result, wrt: Sequence[str] | None = None, *, max_memory: int | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """The Hessian of the result's (scalar) output: ``{x: {y: array of shape x.shape + y.shape}}`` for the
    inputs ``wrt`` (default: every input), at most :data:`MAX_HESSIAN_ENTRIES` entries of inputs."""
    scalar_output(result)
    g, inputs = result.graph, result.inputs
    n = hessian_size(g, inputs, wrt)
    if n > MAX_HESSIAN_ENTRIES:
        raise CgraphError(
            f"--hessian: the inputs have {n:,} entries in all, so the Hessian would have {n * n:,} "
            f"(at most {MAX_HESSIAN_ENTRIES:,} entries of inputs)",
            hint="a Hessian-vector product needs no Hessian: --hvp x=...",
        )
    return hessian(g, inputs, result.out, wrt=wrt, max_memory=max_memory)


def hvp_of(result: Result, direction: Mapping[str, Any], *, max_memory: int | None = None) -> dict[str, np.ndarray]:
    """The Hessian-vector product ``H v`` of the result's (scalar) output, ``v`` a direction per input
    (:func:`hvp_direction`): ``{x: array of x's shape}`` for every input."""
    scalar_output(result)
    v = hvp_direction(result.graph, result.inputs, direction)
    return HvpProgram(result.graph, result.out, max_memory=max_memory).hvp(result.inputs, v)
