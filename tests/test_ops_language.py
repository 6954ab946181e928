"""The op records issue 11 adds or extends, tested through the ops layer (values against numpy and
hand values, VJPs against finite differences at more shapes and attributes than the registry-driven
tests use, kink conventions against PyTorch's) and through the language where today's syntax
writes them (positional arguments); the keyword syntax is tested in tests/test_keywords.py."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from cgraph_cli.errors import CgraphError, Source
from cgraph_cli.ops import OPS, pick_call
from cgraph_cli.run.program import run
from tests.conftest import run_cli
from tests.test_ops_fd import check_op

# -- VJPs against finite differences at more shapes and attributes --------------------------------------------------


@pytest.mark.parametrize(
    "name,shapes,attrs",
    [
        ("sum", ((2, 3, 4),), {"axis": (0, 2)}),
        ("sum", ((2, 3, 4),), {"axis": (-1, 0), "keepdims": True}),
        ("sum", ((2, 3),), {"axis": 1, "keepdims": True}),
        ("sum", ((2, 3),), {"keepdims": True}),
        ("sum", ((),), {"keepdims": True}),
        ("mean", ((2, 3, 4),), {"axis": (1, 2)}),
        ("mean", ((2, 3),), {"axis": -1, "keepdims": True}),
        ("amax", ((2, 3),), {"axis": 1}),
        ("amax", ((2, 3, 2),), {"axis": (0, 2), "keepdims": True}),
        ("amin", ((2, 3),), {"axis": 0, "keepdims": True}),
        ("amin", ((3, 2),), {"keepdims": True}),
        ("logsumexp", ((2, 3, 2),), {"axis": (0, 1)}),
        ("logsumexp", ((2, 3),), {"axis": 1, "keepdims": True}),
        ("norm", ((2, 3),), {"axis": 1}),
        ("norm", ((2, 3),), {"p": 1}),
        ("norm", ((2, 3),), {"p": math.inf, "axis": 0, "keepdims": True}),
        ("norm", ((4,),), {"p": math.inf}),
        ("norm", ((2, 3),), {"p": 1.0, "axis": (0, 1)}),
        ("prod", ((2, 3),), {}),
        ("prod", ((2, 3, 2),), {"axis": (0, 2), "keepdims": True}),
        ("prod", ((4,),), {"axis": 0}),
        ("prod", ((),), {}),
        ("var", ((2, 3),), {}),
        ("var", ((2, 3, 2),), {"axis": (0, 2), "keepdims": True, "ddof": 1}),
        ("std", ((2, 3),), {"ddof": 1}),
        ("std", ((2, 3),), {"axis": 1, "keepdims": True}),
        ("softmax", ((2, 3, 2),), {"axis": (0, 2)}),
        ("log_softmax", ((2, 3),), {}),
        ("log_softmax", ((4,),), {}),
        ("log_softmax", ((2, 3, 2),), {"axis": 1}),
        ("log_softmax", ((),), {}),
        ("cumsum", ((2, 3),), {"axis": -2}),
        ("transpose", ((2, 3, 4),), {"dims": (1, 2, 0)}),
        ("transpose", ((2, 3, 4),), {"dims": (-1, 0, 1)}),
        ("transpose", ((2, 3),), {"dims": (0, 1)}),
        ("expand_dims", ((3,),), {"axis": 0}),
        ("expand_dims", ((2, 3),), {"axis": (0, -1)}),
        ("expand_dims", ((),), {"axis": 0}),
        ("squeeze", ((1, 3, 1),), {}),
        ("squeeze", ((1, 3, 1),), {"axis": -1}),
        ("squeeze", ((1,),), {"axis": 0}),
        ("concat", ((2, 3), (2, 1)), {"axis": 1}),
        ("concat", ((3,), (2,)), {"axis": -1}),
        ("concat", ((3,),), {}),
        ("stack", ((2, 3), (2, 3)), {"axis": 2}),
        ("stack", ((2,), (2,), (2,)), {"axis": -1}),
        ("diag", ((2, 3),), {}),
        ("diag", ((3, 3),), {}),
        ("trace", ((3, 3),), {}),
        ("outer", ((1,), (2,)), {}),
        ("where", ((3,), (), (2, 3)), {}),
        ("clip", ((4,), (4,), ()), {}),
        ("logaddexp", ((2, 1), (3,)), {}),
        ("reshape", ((2, 3),), {"dims": (6,)}),
    ],
)
def test_vjp_at_more_shapes_and_attributes(name, shapes, attrs):
    check_op(OPS[name], shapes, attrs)


def test_values_against_numpy():
    rng = np.random.default_rng(7)
    x = rng.uniform(-2, 2, (2, 3, 4))
    f = lambda name, *a, **at: OPS[name].fwd(*a, **at)  # noqa: E731
    np.testing.assert_array_equal(f("sum", x, axis=(0, 2), keepdims=True), np.sum(x, (0, 2), keepdims=True))
    np.testing.assert_array_equal(f("amax", x, axis=-1, keepdims=True), np.max(x, -1, keepdims=True))
    np.testing.assert_allclose(f("mean", x, axis=(1, 2)), np.mean(x, (1, 2)), rtol=1e-15)
    np.testing.assert_allclose(f("prod", x, axis=1), np.prod(x, 1), rtol=1e-15)
    np.testing.assert_allclose(f("var", x, axis=(0, 1)), np.var(x, (0, 1)), rtol=1e-13)
    np.testing.assert_allclose(f("var", x, ddof=1), np.var(x, ddof=1), rtol=1e-13)
    np.testing.assert_allclose(f("std", x, axis=2, ddof=1), np.std(x, 2, ddof=1), rtol=1e-13)
    np.testing.assert_allclose(f("norm", x, p=1), np.abs(x).sum(), rtol=1e-14)
    np.testing.assert_allclose(f("norm", x, p=math.inf, axis=1), np.abs(x).max(1), rtol=1e-15)
    np.testing.assert_allclose(f("norm", x, axis=(0, 2)), np.sqrt((x * x).sum((0, 2))), rtol=1e-14)
    lse = np.log(np.exp(x).sum((0, 1)))
    np.testing.assert_allclose(f("logsumexp", x, axis=(0, 1)), lse, rtol=1e-14)
    np.testing.assert_allclose(f("log_softmax", x), x - np.log(np.exp(x).sum(-1, keepdims=True)), rtol=1e-13)
    np.testing.assert_allclose(f("softmax", x, axis=0), np.exp(x) / np.exp(x).sum(0), rtol=1e-14)
    assert f("transpose", x, dims=(2, 0, 1)).shape == (4, 2, 3)
    np.testing.assert_array_equal(f("transpose", x, dims=(2, 0, 1)), np.transpose(x, (2, 0, 1)))
    np.testing.assert_array_equal(f("transpose", x), x.T)
    assert f("expand_dims", x, axis=(0, -1)).shape == (1, 2, 3, 4, 1)
    assert f("squeeze", np.ones((1, 3, 1)), axis=0).shape == (3, 1)
    np.testing.assert_array_equal(f("concat", x, x[:1], axis=0), np.concatenate([x, x[:1]]))
    np.testing.assert_array_equal(f("stack", x, x, axis=-1), np.stack([x, x], -1))
    np.testing.assert_array_equal(f("diag", x[0]), np.diag(x[0]))
    assert f("trace", x[0]) == np.trace(x[0])
    np.testing.assert_array_equal(f("outer", x[0, 0], x[1, 1]), np.outer(x[0, 0], x[1, 1]))
    np.testing.assert_array_equal(f("clip", x, -1.0, 0.5), np.clip(x, -1, 0.5))
    np.testing.assert_array_equal(f("logaddexp", x, 1.0), np.logaddexp(x, 1.0))
    np.testing.assert_array_equal(f("sign", np.array([-2.0, 0.0, 3.0])), [-1, 0, 1])
    for name, fn in [("sinh", np.sinh), ("cosh", np.cosh), ("atan", np.arctan), ("expm1", np.expm1)]:
        np.testing.assert_array_equal(f(name, x), fn(x))
    y = np.clip(x, -0.99, 0.99)
    np.testing.assert_array_equal(f("asin", y), np.arcsin(y))
    np.testing.assert_array_equal(f("acos", y), np.arccos(y))
    np.testing.assert_array_equal(f("log1p", y), np.log1p(y))


def test_erf_is_math_erf_entry_by_entry():
    x = np.array([-3.0, -0.5, 0.0, 1e-9, 0.7, 2.0, np.inf, -np.inf])
    got = OPS["erf"].fwd(x)
    assert got.dtype == np.float64
    assert [float(v) for v in got] == [math.erf(v) for v in x]
    assert np.isnan(OPS["erf"].fwd(np.array(np.nan)))
    assert OPS["erf"].fwd(np.float32(0.5)).dtype == np.float32
    # erf(1) from the literature
    assert OPS["erf"].fwd(np.array(1.0)) == pytest.approx(0.8427007929497149, rel=1e-15)


# -- comparisons and where --------------------------------------------------------------------------------------------

CMP = {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal, "eq": np.equal, "ne": np.not_equal}


@pytest.mark.parametrize("name", sorted(CMP))
def test_comparisons_are_float_masks_without_gradient(name):
    op = OPS[name]
    a = np.array([[1.0, 2.0, 3.0], [np.nan, 0.0, -1.0]])
    b = np.array([2.0, 2.0, 2.0])
    got = op.fwd(a, b)
    assert got.dtype == np.float64 and got.shape == (2, 3)
    np.testing.assert_array_equal(got, CMP[name](a, b).astype(float))
    assert set(np.unique(got)) <= {0.0, 1.0}
    assert op.shape([(2, 3), (3,)]) == (2, 3)
    g = np.ones((2, 3))
    for k, x in enumerate((a, b)):
        d = op.vjp_for(k)(g, got, a, b)
        assert np.shape(d) == np.shape(x) and not np.any(d)
    assert op.fwd(np.float32(1), np.float32(2)).dtype == np.float32


def test_where_selects_and_routes_the_gradient():
    op = OPS["where"]
    c = np.array([1.0, 0.0, 0.5, -2.0])  # nonzero is true, as numpy's truthiness
    a = np.array([10.0, 20.0, 30.0, 40.0])
    b = np.array(7.0)
    np.testing.assert_array_equal(op.fwd(c, a, b), [10, 7, 30, 40])
    g = np.array([1.0, 2.0, 3.0, 4.0])
    ans = op.fwd(c, a, b)
    assert not np.any(op.vjp_for(0)(g, ans, c, a, b))
    np.testing.assert_array_equal(op.vjp_for(1)(g, ans, c, a, b), [1, 0, 3, 4])
    np.testing.assert_array_equal(op.vjp_for(2)(g, ans, c, a, b), [0, 2, 0, 0])  # summed back to () by the engine


def test_where_through_a_program_with_broadcasting():
    res = run(
        Source("y = sum(where(m, a * x, b))"),
        {"m": np.array([1.0, 0.0, 1.0]), "a": np.array(2.0), "x": np.array([1.0, 2.0, 3.0]), "b": np.array(5.0)},
    )
    g = {n: res.grads[i] for n, i in res.graph.inputs.items()}
    assert float(res.values[res.out]) == 2 + 5 + 6
    np.testing.assert_array_equal(g["x"], [2, 0, 2])
    assert g["a"] == 4.0 and g["b"] == 1.0
    assert not np.any(g["m"])


# -- kinks: PyTorch's conventions (values checked against torch 2.x by hand) -------------------------------------------


def _grad(src, **at):
    res = run(Source(src), {k: np.asarray(v, dtype=float) for k, v in at.items()})
    return {n: res.grads[i] for n, i in res.graph.inputs.items()}


@pytest.fixture(params=["generic", "scalar", "levels", "auto", "compiled"])
def strategy(request, monkeypatch):
    monkeypatch.setenv("CGRAPH_ENGINE", request.param)
    return request.param


def test_prod_with_zeros_takes_the_product_of_the_others(strategy):
    np.testing.assert_array_equal(_grad("y = prod(x)", x=[0.0, 2.0, 3.0])["x"], [6, 0, 0])  # torch: [6, 0, 0]
    np.testing.assert_array_equal(_grad("y = prod(x)", x=[0.0, 2.0, 0.0])["x"], [0, 0, 0])
    np.testing.assert_array_equal(_grad("y = prod(x)", x=[2.0, 3.0, 4.0])["x"], [12, 8, 6])
    g = _grad("y = sum(prod(X, 1))", X=[[0.0, 5.0], [2.0, 3.0]])["X"]
    np.testing.assert_array_equal(g, [[5, 0], [3, 2]])


def test_var_and_std_at_zero_variance_give_zero_gradient(strategy):
    for fn in ("var", "std"):
        g = _grad(f"y = {fn}(x)", x=[1.5, 1.5, 1.5])["x"]
        np.testing.assert_array_equal(g, [0, 0, 0])
    g = _grad("y = sum(std(X, 0))", X=[[1.0, 2.0], [1.0, 4.0]])["X"]  # column 0 constant, column 1 not
    np.testing.assert_allclose(g, [[0, -0.5], [0, 0.5]])
    # on a scalar (a scalar program: the fast strategies), var = 0 and its gradient 0
    assert _grad("y = var(x) + std(x)", x=3.0)["x"] == 0.0


def test_clip_passes_the_gradient_strictly_inside(strategy):
    g = _grad("y = sum(clip(x, lo, hi))", x=[0.0, 1.0, 1.5, 2.0, 3.0], lo=1.0, hi=2.0)
    np.testing.assert_array_equal(g["x"], [0, 0, 1, 0, 0])
    assert g["lo"] == 2.0 and g["hi"] == 2.0  # x <= lo: the bound is the result; likewise x >= hi
    assert _grad("y = clip(x, x, x)", x=1.0)["x"] == 1.0  # the parts always add up to the whole gradient


def test_sign_and_norm_kinks(strategy):
    np.testing.assert_array_equal(_grad("y = sum(sign(x) * x)", x=[-2.0, 0.0, 3.0])["x"], [-1, 0, 1])
    assert _grad("y = sign(x)", x=0.0)["x"] == 0.0


def test_norm_p1_and_pinf_follow_pytorch():
    op = OPS["norm"]
    x = np.array([-2.0, 2.0, 1.0])
    ans = op.fwd(x, p=math.inf)
    assert ans == 2.0
    g = op.vjp_for(0)(np.array(1.0), ans, x, p=math.inf)
    np.testing.assert_array_equal(g, [-0.5, 0.5, 0])  # torch: [-0.5, 0.5, 0]
    z = np.zeros(2)
    np.testing.assert_array_equal(op.vjp_for(0)(np.array(1.0), op.fwd(z, p=1), z, p=1), [0, 0])
    np.testing.assert_array_equal(op.vjp_for(0)(np.array(1.0), op.fwd(z, p=math.inf), z, p=math.inf), [0, 0])


def test_logaddexp_gradients_are_the_softmax_weights():
    op = OPS["logaddexp"]
    a, b = np.array([1.0, 1.0]), np.array([1.0, 3.0])
    ans = op.fwd(a, b)
    np.testing.assert_allclose(op.vjp_for(0)(np.ones(2), ans, a, b), [0.5, 0.11920292202211755], rtol=1e-14)
    np.testing.assert_allclose(op.vjp_for(1)(np.ones(2), ans, a, b), [0.5, 0.8807970779778823], rtol=1e-14)


# -- the existing (positional) syntax ----------------------------------------------------------------------------------


def test_new_functions_through_positional_calls():
    rng = np.random.default_rng(0)
    vals = {"X": rng.uniform(0.5, 1.5, (2, 3, 4)), "v": rng.uniform(0.5, 1.5, (3,)), "w": rng.uniform(0.5, 1.5, (2,))}
    progs = {
        "y = sum(transpose(X, 2, 0, 1) * reshape(X, 4, 2, 3))": None,
        "y = sum(permute(X, 1, 2, 0)[0] * 2)": None,
        "y = sum(expand_dims(v, 0) * squeeze(expand_dims(v, 1), 1))": None,
        "y = prod(v) + var(v) + std(v) + trace(outer(v, v)) + sum(diag(v))": None,
        "y = sum(cumsum(X, 1)) + sum(concat(v, v, v)) + sum(stack(v, v))": None,
        "y = sum(clip(v, 0.8, 1.2)) + sum(where(v - 1, v, w[0]))": None,
        "y = sum(log_softmax(v)) + logaddexp(v[0], w[1]) + sum(sign(v) * v)": None,
        "y = sinh(v[0]) + cosh(v[1]) + asin(v[2] / 2) + acos(w[0] / 2) + atan(w[1])": None,
        "y = log1p(v[0]) + expm1(v[1]) + erf(v[2]) + atan2(w[0], w[1])": None,
        "y = sum(prod(X, 0)) + sum(var(X, 2)) + sum(std(X, 1)) + sum(log_softmax(X, 0))": None,
    }
    for src in progs:
        res = run(Source(src), {k: v for k, v in vals.items() if re.search(rf"\b{k}\b", src)})
        for name, i in res.graph.inputs.items():
            x = vals[name]
            num = np.zeros(x.shape)
            for idx in np.ndindex(*x.shape):
                vp = {k: np.array(v, copy=True) for k, v in vals.items() if k in res.graph.inputs}
                vm = {k: np.array(v, copy=True) for k, v in vals.items() if k in res.graph.inputs}
                vp[name][idx] += 1e-6
                vm[name][idx] -= 1e-6
                num[idx] = (run(Source(src), vp).values[-1] - run(Source(src), vm).values[-1]) / 2e-6
            np.testing.assert_allclose(res.grads[i], num, rtol=1e-5, atol=1e-7, err_msg=f"{src}: d/d{name}")


@pytest.mark.parametrize(
    "src,at,needle",
    [
        ("y = sum(x, 0)", "x=2", "axis 0 is out of range for a value with 0 dimensions"),
        ("y = softmax(x, 0)", "x=2", "axis 0 is out of range for a value with 0 dimensions"),
        ("y = log_softmax(x, -1)", "x=2", "axis -1 is out of range for a value with 0 dimensions"),
        ("y = prod(x, 0)", "x=2", "axis 0 is out of range for a value with 0 dimensions"),
        ("y = var(x, 1)", "x=[1,2]", "axis 1 is out of range for a value with 1 dimension"),
        ("y = max(x, 0)", "x=2", None),  # positional: elementwise max, as today
        ("y = sum(transpose(X, 0, 0))", "X=[[1,2],[3,4]]", "transpose(0, 0) names an axis twice"),
        ("y = sum(transpose(X, 0))", "X=[[1,2],[3,4]]", "transpose needs a permutation of all 2 axes, got 1"),
        ("y = sum(squeeze(X, 0))", "X=[[1,2],[3,4]]", "cannot squeeze axis 0 of shape (2, 2): its length is 2"),
        ("y = sum(expand_dims(x))", "x=[1,2]", "expand_dims needs the axis to insert"),
        ("y = sum(expand_dims(x, 3))", "x=[1,2]", "axis 3 is out of range for a value with 2 dimensions"),
        ("y = sum(concat(x, X))", "x=[1,2],X=[[1,2]]", "concat along axis 0 needs the other axes to agree"),
        ("y = sum(concat(a, a))", "a=1", "a 0-d operand has none"),
        ("y = sum(stack(x, X))", "x=[1,2],X=[[1,2]]", "cannot stack items of different shapes (2,) and (1, 2)"),
        ("y = sum(diag(a))", "a=1", "diag takes a vector"),
        ("y = trace(x)", "x=[1,2]", "trace takes a matrix, not shape (2,)"),
        ("y = sum(outer(X, x))", "x=[1,2],X=[[1,2]]", "outer takes two vectors"),
        ("y = sum(max(X, x))", "x=[1,2,3],X=[[1,2]]", "for the maximum along an axis, write max(x, axis=1)"),
    ],
)
def test_errors_name_the_problem(src, at, needle):
    r = run_cli("eval", "-e", src, "--at", at)
    if needle is None:
        assert r.returncode == 0, r.stderr
        return
    assert r.returncode == 2, r.stdout
    assert needle in r.stderr, r.stderr
    assert r.stderr.startswith("error: <expr>:1:"), r.stderr
    assert "Traceback" not in r.stderr


def test_reshape_to_a_scalar_through_the_ops_layer():
    op = OPS["reshape"]
    assert op.shape([(1, 1)], dims=()) == ()
    assert op.fwd(np.ones((1, 1)) * 3, dims=()) == 3.0
    with pytest.raises(ValueError, match="cannot reshape"):
        op.shape([(2,)], dims=())


def test_calls_accept_their_keywords():
    for fname in ("sum", "mean", "max", "min", "logsumexp", "prod", "var", "std"):
        call, op = pick_call(fname, 1, ("axis", "keepdims"))
        assert op.name in ("sum", "mean", "amax", "amin", "logsumexp", "prod", "var", "std")
    assert pick_call("max", 1, ("axis",))[1].name == "amax"
    assert pick_call("max", 2, ())[1].name == "maximum"
    assert pick_call("max", 2, ("axis",)) is None
    assert pick_call("norm", 1, ("p", "axis", "keepdims"))[1].name == "norm"
    assert pick_call("var", 1, ("ddof",))[1].name == "var"
    assert pick_call("softmax", 1, ("axis",))[1].name == "softmax"
    assert pick_call("softmax", 1, ("keepdims",)) is None
    assert pick_call("concat", 3, ("axis",))[1].name == "concat"
    assert pick_call("stack", 2, ("axis",))[1].name == "stack"
    assert pick_call("expand_dims", 1, ("axis",))[1].name == "expand_dims"
    assert pick_call("squeeze", 2, ())[1].name == "squeeze"
    assert pick_call("permute", 3, ())[1].name == "transpose"
    assert pick_call("transpose", 1, ())[0].static is None


def test_a_program_error_is_a_cgraph_error():
    with pytest.raises(CgraphError, match="out of range"):
        run(Source("y = sum(x, 0)"), {"x": np.array(1.0)})
