"""The fast scalar strategies (engine/scalar.py) bit for bit against the reference loop, and the Python-float kernels
they use against numpy on edge values.

Bit for bit means the float64 bit patterns: signed zeros (every gradient starts at -0.0, the identity of IEEE
addition), NaN payloads aside, infinities and the order of every sum.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from test_engine_strategies import VALUES, bits, check_bits, compile_src, random_program

from cgraph_cli.engine import evaluate
from cgraph_cli.engine.scalar import ArrayResult, scalar_plan
from cgraph_cli.ops import OPS, Kernel

EDGE = [0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, -5e-324, 2.2250738585072014e-308, -2.2e-308, 1e-300]
EDGE += [1e308, -1e308, 1.7976931348623157e308, 710.0, -745.2, 1.0, -1.0, 0.5, 1e-8, -3.0, 20.0, 1e16, 0.9999999]


def edge_values(n_random: int = 3000) -> list[float]:
    rng = np.random.default_rng(0)
    xs = [*EDGE]
    for scale in (1e-300, 1e-12, 1e-3, 0.5, 1.0, 5.0, 40.0, 1e4, 1e300):
        xs += (rng.standard_normal(n_random) * scale).tolist()
    return xs


@pytest.mark.parametrize("seed", range(40))
def test_random_narrow_programs_bit_for_bit(seed: int) -> None:
    rng = random.Random(5000 + seed)
    text = random_program(rng, rng.randint(3, 60))
    values = {f"i{k}": np.array(rng.choice(VALUES + [-0.0, 1e300, -1e-310])) for k in range(3)}
    check_bits(text, values)


@pytest.mark.parametrize("seed", range(8))
def test_random_wide_programs_bit_for_bit(seed: int) -> None:
    rng = random.Random(7000 + seed)
    text = random_program(rng, rng.randint(200, 300), n_inputs=8, wide=True)
    values = {f"i{k}": np.array(rng.choice(VALUES)) for k in range(8)}
    check_bits(text, values)


def test_signed_zero_gradients_are_kept() -> None:
    # da = (-0.0) + (-0.0): -0.0 in the reference, which adds the second contribution to the first; a gradient
    # that started at +0.0 would give +0.0
    text = "z = -0.0\ny = a * z + a * z + b * 0\n"
    values = {"a": np.array(2.0), "b": np.array(-1.0)}
    check_bits(text, values)
    res = evaluate(compile_src(text, values), values, strategy="scalar")
    g = res.graph
    assert math.copysign(1.0, res.grads[g.inputs["a"]]) == -1.0


def test_unreached_constant_and_nonfinite_nodes() -> None:
    texts = [
        "c = 2 * 3\nu = a * 5\ny = b * c\noutput y\n",  # c: no gradient; u: 0
        "c = sqrt(4) * 2\ny = c * 3\n",  # the output depends on no input
        "y = a * 1e308 * 10 + b\n",  # inf forward
        "u = a * 0\ny = (b - b) * tanh(a) + exp(u * 800)\n",
        "y = max(a, b, a * 2) + min(a, b) + (a < b) * b\n",  # variadic, ties, a comparison (no gradient)
        "y = a\n",  # the output is an input
    ]
    for text in texts:
        for a, b in ((1.0, 2.0), (0.0, 0.0), (-0.0, 3.0), (1e300, -1e300)):
            check_bits(text, {"a": np.array(a), "b": np.array(b)})


def test_transcendental_chains_bit_for_bit() -> None:
    # tanh, exp, log, tan, atan, log1p: numpy's forward on the float, the VJP on Python floats
    for f in ("tanh", "exp", "log", "tan", "atan", "log1p", "sinh", "erf", "sigmoid", "softplus"):
        text = "x = a\n" + f"x = {f}(x * 0.5 + b) * 0.9\n" * 40 + "y = x + a\n"
        for a, b in ((0.3, 0.2), (-2.0, 1.5), (0.0, -0.0)):
            check_bits(text, {"a": np.array(a), "b": np.array(b)})


def test_results_are_arrays_and_the_lists_are_made_on_demand() -> None:
    text = "c = 2\ny = sin(a) * c + b\nu = a * 3\noutput y\n"
    values = {"a": np.array(0.5), "b": np.array(-1.0)}
    g = compile_src(text, values)
    res = evaluate(g, values, strategy="scalar")
    assert isinstance(res, ArrayResult) and res._values is None and res._grads is None
    ref = evaluate(compile_src(text, values), values, strategy="generic")
    assert res.value_array.dtype == np.float64 and res.value_array.shape == (len(g),)
    for i in range(len(g)):
        assert res.value_array[i] == float(ref.values[i])
        assert res.grad_array[i] == (0.0 if ref.grads[i] is None else float(ref.grads[i]))
    assert res.grads[g.bindings["c"]] is None and res.grads[g.bindings["u"]] == 0
    assert res.values[g.inputs["a"]] is values["a"]  # a leaf keeps its given array


def test_a_deep_chain_is_not_tried_level_by_level() -> None:
    text = "x = a\n" + "x = x * 0.999 + a\n" * 2000
    values = {"a": np.array(0.5)}
    g = compile_src(text, values)
    plan = scalar_plan(g, values)
    assert plan is not None and plan._deep() and not plan.wide(g.output)


def test_non_scalar_or_missing_inputs_are_not_bound() -> None:
    g = compile_src("y = a * b\n", {"a": np.array(1.0), "b": np.array(2.0)})
    plan = scalar_plan(g)
    assert plan is not None
    assert plan.bind({"a": np.array(1.0), "b": np.array(2.0)}) == [1.0, 2.0]
    assert plan.bind({"a": 1.5, "b": np.float64(2.0)}) == [1.5, 2.0]
    assert plan.bind({"a": np.array([1.0]), "b": np.array(2.0)}) is None
    assert plan.bind({"a": np.array(1.0)}) is None


# -- the Python-float kernels against numpy ------------------------------------------------------------------------


def _same_or_raises(py, args, ref) -> bool:
    """py(*args) on Python floats gives numpy's ``ref`` bit for bit, or raises (then the loop hands the graph to
    numpy's rules)."""
    try:
        got = py(*args)
    except (ArithmeticError, ValueError):
        return True
    return bits(got) == bits(ref)


