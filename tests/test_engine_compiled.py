"""The compiled passes of a hot scalar plan (engine/compiled.py) bit for bit against the float loop and the
generic loop: every kernel's template on edge values, random programs (through test_engine_fast.check_bits,
which runs the ``compiled`` strategy too), the tier-up after HOT runs, and the plans that are not compiled."""

from __future__ import annotations

import random

import numpy as np
import pytest
from test_engine_fast import EDGE
from test_engine_strategies import VALUES, check_bits, compile_src, random_program

from cgraph_cli.engine import compiled, evaluate
from cgraph_cli.engine.compiled import FLOAT_VJP, TEMPLATES, source
from cgraph_cli.engine.scalar import ArrayResult, _op_tables, scalar_plan
from cgraph_cli.errors import CgraphError
from cgraph_cli.ops import OPS, Kernel

SPELLING = {"add": "a + b", "sub": "a - b", "mul": "a * b", "div": "a / b", "neg": "-a"}


def kernel_programs() -> dict[int, list[str]]:
    """Per code of the loops (a Kernel, or FLOAT_VJP) the programs of each of its ops on inputs a and b (one
    statement more makes both operands of a binary op get a gradient from a second consumer)."""
    out: dict[int, list[str]] = {}
    codes = _op_tables().kernel
    for name, op in OPS.items():
        if op.kernel is Kernel.NP:
            continue
        text = f"y = {SPELLING.get(name, f'{name}(a)')}\nz = y * b + a * y\n"
        try:  # (an op the language spells otherwise, or that takes more arguments, is left out)
            compile_src(text, {"a": np.array(1.0), "b": np.array(1.0)})
        except CgraphError:
            continue
        out.setdefault(codes[name], []).append(text)
    return out


def _code_name(code: int) -> str:
    return "FLOAT_VJP" if code == FLOAT_VJP else Kernel(code).name


def test_every_kernel_has_a_template_and_a_program() -> None:
    kernels = {k.value for k in Kernel if k is not Kernel.NP} | {FLOAT_VJP}
    assert set(TEMPLATES) == kernels
    assert set(kernel_programs()) == kernels
    assert {"tanh", "exp", "log"} <= {name for name in OPS if _op_tables().kernel[name] == FLOAT_VJP}


@pytest.mark.parametrize("kernel", sorted(kernel_programs()), ids=_code_name)
def test_each_kernel_on_edge_values(kernel: int) -> None:
    """Each template gives the float loop's and numpy's bits on edge values (inf, NaN, signed zeros, subnormals,
    huge), or raises where the loop raises (then both hand the graph to numpy's rules)."""
    xs = [*EDGE[::2], 0.1, -3.0]
    for text in kernel_programs()[kernel]:
        for a in xs:
            for b in (1.5, -0.0, float("inf")):
                check_bits(text, {"a": np.array(a), "b": np.array(b)})


@pytest.mark.parametrize("seed", range(30))
def test_random_programs_compiled_bit_for_bit(seed: int) -> None:
    rng = random.Random(11000 + seed)
    text = random_program(rng, rng.randint(3, 120), wide=seed % 3 == 0)
    values = {f"i{k}": np.array(rng.choice(VALUES + [-0.0, 1e300, -1e-310])) for k in range(3)}
    check_bits(text, values)
    g = compile_src(text, values)
    plan = scalar_plan(g, values)
    if plan is not None and not plan.code.np_at:  # the kernel programs are the ones compiled
        assert plan.hot(g.output, now=True) is not None


def test_a_plan_is_compiled_on_its_hot_run(monkeypatch) -> None:
    monkeypatch.setattr(compiled, "HOT", 4)
    text = "x = a\n" + "x = sin(x) * 0.999 + b\n" * 30 + "y = tanh(x) / b\n"
    values = {"a": np.array(0.3), "b": np.array(-1.25)}
    g = compile_src(text, values)
    ref = evaluate(compile_src(text, values), values, strategy="generic")
    plan = scalar_plan(g, values)
    for run in range(1, 7):
        res = evaluate(g, values)
        assert isinstance(res, ArrayResult)
        assert (g.output in plan._compiled) == (run >= 4), run
        assert res.value_array.tobytes() == np.array([float(v) for v in ref.values]).tobytes()
        want = np.array([0.0 if x is None else float(x) for x in ref.grads])
        assert res.grad_array.tobytes() == want.tobytes()
    other = g.bindings["x"] - 3  # another output: its own count
    evaluate(g, values, other)
    assert other not in plan._compiled


