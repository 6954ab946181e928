"""Names as mathematicians write them: Python's identifier rules with NFKC normalisation (θ, α, σ1, ŷ, and ﬁ is
fi), pi still the constant, invalid characters refused at their column, and a warning for a name that mixes
alphabets confusably (a Cyrillic а among Latin letters), naming the character."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest

from cgraph_cli.errors import Source
from cgraph_cli.lang.parser import parse_fast, parse_lark
from cgraph_cli.lang.scripts import confusable, name_warnings
from cgraph_cli.run.program import compile_program, run
from tests.conftest import run_inproc
from tests.test_parser_fast import check


def evaluate(src: str, **at):
    res = run(Source(src, "<t>"), {k: np.asarray(v, dtype=float) for k, v in at.items()}, use_cache=False)
    return res.values[res.out], {n: res.grads[i] for n, i in res.graph.inputs.items()}, res.graph


def test_greek_and_accented_names() -> None:
    v, grads, g = evaluate("θ = α * σ1 + ŷ\nλ_2 = θ ^ 2", α=2, σ1=3, ŷ=1)
    assert v == 49 and grads == {"α": 2 * 7 * 3, "σ1": 2 * 7 * 2, "ŷ": 2 * 7}
    assert list(g.inputs) == ["α", "σ1", "ŷ"]


def test_names_are_nfkc_normalised_as_in_python() -> None:
    decomposed = "y\u0302"  # y + COMBINING CIRCUMFLEX ACCENT: the same name as the precomposed ŷ
    assert unicodedata.normalize("NFKC", decomposed) == "ŷ"
    v, grads, g = evaluate(f"{decomposed} = 3\nz = ŷ * ﬁ + ｘ", fi=2, x=5)  # ligature fi, fullwidth x
    assert v == 3 * 2 + 5 and list(g.inputs) == ["fi", "x"]
    ns: dict = {}
    exec(f"{decomposed} = 3\nz = ŷ * 2", ns)  # Python agrees
    assert ns["z"] == 6


def test_pi_stays_a_constant() -> None:
    v, grads, g = evaluate("y = pi * r ^ 2", r=2)
    assert v == pytest.approx(np.pi * 4) and list(g.inputs) == ["r"]
    assert evaluate("π = 3\ny = π * pi")[0] == pytest.approx(3 * np.pi)  # π is an ordinary name


def test_both_parsers_agree_on_names_beyond_ascii() -> None:
    for text in ["θ = α + 1\n", "y\u0302 = ﬁ\n", "x_α = [σ1, σ2]\n", "ｉｎｐｕｔ = 2\n", "inputθ = 1\n", "y = x²\n"]:
        check(text)
    assert parse_fast("θ = α + ŷ\n") == parse_lark(Source("θ = α + ŷ\n"))


def fails(*args: str) -> str:
    r = run_inproc(*args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout == ""
    return r.stderr


@pytest.mark.parametrize(
    "src,first,col",
    [
        ("y = x²", "error: <expr>:1:6: invalid character '²' (U+00B2 SUPERSCRIPT TWO) in the name 'x²'", 5),
        ("y = a‿b€", "error: <expr>:1:8: invalid character '€' (U+20AC EURO SIGN) in the name 'a‿b€'", 7),
        ("θ = 1\ny = θ→2", "error: <expr>:2:6: invalid character '→' (U+2192 RIGHTWARDS ARROW) in the name 'θ→2'", 5),
    ],
)
def test_characters_python_refuses_in_names(src: str, first: str, col: int) -> None:
    err = fails("eval", "-e", src)
    assert err.splitlines()[0] == first, err
    caret = err.splitlines()[2]
    assert caret.index("^") - caret.index("|") - 2 == col
    assert "hint: a name is made of letters, digits and _, as in Python" in err


@pytest.mark.parametrize(
    "name,char,message",
    [
        ("pаram", "а", "'а' is U+0430 CYRILLIC SMALL LETTER A, which looks like the Latin 'a'"),
        ("Wх", "х", "'х' is U+0445 CYRILLIC SMALL LETTER HA, which looks like the Latin 'x'"),
        ("Αlpha", "Α", "'Α' is U+0391 GREEK CAPITAL LETTER ALPHA, which looks like the Latin 'A'"),
        ("пaрам", "a", "'a' is U+0061 LATIN SMALL LETTER A, which looks like the Cyrillic 'а'"),
    ],
)
def test_confusable_mixtures(name: str, char: str, message: str) -> None:
    k, text = confusable(name)
    assert name[k] == char and text == f"the name '{name}' mixes alphabets: {message}"


@pytest.mark.parametrize("name", ["param", "θ", "dθ", "x_α", "σ1", "ŷ", "αβγ", "параметр", "ΔW", "λ_max"])
def test_names_that_do_not_deceive(name: str) -> None:
    assert confusable(name) is None


def test_the_warning_names_the_character_and_points_at_it() -> None:
    r = run_inproc("eval", "-e", "x = 1\npаram = 2 * x\ny = pаram + param", "--at", "param=1", "--format", "json")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert lines[0] == (
        "warning: <expr>:2:2: the name 'pаram' mixes alphabets: 'а' is U+0430 CYRILLIC SMALL LETTER A, "
        "which looks like the Latin 'a'"
    )
    assert lines[1:3] == ["  2 | pаram = 2 * x", "    |  ^"]
    assert lines[3] == "hint: two names that look alike are different names; type it in one alphabet"
    assert len([x for x in lines if x.startswith("warning:")]) == 1  # once per name, not per use


@pytest.mark.parametrize("command", [["ir"], ["check"], ["explain"], ["render", "--format", "dot", "-o", "-"]])
def test_every_command_warns(command: list[str]) -> None:
    r = run_inproc(*command, "-e", "yа = 2 * x", "--at", "x=1")
    assert r.returncode == 0, r.stderr
    assert "warning: <expr>:1:2: the name 'yа' mixes alphabets: 'а' is U+0430" in r.stderr


def test_batch_warns_too_and_strict_is_about_numbers(tmp_path) -> None:
    """eval --batch says what every other command says about a confusable name; --strict fails on a non-finite
    number only, as in a single evaluation."""
    points = tmp_path / "p.csv"
    points.write_text("xа,b\n1,2\n3,4\n", encoding="utf-8")
    for extra in ([], ["--strict"]):
        r = run_inproc("eval", "-e", "input xа, b\nout = xа * b", "--batch", str(points), *extra)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[1:] == ["1,2,2.0,2.0,1.0", "3,4,12.0,4.0,3.0"]
        assert r.stderr.startswith("warning: <expr>:1:8: the name 'xа' mixes alphabets: 'а' is U+0430")


def test_no_warning_for_plain_names() -> None:
    g = compile_program(Source("θ = α * σ1\nx = θ + 1", "<t>"), {"α": np.array(1.0), "σ1": np.array(2.0)})
    assert name_warnings(g.bindings, g.source) == []
    r = run_inproc("eval", "-e", "θ = α * 2", "--at", "α=1")
    assert r.returncode == 0 and r.stderr == ""


def test_names_on_the_command_line_and_in_files(tmp_path) -> None:
    r = run_inproc("eval", "-e", "y = ŷ * ﬁ", "--at", "y\u0302=2,ﬁ=3", "--format", "json")
    assert r.returncode == 0, r.stderr
    p = tmp_path / "at.json"
    p.write_text('{"ŷ": 2, "fi": 4}', encoding="utf-8")
    r = run_inproc("eval", "-e", "y = ŷ * ﬁ", "--at-file", str(p), "--format", "json")
    assert r.returncode == 0 and '"value": 8.0' in r.stdout, r.stderr
    csv = tmp_path / "rows.csv"
    csv.write_text("θ,ŷ\n1,2\n3,4\n", encoding="utf-8")
    r = run_inproc("eval", "-e", "y = θ * ŷ", "--batch", str(csv))
    assert r.returncode == 0 and r.stdout.splitlines()[1:] == ["1,2,2.0,2.0,1.0", "3,4,12.0,4.0,3.0"], r.stdout
    assert "is not a valid input name" in fails("eval", "-e", "y = a", "--at", "a²=1")
