"""Bounded loops ``for i in range(...) { ... }``, unrolled when the program is compiled: values and gradients
against numpy and finite differences, the loop variable as a constant, nesting, one frame (a picture's
cluster) per iteration, the node limit checked before unrolling, and every error with its caret."""

from __future__ import annotations

import numpy as np
import pytest

from cgraph_cli.errors import Source
from cgraph_cli.ir.graph import TooManyNodes, build_graph
from cgraph_cli.lang.parser import parse
from cgraph_cli.run.program import compile_program, run
from tests.conftest import EXAMPLES, run_inproc

RNG = np.random.default_rng(7)
X = RNG.normal(size=(4, 3))
W = RNG.normal(size=(2, 2)) / 2
U = RNG.normal(size=(2, 3)) / 2

RNN = """
h = [0, 0]
for i in range(4) {
  h = tanh(W @ h + U @ x[i])
}
loss = sum(h * h)
"""


def rnn_numpy(x, w, u):
    h = np.zeros(2)
    for i in range(4):
        h = np.tanh(w @ h + u @ x[i])
    return np.sum(h * h)


def evaluate(src: str, **at):
    res = run(Source(src, "<t>"), {k: np.asarray(v, dtype=float) for k, v in at.items()}, use_cache=False)
    return res.values[res.out], {n: res.grads[i] for n, i in res.graph.inputs.items()}, res.graph


def test_an_unrolled_rnn_matches_numpy_and_finite_differences() -> None:
    v, grads, _ = evaluate(RNN, x=X, W=W, U=U)
    assert v == pytest.approx(rnn_numpy(X, W, U), rel=1e-14)
    args = {"x": X, "w": W, "u": U}
    for name, key in (("x", "x"), ("w", "W"), ("u", "U")):
        a = args[name]
        want = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            ap, am = a.copy(), a.copy()
            ap[i] += 1e-6
            am[i] -= 1e-6
            want[i] = (rnn_numpy(**{**args, name: ap}) - rnn_numpy(**{**args, name: am})) / 2e-6
        np.testing.assert_allclose(grads[key], want, rtol=1e-6, atol=1e-9)


def test_the_loop_is_the_program_written_out() -> None:
    """Unrolling gives the graph of the same statements written one after another."""
    looped = compile_program(Source(RNN, "<t>"), {"x": X, "W": W, "U": U}, use_cache=False)
    written = "h = [0, 0]\n" + "".join(f"h = tanh(W @ h + U @ x[{i}])\n" for i in range(4)) + "loss = sum(h * h)\n"
    plain = compile_program(Source(written, "<t>"), {"x": X, "W": W, "U": U}, use_cache=False)
    assert looped.ops == plain.ops and looped.args == plain.args and looped.names == plain.names
    assert [a and {k: str(v) for k, v in a.items()} for a in looped.attrs] == [
        a and {k: str(v) for k, v in a.items()} for a in plain.attrs
    ]


@pytest.mark.parametrize(
    "header,values",
    [
        ("range(3)", [0, 1, 2]),
        ("range(2, 5)", [2, 3, 4]),
        ("range(5, 2)", []),
        ("range(0)", []),
        ("range(-2)", []),
        ("range(1, 8, 3)", [1, 4, 7]),
        ("range(4, 0, -2)", [4, 2]),
        ("range(2 * 2 - 1)", [0, 1, 2]),
    ],
)
def test_range_as_in_python(header: str, values: list[int]) -> None:
    v, _, _ = evaluate(f"s = 0\nfor k in {header} {{ s = s * 10 + k + 1 }}")
    want = 0
    for k in values:
        want = want * 10 + k + 1
    assert v == want


def test_loop_variable_is_a_constant_in_index_arithmetic() -> None:
    x = np.array([1.0, 2.0, 4.0, 8.0])
    v, grads, _ = evaluate("s = 0\nfor i in range(1, 4) {\n  s = s + x[i] * x[i - 1] + i\n}", x=x)
    assert v == 1 * 2 + 2 * 4 + 4 * 8 + 1 + 2 + 3
    np.testing.assert_array_equal(grads["x"], [2, 1 + 4, 2 + 8, 4])


