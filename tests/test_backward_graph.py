"""The backward pass as graph nodes: the op records' own VJPs run on traced values (ir/trace.py).

The recorded graph must give the engine's gradients bit for bit (the same VJP functions, the same order
of accumulation), be an ordinary graph (every node a registered op with a consistent shape, listed by
``cgraph ir``, drawn by ``render --backward``), and leave the forward nodes as they were.
"""

from __future__ import annotations

import numpy as np
import pytest

from cgraph_cli.engine import evaluate
from cgraph_cli.engine.reference import forward
from cgraph_cli.errors import Source
from cgraph_cli.ir.graph import backward_graph, format_ir
from cgraph_cli.ir.trace import NotTraceable, Traced
from cgraph_cli.ops import LEAF_OPS, NUMPY, OPS
from cgraph_cli.run.program import compile_program
from cgraph_cli.run.values import bind_inputs
from tests.conftest import EXAMPLES, run_cli

EXAMPLE_FILES = sorted(p for p in EXAMPLES.glob("*.cg"))


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_backward_graph_gives_the_engine_gradients_bit_for_bit(path):
    g = compile_program(Source(path.read_text(), str(path)), {}, use_cache=False)
    inputs = bind_inputs(g, {})
    res = evaluate(g, inputs, strategy="generic")
    bg, grads = backward_graph(g, g.output)
    vals = forward(bg, inputs)
    for x, i in g.inputs.items():
        assert np.shape(vals[grads[i]]) == np.shape(res.grads[i]), x
        np.testing.assert_array_equal(vals[grads[i]], res.grads[i], err_msg=f"{path.name}: ∂/∂{x}")
    # the forward part is untouched, and the graph it was made from too
    n = len(g)
    assert bg.ops[:n] == g.ops and bg.args[:n] == g.args and bg.names[:n] == g.names
    assert len(g) == n and g.outputs == bg.outputs
    for i in range(n):
        assert vals[i] is res.values[i] or np.array_equal(vals[i], res.values[i], equal_nan=True)
    # every new node is an ordinary op node whose shape rule agrees with its value
    for i in range(n, len(bg)):
        assert bg.ops[i] in OPS or bg.ops[i] in LEAF_OPS
        assert all(j < i for j in bg.args[i])
        assert tuple(bg.shapes[i]) == np.shape(vals[i]), (path.name, i, bg.ops[i])
    assert format_ir(bg).count("\n") == len(bg)


def test_constants_are_folded_and_the_lecture_graph_is_small():
    g = compile_program(Source("z = (a + b) * (b + c)"), {k: np.asarray(1.0) for k in "abc"}, use_cache=False)
    bg, grads = backward_graph(g, g.output)
    new = bg.ops[len(g) :]
    assert new.count("mul") == 2 and new.count("add") == 1 and new.count("const") == 1, new
    assert grads[g.inputs["b"]] == len(bg) - 1  # the two contributions to b meet in the last node


def test_a_gradient_that_does_not_reach_an_input_is_a_zero_constant():
    g = compile_program(Source("z = a * 2\nw = u"), {"a": np.asarray(1.0), "u": np.asarray(2.0)}, use_cache=False)
    bg, grads = backward_graph(g, g.bindings["z"])
    vals = forward(bg, {"a": np.asarray(1.0), "u": np.asarray(2.0)})
    assert bg.ops[grads[g.inputs["u"]]] == "const" and vals[grads[g.inputs["u"]]] == 0.0
    assert vals[grads[g.inputs["a"]]] == 2.0


def test_the_op_records_name_distinct_numpy_functions():
    assert len(NUMPY) == len({id(f) for f in NUMPY})
    assert all(NUMPY[op.numpy] is op for op in OPS.values() if op.numpy is not None)
    assert NUMPY[np.multiply].name == "mul" and NUMPY[np.matmul].name == "matmul"


class _Tape:
    dtype = np.float64

    def __init__(self):
        self.nodes = [("input", (), None, (2,))]

    def shape(self, i):
        return self.nodes[i][3]

    def const(self, v):
        self.nodes.append(("const", (), {"value": v}, np.shape(v)))
        return len(self.nodes) - 1

    def op(self, name, args, attrs):
        shape = OPS[name].shape([self.shape(j) for j in args], **(attrs or {}))
        self.nodes.append((name, args, attrs, shape))
        return len(self.nodes) - 1


def test_traced_values_record_ops_and_refuse_what_cannot_be_recorded():
    t = _Tape()
    x = Traced(t, 0)
    y = np.sum(np.exp(x) * 2 + x[::-1], keepdims=True)
    assert y.shape == (1,)
    ops = [n[0] for n in t.nodes]
    assert ops[:4] == ["input", "exp", "const", "mul"] and "index" in ops and "sum" in ops and ops[-1] == "reshape"
    assert np.shape(x) == (2,) and np.ndim(x) == 1 and np.result_type(x) == np.float64
    with pytest.raises(NotTraceable):
        np.asarray(x)
    with pytest.raises(NotTraceable):
        bool(x > 0) if np.greater in NUMPY else bool(x)
    with pytest.raises(NotTraceable, match="no op record"):
        np.fft.fft(x)


def test_render_backward_styles_the_backward_nodes_apart(tmp_path):
    r = run_cli("render", str(EXAMPLES / "lecture.cg"), "--at", "a=-1,b=3,c=4", "--backward", "-f", "dot", "-o", "-")
    assert r.returncode == 0, r.stderr
    dot = r.stdout
    assert "backward pass as nodes" in dot
    for name in ("∂z/∂a", "∂z/∂b", "∂z/∂c"):
        assert name in dot
    backward_nodes = [ln for ln in dot.splitlines() if "#fdece2" in ln]
    assert len(backward_nodes) == 3  # two products and one sum (the seed 1 is a dashed constant)
    plain = run_cli("render", str(EXAMPLES / "lecture.cg"), "--at", "a=-1,b=3,c=4", "-f", "dot", "-o", "-")
    assert "#fdece2" not in plain.stdout and "∂z/∂a" not in plain.stdout
    png = tmp_path / "bw.png"
    r = run_cli("render", str(EXAMPLES / "mlp.cg"), "--backward", "-o", str(png))
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["-e", "y = x * 2", "--at", "x=[1,2]", "--backward"], "--backward draws the gradient of a scalar"),
        (["-e", "y = x * 2", "--at", "x=1", "--backward", "--steps", "frames/"], "give one of them"),
    ],
)
def test_render_backward_refusals(args, message, tmp_path):
    r = run_cli(
        "render",
        *args,
        "-o" if "--steps" not in args else "--timeout",
        "x.png" if "--steps" not in args else "30",
        cwd=tmp_path,
    )
    assert r.returncode == 2 and message in r.stderr, r.stderr
