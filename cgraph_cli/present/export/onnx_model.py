"""A program's forward graph as an ONNX model (``cgraph export --to onnx``); the one module of cgraph that
imports ``onnx``, and only when a model is asked for.

Inputs and the output keep the program's names, input shapes come from the program, constants are
initializers, and each node of the program becomes the ONNX nodes its record's ``lower.onnx`` builds
(named after the program's node, its source line in ``doc_string``). Values are float64 (``tensor(double)``)
as in cgraph. With ``--with-gradients`` the backward pass's nodes follow (the plan's ``backward``: each op
record's VJP as the nodes it computes with, lowered like the forward ones) and every input ``x`` gets a
second graph output ``grad_x``, its gradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from cgraph_cli.ops import OPS
from cgraph_cli.ops.core import NoEquivalent
from cgraph_cli.present.export.plan import Plan, no_equivalent
from cgraph_cli.version import __version__

GRAD_PREFIX = "grad_"  # the output holding input x's gradient is grad_x (--with-gradients)
OPSET = 18
IR_VERSION = 8  # the IR version that goes with opset 18 (onnxruntime 1.14 and later read it)


class OnnxSite:
    """One program node as its record's ONNX lowering sees it (see ``cgraph_cli.ops.core.Lower``)."""

    def __init__(self, builder: _Builder, i: int, xs: list[str], attrs: dict, shapes: list, shape: tuple) -> None:
        self.b = builder
        self.i = i
        self.xs = xs
        self.attrs = attrs
        self.shapes = shapes
        self.shape = shape
        self.made: list[onnx.NodeProto] = []

    def node(self, op_type: str, inputs: list[str], **attributes: Any) -> str:
        """Add an ONNX node; its output's name."""
        name = self.b.fresh(f"{self.b.plan.ident[self.i]}_{op_type}")
        node = helper.make_node(op_type, list(inputs), [name], name=name, **attributes)
        node.doc_string = self.b.plan.comment(self.i)
        self.made.append(node)
        return name

    def ints(self, values: Any) -> str:
        """An int64 constant: 0-d for an int, 1-D for a sequence."""
        arr = np.asarray(values, dtype=np.int64)
        return self.b.constant(arr, "i")

    def number(self, x: float) -> str:
        """A float64 0-d constant."""
        return self.b.constant(np.asarray(x, dtype=np.float64), "k")

    def array(self, values: Any) -> str:
        """A float64 tensor constant."""
        return self.b.constant(np.asarray(values, dtype=np.float64), "k")


class _Builder:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.names: set[str] = set(plan.ident.values())
        self.initializers: list[onnx.TensorProto] = []
        self.consts: dict[tuple, str] = {}
        self.nodes: list[onnx.NodeProto] = []

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def constant(self, arr: np.ndarray, kind: str) -> str:
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self.consts:
            name = self.fresh(f"{kind}{len(self.consts)}")
            self.initializers.append(numpy_helper.from_array(arr, name))
            self.consts[key] = name
        return self.consts[key]


def model(plan: Plan, source_name: str) -> onnx.ModelProto:
    g = plan.g
    b = _Builder(plan)
    value: dict[int, str] = {}
    for i in plan.inputs:
        value[i] = g.names[i]  # type: ignore[assignment]
    b.names.update(value.values())
    for i in plan.consts:
        arr = np.asarray(g.attrs[i]["value"], dtype=np.float64)  # type: ignore[index]
        b.initializers.append(numpy_helper.from_array(arr, plan.ident[i]))
        value[i] = plan.ident[i]
    for i in plan.nodes + plan.backward:
        op = OPS[g.ops[i]]
        lowering = op.lower.onnx if op.lower is not None else None
        if lowering is None:
            raise no_equivalent(plan, i, "onnx")
        site = OnnxSite(
            b,
            i,
            [value[j] for j in g.args[i]],
            dict(g.attrs[i] or {}),
            [plan.shape(j) for j in g.args[i]],
            plan.shape(i),
        )
        try:
            result = site.node(lowering, site.xs) if isinstance(lowering, str) else lowering(site)
        except NoEquivalent as e:
            raise no_equivalent(plan, i, "onnx", str(e)) from None
        value[i] = _name_result(site, result, plan.ident[i])
        b.nodes += site.made
    out = plan.out
    out_name = g.names[out] or plan.ident[out]
    if value[out] != out_name:
        if out_name in (value[i] for i in plan.inputs):  # the output is an input, renamed: keep both names apart
            out_name = b.fresh(out_name + "_out")
        b.nodes.append(helper.make_node("Identity", [value[out]], [out_name], name=out_name))
    b.names.add(out_name)
    outputs = [_info(out_name, plan.shape(out))]
    for i, n in plan.grads.items():  # --with-gradients: grad_x, the gradient of input x, after the output
        name = b.fresh(f"{GRAD_PREFIX}{g.names[i]}")
        node = helper.make_node("Identity", [value[n]], [name], name=name)
        node.doc_string = f"∂{plan.name}/∂{g.names[i]}"
        b.nodes.append(node)
        outputs.append(_info(name, plan.shape(i)))
    graph = helper.make_graph(
        b.nodes,
        _graph_name(source_name),
        [_info(g.names[i], plan.shape(i)) for i in plan.inputs],  # type: ignore[arg-type]
        outputs,
        initializer=b.initializers,
        doc_string=f"{plan.name} of {source_name} (line {plan.line(out)}), exported by cgraph",
    )
    m = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="cgraph",
        producer_version=__version__,
    )
    onnx.checker.check_model(m, full_check=True)
    return m


def _name_result(site: OnnxSite, result: str, ident: str) -> str:
    """Give the value that is the node's result the node's own identifier (reserved for it) where the value
    was made here and nothing else made here reads it."""
    made = {n.output[0]: n for n in site.made}
    if result in made and not any(result in n.input for n in site.made):
        made[result].output[0] = ident
        return ident
    return result


def _info(name: str, shape: tuple) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.DOUBLE, list(shape))


def _graph_name(source_name: str) -> str:
    return source_name or "cgraph"


def model_bytes(plan: Plan, source_name: str) -> bytes:
    return model(plan, source_name).SerializeToString(deterministic=True)