FLOAT_VJP_OPS = [name for name, op in OPS.items() if op.float_vjp]


def test_the_float_vjp_ops_are_the_expected_ones() -> None:
    assert set(FLOAT_VJP_OPS) >= {"tanh", "exp", "log"}
    for name in FLOAT_VJP_OPS:
        assert OPS[name].kernel is Kernel.NP1 and OPS[name].arity == 1


@pytest.mark.parametrize("name", FLOAT_VJP_OPS)
def test_float_vjp_is_numpys_bit_for_bit(name: str) -> None:
    op = OPS[name]
    vjp = op.vjp_for(0)
    xs = edge_values(800)
    gs = [1.0, -1.0, 0.0, -0.0, 0.37, -2.5e-7, 1e300, math.inf, math.nan]
    with np.errstate(all="ignore"):
        for x in xs:
            ans = float(op.fwd(np.float64(x)))
            for gi in gs:
                ref = vjp(np.float64(gi), np.float64(ans), np.float64(x))
                assert _same_or_raises(vjp, (gi, ans, x), ref), (name, gi, ans, x)
                try:
                    got = vjp(gi, ans, x)
                except (ArithmeticError, ValueError):
                    continue
                assert type(got) is float, (name, type(got))  # plain arithmetic: no numpy scalar in the loop


@pytest.mark.parametrize(
    ("kernel", "py", "ref"),
    [
        (Kernel.SIN, math.sin, np.sin),
        (Kernel.COS, math.cos, np.cos),
        (Kernel.SQRT, math.sqrt, np.sqrt),
        (Kernel.ABS, abs, np.abs),
        (Kernel.NEG, lambda x: -x, np.negative),
        (Kernel.SQUARE, lambda x: x * x, np.square),
        (Kernel.RELU, lambda x: x if (x > 0.0 or x != x) else 0.0, lambda x: np.maximum(x, 0)),
    ],
)
def test_python_float_kernels_are_numpys_bit_for_bit(kernel, py, ref) -> None:
    """Each kernel the loop writes out in Python floats gives numpy's result (or raises, and numpy's rules
    apply): math.sin and math.cos agree with numpy's on this machine; math.tanh does not, so tanh is NP1."""
    assert any(op.kernel is kernel for op in OPS.values())
    with np.errstate(all="ignore"):
        for x in edge_values():
            assert _same_or_raises(py, (x,), ref(np.float64(x))), (kernel, x)


