"""Numerical diagnostics: the first node where a NaN/inf appears, forward then backward, as anomaly mode does."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import run_inprocess
from tests.test_fuzz import at_for, programs, render_program


def run(prog: str, *at: str, fmt: str = "table", strict: bool = False):
    argv = ["eval", "-e", prog, "--format", fmt] + [x for a in at for x in ("--at", a)]
    return run_inprocess(argv + (["--strict"] if strict else []))


def warnings_of(prog: str, *at: str) -> list[str]:
    code, out, err = run(prog, *at)
    assert code == 0, err
    return [w for w in err.split("warning: ") if w]


def test_forward_names_first_node_op_operands_line_and_caret():
    prog = "input a\nb = a - 1\nc = log(b)\nd = c * 2\nz = d + a"
    (fw, bw) = warnings_of(prog, "a=1")
    lines = fw.splitlines()
    assert lines[0] == "<expr>:3:5: non-finite value -inf first appears in the forward pass at node c (log) from b = 0"
    assert lines[1] == "  3 | c = log(b)"
    assert lines[2] == "    |     ^^^^^^"
    assert lines[3] == "hint: log is defined only for positive values"
    # backward: log's local derivative 1/b is infinite at b = 0 (the op to blame, not the input)
    assert bw.startswith("<expr>:3:5: non-finite gradient first appears in the backward pass at node c (log)")
    assert "∂z/∂c = 2 into inf for b (at b = 0)" in bw
    assert "hint: the derivative of log, 1/x, is infinite at x = 0" in bw


def test_backward_only_anomaly_names_the_op_not_the_input():
    """sqrt(a) at a = 0 is finite forward; its derivative 1/(2 sqrt a) is not."""
    ws = warnings_of("s = sqrt(a)\nz = s * 0 + 1", "a=0")
    assert len(ws) == 1
    assert ws[0].startswith("<expr>:1:5: non-finite gradient first appears in the backward pass at node s (sqrt)")
    assert "∂z/∂s = 0 into NaN for a (at a = 0)" in ws[0]
    assert "hint: the derivative of sqrt, 1/(2·sqrt(x)), is infinite at x = 0" in ws[0]


@pytest.mark.parametrize(
    "prog,at,hint",
    [
        ("z = log(a)", "a=-1", "log is defined only for positive values"),
        ("z = log(a)", "a=0", "log is defined only for positive values"),
        ("z = sqrt(a)", "a=-4", "sqrt is defined only for non-negative values"),
        ("z = a ^ 0.5", "a=-2", "a negative base to a non-integer power is not a real number"),
        ("z = pow(a, 1.5)", "a=-2", "a negative base to a non-integer power is not a real number"),
        ("z = 1 / a", "a=0", "division by zero"),
        ("z = a / (a - 2)", "a=2", "division by zero"),
        ("z = a ^ -1", "a=0", "zero to a negative power is infinite"),
        ("z = exp(a)", "a=1000", "overflow: the result is beyond the range of float64 (about ±1.8e308)"),
        ("z = a * 1e999", "a=1", "the number 1e999 is beyond the range of float64"),
    ],
)
def test_forward_domain_hints(prog, at, hint):
    ws = warnings_of(prog, at)
    assert "forward pass" in ws[0] and f"hint: {hint}" in ws[0]


@pytest.mark.parametrize(
    "prog,at,hint",
    [
        ("z = sqrt(a) * 0", "a=0", "the derivative of sqrt, 1/(2·sqrt(x)), is infinite at x = 0"),
        ("z = (-2) ^ a", "a=2", "the derivative of a^b with respect to b is a^b·log(a), which needs a > 0"),
        ("z = a ^ 0.5", "a=0", "the derivative of a^b with respect to a, b·a^(b-1), is infinite at a = 0 when b < 1"),
    ],
)
def test_backward_domain_hints(prog, at, hint):
    ws = [w for w in warnings_of(prog, at) if "backward pass" in w]
    assert ws and f"hint: {hint}" in ws[0]


def test_float32_overflow_range():
    code, out, err = run_inprocess(["eval", "-e", "z = a * 1e20 * 1e20", "--at", "a=1", "--dtype", "float32"])
    assert code == 0 and "float32 (about ±3.4e38)" in err


def test_strict_exits_1_and_still_prints():
    code, out, err = run("z = log(a)", "a=0", strict=True)
    assert code == 1 and "z" in out and "warning:" in err
    assert run("z = log(a)", "a=1", strict=True)[0] == 0


def test_json_marks_nonfinite_nodes():
    code, out, err = run("b = a * 2\nc = log(b)\nz = c + a", "a=0", fmt="json")
    data = json.loads(out)
    flags = {n["name"]: n["nonfinite"] for n in data["nodes"] if n["name"]}
    assert flags == {"a": True, "b": True, "c": True, "z": True}  # c=-inf; b and a get inf gradients
    code, out, err = run("b = a * 2\nz = b + 1", "a=0", fmt="json")
    assert not any(n["nonfinite"] for n in json.loads(out)["nodes"])
    assert json.loads(out)["nonfinite"] == []


def test_json_nonfinite_list_names_origins():
    code, out, _ = run("s = sqrt(a)\nz = s * 0 + 1", "a=0", fmt="json")
    data = json.loads(out)
    (entry,) = data["nonfinite"]
    s_id = next(n["id"] for n in data["nodes"] if n["name"] == "s")
    a_id = next(n["id"] for n in data["nodes"] if n["name"] == "a")
    assert entry == {"pass": "backward", "id": s_id, "name": "s", "op": "sqrt", "line": 1, "column": 5, "operand": a_id}
    assert data["gradients"]["a"] == "NaN"


def test_given_nonfinite_input_is_named():
    ws = warnings_of("z = a * 2", "a=nan")
    assert "at node a (input)" in ws[0] and "the value given for input 'a' is not finite" in ws[0]


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(stmts=programs(), fill=st.sampled_from(["0", "-1", "1e308", "1"]))
def test_first_nonfinite_is_really_first(stmts, fill):
    """Against the JSON nodes: the forward entry is the first non-finite value in topological
    order; the backward entry's op has a finite gradient and passes a non-finite one on."""
    text = render_program(stmts)
    at = at_for(text)
    if at:
        at[1] = ",".join(p.split("=")[0] + "=" + fill if "[" not in p else p for p in at[1].split(","))
    code, out, err = run_inprocess(["eval", "-e", text, "--format", "json", *at])
    if code != 0:
        return
    data = json.loads(out)

    def bad(x) -> bool:
        if isinstance(x, list):
            return any(bad(y) for y in x)
        return isinstance(x, str) or (x is not None and not math.isfinite(x))

    nodes = data["nodes"]
    for n in nodes:
        assert n["nonfinite"] == (bad(n["value"]) or bad(n["grad"]))
    entries = {e["pass"]: e for e in data["nonfinite"]}
    first_value = next((n["id"] for n in nodes if bad(n["value"])), None)
    assert (entries["forward"]["id"] if "forward" in entries else None) == first_value
    assert ("forward pass" in err) == (first_value is not None)
    if "backward" in entries:
        e = entries["backward"]
        assert not bad(nodes[e["id"]]["grad"]) and bad(nodes[e["operand"]]["grad"])  # the op passes it on
        assert e["operand"] in nodes[e["id"]]["args"]
    else:
        assert not any(bad(n["grad"]) for n in nodes)


