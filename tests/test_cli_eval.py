"""`cgraph eval` output formats against their contract (SPEC §3): JSON, CSV, table."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from tests.conftest import EXAMPLES, run_cli
from tests.conftest import run_inproc as run_main

LECTURE = str(EXAMPLES / "lecture.cg")


def strict_json(text: str):
    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name!r}")

    return json.loads(text, parse_constant=refuse)


def ok(*args: str, input: str | None = None, runner=run_main):
    r = runner(*args, input=input)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return r


# -- JSON ---------------------------------------------------------------------------------------

NODE_KEYS = {"id", "name", "op", "args", "shape", "value", "grad", "expr", "line", "column"}


def test_json_lecture_matches_the_spec_example():
    doc = strict_json(ok("eval", LECTURE, "--format", "json").stdout)
    assert {"output", "value", "inputs", "gradients", "nodes"} <= set(doc)
    assert doc["output"] == "z" and doc["value"] == 14.0
    assert doc["inputs"] == {"a": -1.0, "b": 3.0, "c": 4.0}
    assert doc["gradients"] == {"a": 7.0, "b": 9.0, "c": 2.0}
    by_name = {n["name"]: n for n in doc["nodes"] if n["name"]}
    for n in doc["nodes"]:
        assert NODE_KEYS <= set(n), n
        assert isinstance(n["id"], int) and isinstance(n["line"], int) and isinstance(n["column"], int)
        assert all(isinstance(j, int) and j < n["id"] for j in n["args"])  # topological order
    assert [n["id"] for n in doc["nodes"]] == list(range(len(doc["nodes"])))
    a = by_name["a"]
    assert a["op"] == "input" and a["args"] == [] and a["shape"] == [] and a["value"] == -1.0 and a["grad"] == 7.0
    x = by_name["x"]
    assert x["op"] == "add" and x["expr"] == "a + b" and x["value"] == 2.0 and x["grad"] == 7.0
    assert [doc["nodes"][j]["name"] for j in x["args"]] == ["a", "b"]
    # the source location of x = a + b in examples/lecture.cg
    lines = (EXAMPLES / "lecture.cg").read_text().splitlines()
    row = next(k for k, t in enumerate(lines) if t.startswith("x = a + b")) + 1
    assert (x["line"], x["column"]) == (row, 5)
    decl = next(k for k, t in enumerate(lines) if t.startswith("input a")) + 1
    assert (a["line"], a["column"]) == (decl, 7)
    assert by_name["z"]["grad"] == 1.0 and by_name["y"]["grad"] == 2.0


def test_json_anonymous_nodes_have_null_name_and_tensors_are_nested_lists():
    doc = strict_json(
        ok("eval", "-e", "y = sum(W @ x * 2)", "--at", "W=[[1,2],[3,4]],x=[1,-1]", "--format", "json").stdout
    )
    anon = [n for n in doc["nodes"] if n["name"] is None]
    assert anon, doc["nodes"]
    assert {n["op"] for n in anon} >= {"matmul", "const", "mul"}
    assert doc["inputs"]["W"] == [[1.0, 2.0], [3.0, 4.0]]
    assert doc["gradients"]["W"] == [[2.0, -2.0], [2.0, -2.0]]
    assert doc["gradients"]["x"] == [8.0, 12.0]
    W = next(n for n in doc["nodes"] if n["name"] == "W")
    assert W["shape"] == [2, 2]
    const = next(n for n in anon if n["op"] == "const")
    assert const["grad"] is None and const["value"] == 2.0


def test_json_nonfinite_numbers_are_strings():
    r = run_main("eval", "-e", "input x = [0, 1, -1]\nu = log(x)\nv = 1 / x[0]\ny = sum(u) + v - v", "--format", "json")
    assert r.returncode == 0
    doc = strict_json(r.stdout)
    u = next(n for n in doc["nodes"] if n["name"] == "u")
    assert u["value"] == ["-Infinity", 0.0, "NaN"]
    v = next(n for n in doc["nodes"] if n["name"] == "v")
    assert v["value"] == "Infinity"
    assert doc["value"] == "NaN"
    assert "warning:" in r.stderr


def test_json_float32_and_reassigned_names():
    doc = strict_json(ok("eval", "-e", "x = a * 2\nx = x + 1\ny = x * x", "--at", "a=1", "--format", "json").stdout)
    xs = [n for n in doc["nodes"] if n["name"] == "x"]
    assert [n["value"] for n in xs] == [2.0, 3.0]
    assert [n["grad"] for n in xs] == [6.0, 6.0]
    assert doc["gradients"] == {"a": 12.0}


# -- CSV ----------------------------------------------------------------------------------------


def test_csv_parses_with_the_csv_module():
    r = ok("eval", LECTURE, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert list(rows[0]) == ["node", "op", "expr", "shape", "value", "grad"]
    got = {row["node"]: (float(row["value"]), float(row["grad"])) for row in rows}
    assert got == {"a": (-1, 7), "b": (3, 9), "c": (4, 2), "x": (2, 7), "y": (7, 2), "z": (14, 1)}
    assert next(row for row in rows if row["node"] == "x")["expr"] == "a + b"


def test_csv_tensors_and_commas_in_expressions():
    r = ok("eval", "-e", "y = sum(max(x, 0.5) * 2)", "--at", "x=[0,1,2]", "--format", "csv", "--all")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    x = next(row for row in rows if row["node"] == "x")
    assert json.loads(x["value"]) == [0.0, 1.0, 2.0] and json.loads(x["grad"]) == [0.0, 2.0, 2.0]
    assert x["shape"] == "3"
    mx = next(row for row in rows if row["op"] == "maximum")
    assert mx["expr"] == "max(x, 0.5)"  # the comma is quoted, not a column break
    assert mx["node"].startswith("%")
    named = list(
        csv.DictReader(
            io.StringIO(ok("eval", "-e", "y = sum(max(x, 0.5) * 2)", "--at", "x=[0,1,2]", "--format", "csv").stdout)
        )
    )
    assert [row["node"] for row in named] == ["x", "y"]


# -- table --------------------------------------------------------------------------------------


def test_table_contains_the_numbers():
    out = ok("eval", LECTURE).stdout
    assert "∂z/∂node" in out
    for name, value, grad in [("a", "-1", "7"), ("b", "3", "9"), ("c", "4", "2"), ("x", "2", "7"), ("y", "7", "2")]:
        line = next(ln for ln in out.splitlines() if ln.strip("│ ").startswith(name + " "))
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        assert cells[0] == name and cells[-2] == value and cells[-1] == grad, line
    assert "14" in out and "a + b" in out
    header = next(ln for ln in out.splitlines() if "node" in ln and "op" in ln)
    cols = [c.strip() for c in header.strip().strip("┃").split("┃")]
    assert cols == ["node", "op", "expression", "shape", "value", "∂z/∂node"]


def test_table_all_adds_anonymous_nodes():
    src = "z = (a + b) * 2"
    plain = ok("eval", "-e", src, "--at", "a=1,b=2").stdout
    full = ok("eval", "-e", src, "--at", "a=1,b=2", "--all").stdout
    assert "%" not in plain and "add" not in plain
    assert "(a + b)" in full and "add" in full and "const" in full  # named as explain names it


def test_table_abbreviates_tensors():
    r = ok("eval", "-e", "y = sum(x * 2)", "--at", "x=[" + ",".join(str(i) for i in range(1000)) + "]")
    assert "999" in r.stdout and "..." in r.stdout
    assert "500" not in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) < 200


# -- sources: stdin, -e, a file ------------------------------------------------------------------


def test_stdin_e_and_file_agree(tmp_path):
    src = (EXAMPLES / "lecture.cg").read_text()
    p = tmp_path / "l.cg"
    p.write_text(src)
    docs = [
        strict_json(ok("eval", str(p), "--format", "json").stdout),
        strict_json(ok("eval", "-", "--format", "json", input=src).stdout),
        strict_json(ok("eval", "-e", src, "--format", "json").stdout),
        strict_json(ok("eval", "--expr", src, "--format", "json").stdout),
    ]
    for d in docs[1:]:
        assert d == docs[0]


def test_bare_expression_is_out_and_of_picks_another():
    doc = strict_json(ok("eval", "-e", "t = a * a\nt + 1", "--at", "a=3", "--format", "json").stdout)
    assert doc["output"] == "out" and doc["value"] == 10.0 and doc["gradients"] == {"a": 6.0}
    doc = strict_json(
        ok("eval", "-e", "t = a * a\nu = t * a\noutput u, t", "--at", "a=3", "--format", "json", "--of", "t").stdout
    )
    assert doc["output"] == "t" and doc["value"] == 9.0 and doc["gradients"] == {"a": 6.0}


def test_at_repeated_and_overrides_default():
    doc = strict_json(
        ok(
            "eval",
            "-e",
            "input a = 5\ny = a * sum(x) + sum(W)",
            "--at",
            "x=[1,2,3]",
            "--at",
            "W=[[1,0],[0,1]],a=2",
            "--format",
            "json",
        ).stdout
    )
    assert doc["value"] == 2 * 6 + 2
    assert doc["inputs"]["a"] == 2.0


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_installed_executable_prints_each_format(fmt):
    r = ok("eval", LECTURE, "--format", fmt, runner=run_cli)
    assert r.stderr == ""
    assert "14" in r.stdout
    if fmt == "json":
        assert strict_json(r.stdout)["gradients"] == {"a": 7.0, "b": 9.0, "c": 2.0}


def test_version_and_help():
    r = ok("--version")
    assert r.stdout.startswith("cgraph ")
    r = ok("eval", "--help")
    assert "--at" in r.stdout and "--format" in r.stdout


def test_output_values_are_float64_by_default():
    doc = strict_json(ok("eval", "-e", "y = x / 3", "--at", "x=1", "--format", "json").stdout)
    assert doc["value"] == 1 / 3
    assert np.float64(doc["gradients"]["x"]) == np.float64(1) / 3


def test_piped_tables_have_no_trailing_spaces():
    """rich pads a table's title to the table's width; piped output carries no trailing spaces."""
    for args in (
        ["eval", str(EXAMPLES / "lecture.cg"), "--at", "a=-1,b=3,c=4"],
        ["check", str(EXAMPLES / "lecture.cg"), "--at", "a=-1,b=3,c=4"],
    ):
        r = run_cli(*args)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.split("\n")
        assert lines[0] in ("z = 14", "∂z/∂input: 3 entries of a, b, c: ok")
        assert [ln for ln in lines if ln != ln.rstrip()] == []


@pytest.mark.parametrize(
    "text, want",
    [
        ("Infinity", [np.inf]),
        ("-Infinity", [-np.inf]),
        ("inf", [np.inf]),
        ("-INF", [-np.inf]),
        ("[1, infinity, NaN, -inf]", [1.0, np.inf, np.nan, -np.inf]),
    ],
)
def test_at_reads_infinity_as_json_writes_it(text, want):
    """--at reads the spellings cgraph writes (JSON's "Infinity") and Python's (inf), in any case."""
    from cgraph_cli.run.values import parse_value

    got = np.ravel(parse_value(text, "--at a"))
    assert np.array_equal(got, want, equal_nan=True)
