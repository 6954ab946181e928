"""Property tests (hypothesis).

1. Random scalar programs (several inputs, reassignment, user functions, smooth
   ops on safe domains) at random points: the engine's gradients match central
   finite differences of its own forward pass.
2. Random text never raises anything but CgraphError from the parser, the builder
   or the whole evaluation.
3. The reverse pass is linear in the seed: doubling every input's contribution
   via `y = 2 * f` doubles every gradient.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cgraph_cli import engine as engine_mod
from cgraph_cli.engine import evaluate
from cgraph_cli.engine.reference import forward
from cgraph_cli.errors import CgraphError, Source
from cgraph_cli.ir.graph import build_graph
from cgraph_cli.lang.parser import parse
from cgraph_cli.ops import CONSTRUCTORS, FUNCTIONS
from cgraph_cli.run.program import compile_program, run
from cgraph_cli.run.values import bind_inputs

# the engine's evaluation strategies, if it has several (None: the default call)
STRATEGIES = getattr(engine_mod, "STRATEGIES", (None,))

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

INPUTS = ["a", "b", "c"]
CONSTS = ["0.5", "2", "1.5", "3", ".25", "1e-1", "pi"]

# smooth wrappers that keep the argument inside each function's domain
UNARY = [
    "sin({})",
    "cos({})",
    "tanh({})",
    "sigmoid({})",
    "softplus({})",
    "exp(tanh({}))",
    "log(1 + square({}))",
    "ln(2 + sin({}))",
    "sqrt(1 + square({}))",
    "square(tanh({}))",
    "(1 + square({}))^0.5",
    "pow(1 + square({}), -1.5)",
    "-{}",
    "({})^2",
    "abs(2 + tanh({}))",
    "relu(2 + tanh({}))",
]
BINARY = [
    "({}) + ({})",
    "({}) - ({})",
    "({}) * ({})",
    "({}) / (1 + square({}))",
    "exp(-square({})) * ({})",
    "max(tanh({}) + 5, ({}) * 0)",  # never tied: the first always wins, smooth
]


@st.composite
def expressions(draw, names: list[str], depth: int, funcs: dict[str, int]):
    """An expression over ``names`` (text), at most ``depth`` deep."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        if draw(st.booleans()) or not names:
            return draw(st.sampled_from(CONSTS))
        return draw(st.sampled_from(names))
    kind = draw(st.sampled_from(["unary", "binary", "binary", "call"] if funcs else ["unary", "binary"]))
    if kind == "unary":
        return draw(st.sampled_from(UNARY)).format(draw(expressions(names, depth - 1, funcs)))
    if kind == "binary":
        tmpl = draw(st.sampled_from(BINARY))
        return tmpl.format(draw(expressions(names, depth - 1, funcs)), draw(expressions(names, depth - 1, funcs)))
    fname = draw(st.sampled_from(sorted(funcs)))
    args = [draw(expressions(names, depth - 1, funcs)) for _ in range(funcs[fname])]
    return f"{fname}({', '.join(args)})"


@st.composite
def programs(draw):
    """(source text, input values) for a random scalar program."""
    n_in = draw(st.integers(1, 3))
    inputs = INPUTS[:n_in]
    lines: list[str] = []
    funcs: dict[str, int] = {}
    if draw(st.booleans()):
        lines.append(f"def f(u, v) = {draw(expressions(['u', 'v'], 2, {}))}")
        funcs["f"] = 2
        if draw(st.booleans()):
            lines.append(f"def g(w) = f(w, {draw(expressions(['w'], 1, {}))}) * {draw(expressions(['w'], 1, {}))}")
            funcs["g"] = 1
    if draw(st.booleans()):
        decl = ", ".join(f"{n} = {draw(st.sampled_from(['0.5', '-1', '2']))}" for n in inputs)
        lines.append(f"input {decl}")
        declared = True
    else:
        declared = False
    visible = list(inputs)
    assigned: list[str] = []
    targets = ["t", "s", "r"] + ([] if declared else inputs)  # reassigning an undeclared input is fine
    for _ in range(draw(st.integers(1, 5))):
        target = draw(st.sampled_from(targets))
        lines.append(f"{target} = {draw(expressions(visible, 3, funcs))}")
        if target not in visible:
            visible.append(target)
        assigned.append(target)
    ending = draw(st.sampled_from(["last", "output", "bare"]))
    if ending == "output":
        lines.append(f"output {draw(st.sampled_from(assigned))}")
    elif ending == "bare":
        lines.append(draw(expressions(visible, 2, funcs)))
    sep = draw(st.sampled_from(["\n", "; ", "\n# comment\n"]))
    values = {n: draw(st.floats(-1.5, 1.5, allow_nan=False).map(lambda x: round(x, 3))) for n in inputs}
    return sep.join(lines), values


