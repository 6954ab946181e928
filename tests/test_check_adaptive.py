"""cgraph check's default: Richardson-extrapolated differences with an error estimate (issue 18).

No false alarm on correct gradients of smooth functions with large values, at minima, at a domain
boundary (``x^1.1`` at 0) or near one (``sqrt`` near 0); every injected VJP error is still caught
(by a factor, a sign, 1e-4 relative, one entry of a tensor); fixed settings stay available."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import EXAMPLES, run_cli
from tests.test_properties import expressions

X2 = "x^2"

# (name, program, point): smooth functions at minima, at large values, at ordinary points
SMOOTH = [
    ("rosenbrock-min", "y = (1 - a)^2 + 100 * (b - a^2)^2", {"a": 1.0, "b": 1.0}),
    ("rosenbrock", "y = (1 - a)^2 + 100 * (b - a^2)^2", {"a": -1.2, "b": 1.0}),
    ("beale-min", "y = (1.5 - a + a*b)^2 + (2.25 - a + a*b^2)^2 + (2.625 - a + a*b^3)^2", {"a": 3.0, "b": 0.5}),
    ("beale", "y = (1.5 - a + a*b)^2 + (2.25 - a + a*b^2)^2 + (2.625 - a + a*b^3)^2", {"a": -3.7, "b": 4.1}),
    (
        "goldstein-price-min",
        "p = 1 + (a + b + 1)^2 * (19 - 14*a + 3*a^2 - 14*b + 6*a*b + 3*b^2)\n"
        "q = 30 + (2*a - 3*b)^2 * (18 - 32*a + 12*a^2 + 48*b - 36*a*b + 27*b^2)\n"
        "y = p * q",
        {"a": 0.0, "b": -1.0},
    ),
    (
        "goldstein-price",
        "p = 1 + (a + b + 1)^2 * (19 - 14*a + 3*a^2 - 14*b + 6*a*b + 3*b^2)\n"
        "q = 30 + (2*a - 3*b)^2 * (18 - 32*a + 12*a^2 + 48*b - 36*a*b + 27*b^2)\n"
        "y = p * q",
        {"a": 1.7, "b": -1.3},
    ),
    ("schwefel", "y = 418.9829 * 2 - a * sin(sqrt(abs(a))) - b * sin(sqrt(abs(b)))", {"a": 300.5, "b": -200.25}),
    (
        "schwefel-min",
        "y = 418.9829 * 2 - a * sin(sqrt(abs(a))) - b * sin(sqrt(abs(b)))",
        {"a": 420.9687, "b": 420.9687},
    ),
    (
        "eggholder",
        "y = -(b + 47) * sin(sqrt(abs(a / 2 + b + 47))) - a * sin(sqrt(abs(a - (b + 47))))",
        {"a": 100.3, "b": -200.7},
    ),
    (
        "eggholder-min",
        "y = -(b + 47) * sin(sqrt(abs(a / 2 + b + 47))) - a * sin(sqrt(abs(a - (b + 47))))",
        {"a": 512.0, "b": 404.2319},
    ),
    ("himmelblau-min", "y = (a^2 + b - 11)^2 + (a + b^2 - 7)^2", {"a": 3.0, "b": 2.0}),
    ("himmelblau", "y = (a^2 + b - 11)^2 + (a + b^2 - 7)^2", {"a": -0.27, "b": -0.92}),
    ("styblinski-tang-min", "y = 0.5 * sum(x^4 - 16 * x^2 + 5 * x)", {"x": [-2.903534, -2.903534, -2.903534]}),
    ("styblinski-tang", "y = 0.5 * sum(x^4 - 16 * x^2 + 5 * x)", {"x": [4.9, -4.2, 0.3, 1e3]}),
    (
        "ackley",
        "y = -20 * exp(-0.2 * sqrt(0.5 * (a^2 + b^2))) - exp(0.5 * (cos(2*pi*a) + cos(2*pi*b))) + exp(1) + 20",
        {"a": 1.3, "b": -0.7},
    ),
    ("pow-1.1-at-0", "L = sum(x^1.1)", {"x": [0.0, 0.5, 2.0, 0.0]}),
    ("sqrt-near-0", "y = sum(sqrt(x))", {"x": [1e-4, 1e-6, 0.01, 3e-8, 1e-12, 1e-15]}),
    ("log-near-0", "y = sum(log(x))", {"x": [1e-3, 1e-9, 1e-12, 1e-200]}),
    ("big-values", "y = 1e8 * sum(exp(x)) + 1e12", {"x": [1.0, 2.0, -3.0]}),
    ("tiny-slope", "y = 1000 + 0.0000001 * a", {"a": 1.0}),
]


def _check(prog, point, **kw):
    from cgraph_cli.analysis.check import check_gradients
    from cgraph_cli.errors import Source
    from cgraph_cli.run.program import compile_program
    from cgraph_cli.run.values import bind_inputs

    given_ = {k: np.asarray(v, dtype=float) for k, v in point.items()}
    g = compile_program(Source(prog), given_)
    return check_gradients(g, bind_inputs(g, given_), **kw)


def _at(point):
    return ["--at", ",".join(f"{k}={json.dumps(v)}" for k, v in point.items())]


@pytest.mark.parametrize("name,prog,point", SMOOTH, ids=[s[0] for s in SMOOTH])
def test_no_false_alarm_on_smooth_functions(name, prog, point):
    rep = _check(prog, point)
    bad = [
        (c.entry_name(k), c.analytic[k], c.numeric[k], c.error[k]) for c in rep.inputs for k in np.flatnonzero(~c.ok)
    ]
    assert rep.passed, bad
    for c in rep.inputs:
        assert np.all(np.isfinite(c.numeric)) and np.all(np.isfinite(c.error)) and np.all(c.error >= 0)


def test_the_issue_false_alarms_pass_on_the_command_line():
    for name in ("pow-1.1-at-0", "schwefel", "eggholder", "goldstein-price-min"):
        _, prog, point = next(s for s in SMOOTH if s[0] == name)
        r = run_cli("check", "-e", prog, *_at(point))
        assert r.returncode == 0, (name, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr


def test_error_estimate_is_honest_and_small():
    """The estimate covers the true error of the numeric derivative, and is small enough to catch 1e-4."""
    rep = _check("y = sum(sin(3 * x) * exp(x))", {"x": [0.1, -1.3, 2.0, 7.5]})
    x = np.array([0.1, -1.3, 2.0, 7.5])
    truth = 3 * np.cos(3 * x) * np.exp(x) + np.sin(3 * x) * np.exp(x)
    c = rep.inputs[0]
    assert np.all(np.abs(c.numeric - truth) <= c.error + 1e-15)
    assert np.all(c.error <= 1e-7 * np.abs(truth))


def test_domain_boundary_uses_a_one_sided_difference_and_says_so():
    rep = _check("L = sum(x^1.1)", {"x": [0.0, 1.0]})
    c = rep.inputs[0]
    assert rep.passed
    assert c.method[0].startswith("one-sided") and c.method[1] == "central"
    r = run_cli("check", "-e", "L = sum(x^1.1)", "--at", "x=[0, 1]")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "one-sided" in r.stdout  # said in the row
    doc = json.loads(run_cli("check", "-e", "L = sum(x^1.1)", "--at", "x=[0, 1]", "-f", "json").stdout)
    e0, e1 = doc["inputs"][0]["entries"]
    assert e0["method"].startswith("one-sided") and e1["method"] == "central"
    assert e0["ok"] and e1["ok"] and e0["error_estimate"] >= 0


def test_json_has_the_old_keys_and_the_estimate():
    r = run_cli("check", str(EXAMPLES / "lecture.cg"), "--format", "json")
    doc = json.loads(r.stdout)
    assert r.returncode == 0
    for key in ("output", "value", "eps", "rtol", "atol", "passed", "checked", "size", "sampled", "failed", "kinks"):
        assert key in doc, key
    assert doc["method"] == "richardson"
    e = doc["inputs"][0]["entries"][0]
    for key in ("entry", "index", "analytic", "numeric", "abs_error", "rel_error", "roundoff", "ok"):
        assert key in e, key
    assert e["error_estimate"] >= 0 and e["method"] == "central" and e["step"] > 0
    assert "max_error_estimate" in doc["inputs"][0]


def test_table_shows_the_estimate_column():
    r = run_cli("check", str(EXAMPLES / "lecture.cg"), "--at", "a=-1,b=3,c=4")
    assert r.returncode == 0
    assert "± est." in r.stdout
    assert "ok: all 3 gradient entries of z match finite differences (Richardson" in r.stdout


def test_fixed_settings_when_asked():
    """--eps/--rtol/--atol switch to today's fixed-step central difference and fixed tolerances."""
    prog, point = "y = 1000 + 0.0000001 * a", {"a": 1.0}
    assert _check(prog, point).passed  # the default no longer cries wolf on round-off
    r = run_cli("check", "-e", prog, *_at(point), "--eps", "1e-6")
    assert r.returncode == 1 and "eps 1e-06, rtol 1e-05, atol 1e-08)" in r.stdout
    doc = json.loads(run_cli("check", "-e", prog, *_at(point), "--atol", "1e-8", "-f", "json").stdout)
    assert doc["method"] == "fixed" and doc["eps"] == 1e-6 and doc["passed"] is False
    doc = json.loads(run_cli("check", "-e", prog, *_at(point), "--eps", "1e-2", "-f", "json").stdout)
    assert doc["method"] == "fixed" and doc["passed"] is True


