"""cgraph explain: the lecture's steps line by line, its JSON against eval's, tensors in matrix form."""

import json
from dataclasses import replace

import numpy as np
import pytest

from tests.conftest import EXAMPLES, run_cli

FILES = sorted(EXAMPLES.glob("*.cg"))

LECTURE_LINES = [
    "Forward pass: each node's value, in topological order",
    "  a = -1",
    "  b = 3",
    "  c = 4",
    "  x = a + b = -1 + 3 = 2",
    "  y = b + c = 3 + 4 = 7",
    "  z = x * y = 2 * 7 = 14",
    "",
    # the lecture's order: z, then x and y, then a, b and c (a teacher's review: it was z, y, x, c, b, a)
    "Backward pass: ∂z/∂node, from z back to the inputs (each node after every node it feeds)",
    "  ∂z/∂z = 1",
    "  ∂z/∂x = y = 7",
    "  ∂z/∂y = x = 2",
    "  ∂z/∂a = ∂z/∂x · ∂x/∂a = 7 · 1 = 7",
    "      where ∂x/∂a = 1",
    "  ∂z/∂b = ∂z/∂x · ∂x/∂b + ∂z/∂y · ∂y/∂b = 7 · 1 + 2 · 1 = 9",
    "      where ∂x/∂b = 1, ∂y/∂b = 1",
    "  ∂z/∂c = ∂z/∂y · ∂y/∂c = 2 · 1 = 2",
    "      where ∂y/∂c = 1",
]


def test_lecture_is_explained_line_by_line():
    r = run_cli("explain", str(EXAMPLES / "lecture.cg"), "--at", "a=-1,b=3,c=4")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == LECTURE_LINES
    assert r.stderr == ""


def test_lecture_from_expr_and_stdin_gives_the_same_steps():
    prog = "x = a + b; y = b + c; z = x * y"
    r1 = run_cli("explain", "-e", prog, "--at", "a=-1,b=3,c=4")
    r2 = run_cli("explain", "-", "--at", "a=-1", "--at", "b=3,c=4", input=prog)
    assert r1.returncode == r2.returncode == 0
    assert r1.stdout == r2.stdout
    assert "  ∂z/∂b = ∂z/∂x · ∂x/∂b + ∂z/∂y · ∂y/∂b = 7 · 1 + 2 · 1 = 9" in r1.stdout.splitlines()


def test_other_point_gives_other_numbers():
    # hand values at a=2, b=-1, c=5: x = 1, y = 4, z = 4; dz/dx = 4, dz/dy = 1, dz/db = 4 + 1 = 5
    r = run_cli("explain", str(EXAMPLES / "lecture.cg"), "--at", "a=2,b=-1,c=5")
    lines = r.stdout.splitlines()
    assert "  x = a + b = 2 + (-1) = 1" in lines
    assert "  ∂z/∂b = ∂z/∂x · ∂x/∂b + ∂z/∂y · ∂y/∂b = 4 · 1 + 1 · 1 = 5" in lines


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_json_steps_agree_with_eval(path):
    from cgraph_cli.present import tables as present
    from cgraph_cli.run.program import load_source, run

    x = run_cli("explain", str(path), "--format", "json")
    assert x.returncode == 0, x.stderr
    # eval --format json's document, built in-process (the eval command prints exactly this)
    ev = json.loads(present.to_json(run(load_source(str(path), None), {})))
    ex = json.loads(x.stdout)
    nodes = {n["id"]: n for n in ev["nodes"]}
    assert ex["output"] == ev["output"] or ev["output"] in ex["output"]
    assert ex["value"] == ev["value"]
    assert ex["gradients"] == ev["gradients"]
    assert ex["forward"], "no forward steps"
    for st in ex["forward"]:
        assert st["value"] == nodes[st["node"]]["value"], st
        assert st["formula"].startswith(("‖", st["name"]))
    seen = set()
    for st in ex["backward"]:
        assert st["grad"] == nodes[st["node"]]["grad"], st
        seen.add(st["node"])
        if st["seed"]:
            assert st["terms"] == [] and np.all(np.asarray(st["grad"]) == 1)
            continue
        # the chain rule: the gradient is the sum over successors of their contributions
        total = sum(np.asarray(t["contribution"], dtype=float) for t in st["terms"])
        np.testing.assert_allclose(total, np.asarray(st["grad"], dtype=float), rtol=1e-12, atol=1e-15)
        for t in st["terms"]:
            assert t["upstream"] == nodes[t["successor_node"]]["grad"]
            if t["local"] is not None and np.size(t["upstream"]) == 1:
                np.testing.assert_allclose(
                    np.asarray(t["upstream"], dtype=float) * np.asarray(t["local"], dtype=float),
                    np.asarray(t["contribution"], dtype=float),
                    rtol=1e-12,
                )
    # every input reaching the output gets a backward step
    for name, i in ((n["name"], n["id"]) for n in ev["nodes"] if n["op"] == "input"):
        assert i in seen, name
    # the lecture's order: each node after every node it feeds (its successors), by its longest distance from the
    # output, then in the program's order
    order = [st["node"] for st in ex["backward"]]
    pos = {i: k for k, i in enumerate(order)}
    far: dict[int, int] = {}
    for st in ex["backward"]:
        succs = [t["successor_node"] for t in st["terms"]]
        assert all(pos[j] < pos[st["node"]] for j in succs), st
        far[st["node"]] = 1 + max((far[j] for j in succs), default=-1)
    assert order == sorted(order, key=lambda i: (far[i], i))


