"""Forward mode: every op record's JVP, the engine's tangent pass, ``eval --mode forward --tangent``
and ``explain --mode forward``.

The JVP of each record is checked two independent ways on the record's own test shapes: as the
adjoint of its VJP (``⟨JVP(t), v⟩ = Σ_k ⟨t_k, VJP_k(v)⟩`` for random t and v) and against central finite
differences along t. Whole programs are checked against reverse mode (the JVP along a direction is
``Σ_x ⟨∂out/∂x, t_x⟩`` for a scalar output) and against finite differences.
"""

from __future__ import annotations

import json
import unicodedata
import zlib

import numpy as np
import pytest

from cgraph_cli.engine.forward_mode import jvp, tangents
from cgraph_cli.engine.reference import backward, forward
from cgraph_cli.errors import Source
from cgraph_cli.ops import OPS, Derive, unbroadcast
from cgraph_cli.run.program import compile_program
from cgraph_cli.run.values import bind_inputs
from tests.conftest import EXAMPLES, run_cli
from tests.test_ops_fd import sample_operands

# -- the records ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_record_has_a_jvp(name):
    op = OPS[name]
    assert op.jvp is not None, f"{name}: no JVP (forward mode)"
    if op.jvp is Derive.ELEMENTWISE:
        assert op.elementwise and not callable(op.vjp), f"{name}: a JVP from the VJP needs an elementwise op"
    assert isinstance(op.jvp, Derive) or callable(op.jvp)


def _case(name: str, seed: int = 0):
    op = OPS[name]
    attrs = dict(op.test_attrs or {})
    xs = sample_operands(op)
    ans = op.fwd(*xs, **attrs)
    rng = np.random.default_rng(zlib.crc32(name.encode()) + seed)
    ts = [rng.standard_normal(np.shape(x)) for x in xs]
    v = rng.standard_normal(np.shape(ans))
    return op, attrs, xs, ans, ts, v


def _vjp_dot(op, attrs, xs, ans, ts, v, only=None):
    ks = list(range(len(xs)))
    parts = op.vjps(ks, v, ans, xs, attrs)
    total = 0.0
    for k, (t, p) in enumerate(zip(ts, parts)):
        if p is None or (only is not None and k != only):
            continue
        total += float(np.sum(t * unbroadcast(p, np.shape(xs[k]), op.name)))
    return total


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", sorted(OPS))
def test_jvp_is_the_adjoint_of_the_vjp(name, seed):
    """⟨JVP(t), v⟩ == ⟨t, VJP(v)⟩ for random t and v: forward and reverse mode are one linear map."""
    op, attrs, xs, ans, ts, v = _case(name, seed)
    got = op.tangent(ts, ans, xs, attrs)
    assert np.shape(got) == np.shape(ans), f"{name}: tangent of shape {np.shape(got)} for a value {np.shape(ans)}"
    lhs = float(np.sum(got * v))
    rhs = _vjp_dot(op, attrs, xs, ans, ts, v)
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12), name
    for k in range(len(xs)):  # one operand moving, the others fixed (a None tangent is a zero one)
        one = [t if j == k else None for j, t in enumerate(ts)]
        got = op.tangent(one, ans, xs, attrs)
        assert float(np.sum(got * v)) == pytest.approx(
            _vjp_dot(op, attrs, xs, ans, ts, v, only=k), rel=1e-12, abs=1e-12
        )


@pytest.mark.parametrize("name", sorted(OPS))
def test_jvp_matches_finite_differences(name):
    op, attrs, xs, ans, ts, v = _case(name)
    h = 1e-6
    plus = op.fwd(*[x + h * t for x, t in zip(xs, ts)], **attrs)
    minus = op.fwd(*[x - h * t for x, t in zip(xs, ts)], **attrs)
    np.testing.assert_allclose(op.tangent(ts, ans, xs, attrs), (plus - minus) / (2 * h), rtol=1e-5, atol=1e-7)


def test_no_tangent_in_gives_no_tangent_out():
    op = OPS["mul"]
    assert op.tangent([None, None], np.float64(6.0), [np.float64(2.0), np.float64(3.0)]) is None


