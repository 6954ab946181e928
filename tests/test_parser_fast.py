"""The hand-written fast parser agrees with Lark (the grammar's reference parser) on every input:
it returns the same AST tuples, or gives up (None) and leaves the text to Lark; it never accepts a
text Lark rejects."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cgraph_cli.errors import CgraphError, Source
from cgraph_cli.lang.parser import parse, parse_fast, parse_lark
from tests.conftest import EXAMPLES

SETTINGS = settings(
    max_examples=400, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)

ATOMS = ["a", "b", "x1", "_t", "inputs", "def_", "3", "0.5", ".5", "1e-3", "2.", "1.5E+2", "pi", "[1, 2]", "[[1], [2]]"]
FUNCS = ["sin", "exp", "max", "sum", "reshape", "f", "softmax"]


def gen_expr(rng: random.Random, depth: int = 0) -> str:
    r = rng.random()
    if depth > 4 or r < 0.3:
        return rng.choice(ATOMS)
    if r < 0.55:
        op = rng.choice(["+", "-", "*", "/", "@", "^", "**"])
        sp = rng.choice(["", " ", "  "])
        return f"{gen_expr(rng, depth + 1)}{sp}{op}{sp}{gen_expr(rng, depth + 1)}"
    if r < 0.65:
        return rng.choice(["-", "+", "- "]) + gen_expr(rng, depth + 1)
    if r < 0.75:
        return f"({gen_expr(rng, depth + 1)})"
    if r < 0.87:
        args = ", ".join(gen_expr(rng, depth + 1) for _ in range(rng.randint(0, 3)))
        return f"{rng.choice(FUNCS)}({args})"
    if r < 0.93:
        return "[" + ", ".join(gen_expr(rng, depth + 1) for _ in range(rng.randint(0, 3))) + "]"
    sub = rng.choice(["0", "1:2", ":", "::2", "1:", ":3", "a", "1, 2", "0:1:1", "-1"])
    return f"{rng.choice(['x', 'W', '(a + b)', 'f(x)'])}[{sub}]"


def gen_program(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(1, 6)):
        r = rng.random()
        if r < 0.5:
            lines.append(f"{rng.choice(['x', 'y', 'z2', 'out'])} = {gen_expr(rng)}")
        elif r < 0.6:
            items = ["a", "b = -1", "c = [1, 2]", "W[2, 3]", "v[4]", "d = randn(2)", "data", "data[2]", "data = 1"]
            items = rng.sample(items, rng.randint(1, 3))
            # input data X, ...: inputs that are data ('data' is a word of its own only before a name)
            data = rng.choice(["", "", "data ", "data\t", "data  "])
            lines.append("input " + data + ", ".join(items))
        elif r < 0.67:
            lines.append("output " + ", ".join(rng.sample(["x", "y", "z2"], rng.randint(1, 2))))
        elif r < 0.77:
            params = ", ".join(rng.sample(["u", "v", "w"], rng.randint(0, 3)))
            lines.append(f"def {rng.choice(['f', 'g'])}({params}) = {gen_expr(rng)}")
        elif r < 0.85:
            lines.append(gen_expr(rng))
        else:
            lines.append(rng.choice(["", "# a comment", "  ", "x = 1 # trailing", "y = a + \\\n  b"]))
    sep = rng.choice(["\n", "\n", "; ", "\r\n"])
    return sep.join(lines) + rng.choice(["", "\n"])


def lark_or_error(text: str):
    try:
        return parse_lark(Source(text, "<t>"))
    except CgraphError as e:
        return ("error", e.message, e.span)


def check(text: str) -> None:
    body = text if text.endswith("\n") else text + "\n"
    fast = parse_fast(body)
    ref = lark_or_error(text)
    if fast is not None:
        assert fast == ref, text
    # the public entry point gives Lark's answer either way
    try:
        got = parse(Source(text, "<t>"))
    except CgraphError as e:
        got = ("error", e.message, e.span)
    assert got == ref, text


@pytest.mark.parametrize("seed", range(300))
def test_generated_programs_agree(seed: int) -> None:
    check(gen_program(random.Random(seed)))


def test_fast_path_accepts_ordinary_programs() -> None:
    for path in sorted(EXAMPLES.glob("*.cg")):
        text = path.read_text()
        assert parse_fast(text if text.endswith("\n") else text + "\n") is not None, path
        check(text)


TOKENS = [
    "a",
    "b",
    "1",
    "2.5",
    "+",
    "-",
    "*",
    "**",
    "^",
    "/",
    "@",
    "(",
    ")",
    "[",
    "]",
    ",",
    ":",
    "=",
    ";",
    "\n",
    " ",
    "input",
    "data",
    "output",
    "def",
    "f",
    "#c\n",
    "\\\n",
    "\r",
    "?",
    "1e",
    ".",
    "$",
    "x[",
    "sum(",
]


@SETTINGS
@given(st.lists(st.sampled_from(TOKENS), max_size=25))
def test_token_soup_agrees(tokens: list[str]) -> None:
    check("".join(tokens))


@SETTINGS
@given(st.integers(0, 10_000), st.integers(0, 60), st.sampled_from(["delete", "duplicate", "swap"]))
def test_mutated_programs_agree(seed: int, where: int, how: str) -> None:
    text = gen_program(random.Random(seed))
    if not text:
        return
    i = where % len(text)
    if how == "delete":
        text = text[:i] + text[i + 1 :]
    elif how == "duplicate":
        text = text[:i] + text[i] + text[i:]
    elif i + 1 < len(text):
        text = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    check(text)


@pytest.mark.parametrize(
    "text, data, names",
    [
        ("input data X[2, 3], T\n", True, ["X", "T"]),
        ("input data\tX\n", True, ["X"]),
        ("input data data\n", True, ["data"]),  # an input named data that is data
        ("input data\n", False, ["data"]),  # an input named data
        ("input data = 2, x\n", False, ["data", "x"]),
        ("input data[3]\n", False, ["data"]),
        ("input data, y\n", False, ["data", "y"]),
        ("data = 1\ny = data * 2\n", None, None),  # a name everywhere else
        ("for data in range(2) { y = data }\n", None, None),
    ],
)
def test_input_data_declarations(text: str, data, names) -> None:
    stmts = parse_lark(Source(text, "<t>"))
    assert parse_fast(text) == stmts
    if data is not None:
        assert stmts[0][0] == "input" and stmts[0][4] is data and [it[0] for it in stmts[0][3]] == names


@pytest.mark.parametrize("text", ["input data 3\n", "input datax y\n", "input data \\\n X\n", "input data X Y\n"])
def test_input_data_mistakes_are_lark_errors(text: str) -> None:
    assert parse_fast(text) is None
    check(text)
    with pytest.raises(CgraphError, match="syntax error"):
        parse_lark(Source(text, "<t>"))


def test_deep_nesting_goes_to_lark() -> None:
    text = "y = " + "(" * 300 + "a" + ")" * 300 + "\n"
    assert parse_fast(text) is None
    check(text)
    text = "y = " + "-" * 500 + "a\n"
    check(text)
    text = "y = " + " ^ ".join(["a"] * 200) + "\n"
    check(text)


@pytest.mark.parametrize("seed", range(60))
def test_small_blocks_agree(seed: int, monkeypatch) -> None:
    from cgraph_cli.lang import parser

    monkeypatch.setattr(parser, "_BLOCK", 1 + seed % 7)
    text = gen_program(random.Random(5000 + seed)) + "\ny = a + \\\n  b\n# c \\\nz = 1\n"
    check(text)
