"""A table cell is text, never rich markup, and a tensor's entries are spelled as a scalar cell spells them.

rich reads ``[z, 1]`` or ``[inf, 1]`` as a style tag and drops it: the expression of a tensor literal and the
value of a tensor starting with inf or nan used to vanish from the eval table (and from the Hessian and HVP
tables, and from ``Evaluation.table()`` printed by the user's own rich console).
"""

from __future__ import annotations

import io

import pytest

import cgraph_cli as cg
from tests.conftest import run_inproc

PROGRAM = """input a = 1
v = [exp(1000 * a), a]
y = a * 0 - a * 0
w = [-(y), a]
out = sum(v * 0) + sum(w) + a
"""


def row(text: str, name: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"│ {name} "))


@pytest.fixture(scope="module")
def table() -> str:
    r = run_inproc("eval", "-e", PROGRAM, "--all", env={"COLUMNS": "200"})  # (no cell folded onto two lines)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_a_tensor_literal_and_an_inf_entry_stay_in_their_cells(table: str) -> None:
    assert "[exp(1000 * a), a]" in row(table, "v")
    assert "[inf, 1]" in row(table, "v")


def test_a_tensor_entry_reads_like_a_scalar_cell(table: str) -> None:
    # -0 is 0 in a table, NaN is NaN, whether the number is a scalar or an entry of a tensor (JSON keeps -0.0)
    assert "[0, 1]" in row(table, "w") and "-0" not in row(table, "w")
    assert "NaN" in row(table, "out")
    r = run_inproc("eval", "-e", "input a = 1\nv = [log(a - 2), a]\nout = sum(v * 0) + a\n", env={"COLUMNS": "200"})
    assert "[NaN, 1]" in row(r.stdout, "v")
    doc = run_inproc("eval", "-e", PROGRAM, "--format", "json").stdout
    assert '"value": [\n        -0.0' in doc or "-0.0" in doc


def test_the_api_table_is_text_under_any_console() -> None:
    from rich.console import Console

    ev = cg.parse(PROGRAM).eval()
    buf = io.StringIO()
    Console(file=buf, width=200).print(ev.to_rich(all_nodes=True))  # a user's console, markup on
    assert "[exp(1000 * a), a]" in buf.getvalue() and "[inf, 1]" in buf.getvalue()