@pytest.mark.parametrize("name", ["maximum", "minimum", "amax", "amin"])
def test_ties_split_the_tangent_as_the_vjp_splits_the_gradient(name):
    op = OPS[name]
    if op.arity is None:
        xs = [np.array([1.0, 5.0, 2.0]), np.array([1.0, 3.0, 2.0]), np.array([0.0, 5.0, 2.0])]
        if name == "minimum":
            xs = [-x for x in xs]
        ts = [np.array([2.0, 4.0, 3.0]), np.array([6.0, 1.0, 6.0]), np.array([9.0, 8.0, 9.0])]
        want = [(2 + 6) / 2, (4 + 8) / 2, (3 + 6 + 9) / 3]
    else:
        xs = [np.array([3.0, 1.0, 3.0]) * (1 if name == "amax" else -1)]
        ts = [np.array([1.0, 10.0, 4.0])]
        want = 2.5
    ans = op.fwd(*xs)
    np.testing.assert_allclose(op.tangent(ts, ans, xs), want)
    v = np.ones(np.shape(ans))
    assert float(np.sum(op.tangent(ts, ans, xs) * v)) == pytest.approx(_vjp_dot(op, {}, xs, ans, ts, v))


@pytest.mark.parametrize(
    "name, x, want",
    [("relu", 0.0, 0.0), ("abs", 0.0, 0.0), ("norm", np.zeros(3), 0.0)],
)
def test_kinks_follow_the_vjp_convention(name, x, want):
    op = OPS[name]
    x = np.asarray(x)
    got = op.tangent([np.ones_like(x)], op.fwd(x), [x])
    assert np.all(got == want)


# -- the engine's tangent pass ----------------------------------------------------------------------------------------


def _compile(text: str, **given):
    g = compile_program(Source(text), {k: np.asarray(v, dtype=np.float64) for k, v in given.items()})
    return g, bind_inputs(g, {k: np.asarray(v, dtype=np.float64) for k, v in given.items()})


def test_the_lecture_in_forward_mode():
    g, inputs = _compile((EXAMPLES / "lecture.cg").read_text(), a=-1, b=3, c=4)
    vals = forward(g, inputs)
    for direction, want in (({"a": 1.0}, 7.0), ({"b": 1.0}, 9.0), ({"c": 1.0}, 2.0), ({"a": 1, "b": 1}, 16.0)):
        ts = tangents(g, vals, direction)
        assert float(ts[g.output]) == want
    ts = tangents(g, vals, {"a": 1.0})
    assert float(ts[g.bindings["x"]]) == 1.0 and float(ts[g.bindings["y"]]) == 0.0  # y = b + c: not moved by a


MLP_LIKE = """
input x[3], W[2, 3], b[2]
h = tanh(W @ x + b)
p = softmax(h)
y = logsumexp(p * 3) + norm(W) + max(h) + sum(cumsum(x)[1:]) / mean(exp(x))
"""


def _random_inputs(g, rng):
    return {name: rng.uniform(-1.5, 1.5, size=g.declared_shapes.get(name, ())) for name in g.inputs}


@pytest.mark.parametrize("seed", range(4))
def test_jvp_equals_the_gradient_dotted_with_the_direction(seed):
    """For a scalar output, forward mode along t gives Σ_x ⟨∂y/∂x, t_x⟩ of reverse mode."""
    rng = np.random.default_rng(seed)
    g = compile_program(Source(MLP_LIKE), {})
    inputs = _random_inputs(g, rng)
    direction = {k: rng.standard_normal(np.shape(v)) for k, v in inputs.items()}
    res = jvp(g, inputs, direction)
    vals = forward(g, inputs)
    grads = backward(g, vals, g.output)
    want = sum(float(np.sum(grads[g.inputs[k]] * t)) for k, t in direction.items())
    assert float(res.jvp) == pytest.approx(want, rel=1e-12)
    # and finite differences along t
    h = 1e-6
    fp = forward(g, {k: v + h * direction[k] for k, v in inputs.items()})[g.output]
    fm = forward(g, {k: v - h * direction[k] for k, v in inputs.items()})[g.output]
    assert float(res.jvp) == pytest.approx(float(fp - fm) / (2 * h), rel=1e-6)


def test_a_non_scalar_output_has_a_tangent_of_its_shape():
    g, inputs = _compile("input x[3]\ny = x * x + sin(x)", x=[1.0, 2.0, 3.0])
    res = jvp(g, inputs, {"x": np.array([1.0, 0.0, 2.0])})
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(res.jvp, (2 * x + np.cos(x)) * [1.0, 0.0, 2.0])
    assert res.mode == "forward" and res.nonfinite == []