MLP = """
input x[3], W[4, 3], v[2, 4]
u = W @ x
h = tanh(u)
s = v @ h
L = sum(s^2)
"""


def test_tensor_program_shows_shapes_and_matrix_form_vjps():
    x = [1.0, -2.0, 0.5]
    W = [[0.1, 0.2, -0.3], [0.4, -0.5, 0.6], [0.7, 0.8, -0.9], [-0.1, 0.3, 0.2]]
    v = [[1.0, -1.0, 0.5, 0.25], [0.5, 0.5, -0.5, 2.0]]
    at = ["--at", f"x={x}", "--at", f"W={W}", "--at", f"v={v}"]
    r = run_cli("explain", "-", *at, input=MLP)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    text = r.stdout
    # the VJPs of matmul in matrix form, with shapes
    assert any(ln.startswith("  ∂L/∂W = ∂L/∂u · xᵀ, ‖∂L/∂W‖ = ") and "(4,) · (3,)ᵀ → (4, 3)" in ln for ln in lines)
    assert any(ln.startswith("  ∂L/∂h = vᵀ · ∂L/∂s = [") and "(2, 4)ᵀ · (2,) → (4,)" in ln for ln in lines)
    assert "  ∂L/∂u = ∂L/∂h ⊙ (1 - tanh(u)^2) = [" in text
    assert "  u = W @ x = " in text and "(4, 3) @ (3,) → (4,)" in text
    # large tensors by their norm, computed independently here
    Wn = np.linalg.norm(np.array(W))
    assert f"  ‖W‖ = {Wn:.6g}    shape (4, 3)" in lines
    e = json.loads(run_cli("eval", "-", *at, "--format", "json", input=MLP).stdout)
    gW = np.array(e["gradients"]["W"])
    assert f"‖∂L/∂W‖ = {np.linalg.norm(gW):.6g}" in text
    # and the gradient itself is the outer product the formula says (hand check of the formula)
    u = np.array(W) @ np.array(x)
    s = np.array(v) @ np.tanh(u)
    gu = (np.array(v).T @ (2 * s)) * (1 - np.tanh(u) ** 2)
    np.testing.assert_allclose(gW, np.outer(gu, x), rtol=1e-12)


def test_reassigned_names_get_subscripts_and_functions_use_ids():
    r = run_cli("explain", str(EXAMPLES / "unrolled.cg"))
    assert "  s₁ = h1 = 0.761594" in r.stdout
    assert "  ∂loss/∂s₃ = 2 · s₃ = 0.376803" in r.stdout
    r = run_cli("explain", str(EXAMPLES / "functions.cg"))
    assert "  %4 = qx - px = 1.5 - 1 = 0.5" in r.stdout
    assert "  %5 = %4 * %4 = 0.5 * 0.5 = 0.25" in r.stdout
    # a node used twice by one op: both operand slots in one term (d(u*u)/du = u + u)
    assert "      where ∂%5/∂%4 = %4 + %4 = 1" in r.stdout


def test_local_derivative_templates():
    prog = "q = a / b; p = a^b; e = exp(a); g = sigmoid(a); t = tanh(b); y = q + p + e + g + t"
    r = run_cli("explain", "-e", prog, "--at", "a=2,b=4")
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert "∂q/∂a = 1/b = 0.25" in text
    assert "∂q/∂b = -a/b^2 = -0.125" in text
    assert "∂p/∂a = b · a^(b - 1) = 32" in text
    assert f"∂p/∂b = a^b · ln(a) = {16 * np.log(2):.6g}" in text
    assert f"∂e/∂a = exp(a) = {np.exp(2):.6g}" in text
    sg = 1 / (1 + np.exp(-2))
    assert f"∂g/∂a = σ(a) · (1 - σ(a)) = {sg * (1 - sg):.6g}" in text
    assert f"∂t/∂b = 1 - tanh(b)^2 = {1 - np.tanh(4) ** 2:.6g}" in text
    r = run_cli("explain", "-e", "y = a - b", "--at", "a=1,b=2")
    assert "  ∂y/∂b = -1" in r.stdout.splitlines()