def test_plans_with_np_nodes_or_tensors_are_not_compiled() -> None:
    for text in ("y = max(a, b, 1) * a\n", "v = [a, b, 1] * a\ny = sum(v) + a * b\n"):
        values = {"a": np.array(0.5), "b": np.array(2.0)}
        g = compile_src(text, values)
        plan = scalar_plan(g, values)
        assert plan is not None
        assert plan.hot(g.output, now=True) is None
        assert source(plan.code, plan.back(g.output), g.output) is None
        check_bits(text, values)  # the compiled strategy falls back to the loop


def test_a_plan_of_too_many_statements_stays_on_the_loop(monkeypatch) -> None:
    text = "x = a\n" + "x = sin(x) * 0.999 + a\n" * 10 + "y = x * a\n"  # 32 op nodes, 55 statements
    values = {"a": np.array(0.5)}
    for cap, compiles in ((31, False), (54, False), (55, True)):
        monkeypatch.setattr(compiled, "MAX_STATEMENTS", cap)
        g = compile_src(text, values)
        plan = scalar_plan(g, values)
        assert (plan.hot(g.output, now=True) is not None) == compiles, cap
        check_bits(text, values)
    text = "".join(f"c{k} = {k}\n" for k in range(100)) + "y = a * 2\n"  # 2 statements, 103 nodes
    for cap, compiles in ((60, False), (103, True)):
        monkeypatch.setattr(compiled, "MAX_STATEMENTS", cap)
        g = compile_src(text, values)
        assert (scalar_plan(g, values).hot(g.output, now=True) is not None) == compiles, cap


def test_the_source_is_one_statement_per_operation_and_skips_constants() -> None:
    text = "c = 3\ny = a * c + sin(a)\n"
    values = {"a": np.array(0.5)}
    g = compile_src(text, values)
    plan = scalar_plan(g, values)
    src, _ = source(plan.code, plan.back(g.output), g.output)
    c = g.bindings["c"]
    lines = [line.strip() for line in src.splitlines()[2:-1]]
    ops = [i for i, op in enumerate(g.ops) if op not in ("input", "const")]
    assert lines[: len(ops)] == [
        f"v{i} = " + {"mul": "v{0} * v{1}", "sin": "math_sin(v{0})", "add": "v{0} + v{1}"}[g.ops[i]].format(*g.args[i])
        for i in ops
    ]
    assert not any(line.startswith(f"g{c} ") for line in lines)  # a constant needs no gradient
    a = g.inputs["a"]
    (line,) = [line for line in lines if line.startswith(f"g{a} ")]  # written once: its contributions' sum
    assert line.count(" + ") == 1


def test_a_gradient_of_many_contributions_is_summed_in_bounded_statements() -> None:
    text = "y = " + " + ".join(f"sin(a * {k / 7!r})" for k in range(1, 80)) + "\n"
    values = {"a": np.array(0.3)}
    g = compile_src(text, values)
    plan = scalar_plan(g, values)
    src, _ = source(plan.code, plan.back(g.output), g.output)
    a = g.inputs["a"]
    lines = [line.strip() for line in src.splitlines() if line.strip().startswith(f"g{a} ")]
    assert [line.count(" + ") for line in lines] == [31, 32, 15]  # 79 terms: 32, then g + 32 more, g + 15
    check_bits(text, values)


def test_a_float_exception_in_the_compiled_passes_follows_numpys_rules() -> None:
    values = {"a": np.array(1.0), "b": np.array(0.0)}
    for text in ("y = a / b + a\n", "y = sqrt(b - a) * a\n", "y = sin(a / b) + b\n"):
        check_bits(text, values)
        g = compile_src(text, values)
        res = evaluate(g, values, strategy="compiled")
        assert not isinstance(res, ArrayResult) or res.plan is None  # handed to the generic loop


def test_program_eval_in_a_loop_reuses_its_graph_and_gets_hot(monkeypatch) -> None:
    """Program.eval compiles the program once per input shapes (a graph depends on the values only through their
    shapes), so a loop of evaluations runs one graph whose plan gets hot; every result is a fresh program's."""
    import cgraph_cli as cg

    monkeypatch.setattr(compiled, "HOT", 5)
    text = "x = a\n" + "x = sin(x) * 0.999 + b\n" * 20 + "y = x * a\n"
    p = cg.parse(text)
    for k in range(8):
        a = 0.3 + k / 7
        ev = p.eval(a=a, b=-1.25)
        ref = cg.parse(text).eval(a=a, b=-1.25)
        assert (ev.value, ev.grad) == (ref.value, ref.grad)
    (g,) = p._graphs.values()
    assert list(g.derived["scalar_plan"]._compiled) == [g.output]
    q = cg.parse("y = sum(a * b)")
    for n in (2, 2, 3, 2, 4, 5, 6, 7):  # a graph per shape of a
        assert q.eval(a=np.arange(n), b=0.5).value == 0.25 * n * (n - 1)
    assert sorted(shapes[0][1] for shapes, *_ in q._graphs) == [(4,), (5,), (6,), (7,)]  # the last four kept


