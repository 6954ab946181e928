"""Every engine strategy gives the same values and gradients as the generic (one numpy call per node) path.

Programs are generated at random over the scalar ops, with kinks (relu/abs/max/min at ties and zeros),
reassignments, user functions and domain errors (log of a negative, division by zero), so the exact
agreement of the Python float loop and the level-batched strategy with the reference is checked where
it is easiest to get wrong.
"""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest

from cgraph_cli.engine import evaluate
from cgraph_cli.errors import Source
from cgraph_cli.ir.graph import build_graph
from cgraph_cli.lang.parser import parse
from cgraph_cli.ops import OPS

# from the op records: every function that runs on scalars (it has a row form), so a new op is strategy-tested
_SCALAR_CALLS = [(c, op) for op in OPS.values() if op.rows is not None for c in op.calls]
UNARY = sorted({c.name for c, op in _SCALAR_CALLS if c.min_args == 1}) + ["-"]
BINARY = ["+", "-", "*", "/", "^", "max2", "min2", "min3"]
BINARY += sorted({c.name for c, op in _SCALAR_CALLS if c.min_args == 2 and c.max_args == 2})
BINARY += ["<", "<=", ">", ">=", "==", "!="]  # the comparisons (0/1, no gradient), written as operators
DOMAIN = {c.name: op.domain for c, op in _SCALAR_CALLS}
VALUES = [0.0, 1.0, -1.0, 2.0, 0.5, -0.5, 3.0, -2.0, 1e-3, 0.25]


def random_program(rng: random.Random, n_stmts: int, n_inputs: int = 3, wide: bool = False) -> str:
    inputs = [f"i{k}" for k in range(n_inputs)]
    names = list(inputs)
    lines = []
    if rng.random() < 0.5:
        lines.append("def f(u, v) = u * v + sin(u) - v / 2")
        lines.append("def h(u) = f(u, u) + relu(u)")
        funcs = True
    else:
        funcs = False

    def operand() -> str:
        r = rng.random()
        if r < 0.15:
            return repr(rng.choice(VALUES))
        if wide or r < 0.5:
            return rng.choice(names)
        return names[-1] if r < 0.8 else rng.choice(names[-4:])

    for k in range(n_stmts):
        r = rng.random()
        if funcs and r < 0.1:
            expr = f"f({operand()}, {operand()})" if rng.random() < 0.5 else f"h({operand()})"
        elif r < 0.45:
            op = rng.choice(UNARY)
            x = operand()
            if op == "-":
                expr = f"-{x}"
            elif DOMAIN[op][0] > 0:  # log, sqrt: mostly inside their domain
                expr = f"{op}(abs({x}) + 0.5)" if rng.random() < 0.8 else f"{op}({x})"
            elif DOMAIN[op] != (-2.0, 2.0) or op == "exp":  # tan; exp chains would overflow
                expr = f"{op}(sin({x}))"
            else:
                expr = f"{op}({x})"
        else:
            op = rng.choice(BINARY)
            a, b = operand(), operand()
            if op == "max2":
                expr = f"max({a}, {b})"
            elif op == "min2":
                expr = f"min({a}, {b})"
            elif op == "min3":
                expr = f"min({a}, {b}, {operand()})"
            elif op in ("pow", "atan2") or DOMAIN.get(op, (-2.0, 2.0))[0] > 0:
                expr = f"{op}(abs({a}) + 0.5, sin({b}))"
            elif op in DOMAIN:
                expr = f"{op}({a}, {b})"
            elif op == "^":
                expr = f"{a} ^ 2" if rng.random() < 0.5 else f"(abs({a}) + 1) ^ sin({b})"
            elif op == "/" and rng.random() < 0.8:
                expr = f"{a} / (abs({b}) + 1)"
            else:
                expr = f"{a} {op} {b}"
        if rng.random() < 0.15 and len(names) > n_inputs:
            target = rng.choice(names[n_inputs:])  # reassignment
        else:
            target = f"t{k}"
        lines.append(f"{target} = {expr}")
        names.append(target)
    lines.append(f"out = {' + '.join(rng.sample(names[n_inputs:], min(3, len(names) - n_inputs)))}")
    return "\n".join(lines) + "\n"


def compile_src(text: str, values: dict):
    src = Source(text, "<test>")
    return build_graph(parse(src), src, values)


