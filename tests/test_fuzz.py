"""Fuzzing the command line: whatever it is fed, cgraph answers with a result or one clear error.

The property, for every generated input: the CLI exits 0, 1 or 2; no traceback is printed; every
exit-2 message starts with ``error:``; an error located in the program names ``FILE:LINE:COL``
inside the text (and a syntax error always does).

Inputs come from four Hypothesis strategies: (a) random text and token soup, (b) grammar-shaped
programs with one token deleted, swapped or duplicated, (c) random valid programs, (d) random
``--at`` strings and ``--at-file`` JSON. Most examples run in-process through
``cgraph_cli.cli.entry.main(argv)``; a few go through the real ``cgraph`` entry point.

``CGRAPH_FUZZ_EXAMPLES`` sets the examples per property (``make fuzz`` uses 20000). Every input
that ever failed is kept in ``tests/fuzz_corpus/`` and replayed by ``test_corpus``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cgraph_cli import limits
from cgraph_cli.ops import CONSTRUCTORS, FUNCTIONS, OPS
from tests.conftest import run_inprocess

pytestmark = pytest.mark.slow  # the quick loop (make test-fast) leaves this file out

CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
EXAMPLES = int(os.environ.get("CGRAPH_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="CGRAPH_FUZZ_EXAMPLES" not in os.environ,  # CI: the same inputs every run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    database=None,
)
LOCATED = re.compile(r"^(?:error|warning): (.+?):(\d+):(\d+): ", re.M)


# -- running the CLI in-process --------------------------------------------------------------


def check_answer(code: int, out: str, err: str, text: str | None, what: str) -> None:
    """The fuzz property for one run; ``text`` is the program (for location bounds)."""
    assert "Traceback" not in err and "Traceback" not in out, f"{what}: traceback\n{err}"
    assert code in (0, 1, 2), f"{what}: exit {code}\n{err}"
    if code == 2:
        assert err.startswith("error: "), f"{what}: exit 2 without 'error:'\n{err!r}"
    if text is not None:
        lines = text.split("\n")
        for m in LOCATED.finditer(err):
            line, col = int(m.group(2)), int(m.group(3))
            assert 1 <= line <= len(lines), f"{what}: line {line} outside the text\n{err}"
            assert 1 <= col <= len(lines[line - 1]) + 1, f"{what}: column {col} outside line {line}\n{err}"


def run_program(text: str, *extra: str, command: str = "eval") -> tuple[int, str, str]:
    code, out, err = run_inprocess([command, "-e", text, *extra])
    check_answer(code, out, err, text, f"{command} -e {text!r} {' '.join(extra)}")
    if code == 2 and "syntax error" in err:
        assert LOCATED.match(err), f"syntax error without a location for {text!r}\n{err}"
    return code, out, err


# -- strategies ------------------------------------------------------------------------------

NAMES = ["a", "b", "c", "x", "W", "y", "z", "f", "g", "t0", "out", "pi", "_q"]
FUNCS = sorted(FUNCTIONS) + list(CONSTRUCTORS) + ["nosuch"]  # from the op records: a new op is fuzzed for free
NUMBERS = ["0", "1", "2", "3", "-1", "0.5", ".5", "1e-3", "1e999", "1e308", "2.5e10", "7", "100", "1e-320"]
PUNCT = ["+", "-", "*", "/", "@", "^", "**", "(", ")", "[", "]", ",", ":", "=", ";", "\n", "#", "\\\n"]
KEYWORDS = ["input", "output", "def"]
TOKENS = NAMES + FUNCS + NUMBERS + PUNCT + KEYWORDS + [" ", "\t", "é", "∂", "\r\n", "'", '"', "$", "!", "{"]

text_soup = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.sampled_from(list("abcxyz0123456789.+-*/@^()[],:=;# \n\te")), max_size=80),
    st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join),
    st.lists(st.sampled_from(TOKENS), max_size=40).map("".join),
)


@st.composite
def expressions(draw, depth: int = 0, names=("a", "b", "c")):
    """A token list for one expression of the language."""
    leaf = depth >= 4 or draw(st.integers(0, 3)) == 0
    if leaf:
        kind = draw(st.sampled_from(["num", "name", "name", "tensor", "ctor"]))
        if kind == "num":
            return [draw(st.sampled_from(NUMBERS))]
        if kind == "name":
            return [draw(st.sampled_from(list(names) + ["pi", "x", "W"]))]
        if kind == "ctor":
            ctor = draw(st.sampled_from(["zeros", "ones", "randn", "rand", "eye"]))
            dims = draw(st.lists(st.sampled_from(["0", "1", "2", "3"]), min_size=1, max_size=2 if ctor != "eye" else 1))
            return [ctor, "("] + _join(dims) + [")"]
        rows = draw(st.integers(1, 3))
        if draw(st.booleans()):
            return ["["] + _join([draw(st.sampled_from(NUMBERS[:8])) for _ in range(rows)]) + ["]"]
        cols = draw(st.integers(1, 3))
        inner = [["["] + _join([draw(st.sampled_from(NUMBERS[:8])) for _ in range(cols)]) + ["]"] for _ in range(rows)]
        return ["["] + [t for k, row in enumerate(inner) for t in ([","] if k else []) + row] + ["]"]
    kind = draw(st.sampled_from(["bin", "bin", "neg", "call", "paren", "index"]))
    sub = lambda: draw(expressions(depth + 1, names))  # noqa: E731
    if kind == "bin":
        op = draw(st.sampled_from(["+", "-", "*", "/", "@", "^", "**"]))
        return sub() + [op] + sub()
    if kind == "neg":
        return [draw(st.sampled_from(["-", "+"]))] + sub()
    if kind == "paren":
        return ["("] + sub() + [")"]
    if kind == "index":
        idx = draw(
            st.sampled_from([["0"], ["1"], ["-1"], ["0", ":", "2"], [":"], ["1", ","], ["::", "2"], ["0", ",", "1"]])
        )
        return ["("] + sub() + [")", "["] + idx + ["]"]
    fname = draw(st.sampled_from(FUNCS))
    nargs = draw(st.integers(0, 3))
    args = [sub() for _ in range(nargs)]
    if fname in ("reshape", "sum", "mean", "softmax") and nargs >= 2:
        args[1:] = [[draw(st.sampled_from(["0", "1", "-1", "2", "3"]))] for _ in args[1:]]
    return [fname, "("] + [t for k, a in enumerate(args) for t in ([","] if k else []) + a] + [")"]


def _join(items: list[str]) -> list[str]:
    out: list[str] = []
    for k, item in enumerate(items):
        if k:
            out.append(",")
        out.append(item)
    return out


# from the op records: one-operand elementwise functions, and the reductions of a vector to a number


def _reduces(op) -> bool:
    try:
        return op.arity == 1 and not op.elementwise and op.shape([(3,)]) == ()
    except ValueError:  # needs arguments (reshape)
        return False


UNARY = sorted({c.name for op in OPS.values() if op.elementwise and op.arity == 1 for c in op.calls})
REDUCE = sorted({c.name for op in OPS.values() if _reduces(op) for c in op.calls})


@st.composite
def scalar_expr(draw, depth: int = 0, names=("a", "b", "c"), defs: tuple = (), vectors=("x",)) -> list[str]:
    """A well-typed scalar expression (so that most generated programs evaluate)."""
    if depth >= 4 or draw(st.integers(0, 4)) == 0:
        kind = draw(st.sampled_from(["num", "name", "name"]))
        if kind == "num" or not names:
            return [draw(st.sampled_from(NUMBERS))]
        return [draw(st.sampled_from(list(names) + ["pi"]))]
    sub = lambda: draw(scalar_expr(depth + 1, names, defs, vectors))  # noqa: E731
    vec = lambda: draw(vector_expr(depth + 1, names, defs, vectors))  # noqa: E731
    kind = draw(
        st.sampled_from(["bin", "bin", "bin", "neg", "paren", "unary", "nary", "reduce", "index", "dot", "def"])
    )
    if kind == "bin":
        return sub() + [draw(st.sampled_from(["+", "-", "*", "/", "^", "**"]))] + sub()
    if kind == "neg":
        return [draw(st.sampled_from(["-", "+"]))] + sub()
    if kind == "paren":
        return ["("] + sub() + [")"]
    if kind == "unary":
        return [draw(st.sampled_from(UNARY)), "("] + sub() + [")"]
    if kind == "nary":
        args = [sub() for _ in range(draw(st.integers(2, 3)))]
        fname = (
            draw(st.sampled_from(["pow", "max", "min"])) if len(args) == 2 else draw(st.sampled_from(["max", "min"]))
        )
        return [fname, "("] + [t for k, a in enumerate(args) for t in ([","] if k else []) + a] + [")"]
    if kind == "reduce":
        return [draw(st.sampled_from(REDUCE)), "("] + vec() + [")"]
    if kind == "index":
        return ["("] + vec() + [")", "[", draw(st.sampled_from(["0", "1", "2", "-1"])), "]"]
    if kind == "dot":
        return ["dot", "("] + vec() + [","] + vec() + [")"]
    if not defs:
        return sub()
    fname, arity = draw(st.sampled_from(defs))
    args = [sub() for _ in range(arity)]
    return [fname, "("] + [t for k, a in enumerate(args) for t in ([","] if k else []) + a] + [")"]


@st.composite
def vector_expr(draw, depth: int = 0, names=("a", "b", "c"), defs: tuple = (), vectors=("x",)) -> list[str]:
    """A well-typed expression of shape (3,)."""
    if depth >= 4 or draw(st.integers(0, 3)) == 0:
        kind = draw(st.sampled_from(["name", "name", "literal", "ctor"]))
        if kind == "name" and vectors:
            return [draw(st.sampled_from(list(vectors)))]
        if kind == "ctor":
            return [draw(st.sampled_from(["zeros", "ones", "randn", "rand"])), "(", "3", ")"]
        return ["["] + _join([draw(st.sampled_from(NUMBERS[:8])) for _ in range(3)]) + ["]"]
    sub = lambda: draw(scalar_expr(depth + 1, names, defs, vectors))  # noqa: E731
    vec = lambda: draw(vector_expr(depth + 1, names, defs, vectors))  # noqa: E731
    kind = draw(st.sampled_from(["bin", "bin", "scale", "unary", "softmax", "tensor", "slice", "reshape", "transpose"]))
    if kind == "bin":
        return vec() + [draw(st.sampled_from(["+", "-", "*", "/", "^"]))] + vec()
    if kind == "scale":
        return ["("] + sub() + [")", draw(st.sampled_from(["*", "+", "/", "-"]))] + vec()
    if kind == "unary":
        return [draw(st.sampled_from(UNARY)), "("] + vec() + [")"]
    if kind == "softmax":
        return ["softmax", "("] + vec() + [")"]
    if kind == "tensor":
        return ["["] + sub() + [","] + sub() + [","] + sub() + ["]"]
    if kind == "slice":
        return ["("] + vec() + [")", "[", draw(st.sampled_from([":", "0:3", "::1", "-3:"])), "]"]
    if kind == "reshape":
        return ["reshape", "("] + vec() + [",", "3", ")"]
    return ["transpose", "("] + vec() + [")"]


@st.composite
def programs(draw) -> list[list[str]]:
    """A program as a list of statements, each a token list; most of them evaluate."""
    stmts: list[list[str]] = []
    declared: list[str] = []
    if draw(st.booleans()):
        items = draw(
            st.lists(st.sampled_from(["a", "b = 2", "c = -1", "x[3]", "a = 1"]), max_size=3, unique_by=lambda s: s[0])
        )
        if items:
            stmts.append(["input"] + [t for k, it in enumerate(items) for t in ([","] if k else []) + it.split()])
            declared = [it[0] for it in items]
    defs: list[tuple[str, int]] = []
    for k in range(draw(st.integers(0, 2))):
        params = draw(st.sampled_from([["p"], ["p", "q"]]))
        body = draw(scalar_expr(1, tuple(params), tuple(defs), ()))
        stmts.append(["def", f"f{k}", "("] + _join(params) + [")", "="] + body)
        defs.append((f"f{k}", len(params)))
    scalars = ["a", "b", "c"]
    for _ in range(draw(st.integers(1, 5))):
        name = draw(st.sampled_from([n for n in ["y", "z", "t0", "out", "a2", "y"] if n not in declared]))
        if draw(st.integers(0, 4)) == 0:
            stmts.append([name, "="] + draw(vector_expr(0, tuple(scalars), tuple(defs))))
            continue  # a vector: not added to the scalars
        stmts.append([name, "="] + draw(scalar_expr(0, tuple(scalars), tuple(defs))))
        scalars.append(name)
    if draw(st.booleans()):
        stmts.append(["output", draw(st.sampled_from(scalars))])
    elif draw(st.booleans()):
        stmts.append(draw(scalar_expr(1, tuple(scalars), tuple(defs))))
    return stmts


def render_program(stmts: list[list[str]], sep: str = "\n") -> str:
    return sep.join(" ".join(s) for s in stmts) + "\n"


@st.composite
def broken_programs(draw) -> str:
    """A grammar-shaped program with one token deleted, swapped, duplicated or replaced."""
    stmts = draw(programs())
    flat: list[str] = []
    for k, s in enumerate(stmts):
        if k:
            flat.append(draw(st.sampled_from(["\n", ";", "\n\n"])))
        flat.extend(s)
    n = len(flat)
    i = draw(st.integers(0, n - 1))
    how = draw(st.sampled_from(["delete", "swap", "duplicate", "replace", "insert"]))
    if how == "delete":
        del flat[i]
    elif how == "swap" and n > 1:
        j = draw(st.integers(0, n - 1))
        flat[i], flat[j] = flat[j], flat[i]
    elif how == "duplicate":
        flat.insert(i, flat[i])
    elif how == "replace":
        flat[i] = draw(st.sampled_from(TOKENS))
    else:
        flat.insert(i, draw(st.sampled_from(TOKENS)))
    spacing = draw(st.sampled_from([" ", "", "  "]))
    return spacing.join(flat)


AT_VALUES = {"a": "1", "b": "2", "c": "-1", "x": "[1,2,3]", "W": "[[1,0,2],[0,1,3]]"}


def at_for(text: str) -> list[str]:
    """--at values for the usual input names the program mentions."""
    pairs = [f"{k}={v}" for k, v in AT_VALUES.items() if re.search(rf"\b{k}\b", text)]
    return ["--at", ",".join(pairs)] if pairs else []


def _unknown_inputs_ok(err: str) -> bool:
    return "unknown input" in err


# -- the properties ------------------------------------------------------------------------


@FUZZ
@given(text=text_soup)
def test_fuzz_text_soup(text: str) -> None:
    run_program(text)


@FUZZ
@given(text=broken_programs(), fmt=st.sampled_from(["table", "json", "csv"]))
def test_fuzz_broken_programs(text: str, fmt: str) -> None:
    run_program(text, *at_for(text), "--format", fmt)


@FUZZ
@given(stmts=programs(), fmt=st.sampled_from(["table", "json", "csv"]), strict=st.booleans())
def test_fuzz_valid_programs(stmts: list[list[str]], fmt: str, strict: bool) -> None:
    text = render_program(stmts)
    extra = at_for(text) + ["--format", fmt] + (["--strict"] if strict else [])
    code, out, err = run_program(text, *extra)
    assume(not _unknown_inputs_ok(err))
    if code == 0 and fmt == "json":
        data = json.loads(out)  # strict JSON: no NaN tokens
        assert "value" in data and "nodes" in data
    if code == 1:
        assert strict and "non-finite" in err, err
    if code == 0 and strict:
        assert "non-finite" not in err


def _commands() -> list[str]:
    from cgraph_cli.cli.entry import app

    names = {c.name for c in app.registered_commands}
    return [c for c in ("ir", "check", "explain", "render") if c in names]


@FUZZ
@given(stmts=programs(), command=st.sampled_from(_commands()), fmt=st.sampled_from(["", "json", "dot"]))
def test_fuzz_other_commands(stmts: list[list[str]], command: str, fmt: str) -> None:
    """ir, check, explain and render (DOT to stdout: no Graphviz child) on random programs."""
    text = render_program(stmts, sep=";")
    extra = at_for(text) if command != "ir" else []
    if command == "ir" and fmt:
        extra = ["--format", fmt]
    elif command == "render":
        extra += ["--format", "dot", "-o", "-"] + (["--no-values"] if fmt == "" else [])
    elif command in ("check", "explain") and fmt == "json":
        extra += ["--format", "json"]
    code, out, err = run_inprocess([command, "-e", text, *extra])
    check_answer(code, out, err, text, f"{command} -e {text!r} {extra}")


@FUZZ
@given(text=st.one_of(programs().map(render_program), broken_programs(), text_soup))
def test_fuzz_fast_parser_agrees_with_lark(text: str) -> None:
    """Differential: whatever the hand-written fast parser accepts, Lark parses to the same statements."""
    from cgraph_cli.errors import CgraphError, Source
    from cgraph_cli.lang import parser

    if not hasattr(parser, "parse_fast"):
        return
    fast = parser.parse_fast(text if text.endswith("\n") else text + "\n")
    if fast is None:
        return
    try:
        reference = parser.parse_lark(Source(text))
    except CgraphError as e:
        raise AssertionError(f"the fast parser accepts {text!r}; Lark says: {e.render()}") from None
    assert fast == reference, text


def _bracketed(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(inner, max_size=3).map(",".join).map("[{}]".format)


_at_value = st.recursive(
    st.one_of(
        st.sampled_from(NUMBERS + ["inf", "-nan", "pi", "-pi", "1e", "e3", "--1", "0x10", ""]), st.text(max_size=4)
    ),
    _bracketed,
    max_leaves=8,
)
at_strings = st.one_of(
    st.text(max_size=40),
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "x", "q", "", "1a", " a", "a b", "=", "a="]), _at_value).map("=".join),
        max_size=4,
    ).map(",".join),
)


@FUZZ
@given(at=st.lists(at_strings, min_size=1, max_size=3))
def test_fuzz_at_strings(at: list[str]) -> None:
    argv = ["eval", "-e", "z = sum(a * x) + b"]
    for a in at:
        argv += ["--at", a]
    code, out, err = run_inprocess(argv)
    check_answer(code, out, err, None, f"--at {at!r}")


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**30), 10**30),
        st.floats(allow_nan=False),
        st.text(max_size=5),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=10,
)


@FUZZ
@given(
    doc=st.one_of(
        st.dictionaries(st.sampled_from(["a", "b", "x", "zz", "", "1", "a b"]), json_values, max_size=4), json_values
    ),
    raw=st.one_of(st.none(), st.binary(max_size=30)),
)
def test_fuzz_at_file(tmp_path_factory, doc, raw) -> None:
    folder = tmp_path_factory.mktemp("atfile")
    path = folder / "vals.json"
    path.write_bytes(raw if raw is not None else json.dumps(doc).encode())
    code, out, err = run_inprocess(["eval", "-e", "z = sum(a * x) + b", "--at-file", str(path), "--at", "b=1"])
    check_answer(code, out, err, None, f"--at-file {path.read_bytes()!r}")


csv_cells = st.one_of(
    st.sampled_from(["1", "-2.5", "0", "1e999", "nan", "inf", "", " 3 ", "x", "[1,2]", '"4"']), st.text(max_size=4)
)


@FUZZ
@given(
    header=st.lists(st.sampled_from(["a", "b", "x", "z", "", "a b", "1", "a"]), min_size=0, max_size=4),
    rows=st.lists(st.lists(csv_cells, max_size=5), max_size=6),
    raw=st.one_of(st.none(), st.text(max_size=60), st.binary(max_size=30)),
    fmt=st.sampled_from(["table", "json", "csv"]),
)
def test_fuzz_batch_csv(tmp_path_factory, header, rows, raw, fmt) -> None:
    """eval --batch with random CSV files."""
    path = tmp_path_factory.mktemp("batch") / "points.csv"
    if isinstance(raw, bytes):
        path.write_bytes(raw)
    elif isinstance(raw, str):
        path.write_text(raw, encoding="utf-8")
    else:
        path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    code, out, err = run_inprocess(["eval", "-e", "z = a * b + sin(a)", "--batch", str(path), "--format", fmt])
    check_answer(code, out, err, None, f"--batch {path.read_bytes()!r}")


ARGV_WORDS = [
    "eval", "ir", "check", "explain", "render", "-e", "--expr", "--at", "--at-file", "--of", "--format", "-f", "--all",
    "--strict", "--seed", "--dtype", "--max-memory", "--batch", "--no-cache", "--help", "-h", "--version", "--",
    "-", "json", "csv", "table", "text", "dot", "float32", "float64", "z = a * b", "a=1,b=2", "a=-1", "z", "q", "1G",
    "-3", "1e3", "--format=json", "--at=a=1", "--seed=1", "-ez=1", "nosuch.cg", "/", "", "=", "--of=",
]  # fmt: skip


@FUZZ
@given(argv=st.lists(st.one_of(st.sampled_from(ARGV_WORDS), st.text(max_size=6)), max_size=8))
def test_fuzz_argv(argv: list[str]) -> None:
    """Random command lines: the same answer with and without the Typer-free fast path of eval."""
    assume("--batch" not in argv and "--at-file" not in argv and "-" not in argv)  # no files, no stdin
    with pytest.MonkeyPatch.context() as m:
        m.chdir(CORPUS)
        code, out, err = run_inprocess(argv)
        check_answer(code, out, err, None, f"argv {argv!r}")
        m.setenv("CGRAPH_NO_FASTPATH", "1")
        code2, out2, err2 = run_inprocess(argv)
        check_answer(code2, out2, err2, None, f"argv {argv!r} (no fast path)")
    assert (code, out) == (code2, out2), argv


@st.composite
def pathological(draw) -> str:
    """Extreme shapes of otherwise ordinary programs: deep nesting, long chains, huge numbers and dimensions."""
    n = draw(st.sampled_from([10, 31, 32, 33, 64, 65, 500, 3000]))
    big = draw(st.sampled_from(["1e15", "1e30", "1e300", "1e999", "4294967296", "2147483648", "-1e15", "65536"]))
    kind = draw(st.integers(0, 11))
    if kind == 0:
        return "z = " + "(" * n + "a" + ")" * n
    if kind == 1:
        return "z = sum(" + "[" * n + draw(st.sampled_from(["1", "a", "a, 1", "[a]"])) + "]" * n + ")"
    if kind == 2:
        return "z = " + draw(st.sampled_from(["-", "+", "- ", "-+"])) * n + "a"
    if kind == 3:
        return "z = " + draw(st.sampled_from(["exp(", "sin(", "sqrt(", "-(", "sum("])) * n + "a" + ")" * n
    if kind == 4:
        return "z = " + draw(st.sampled_from(["^", "**", "+", "*", "/", "-", "@"])).join(["a"] * n)
    if kind == 5:
        ctor = draw(st.sampled_from(["zeros", "ones", "randn", "rand", "eye"]))
        dims = draw(st.lists(st.sampled_from(["0", "1", "3", big]), min_size=1, max_size=4))
        return f"z = sum({ctor}({', '.join(dims)}))"
    if kind == 6:
        return f"z = sum(reshape(zeros({draw(st.sampled_from(['0', '6', big]))}), {big}, 0))"
    if kind == 7:
        return f"z = sum(zeros(6)[{big}:{draw(st.sampled_from(['', big, '-' + big]))}:{big}]) + a"
    if kind == 8:
        return f"z = sum(softmax(zeros(3, 3), {big})) + a" if draw(st.booleans()) else f"z = sum(zeros(3), {big}) + a"
    if kind == 9:
        return "\n".join(f"def f{i}(x) = f{i - 1}(x) * f{i - 1}(x)" if i else "def f0(x) = x * x" for i in range(n)) + (
            f"\nz = f{n - 1}(a)"
        )
    if kind == 10:
        return (
            f"input x[{big}, 0]\nz = sum(x) + a" if draw(st.booleans()) else f"input x[{', '.join(['1'] * n)}]\nz = a"
        )
    return "z = a" + " + a" * n + (f" * {big}" * draw(st.integers(0, 3)))


@settings(FUZZ, max_examples=max(40, EXAMPLES // 5))
@given(text=pathological())
def test_fuzz_pathological(text: str) -> None:
    run_program(text, "--at", "a=0.5", "--format", "json")


@settings(FUZZ, max_examples=max(30, EXAMPLES // 10))
@given(data=st.data())
def test_fuzz_damaged_cache(tmp_path_factory, data) -> None:
    """A truncated or corrupted graph-cache entry is rebuilt, never an error or a wrong answer."""

    folder = tmp_path_factory.mktemp("cache")
    prog = "\n".join(f"x{i} = a * {i} + b" for i in range(limits.CACHE_MIN_CHARS // 12)) + "\nz = x1 + x2\n"
    argv = ["eval", "-e", prog, "--at", "a=1,b=2", "--format", "csv"]
    with pytest.MonkeyPatch.context() as m:
        m.setenv("CGRAPH_CACHE_DIR", str(folder))
        m.delenv("CGRAPH_NO_CACHE", raising=False)
        reference = run_inprocess(argv)
        (entry,) = folder.glob("*.npz")
        good = entry.read_bytes()
        how = data.draw(st.sampled_from(["truncate", "flip", "garbage"]))
        if how == "truncate":
            bad = good[: data.draw(st.integers(0, len(good) - 1))]
        elif how == "flip":
            raw = bytearray(good)
            for k in data.draw(st.lists(st.integers(0, len(good) - 1), min_size=1, max_size=4)):
                raw[k] ^= data.draw(st.integers(1, 255))
            bad = bytes(raw)
        else:
            bad = data.draw(st.binary(max_size=200))
        entry.write_bytes(bad)
        code, out, err = run_inprocess(argv)
    check_answer(code, out, err, prog, f"damaged cache ({how})")
    assert (code, out) == reference[:2]


def test_damaged_cache_header_regression(tmp_path) -> None:
    """Found by test_fuzz_damaged_cache: one flipped bit in an array's .npy header made numpy's header
    parser raise tokenize.TokenError (exit 3)."""

    prog = "\n".join(f"x{i} = a * {i} + b" for i in range(limits.CACHE_MIN_CHARS // 12)) + "\nz = x1 + x2\n"
    argv = ["eval", "-e", prog, "--at", "a=1,b=2", "--format", "csv"]
    with pytest.MonkeyPatch.context() as m:
        m.setenv("CGRAPH_CACHE_DIR", str(tmp_path))
        m.delenv("CGRAPH_NO_CACHE", raising=False)
        reference = run_inprocess(argv)
        (entry,) = tmp_path.glob("*.npz")
        raw = bytearray(entry.read_bytes())
        raw[65] ^= 64
        entry.write_bytes(bytes(raw))
        assert run_inprocess(argv) == reference


# -- a few through the real entry point ------------------------------------------------------


@settings(max_examples=max(5, EXAMPLES // 100), deadline=None, derandomize=True, database=None)
@given(text=st.one_of(text_soup, broken_programs(), programs().map(render_program)))
def test_fuzz_subprocess(tmp_path_factory, text: str) -> None:
    from tests.conftest import run_cli

    assume("\x00" not in text)
    folder = tmp_path_factory.mktemp("prog")
    path = folder / "p.cg"
    path.write_text(text, encoding="utf-8", newline="")
    r = run_cli("eval", str(path), *at_for(text))
    check_answer(r.returncode, r.stdout, r.stderr, text.replace("\r\n", "\n"), f"eval {text!r}")
    if r.returncode == 2 and LOCATED.search(r.stderr):
        assert LOCATED.search(r.stderr).group(1) == str(path)


# -- the regression corpus -------------------------------------------------------------------


def corpus_cases() -> list[Path]:
    return sorted(p for p in CORPUS.glob("*") if p.is_file() and p.suffix in (".cg", ".json"))


@pytest.mark.parametrize("case", corpus_cases(), ids=lambda p: p.name)
def test_corpus(case: Path, tmp_path: Path) -> None:
    """Every input that ever failed: a .cg program (its `# argv:` line gives extra arguments), or a
    .json case {"argv": [...], "text": "...", "files": {"name": "base64"}} run in-process; the files are
    written to a temporary folder that ``{dir}`` in argv stands for."""
    if case.suffix == ".json":
        import base64

        spec = json.loads(case.read_text(encoding="utf-8"))
        for name, b64 in spec.get("files", {}).items():
            (tmp_path / name).write_bytes(base64.b64decode(b64))
        argv = [a.replace("{dir}", str(tmp_path)) for a in spec["argv"]]
        text = spec.get("text")
    else:
        text = case.read_text(encoding="utf-8")
        m = re.search(r"^# argv: (.*)$", text, re.M)
        argv = ["eval", "-e", text] + (json.loads(m.group(1)) if m else [])
    code, out, err = run_inprocess(argv)
    check_answer(code, out, err, text, f"{case.name}")
    if code == 2 and text is not None and "syntax error" in err:
        assert LOCATED.match(err)