@SETTINGS
@given(programs())
def test_random_programs_gradients_match_finite_differences(prog):
    src, raw = prog
    vals = {k: np.asarray(v, dtype=np.float64) for k, v in raw.items()}
    g = compile_program(Source(src), vals)
    given_vals = {k: v for k, v in vals.items() if k in g.inputs}
    inputs = bind_inputs(g, given_vals)
    res = evaluate(g, inputs)
    f0 = float(res.values[res.out])
    assert math.isfinite(f0), src
    h = 1e-5
    numeric = {}
    for name in g.inputs:
        plus = dict(inputs)
        minus = dict(inputs)
        plus[name] = inputs[name] + h
        minus[name] = inputs[name] - h
        fp = float(forward(g, plus)[res.out])
        fm = float(forward(g, minus)[res.out])
        numeric[name] = (fp - fm) / (2 * h)
    for strategy in STRATEGIES:  # the engine's fast paths and its generic reference path
        r = evaluate(g, inputs, strategy=strategy) if strategy else res
        assert float(r.values[r.out]) == f0, (src, strategy)
        for name, i in g.inputs.items():
            analytic = float(r.grads[i])
            scale = max(1.0, abs(f0), abs(numeric[name]))
            assert abs(analytic - numeric[name]) <= 1e-4 * scale, (src, raw, strategy, name, analytic, numeric[name])


@SETTINGS
@given(programs())
def test_gradient_is_linear_in_the_output(prog):
    """d(2 * out)/dx = 2 * d(out)/dx, and the value doubles (the graph is built the same way)."""
    src, raw = prog
    vals = {k: np.asarray(v, dtype=np.float64) for k, v in raw.items()}
    g = compile_program(Source(src), vals)
    given_vals = {k: v for k, v in vals.items() if k in g.inputs}
    base = evaluate(g, bind_inputs(g, given_vals))
    out_name = g.label(base.out)
    assume(out_name != "out")  # a bare final expression must stay last
    g2 = compile_program(Source(src + f"\nzz_twice = 2 * {out_name}"), vals)
    res2 = evaluate(g2, bind_inputs(g2, given_vals), g2.bindings["zz_twice"])
    assert np.isclose(res2.values[res2.out], 2 * base.values[base.out], rtol=1e-12, atol=1e-12)
    for name, i in g.inputs.items():
        assert np.isclose(res2.grads[g2.inputs[name]], 2 * base.grads[i], rtol=1e-12, atol=1e-12)


# -- random text: only CgraphError ---------------------------------------------------------------

TOKENS = [
    "a", "b", "x", "f", "y", "z", "pi", "out", "1", "2", "0", "0.5", ".5", "1e-3", "-1", "3",
    "+", "-", "*", "/", "@", "^", "**", "(", ")", "[", "]", ",", ":", ";", "=", "\n", "#", " ", "\\\n",
    "input", "output", "def", "sum", "max", "min", "exp", "log", "sqrt", "reshape", "softmax", "eye",
    "zeros", "ones", "randn", "dot", "transpose", "norm", "mean", "logsumexp", "sigmod", "x[1]", "x[0:2]",
    "[1, 2]", "[[1, 2], [3, 4]]", "def f(u) = u", "f(1)", "f(x, y)",
]  # fmt: skip