def test_nested_loops_and_a_bound_from_the_outer_variable() -> None:
    a = np.arange(12.0).reshape(3, 4)
    v, grads, g = evaluate(
        "s = 0\nfor i in range(3) {\n  for j in range(i, 4) { s = s + a[i, j] * (i + 1) }\n  s = s * 1\n}", a=a
    )
    want = sum(a[i, j] * (i + 1) for i in range(3) for j in range(i, 4))
    assert v == want
    np.testing.assert_array_equal(grads["a"], [[(i + 1) * (j >= i) for j in range(4)] for i in range(3)])
    # one frame per iteration, the inner ones inside the outer ones
    names = [(f.name, f.parent) for f in g.frames]
    assert names[0] == ("i = 0", -1)
    assert [n for n, _ in names] == ["i = 0"] + [f"j = {j}" for j in range(4)] + ["i = 1"] + [
        f"j = {j}" for j in range(1, 4)
    ] + ["i = 2"] + [f"j = {j}" for j in range(2, 4)]
    outer = {k for k, (n, _) in enumerate(names) if n.startswith("i")}
    assert all(p in outer for n, p in names if n.startswith("j"))


def test_body_nodes_belong_to_their_iteration() -> None:
    _, _, g = evaluate(RNN, x=X, W=W, U=U)
    assert [f.name for f in g.frames] == ["i = 0", "i = 1", "i = 2", "i = 3"]
    tanh = [i for i, op in enumerate(g.ops) if op == "tanh"]
    assert [g.frames_of[i] for i in tanh] == [0, 1, 2, 3]
    assert all(g.frames_of[i] == -1 for i in g.inputs.values())  # inputs are drawn outside the clusters
    assert g.frames_of[g.bindings["loss"]] == -1


def test_functions_called_in_a_loop_nest_in_its_frame() -> None:
    _, _, g = evaluate("def f(u) = u * u\ns = 0\nfor i in range(2) { s = s + f(x + i) }", x=3)
    assert [(f.name, f.parent) for f in g.frames] == [("i = 0", -1), ("f", 0), ("i = 1", -1), ("f", 2)]
    assert evaluate("def f(u) = u * u\ns = 0\nfor i in range(2) { s = s + f(x + i) }", x=3)[0] == 9 + 16


def test_each_iteration_is_a_cluster_of_the_picture() -> None:
    r = run_inproc("render", str(EXAMPLES / "rnn.cg"), "--format", "dot", "-o", "-")
    assert r.returncode == 0, r.stderr
    for k in range(3):
        assert f"subgraph cluster_f{k} {{" in r.stdout
        assert f"<I>t = {k}</I>" in r.stdout


def test_the_loop_variable_is_scoped_to_the_loop() -> None:
    v, grads, _ = evaluate("i = 10\ns = 0\nfor i in range(3) { s = s + i }\ny = s + i")
    assert v == 0 + 1 + 2 + 10
    v, grads, _ = evaluate("s = 0\nfor i in range(2) { for i in range(3) { s = s + i }; s = s + 10 * i }")
    assert v == (0 + 1 + 2) * 2 + 10 * (0 + 1)
    # a name used after the loop and never assigned is an input, not the loop's variable
    v, grads, _ = evaluate("for i in range(2) { s = i }\ny = s + i", i=5)
    assert v == 1 + 5 and grads["i"] == 1


def test_one_or_many_lines_between_the_braces() -> None:
    one = evaluate("h = 1; for i in range(3) { h = h * 2; g = h + i }; y = g")[0]
    many = evaluate("h = 1\nfor i in range(3) {\n\n  h = h * 2\n  # a comment\n  g = h + i\n\n}\ny = g\n")[0]
    empty = evaluate("h = 1\nfor i in range(3) {}\nfor i in range(3) {\n}\ny = h")[0]
    assert one == many == 8 + 2 and empty == 1