def test_nodes_no_input_reaches_have_no_tangent_and_unmoved_ones_have_zero():
    g, inputs = _compile("input a, b\nk = 2 * 3\ny = a * k + b", a=1, b=2)
    ts = tangents(g, forward(g, inputs), {"a": 1.0})
    assert ts[g.bindings["k"]] is None
    assert float(ts[g.inputs["b"]]) == 0.0 and float(ts[g.output]) == 6.0


def test_a_non_finite_tangent_is_found_where_it_starts():
    g, inputs = _compile("input a\nr = sqrt(a)\ny = r * 2", a=0)
    res = jvp(g, inputs, {"a": 1.0})
    assert ("tangent", g.bindings["r"]) in res.nonfinite


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin", "logsumexp", "norm", "prod", "var", "std"])
@pytest.mark.parametrize("attrs", [{"axis": (0, 2)}, {"axis": -1, "keepdims": True}, {"axis": None, "keepdims": True}])
def test_reductions_over_axis_tuples_and_keepdims(name, attrs):
    op = OPS[name]
    rng = np.random.default_rng(7)
    x = rng.uniform(0.5, 2.0, size=(2, 3, 4))
    ans = op.fwd(x, **attrs)
    t, v = rng.standard_normal(x.shape), rng.standard_normal(np.shape(ans))
    got = op.tangent([t], ans, [x], attrs)
    assert np.shape(got) == np.shape(ans)
    assert float(np.sum(got * v)) == pytest.approx(float(np.sum(t * op.vjps([0], v, ans, [x], attrs)[0])), rel=1e-12)


# -- the command line -------------------------------------------------------------------------------------------------