def test_relu_kink_still_fails_honestly():
    r = run_cli("check", "-e", "y = relu(a)", "--at", "a=0")
    assert r.returncode == 1 and "FAIL" in r.stdout
    assert "relu is not differentiable at 0" in r.stderr
    rep = _check("y = relu(a)", {"a": 0.0})
    assert not rep.passed and rep.kinks and abs(rep.inputs[0].numeric[0] - 0.5) < 1e-9


# -- mutations: a wrong VJP is caught -------------------------------------------------------------


def _broken(monkeypatch, op, k, wrap):
    from cgraph_cli import ops

    monkeypatch.setenv("CGRAPH_ENGINE", "generic")  # the op table's rules (fast kernels are separate)
    good = ops.OPS[op]
    vjp = list(good.vjp)
    inner = vjp[k]
    vjp[k] = lambda g, ans, *xs: wrap(inner(g, ans, *xs))
    monkeypatch.setitem(ops.OPS, op, replace(good, vjp=tuple(vjp)))


MUTATIONS = {
    "factor": lambda v: 1.5 * v,
    "sign": lambda v: -v,
    "1e-4 relative": lambda v: v * (1 + 1e-4),
}


@pytest.mark.parametrize("how", list(MUTATIONS))
@pytest.mark.parametrize(
    "prog,point,op",
    [
        ("y = sum(sin(x) * x)", {"x": [0.3, -1.2, 2.5]}, "sin"),
        ("y = (1 - a)^2 + 100 * (b - a^2)^2", {"a": -1.2, "b": 1.0}, "sub"),
        ("y = 418.9829 - a * sin(sqrt(abs(a)))", {"a": 300.5}, "sqrt"),
        ("y = sum(exp(x))", {"x": [1.0, 2.0, 3.0]}, "exp"),
    ],
    ids=["sin", "rosenbrock-sub", "schwefel-sqrt", "exp"],
)
def test_a_wrong_vjp_is_caught(monkeypatch, how, prog, point, op):
    assert _check(prog, point).passed
    _broken(monkeypatch, op, 0, MUTATIONS[how])
    rep = _check(prog, point)
    assert not rep.passed, how


