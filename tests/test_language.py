"""The language of SPEC §2: precedence, numbers, tensors, indexing, built-ins, statements.

Values are checked against numpy computed independently here; gradients of
small cases by hand.  Programs run in-process through the library's front door
(``cgraph_cli.run.program.run``); the CLI paths are in test_cli_eval.py.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from cgraph_cli.errors import CgraphError, Source
from cgraph_cli.run.program import compile_program, pick_output, run
from cgraph_cli.run.values import bind_inputs
from tests.conftest import EXAMPLES, run_cli


def ev(src: str, *, of: str | None = None, seed: int = 0, **at):
    """Run a program; returns (value of the output, {input: gradient}, result)."""
    res = run(Source(src), {k: np.asarray(v, dtype=float) for k, v in at.items()}, of=of, seed=seed)
    grads = {n: res.grads[i] for n, i in res.graph.inputs.items()}
    return res.values[res.out], grads, res


def value(src: str, name: str | None = None, **at):
    """The value of node ``name`` (default: the output); needs no scalar output."""
    vals = {k: np.asarray(v, dtype=float) for k, v in at.items()}
    g = compile_program(Source(src), vals)
    from cgraph_cli.engine.reference import forward

    v = forward(g, bind_inputs(g, vals))
    return v[g.bindings[name] if name else g.output]


def used(expr: str, **at):
    """Only the values whose names occur in ``expr`` (unknown --at names are an error)."""
    return {k: v for k, v in at.items() if re.search(rf"\b{k}\b", expr)}


# -- the lecture ---------------------------------------------------------------------------


def test_lecture_by_hand():
    src = (EXAMPLES / "lecture.cg").read_text()
    z, g, res = ev(src)
    assert z == 14.0
    assert (g["a"], g["b"], g["c"]) == (7.0, 9.0, 2.0)
    gr = res.graph
    vals = {n: res.values[gr.bindings[n]] for n in ("x", "y", "z")}
    assert vals == {"x": 2.0, "y": 7.0, "z": 14.0}
    assert res.grads[gr.bindings["x"]] == 7.0  # dz/dx = y
    assert res.grads[gr.bindings["y"]] == 2.0  # dz/dy = x


def test_lecture_inline_with_at():
    z, g, _ = ev("z = (a + b) * (b + c)", a=-1, b=3, c=4)
    assert z == 14.0 and (g["a"], g["b"], g["c"]) == (7.0, 9.0, 2.0)


# -- precedence and associativity ------------------------------------------------------------


@pytest.mark.parametrize(
    "expr,want",
    [
        ("-a^2", -9.0),
        ("-a**2", -9.0),
        ("(-a)^2", 9.0),
        ("2^3^2", 512.0),
        ("2**3**2", 512.0),
        ("2^3**2", 512.0),
        ("(2^3)^2", 64.0),
        ("a^-b", 3.0**-2),
        ("a**-b", 3.0**-2),
        ("2^-1", 0.5),
        ("-2^2", -4.0),
        ("a - b - c", 3 - 2 - 5),
        ("a - (b - c)", 3 - (2 - 5)),
        ("a / b / c", 3 / 2 / 5),
        ("a / b * c", 3 / 2 * 5),
        ("a * b / c", 3 * 2 / 5),
        ("a + b * c", 3 + 2 * 5),
        ("(a + b) * c", (3 + 2) * 5),
        ("a - -b", 3 + 2),
        ("a--b", 3 + 2),
        ("-a * b", -6.0),
        ("- -a", 3.0),
        ("+a", 3.0),
        ("-+a", -3.0),
        ("a * -b", -6.0),
        ("a^b^0", 3.0),
        ("-a^-b", -(3.0**-2)),
        ("2 * a ^ 2", 18.0),
        ("a ^ 2 * 2", 18.0),
        ("sqrt(4)^3", 8.0),
        ("exp(1)^2", math.e**2),
        ("-sqrt(4)", -2.0),
        ("pi", math.pi),
        ("2 * pi", 2 * math.pi),
        ("sin(pi / 2)", 1.0),
    ],
)
def test_precedence_table(expr, want):
    got, _, _ = ev(f"out = {expr}", **used(expr, a=3, b=2, c=5))
    assert np.isclose(got, want, rtol=1e-12), expr


def test_matmul_mul_div_same_level_left_assoc():
    rng = np.random.default_rng(0)
    v, A, w = rng.normal(size=3), rng.normal(size=(3, 3)), rng.normal(size=3)
    got = value("y = v * A @ w", v=v, A=A, w=w)
    np.testing.assert_allclose(got, (v * A) @ w)
    assert not np.allclose(got, v * (A @ w))
    got = value("y = A @ A / 2 @ w", A=A, w=w)
    np.testing.assert_allclose(got, ((A @ A) / 2) @ w)
    got = value("y = w @ A * v", A=A, w=w, v=v)
    np.testing.assert_allclose(got, (w @ A) * v)


def test_postfix_binds_tighter_than_power_and_unary_minus():
    x = np.array([1.0, 3.0, 5.0])
    assert value("y = x[1]^2", x=x) == 9.0
    assert value("y = -x[1]^2", x=x) == -9.0
    assert value("y = 2^x[0]", x=x) == 2.0
    assert value("y = -x[2]", x=x) == -5.0


def test_power_gradient_right_assoc():
    # y = a^(b^2): dy/da = b^2 a^(b^2-1), dy/db = a^(b^2) ln a 2b
    y, g, _ = ev("y = a^b^2", a=2, b=1.5)
    assert np.isclose(y, 2**2.25)
    assert np.isclose(g["a"], 2.25 * 2**1.25)
    assert np.isclose(g["b"], 2**2.25 * math.log(2) * 3)


# -- numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,want",
    [
        ("3", 3.0),
        ("-0.5", -0.5),
        ("1e-3", 1e-3),
        (".5", 0.5),
        ("1.", 1.0),
        ("2E+2", 200.0),
        ("1.5e2", 150.0),
        ("0", 0.0),
        ("007", 7.0),
        ("-.25", -0.25),
        ("3e0", 3.0),
    ],
)
def test_numbers(text, want):
    assert value(f"y = {text}") == want


# -- tensors, indexing, slices ---------------------------------------------------------------


def test_tensor_literals():
    np.testing.assert_array_equal(value("y = [1, 2, 3]"), [1, 2, 3])
    np.testing.assert_array_equal(value("y = [[1, 2], [3, 4]]"), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(value("y = [[[1], [2]]]"), np.array([[[1], [2]]]))
    np.testing.assert_array_equal(value("y = [-1, .5, 2e1]"), [-1, 0.5, 20])
    assert value("y = [1, 2, 3]").dtype == np.float64


def test_tensor_literal_with_expressions_has_gradients():
    y, g, _ = ev("y = sum([a * b, b, [a, 1][0] ^ 2] * [1, 2, 3])", a=2, b=5)
    assert y == 10 + 10 + 12
    assert g["a"] == 5 + 3 * 2 * 2
    assert g["b"] == 2 + 2
    y, g, _ = ev("y = sum([[a, 1], [2, a]] @ [1, 1])", a=3)
    assert y == 4 + 5 and g["a"] == 2


X34 = np.arange(12.0).reshape(3, 4) * 1.5 - 4


@pytest.mark.parametrize(
    "index,np_index",
    [
        ("[1]", (1,)),
        ("[-1]", (-1,)),
        ("[1, 2]", (1, 2)),
        ("[-1, -2]", (-1, -2)),
        ("[0:2]", (slice(0, 2),)),
        ("[1:]", (slice(1, None),)),
        ("[:2]", (slice(None, 2),)),
        ("[:]", (slice(None),)),
        ("[::2]", (slice(None, None, 2),)),
        ("[::-1]", (slice(None, None, -1),)),
        ("[1:, :2]", (slice(1, None), slice(None, 2))),
        ("[-2:]", (slice(-2, None),)),
        ("[:, 1]", (slice(None), 1)),
        ("[:, -1]", (slice(None), -1)),
        ("[2, 3:0:-1]", (2, slice(3, 0, -1))),
        ("[0:3:2, 1::2]", (slice(0, 3, 2), slice(1, None, 2))),
    ],
)
def test_indexing_matches_numpy(index, np_index):
    got = value(f"y = X{index}", X=X34)
    np.testing.assert_array_equal(got, X34[np_index])
    # the gradient of sum(w * X[idx]) scatters w back into X's shape
    w = np.arange(1.0, 1.0 + np.size(X34[np_index])).reshape(np.shape(X34[np_index]))
    _, g, _ = ev(f"y = sum(w * X{index})", X=X34, w=w)
    want = np.zeros_like(X34)
    want[np_index] += w
    np.testing.assert_array_equal(g["X"], want)


def test_chained_indexing():
    assert value("y = X[1][2]", X=X34) == X34[1][2]
    np.testing.assert_array_equal(value("y = X[::-1][0]", X=X34), X34[::-1][0])
    assert value("y = [10, 20, 30][-1]") == 30


# -- built-in functions ---------------------------------------------------------------------

V = np.array([0.3, -1.2, 2.0, 0.7])
P = np.array([0.5, 1.5, 2.5])  # positive, for log/sqrt
M = np.array([[0.2, -0.4, 1.0], [1.5, 0.3, -2.0]])


def _sig(x):
    return 1 / (1 + np.exp(-x))


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _lse(x, axis=None):
    return np.log(np.sum(np.exp(x), axis=axis))


@pytest.mark.parametrize(
    "expr,want",
    [
        ("exp(v)", np.exp(V)),
        ("log(p)", np.log(P)),
        ("ln(p)", np.log(P)),
        ("sqrt(p)", np.sqrt(P)),
        ("abs(v)", np.abs(V)),
        ("sin(v)", np.sin(V)),
        ("cos(v)", np.cos(V)),
        ("tan(v)", np.tan(V)),
        ("tanh(v)", np.tanh(V)),
        ("sigmoid(v)", _sig(V)),
        ("relu(v)", np.maximum(V, 0)),
        ("softplus(v)", np.log1p(np.exp(V))),
        ("square(v)", V**2),
        ("pow(p, 1.5)", P**1.5),
        ("pow(2, p)", 2**P),
        ("max(v, 0.5)", np.maximum(V, 0.5)),
        ("max(v, 0.5, -v)", np.maximum(np.maximum(V, 0.5), -V)),
        ("min(v, 0.5)", np.minimum(V, 0.5)),
        ("min(v, 0.5, -v, 0)", np.minimum(np.minimum(np.minimum(V, 0.5), -V), 0)),
        ("sum(v)", np.sum(V)),
        ("sum(M)", np.sum(M)),
        ("sum(M, 0)", np.sum(M, axis=0)),
        ("sum(M, 1)", np.sum(M, axis=1)),
        ("sum(M, -1)", np.sum(M, axis=-1)),
        ("mean(v)", np.mean(V)),
        ("mean(M, 0)", np.mean(M, axis=0)),
        ("mean(M, -1)", np.mean(M, axis=-1)),
        ("max(v)", np.max(V)),
        ("min(v)", np.min(V)),
        ("max(M)", np.max(M)),
        ("logsumexp(v)", _lse(V)),
        ("logsumexp(M, 1)", _lse(M, axis=1)),
        ("norm(v)", np.sqrt(np.sum(V**2))),
        ("norm(M)", np.sqrt(np.sum(M**2))),
        ("dot(v, v)", V @ V),
        ("dot(M, p)", M @ P),
        ("dot(2, v)", 2 * V),
        ("M @ p", M @ P),
        ("transpose(M)", M.T),
        ("reshape(M, 3, 2)", M.reshape(3, 2)),
        ("reshape(M, -1)", M.reshape(-1)),
        ("reshape(v, 2, -1)", V.reshape(2, -1)),
        ("softmax(v)", _softmax(V)),
        ("softmax(M, 0)", _softmax(M, 0)),
        ("softmax(M, 1)", _softmax(M, 1)),
        ("softmax(M)", _softmax(M, -1)),
        ("zeros(2, 3)", np.zeros((2, 3))),
        ("zeros(3)", np.zeros(3)),
        ("ones(4)", np.ones(4)),
        ("eye(3)", np.eye(3)),
        ("sigmoid(-800)", 0.0),
        ("softplus(800)", 800.0),
    ],
)
def test_builtin_values(expr, want):
    got = value(f"y = {expr}", **used(expr, v=V, p=P, M=M))
    assert np.shape(got) == np.shape(want), expr
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15, err_msg=expr)


def test_random_constructors_are_seeded():
    def draw(seed):
        return run(Source("y = sum(randn(2, 3) * x) + sum(rand(4) * x[0, 0])"), {"x": np.ones((2, 3))}, seed=seed)

    r0, r0b, r1 = draw(0), draw(0), draw(1)
    gx0, gx0b, gx1 = (r.grads[r.graph.inputs["x"]] for r in (r0, r0b, r1))
    np.testing.assert_array_equal(gx0, gx0b)  # same seed, same values
    assert not np.allclose(gx0, gx1)  # different seed, different values
    # the gradient w.r.t. x is the randn tensor (+ sum(rand) at [0, 0]): normal-looking numbers
    u = value("y = rand(1000)")
    assert u.shape == (1000,) and 0 <= u.min() and u.max() < 1
    n = value("y = randn(1000)")
    assert abs(n.mean()) < 0.2 and 0.8 < n.std() < 1.2


def test_seed_through_the_cli():
    def draw(*seed):
        r = run_cli("eval", "-e", "y = sum(randn(3) * x)", "--at", "x=[1,1,1]", "--format", "json", *seed)
        assert r.returncode == 0, r.stderr
        import json

        return json.loads(r.stdout)["gradients"]["x"]

    default, zero, one = draw(), draw("--seed", "0"), draw("--seed", "1")
    assert default == zero and zero != one


def test_random_constructors_are_constants_without_gradient():
    _, _, res = ev("r = randn(3)\ny = sum(r * x)", x=[1.0, 2.0, 3.0])
    g = res.graph
    assert g.ops[g.bindings["r"]] in ("const", "id")
    assert "r" not in g.inputs


# -- statements ---------------------------------------------------------------------------


def test_semicolons_newlines_comments_and_continuations():
    src = "# header\nx = a + b ; y = b + c   # trailing comment\n\n;;\nz = x * \\\n  y\n# the end"
    z, g, _ = ev(src, a=-1, b=3, c=4)
    assert z == 14 and g["b"] == 9
    z, _, _ = ev("x = 1; y = 2; z = x + y;")
    assert z == 3
    z, _, _ = ev("x = 1\r\ny = x + 1\r\n")
    assert z == 2


def test_sequential_semantics_with_reassignment():
    src = "x = a * 2\nx = x + 1\ny = x * x\nx = 0 * a\nout = y + x"
    v, g, _ = ev(src, a=3)
    assert v == 49  # y = (2a+1)^2
    assert g["a"] == 2 * 7 * 2  # 28; the last x contributes 0 * 1
    # later uses see the newest binding; earlier ones keep theirs
    assert value(src, "x", a=3) == 0


def test_name_used_before_assignment_is_an_input():
    _, _, res = ev("y = x + 1\nx = 5\nz = x * y", x=2)
    assert list(res.graph.inputs) == ["x"]
    assert res.values[res.out] == 5 * 3


def test_inputs_with_defaults_and_shapes():
    src = "input a = 2, x[3], w = [1, 2, 3], k = zeros(3), s = 2 * pi\ny = a * sum(w * x) + sum(k) + s"
    y, g, res = ev(src, x=[1, 1, 1])
    assert np.isclose(y, 2 * 6 + 2 * math.pi)
    np.testing.assert_array_equal(g["x"], [2, 4, 6])
    np.testing.assert_array_equal(g["w"], [2, 2, 2])
    assert g["a"] == 6
    # --at overrides a default
    y, _, _ = ev(src, x=[1, 1, 1], a=1, w=[0, 0, 1])
    assert np.isclose(y, 1 + 2 * math.pi)
    # declared shape is known before values arrive
    g2 = compile_program(Source(src), {})
    assert g2.shapes[g2.inputs["x"]] == (3,)
    assert g2.shapes[g2.inputs["w"]] == (3,)


def test_input_default_uses_seeded_constructor():
    src = "input w = randn(3)\ny = sum(w)"
    a, _, _ = ev(src, seed=5)
    b, _, _ = ev(src, seed=5)
    c, _, _ = ev(src, seed=6)
    assert a == b and a != c


def test_outputs_first_is_differentiated_and_of_picks_another():
    src = "input a = 2, b = 3\nu = a * b\nv = a + b\noutput v, u"
    y, g, res = ev(src)
    assert res.graph.label(res.out) == "v" and y == 5 and g["a"] == 1
    y, g, res = ev(src, of="u")
    assert y == 6 and g["a"] == 3 and g["b"] == 2
    # --of may name any node, even an input or an unlisted intermediate
    y, g, res = ev("input a = 2\nt = a^2\nz = t + 1", of="t")
    assert y == 4 and g["a"] == 4
    with pytest.raises(CgraphError, match="'w'"):
        pick_output(compile_program(Source(src), {}), "w")


def test_output_names_the_binding_at_that_point():
    y, g, res = ev("z = a * 2\noutput z\nz = a * 3", a=1)
    assert y == 2 and g["a"] == 2


def test_default_output_is_the_last_assignment():
    y, _, res = ev("x = 1 + a\ny = x * 3\nz = y - 1\n# nothing", a=1)
    assert res.graph.label(res.out) == "z" and y == 5


def test_bare_final_expression_is_named_out():
    y, g, res = ev("x = a * 2\nx + 1", a=3)
    assert res.graph.label(res.out) == "out" and y == 7 and g["a"] == 2
    y, _, res = ev("(a + b) * (b + c)", a=-1, b=3, c=4)
    assert res.graph.label(res.out) == "out" and y == 14


def test_def_is_inlined():
    src = "def f(u, v) = u * v + 1\ndef g(u) = f(u, u) * 2\nz = f(a, b) + g(b)"
    z, grads, res = ev(src, a=2, b=3)
    assert z == (6 + 1) + (9 + 1) * 2
    assert grads["a"] == 3 and grads["b"] == 2 + 2 * 2 * 3
    g = res.graph
    assert "def" not in g.ops and "call" not in g.ops  # inlined: plain ops only
    assert [f.name for f in g.frames] == ["f", "g", "f"]
    # a parameter may shadow a global name; pi is visible
    z, _, _ = ev("a = 100\ndef h(a) = a * pi\nz = h(2)")
    assert np.isclose(z, 2 * math.pi)


def test_def_with_tensor_arguments():
    src = "def lin(W, x, b) = W @ x + b\ny = sum(tanh(lin(W, x, b)))"
    W = np.array([[1.0, 2.0], [0.5, -1.0]])
    x = np.array([0.3, -0.2])
    b = np.array([0.1, 0.0])
    y, g, _ = ev(src, W=W, x=x, b=b)
    h = W @ x + b
    assert np.isclose(y, np.sum(np.tanh(h)))
    np.testing.assert_allclose(g["b"], 1 - np.tanh(h) ** 2)
    np.testing.assert_allclose(g["W"], np.outer(1 - np.tanh(h) ** 2, x))


@pytest.mark.parametrize(
    "src,needle",
    [
        ("def f(u) = u * z\ny = f(1)", "unknown name 'z'"),
        ("def f(u) = f(u)\ny = f(1)", "recursion"),
        ("def f(u) = g(u)\ndef g(u) = u\ny = f(1)", "unknown function 'g'"),
        ("input a\na = 1", "declared as an input"),
        ("def exp(u) = u\ny = exp(1)", "built-in"),
        ("def f(u) = u\ndef f(u) = u\ny = f(1)", "defined twice"),
        ("def f(u, u) = u\ny = f(1, 2)", "twice"),
        ("def f(u, v) = u\ny = f(1)", "takes 2 arguments, got 1"),
        ("x = 1\ny = 2\nx + y\nz = 3", "last statement"),
        ("input a\ninput a", "declared twice"),
        ("y = a\ninput a", "declared after"),
        ("input pi", "constant"),
        ("output q", "not defined"),
    ],
)
def test_statement_errors(src, needle):
    with pytest.raises(CgraphError, match=needle):
        run(Source(src), {"a": np.array(1.0)} if "input a\n" not in src else {})


def test_inputs_in_order_of_first_appearance():
    _, _, res = ev("y = c * a + b", a=1, b=2, c=3)
    assert list(res.graph.inputs) == ["c", "a", "b"]


def test_float32_computes_in_float32():
    res = run(Source("y = exp(x) * sin(x) + x^2 / 3"), {"x": np.array(0.7)}, dtype="float32")
    x = np.float32(0.7)
    want = np.exp(x) * np.sin(x) + x ** np.float32(2) / np.float32(3)
    dwant = np.exp(x) * np.sin(x) + np.exp(x) * np.cos(x) + np.float32(2) * x / np.float32(3)
    assert res.values[res.out].dtype == np.float32 and res.grads[0].dtype == np.float32
    np.testing.assert_allclose(res.values[res.out], want, rtol=1e-6)
    np.testing.assert_allclose(res.grads[0], dwant, rtol=1e-6)
    assert float(res.values[res.out]) != float(np.exp(0.7) * np.sin(0.7) + 0.49 / 3)  # not float64 precision


def test_an_input_first_used_in_parentheses_is_located_at_its_name():
    from cgraph_cli.errors import Source
    from cgraph_cli.run.program import compile_program

    g = compile_program(Source("y = ((x)) + 1"), {"x": 2.0})
    i = g.inputs["x"]
    assert g.text(i) == "x" and g.line_col(i) == (1, 7)
