"""``eval --hessian`` and ``eval --hvp``: the second-order requests, read and checked, then computed by
:mod:`cgraph_cli.engine.second`."""

from __future__ import annotations

from typing import Any

import numpy as np

from cgraph_cli.engine.reference import Result
from cgraph_cli.engine.second import MAX_HESSIAN_ENTRIES, HvpProgram, hessian, hessian_size
from cgraph_cli.errors import CgraphError, closest
from cgraph_cli.fmt import fmt_shape
from cgraph_cli.ir.graph import Graph
from cgraph_cli.run.values import parse_value, split_top_level

HVP_FLAG = "--hvp"


def parse_direction(spec: str, g: Graph, inputs: dict[str, np.ndarray], option: str = HVP_FLAG) -> dict[str, Any]:
    """``a=1,x=[1,0,2]``: a direction per input, each of the input's shape (a number fills a tensor input);
    inputs not named have direction 0."""
    out: dict[str, np.ndarray] = {}
    for part in split_top_level(spec):
        if not part.strip():
            continue
        if "=" not in part:
            raise CgraphError(
                f"{option}: expected name=value, got {part.strip()!r}", hint=f"for example: {option} a=1,b=0"
            )
        name, text = (s.strip() for s in part.split("=", 1))
        if name not in g.inputs:
            best = closest(name, list(g.inputs))
            raise CgraphError(
                f"{option}: '{name}' is not an input; the program's inputs are: {', '.join(g.inputs) or 'none'}",
                hint=f"did you mean '{best}'?" if best else None,
            )
        g.grad_inputs([name], option=option)  # refuses an input declared data
        v = parse_value(text, f"{option} {name}")
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


def second_order(result: Result, *, want_hessian: bool = False, hvp: str | None = None, max_memory=None) -> dict:
    """The JSON-ready second derivatives of the result's output: ``{"hessian": {x: {y: array}}}`` and/or
    ``{"hvp": {x: array}}`` (arrays of the inputs' shapes, ``x.shape + y.shape`` for the Hessian)."""
    g, out, inputs = result.graph, result.out, result.inputs
    if int(np.size(result.values[out])) != 1:
        raise CgraphError(
            f"output '{g.label(out)}' has shape {fmt_shape(np.shape(result.values[out]))}; "
            "second derivatives need a scalar output",
            g.spans[out],
            hint=f"differentiate a scalar such as sum({g.label(out)})",
            source=g.source,
        )
    data: dict[str, Any] = {}
    direction = parse_direction(hvp, g, inputs) if hvp is not None else None
    if want_hessian:
        n = hessian_size(g, inputs)
        if n > MAX_HESSIAN_ENTRIES:
            raise CgraphError(
                f"--hessian: the inputs have {n:,} entries in all, so the Hessian would have {n * n:,} "
                f"(at most {MAX_HESSIAN_ENTRIES:,} entries of inputs)",
                hint="a Hessian-vector product needs no Hessian: --hvp x=...",
            )
        data["hessian"] = hessian(g, inputs, out, max_memory=max_memory)
    if direction is not None:
        data["hvp"] = HvpProgram(g, out, max_memory=max_memory).hvp(inputs, direction)
    return data