def test_a_wrong_vjp_in_one_entry_of_a_tensor_is_caught(monkeypatch):
    def one_entry(v):
        v = np.array(v, dtype=float, copy=True)
        v.reshape(-1)[2] *= 1 + 1e-4
        return v

    prog, point = "y = sum(tanh(x) * x)", {"x": [0.3, -1.2, 2.5, 0.7, -0.1]}
    assert _check(prog, point).passed
    _broken(monkeypatch, "tanh", 0, one_entry)
    c = _check(prog, point).inputs[0]
    assert list(np.flatnonzero(~c.ok)) == [2]


def test_mutation_is_caught_on_the_command_line(monkeypatch):
    # the wrong mul rule of the lecture example: the CLI exits 1 (in-process, the patch applies)
    from tests.conftest import run_inproc

    _broken(monkeypatch, "mul", 1, lambda v: v * (1 + 1e-4))
    r = run_inproc("check", str(EXAMPLES / "lecture.cg"))
    assert r.returncode == 1, r.stdout
    assert "FAILED" in r.stdout


# -- property: random smooth programs -------------------------------------------------------------

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def smooth_programs(draw):
    names = ["a", "b", "c"]
    expr = draw(expressions(names, 3, {}))
    point = {n: draw(st.floats(-3, 3, allow_nan=False, allow_infinity=False)) for n in names}
    scale = draw(st.sampled_from([1.0, 1e3, 1e6]))
    return f"y = {scale} * ({expr}) + {scale} + 0 * (a + b + c)", point


