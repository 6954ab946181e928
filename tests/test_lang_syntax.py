"""The language's syntax beyond expressions on one line: statements over several lines, keyword arguments,
comparison operators and tuples; both parsers (Lark's grammar of record and the fast path) agree on all of it,
and every new error has its message, exit code 2 and caret."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from cgraph_cli.errors import CgraphError, Source
from cgraph_cli.ir.graph import format_ir
from cgraph_cli.lang.parser import parse_fast, parse_lark
from cgraph_cli.ops import FUNCTIONS, OPS
from cgraph_cli.run.program import compile_program, run
from tests.conftest import run_inproc
from tests.test_parser_fast import check, gen_expr


def fails(*args: str, input: str | None = None) -> str:
    r = run_inproc(*args, input=input)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert r.stderr.startswith("error: "), r.stderr
    return r.stderr


def caret(stderr: str) -> tuple[str, int, int]:
    """The error's source line, and the column and width of its caret (0-based, in the line)."""
    lines = stderr.splitlines()
    for k, line in enumerate(lines[:-1]):
        if " | " in line and lines[k + 1].strip().startswith("|"):
            bar = line.index("| ") + 2
            marks = lines[k + 1][bar:]
            col = len(marks) - len(marks.lstrip(" "))
            return line[bar:], col, len(marks.strip())
    raise AssertionError(stderr)


def graph_text(src: str, **at) -> str:
    vals = {k: np.asarray(v, dtype=float) for k, v in at.items()}
    g = compile_program(Source(src, "<t>"), vals, use_cache=False)
    return "\n".join(line.split("  @")[0] for line in format_ir(g).splitlines())  # without the positions


def value(src: str, **at):
    res = run(Source(src, "<t>"), {k: np.asarray(v, dtype=float) for k, v in at.items()}, use_cache=False)
    return res.values[res.out], {n: res.grads[i] for n, i in res.graph.inputs.items()}


# -- both parsers agree ------------------------------------------------------------------------------------


def gen_new_expr(rng: random.Random, depth: int = 0) -> str:
    """Expressions with the new syntax around today's (gen_expr): comparisons, keywords, tuples, newlines in
    brackets, ellipsis and None subscripts, names beyond ASCII."""
    r = rng.random()
    if depth > 3 or r < 0.25:
        return rng.choice(["a", "θ", "σ1", "ŷ", "x_α", "3", "-1", "true", "inf", "None", gen_expr(rng, 3)])
    if r < 0.4:
        op = rng.choice(["<", "<=", ">", ">=", "==", "!=", "+", "*"])
        sp = rng.choice(["", " ", "\n"])
        return f"{gen_new_expr(rng, depth + 1)} {op}{sp}{gen_new_expr(rng, depth + 1)}"
    if r < 0.6:
        args = [gen_new_expr(rng, depth + 1) for _ in range(rng.randint(0, 2))]
        names = ["axis", "keepdims", "p", "α"]
        kws = [f"{rng.choice(names)}={gen_new_expr(rng, depth + 1)}" for _ in range(rng.randint(0, 2))]
        sep = rng.choice([", ", ",\n  ", " ,", ",\n\n"])
        return f"{rng.choice(['sum', 'f', 'norm'])}({sep.join(args + kws)})"
    if r < 0.7:
        items = [gen_new_expr(rng, depth + 1) for _ in range(rng.randint(0, 3))]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if r < 0.8:
        return "[" + ",\n".join(gen_new_expr(rng, depth + 1) for _ in range(rng.randint(1, 3))) + "]"
    if r < 0.9:
        sub = rng.choice(["...", "None", "..., 0", "None, :", "[0, 2, 2]", "i - 1", "-1", "..., None, 1:"])
        return f"{rng.choice(['x', 'W', '(a + b)'])}[{sub}]"
    return f"({gen_new_expr(rng, depth + 1)}\n  + {gen_new_expr(rng, depth + 1)})"


def gen_new_program(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(1, 5)):
        r = rng.random()
        if r < 0.55:
            lines.append(f"{rng.choice(['y', 'h', 'θ', 'for', 'in'])} = {gen_new_expr(rng)}")
        elif r < 0.8:
            body = "\n  ".join(f"h = {gen_new_expr(rng, 2)}" for _ in range(rng.randint(0, 2)))
            var = rng.choice(["i", "j", "in", "κ"])
            args = rng.choice(["3", "1, 4", "n", "0, 5, 2", ""])
            opening, closing = rng.choice(["{ ", "{\n  "]), rng.choice([" }", "\n}"])
            lines.append(f"for {var} in range({args}) {opening}{body}{closing}")
        else:
            lines.append(gen_new_expr(rng))
    return rng.choice(["\n", "; "]).join(lines) + "\n"


