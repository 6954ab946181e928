"""``explain --cost``: the ops of one forward pass, of reverse mode and of forward mode for all gradients,
counted as the engine runs them; and ``check --modes``: forward mode against reverse mode."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from cgraph_cli.analysis.check import check_modes
from cgraph_cli.analysis.explain import cost
from cgraph_cli.errors import Source
from cgraph_cli.ops import OPS
from cgraph_cli.run.program import compile_program
from cgraph_cli.run.values import bind_inputs
from tests.conftest import EXAMPLES, run_cli


def _json(*args):
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_the_lecture_counted_by_hand():
    """z = (a + b)(b + c): 3 ops forward; backward: x*y gives 2 VJPs, each add 2: 6; forward mode moving a
    runs the JVPs of x and z (2), moving b of x, y and z (3), moving c of y and z (2)."""
    d = _json("explain", str(EXAMPLES / "lecture.cg"), "--cost", "--format", "json")
    assert (d["forward_pass"], d["backward_pass"], d["reverse_mode"]) == (3, 6, 9)
    assert [(i["name"], i["entries"], i["jvp_ops"]) for i in d["inputs"]] == [("a", 1, 2), ("b", 1, 3), ("c", 1, 2)]
    assert d["forward_mode"] == 3 * 3 + 2 + 3 + 2 and d["forward_mode_passes"] == 3
    assert d["ratio"] == pytest.approx(16 / 9)


def test_the_mlp_forward_mode_costs_a_pass_per_parameter():
    d = _json("explain", str(EXAMPLES / "mlp.cg"), "--cost", "--format", "json")
    entries = {i["name"]: i["entries"] for i in d["inputs"]}
    assert entries == {"x": 3, "t": 2, "W1": 12, "b1": 4, "W2": 8, "b2": 2}
    assert d["forward_mode_passes"] == 31
    assert d["forward_mode"] == sum(i["entries"] * (d["forward_pass"] + i["jvp_ops"]) for i in d["inputs"])
    assert d["ratio"] > 10  # reverse mode: one backward pass for all 31 gradients


def test_data_inputs_cost_no_pass_in_either_mode():
    """An input declared data has no gradient: reverse mode runs no VJP toward it and forward mode no pass
    for it (it counted a pass per entry of X, which inflated the ratio)."""
    src = "input data X[3]\ny = sum(X * w)"
    d = _json("explain", "-e", src, "--at", "X=[1,2,3],w=2", "--cost", "--format", "json")
    assert [(i["name"], i["entries"]) for i in d["inputs"]] == [("w", 1)]
    assert d["forward_mode_passes"] == 1
    text = run_cli("explain", "-e", src, "--at", "X=[1,2,3],w=2", "--cost").stdout
    assert "= 1 pass, one per input entry" in text and "(1 input entry, 1 output entry)" in text
    text = run_cli("explain", "-e", "input data X\ny = X * 2", "--at", "X=1", "--cost").stdout
    assert "one forward pass (the values):     1 op\n" in text and "(0 VJPs)" in text  # (1 op, not 1 ops)
    assert "forward mode / reverse mode:       n/a" in text  # no input is differentiated: no ratio (was 0×)


def test_the_counts_are_the_ops_the_engine_ran():
    """Independently: the forward pass runs one op per op node on the way to the output; the backward pass
    one VJP per (op node, operand that depends on an input)."""
    g = compile_program(Source((EXAMPLES / "mlp.cg").read_text()), {})
    inputs = bind_inputs(g, {})
    c = cost(g, inputs, g.output)
    anc, need = g.ancestors(g.output), g.needs_grad()
    ops = [i for i in range(g.output + 1) if anc[i] and g.ops[i] in OPS]
    assert c.forward_ops == len([i for i in range(g.output + 1) if g.ops[i] in OPS])
    assert c.backward_ops == sum(1 for i in ops if need[i] for j in g.args[i] if need[j])


def test_cost_text():
    r = run_cli("explain", str(EXAMPLES / "lecture.cg"), "--cost")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "Cost of all the derivatives of z, counted in the ops the engine ran on this graph"
    assert "  one forward pass (the values):     3 ops" in lines
    assert any(ln.startswith("  forward mode / reverse mode:       1.78×") for ln in lines)
    r = run_cli("explain", str(EXAMPLES / "lecture.cg"), "--cost", "--mode", "forward")
    assert (r.returncode, r.stderr) == (
        2,
        "error: --cost compares both modes: it cannot be combined with --mode or --tangent\n",
    )


def test_check_modes_passes_and_reports():
    r = run_cli("check", str(EXAMPLES / "mlp.cg"), "--modes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok: forward and reverse mode agree: ⟨v, J t⟩ = ⟨Jᵀv, t⟩ for 3 random t and v" in r.stdout
    d = _json("check", str(EXAMPLES / "mlp.cg"), "--modes", "--format", "json")
    assert d["modes"]["passed"] is True and len(d["modes"]["trials"]) == 3
    assert "modes" not in _json("check", str(EXAMPLES / "lecture.cg"), "--format", "json")


def test_check_modes_fails_on_a_wrong_jvp(monkeypatch):
    """An injected error in one op's JVP is caught (the cross-check can fail)."""
    from dataclasses import replace

    from cgraph_cli import ops as ops_mod

    bad = replace(OPS["tanh"], jvp=lambda ts, ans, x: ts[0] * (1 - ans * ans) * 1.001)
    monkeypatch.setitem(ops_mod.OPS, "tanh", bad)
    g = compile_program(Source("input x[3]\ny = sum(tanh(x) * x)"), {})
    m = check_modes(g, {"x": np.array([0.1, -0.5, 2.0])}, g.output)
    assert not m.passed
    ok = check_modes(g, {"x": np.array([0.1, -0.5, 2.0])}, g.output)
    monkeypatch.undo()
    assert check_modes(g, {"x": np.array([0.1, -0.5, 2.0])}, g.output).passed and not ok.passed


def test_counter_is_per_op():
    from cgraph_cli.engine.reference import forward

    g = compile_program(Source("y = sin(a) * sin(b) + a"), {})
    count: Counter = Counter()
    forward(g, {"a": np.float64(1), "b": np.float64(2)}, count=count)
    assert count == Counter({"sin": 2, "mul": 1, "add": 1})