@SETTINGS
@given(smooth_programs())
def test_no_false_alarm_at_random_smooth_points(case):
    prog, point = case
    rep = _check(prog, point)
    bad = [
        (c.entry_name(k), c.analytic[k], c.numeric[k], c.error[k]) for c in rep.inputs for k in np.flatnonzero(~c.ok)
    ]
    assert rep.passed, (prog, point, bad)


@SETTINGS
@given(smooth_programs(), st.sampled_from(list(MUTATIONS)))
def test_every_injected_error_is_found(case, how):
    """Make each input's gradient wrong after the fact: the verdict must fail it wherever it is not 0."""
    from cgraph_cli.analysis import check as check_mod

    prog, point = case
    for c in _check(prog, point).inputs:
        a = c.analytic[0]
        if not np.isfinite(a) or abs(a) < 1e-6 or c.error[0] > 1e-6 * abs(a):
            continue  # a gradient of 0 (the input is not used) or one its estimate cannot resolve
        ok = check_mod.verdict(np.array([MUTATIONS[how](a)]), c.numeric, c.error, check_mod.RTOL)
        assert not ok[0], (prog, point, c.name, how, a, c.numeric[0], c.error[0])


@SETTINGS
@given(
    smooth_programs(),
    st.sampled_from(["sin", "cos", "tanh", "exp", "mul", "add", "div", "pow"]),
    st.sampled_from(list(MUTATIONS)),
)
def test_every_wrong_vjp_is_found(case, op, how):
    """Break one op's VJP in a random smooth program: every entry whose gradient it changes fails."""
    import os

    from cgraph_cli import ops

    prog, point = case
    good = _check(prog, point)
    assert good.passed
    saved, env = ops.OPS[op], os.environ.get("CGRAPH_ENGINE")
    vjp = list(saved.vjp)
    vjp[0] = lambda g, ans, *xs, _f=vjp[0]: MUTATIONS[how](_f(g, ans, *xs))
    try:
        os.environ["CGRAPH_ENGINE"] = "generic"
        ops.OPS[op] = replace(saved, vjp=tuple(vjp))
        bad = _check(prog, point)
    finally:
        ops.OPS[op] = saved
        if env is None:
            os.environ.pop("CGRAPH_ENGINE", None)
        else:
            os.environ["CGRAPH_ENGINE"] = env
    for c0, c1 in zip(good.inputs, bad.inputs):
        changed = abs(c1.analytic[0] - c0.analytic[0])
        # detectable: a change above the error estimate of either run (the verdict allows the broken run's own)
        if changed > 1e-6 * abs(c0.analytic[0]) and changed > 10 * max(c0.error[0], c1.error[0]):
            assert not c1.ok[0], (prog, point, op, how, c0.analytic[0], c1.analytic[0], c1.numeric[0], c1.error[0])


# -- --method complex -----------------------------------------------------------------------------


def test_complex_step_records_are_true():
    """Every op whose record says complex_step: Im fwd(x + ih)/h is its VJP (so the check can trust it)."""
    from cgraph_cli.ops import OPS, unbroadcast
    from tests.test_ops_fd import sample_operands

    flagged = [op for op in OPS.values() if op.complex_step]
    assert {"add", "mul", "exp", "sin", "pow", "matmul", "sum"} <= {op.name for op in flagged}
    assert not any(OPS[n].complex_step for n in ("abs", "relu", "maximum", "amax", "norm", "atan2"))
    for op in flagged:
        attrs = dict(op.test_attrs or {})
        xs = sample_operands(op)
        ans = np.asarray(op.fwd(*xs, **attrs))
        cot = np.random.default_rng(1).uniform(0.5, 1.5, size=ans.shape)
        for k in range(len(xs)):
            analytic = unbroadcast(op.vjp_for(k)(cot, ans, *xs, **attrs), np.shape(xs[k]), op.name)
            got = np.zeros(np.shape(xs[k]))
            for idx in np.ndindex(*np.shape(xs[k])):
                zs = [np.array(x, dtype=complex) for x in xs]
                zs[k][idx] += 1e-20j
                got[idx] = np.imag(np.sum(cot * op.fwd(*zs, **attrs))) / 1e-20
            np.testing.assert_allclose(got, analytic, rtol=1e-10, atol=1e-12, err_msg=op.name)