def test_gradient_sum_overflow_is_named():
    """y = a * a at a = 1e308: each contribution a·1 = 1e308 is finite, their sum is not."""
    ws = warnings_of("y = a * a", "a=1e308")
    assert ws[0].startswith("<expr>:1:5: non-finite value inf first appears in the forward pass at node y (mul)")
    assert ws[1].startswith("<expr>:1:5: non-finite gradient first appears in the backward pass at node y (mul)")
    assert "adding its contribution to ∂y/∂a makes the sum inf" in ws[1]
    assert "hint: overflow: the sum is beyond the range of float64" in ws[1]


def test_constant_operands_are_shown_by_value():
    from tests.conftest import run_cli

    r = run_cli("eval", "-e", "y = 1/x", "--at", "x=0", "--format", "csv")
    assert r.returncode == 0
    assert "at node y (div) from 1, x = 0" in r.stderr and "%" not in r.stderr


def test_a_misspelt_name_is_named_where_it_is_used() -> None:
    """A name never assigned is an input (the language's rule), so a typo quietly became one: the missing value
    is now pointed at where it is used, with the assigned name it may mean (a teacher's review)."""
    import cgraph_cli as cg

    text = "x = a + b\ny = b + c\nz = x * yy\n"
    with pytest.raises(cg.CgraphError) as e:
        cg.parse(text).eval(a=-1, b=3, c=4)
    err = e.value
    assert str(err) == "missing value for input: yy" and (err.line, err.column) == (3, 9)
    assert err.hint.startswith("'yy' is never assigned, so it is an input: did you mean 'y'?")
    with pytest.raises(cg.CgraphError) as e:  # nothing close: the hint as before, and no place
        cg.parse("z = x * q7\n").eval(x=1)
    assert e.value.hint == "give it with --at, for example: --at q7=1" and e.value.line is None