@pytest.mark.parametrize("seed", range(250))
def test_generated_programs_with_the_new_syntax_agree(seed: int) -> None:
    text = gen_new_program(random.Random(seed))
    check(text)


@pytest.mark.parametrize("seed", range(120))
def test_mutated_new_programs_agree(seed: int) -> None:
    rng = random.Random(10_000 + seed)
    text = gen_new_program(rng)
    i = rng.randrange(len(text))
    how = rng.choice(["delete", "duplicate", "newline"])
    if how == "delete":
        text = text[:i] + text[i + 1 :]
    elif how == "duplicate":
        text = text[:i] + text[i] + text[i:]
    else:
        text = text[:i] + "\n" + text[i:]
    check(text)


def test_fast_path_takes_the_new_syntax() -> None:
    """The new syntax does not send a program to Lark (which is slower)."""
    text = (
        "y = f(a,\n  b)\nz = sum(x, axis=(0, 1), keepdims=true) <= 2\n"
        "for i in range(3) {\n  h = x[..., None, i - 1]\n}\n"
        "θ = α + ŷ\nw = [1,\n 2] == 3\n"
    )
    assert parse_fast(text) is not None
    check(text)


# -- statements over several lines --------------------------------------------------------------------------


def test_newlines_inside_brackets_continue_the_statement() -> None:
    one = "y = sum([a, 2 * b, 3]) + max(a, b) * (a - b)"
    many = "y = sum([a,\n         2 * b,\n\n         3]) + max(a,\n  b) * (a\n  - b)  # the end\n"
    assert graph_text(many, a=2, b=4) == graph_text(one, a=2, b=4)
    assert value(many, a=2, b=4)[0] == value(one, a=2, b=4)[0] == (2 + 8 + 3) + 4 * -2


def test_comments_and_blank_lines_inside_brackets() -> None:
    src = "y = f(a,  # first\n\n      # alone\n      b)\ndef f(u, v) = u * v\n"
    src = "def f(u, v) = u * v\n" + src.split("\ndef")[0] + "\n"
    assert value(src, a=3, b=4)[0] == 12


def test_backslash_continues_a_line() -> None:
    assert value("y = a + \\\n    b * 2\n", a=1, b=3)[0] == 7


def test_semicolon_inside_brackets_is_an_error() -> None:
    err = fails("eval", "-e", "y = f(a; b)")
    assert err.startswith("error: <expr>:1:8: syntax error: unexpected end of statement"), err


def test_errors_on_a_continued_line_point_there() -> None:
    # a shape error on line 3 of a statement that starts on line 1
    err = fails("eval", "-e", "y = sum(a +\n  b *\n  c + [1, 2, 3])", "--at", "a=[1,2]", "--at", "b=1", "--at", "c=2")
    assert err.startswith("error: <expr>:1:9: shapes (2,) and (3,) cannot be broadcast together"), err
    # an unknown function on line 2
    err = fails("eval", "-e", "y = max(a,\n   sinn(a))", "--at", "a=1")
    assert err.startswith("error: <expr>:2:4: unknown function 'sinn'"), err
    line, col, width = caret(err)
    assert line == "   sinn(a))" and (col, width) == (3, 4)
    # a syntax error on line 3
    err = fails("eval", "-e", "y = max(a,\n  b,\n  c d)")
    assert err.startswith("error: <expr>:3:5: syntax error: unexpected 'd'"), err
    assert caret(err) == ("  c d)", 4, 1)
    # an index out of range on line 2
    err = fails("eval", "-e", "x = [1, 2, 3]\ny = (x[0] +\n  x[3])")
    assert err.startswith("error: <expr>:3:5: index 3 is out of range for axis 0 of size 3"), err
    assert caret(err) == ("  x[3])", 4, 1)