def test_relu_kink_is_noted():
    r = run_cli("explain", "-e", "r = relu(a); y = 3 * r", "--at", "a=0")
    assert r.returncode == 0
    assert "      where ∂r/∂a = [a > 0] = 0" in r.stdout
    assert "      note: r: relu'(0) is taken as 0" in r.stdout


def test_an_op_without_a_template_still_explains(monkeypatch):
    """A newly added op gets a numeric local derivative from its VJP at g = 1."""
    from cgraph_cli import ops
    from cgraph_cli.analysis import explain
    from cgraph_cli.errors import Source
    from cgraph_cli.run.program import run

    cube = ops.Op(
        "cube", lambda a: a**3, (lambda g, ans, a: 3 * g * a * a,), ops.same_shape, 1, "cube", elementwise=True
    )
    monkeypatch.setitem(ops.OPS, "cube", cube)
    monkeypatch.setitem(ops.FUNCTIONS, "cube", [(ops.Call("cube"), cube)])
    assert cube.local is None
    res = run(Source("c = cube(a); y = 2 * c"), {"a": np.array(2.0)})
    text = explain.to_text(explain.explain(res))
    assert "  c = cube(a) = cube(2) = 8" in text
    assert "  ∂y/∂a = ∂y/∂c · ∂c/∂a = 2 · 12 = 24" in text.splitlines()
    assert "      where ∂c/∂a = 12" in text.splitlines()
    # tensors too
    res = run(Source("c = cube(a); y = sum(c)"), {"a": np.array([1.0, 2.0])})
    text = explain.to_text(explain.explain(res))
    assert "  ∂y/∂a = ∂y/∂c ⊙ ∂c/∂a = [3, 12]    shape (2,)" in text
    # an op with neither template nor elementwise shape: the generic VJP form
    weird = replace(cube, name="weird", elementwise=False)
    monkeypatch.setitem(ops.OPS, "weird", weird)
    monkeypatch.setitem(ops.FUNCTIONS, "weird", [(ops.Call("weird"), weird)])
    res = run(Source("c = weird(a); y = sum(c)"), {"a": np.array([1.0, 2.0])})
    text = explain.to_text(explain.explain(res))
    assert "  ∂y/∂a = vjp_weird[0](∂y/∂c) = [3, 12]    shape (2,)" in text


def test_rich_output_has_the_same_text():
    from cgraph_cli.analysis import explain
    from cgraph_cli.errors import Source
    from cgraph_cli.run.program import run

    res = run(Source((EXAMPLES / "mlp.cg").read_text(), "mlp.cg"), {})
    ex = explain.explain(res)
    assert explain.to_rich(ex).plain + "\n" == explain.to_text(ex)


def test_bad_format_and_bad_input_are_errors():
    r = run_cli("explain", str(EXAMPLES / "lecture.cg"), "--format", "yaml")
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
    r = run_cli("explain", "-e", "z = x * y", "--at", "x=1")
    assert r.returncode == 2 and "missing value" in r.stderr


def test_help_has_examples():
    r = run_cli("explain", "--help")
    assert r.returncode == 0
    assert "cgraph explain examples/lecture.cg --at a=-1,b=3,c=4" in r.stdout


def test_long_steps_are_written_one_term_per_line():
    r = run_cli("explain", str(EXAMPLES / "unrolled.cg"))
    lines = r.stdout.splitlines()
    k = lines.index("  ∂loss/∂w = ∂loss/∂(w * h) · ∂(w * h)/∂w")
    assert lines[k + 1 : k + 5] == [
        "           + ∂loss/∂%9 · ∂%9/∂w",
        "           + ∂loss/∂%12 · ∂%12/∂w",
        "           = 0.0376205 · 0 + 0.179156 · 0.761594 + 0.363428 · (-0.118642)",
        "           = 0.0933267",
    ]
    doc = json.loads(run_cli("explain", str(EXAMPLES / "unrolled.cg"), "--format", "json").stdout)
    step = next(s for s in doc["backward"] if s["name"] == "w")
    assert step["formula"].startswith("∂loss/∂w = ∂loss/∂(w * h) · ∂(w * h)/∂w + ∂loss/∂%9")
    assert step["formula"].endswith("= 0.0933267")
    assert [t["successor"] for t in step["terms"]] == ["(w * h)", "%9", "%12"]


def test_named_constants_are_leaves_of_the_forward_pass():
    r = run_cli("explain", "-e", "x = [1, 2, 3]; w = 2; y = sum(w * x)")
    assert r.returncode == 0, r.stderr
    lines = [line.strip() for line in r.stdout.splitlines()]
    assert lines[1:5] == [
        "x = [1, 2, 3]    shape (3,)",
        "w = 2",
        "(w * x) = 2 * [1, 2, 3] = [2, 4, 6]    shapes () * (3,) → (3,)",
        "y = sum(w * x) = sum([2, 4, 6]) = 12    shapes (3,) → ()",
    ]