def _cli_json(*args, env=None):
    r = run_cli(*args, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_eval_forward_mode_json_has_every_nodes_tangent_and_the_jvp():
    lecture = str(EXAMPLES / "lecture.cg")
    d = _cli_json("eval", lecture, "--mode", "forward", "--tangent", "a=1,b=0", "-f", "json")
    assert d["mode"] == "forward" and d["jvp"] == 7.0
    assert d["direction"] == {"a": 1.0, "b": 0.0, "c": 0.0}  # an input not named: 0
    tangents = {n["name"]: n["tangent"] for n in d["nodes"]}
    assert tangents == {"a": 1.0, "b": 0.0, "c": 0.0, "x": 1.0, "y": 0.0, "z": 7.0}
    assert "gradients" not in d and all("grad" not in n for n in d["nodes"])
    # the default direction: 1 for the first input in source order, 0 elsewhere
    assert _cli_json("eval", lecture, "--mode", "forward", "-f", "json")["jvp"] == 7.0
    # along b + c: ∂z/∂b + ∂z/∂c of reverse mode
    assert (
        _cli_json("eval", lecture, "--mode", "forward", "--tangent", "b=1", "--tangent", "c=1", "-f", "json")["jvp"]
        == 9.0 + 2.0
    )


def test_tensor_tangents_and_a_non_scalar_output():
    d = _cli_json("eval", "-e", "input x[3]\ny = x * x", "--at", "x=[1,2,3]", "--mode", "forward",
                  "--tangent", "x=[1,0,-1]", "-f", "json")  # fmt: skip
    assert d["jvp"] == [2.0, 0.0, -6.0] and d["direction"]["x"] == [1.0, 0.0, -1.0]
    # a number is that number at every entry
    d = _cli_json("eval", "-e", "input x[3]\ny = sum(x * x)", "--at", "x=[1,2,3]", "--mode", "forward",
                  "--tangent", "x=1", "-f", "json")  # fmt: skip
    assert d["jvp"] == 12.0


def test_forward_mode_table_and_csv():
    lecture = str(EXAMPLES / "lecture.cg")
    r = run_cli("eval", lecture, "--mode", "forward", "--tangent", "b=1", env={"COLUMNS": "120"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "z = 14;  along t (a = 0, b = 1, c = 0): ∂z/∂t = 9"
    assert "tangent ∂node/∂t" in r.stdout
    r = run_cli("eval", lecture, "--mode", "forward", "--tangent", "b=1", "-f", "csv")
    assert r.stdout.splitlines()[0] == "node,op,expr,shape,value,tangent"
    assert "z,mul,x * y,,14.0,9.0" in r.stdout.splitlines()


@pytest.mark.parametrize(
    "args",
    [
        ["--mode", "forward", "--tangent", "x=[1,0,2]", "-f", "json"],
        ["--mode", "forward", "-f", "csv"],
        ["--jacobian", "-f", "json"],
        ["--jacobian", "-f", "csv"],
        ["--cotangent", "[1,2,3]", "-f", "json"],
        ["--mode", "forward", "--cotangent", "1", "-f", "json"],
    ],
)
def test_the_fast_path_and_typer_agree(args):
    cmd = ["eval", "-e", "input x[3]\ny = exp(x) * x", "--at", "x=[0.5,1,2]", *args]
    a, b = run_cli(*cmd), run_cli(*cmd, env={"CGRAPH_NO_FASTPATH": "1"})
    assert (a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr)


def test_a_non_finite_tangent_is_warned_about_where_it_starts():
    r = run_cli("eval", "-e", "y = sqrt(a) * 2", "--at", "a=0", "--mode", "forward", "-f", "json")
    assert r.returncode == 0
    assert "non-finite tangent inf first appears in forward mode at node sqrt(a) (sqrt) (at a = 0)" in r.stderr
    assert json.loads(r.stdout)["nonfinite"][0]["pass"] == "tangent"
    r = run_cli("eval", "-e", "y = sqrt(a) * 2", "--at", "a=0", "--mode", "forward", "--strict", "-f", "json")
    assert r.returncode == 1


# -- explain --mode forward --------------------------------------------------------------------------------------------


def test_explain_forward_mode_writes_dual_numbers_as_simpleautodiff_does():
    r = run_cli("explain", str(EXAMPLES / "lecture.cg"), "--mode", "forward")
    assert r.returncode == 0, r.stderr
    assert unicodedata.normalize("NFC", r.stdout) == r.stdout  # ȧ precomposed (no parentheses around ṫ)
    lines = unicodedata.normalize("NFC", r.stdout).splitlines()
    assert lines[0] == "Forward mode: each node's value and its tangent along t (a = 1, b = 0, c = 0)"
    assert "  a = -1,  ȧ = 1" in lines
    assert "  x = a + b = -1 + 3 = 2,  ẋ = ȧ + ḃ = 1 + 0 = 1" in lines
    assert "  z = x * y = 2 * 7 = 14,  ż = ẋ * y + x * ẏ = 1 * 7 + 2 * 0 = 7" in lines
    assert lines[-1] == "∂z/∂t = ż = 7"


def test_explain_forward_mode_of_elementwise_ops_and_longer_names():
    r = run_cli("explain", "-e", "s = sin(a) * b\ny = s - a / b", "--at", "a=1,b=2", "--mode", "forward",
                "--tangent", "b=1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    r.stdout = unicodedata.normalize("NFC", r.stdout)
    assert "d(a / b) = (1/b) · ȧ + (-a/b^2) · ḃ = 0.5 · 0 + (-0.25) · 1 = -0.25" in r.stdout
    assert "ṡ = dsin(a) * b + sin(a) * ḃ" not in r.stdout  # a call's tangent is d(sin(a))
    assert "d(sin(a)) = cos(a) · ȧ = 0.540302 · 0 = 0" in r.stdout
    # the numbers agree with eval's forward mode
    d = json.loads(run_cli("explain", "-e", "s = sin(a) * b\ny = s - a / b", "--at", "a=1,b=2", "--mode",
                           "forward", "--tangent", "b=1", "--format", "json").stdout)  # fmt: skip
    e = json.loads(run_cli("eval", "-e", "s = sin(a) * b\ny = s - a / b", "--at", "a=1,b=2", "--mode",
                           "forward", "--tangent", "b=1", "--format", "json").stdout)  # fmt: skip
    assert d["jvp"] == e["jvp"] == pytest.approx(np.sin(1) + 0.25)
    assert [s["tangent"] for s in d["forward"]][-1] == e["jvp"]
    assert d["mode"] == "forward" and "backward" not in d


def test_explain_forward_mode_of_tensors_and_bad_options():
    r = run_cli("explain", str(EXAMPLES / "mlp.cg"), "--mode", "forward", "--tangent", "b1=[1,0,0,0]")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1].startswith("∂loss/∂t = dloss = ")
    r = run_cli("explain", str(EXAMPLES / "lecture.cg"), "--tangent", "a=1")
    assert (r.returncode, r.stderr) == (
        2,
        "error: --tangent gives the direction of forward mode\nhint: add --mode forward\n",
    )
