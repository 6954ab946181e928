"""Keyword arguments of the built-in functions, end to end (issue 11, item 2), and the README's table
of functions against the op records.

Values are compared with numpy, gradients with finite differences (``cgraph check``) and with
numpy formulas; the same program written positionally and with keywords must build the same graph;
every reduction refuses an axis on a 0-d value with the same message (numpy's rule)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cgraph_cli.engine import evaluate
from cgraph_cli.engine.scalar import scalar_plan
from cgraph_cli.errors import Source
from cgraph_cli.ir.graph import format_ir
from cgraph_cli.ops import FUNCTIONS, signature
from cgraph_cli.run.program import compile_program, run
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent

X = np.array([[1.0, -2.0, 3.0], [0.5, 4.0, -1.5]])
T = np.arange(24.0).reshape(2, 3, 4) / 7 - 1.3


def _eval(src: str, **vals) -> tuple[float, dict]:
    res = run(Source(src), {k: np.asarray(v, dtype=float) for k, v in vals.items()})
    return float(res.values[res.out]), {n: res.grads[i] for n, i in res.graph.inputs.items()}


# -- values against numpy ---------------------------------------------------------------------------------------------

CASES = [
    ("sum(X, axis=1, keepdims=true)", lambda X: np.sum(X, axis=1, keepdims=True)),
    ("sum(X, axis=-1)", lambda X: np.sum(X, axis=-1)),
    ("sum(X, axis=(0, 1))", lambda X: np.sum(X, axis=(0, 1))),
    ("sum(X, (0, 1))", lambda X: np.sum(X, axis=(0, 1))),
    ("mean(X, axis=0, keepdims=true)", lambda X: np.mean(X, axis=0, keepdims=True)),
    ("max(X, axis=1)", lambda X: np.max(X, axis=1)),
    ("min(X, axis=0, keepdims=true)", lambda X: np.min(X, axis=0, keepdims=True)),
    ("max(X, keepdims=true)", lambda X: np.max(X, keepdims=True)),
    ("logsumexp(X, axis=1)", lambda X: np.log(np.sum(np.exp(X), axis=1))),
    ("softmax(X, axis=0)", lambda X: np.exp(X) / np.sum(np.exp(X), axis=0)),
    ("log_softmax(X, axis=1)", lambda X: X - np.log(np.sum(np.exp(X), axis=1, keepdims=True))),
    ("norm(X)", lambda X: np.linalg.norm(X)),
    ("norm(X, p=1)", lambda X: np.sum(np.abs(X))),
    ("norm(X, p=inf)", lambda X: np.max(np.abs(X))),
    ("norm(X, axis=1, p=1)", lambda X: np.linalg.norm(X, ord=1, axis=1)),
    ("norm(X, axis=0, keepdims=true)", lambda X: np.linalg.norm(X, axis=0, keepdims=True)),
    ("prod(X, axis=1)", lambda X: np.prod(X, axis=1)),
    ("prod(X, axis=(0, 1), keepdims=true)", lambda X: np.prod(X, axis=(0, 1), keepdims=True)),
    ("var(X)", lambda X: np.var(X)),
    ("var(X, ddof=1)", lambda X: np.var(X, ddof=1)),
    ("var(X, axis=1, ddof=1, keepdims=true)", lambda X: np.var(X, axis=1, ddof=1, keepdims=True)),
    ("std(X, axis=0)", lambda X: np.std(X, axis=0)),
    ("std(X, ddof=1)", lambda X: np.std(X, ddof=1)),
    ("cumsum(X, axis=1)", lambda X: np.cumsum(X, axis=1)),
    ("concat(X, X, axis=1)", lambda X: np.concatenate([X, X], axis=1)),
    ("stack(X, X, axis=-1)", lambda X: np.stack([X, X], axis=-1)),
    ("expand_dims(X, axis=1)", lambda X: np.expand_dims(X, 1)),
    ("squeeze(expand_dims(X, axis=0), axis=0)", lambda X: X),
    ("transpose(X)", lambda X: X.T),
    ("X - mean(X, axis=1, keepdims=true)", lambda X: X - np.mean(X, axis=1, keepdims=True)),
]


@pytest.mark.parametrize("expr,ref", CASES, ids=[c[0] for c in CASES])
def test_keyword_values_match_numpy(expr, ref):
    # w makes every entry of the result count with its own weight in the scalar that is differentiated
    want = np.asarray(ref(X))
    w = np.linspace(0.5, 1.5, want.size).reshape(want.shape)
    value, grads = _eval(f"y = sum(w * ({expr}))", X=X, w=w)
    assert value == pytest.approx(float(np.sum(w * want)), rel=1e-12, abs=1e-12)
    # the gradient against central differences of numpy's function
    num = np.zeros_like(X)
    for idx in np.ndindex(*X.shape):
        p, m = X.copy(), X.copy()
        p[idx] += 1e-6
        m[idx] -= 1e-6
        num[idx] = (np.sum(w * ref(p)) - np.sum(w * ref(m))) / 2e-6
    np.testing.assert_allclose(grads["X"], num, rtol=1e-5, atol=1e-7, err_msg=expr)


@pytest.mark.parametrize(
    "expr,ref",
    [
        ("sum(T, axis=(0, 2))", lambda T: np.sum(T, axis=(0, 2))),
        ("sum(T, axis=(-1, 0), keepdims=true)", lambda T: np.sum(T, axis=(-1, 0), keepdims=True)),
        ("max(T, axis=(1, 2))", lambda T: np.max(T, axis=(1, 2))),
        ("logsumexp(T, axis=(0, 1), keepdims=true)", lambda T: np.log(np.sum(np.exp(T), axis=(0, 1), keepdims=True))),
        ("var(T, axis=(0, 2), ddof=1)", lambda T: np.var(T, axis=(0, 2), ddof=1)),
        ("transpose(T, 2, 0, 1)", lambda T: np.transpose(T, (2, 0, 1))),
        ("permute(T, 1, 2, 0)", lambda T: np.transpose(T, (1, 2, 0))),
        ("transpose(T, -1, 0, 1)", lambda T: np.transpose(T, (2, 0, 1))),
        ("reshape(T[0:1, 0:1, 0:1], ())", lambda T: T[0, 0, 0]),
    ],
)
def test_three_dimensional_keywords(expr, ref):
    want = np.asarray(ref(T))
    w = np.linspace(-1, 2, want.size).reshape(want.shape)
    value, grads = _eval(f"y = sum(w * ({expr}))", T=T, w=w)
    assert value == pytest.approx(float(np.sum(w * want)), rel=1e-12, abs=1e-12)
    r = run_cli(
        "check",
        "-e",
        f"y = sum(w * {expr})",
        "--at",
        f"T={json.dumps(T.tolist())}",
        "--at",
        f"w={json.dumps(w.tolist())}",
    )
    assert r.returncode == 0, r.stdout + r.stderr


# -- the same graph, written either way -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "positional,keyword",
    [
        ("sum(X, 1)", "sum(X, axis=1)"),
        ("mean(X, 0)", "mean(X, axis=0)"),
        ("softmax(X, 0)", "softmax(X, axis=0)"),
        ("cumsum(X, 1)", "cumsum(X, axis=1)"),
        ("expand_dims(X, 0)", "expand_dims(X, axis=0)"),
        ("squeeze(X[0:1], 0)", "squeeze(X[0:1], axis=0)"),
        ("prod(X, -1)", "prod(X, axis=-1)"),
    ],
)
def test_positional_and_keyword_axis_build_the_same_graph(positional, keyword):
    vals = {"X": X}
    a = compile_program(Source(f"y = sum({positional})"), vals)
    b = compile_program(Source(f"y = sum({keyword})"), vals)
    assert a.attrs == b.attrs and a.ops == b.ops
    assert format_ir(a) == format_ir(b)


def test_max_with_axis_reduces_and_positional_max_stays_elementwise():
    value, grads = _eval("y = sum(max(X, axis=1))", X=X)
    assert value == float(np.sum(np.max(X, axis=1)))
    np.testing.assert_array_equal(grads["X"], (X == np.max(X, axis=1, keepdims=True)).astype(float))
    value, grads = _eval("y = sum(max(X, 1))", X=X)  # max of X and the number 1, entry by entry
    assert value == float(np.sum(np.maximum(X, 1)))
    np.testing.assert_array_equal(grads["X"], (X > 1) + 0.5 * (X == 1))  # X[0, 0] = 1 ties: shared


def test_keepdims_result_broadcasts_against_its_operand():
    value, grads = _eval("y = sum(square(X - mean(X, axis=1, keepdims=true)))", X=X)
    d = X - X.mean(axis=1, keepdims=True)
    assert value == pytest.approx(float(np.sum(d * d)), rel=1e-14)
    np.testing.assert_allclose(grads["X"], 2 * d, rtol=1e-12, atol=1e-14)


def test_ddof_1_is_pytorchs_unbiased_form():
    x = np.array([1.0, 2.0, 4.0, 7.0])
    value, grads = _eval("y = var(x, ddof=1) + std(x, ddof=1)", x=x)
    v = np.sum((x - x.mean()) ** 2) / 3
    assert value == pytest.approx(v + math.sqrt(v), rel=1e-14)
    want = 2 * (x - x.mean()) / 3 + (x - x.mean()) / (3 * math.sqrt(v))  # torch.var/std(unbiased=True) backward
    np.testing.assert_allclose(grads["x"], want, rtol=1e-13)


def test_norm_p_one_and_inf_gradients():
    x = np.array([-3.0, 1.0, 3.0, 0.0])
    _, g = _eval("y = norm(x, p=1)", x=x)
    np.testing.assert_array_equal(g["x"], [-1, 1, 1, 0])
    _, g = _eval("y = norm(x, p=inf)", x=x)
    np.testing.assert_array_equal(g["x"], [-0.5, 0, 0.5, 0])  # the tie at |-3| = |3| is shared, with signs


# -- errors -----------------------------------------------------------------------------------------------------------

AXIS_FUNCTIONS = sorted(
    {c.name for entries in FUNCTIONS.values() for c, _ in entries if "axis" in c.keywords}
    - {
        "stack",  # stack makes a new axis: axis=0 on 0-d operands is allowed
        "expand_dims",  # likewise
        "concat",  # not a reduction: a 0-d operand has no axis to join along (its own error)
    }
)
POSITIONAL_AXIS = {c.name for entries in FUNCTIONS.values() for c, _ in entries if c.static == "axis"}


@pytest.mark.parametrize("fname", AXIS_FUNCTIONS)
def test_an_axis_on_a_0d_value_is_the_same_error_everywhere(fname):
    r = run_cli("eval", "-e", f"y = sum({fname}(a, axis=0))", "--at", "a=2")
    assert r.returncode == 2, (fname, r.stdout)
    assert "axis 0 is out of range for a value with 0 dimensions" in r.stderr, r.stderr
    if fname in POSITIONAL_AXIS:  # an axis written positionally too
        r2 = run_cli("eval", "-e", f"y = sum({fname}(a, 0))", "--at", "a=2")
        assert r2.returncode == 2 and "axis 0 is out of range for a value with 0 dimensions" in r2.stderr, fname


@pytest.mark.parametrize(
    "src,needle",
    [
        ("y = norm(x, p=3)", "norm(x, p=3) is not supported: p is 1, 2 or inf"),
        ("y = norm(x, p=true)", "p is 1, 2 or inf"),
        ("y = var(x, ddof=-1)", "ddof must be a non-negative whole number, not -1"),
        ("y = sum(x, axis=0, keepdims=1)", "keepdims= is true or false, not 1"),
        ("y = sum(x, axis=(0, 0))", "axis (0, 0) names an axis twice"),
        ("y = sum(x, axis=1.5)", "an axis is a whole number, not 1.5"),
        ("y = sum(cumsum(x, axis=(0, 1)))", "cumsum runs along one axis, not (0, 1)"),
        ("y = sum(x, axis=2)", "axis 2 is out of range for a value with 1 dimension"),
        ("y = sum(softmax(x, axis=1))", "axis 1 is out of range for a value with 1 dimension"),
        ("y = sum(max(x, axis=0, keepdims=true))", None),
        ("y = sum(x, keepdim=true)", "sum() has no keyword argument keepdim=; it takes axis=, keepdims="),
        ("y = sum(exp(x, axis=0))", "has no keyword argument axis="),
        ("y = max(x, x, axis=0)", "max() takes axis= only with 1 argument, got 2"),
    ],
)
def test_keyword_errors(src, needle):
    r = run_cli("eval", "-e", src, "--at", "x=[1,2,3]")
    if needle is None:
        assert r.returncode == 0, r.stderr
        return
    assert r.returncode == 2, r.stdout
    assert needle in r.stderr, r.stderr
    assert r.stderr.startswith("error: <expr>:1:") and "^" in r.stderr and "Traceback" not in r.stderr


# -- comparisons and where through the language -----------------------------------------------------------------------


def test_comparisons_are_masks_without_gradient():
    x = np.array([1.0, 2.0, 3.0])
    for op, f in [
        ("<", np.less),
        ("<=", np.less_equal),
        (">", np.greater),
        (">=", np.greater_equal),
        ("==", np.equal),
        ("!=", np.not_equal),
    ]:
        value, g = _eval(f"y = sum((x {op} 2) * x)", x=x)
        assert value == float(np.sum(f(x, 2) * x)), op
        np.testing.assert_array_equal(g["x"], f(x, 2).astype(float), err_msg=op)  # only through the product
    value, g = _eval("y = sum(where(x >= 2, x * x, -x))", x=x)
    assert value == -1 + 4 + 9
    np.testing.assert_array_equal(g["x"], [-1, 4, 6])


def _balanced_sum(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    half = len(items) // 2
    return f"({_balanced_sum(items[:half])} + {_balanced_sum(items[half:])})"


# where and clip take three operands (the level-batched strategy hands them to the generic one); the comparisons,
# sign and the new one- and two-operand functions run level-batched
SCALAR_TERMS = [
    "where({a} < {b}, {a} * {b}, clip({a}, -0.5, {b})) + ({a} >= {b}) + sign({a} - {b}) * {k}",
    "({a} < {b}) * {a} + ({a} == {b}) + ({a} != {b}) * {b} + ({a} <= {b}) - ({a} > {b}) + sign({a}) * {k}",
    "logaddexp({a}, {b}) + erf({a}) + atan({b}) + sinh({a}) * cosh({b}) + expm1({a}) + log1p(abs({b})) + {k}",
    "asin(sin({a})) + acos(cos({b}) / 2) + prod({a}) + var({b}) + std({a}) + log_softmax({b}) + squeeze({a})",
]


@pytest.mark.parametrize("strategy", ["scalar", "levels", "auto"])
@pytest.mark.parametrize("term", SCALAR_TERMS)
def test_scalar_programs_of_the_new_functions_agree_in_every_strategy(strategy, term):
    lines = [f"t{k} = " + term.format(a=f"x{k % 5}", b=f"x{(k + 2) % 5}", k=k) for k in range(120)]
    lines.append("out = " + _balanced_sum([f"t{k}" for k in range(120)]))  # shallow: the graph is wide
    text = "\n".join(lines) + "\n"
    values = {f"x{k}": np.array(v) for k, v in enumerate([0.0, 1.0, -1.0, 0.5, 1.0])}
    g = compile_program(Source(text), values)
    plan = scalar_plan(g, values)
    assert plan is not None  # the fast strategies apply
    assert plan.batchable() == plan.wide(g.output) == ("where" not in term)
    ref = evaluate(g, values, strategy="generic")
    res = evaluate(compile_program(Source(text), values), values, strategy=strategy)
    for i in range(len(g)):
        assert np.array_equal(np.asarray(res.values[i], float), np.asarray(ref.values[i], float), equal_nan=True)
        if ref.grads[i] is None:
            assert res.grads[i] is None
        else:
            assert np.array_equal(np.asarray(res.grads[i], float), np.asarray(ref.grads[i], float), equal_nan=True)


@pytest.mark.parametrize("strategy", ["generic", "scalar", "levels", "auto", "compiled"])
def test_a_level_of_one_op_with_different_keywords_keeps_each_nodes_keywords(strategy, monkeypatch):
    """The level-batched strategy runs one op's nodes of a level at once: norm(p=1) and norm(p=2) of 1e200 differ
    (sqrt(1e200^2) overflows), and var of one entry with ddof=1 is 0/0."""
    monkeypatch.setenv("CGRAPH_ENGINE", strategy)
    n = 120
    terms = [f"norm(x{k}, p={'1' if k % 2 else '2'}) * 0 + var(x{k}, ddof={k % 2})" for k in range(n)]
    text = "y = " + " + ".join(terms) + "\n"
    values = {f"x{k}": np.array(1e200 if k % 3 else 2.0) for k in range(n)}
    res = run(Source(text), values)
    assert np.isnan(float(res.values[res.out]))  # the ddof=1 terms
    g = res.graph
    for i, (op, at) in enumerate(zip(g.ops, g.attrs)):
        if op == "norm":
            x = float(values[g.names[g.args[i][0]]])
            want = math.inf if (at or {}).get("p", 2) == 2 and x == 1e200 else abs(x)
            assert float(res.values[i]) == want, (at, x)
        if op == "var":
            assert (float(res.values[i]) == 0.0) == ((at or {}).get("ddof", 0) == 0)


# -- explain, pictures, check, the anomaly report ---------------------------------------------------------------------


def test_keywords_in_explain_and_pictures(tmp_path):
    prog = tmp_path / "kw.cg"
    prog.write_text(
        "input X[2, 3]\nm = mean(X, axis=1, keepdims=true)\ns = std(X, axis=(0, 1), ddof=1)\n"
        "y = sum(square(X - m)) + s + norm(X, p=inf)\n"
    )
    at = ["--at", f"X={json.dumps(X.tolist())}"]
    r = run_cli("explain", str(prog), *at)
    assert r.returncode == 0, r.stderr
    assert "m = mean(X, 1, keepdims=true)" in r.stdout
    assert "s = std(X, axis=(0, 1), ddof=1)" in r.stdout
    assert "norm(X, p=inf)" in r.stdout
    r = run_cli("render", str(prog), *at, "--format", "dot", "-o", "-")
    assert r.returncode == 0, r.stderr
    assert "mean axis=1 keepdims=true" in r.stdout and "std axis=(0, 1) ddof=1" in r.stdout
    assert "norm p=inf" in r.stdout
    r = run_cli("check", str(prog), *at)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize(
    "src,at,needle",
    [
        ("y = sum(clip(x, 0, 1))", "x=[0,0.5,1]", "clip is not differentiable at x = lo or x = hi"),
        ("y = prod(x)", "x=[0,2,3]", "prod where an entry is 0"),
        ("y = std(x)", "x=[1,1,1]", "std is not differentiable where all entries are equal"),
        ("y = sum((x < 1) * x)", "x=[1,2]", "a comparison '<' jumps from 0 to 1"),
        ("y = sum(sign(x))", "x=[0,2]", "sign jumps at 0"),
    ],
)
def test_check_names_the_new_kinks(src, at, needle):
    r = run_cli("check", "-e", src, "--at", at)
    assert needle in r.stdout + r.stderr, r.stdout + r.stderr


@pytest.mark.parametrize(
    "src,at,needle",
    [
        ("y = asin(x)", "x=2", "asin is defined only for -1 ≤ x ≤ 1"),
        ("y = log1p(x)", "x=-2", "log1p(x) is defined only for x > -1"),
        ("y = var(x, ddof=1)", "x=[3]", "var divides by n - ddof, which is 0 here"),
        ("y = acos(x)", "x=1", "the derivative of acos"),
    ],
)
def test_anomaly_hints_of_the_new_functions(src, at, needle):
    r = run_cli("eval", "-e", src, "--at", at)
    assert r.returncode == 0
    assert needle in r.stderr, r.stderr


# -- the README's table of functions ----------------------------------------------------------------------------------


def test_every_call_says_what_it_computes():
    for entries in FUNCTIONS.values():
        for call, op in entries:
            assert call.doc, f"{signature(call, op)}: no doc line for the README's table"


def test_readme_table_of_functions_is_the_registrys():
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "readme_functions.py"), "--check"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for entries in FUNCTIONS.values():
        for call, op in entries:
            row = f"| `{signature(call, op)}` |"
            assert row in readme, row
            line = next(ln for ln in readme.splitlines() if ln.startswith(row))
            for k in call.keywords:
                assert f"`{k}=`" in line


# -- the compiled-program cache keeps every keyword attribute ---------------------------------------------------------


def test_keyword_attributes_survive_the_cache(tmp_path, monkeypatch):
    from cgraph_cli import limits
    from cgraph_cli.run import cache

    monkeypatch.setenv("CGRAPH_CACHE_DIR", str(tmp_path / "ir"))
    monkeypatch.delenv("CGRAPH_NO_CACHE", raising=False)
    monkeypatch.setattr(limits, "CACHE_MIN_CHARS", 0)
    text = (
        "y = sum(T, axis=(0, 2), keepdims=true) + norm(T, p=inf) + var(T, axis=-1, ddof=1)[0, 0]"
        " + sum(transpose(T, 2, 0, 1)) + sum(softmax(T, axis=(1, 2)))\n"
    )
    src = Source(text, "kw.cg")
    first = compile_program(src, {"T": T})  # builds and stores
    loaded = cache.load(cache.key(src, {"T": T}, 0, "float64|None"), src)
    assert loaded is not None, "the cache refused its own entry"
    assert loaded.attrs == first.attrs and loaded.ops == first.ops
    assert any((at or {}).get("axis") == (0, 2) for at in loaded.attrs)


@pytest.mark.parametrize(
    "call, message, hint",
    [
        ("norm(x, 2)", "norm() takes 1 argument, got 2", "norm(…, axis=…, keepdims=…, p=…)"),
        ("var(x, 0, 1)", "var() takes 1 to 2 arguments, got 3", "var(…, axis=…, keepdims=…, ddof=…)"),
        ("sin(x, 2)", "sin() takes 1 argument, got 2", None),
    ],
)
def test_a_parameter_given_by_position_is_pointed_to_its_name(call, message, hint):
    """norm(x, 2) is numpy's spelling; cgraph takes p by name, and the error's hint says so (from the records'
    keywords; a function without keywords gets no hint)."""
    from tests.conftest import run_inproc

    r = run_inproc("eval", "-e", f"input x[3]\ny = {call}", "--at", "x=[1,2,3]")
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert lines[0] == f"error: <expr>:2:5: {message}"
    hints = [ln for ln in lines if ln.startswith("hint: ")]
    name = call.split("(")[0]
    assert hints == ([f"hint: {name}'s other parameters are given by name: {hint}"] if hint else [])
