"""cgraph check: finite differences against the backward pass; kinks; a wrong VJP is caught."""

import json
import re
from dataclasses import replace

import numpy as np
import pytest

from tests.conftest import EXAMPLES, run_cli

FILES = sorted(EXAMPLES.glob("*.cg"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_example_passes(path):
    r = run_cli("check", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1].startswith(("ok: all ", "ok: the "))  # ("the": one entry)
    assert r.stderr == ""


def test_lecture_table_and_json():
    r = run_cli("check", str(EXAMPLES / "lecture.cg"), "--at", "a=-1,b=3,c=4")
    assert r.returncode == 0
    assert "∂z/∂input: 3 entries of a, b, c: ok" in r.stdout and "pass" in r.stdout and "FAIL" not in r.stdout
    assert "ok: all 3 gradient entries of z match finite differences" in r.stdout
    r = run_cli("check", str(EXAMPLES / "lecture.cg"), "--format", "json")
    doc = json.loads(r.stdout)
    assert doc["passed"] is True and doc["checked"] == 3 and doc["failed"] == 0 and doc["kinks"] == []
    got = {c["name"]: c["entries"][0] for c in doc["inputs"]}
    # hand values from the lecture
    for name, want in (("a", 7.0), ("b", 9.0), ("c", 2.0)):
        assert got[name]["analytic"] == want
        assert abs(got[name]["numeric"] - want) < 1e-6
        assert got[name]["ok"] is True


def test_relu_at_its_kink_fails_and_names_the_kink():
    r = run_cli("check", "-e", "y = relu(a)", "--at", "a=0")
    assert r.returncode == 1
    assert "FAIL" in r.stdout and r.stdout.splitlines()[-1].startswith("FAILED: 1 of 1")
    assert "non-differentiable" in r.stdout
    # the warning names the node, its line and column, and the op's kink
    assert "warning: <expr>:1:5: y sits on a kink (a = 0): relu is not differentiable at 0" in r.stderr
    assert "y = relu(a)" in r.stderr and "^" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli("check", "-e", "y = relu(a)", "--at", "a=0", "--format", "json")
    doc = json.loads(r.stdout)
    assert r.returncode == 1 and doc["passed"] is False
    e = doc["inputs"][0]["entries"][0]
    assert e["analytic"] == 0.0 and abs(e["numeric"] - 0.5) < 1e-9  # one-sided slopes 0 and 1 average to 1/2
    assert doc["kinks"][0]["op"] == "relu" and doc["kinks"][0]["line"] == 1


def test_away_from_the_kink_relu_passes():
    assert run_cli("check", "-e", "y = relu(a)", "--at", "a=0.5").returncode == 0
    assert run_cli("check", "-e", "y = relu(a)", "--at", "a=-0.5").returncode == 0


def test_other_kinks_are_named():
    from cgraph_cli.analysis.check import check_gradients
    from cgraph_cli.errors import Source
    from cgraph_cli.run.program import compile_program
    from cgraph_cli.run.values import bind_inputs

    def kinks(prog, **vals):
        given = {k: np.asarray(v, dtype=float) for k, v in vals.items()}
        g = compile_program(Source(prog), given)
        rep = check_gradients(g, bind_inputs(g, given))
        return rep, [(k.op, k.line) for k in rep.kinks]

    # abs at 0: the central difference is symmetric (0, as cgraph's convention), but the kink is still named
    rep, ks = kinks("t = 2 * a\ny = abs(a) + 1", a=0)
    assert ks == [("abs", 2)] and rep.passed
    rep, ks = kinks("y = abs(a) + a", a=0)
    assert ks == [("abs", 1)] and rep.passed
    # ties of max: the even split is exactly the central difference of max of two lines, so it passes, named
    rep, ks = kinks("y = max(a, 2 * b)", a=2, b=1)
    assert ks == [("maximum", 1)] and rep.passed
    rep, ks = kinks("y = max(x)", x=[1, 3, 3])
    assert ks == [("amax", 1)] and rep.passed
    # relu's convention (0) is not the central difference (1/2): it fails, named
    rep, ks = kinks("u = 2 * a\nv = relu(u)\ny = v * 3", a=0)
    assert ks == [("relu", 2)] and not rep.passed
    assert rep.kinks[0].label == "v" and "u = 0" in rep.kinks[0].message
    rep, ks = kinks("y = max(a, b)", a=1, b=2)
    assert ks == [] and rep.passed


def test_a_wrong_vjp_is_caught(monkeypatch):
    """Break mul's gradient for its second operand: check must see it, and only there."""
    from cgraph_cli import ops
    from cgraph_cli.analysis.check import check_gradients
    from cgraph_cli.errors import Source
    from cgraph_cli.run.program import compile_program
    from cgraph_cli.run.values import bind_inputs

    monkeypatch.setenv("CGRAPH_ENGINE", "generic")  # the op table's rules (fast scalar kernels are separate)
    good = ops.OPS["mul"]
    bad = replace(good, vjp=(good.vjp[0], lambda g, ans, a, b: 1.01 * g * a))
    monkeypatch.setitem(ops.OPS, "mul", bad)
    src = Source((EXAMPLES / "lecture.cg").read_text(), "lecture.cg")
    g = compile_program(src, {})
    rep = check_gradients(g, bind_inputs(g, {}))
    assert not rep.passed
    by = {c.name: c for c in rep.inputs}
    # z = x * y: the broken rule is dz/dy, which reaches b and c; dz/da goes through dz/dx only
    assert bool(by["a"].ok.all())
    assert not by["b"].ok.any() and not by["c"].ok.any()
    np.testing.assert_allclose(by["c"].numeric, [2.0], rtol=1e-6)  # the truth, from finite differences
    np.testing.assert_allclose(by["c"].analytic, [2.02])
    assert rep.kinks == []


def test_hand_derivative_of_a_cube_and_wrt():
    r = run_cli("check", "-e", "y = sum(x^3)", "--at", "x=[1,-2,0.5]", "--format", "json")
    doc = json.loads(r.stdout)
    assert r.returncode == 0
    nums = [e["numeric"] for e in doc["inputs"][0]["entries"]]
    np.testing.assert_allclose(nums, [3.0, 12.0, 0.75], rtol=1e-8)
    r = run_cli("check", str(EXAMPLES / "mlp.cg"), "--wrt", "W2,b2", "--format", "json")
    doc = json.loads(r.stdout)
    assert [c["name"] for c in doc["inputs"]] == ["W2", "b2"]
    assert doc["checked"] == 10


def test_mlp_check_and_samples_agree_with_eval():
    r = run_cli("check", str(EXAMPLES / "mlp.cg"), "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["checked"] == 3 + 2 + 12 + 4 + 8 + 2
    ev = json.loads(run_cli("eval", str(EXAMPLES / "mlp.cg"), "--format", "json").stdout)
    W1 = next(c for c in doc["inputs"] if c["name"] == "W1")
    analytic = np.zeros((4, 3))
    for e in W1["entries"]:
        analytic[tuple(e["index"])] = e["analytic"]
    np.testing.assert_array_equal(analytic, np.array(ev["gradients"]["W1"]))
    # sampled: N entries per input, the same ones for the same seed
    r1 = run_cli("check", str(EXAMPLES / "mlp.cg"), "--samples", "3", "--format", "json")
    r2 = run_cli("check", str(EXAMPLES / "mlp.cg"), "--samples", "3", "--format", "json")
    d1, d2 = json.loads(r1.stdout), json.loads(r2.stdout)
    assert r1.returncode == 0 and d1 == d2
    W1s = next(c for c in d1["inputs"] if c["name"] == "W1")
    assert W1s["checked"] == 3 and W1s["sampled"] is True and W1s["size"] == 12
    assert len({tuple(e["index"]) for e in W1s["entries"]}) == 3
    t = next(c for c in d1["inputs"] if c["name"] == "t")
    assert t["checked"] == 2 and t["sampled"] is False


def test_large_input_table_is_abbreviated():
    r = run_cli("check", "-e", "y = sum(tanh(x))", "--at", "x=" + str([0.1 * k for k in range(40)]))
    assert r.returncode == 0
    assert "more" in r.stdout and r.stdout.count("pass") < 40


def test_usage_errors_exit_2():
    for args in (
        ("--wrt", "zz"),
        ("--eps", "0"),
        ("--samples", "0"),
        ("--format", "csv"),
        ("--at", "q=1"),
    ):
        r = run_cli("check", str(EXAMPLES / "lecture.cg"), *args)
        assert r.returncode == 2, args
        assert r.stderr.startswith("error:") and "Traceback" not in r.stderr, args
    r = run_cli("check", str(EXAMPLES / "lecture.cg"), "--wrt", "bb")
    assert "did you mean 'b'" in r.stderr


def test_help_has_examples():
    r = run_cli("check", "--help")
    assert r.returncode == 0 and "cgraph check -e 'y = relu(a)' --at a=0" in r.stdout


def test_roundoff_limited_failures_are_explained():
    # fixed settings: f = 1000 + 1e-7 a is known to ~1e-13, so (f+ - f-) / 2e-6 cannot resolve 1e-7 to within atol
    prog = "y = 1000 + 0.0000001 * a"
    r = run_cli("check", "-e", prog, "--at", "a=1", "--eps", "1e-6")
    assert r.returncode == 1
    assert "differ by less than the finite differences' own round-off" in r.stdout
    assert "larger --eps" in r.stdout
    r = run_cli("check", "-e", prog, "--at", "a=1", "--eps", "1e-2", "--format", "json")
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["passed"]
    assert abs(doc["inputs"][0]["entries"][0]["numeric"] - 1e-7) < 1e-11
    # the default takes the round-off into its error estimate: no false alarm
    r = run_cli("check", "-e", prog, "--at", "a=1", "--format", "json")
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["passed"] and doc["method"] == "richardson"
    e = doc["inputs"][0]["entries"][0]
    assert abs(e["numeric"] - 1e-7) <= e["error_estimate"]


def test_wrt_with_a_short_misspelt_name_suggests_the_input():
    r = run_cli("check", str(EXAMPLES / "mlp.cg"), "--wrt", "W9")
    assert r.returncode == 2
    assert "error: --wrt: 'W9' is not an input of the program" in r.stderr
    assert re.search(r"hint: did you mean 'W[12]'\?", r.stderr), r.stderr
