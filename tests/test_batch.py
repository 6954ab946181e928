"""``eval --batch``: the vectorised pass over all CSV rows equals ``eval`` run row by row."""

from __future__ import annotations

import csv
import io
import random

import numpy as np
import pytest

from cgraph_cli.errors import CgraphError, Source
from cgraph_cli.present.tables import to_csv
from cgraph_cli.run import batch as batch_mod
from cgraph_cli.run.batch import run_batch
from cgraph_cli.run.program import run
from tests.conftest import EXAMPLES

LECTURE = (EXAMPLES / "lecture.cg").read_text()
KINKY = """
def f(u, v) = max(u, v) * relu(u - v) + abs(v)
input k = 2
s = f(a, b) + k * min(a, b, 0.5) / (abs(b) + 1)
t = sqrt(abs(s) + 1) + log(abs(a) + 1) ^ 2 + exp(sin(b)) + tanh(a * b) - sigmoid(a) + softplus(b)
s = s + t + sum(a) + max(b) + pow(abs(a) + 1, b)
out = s * s
"""


def row_by_row(program: str, header: list[str], rows: list[list[str]], at: dict, dtype: str = "float64") -> str:
    """The expected output, built from the ordinary one-point `eval` path (its CSV cells)."""
    lines = []
    for row in rows:
        given = {k: np.array(float(v)) for k, v in at.items()}
        given.update({h: np.array(float(v)) for h, v in zip(header, row)})
        res = run(Source(program, "p.cg"), given, dtype=dtype)
        g = res.graph
        cells = {r[0]: r for r in csv.reader(io.StringIO(to_csv(res, all_nodes=True)))}
        first = [v.strip() for v in row]  # the input cells as given
        out = cells[g.label(res.out)][4]
        grads = [cells[name][5] or "0.0" for name in g.inputs]
        lines.append(",".join(first + [out] + grads))
    return "\n".join(lines) + "\n"


def batch_text(program: str, csv_text: str, at: dict | None = None, dtype: str = "float64", tmp_path=None) -> str:
    path = tmp_path / "points.csv"
    path.write_text(csv_text)
    buf = io.StringIO()
    given = {k: np.array(float(v)) for k, v in (at or {}).items()}
    run_batch(Source(program, "p.cg"), str(path), given, dtype=dtype, out=buf)
    return buf.getvalue()


def test_lecture_batch_matches_row_by_row(tmp_path) -> None:
    rows = [["-1", "3", "4"], ["0", "0", "0"], ["2.5", "1e3", "-7"], ["1e-300", "-0.0", "3"]]
    text = "a,b,c\n" + "\n".join(",".join(r) for r in rows) + "\n"
    got = batch_text(LECTURE, text, tmp_path=tmp_path)
    head, body = got.split("\n", 1)
    assert head == "a,b,c,z,dz/da,dz/db,dz/dc"
    assert body == row_by_row(LECTURE, ["a", "b", "c"], rows, {})
    assert body.splitlines()[0] == "-1,3,4,14.0,7.0,9.0,2.0"  # the lecture's numbers


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_random_points_with_kinks_defaults_and_at_values(tmp_path, dtype: str) -> None:
    rng = random.Random(7)
    pool = ["0", "1", "-1", "0.5", "-0.5", "2", "3.25", "-2.75", "1e-3", "0.0"]
    rows = [[rng.choice(pool), rng.choice(pool)] for _ in range(60)]
    rows += [[repr(rng.uniform(-3, 3)), repr(rng.uniform(-3, 3))] for _ in range(60)]
    text = "b,a\n" + "\n".join(",".join(r) for r in rows) + "\n"
    got = batch_text(KINKY, text, at={"k": 1.5}, dtype=dtype, tmp_path=tmp_path)
    head, body = got.split("\n", 1)
    assert head == "b,a,out,dout/dk,dout/da,dout/db"
    assert body == row_by_row(KINKY, ["b", "a"], rows, {"k": 1.5}, dtype=dtype)


