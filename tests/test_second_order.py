"""Second order: Hessians and Hessian-vector products from the backward pass recorded as graph nodes.

References: hand-derived Hessians (the lecture's z, x^2·y), central finite differences of the engine's
numeric gradient (an independent path: the numeric backward pass never goes through the tracer),
symmetry, ``H v`` against the full Hessian times ``v``, every op record's VJP traced and differentiated,
random programs, and the command line's keys, shapes and refusals.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cgraph_cli.engine import evaluate
from cgraph_cli.engine.second import HvpProgram, hessian, hvp
from cgraph_cli.errors import CgraphError, Source
from cgraph_cli.ir.graph import Builder, backward_graph
from cgraph_cli.ops import OPS
from cgraph_cli.run.program import compile_program
from cgraph_cli.run.values import bind_inputs
from tests.conftest import EXAMPLES, run_cli
from tests.test_ops_fd import default_shapes, sample_operands
from tests.test_properties import TENSOR_INPUTS, programs, typed


def _compile(src: str, **at):
    vals = {k: np.asarray(v, dtype=np.float64) for k, v in at.items()}
    g = compile_program(Source(src), vals, use_cache=False)
    return g, bind_inputs(g, {k: v for k, v in vals.items() if k in g.inputs})


def numeric_gradient(g, inputs, out=None) -> dict[str, np.ndarray]:
    res = evaluate(g, inputs, out, strategy="generic")
    return {x: np.asarray(res.grads[i], dtype=np.float64) for x, i in g.inputs.items()}


def fd_hessian(g, inputs, out=None, h=1e-5) -> dict[str, dict[str, np.ndarray]]:
    """Central differences of the numeric gradient, entry by entry."""
    H = {x: {y: np.zeros(np.shape(inputs[x]) + np.shape(inputs[y])) for y in g.inputs} for x in g.inputs}
    for x in g.inputs:
        for idx in np.ndindex(*np.shape(inputs[x])):
            plus = {k: np.array(v, dtype=np.float64, copy=True) for k, v in inputs.items()}
            minus = {k: np.array(v, dtype=np.float64, copy=True) for k, v in inputs.items()}
            plus[x][idx] += h
            minus[x][idx] -= h
            gp, gm = numeric_gradient(g, plus, out), numeric_gradient(g, minus, out)
            for y in g.inputs:
                H[x][y][idx] = (gp[y] - gm[y]) / (2 * h)
    return H


def assert_hessians_close(got, want, rtol=1e-5, atol=1e-6, what=""):
    for x in want:
        for y in want[x]:
            np.testing.assert_allclose(got[x][y], want[x][y], rtol=rtol, atol=atol, err_msg=f"{what} ∂²/∂{x}∂{y}")


def assert_symmetric(H, atol=1e-9):
    for x in H:
        for y in H:
            a, b = np.asarray(H[x][y]), np.asarray(H[y][x])
            nx = np.ndim(a) - np.ndim(b) // 2 if np.ndim(a) else 0
            nx = len(np.shape(a)) - len(np.shape(H[y][y])) // 2
            np.testing.assert_allclose(
                a,
                np.moveaxis(b, range(np.ndim(b)), [*range(nx, np.ndim(b)), *range(nx)]) if np.ndim(b) else b,
                atol=atol,
            )


# -- hand-derived cases ----------------------------------------------------------------------------------------------


def test_lecture_hessian_is_the_constant_of_the_lecture():
    g, inputs = _compile((EXAMPLES / "lecture.cg").read_text(), a=-1, b=3, c=4)
    H = hessian(g, inputs, g.output)
    want = {"a": [0, 1, 1], "b": [1, 2, 1], "c": [1, 1, 0]}
    for x, row in want.items():
        assert [float(H[x][y]) for y in "abc"] == row
    # constant: the same anywhere
    g2, inputs2 = _compile((EXAMPLES / "lecture.cg").read_text(), a=7.5, b=-2, c=0.25)
    H2 = hessian(g2, inputs2, g2.output)
    assert all(float(H2[x][y]) == float(H[x][y]) for x in "abc" for y in "abc")


@pytest.mark.parametrize("x, y", [(3.0, 2.0), (-1.5, 0.5), (0.0, 4.0)])
def test_hessian_of_x_squared_y(x, y):
    g, inputs = _compile("z = x^2 * y", x=x, y=y)
    H = hessian(g, inputs, g.output)
    assert float(H["x"]["x"]) == pytest.approx(2 * y)
    assert float(H["x"]["y"]) == pytest.approx(2 * x)
    assert float(H["y"]["x"]) == pytest.approx(2 * x)
    assert float(H["y"]["y"]) == 0.0


def test_hessian_of_a_quadratic_form_is_a_plus_a_transposed():
    A = np.array([[1.0, 2.0, 0.5], [-1.0, 3.0, 0.0], [4.0, 0.25, -2.0]])
    g, inputs = _compile("y = x @ (A @ x)", x=[0.3, -1.2, 2.0], A=A)
    H = hessian(g, inputs, g.output)
    np.testing.assert_allclose(H["x"]["x"], A + A.T, rtol=0, atol=1e-12)
    # ∂²y/∂x_i∂A_jk = δ_ij x_k + x_j δ_ik
    x = inputs["x"]
    want = np.einsum("ij,k->ijk", np.eye(3), x) + np.einsum("j,ik->ijk", x, np.eye(3))
    np.testing.assert_allclose(H["x"]["A"], want, atol=1e-12)
    assert H["x"]["A"].shape == (3, 3, 3) and H["A"]["x"].shape == (3, 3, 3)


def test_kinks_have_second_derivative_zero_as_pytorch():
    for src, at in [
        ("y = relu(x) * relu(x)", {"x": 0.0}),
        ("y = abs(x) * x", {"x": 0.0}),
        ("y = max(x, 0) * x", {"x": 0.0}),
        ("y = relu(x)", {"x": 0.0}),
        ("y = relu(x)", {"x": 1.0}),
    ]:
        g, inputs = _compile(src, **at)
        H = hessian(g, inputs, g.output)
        assert math.isfinite(float(H["x"]["x"])), src
    g, inputs = _compile("y = relu(x)", x=0.0)
    assert float(hessian(g, inputs, g.output)["x"]["x"]) == 0.0
    g, inputs = _compile("y = abs(x)", x=0.0)
    assert float(hessian(g, inputs, g.output)["x"]["x"]) == 0.0


# -- against finite differences of the gradient ----------------------------------------------------------------------

PROGRAMS = [
    ("z = sin(a) * exp(b) + a / (1 + b * b)", {"a": 0.7, "b": -0.4}),
    ("z = log(1 + square(a * b)) - tanh(c) * a", {"a": 0.5, "b": 1.5, "c": -0.3}),
    ("z = sqrt(1 + a^2) * sigmoid(b) + softplus(a - b) + atan2(a, 2 + b)", {"a": 0.2, "b": 0.9}),
    ("z = (a^b) + b^3", {"a": 1.3, "b": 0.8}),
    ("z = sum(tanh(W @ x + v))", {"W": np.arange(6.0).reshape(2, 3) / 7 - 0.3, "x": [0.3, -0.2, 0.5], "v": [1, -1]}),
    ("z = logsumexp(x * 2) + mean(softmax(x) * [1, 2, 3])", {"x": [0.1, -0.4, 0.7]}),
    ("z = norm(x) + sum(cumsum(x * x)) + x[1] * x[::-1][0]", {"x": [0.3, -1.1, 0.8]}),
    (
        "z = sum(reshape(transpose(M), 6) * [1, 2, 3, 4, 5, 6]) * sum(M * M, 0)[1]",
        {"M": np.arange(6.0).reshape(2, 3) / 5},
    ),
    ("z = sum(sum(M, 1) * v) + max(v) * min(sum(M, 0))", {"M": [[0.3, 1.2, -0.5], [0.9, -0.1, 2.0]], "v": [0.5, -2]}),
    ("z = sum([a * b, a + b, sin(b)] * [1, 2, 3]) / (2 + cos(a))", {"a": 0.4, "b": -1.3}),
]


@pytest.mark.parametrize("src, at", PROGRAMS, ids=[p[0][:40] for p in PROGRAMS])
def test_hessian_matches_finite_differences_of_the_gradient(src, at):
    g, inputs = _compile(src, **at)
    H = hessian(g, inputs, g.output)
    assert_hessians_close(H, fd_hessian(g, inputs), rtol=1e-5, atol=1e-6, what=src)
    for x in H:
        for y in H:
            assert H[x][y].shape == np.shape(inputs[x]) + np.shape(inputs[y])


@pytest.mark.parametrize("src, at", PROGRAMS, ids=[p[0][:40] for p in PROGRAMS])
def test_hvp_is_the_hessian_times_the_direction(src, at):
    g, inputs = _compile(src, **at)
    H = hessian(g, inputs, g.output)
    rng = np.random.default_rng(3)
    v = {x: rng.normal(size=np.shape(val)) for x, val in inputs.items()}
    got = hvp(g, inputs, g.output, v)
    for x in g.inputs:
        want = sum(
            np.tensordot(H[x][y], v[y], axes=np.ndim(v[y])) if np.ndim(v[y]) else H[x][y] * v[y] for y in g.inputs
        )
        np.testing.assert_allclose(got[x], want, rtol=1e-10, atol=1e-12, err_msg=f"{src} (Hv)[{x}]")


def test_hessian_is_symmetric():
    g, inputs = _compile(PROGRAMS[4][0], **PROGRAMS[4][1])
    H = hessian(g, inputs, g.output)
    n = {x: int(np.size(inputs[x])) for x in g.inputs}
    full = np.block([[np.reshape(H[x][y], (n[x], n[y])) for y in g.inputs] for x in g.inputs])
    np.testing.assert_allclose(full, full.T, rtol=1e-12, atol=1e-14)


# -- every op record: its VJP traced, differentiated again ---------------------------------------------------------


def _op_graph(op, xs, attrs):
    """y = sum(cot * op(x0, x1, ...)) with every operand an input."""
    values = {f"x{k}": x for k, x in enumerate(xs)}
    b = Builder(Source("y"), values)
    ids = tuple(b.new_input(f"x{k}", (0, 1)) for k in range(len(xs)))
    for k, i in enumerate(ids):
        b.g.bindings[f"x{k}"] = i
    node = b.node(op.name, ids, (0, 1), -1, dict(attrs) or None)
    cot = np.random.default_rng(5).uniform(0.5, 1.5, size=b.g.shapes[node])
    c = b.const(cot, (0, 1), -1)
    m = b.node("mul", (node, c), (0, 1), -1)
    s = b.node("sum", (m,), (0, 1), -1)
    b.g.names[s] = "y"
    b.g.outputs.append(s)
    return b.g, {f"x{k}": np.asarray(x, dtype=np.float64) for k, x in enumerate(xs)}


# ops whose VJP is not written in traceable numpy (yet): asking for their backward pass as nodes is a clear error
NOT_TRACEABLE: set[str] = set()  # prod's VJP is the op prod_others, whose own VJP is traceable numpy


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_second_derivative_matches_finite_differences(name):
    op = OPS[name]
    attrs = dict(op.test_attrs or {})
    xs = sample_operands(op, default_shapes(op))
    g, inputs = _op_graph(op, xs, attrs)
    if name in NOT_TRACEABLE:
        with pytest.raises(CgraphError, match=f"the gradient of '{op.fname}' cannot be built as graph nodes yet"):
            backward_graph(g, g.output)
        return
    bg, grads = backward_graph(g, g.output)  # the first-order graph equals the engine's numbers
    res = evaluate(g, inputs, strategy="generic")
    from cgraph_cli.engine.reference import forward

    vals = forward(bg, inputs)
    for x, i in g.inputs.items():
        np.testing.assert_array_equal(vals[grads[i]], res.grads[i], err_msg=f"{name}: traced gradient of {x}")
    rng = np.random.default_rng(11)
    v = {x: rng.normal(size=np.shape(val)) for x, val in inputs.items()}
    got = HvpProgram(g, g.output).hvp(inputs, v)
    h = 1e-5
    plus = {x: inputs[x] + h * v[x] for x in inputs}
    minus = {x: inputs[x] - h * v[x] for x in inputs}
    gp, gm = numeric_gradient(g, plus), numeric_gradient(g, minus)
    for x in g.inputs:
        np.testing.assert_allclose(got[x], (gp[x] - gm[x]) / (2 * h), rtol=1e-5, atol=1e-6, err_msg=f"{name}: Hv")


# -- random programs -------------------------------------------------------------------------------------------------

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.slow
@SETTINGS
@given(programs())
def test_random_scalar_programs_hessians_match_finite_differences(prog):
    src, raw = prog
    vals = {k: np.asarray(v, dtype=np.float64) for k, v in raw.items()}
    g = compile_program(Source(src), vals, use_cache=False)
    inputs = bind_inputs(g, {k: v for k, v in vals.items() if k in g.inputs})
    H = hessian(g, inputs, g.output)
    want = fd_hessian(g, inputs, h=1e-4)
    scale = max([1.0] + [float(np.max(np.abs(want[x][y]))) for x in want for y in want[x]])
    assert_hessians_close(H, want, rtol=1e-4, atol=1e-4 * scale, what=src)


@pytest.mark.slow
@SETTINGS
@given(typed("S", 3), st.integers(0, 2**32 - 1))
def test_random_tensor_programs_hvps_match_finite_differences(expr, seed):
    src = f"y = {expr}"
    rng = np.random.default_rng(seed)
    vals = {k: rng.uniform(-1, 1, size=shape) for k, shape in TENSOR_INPUTS.items()}
    g = compile_program(Source(src), vals, use_cache=False)
    inputs = bind_inputs(g, {k: v for k, v in vals.items() if k in g.inputs})
    v = {x: rng.normal(size=np.shape(val)) for x, val in inputs.items()}
    got = hvp(g, inputs, g.output, v)
    h = 1e-5
    gp = numeric_gradient(g, {x: inputs[x] + h * v[x] for x in inputs})
    gm = numeric_gradient(g, {x: inputs[x] - h * v[x] for x in inputs})
    for x in g.inputs:
        want = (gp[x] - gm[x]) / (2 * h)
        scale = max(1.0, float(np.max(np.abs(want))) if np.size(want) else 1.0)
        np.testing.assert_allclose(got[x], want, rtol=1e-4, atol=1e-5 * scale, err_msg=src)


# -- the command line ------------------------------------------------------------------------------------------------


def test_cli_hessian_json_keys_and_shapes():
    r = run_cli("eval", "-e", "y = sum(x * x) * s", "--at", "x=[1,2,3],s=2", "--hessian", "-f", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc["hessian"]) == {"x", "s"} and set(doc["hessian"]["x"]) == {"x", "s"}
    assert doc["hessian"]["x"]["x"] == [[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]]
    assert doc["hessian"]["x"]["s"] == [2.0, 4.0, 6.0] and doc["hessian"]["s"]["s"] == 0.0
    assert doc["hessian"]["s"]["x"] == [2.0, 4.0, 6.0]
    assert doc["value"] == 28.0 and doc["gradients"]["s"] == 14.0  # the rest of the document is unchanged


@pytest.mark.parametrize(
    "v, want",
    [
        ([1, 2, 3], [[0, 3, 2], [3, 0, 1], [2, 1, 0]]),
        ([0, 2, 3], [[0, 3, 2], [3, 0, 0], [2, 0, 0]]),  # a zero entry: the products of the others, no division
        ([0, 0, 3], [[0, 3, 0], [3, 0, 0], [0, 0, 0]]),
    ],
)
def test_prod_has_second_derivatives_with_zeros_too(v, want):
    """The Hessian of prod(v) (as the README says): entry (i, j) the product of the entries but i and j."""
    r = run_cli("eval", "-e", "input v[3]\ny = prod(v)", "--at", f"v={v}".replace(" ", ""), "--hessian", "-f", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["hessian"]["v"]["v"] == want


def test_cli_hvp_json():
    r = run_cli("eval", "-e", "y = sum(x * x) * s", "--at", "x=[1,2,3],s=2", "--hvp", "x=[1,0,0]", "-f", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["hvp"] == {"x": [4.0, 0.0, 0.0], "s": 2.0}
    r = run_cli("eval", "-e", "y = sum(x * x) * s", "--at", "x=[1,2,3],s=2", "--hvp", "s=1", "-f", "json")
    assert json.loads(r.stdout)["hvp"] == {"x": [2.0, 4.0, 6.0], "s": 0.0}


def test_cli_hessian_table_shows_a_matrix():
    r = run_cli("eval", str(EXAMPLES / "lecture.cg"), "--at", "a=-1,b=3,c=4", "--hessian")
    assert r.returncode == 0, r.stderr
    assert "Hessian ∂²z/∂u∂v" in r.stdout
    rows = [line for line in r.stdout.splitlines() if line.startswith("│ b ")]
    assert rows and rows[-1].replace("│", " ").split() == ["b", "1", "2", "1"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["-e", "y = x * 2", "--at", "x=[1,2]", "--hessian"], "only a scalar can be differentiated"),
        (["-e", "y = x * x", "--at", "x=1", "--hvp", "q=1"], "--hvp: 'q' is not an input"),
        (["-e", "y = sum(x * x)", "--at", "x=[1,2]", "--hvp", "x=[1,2,3]"], "has shape (3,), but 'x' has shape (2,)"),
        (["-e", "y = x * x", "--at", "x=1", "--hvp", "x"], "--hvp: expected name=value"),
        (["-e", "y = x * x", "--at", "x=1", "--hessian", "-f", "csv"], "--hessian is shown as a table or as JSON"),
        (["-e", "y = x * x", "--at", "x=1", "--hessian", "-f", "csv"], "hint: use --format json"),
        (["-e", "y = x * x", "--hessian", "--batch", "B"], "--hessian is shown as a table or as JSON"),
        (["-e", "y = x * x", "--hvp", "x=1", "--batch", "B"], "hint: evaluate one point at a time (--at)"),
    ],
)
def test_cli_bad_second_order_requests_exit_2(args, message):
    r = run_cli("eval", *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("error:") and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_hvp_on_the_mlp_example_needs_no_hessian():
    src = (EXAMPLES / "mlp.cg").read_text()
    g = compile_program(Source(src), {}, use_cache=False)
    inputs = bind_inputs(g, {})
    rng = np.random.default_rng(0)
    v = {x: rng.normal(size=np.shape(val)) for x, val in inputs.items()}
    got = hvp(g, inputs, g.output, v)
    h = 1e-5
    gp = numeric_gradient(g, {x: inputs[x] + h * v[x] for x in inputs})
    gm = numeric_gradient(g, {x: inputs[x] - h * v[x] for x in inputs})
    for x in g.inputs:
        np.testing.assert_allclose(got[x], (gp[x] - gm[x]) / (2 * h), rtol=1e-4, atol=1e-6)


# -- check --order 2 -------------------------------------------------------------------------------------------------


def test_check_order_2_passes_on_smooth_programs_table_and_json():
    r = run_cli("check", str(EXAMPLES / "lecture.cg"), "--at", "a=-1,b=3,c=4", "--order", "2")
    assert r.returncode == 0, r.stderr
    assert "ok: all 9 second-derivative entries of z match finite differences of the gradient" in r.stdout
    assert "∂²z/∂input∂input: 9 entries of a, b, c: ok" in r.stdout
    r = run_cli(
        "check",
        "-e",
        "y = sum(tanh(W @ x)) * s",
        "--at",
        "x=[0.1,0.2],W=[[1,2],[3,4],[5,6]],s=0.5",
        "--order",
        "2",
        "-f",
        "json",
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["order"] == 2 and doc["passed"] and doc["checked"] == 81 and doc["failed"] == 0
    ofs = [c["of"] for c in doc["inputs"]]
    assert ofs[:3] == ["W[0, 0]", "W[0, 0]", "W[0, 0]"] and "s" in ofs
    entry = next(e for c in doc["inputs"] if c["of"] == "s" for e in c["entries"] if e["entry"] == "s, s")
    assert entry["analytic"] == 0.0


def test_check_order_2_fails_with_exit_1_at_a_kink():
    # relu at 0: cgraph (as PyTorch) takes relu'' = 0 and relu'(0) = 0; the gradient jumps there, so the
    # finite differences of the gradient do not see 0: the check fails honestly and names the kink
    r = run_cli("check", "-e", "y = relu(x) * x", "--at", "x=0", "--order", "2")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "FAILED" in r.stdout and "relu" in r.stderr


def test_check_order_2_finds_a_wrong_second_derivative(monkeypatch):
    """sum_to's VJP is used only when a backward pass recorded as nodes is differentiated again: a wrong one
    leaves every gradient (and check --order 1) right and is caught by --order 2 alone."""
    from dataclasses import replace

    from cgraph_cli import ops as ops_mod
    from cgraph_cli.analysis.check import check_gradients
    from cgraph_cli.analysis.second import check_second_order

    g, inputs = _compile("y = sum(x * s * s)", x=[0.5, -1.0, 2.0], s=0.3)
    assert check_second_order(g, inputs).passed
    sum_to = ops_mod.OPS["sum_to"]
    bad = replace(sum_to, vjp=(lambda g, ans, x, shape=(): np.broadcast_to(2 * g, np.shape(x)),))
    monkeypatch.setitem(ops_mod.OPS, "sum_to", bad)
    assert check_gradients(g, inputs).passed
    report = check_second_order(g, inputs)
    assert not report.passed
    failed = {c.entry_name(k) for c in report.inputs for k in range(len(c.index)) if not c.ok[k]}
    assert failed and all(name.startswith("s, ") for name in failed), failed  # the derivatives of ∂y/∂s


def test_check_order_must_be_1_or_2():
    r = run_cli("check", "-e", "y = x * x", "--at", "x=1", "--order", "3")
    assert r.returncode == 2 and "--order must be 1 or 2" in r.stderr


def test_hessian_of_a_program_whose_inputs_are_all_data_says_so_in_a_line():
    """Every input declared data: no input is differentiated, so the Hessian has no entries; the table's
    caption and a line say so (it drew a title broken over four lines above a table of no columns)."""
    r = run_cli("eval", "-e", "input data X\ny = X^2", "--at", "X=2", "--hessian")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "no input is differentiated (X: data)" in lines
    assert lines[-1] == "Hessian ∂²y/∂u∂v: no entries (no input is differentiated)"
    doc = json.loads(run_cli("eval", "-e", "input data X\ny = X^2", "--at", "X=2", "--hessian", "-f", "json").stdout)
    assert doc["hessian"] == {}