def test_the_first_node_as_the_output() -> None:
    """An output before every op node (the first input, ``--of a``): no op node is on the way back, so an infinite
    value elsewhere (-0.0 * inf) cannot reach its gradient, which is 1."""
    import cgraph_cli as cg

    for text in ("y = a * b\n", "y = a / b\nz = y * a\n"):
        for b in (np.inf, 0.0, 2.0):
            values = {"a": np.array(1.0), "b": np.array(b)}
            g = compile_src(text, values)
            ref = evaluate(g, values, g.inputs["a"], strategy="generic")
            assert float(ref.grads[g.inputs["a"]]) == 1.0 and all(where == "forward" for where, _ in ref.nonfinite)
            for strategy in ("scalar", "levels", "auto", "compiled"):
                res = evaluate(g, values, g.inputs["a"], strategy=strategy)
                assert float(res.grads[g.inputs["a"]]) == 1.0 and res.nonfinite == ref.nonfinite, (strategy, text, b)
        assert cg.parse(text).eval(a=1, b=np.inf, of="a").grad["a"] == 1.0


def test_a_programs_graphs_are_kept_by_last_use_and_their_constants_are_read_only() -> None:
    import cgraph_cli as cg

    q = cg.parse("input x = [1, 2]\nc = [1, 2, 3]\nt = transpose(c)\ny = sum(x * a) + sum(c) + sum(t) + sum(v)\n")
    for n in (2, 3, 2, 4, 5, 6, 2, 7):  # last used: 4, 5, 6, 2, 7 -> the last four: 5, 6, 2, 7
        q.eval(a=1.0, v=np.ones(n))
    assert [dict(shapes)["v"] for shapes, *_ in q._graphs] == [(5,), (6,), (2,), (7,)]
    q.eval(v=np.ones(7), a=1.0)  # the same shapes in another order: the same graph
    assert len(q._graphs) == 4
    ev = q.eval(a=2.0, v=np.ones(2))
    for name in ("x", "c", "t"):  # handed out by every evaluation: the program's own values stay as written
        with pytest.raises(ValueError, match="read-only"):
            ev[name].value[...] *= 50
    assert q.eval(a=2.0, v=np.ones(2)).value == 6 + 6 + 6 + 2


def test_threads_sharing_a_hot_plan_compile_it_once(monkeypatch) -> None:
    import threading

    monkeypatch.setattr(compiled, "HOT", 20)
    made = []
    real = compiled.compile_passes
    monkeypatch.setattr(compiled, "compile_passes", lambda *a: made.append(1) or real(*a))
    text = "x = a\n" + "x = sin(x) * 0.999 + b\n" * 40 + "y = x * a\n"
    values = {"a": np.array(0.3), "b": np.array(-1.25)}
    g = compile_src(text, values)
    want = evaluate(compile_src(text, values), values, strategy="scalar")
    bad = []

    def work() -> None:
        for _ in range(60):
            res = evaluate(g, values)
            if res.grad_array.tobytes() != want.grad_array.tobytes():
                bad.append(res)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bad == [] and made == [1]


def test_a_command_lines_program_keeps_no_graph() -> None:
    """``cgraph eval`` evaluates once: its Program (from the options) compiles the graph for that evaluation and
    keeps none, so it neither holds the graph nor makes its constants read-only; a parsed program keeps them."""
    from cgraph_cli.api import KEEP_GRAPHS, Program
    from cgraph_cli.run.request import Options

    text = "c = [1, 2]\ny = sum(c * a)\n"
    p = Program.from_options(Options(expr=text, at=("a=2",)))
    ev = p.eval()
    assert ev.value == 6.0 and p._graphs == {}
    assert ev["c"].value.flags.writeable  # (no graph is shared with a later evaluation)
    assert p.eval().value == 6.0 and p._graphs == {}
    import cgraph_cli as cg

    q = cg.parse(text)
    assert q.eval(a=2).value == 6.0 and len(q._graphs) == 1 and KEEP_GRAPHS == 4
    assert not q.eval(a=2)["c"].value.flags.writeable