def test_binary_kernels_are_numpys_bit_for_bit() -> None:
    xs = EDGE + [0.1, 3.0, -7.25, 1e-320]
    with np.errstate(all="ignore"):
        for a in xs:
            for b in xs:
                fa, fb = np.float64(a), np.float64(b)
                assert bits(a + b) == bits(fa + fb) and bits(a - b) == bits(fa - fb) and bits(a * b) == bits(fa * fb)
                assert _same_or_raises(float.__truediv__, (a, b), fa / fb), (a, b)
                # the backward pass adds every contribution to -0.0 instead of assigning the first
                assert bits(-0.0 + a) == bits(a)


def test_constant_subexpressions_get_no_gradient() -> None:
    # op nodes of constants only, in first and last operand places, with one or several constants
    texts = [
        "k = 2 * 3\ny = a * k + sin(4)\n",
        "k = 2\nm = k * 5\ny = m * a + a * m\n",
        "y = a * 2 + 3 * a + (2 - 5) * a\n",
        "y = sin(a) * 0.5\n",
        "y = (a + 1) * (2 + 3)\n",
    ]
    for text in texts:
        values = {"a": np.array(0.7)}
        check_bits(text, values)
        g = compile_src(text, values)
        res = evaluate(g, values, strategy="scalar")
        need = g.needs_grad()
        assert [gr is not None for gr in res.grads] == need


# -- graphs with a few tensors: the float loop runs the tensor nodes through their records ----------------------------

MIXED_FORMS = [
    "x{k} = tanh(x{j} * 1.0001 + a)",
    "x{k} = sin(x{j}) - b ^ 2 / 4",
    "x{k} = max(tanh(x{j}), x{i} * 0.5, -0.5) + 0.1 * tanh(x{j})",
    "x{k} = tanh(sum([x{j}, x{i}, 1.5e-3] * [1, 2, 3]))",
    "x{k} = tanh(-x{j} + [x{i}, a][1] - relu(x{j} - x{i}))",
    "v{k} = [x{j}, x{i}, a] + x{j}\nx{k} = sum(v{k} * v{k}) * 0.1 - x{i}",
    "x{k} = mean(exp([x{j}, -x{i}]) * x{i})",
    "x{k} = dot([x{j}, a], [b, x{i}]) * 0.5",
    "x{k} = f(tanh(x{j}), c) / (1 + abs(x{i}))",
    "x{k} = x{j} * x{j} - x{i} / 3",
]


def mixed_program(rng: random.Random, n: int) -> str:
    lines = ["input a = 0.5, b = -1.25, c = 2", "def f(u, v) = u * v * 0.25 + sin(u) - v / 2", "x0 = a + b * c"]
    for k in range(1, n):
        lines.append(rng.choice(MIXED_FORMS).format(k=k, j=k - 1, i=rng.randrange(max(k - 8, 0), k)))
    lines.append(f"out = x{n - 1} + x{rng.randrange(n)}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", range(30))
def test_mixed_programs_bit_for_bit(seed: int) -> None:
    rng = random.Random(9000 + seed)
    text = mixed_program(rng, rng.randint(2, 40))
    a = rng.choice([0.5, -0.0, 0.0, 3.0, 1e300, -2.5])
    values = {"a": np.array(a), "b": np.array(rng.choice([-1.25, 0.0, 7.0])), "c": np.array(2.0)}
    g = compile_src(text, values)
    plan = scalar_plan(g, values)
    if any(s != () for s in g.shapes) and plan is not None:
        assert plan.code.mixed and not plan.batchable()
    check_bits(text, values)


def test_a_mixed_graph_takes_the_float_loop_and_a_tensor_output_is_refused() -> None:
    from cgraph_cli.errors import CgraphError

    text = "v = [a, b, 1] * a\ny = sum(v) + a * b\n"
    values = {"a": np.array(0.5), "b": np.array(2.0)}
    g = compile_src(text, values)
    plan = scalar_plan(g, values)
    assert plan is not None and plan.code.mixed
    check_bits(text, values)
    with pytest.raises(CgraphError, match="only a scalar can be differentiated"):
        evaluate(g, values, g.bindings["v"], strategy="scalar")
    big = "v = [a, b, 1] * a\n" + "".join(f"w{k} = v * {k}\n" for k in range(12)) + "y = sum(w3)\n"
    assert scalar_plan(compile_src(big, values), values) is None  # mostly tensors: the generic loop