def build_only(text: str) -> None:
    src = Source(text, "<fuzz>")
    try:
        stmts = parse(src)
        build_graph(stmts, src)
    except CgraphError as e:
        assert e.render().startswith("error: ")


def run_all(text: str) -> None:
    """What the CLI does: compile to learn the inputs, then run with every input = 1."""
    src = Source(text, "<fuzz>")
    try:
        g = build_graph(parse(src), src)
        run(src, {name: np.array(1.0) for name in g.inputs if name not in g.defaults})
    except CgraphError as e:
        assert e.render().startswith("error: ")


@SETTINGS
@given(st.text(max_size=80))
def test_arbitrary_text_raises_only_cgraph_error(text):
    build_only(text)


@SETTINGS
@given(st.lists(st.sampled_from(TOKENS), max_size=25).map("".join))
def test_token_soup_raises_only_cgraph_error(text):
    run_all(text)


@SETTINGS
@given(st.lists(st.sampled_from(TOKENS), max_size=25).map(" ".join))
def test_spaced_token_soup_raises_only_cgraph_error(text):
    run_all(text)


@SETTINGS
@given(st.text(alphabet="ab12.e+-*/^@()[],:;=\n #", max_size=60))
def test_symbol_text_raises_only_cgraph_error(text):
    run_all(text)


# -- random tensor expressions over inputs of random shapes: only CgraphError ---------------------

SHAPES = [(), (2,), (3,), (2, 2), (1, 2), (2, 1), (0,), (2, 0), (2, 2, 2)]
ATOMS = ["x", "y", "s", "1", "0", "-1", "[1, 2]", "[[1, 2], [3, 4]]", "x[0]", "x[:, 1]", "x[::-1]", "y[1:]"]
FNAMES = sorted(FUNCTIONS) + list(CONSTRUCTORS)


@st.composite
def tensor_exprs(draw, depth: int = 3):
    if depth == 0 or draw(st.integers(0, 4)) == 0:
        return draw(st.sampled_from(ATOMS))
    if draw(st.booleans()):
        op = draw(st.sampled_from(["+", "-", "*", "/", "@", "^"]))
        return f"({draw(tensor_exprs(depth - 1))} {op} {draw(tensor_exprs(depth - 1))})"
    fname = draw(st.sampled_from(FNAMES))
    n = draw(st.integers(1, 3))
    args = [draw(st.one_of(tensor_exprs(depth - 1), st.sampled_from(["0", "1", "-1", "2"]))) for _ in range(n)]
    return f"{fname}({', '.join(args)})"


@SETTINGS
@given(tensor_exprs(), st.sampled_from(SHAPES), st.sampled_from(SHAPES))
def test_random_tensor_programs_raise_only_cgraph_error(expr, sx, sy):
    text = f"z = {expr}\nw = sum(z)"
    vals = {"x": np.ones(sx), "y": np.arange(float(np.prod(sy))).reshape(sy), "s": np.array(0.5)}
    src = Source(text, "<fuzz>")
    try:
        g = build_graph(parse(src), src, vals)
        res = run(src, {n: vals[n] for n in g.inputs})
    except CgraphError as e:
        assert e.render().startswith("error: ")
        return
    # the inferred shapes are the computed ones
    for i, shape in enumerate(res.graph.shapes):
        if shape is not None:
            assert tuple(shape) == np.shape(res.values[i]), (text, i, res.graph.ops[i])


# -- random smooth tensor programs: gradients vs finite differences -----------------------------

TENSOR_INPUTS = {"X": (2, 3), "v": (3,), "s": ()}


