"""Every op's VJP against central finite differences, generated from the op table.

The tests iterate over ``cgraph_cli.ops.OPS`` and use each op's ``domain``,
``test_shapes`` and ``test_attrs`` (with defaults when an op has none), so an
op added to the table later is tested without new code here.  Kink
conventions (SPEC §2) and broadcasting of gradients are checked by hand.
"""

from __future__ import annotations

import zlib
from dataclasses import replace

import numpy as np
import pytest

from cgraph_cli import ops as ops_mod
from cgraph_cli.engine import evaluate
from cgraph_cli.engine.reference import backward, forward
from cgraph_cli.errors import CgraphError, Source
from cgraph_cli.ops import OPS, Op, unbroadcast
from cgraph_cli.run.program import compile_program, run
from cgraph_cli.run.values import bind_inputs

EPS = 1e-6


def default_shapes(op: Op) -> tuple[tuple[int, ...], ...]:
    """Operand shapes for an op without ``test_shapes``."""
    if op.test_shapes is not None:
        return op.test_shapes
    if op.arity is None:  # variadic: three operands, with broadcasting
        return ((2, 3), (3,), (2, 1))
    return ((3,),) * op.arity


def sample_operands(op: Op, shapes=None) -> list[np.ndarray]:
    rng = np.random.default_rng(zlib.crc32(op.name.encode()))
    lo, hi = op.domain
    return [rng.uniform(lo, hi, size=s).astype(np.float64) for s in (shapes or default_shapes(op))]


def numeric_vjp(op: Op, xs: list[np.ndarray], k: int, cot: np.ndarray, attrs: dict) -> np.ndarray:
    """d/dxs[k] of sum(cot * fwd(xs)), by central differences, entry by entry."""
    base = xs[k]
    out = np.zeros(np.shape(base))
    for idx in np.ndindex(*np.shape(base)):
        plus = [np.array(x, dtype=np.float64, copy=True) for x in xs]
        minus = [np.array(x, dtype=np.float64, copy=True) for x in xs]
        plus[k][idx] += EPS
        minus[k][idx] -= EPS
        fp = np.sum(cot * op.fwd(*plus, **attrs))
        fm = np.sum(cot * op.fwd(*minus, **attrs))
        out[idx] = (fp - fm) / (2 * EPS)
    return out


def check_op(op: Op, shapes=None, attrs=None) -> None:
    """Assert the op's shape rule and every operand's VJP (raises AssertionError naming the op)."""
    attrs = dict(op.test_attrs or {}) if attrs is None else attrs
    xs = sample_operands(op, shapes)
    ans = np.asarray(op.fwd(*xs, **attrs))
    inferred = op.shape([np.shape(x) for x in xs], **attrs)
    assert tuple(inferred) == ans.shape, f"op '{op.name}': shape rule gives {inferred}, forward gives {ans.shape}"
    cot = np.random.default_rng(1).uniform(0.5, 1.5, size=ans.shape)
    for k in range(len(xs)):
        rule = op.vjp_for(k)
        assert rule is not None, f"op '{op.name}' has no gradient rule for operand {k}"
        analytic = unbroadcast(rule(cot, ans, *xs, **attrs), np.shape(xs[k]), op.name)
        numeric = numeric_vjp(op, xs, k, cot, attrs)
        np.testing.assert_allclose(
            analytic, numeric, rtol=1e-5, atol=1e-7, err_msg=f"op '{op.name}', operand {k}: VJP != finite differences"
        )


@pytest.mark.parametrize("name", sorted(OPS))
def test_vjp_matches_finite_differences(name):
    check_op(OPS[name])


