"""``grad(loss, w)`` in the language: the gradient as nodes of the program, usable later and differentiable again.

References: hand derivatives, finite differences of the program's own forward pass (the meta-gradient of
examples/gradient_descent.cg), the engine's numeric gradient of the same program without grad(), and
the refusals with their exact messages and carets.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cgraph_cli.engine import evaluate
from cgraph_cli.engine.reference import forward
from cgraph_cli.errors import CgraphError, Source
from cgraph_cli.run.program import compile_program
from cgraph_cli.run.values import bind_inputs
from tests.conftest import EXAMPLES, run_cli


def _run(src: str, **at):
    vals = {k: np.asarray(v, dtype=np.float64) for k, v in at.items()}
    g = compile_program(Source(src), vals, use_cache=False)
    inputs = bind_inputs(g, {k: v for k, v in vals.items() if k in g.inputs})
    return g, inputs, evaluate(g, inputs)


def _value(g, res, name):
    return res.values[g.bindings[name]]


@pytest.mark.parametrize("x", [-1.3, 0.0, 0.7, 2.0])
def test_grad_and_grad_of_grad_by_hand(x):
    g, _, res = _run("f = x * x * x + sin(x)\nd = grad(f, x)\ndd = grad(d, x)\nddd = grad(dd, x)", x=x)
    assert _value(g, res, "d") == pytest.approx(3 * x * x + np.cos(x), rel=1e-14)
    assert _value(g, res, "dd") == pytest.approx(6 * x - np.sin(x), rel=1e-14, abs=1e-15)
    assert _value(g, res, "ddd") == pytest.approx(6 - np.cos(x), rel=1e-14)


def test_grad_with_respect_to_an_intermediate_node():
    g, _, res = _run("y = x * x\nz = sin(y) * y\ng = grad(z, y)", x=1.5)
    y = 2.25
    assert _value(g, res, "g") == pytest.approx(np.cos(y) * y + np.sin(y), rel=1e-14)
    # the output g = cos(y) y + sin(y) depends on x through y: d/dx = (2cos(y) - y sin(y)) * 2x
    assert float(res.grads[g.inputs["x"]]) == pytest.approx((2 * np.cos(y) - y * np.sin(y)) * 3.0, rel=1e-12)


def test_grad_of_tensors_matches_the_engine_gradient():
    body = "W = [[0.5, -1, 2], [1, 0.25, -0.5]]\nloss = sum(tanh(W @ x) * [1, -2]) + norm(x)"
    x = np.array([0.3, -0.8, 1.1])
    g, inputs, res = _run(body + "\ngx = grad(loss, x)\ns = sum(gx * gx)", x=x)
    plain, _, pres = _run(body, x=x)
    np.testing.assert_array_equal(_value(g, res, "gx"), pres.grads[plain.inputs["x"]])
    # s = |∇loss|², differentiated through the gradient nodes: 2 H ∇loss, against finite differences
    h = 1e-6
    fd = []
    for k in range(3):
        e = np.zeros(3)
        e[k] = h
        fd.append((forward(g, {"x": x + e})[res.out] - forward(g, {"x": x - e})[res.out]) / (2 * h))
    np.testing.assert_allclose(res.grads[g.inputs["x"]], fd, rtol=1e-6)


def test_grad_inside_a_function_body():
    g, _, res = _run("def slope(u) = grad(u * u * u, u)\ny = slope(x) + slope(2 * x)", x=0.5)
    assert _value(g, res, "y") == pytest.approx(3 * 0.25 + 3 * 1.0)


def test_meta_gradient_of_gradient_descent_matches_finite_differences():
    src = (EXAMPLES / "gradient_descent.cg").read_text()
    g = compile_program(Source(src), {}, use_cache=False)
    inputs = bind_inputs(g, {})
    res = evaluate(g, inputs)
    for name in ("lr", "w0", "b0"):
        h = 1e-6
        plus, minus = dict(inputs), dict(inputs)
        plus[name] = inputs[name] + h
        minus[name] = inputs[name] - h
        fd = (forward(g, plus)[res.out] - forward(g, minus)[res.out]) / (2 * h)
        assert float(res.grads[g.inputs[name]]) == pytest.approx(float(fd), rel=1e-6), name
    # the steps do descend
    losses = [res.values[i] for i, n in enumerate(g.names) if n == "loss"] + [res.values[res.out]]
    assert all(a > b for a, b in zip(losses, losses[1:]))


def test_newton_example_takes_newton_steps():
    src = (EXAMPLES / "newton.cg").read_text()
    for x0 in (1.5, -1.0, 0.3):
        x = x0
        for _ in range(2):  # by hand: f' = 4x^3 - 6x + 1, f'' = 12x^2 - 6
            x = x - (4 * x**3 - 6 * x + 1) / (12 * x**2 - 6)
        g = compile_program(Source(src), {"x0": np.asarray(x0)}, use_cache=False)
        res = evaluate(g, bind_inputs(g, {"x0": np.asarray(x0)}))
        assert float(res.values[res.out]) == pytest.approx(x, rel=1e-13)


@pytest.mark.parametrize(
    "src, message, caret",
    [
        ("y = x * [1, 2]\ng = grad(y, x)", "grad() differentiates a scalar, but its first argument has shape (2,)", 10),
        ("y = x * x\ng = grad(y, q)", "'q' is not a node", 13),
        ("y = grad(pi * x, pi)", "'pi' is not a node", 18),  # a built-in constant, not an input
        ("y = x * x\ng = grad(y, 2 * x)", "the second argument of grad() must be the name of a node", 13),
        ("y = x * x\ng = grad(y)", "grad() takes 2 arguments, got 1", 5),
        ("y = x * x\ng = grad(y, x, x)", "grad() takes 2 arguments, got 3", 5),
        ("def grad(u) = u\ny = grad(x)", "cannot redefine the built-in function 'grad'", 5),
    ],
)
def test_grad_errors(src, message, caret):
    with pytest.raises(CgraphError) as e:
        compile_program(Source(src), {"x": np.asarray(1.0)}, use_cache=False)
    assert message in str(e.value)
    r = run_cli("eval", "-e", src, "--at", "x=1")
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    caret_line = [ln for ln in r.stderr.splitlines() if ln.strip().startswith("|") and "^" in ln][0]
    assert caret_line.index("^") - caret_line.index("|") - 1 == caret, r.stderr


def test_grad_of_something_independent_is_zero_with_a_warning():
    src = "y = x * 2\nz = u * 3\ng = grad(y, z)\nout = g + x"
    r = run_cli("eval", "-e", src, "--at", "x=1,u=2", "-f", "json")
    assert r.returncode == 0, r.stderr
    assert "warning: <expr>:3:5: 'y' does not depend on 'z': the gradient is zero" in r.stderr
    doc = json.loads(r.stdout)
    assert [n["value"] for n in doc["nodes"] if n["name"] == "g"] == [0.0]
    assert doc["value"] == 1.0


def test_grad_nodes_are_ordinary_nodes_in_the_ir():
    r = run_cli("ir", "-e", "y = x * x\ng = grad(y, x)", "--at", "x=3")
    assert r.returncode == 0, r.stderr
    assert "g = " in r.stdout and "mul" in r.stdout


@pytest.mark.parametrize(
    "src, want",
    [
        ("y = grad(x^3, x)", 3 * 1.5**2),  # x is an input, first read by grad's own loss
        ("y = grad(grad(grad(x^4, x), x), x)", 24 * 1.5),
        ("y = grad(sin(x) * x, x) + x", math.cos(1.5) * 1.5 + math.sin(1.5) + 1.5),
    ],
)
def test_grad_with_respect_to_an_input_its_loss_reads_first(src, want):
    """A name read before any assignment is an input, declared or not: grad(x^3, x) on the first line
    differentiates with respect to it, as it would after ``input x``."""
    declared = compile_program(Source("input x\n" + src), {"x": np.asarray(1.5)}, use_cache=False)
    g = compile_program(Source(src), {"x": np.asarray(1.5)}, use_cache=False)
    assert list(g.inputs) == ["x"]
    for graph in (g, declared):
        res = evaluate(graph, bind_inputs(graph, {"x": np.asarray(1.5)}))
        assert float(res.values[res.out]) == pytest.approx(want, rel=1e-14)
    r = run_cli("eval", "-e", src, "--at", "x=1.5", "--format", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["value"] == pytest.approx(want, rel=1e-14), r.stderr