@st.composite
def typed(draw, kind: str, depth: int):
    """A smooth expression of shape () ("S"), (3,) ("V") or (2, 3) ("M")."""
    leaf = {"S": ["s", "0.5", "2"], "V": ["v", "[1, -0.5, 2]"], "M": ["X", "[[1, 2, 3], [0.5, -1, 0]]"]}
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(leaf[kind]))
    sub = lambda k: "(" + draw(typed(k, depth - 1)) + ")"  # noqa: E731
    choices = {
        "S": [
            lambda: f"sum({sub('V')})",
            lambda: f"mean({sub('M')})",
            lambda: f"norm(1 + square({sub('V')}))",
            lambda: f"logsumexp({sub('V')})",
            lambda: f"dot({sub('V')}, {sub('V')})",
            lambda: f"({sub('V')} @ {sub('V')})",
            lambda: f"{sub('M')}[1, -1]",
            lambda: f"{sub('V')}[0]",
            lambda: f"sum({sub('M')} * {sub('M')})",
        ],
        "V": [
            lambda: f"[{sub('S')}, {sub('S')}, {sub('S')}]",
            lambda: f"{sub('M')}[0]",
            lambda: f"{sub('M')}[1, ::-1]",
            lambda: f"sum({sub('M')}, 0)",
            lambda: f"mean({sub('M')}, -2)",
            lambda: f"softmax({sub('V')})",
            lambda: f"transpose({sub('M')}) @ [1, -2]",
            lambda: f"reshape({sub('M')}, -1)[::2]",
            lambda: f"({sub('V')} * {sub('S')})",
        ],
        "M": [
            lambda: f"({sub('M')} + {sub('V')})",
            lambda: f"({sub('M')} * {sub('S')})",
            lambda: f"softmax({sub('M')}, 0)",
            lambda: f"reshape(transpose({sub('M')}), 2, 3)",
            lambda: f"[{sub('V')}, {sub('V')}]",
            lambda: f"[[1, 0], [0.5, 2]] @ {sub('M')}",
        ],
    }[kind]
    which = draw(st.integers(0, len(choices) + 2))
    if which < len(choices):
        return choices[which]()
    if which == len(choices):
        return draw(st.sampled_from(UNARY)).format(sub(kind))
    return draw(st.sampled_from(BINARY[:4])).format(sub(kind), sub(kind))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(typed("S", 4), st.integers(0, 2**32 - 1))
def test_random_tensor_programs_gradients_match_finite_differences(expr, seed):
    src = f"y = {expr}"
    rng = np.random.default_rng(seed)
    vals = {k: rng.uniform(-1, 1, size=shape) for k, shape in TENSOR_INPUTS.items()}
    g = compile_program(Source(src), vals)
    vals = {k: v for k, v in vals.items() if k in g.inputs}
    res = evaluate(g, bind_inputs(g, vals))
    f0 = float(res.values[res.out])
    assert math.isfinite(f0), src
    h = 1e-6
    for name, i in g.inputs.items():
        assert np.shape(res.grads[i]) == np.shape(vals[name])
        for idx in np.ndindex(*np.shape(vals[name])):
            plus = {k: np.array(v, copy=True) for k, v in vals.items()}
            minus = {k: np.array(v, copy=True) for k, v in vals.items()}
            plus[name][idx] += h
            minus[name][idx] -= h
            numeric = (float(forward(g, plus)[res.out]) - float(forward(g, minus)[res.out])) / (2 * h)
            analytic = float(np.asarray(res.grads[i])[idx])
            assert abs(analytic - numeric) <= 1e-5 * max(1.0, abs(f0), abs(numeric)), (src, name, idx)


@SETTINGS
@given(st.lists(st.text(alphabet="ab=,[]-+.e1 0pinfa_x;", max_size=20), max_size=3))
def test_random_at_values_raise_only_cgraph_error(specs):
    from cgraph_cli.run.values import parse_at

    try:
        values = parse_at(specs)
    except CgraphError as e:
        assert e.render().startswith("error: --at")
        return
    for v in values.values():
        assert v.dtype == np.float64