@pytest.mark.parametrize(
    "name,shapes,attrs",
    [
        ("matmul", ((3,), (3,)), {}),
        ("matmul", ((2, 3), (3,)), {}),
        ("matmul", ((3,), (3, 4)), {}),
        ("matmul", ((5, 2, 3), (3, 4)), {}),
        ("matmul", ((2, 3), (5, 3, 4)), {}),
        ("matmul", ((2, 1, 2, 3), (4, 3, 2)), {}),
        ("matmul", ((3,), (2, 3, 4)), {}),
        ("sum", ((2, 3, 4),), {"axis": -2}),
        ("sum", ((2, 3),), {}),
        ("sum", ((),), {}),
        ("mean", ((2, 3, 4),), {"axis": 2}),
        ("mean", ((2, 3),), {}),
        ("logsumexp", ((2, 3),), {"axis": 0}),
        ("logsumexp", ((2, 3),), {"axis": -1}),
        ("softmax", ((2, 3),), {"axis": 0}),
        ("softmax", ((2, 3, 2),), {"axis": 1}),
        ("softmax", ((4,),), {}),
        ("softmax", ((),), {}),
        ("amax", ((2, 3),), {}),
        ("amin", ((5,),), {}),
        ("norm", ((4,),), {}),
        ("norm", ((),), {}),
        ("transpose", ((2, 3, 4),), {}),
        ("transpose", ((3,),), {}),
        ("reshape", ((2, 3),), {"dims": (-1,)}),
        ("reshape", ((6,),), {"dims": (3, -1)}),
        ("reshape", ((1,),), {"dims": ()}),
        ("index", ((3, 4),), {"idx": (-1,)}),
        ("index", ((3, 4),), {"idx": (slice(None, None, -1), slice(1, None, 2))}),
        ("index", ((3, 4),), {"idx": (2, -3)}),
        ("index", ((5,),), {"idx": (slice(4, 0, -2),)}),
        ("maximum", ((3,), ()), {}),
        ("minimum", ((2, 1), (3,), (1, 3), ()), {}),
        ("pow", ((), (3,)), {}),
        ("stack", ((2, 2), (2, 2), (2, 2)), {}),
        ("stack", ((), ()), {}),
    ],
)
def test_vjp_at_more_shapes(name, shapes, attrs):
    check_op(OPS[name], shapes, attrs)


def test_every_op_has_a_gradient_rule_for_every_operand():
    for name, op in OPS.items():
        n = len(default_shapes(op))
        for k in range(n):
            assert op.vjp_for(k) is not None, f"op '{name}' operand {k}"


def test_an_op_added_later_is_picked_up(monkeypatch):
    """A new op with no test metadata gets defaults; a wrong rule is caught and named."""
    good = Op("cube_t", lambda a: a**3, (lambda g, ans, a: 3 * g * a * a,), ops_mod.same_shape, 1, "cube")
    check_op(good)
    bad = Op("cube_bad", lambda a: a**3, (lambda g, ans, a: 2 * g * a * a,), ops_mod.same_shape, 1, "cube")
    with pytest.raises(AssertionError, match="cube_bad"):
        check_op(bad)
    variadic = Op(
        "vsum_t", lambda *a: sum(a), lambda ks, g, ans, a: [g for _ in ks], ops_mod.broadcast_shape, None, "vsum"
    )  # defaults: three broadcast operands
    check_op(variadic)


# -- rules that are missing or have the wrong size fail loudly, naming the op -----------------


def test_unbroadcast_names_the_op_on_a_wrong_shape():
    with pytest.raises(RuntimeError, match="'myop'"):
        unbroadcast(np.ones((3,)), (2,), "myop")
    with pytest.raises(RuntimeError, match="'myop'"):
        unbroadcast(np.ones(()), (2, 2), "myop")
    # legitimate broadcasting is summed back
    np.testing.assert_array_equal(unbroadcast(np.ones((4, 2, 3)), (2, 1), "x"), np.full((2, 1), 12.0))
    np.testing.assert_array_equal(unbroadcast(np.ones((2, 3)), (), "x"), 6.0)


def test_missing_rule_for_an_operand_names_the_op():
    op = Op("half", lambda a, b: a + b, (lambda g, ans, a, b: g,), ops_mod.broadcast_shape, 2, "h")
    with pytest.raises(KeyError, match="half"):
        op.vjp_for(1)


def test_engine_reports_a_mis_sized_rule_by_op_name(monkeypatch):
    broken = Op("exp", np.exp, (lambda g, ans, a: np.ones(3),), ops_mod.same_shape, 1, "exp")
    monkeypatch.setitem(OPS, "exp", broken)
    with pytest.raises(RuntimeError, match="'exp'"):
        run(Source("y = sum(exp(x))"), {"x": np.array([1.0, 2.0])})


def test_engine_reports_a_missing_rule_by_op_name(monkeypatch):
    mul = OPS["mul"]
    broken = replace(mul, vjp=mul.vjp[:1])
    monkeypatch.setitem(OPS, "mul", broken)
    with pytest.raises(KeyError, match="'mul'"):  # tensors: the op table's rules are used
        run(Source("y = sum(a * b)"), {"a": np.ones(2), "b": np.ones(2)})


# -- kinks (SPEC §2: PyTorch conventions) -------------------------------------------------------


@pytest.fixture(params=["auto", "generic", "scalar", "levels", "compiled"])
def strategy(request, monkeypatch):
    """Run under each engine strategy: default, the generic reference path, the scalar fast paths."""
    monkeypatch.setenv("CGRAPH_ENGINE", request.param)
    return request.param


def grads_of(src: str, **at) -> dict[str, np.ndarray]:
    res = run(Source(src), {k: np.asarray(v, dtype=float) for k, v in at.items()})
    return {name: res.grads[i] for name, i in res.graph.inputs.items()}