def test_hessian_and_hvp_blocks_are_text() -> None:
    text = "input x[2]\nout = sum(x * x * x) / 6\n"
    r = run_inproc("eval", "-e", text, "--at", "x=[1e200, 1]", "--hvp", "x=[1e200, 1]", env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert "[inf, 1]" in r.stdout  # (H v) = x * v: 1e400 overflows
    r = run_inproc("eval", "-e", text, "--at", "x=[1e200, 1]", "--hessian", env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert "inf" in r.stdout


@pytest.mark.parametrize("columns", [40, 45, 60])
def test_a_narrow_terminal_keeps_every_number_whole_and_the_gradient_column(columns):
    """A terminal narrower than the table's words: the expression, shape and op columns are left out, in that
    order and only as far as needed (a caption says which), so that no number is cut and the gradient stays."""
    from tests.conftest import EXAMPLES

    ev = cg.load(EXAMPLES / "mlp.cg").eval()
    r = run_inproc("eval", str(EXAMPLES / "mlp.cg"), env={"COLUMNS": str(columns)})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(map(len, lines)) <= columns, r.stdout
    assert "∂loss/∂node" in r.stdout and "value" in r.stdout and "node" in r.stdout
    words = set(r.stdout.replace(",", " ").replace("[", " ").replace("]", " ").split())
    for name in ("W1", "b2"):  # each entry of these values and gradients, as tensor cells write them (4 digits)
        for v in (ev[name].value, ev.grad.get(name, ev[name].grad)):
            for x in np_flat(v):
                assert f"{x:.4g}".replace("e-0", "e-") in words, (name, x, r.stdout)
    assert "(too narrow for the expression" in r.stdout
    wide = run_inproc("eval", str(EXAMPLES / "mlp.cg"), env={"COLUMNS": "200"})
    assert "expression" in wide.stdout and "too narrow" not in wide.stdout


def np_flat(v):
    import numpy as np

    return [float(x) for x in np.ravel(v)]


def _programs_for_the_plain_layout():
    from tests.conftest import EXAMPLES

    yield [str(EXAMPLES / "mlp.cg")]  # matrices: cells of several lines
    yield [str(EXAMPLES / "lecture.cg"), "--at", "a=-1,b=3,c=4"]
    yield ["-e", "θ = a * 2\nŷ = θ + 1\n漢字 = ŷ * ŷ\nq = b * 0\nz = 漢字 + a", "--at", "a=1.5,b=2"]  # wide characters
    yield ["-e", "x = [1, 2] * a\ny = sum(x)\nu = b * 2", "--at", "a=1,b=2", "--of", "y"]  # off path, a caption
    yield ["-e", "y = a / b", "--at", "a=1,b=0"]  # inf
    yield ["-e", "input x[3]\ny = sum(x * x)", "--at", "x=[1,2,3]", "--mode", "forward", "--tangent", "x=[1,0,0]"]
    yield ["-e", "input W[2, 2]\ny = sum(W @ W)", "--at", "W=[[1,2],[3,4]]", "--dtype", "float32"]
    yield ["-e", "y = (a  # :thumbs_up: [b]\n + 2)", "--at", "a=1"]  # an emoji code and brackets: the text as written
    long = "\n".join(f"x{i} = sin(x{i - 1}) * 0.5 + a" for i in range(1, 60))
    yield ["-e", f"x0 = a\n{long}\nvery_long_name_for_the_last_output_of_all = x59 * 2", "--at", "a=0.3"]


@pytest.mark.parametrize("colour", [False, True], ids=["plain", "colour"])
@pytest.mark.parametrize("args", list(_programs_for_the_plain_layout()))
def test_a_long_table_laid_out_without_rich_is_rich_text_to_the_byte(args, colour, monkeypatch):
    """Tables of more than FAST_ROWS rows are laid out by plain_text, rich drawing only the frame and a probe
    row per row style: the text must be exactly rich's, colours included (as on a terminal), here for every
    table."""
    from cgraph_cli.present import tables

    env = {"FORCE_COLOR": "1"} if colour else {}
    want = run_inproc("eval", *args, "--all", env=env)
    plain = run_inproc("eval", *args, "--all").stdout
    several = any(line.startswith("│ ") and not line[2:].split("│")[0].strip() for line in plain.splitlines())
    assert ("\x1b[" in want.stdout) == colour
    monkeypatch.setattr(tables, "FAST_ROWS", 0)
    laid_out = []
    real = tables.plain_text
    monkeypatch.setattr(tables, "plain_text", lambda *a: laid_out.append(real(*a)) or laid_out[-1])
    got = run_inproc("eval", *args, "--all", env=env)
    assert want.returncode == got.returncode == 0, got.stderr
    # (not handed back to rich; in colour, a row of cells over several lines is)
    assert laid_out and all((text is not None) != (colour and several) for text in laid_out)
    assert got.stdout == want.stdout


def test_an_expression_is_shown_as_written_not_as_emoji():
    r = run_inproc("eval", "-e", "y = (a  # :thumbs_up:\n + 2)", "--at", "a=1")
    assert r.returncode == 0 and ":thumbs_up:" in r.stdout and "👍" not in r.stdout, r.stdout


@pytest.mark.parametrize(
    "args, columns, whole",
    [
        (["-e", "y = sin(a*b) * 0.5 + exp(b)", "--at", "a=1.5,b=-2.25", "--all"], 44, ["(sin(a*b) * 0.5)"]),
        (["-e", "input W[2,2]\ny = sum(W @ W)", "--at", "W=[[1,2],[3,4]]"], 50, ["(2, 2)"]),
    ],
)
def test_a_narrow_terminal_cuts_no_node_name_or_shape(args, columns, whole):
    """The node, op and shape columns do not wrap: a narrow terminal gives them their longest line, or leaves
    them out, never '…' (two nodes cut alike would read as one)."""
    r = run_inproc("eval", *args, env={"COLUMNS": str(columns)})
    assert r.returncode == 0 and "…" not in r.stdout, r.stdout
    assert all(w in r.stdout for w in whole), r.stdout
    assert max(map(len, r.stdout.splitlines())) <= columns
