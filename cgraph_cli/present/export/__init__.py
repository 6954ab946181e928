"""``cgraph export``: a program as code for the engines the field already trusts.

numpy, JAX and PyTorch get a Python module (:mod:`.python`), ONNX a model (:mod:`.onnx_model`, the only
part that imports a framework, and only when asked for). Both are written from one :class:`~.plan.Plan` of
the forward graph, and for numpy's ``value_and_grad`` and ONNX's ``--with-gradients`` of the backward pass
as nodes, and the op records' ``lower`` spellings.
"""

from __future__ import annotations

import math
from typing import Any

from cgraph_cli.errors import CgraphError
from cgraph_cli.present.export.plan import SHOWN, TARGETS, Plan, compile_for_export, plan_for, plan_with_gradients

__all__ = ["TARGETS", "Plan", "export", "make_plan"]


def make_plan(request: Any, target: str, gradients: bool | None = None) -> Plan:
    """The plan of the request's output (``--of``), its inputs' shapes known; with the gradient of every input
    when ``gradients`` is True, or when it is None for numpy and the output holds one number (numpy's default:
    ``value_and_grad`` beside ``forward``). JAX and PyTorch differentiate the forward pass themselves."""
    from cgraph_cli.present.export.python import helper_names

    g = compile_for_export(request)
    out = request.output(g)
    if gradients and target in ("jax", "torch"):
        raise CgraphError(
            f"--with-gradients is for numpy and ONNX: {SHOWN[target]} differentiates the exported f itself",
            hint="jax.grad(f) or torch.func.grad(f); see the module's docstring",
        )
    shape = g.shapes[out]
    if gradients is None:
        gradients = target == "numpy" and shape is not None and math.prod(shape) == 1
    if gradients:
        return plan_with_gradients(g, out, dict(request.values), target, helper_names())
    return plan_for(g, out, dict(request.values), helper_names())


def export(request: Any, target: str, source_name: str, gradients: bool | None = None) -> bytes:
    """The exported program: a module's UTF-8 text, or an ONNX model's bytes (see :func:`make_plan` for
    ``gradients``)."""
    plan = make_plan(request, target, gradients)
    if target == "onnx":
        from cgraph_cli.present.export.onnx_model import model_bytes

        return model_bytes(plan, source_name)
    from cgraph_cli.present.export.python import module

    return module(plan, target, source_name).encode("utf-8")