def test_relu_at_zero_has_gradient_zero(strategy):
    assert grads_of("y = relu(x)", x=0.0)["x"] == 0.0
    np.testing.assert_array_equal(grads_of("y = sum(relu(x))", x=[-1.0, 0.0, 2.0])["x"], [0, 0, 1])


def test_abs_at_zero_has_gradient_zero(strategy):
    assert grads_of("y = abs(x)", x=0.0)["x"] == 0.0
    np.testing.assert_array_equal(grads_of("y = sum(abs(x))", x=[-1.0, 0.0, 2.0])["x"], [-1, 0, 1])


@pytest.mark.parametrize("fn", ["max", "min"])
def test_binary_max_min_split_ties_evenly(fn, strategy):
    g = grads_of(f"y = {fn}(a, b)", a=2.0, b=2.0)
    assert g["a"] == 0.5 and g["b"] == 0.5
    g = grads_of(f"y = {fn}(a, b, c)", a=1.0, b=1.0, c=1.0)
    np.testing.assert_allclose([g["a"], g["b"], g["c"]], [1 / 3] * 3)
    # the same node twice still gets the whole gradient
    assert grads_of(f"y = {fn}(a, a)", a=3.0)["a"] == 1.0
    # no tie: the whole gradient goes to the winner
    g = grads_of(f"y = {fn}(a, b)", a=1.0, b=2.0)
    want = (0.0, 1.0) if fn == "max" else (1.0, 0.0)
    assert (g["a"], g["b"]) == want


def test_elementwise_max_ties_with_broadcasting(strategy):
    g = grads_of("y = sum(max(x, c))", x=[1.0, 2.0, 3.0], c=2.0)
    np.testing.assert_allclose(g["x"], [0, 0.5, 1])
    assert g["c"] == 1.5


@pytest.mark.parametrize("fn", ["max", "min"])
def test_reduction_max_min_split_among_ties(fn, strategy):
    x = [3.0, 1.0, 3.0, 3.0] if fn == "max" else [1.0, 3.0, 1.0, 2.0]
    g = grads_of(f"y = {fn}(x)", x=x)["x"]
    want = np.array([1 / 3, 0, 1 / 3, 1 / 3]) if fn == "max" else np.array([0.5, 0, 0.5, 0])
    np.testing.assert_allclose(g, want)
    assert np.isclose(np.sum(g), 1.0)


def test_power_zero_at_zero_has_gradient_zero(strategy):
    # PyTorch: d/dx x^0 = 0 also at x = 0, so a polynomial's gradient at 0 is finite
    g = grads_of("y = 3 * x^0 + 2 * x^1 + x^2", x=0.0)
    assert g["x"] == 2.0
    np.testing.assert_array_equal(grads_of("y = sum(x^0 + x^n)", x=[0.0, 1.0, 2.0], n=0.0)["x"], [0, 0, 0])
    assert grads_of("y = sum(x^n)", x=[0.0, 1.0], n=0.0)["n"] == 0.0  # d/dn 0^n = 0 for n >= 0
    assert grads_of("y = x^0.5", x=0.0)["x"] == np.inf


def test_norm_at_zero_is_finite(strategy):
    np.testing.assert_array_equal(grads_of("y = norm(x)", x=[0.0, 0.0])["x"], [0, 0])


# -- broadcasting: gradients summed back to the operand shapes ------------------------------


@pytest.mark.parametrize(
    "op,sa,sb",
    [("+", (2, 3), (3,)), ("*", (2, 1), (3,)), ("-", (), (2, 2)), ("/", (4, 1, 3), (2, 1)), ("^", (3,), ())],
)
def test_broadcast_gradients_have_operand_shapes(op, sa, sb):
    rng = np.random.default_rng(0)
    a = rng.uniform(0.5, 2.0, size=sa)
    b = rng.uniform(0.5, 2.0, size=sb)
    src = f"y = sum(w * (a {op} b))"
    w = rng.uniform(-1, 1, size=np.broadcast_shapes(sa, sb))
    res = run(Source(src), {"a": a, "b": b, "w": w})
    g = {n: res.grads[i] for n, i in res.graph.inputs.items()}
    assert np.shape(g["a"]) == sa and np.shape(g["b"]) == sb
    f = {
        "+": np.add,
        "*": np.multiply,
        "-": np.subtract,
        "/": np.divide,
        "^": np.power,
    }[op]
    for name, x in (("a", a), ("b", b)):
        num = np.zeros(np.shape(x))
        for idx in np.ndindex(*np.shape(x)):
            xp, xm = np.array(x, copy=True), np.array(x, copy=True)
            xp[idx] += EPS
            xm[idx] -= EPS
            args_p = (xp, b) if name == "a" else (a, xp)
            args_m = (xm, b) if name == "a" else (a, xm)
            num[idx] = (np.sum(w * f(*args_p)) - np.sum(w * f(*args_m))) / (2 * EPS)
        np.testing.assert_allclose(g[name], num, rtol=1e-6, atol=1e-8, err_msg=f"{op} {name}")


