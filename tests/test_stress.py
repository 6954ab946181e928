"""Big programs: deep nesting, long lines, long chains give the right value and gradient.

Nothing in cgraph may recurse over the program, so none of these can hit
Python's recursion limit.  Each shape is checked through the installed `cgraph`
executable once and in-process for the variants.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cgraph_cli.errors import Source
from cgraph_cli.run.program import run
from tests.conftest import run_cli

pytestmark = pytest.mark.slow  # the quick loop (make test-fast) leaves this file out

N_DEEP = 5_000
N_WIDE = 20_000


def grads(src: str, **at):
    res = run(Source(src), {k: np.asarray(v, dtype=float) for k, v in at.items()})
    return float(res.values[res.out]), {n: res.grads[i] for n, i in res.graph.inputs.items()}


def cli_json(tmp_path, src: str, *args: str) -> dict:
    p = tmp_path / "big.cg"
    p.write_text(src)
    r = run_cli("eval", str(p), "--format", "json", *args, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    return json.loads(r.stdout)


def test_deep_parentheses_through_the_cli(tmp_path):
    src = "y = " + "(" * N_DEEP + "x * 3" + ")" * N_DEEP + " + 1"
    doc = cli_json(tmp_path, src, "--at", "x=2")
    assert doc["value"] == 7.0 and doc["gradients"] == {"x": 3.0}


def test_deeply_nested_operations():
    # x + (1 + (1 + (... )))  right-nested: the parser's stack grows 5,000 deep
    src = "y = " + "(1 + " * N_DEEP + "x" + ")" * N_DEEP
    v, g = grads(src, x=0.5)
    assert v == N_DEEP + 0.5 and g["x"] == 1.0
    # a 5,000-deep chain of functions: sin(sin(...sin(x)))
    depth = N_DEEP
    src = "y = " + "sin(" * depth + "x" + ")" * depth
    v, g = grads(src, x=0.3)
    want, dwant = 0.3, 1.0
    for _ in range(depth):
        dwant *= math.cos(want)
        want = math.sin(want)
    assert math.isclose(v, want, rel_tol=1e-12) and math.isclose(g["x"], dwant, rel_tol=1e-9)
    # unary minus and powers nest on the right
    v, g = grads("y = " + "-" * N_DEEP + "x", x=2.0)
    assert v == 2.0 and g["x"] == 1.0
    v, g = grads("y = x" + " ^ 1" * N_DEEP, x=2.0)
    assert v == 2.0 and g["x"] == 1.0


def test_twenty_thousand_term_sum_through_the_cli(tmp_path):
    terms = " + ".join(f"{k % 7} * x" if k % 2 else "x" for k in range(N_WIDE))
    src = "y = " + terms
    coef = sum((k % 7) if k % 2 else 1 for k in range(N_WIDE))
    doc = cli_json(tmp_path, src, "--at", "x=0.5")
    assert doc["value"] == pytest.approx(coef * 0.5, rel=1e-12)
    assert doc["gradients"]["x"] == pytest.approx(coef, rel=1e-12)
    # each node of the left-associative sum spans a prefix of the line: its text is elided,
    # or the JSON would grow quadratically (it was 1.2 GB here)
    assert max(len(n["expr"]) for n in doc["nodes"]) <= 200
    last = doc["nodes"][-1]
    assert (
        last["expr"].startswith("x + 1 * x")
        and " … " in last["expr"]
        and last["expr"].endswith(f"{(N_WIDE - 1) % 7} * x")
    )


def test_twenty_thousand_term_sum_of_tensors():
    src = "y = sum(" + " - ".join(["w * x"] * (N_WIDE // 4)) + ")"
    x = np.array([1.0, 2.0, 3.0])
    w = np.array([0.5, -1.0, 2.0])
    v, g = grads(src, x=x, w=w)
    n = N_WIDE // 4
    k = 1 - (n - 1)  # w*x - w*x - ... : one plus, n - 1 minus
    assert v == pytest.approx(k * float(w @ x))
    np.testing.assert_allclose(g["x"], k * w)


def test_twenty_thousand_statement_chain_through_the_cli(tmp_path):
    lines = ["t0 = x"]
    for k in range(1, N_WIDE):
        lines.append(f"t{k} = t{k - 1} * 0.9999 + x" if k % 2 else f"t{k} = t{k - 1}; t{k} = t{k} - 0.5")
    src = "\n".join(lines)
    # reference: the same recurrence in Python, with its derivative
    t, dt, x = 0.0, 0.0, 1.5
    t, dt = x, 1.0
    for k in range(1, N_WIDE):
        if k % 2:
            t, dt = t * 0.9999 + x, dt * 0.9999 + 1
        else:
            t = t - 0.5
    doc = cli_json(tmp_path, src, "--at", f"x={x}")
    assert doc["value"] == pytest.approx(t, rel=1e-10)
    assert doc["gradients"]["x"] == pytest.approx(dt, rel=1e-10)
    assert doc["output"] == f"t{N_WIDE - 1}"


def test_reassigned_name_chain_in_process():
    src = "t = x\n" + "t = t * 1.0001 + 0.001\n" * N_WIDE
    v, g = grads(src, x=1.0)
    want, dwant = 1.0, 1.0
    for _ in range(N_WIDE):
        want, dwant = want * 1.0001 + 0.001, dwant * 1.0001
    assert v == pytest.approx(want, rel=1e-10) and g["x"] == pytest.approx(dwant, rel=1e-10)


def test_wide_program_of_constants_only():
    # no operation nodes at all: a graph the batched engine strategy once crashed on
    v, _ = grads("\n".join(f"t{i} = {i}" for i in range(300)))
    assert v == 299.0
    v, g = grads("input " + ", ".join(f"a{i} = {i}" for i in range(300)) + "\noutput a7")
    assert v == 7.0 and g["a7"] == 1.0 and g["a8"] == 0.0


def test_many_calls_of_a_user_function():
    src = "def f(u) = u * u + 1\nt = x\n" + "t = f(t) * 0.5\n" * 2000
    v, g = grads(src, x=0.3)
    want, dwant = 0.3, 1.0
    for _ in range(2000):
        want, dwant = (want * want + 1) * 0.5, dwant * want
    assert v == pytest.approx(want, rel=1e-10) and g["x"] == pytest.approx(dwant, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(
    "text",
    [
        "out = " + " + ".join(f"a{k}" for k in range(31)) + " * 1.5e-3\n",
        "".join(f"input x{k} = 1\n" for k in range(14)) + "y = " + " + ".join(f"2.5e-3*x{k}" for k in range(14)) + "\n",
        "".join(f"input x{k} = 1\n" for k in range(40)) + "y = " + "+".join(f"1.25e+2*x{k}" for k in range(40)) + "\n",
        "input x\u0302 = 1\ny = " + " + ".join(["x\u0302 * 3"] * 40) + "\n",
    ],
)
def test_an_elided_expression_is_cut_between_words(text: str) -> None:
    """A long expression's middle is elided between words: no name or number is cut (a17 read as the constant
    17, found by a new user's review; 2.5e-3 read as 3, and a combining mark left after the cut, by a review)."""
    import re

    from cgraph_cli.ir.graph import build_graph
    from cgraph_cli.lang.parser import parse

    word = r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|(?:\w|[\u0300-\u036f])+"
    src = Source(text, "<t>")
    g = build_graph(parse(src), src, {})
    words = set(re.findall(word, text))
    cut = 0
    for i in range(len(g.ops)):
        short = g.short_text(i)
        assert len(short) <= 160 + 3
        if " … " in short:
            cut += 1
            head, tail = short.split(" … ")
            assert head == head.rstrip() and tail == tail.lstrip()
            for w in re.findall(f"(?:{word})$", head) + re.findall(f"^(?:{word})", tail):
                assert w in words, (w, short)  # the words next to the cut are whole words of the program
    assert cut