def test_an_undeclared_name_in_a_program_that_declares_its_inputs_is_a_warning() -> None:
    import cgraph_cli as cg

    ev = cg.parse("input a = -1, b = 3, c = 4\nx = a + b\ny = b + c\nz = x * yy\n").eval(yy=1)
    assert ev.value == 2.0  # still an input, as the language says
    assert any("'yy' is not declared with 'input', so it is an input; did you mean 'y'?" in w for w in ev.warnings)
    assert cg.parse("x = a + b\ny = b + c\nz = x * y\n").eval(a=-1, b=3, c=4).warnings == []  # none declared: fine


def test_a_quotients_derivative_hint_names_no_variable() -> None:
    """The hint spoke of 'a / b (b = 0)', which names the student's own b with another value (a teacher's
    review): it says the divisor is 0."""
    import cgraph_cli as cg

    ev = cg.parse("z = a / (b - 3)").eval(a=1, b=3)
    text = "\n".join(ev.warnings)
    assert "the divisor is 0: the derivatives of a quotient divide by it" in text and "a / b" not in text


def test_a_middle_dot_copied_from_explain_is_named() -> None:
    """explain writes '·' for a product, and '·' may be part of a Python name, so x·w is one input (a teacher's
    review): the missing value says so, at its place."""
    import cgraph_cli as cg

    with pytest.raises(cg.CgraphError) as e:
        cg.parse("y = x·w").eval()
    assert (e.value.line, e.value.column) == (1, 5)
    assert e.value.hint == "'x·w' is one name ('·' may be part of a name): to multiply, write x * w"


@pytest.mark.parametrize(
    "text, hint",
    [
        ("z = (a + b)(b + c)\n", "to multiply, write '*' between them, as in (a + b) * (b + c)"),
        ("z = 2(a + b)\n", "to multiply, write '*' between them, as in (a + b) * (b + c)"),
        ("x = 1\nwhile x < 3 {\n  x = x + 1\n}\n", "there is no while loop: a loop runs a fixed number of times"),
        ("for i in range(3):\n  x = 1\n", "a loop's body goes in braces: for i in range(n) { ... }"),
    ],
)
def test_common_mistakes_get_a_hint(text: str, hint: str) -> None:
    """A product without '*' and a Python-style loop got only the parser's expected tokens (a teacher's
    review)."""
    import cgraph_cli as cg

    with pytest.raises(cg.CgraphError) as e:
        cg.parse(text)
    assert str(e.value).startswith("syntax error: unexpected") and hint in (e.value.hint or "")