def test_sum_of_broadcast_add_counts_rows():
    g = grads_of("y = sum(X + b)", X=np.zeros((4, 3)), b=[1.0, 2.0, 3.0])
    np.testing.assert_array_equal(g["b"], [4, 4, 4])
    np.testing.assert_array_equal(g["X"], np.ones((4, 3)))


# -- whole-program gradients through the engine, one program per op -------------------------


def test_engine_gradients_match_finite_differences_through_programs():
    """Programs using the ops by their surface syntax, differentiated by the engine."""
    progs = {
        "y = sum(softmax(X, 0) * W)": {"X": (2, 3), "W": (2, 3)},
        "y = sum((A @ B) * W)": {"A": (2, 3), "B": (3, 4), "W": (2, 4)},
        "y = dot(u, v) + norm(u) + logsumexp(v)": {"u": (3,), "v": (3,)},
        "y = sum(reshape(transpose(X), 3, 2) * W)": {"X": (2, 3), "W": (3, 2)},
        "y = mean(X, 1) @ v + sum(X[1, ::-1] * u)": {"X": (2, 3), "v": (2,), "u": (3,)},
        "y = sum([a * b, b, a ^ 2] * v)": {"a": (), "b": (), "v": (3,)},
    }
    rng = np.random.default_rng(3)
    for src, shapes in progs.items():
        vals = {k: rng.uniform(0.5, 1.5, size=s) for k, s in shapes.items()}
        g = compile_program(Source(src), vals)
        res = evaluate(g, bind_inputs(g, vals))
        for name, i in g.inputs.items():
            num = np.zeros(np.shape(vals[name]))
            for idx in np.ndindex(*np.shape(vals[name])):
                vp = {k: np.array(v, copy=True) for k, v in vals.items()}
                vm = {k: np.array(v, copy=True) for k, v in vals.items()}
                vp[name][idx] += EPS
                vm[name][idx] -= EPS
                fp = forward(g, vp)[g.output]
                fm = forward(g, vm)[g.output]
                num[idx] = (fp - fm) / (2 * EPS)
            np.testing.assert_allclose(res.grads[i], num, rtol=1e-5, atol=1e-7, err_msg=f"{src}: d/d{name}")


def test_backward_returns_none_only_for_constant_nodes():
    g = compile_program(Source("k = 2 * 3\ny = k * x"), {"x": np.array(1.0)})
    vals = forward(g, {"x": np.array(1.0)})
    grads = backward(g, vals, g.output)
    need = g.needs_grad()
    for i in range(len(g)):
        assert (grads[i] is not None) == need[i]


def test_nonscalar_output_is_refused():
    with pytest.raises(CgraphError, match="scalar") as info:
        run(Source("y = x * 2"), {"x": np.array([1.0, 2.0])})
    assert "sum(y)" in info.value.render()


# -- empty tensors (found by the random tensor programs in test_properties.py) ----------------


def test_empty_reductions():
    empty = {"x": np.zeros((0,))}
    assert run(Source("y = logsumexp(x)"), empty).values[-1] == -np.inf  # log of an empty sum
    assert run(Source("y = sum(softmax(x))"), empty).values[-1] == 0.0
    assert run(Source("y = sum(x)"), empty).values[-1] == 0.0
    with np.errstate(all="raise"):  # no numpy RuntimeWarning escapes to the user's terminal
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert np.isnan(run(Source("y = mean(x)"), empty).values[-1])
    for fn in ("max", "min"):
        with pytest.raises(CgraphError, match="empty"):
            run(Source(f"y = {fn}(x)"), empty)


@pytest.mark.parametrize("name", sorted(OPS))
def test_float32_stays_float32(name):
    """--dtype float32: every op's forward value and every operand's VJP keep float32."""
    op = OPS[name]
    attrs = op.test_attrs or {}
    xs = [x.astype(np.float32) for x in sample_operands(op)]
    ans = op.fwd(*xs, **attrs)
    assert np.result_type(ans) == np.float32, name
    g = np.ones_like(ans, dtype=np.float32)
    for k in range(len(xs)):
        rule = op.vjp_for(k)
        if rule is not None:
            assert np.result_type(rule(g, ans, *xs, **attrs)) == np.float32, (name, k)