def kernel_program(rng: random.Random, n: int) -> str:
    """Statements over ops the float loop runs itself (no NP node), each on earlier names at random."""
    names = ["i0", "i1", "i2"]
    lines = []
    for k in range(n):
        a, b = rng.choice(names), rng.choice(names[-3:])
        lines.append(f"t{k} = " + rng.choice([f"{a} + {b}", f"{a} * {b}", f"{a} - {b}", f"sin({a})", f"-{a}"]))
        names.append(f"t{k}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", range(60))
def test_the_all_consumed_shortcut_gives_the_walks_backward_lists(seed: int, monkeypatch) -> None:
    """compile_back skips its reachability walk when every node below the output has a consumer that passes it a
    gradient: the lists it gives are the walk's, for every output of random programs (an output in the middle
    leaves nodes unreached), of Kernel ops only and of every op (NP nodes, edges without a VJP, min of three)."""
    from cgraph_cli.engine import scalar as S

    rng = random.Random(700 + seed)
    if seed % 2:
        text = kernel_program(rng, rng.randint(1, 30))
    else:
        text = random_program(rng, rng.randint(1, 30), wide=rng.random() < 0.5)
    g = compile_src(text, {f"i{k}": np.array(1.0) for k in range(3)})
    plan = scalar_plan(g)
    assert plan is not None
    real = S._all_consumed
    taken = []
    for out in range(len(g)):
        with monkeypatch.context() as m:
            m.setattr(S, "_all_consumed", lambda *a, out=out: real(*a) and not taken.append(out))
            fast = S.compile_back(plan.code, g, out)
        with monkeypatch.context() as m:
            m.setattr(S, "_all_consumed", lambda *a: False)
            walked = S.compile_back(plan.code, g, out)
        assert fast == walked, (out, text)
    assert taken or not seed % 2  # (a program of Kernel ops: the last node at least)


def test_row_forms_are_the_records_on_edge_values() -> None:
    """Every op's row form (level batching, --batch) gives its record's forward on one 0-d operand bit for bit,
    on edge values: numpy's sum of a scalar is 0.0 + x, so sum(-0.0) is +0.0, not the identity's -0.0."""
    xs = [0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, math.nan, 5e-324, 1e308, -2.5, 0.5]
    checked = 0
    with np.errstate(all="ignore"):
        for name, op in OPS.items():
            if op.rows is None or op.rows.fwd is None:
                continue
            for x in xs:
                args = [x] * max(op.arity or 1, 1)
                try:
                    ref = op.fwd(*map(np.array, args))
                except (ValueError, TypeError):
                    continue
                got = op.rows.fwd(*(np.array([a]) for a in args))
                assert bits(np.asarray(got).ravel()[0]) == bits(ref), (name, x, got, ref)
                checked += 1
    assert checked > 50


@pytest.mark.parametrize("text", ["y = sum(a) * b\n", "y = mean(a) * b\n", "y = sum(a)\n", "y = prod(a) + sum(a*b)\n"])
def test_sum_and_mean_of_a_negative_zero(text: str) -> None:
    check_bits(text, {"a": np.array(-0.0), "b": np.array(2.0)})


def test_every_strategy_runs_with_the_collector_paused_and_restores_it(monkeypatch) -> None:
    """An evaluation builds acyclic plans and results: the garbage collector is paused while it runs (whichever
    strategy, an error included) and as it was afterwards."""
    import gc

    from cgraph_cli import engine
    from cgraph_cli.engine import scalar
    from cgraph_cli.errors import CgraphError

    seen = []
    for mod, name in ((scalar, "compile_floats"), (engine, "forward")):
        real = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, _real=real, **k: seen.append(gc.isenabled()) or _real(*a, **k))
    g = compile_src("x = a * b\ny = sin(x) + a\n", {"a": np.array(0.5), "b": np.array(2.0)})
    for strategy in ("auto", "generic", "scalar", "levels", "compiled"):
        evaluate(g, {"a": np.array(0.5), "b": np.array(2.0)}, strategy=strategy)
        assert gc.isenabled()
    assert seen == [False, False]  # the plan (built once) and the generic forward pass
    with pytest.raises(CgraphError, match="only a scalar can be differentiated"):
        evaluate(compile_src("y = a * [1, 2]\n", {"a": np.array(1.0)}), {"a": np.array(1.0)})
    assert gc.isenabled()