def test_the_node_limit_is_checked_before_unrolling() -> None:
    src = Source("h = x\nfor i in range(1000) { h = sin(h) + cos(h) * i }\n", "<t>")
    with pytest.raises(TooManyNodes) as err:
        build_graph(parse(src), src, {"x": np.array(1.0)}, max_nodes=3000)
    assert err.value.message == (
        "this loop would add over 3,000 nodes when unrolled (1,000 iterations), "
        "taking the program past the limit of 3,000 nodes"
    )
    assert err.value.span == (6, 26)  # for i in range(1000)
    # refused before anything of the loop was built: a loop of 10^15 iterations is refused at once
    src = Source("h = x\nfor i in range(10^15) { h = h + 1 }\n".replace("10^15", str(10**15)), "<t>")
    with pytest.raises(TooManyNodes, match=r"over 10,000,000 nodes when unrolled \(1,000,000,000,000,000 iterations\)"):
        build_graph(parse(src), src, {"x": np.array(1.0)})
    # nested loops multiply; a loop of empty iterations still counts them
    src = Source("for i in range(10^8) { for j in range(0) { } }\n".replace("10^8", str(10**8)), "<t>")
    with pytest.raises(TooManyNodes, match="over 10,000,000 nodes"):
        build_graph(parse(src), src, {})
    src = Source("s = 0\nfor i in range(100) { for j in range(i) { s = s + j } }\n", "<t>")
    with pytest.raises(TooManyNodes, match="about 19,900 nodes"):  # 1 + 2 + ... + 99 iterations of 3 (upper bound)
        build_graph(parse(src), src, {}, max_nodes=19_900)
    build_graph(parse(src), src, {}, max_nodes=20_000)


def fails(*args: str) -> str:
    r = run_inproc(*args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert r.stderr.startswith("error: "), r.stderr
    return r.stderr


def caret(err: str) -> tuple[int, int]:
    lines = err.splitlines()
    marks = lines[2][lines[2].index("|") + 2 :]
    return len(marks) - len(marks.lstrip()), len(marks.strip())


@pytest.mark.parametrize(
    "src,first,where",
    [
        (
            "for i in rnage(3) { y = i }",
            "error: <expr>:1:10: a loop runs over range(n) or range(a, b), not 'rnage'",
            (9, 5),
        ),
        ("for i in range() { y = i }", "error: <expr>:1:10: range() takes 1 to 3 arguments, got 0", (9, 7)),
        ("for i in range(1, 2, 3, 4) { y = i }", "error: <expr>:1:10: range() takes 1 to 3 arguments, got 4", (9, 17)),
        ("for i in range(1, 5, 0) { y = i }", "error: <expr>:1:22: the step of range() cannot be zero", (21, 1)),
        (
            "for i in range(n) { y = i }",
            "error: <expr>:1:16: a bound of range() must be a whole-number constant",
            (15, 1),
        ),
        (
            "for i in range(2.5) { y = i }",
            "error: <expr>:1:16: a bound of range() must be a whole-number constant",
            (15, 3),
        ),
        (
            "for i in range(2) { i = 1 }",
            "error: <expr>:1:21: cannot assign to 'i': it is the variable of a loop",
            (20, 1),
        ),
        ("for i in range(2) { input q }", "error: <expr>:1:21: an input declaration cannot be inside a loop", (20, 7)),
        (
            "for i in range(2) { output y }",
            "error: <expr>:1:21: an output declaration cannot be inside a loop",
            (20, 8),
        ),
        ("for i in range(2) { def f(u) = u }", "error: <expr>:1:21: a function cannot be inside a loop", (20, 12)),
        (
            "for i in range(2) { i + 1 }",
            "error: <expr>:1:21: an expression on its own cannot be inside a loop",
            (20, 5),
        ),
        (
            "x = [1, 2]\nfor i in range(3) {\n  y = x[i]\n}",
            "error: <expr>:3:9: index 2 is out of range for axis 0 of size 2",
            (8, 1),
        ),
    ],
)
def test_loop_errors(src: str, first: str, where: tuple[int, int]) -> None:
    err = fails("eval", "-e", src, "--at", "n=3")
    assert err.splitlines()[0] == first, err
    assert caret(err) == where, err
