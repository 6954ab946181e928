"""``cgraph export``: a program as code for the engines the field already trusts.

numpy, JAX and PyTorch get a Python module (:mod:`.python`), ONNX a model (:mod:`.onnx_model`, the only
part that imports a framework, and only when asked for). Both are written from one :class:`~.plan.Plan` of
the forward graph and the op records' ``lower`` spellings.
"""

from __future__ import annotations

from typing import Any

from cgraph_cli.present.export.plan import TARGETS, Plan, compile_for_export, plan_for

__all__ = ["TARGETS", "Plan", "export", "make_plan"]


def make_plan(request: Any, target: str) -> Plan:
    """The plan of the request's output (``--of``), its inputs' shapes known."""
    from cgraph_cli.present.export.python import helper_names

    g = compile_for_export(request)
    out = request.output(g)
    return plan_for(g, out, dict(request.values), helper_names())


def export(request: Any, target: str, source_name: str) -> bytes:
    """The exported program: a module's UTF-8 text, or an ONNX model's bytes."""
    plan = make_plan(request, target)
    if target == "onnx":
        from cgraph_cli.present.export.onnx_model import model_bytes

        return model_bytes(plan, source_name)
    from cgraph_cli.present.export.python import module

    return module(plan, target, source_name).encode("utf-8")