def bits(x) -> tuple:
    """The float64 bits of a value (any NaN alike), None for None."""
    if x is None:
        return None  # type: ignore[return-value]
    a = np.asarray(x, dtype=np.float64).ravel()
    return tuple("nan" if v != v else struct.pack("<d", v) for v in a.tolist())


def check_bits(text: str, values: dict) -> None:
    """Every fast strategy against the generic loop: the same output, and per node the same shape and the same
    float64 bits of value and gradient; the same non-finite report."""
    ref = evaluate(compile_src(text, values), values, strategy="generic")
    for strategy in ("scalar", "levels", "auto", "compiled"):
        g = compile_src(text, values)
        res = evaluate(g, values, strategy=strategy)
        assert res.out == ref.out
        for i in range(len(g)):
            assert np.shape(res.values[i]) == np.shape(ref.values[i]), (strategy, i, g.ops[i], text)
            assert bits(res.values[i]) == bits(ref.values[i]), (strategy, i, g.ops[i], res.values[i], ref.values[i])
            assert bits(res.grads[i]) == bits(ref.grads[i]), (strategy, i, g.ops[i], res.grads[i], ref.grads[i], text)
        assert res.nonfinite == ref.nonfinite, (strategy, text)
        assert np.array_equal(res.nonfinite_nodes(), ref.nonfinite_nodes()), (strategy, text)


@pytest.mark.parametrize("seed", range(60))
def test_random_narrow_programs(seed: int) -> None:
    rng = random.Random(seed)
    text = random_program(rng, rng.randint(3, 40))
    values = {f"i{k}": np.array(rng.choice(VALUES)) for k in range(3)}
    check_bits(text, values)


@pytest.mark.parametrize("seed", range(20))
def test_random_wide_programs(seed: int) -> None:
    rng = random.Random(1000 + seed)
    text = random_program(rng, rng.randint(200, 400), n_inputs=8, wide=True)
    values = {f"i{k}": np.array(rng.choice(VALUES)) for k in range(8)}
    check_bits(text, values)


def test_kinks_and_ties() -> None:
    text = "y = relu(a) + abs(b) + max(a, b, c) + min(a, c) + max(a) + relu(-a) * abs(a - c)\n"
    for vals in ([0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, -1.0, 2.0], [2.0, 2.0, 2.0]):
        check_bits(text, {k: np.array(v) for k, v in zip("abc", vals)})


def test_domain_errors_fall_back_to_numpy_rules() -> None:
    # x / 0 and log(-1) raise on Python floats; numpy gives inf and nan with a warning
    for text in ("y = a / b + log(b - 1)\n", "y = sqrt(b - 1) * a\n", "y = sin(a / b)\n", "y = 1 / (a - a) * b\n"):
        check_bits(text, {"a": np.array(1.0), "b": np.array(0.0)})


def test_wide_graph_chooses_levels_and_agrees() -> None:
    lines = [f"y{k} = sin(x{k % 7}) * x{(k + 3) % 7} + {k}" for k in range(600)]
    lines.append("out = " + " + ".join(f"y{k}" for k in range(0, 600, 50)))
    text = "\n".join(lines) + "\n"
    values = {f"x{k}": np.array(0.1 * k - 0.3) for k in range(7)}
    g = compile_src(text, values)
    from cgraph_cli.engine.scalar import scalar_plan

    plan = scalar_plan(g, values)
    assert plan is not None and plan.wide(g.output)
    check_bits(text, values)


def test_deep_chain_has_no_recursion_limit() -> None:
    text = "x = a\n" + "x = x * 0.999 + 0.001\n" * 30000
    values = {"a": np.array(0.5)}
    g = compile_src(text, values)
    res = evaluate(g, values)
    # x_{k+1} = 0.999 x_k + 0.001: dx_n/da = 0.999^n
    assert res.grads[g.inputs["a"]] == pytest.approx(0.999**30000, rel=1e-9)


def test_unreached_and_constant_nodes() -> None:
    text = "c = 2 * 3\nu = a * 5\ny = b * c\noutput y\n"
    check_bits(text, {"a": np.array(1.0), "b": np.array(2.0)})
    g = compile_src(text, {"a": np.array(1.0), "b": np.array(2.0)})
    res = evaluate(g, {"a": np.array(1.0), "b": np.array(2.0)})
    assert res.grads[g.bindings["c"]] is None  # does not depend on an input
    assert res.grads[g.bindings["u"]] == 0  # depends on one but does not reach y