def test_chunks_stream_and_agree(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(batch_mod, "CHUNK_ROWS", 7)
    monkeypatch.setattr(batch_mod, "_READ_BYTES", 13)
    rows = [[str(i % 5 - 2), str(i * 0.25), str(-i)] for i in range(50)]
    text = "a,b,c\r\n" + "\r\n".join(",".join(r) for r in rows)  # CRLF and no final newline
    got = batch_text(LECTURE, text, tmp_path=tmp_path)
    assert got.split("\n", 1)[1] == row_by_row(LECTURE, ["a", "b", "c"], rows, {})


def test_tensor_program_falls_back_to_row_by_row(tmp_path) -> None:
    program = "w = [1, 2, 3]\ny = sum(w * a) + b ^ 2\n"
    got = batch_text(program, "a,b\n1,2\n-1,0.5\n", tmp_path=tmp_path)
    assert got == "a,b,y,dy/da,dy/db\n1,2,10.0,6.0,4.0\n-1,0.5,-5.75,6.0,1.0\n"


def test_missing_column_takes_default_and_quoted_header(tmp_path) -> None:
    got = batch_text(LECTURE, '"a","b"\n1,1\n', tmp_path=tmp_path)  # c = 4 by default
    assert got == "a,b,z,dz/da,dz/db,dz/dc\n1,1,10.0,5.0,7.0,2.0\n"


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b,q\n1,2,3\n", "column 'q' is not an input"),
        ("a,b\n1,2\n1,x\n", "points.csv:3:2: 'x' in column 'b' is not a number"),
        # float() reads these (and numpy's text conversion too), --at does not: a typo is not a number
        ("a,b\n1,2\n1,1_5\n", "points.csv:3:2: '1_5' in column 'b' is not a number"),
        ("a,b\n1,2\n1_000,2\n", "points.csv:3:1: '1_000' in column 'a' is not a number"),
        ("a,b\n1,2\n1,\u0661\u0662\n", "points.csv:3:2: '\u0661\u0662' in column 'b' is not a number"),
        ("a,b\n1,2\n\uff11,2\n", "points.csv:3:1: '\uff11' in column 'a' is not a number"),
        ('a,b\n1,2\n"1_0",2\n', "points.csv:3:1: '1_0' in column 'a' is not a number"),
        ("a,b\n1,2\n1,2,3\n", "points.csv:3: this row has 3 cells but the header has 2"),
        ("a,b\n1,2\n1\n", "points.csv:3: this row has 1 cell but the header has 2"),
        ("a,b\n1,\n", "points.csv:2:2: the cell in column 'b' is empty"),
        ("a,a\n1,2\n", "column 'a' appears twice"),
        ("", "is empty"),
    ],
)
def test_bad_csv_is_a_clear_error(tmp_path, text: str, message: str) -> None:
    with pytest.raises(CgraphError) as e:
        batch_text(LECTURE, text, tmp_path=tmp_path)
    assert message in e.value.message
    assert e.value.exit_code == 2


def test_cli_batch_end_to_end(cli, tmp_path) -> None:
    pts = tmp_path / "pts.csv"
    pts.write_text("a,b\n-1,3\n2,2\n")
    r = cli("eval", str(EXAMPLES / "lecture.cg"), "--batch", str(pts), "--at", "c=4")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "a,b,z,dz/da,dz/db,dz/dc\n-1,3,14.0,7.0,9.0,2.0\n2,2,24.0,6.0,10.0,4.0\n"
    one = cli("eval", str(EXAMPLES / "lecture.cg"), "--at", "a=2,b=2,c=4", "--format", "json")
    assert '"value": 24.0' in one.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,oops\n")
    r = cli("eval", str(EXAMPLES / "lecture.cg"), "--batch", str(bad))
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    assert r.stdout == ""
    r = cli("eval", str(EXAMPLES / "lecture.cg"), "--batch", str(tmp_path / "nope.csv"))
    assert r.returncode == 2 and "no such file" in r.stderr


@pytest.mark.parametrize("extra, named", [(["--format", "json"], "--format json"), (["--all"], "--all")])
def test_batch_refuses_options_it_cannot_honour(cli, tmp_path, extra: list[str], named: str) -> None:
    points = tmp_path / "p.csv"
    points.write_text("a,b,c\n-1,3,4\n")
    for env in ({}, {"CGRAPH_NO_FASTPATH": "1"}):  # the fast path and Typer's path agree
        r = cli("eval", str(EXAMPLES / "lecture.cg"), "--batch", str(points), *extra, env=env)
        assert r.returncode == 2
        assert r.stdout == ""
        assert r.stderr == f"error: --batch writes CSV (one row per point); it cannot be combined with {named}\n"


@pytest.mark.parametrize(
    "program, text, message, hint",
    [
        (
            "z = x * y * w",
            "x\n1\n",
            "missing values for inputs: y, w",
            "add a column named y to the CSV, or give them with --at, for example: --at y=1,w=1",
        ),
        ("z = x * y", "x\n1\n", "missing value for input: y", "add a column named y to the CSV, or give it with --at"),
        # a tensor input is no CSV column: --at with a value of its shape (a review)
        (
            "input W[2]\nz = sum(W) * x",
            "x\n1\n",
            "missing value for input: W",
            "give it with --at, for example: --at W=[1, 1]",
        ),
        (
            "input W[2, 5], b\nz = sum(W) * x * b",
            "x\n1\n",
            "missing values for inputs: W, b",
            "add a column named b to the CSV, or give them with --at, for example: --at b=1"
            " (or --at-file for W of shape (2, 5))",
        ),
        ("z = a * b", "a;b\n1;2\n", "column 1 of the header, 'a;b', is not an input name", "not ';'"),
        ("z = a * b", "a\tb\n1\t2\n", "column 1 of the header, 'a\\tb', is not an input name", "not '\\t'"),
    ],
)
def test_batch_hints_point_to_the_csv(tmp_path, program: str, text: str, message: str, hint: str) -> None:
    """Under --batch a missing input is a missing column (not only an --at value), and a header split by another
    separator is named as such (a new user's review)."""
    with pytest.raises(CgraphError) as e:
        batch_text(program, text, tmp_path=tmp_path)
    assert message in e.value.message and hint in (e.value.hint or "")
    assert e.value.exit_code == 2


def test_unicode_white_space_around_a_number_is_still_white_space(tmp_path) -> None:
    """Only the number itself must be ASCII: a no-break or em space around it is white space, as float() and
    --at read it (a review: my first check refused the cell, and showed it stripped, as '1.5')."""
    got = batch_text("y = a * 2", "a\n\u00a01.5\n2\u2003\n", tmp_path=tmp_path)
    assert got.splitlines()[1:] == ["1.5,3.0,2.0", "2,4.0,2.0"]