def test_a_bracket_never_closed_is_named() -> None:
    err = fails("eval", "-e", "x = 1\ny = (x +\nz = 2\n")
    assert err.splitlines()[0] == "error: <expr>:2:5: syntax error: '(' is never closed; expected ')'"
    assert caret(err) == ("y = (x +", 4, 1)
    assert "hint: close it with ')'" in err
    err = fails("eval", "-e", "for i in range(2) {\n  h = i\n")
    assert err.splitlines()[0] == "error: <expr>:1:19: syntax error: '{' is never closed; expected '}'"
    # the text ends inside a bracket on its own line, with or without a last newline (-e has none)
    for text in ("y = (a + b", "y = (a + b\n", "y = [a, (b", "x = 1\ny = sin(a"):
        err = fails("eval", "-e", text)
        assert "syntax error: '(' is never closed; expected ')'" in err.splitlines()[0], (text, err)
    # a bracket closed later: the error is where it happens
    err = fails("eval", "-e", "y = f(a,\n b c)")
    assert err.startswith("error: <expr>:2:4: syntax error: unexpected 'c'"), err


# -- comparisons -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "src,op",
    [("a < b", "lt"), ("a <= b", "le"), ("a > b", "gt"), ("a >= b", "ge"), ("a == b", "eq"), ("a != b", "ne")],
)
def test_comparison_operators_parse_to_their_ops(src: str, op: str) -> None:
    (st,) = parse_lark(Source("y = " + src))
    assert st[5][0] == "bin" and st[5][3] == op


def test_comparisons_bind_below_plus_and_minus() -> None:
    (st,) = parse_lark(Source("y = a + b < c * d - 1"))
    e = st[5]
    assert e[3] == "lt" and e[4][3] == "add" and e[5][3] == "sub" and e[5][4][3] == "mul"
    (st,) = parse_lark(Source("y = -a < -b ^ 2"))
    assert st[5][3] == "lt" and st[5][4][0] == "neg" and st[5][5][0] == "neg"


def test_comparisons_do_not_chain() -> None:
    err = fails("eval", "-e", "y = a < b <= c")
    assert err.splitlines()[0] == (
        "error: <expr>:1:11: comparisons do not chain; write (a < b) * (b < c) for both at once"
    )
    assert caret(err) == ("y = a < b <= c", 10, 2)
    # with parentheses, a comparison's mask can be compared again
    (st,) = parse_lark(Source("y = (a < b) == c"))
    assert st[5][3] == "eq" and st[5][4][3] == "lt"


def test_assignment_is_not_a_comparison() -> None:
    stmts = parse_lark(Source("y = 2\ny == 2\n"))
    assert stmts[0][0] == "assign" and stmts[1][0] == "bare" and stmts[1][3][3] == "eq"


@pytest.mark.skipif("lt" not in OPS, reason="the comparison ops arrive with the ops of issue 11")
def test_comparisons_give_masks_without_gradient() -> None:
    v, grads = value("y = sum((x > 0) * x + (x <= 1) + (x == 2) - (x != 0) + (x < x) + (x >= 3))", x=[-1, 0, 2, 3])
    x = np.array([-1.0, 0, 2, 3])
    want = ((x > 0) * x + (x <= 1) + (x == 2) - (x != 0) + (x < x) + (x >= 3)).sum()
    assert v == want
    np.testing.assert_array_equal(grads["x"], (x > 0).astype(float))  # only through the product's x


# -- keyword arguments ----------------------------------------------------------------------------------------


def test_keywords_parse_in_order() -> None:
    (st,) = parse_lark(Source("y = sum(x, axis=(0, 1), keepdims=true, p=-inf)"))
    call = st[5]
    assert [a[3] for a in call[4]] == ["x"]
    assert [k[0] for k in call[6]] == ["axis", "keepdims", "p"]
    assert call[6][0][2][0] == "tuple" and call[6][2][2][0] == "neg"


@pytest.fixture
def sum_with_axis_keyword(monkeypatch):
    """sum() taking axis= and a made-up flag (the records of issue 11 declare the real keywords): the builder's
    dispatch alone, whatever the records say."""
    calls = [(dataclasses.replace(c, keywords=("axis",)), op) for c, op in FUNCTIONS["sum"]]
    monkeypatch.setitem(FUNCTIONS, "sum", calls)


def test_a_keyword_becomes_the_op_attribute(sum_with_axis_keyword) -> None:
    x = [[1, 2, 3], [4, 5, 6]]
    kw = graph_text("y = sum(x, axis=1)", x=x)
    assert kw == graph_text("y = sum(x, 1)", x=x)
    assert "axis=1" in kw
    assert graph_text("y = sum(x, axis=-1)", x=x) == graph_text("y = sum(x, -1)", x=x)
    v, g = value("y = sum(sum(x, axis=0) * [1, 2, 3])", x=x)
    assert v == 5 + 14 + 27
    np.testing.assert_array_equal(g["x"], [[1, 2, 3], [1, 2, 3]])