@pytest.mark.parametrize("name,prog,point", SMOOTH, ids=[s[0] for s in SMOOTH])
def test_complex_step_no_false_alarm_or_a_clear_refusal(name, prog, point):
    from cgraph_cli.errors import CgraphError

    try:
        rep = _check(prog, point, method="complex")
    except CgraphError as e:
        assert "abs" in str(e) and "not analytic" in str(e)
        return
    assert rep.passed and rep.method == "complex"


def test_complex_step_on_the_command_line():
    r = run_cli("check", "-e", "y = sum(exp(x) * sin(x))", "--at", "x=[1,2,3]", "--method", "complex", "-f", "json")
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["method"] == "complex"
    for e in doc["inputs"][0]["entries"]:
        x = [1, 2, 3][e["index"][0]]
        assert e["method"] == "complex step"
        assert abs(e["numeric"] - np.exp(x) * (np.sin(x) + np.cos(x))) <= 1e-14 * np.exp(x) * 4
        assert e["error_estimate"] < 1e-12 * abs(e["numeric"])
    # a non-analytic op on the path: refused, naming it
    r = run_cli("check", "-e", "y = relu(a) * a", "--at", "a=1", "--method", "complex")
    assert r.returncode == 2 and "relu (line 1, column 5) is not analytic" in r.stderr, r.stderr
    r = run_cli("check", str(EXAMPLES / "lecture.cg"), "--method", "complex", "--eps", "1e-3")
    assert r.returncode == 2 and "cannot be combined" in r.stderr
    r = run_cli("check", str(EXAMPLES / "lecture.cg"), "--method", "forward")
    assert r.returncode == 2 and r.stderr.startswith("error:")


@pytest.mark.parametrize("how", list(MUTATIONS))
def test_complex_step_catches_a_wrong_vjp(monkeypatch, how):
    prog, point = "y = sum(sin(x) * x) + 1e6", {"x": [0.3, -1.2, 2.5]}
    assert _check(prog, point, method="complex").passed
    _broken(monkeypatch, "sin", 0, MUTATIONS[how])
    rep = _check(prog, point, method="complex")
    assert not rep.inputs[0].ok.any(), how


@SETTINGS
@given(smooth_programs())
def test_complex_step_no_false_alarm_at_random_smooth_points(case):
    from cgraph_cli.errors import CgraphError

    prog, point = case
    try:
        rep = _check(prog, point, method="complex")
    except CgraphError:
        return  # abs, relu, max on the path
    bad = [
        (c.entry_name(k), c.analytic[k], c.numeric[k], c.error[k]) for c in rep.inputs for k in np.flatnonzero(~c.ok)
    ]
    assert rep.passed, (prog, point, bad)


@pytest.mark.parametrize("prog", ["y = relu(a)", "y = abs(a) * 3", "y = max(a, 2*a*a)", "y = relu(a) * sin(a)"])
@pytest.mark.parametrize("a", [1e-3, 1e-4, 1e-6, 1e-7, 1e-8, -1e-5])
def test_near_a_kink_but_not_on_it_no_false_alarm(prog, a):
    """The stencil first crosses the kink; smaller steps leave it out, and the tightest estimate counts."""
    rep = _check(prog, {"a": a})
    c = rep.inputs[0]
    assert rep.passed, (c.analytic, c.numeric, c.error)


@pytest.mark.parametrize("method", ["richardson", "complex"])
def test_no_false_alarm_when_the_output_cancels(method):
    """y = c + (cos(pi) - c) + 1 is about 0 with the round-off of c: the estimate scales with the values on
    the way, not with |y| (hypothesis found this: numeric -6e-13 against an estimate of 4e-14)."""
    prog = "y = 1.0 * ((c) + ((cos(pi)) - (c))) + 1.0 + 0 * (a + b + c)"
    assert _check(prog, {"a": 0.0, "b": 0.0, "c": 1.05012936036798}, method=method).passed
