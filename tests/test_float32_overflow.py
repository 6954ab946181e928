"""A number beyond float32's range given to a --dtype float32 run becomes inf, and cgraph's own warning says
so: numpy's RuntimeWarning (a source line of cgraph's code on the user's terminal) never leaks to stderr."""

from __future__ import annotations

from conftest import run_cli


def test_at_value_beyond_float32_warns_once_in_cgraphs_words():
    r = run_cli("eval", "lecture", "--at", "a=1e39,b=3,c=4", "--dtype", "float32", "--format", "csv")
    assert r.returncode == 0, r.stderr
    assert "RuntimeWarning" not in r.stderr and "astype" not in r.stderr and "asarray" not in r.stderr
    assert "hint: the value given for input 'a' is not finite" in r.stderr
    assert "a,input,a,,inf,7.0" in r.stdout


def test_batch_cell_beyond_float32_warns_once_in_cgraphs_words(tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b,c\n1e39,3,4\n-1,3,4\n")
    r = run_cli("eval", "lecture", "--batch", str(rows), "--dtype", "float32")
    assert r.returncode == 0, r.stderr
    assert "RuntimeWarning" not in r.stderr and "astype" not in r.stderr
    assert "a value or gradient is not finite (first such row; column 'z')" in r.stderr
    assert r.stdout.splitlines() == ["a,b,c,z,dz/da,dz/db,dz/dc", "1e39,3,4,inf,7.0,inf,inf", "-1,3,4,14.0,7.0,9.0,2.0"]
