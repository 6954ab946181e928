"""--dtype float32 numbers (issue 15): the shortest text that round-trips in float32 (3.1415927), not the float64
widening (3.1415927410125732), in JSON, CSV and --batch CSV; float64 output is unchanged; JSON stays strict."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pytest

from cgraph_cli import fmt
from tests.conftest import run_inproc

PROGRAM = "y = pi * x + w / 3; z = sum(v * y) + 1e-30 * sum(v) + 1e20 * x"
AT = ["--at", "x=0.1,w=7", "--at", "v=[1, 0.2, -3.3]"]
NUMBER = re.compile(r"-?\d+\.\d*(?:e[-+]?\d+)?|-?\d+e[-+]?\d+")


def _strict(text: str):
    def no_constant(name):
        raise AssertionError(f"bare {name} in JSON")

    return json.loads(text, parse_constant=no_constant)


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "typer"])
def test_json_numbers_are_the_float32_shortest_text(fast) -> None:
    env = {} if fast else {"CGRAPH_NO_FASTPATH": "1"}
    r = run_inproc("eval", "-e", PROGRAM, *AT, "--dtype", "float32", "--format", "json", env=env)
    assert r.returncode == 0, r.stderr
    doc = _strict(r.stdout)
    texts = NUMBER.findall("\n".join(ln for ln in r.stdout.splitlines() if '"expr"' not in ln))
    assert texts and "3.1415927" in texts and "3.1415927410125732" not in r.stdout
    for t in texts:
        x32 = np.float32(float(t))
        assert t == repr(float(str(x32))), t  # exactly numpy's shortest float32 digits, as Python spells floats
    assert doc["value"] == float(str(np.float32(doc["value"])))


def test_csv_numbers_are_the_float32_shortest_text() -> None:
    r = run_inproc("eval", "-e", PROGRAM, *AT, "--dtype", "float32", "--format", "csv", "--all")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    cells = [c for row in rows for c in (row["value"], row["grad"]) if c]
    numbers = [t for c in cells for t in NUMBER.findall(c)]
    assert "3.1415927" in numbers
    for t in numbers:
        assert t == repr(float(str(np.float32(float(t))))), t


def test_batch_numbers_are_the_float32_shortest_text(tmp_path) -> None:
    pts = tmp_path / "p.csv"
    pts.write_text("x\n1\n0.1\n-2.5\n")
    for program in ("y = pi * x", "y = pi * sum(x * [1, 2])"):  # row-wise, and one evaluation per row
        r = run_inproc("eval", "-e", program, "--batch", str(pts), "--dtype", "float32")
        assert r.returncode == 0, r.stderr
        body = [row[1:] for row in csv.reader(io.StringIO(r.stdout))][1:]
        for t in [c for row in body for c in row]:
            assert t == repr(float(str(np.float32(float(t))))), (program, t)
            assert len(t) <= 12, t  # never a float64 widening's 17 digits
    r = run_inproc("eval", "-e", "y = pi * x", "--batch", str(pts), "--dtype", "float32")
    assert r.stdout.splitlines()[1] == "1,3.1415927,3.1415927"


def test_float64_output_keeps_full_precision() -> None:
    r = run_inproc("eval", "-e", "y = pi * x", "--at", "x=1", "--format", "json")
    assert _strict(r.stdout)["value"] == np.pi
    r = run_inproc("eval", "-e", "y = pi * x", "--at", "x=1", "--format", "csv")
    assert "3.141592653589793" in r.stdout


def test_non_finite_float32_numbers_stay_strict_json() -> None:
    r = run_inproc("eval", "-e", "y = log(x) + 0 * sum(v)", "--at", "x=0,v=[1,2]", "--dtype", "float32", "-f", "json")
    doc = _strict(r.stdout)
    assert doc["value"] == "-Infinity"


def test_shortest_leaves_float64_alone_and_shortens_float32() -> None:
    a = np.array([np.pi, 0.1, 1e-8, 3e38], dtype=np.float32)
    got = fmt.shortest(a)
    assert got.dtype == np.float64
    assert [repr(x) for x in got.tolist()] == ["3.1415927", "0.1", "1e-08", "3e+38"]
    assert np.array_equal(got.astype(np.float32), a)  # round-trips
    b = np.array([np.pi, 0.1])
    assert fmt.shortest(b) is b or np.array_equal(fmt.shortest(b), b)
    assert fmt.shortest(np.float32(0.1)) == 0.1 and fmt.json_number(np.float32(np.pi)) == 3.1415927
    assert fmt.csv_cell(np.float32(2.5e-7)) == "2.5e-07"
    assert fmt.json_value(np.array([[np.inf, 0.3]], dtype=np.float32)) == [["Infinity", 0.3]]