def test_keyword_values_are_static(sum_with_axis_keyword) -> None:
    text = graph_text("for i in range(2) { y = sum(x, axis=i) }\nz = sum(x, axis=2 * 2 - 3 - 1)", x=[[1, 2]])
    assert [line.count("axis=") for line in text.splitlines() if " sum " in line] == [1, 1, 1]
    assert [line.split("axis=")[1].split()[0] for line in text.splitlines() if " sum " in line] == ["0", "1", "0"]
    err = fails("eval", "-e", "y = sum(x, axis=a)", "--at", "x=[1,2]", "--at", "a=0")
    assert err.splitlines()[0] == (
        "error: <expr>:1:17: the value of axis= in sum() must be a constant: a number, true, false, inf "
        "or a tuple such as (0, 1)"
    )
    assert caret(err)[1:] == (16, 1)


def test_unknown_keyword_names_the_allowed_ones(sum_with_axis_keyword) -> None:
    err = fails("eval", "-e", "y = sum(x, axsi=1)", "--at", "x=[1,2]")
    assert err.splitlines()[0] == "error: <expr>:1:12: sum() has no keyword argument axsi=; it takes axis="
    assert "hint: did you mean axis=?" in err
    assert caret(err)[1:] == (11, 4)
    err = fails("eval", "-e", "y = exp(x, axis=1)", "--at", "x=[1,2]")
    first = err.splitlines()[0]
    assert first == "error: <expr>:1:12: exp() has no keyword argument axis=; it takes no keyword arguments"


def test_keyword_errors(sum_with_axis_keyword) -> None:
    err = fails("eval", "-e", "y = sum(x, axis=0, axis=0)", "--at", "x=[1,2]")
    assert err.splitlines()[0] == "error: <expr>:1:20: keyword argument axis= is given twice"
    err = fails("eval", "-e", "y = sum(axis=0, x)", "--at", "x=[1,2]")
    assert err.splitlines()[0] == "error: <expr>:1:17: a positional argument cannot follow a keyword argument"
    assert caret(err)[1:] == (16, 1)
    err = fails("eval", "-e", "y = sum(x, 0, axis=0)", "--at", "x=[1,2]")
    assert err.splitlines()[0] == "error: <expr>:1:15: sum() got axis twice: as an argument and as axis="
    err = fails("eval", "-e", "def f(u) = u\ny = f(x, k=1)", "--at", "x=1")
    assert err.splitlines()[0] == "error: <expr>:2:10: f() is a function of the program and takes no keyword arguments"
    err = fails("eval", "-e", "y = ones(2, axis=1)")
    assert err.splitlines()[0] == "error: <expr>:1:13: ones() is a constructor and takes no keyword arguments"


# -- tuples ------------------------------------------------------------------------------------------------


def test_tuples_parse() -> None:
    (st,) = parse_lark(Source("y = f((), (1,), (1, 2), (3))"))
    a = st[5][4]
    assert [x[0] for x in a] == ["tuple", "tuple", "tuple", "num"]
    assert [len(x[3]) for x in a[:3]] == [0, 1, 2]
    with pytest.raises(CgraphError):
        parse_lark(Source("y = (1, 2,)"))


def test_a_tuple_gives_reshape_its_dimensions() -> None:
    x = [[1, 2, 3], [4, 5, 6]]
    assert graph_text("y = reshape(x, (3, 2))", x=x) == graph_text("y = reshape(x, 3, 2)", x=x)


def test_a_tuple_is_only_a_static_argument() -> None:
    err = fails("eval", "-e", "y = (1, 2) * 2")
    assert err.splitlines()[0] == (
        "error: <expr>:1:5: a tuple such as (0, 1) is only a static argument, such as axis=(0, 1)"
    )
    assert caret(err)[1:] == (4, 6)
    err = fails("eval", "-e", "y = reshape(x, (2, a))", "--at", "x=[1,2]", "--at", "a=1")
    assert err.splitlines()[0] == "error: <expr>:1:20: a dimension of reshape() must be a whole-number constant"


def test_for_and_in_are_still_names() -> None:
    assert value("for = 2\nin = 3\ny = for * in")[0] == 6
    assert value("for = [1, 2]\ny = sum(for)")[0] == 3
