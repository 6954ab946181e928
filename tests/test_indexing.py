"""Indexing as numpy does it: integers (negative from the end), slices, ``...``, ``None`` (a new axis) and
integer arrays ``x[[0, 2, 2]]`` whose gradient adds up where an entry is picked more than once; values against
numpy, gradients against central finite differences, and an index out of range refused with a caret."""

from __future__ import annotations

import numpy as np
import pytest

from cgraph_cli.errors import Source
from cgraph_cli.fmt import fmt_index
from cgraph_cli.ir.graph import format_ir
from cgraph_cli.ops import OPS
from cgraph_cli.run.program import compile_program, run
from tests.conftest import run_inproc

X = np.arange(24.0).reshape(2, 3, 4) / 7 - 1.3


def evaluate(src: str, x: np.ndarray):
    res = run(Source(src, "<t>"), {"x": x}, use_cache=False)
    return res.values[res.out], res.grads[res.graph.inputs["x"]]


def numeric_grad(src: str, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        g[i] = (evaluate(src, xp)[0] - evaluate(src, xm)[0]) / (2 * h)
    return g


CASES = [
    ("x[-1]", lambda x: x[-1]),
    ("x[0, -1, -2]", lambda x: x[0, -1, -2]),
    ("x[..., 1]", lambda x: x[..., 1]),
    ("x[1, ...]", lambda x: x[1, ...]),
    ("x[..., -1, :]", lambda x: x[..., -1, :]),
    ("x[None]", lambda x: x[None]),
    ("x[:, None, 1]", lambda x: x[:, None, 1]),
    ("x[..., None]", lambda x: x[..., None]),
    ("x[0, None, ..., None, 2]", lambda x: x[0, None, ..., None, 2]),
    ("x[[0, 1, 1]]", lambda x: x[[0, 1, 1]]),
    ("x[1, [0, 2, 2, -1]]", lambda x: x[1, [0, 2, 2, -1]]),
    ("x[..., [3, 3, 0]]", lambda x: x[..., [3, 3, 0]]),
    ("x[:, [[0, 1], [2, 2]], 1:]", lambda x: x[:, [[0, 1], [2, 2]], 1:]),
    ("x[[0, 1], [2, 2]]", lambda x: x[[0, 1], [2, 2]]),
    ("x[[]]", lambda x: x[np.array([], dtype=int)]),
    ("x[-2:, ::-1, None]", lambda x: x[-2:, ::-1, None]),
]


@pytest.mark.parametrize("index,reference", CASES, ids=[c[0] for c in CASES])
def test_values_match_numpy_and_gradients_match_finite_differences(index, reference) -> None:
    weights = np.cos(np.arange(reference(X).size)).reshape(reference(X).shape)
    src = f"y = sum({index} * w)"
    res = run(Source(src, "<t>"), {"x": X, "w": weights}, use_cache=False)
    np.testing.assert_allclose(res.values[res.out], np.sum(reference(X) * weights), rtol=1e-12, atol=1e-12)
    got = res.grads[res.graph.inputs["x"]]
    want = np.zeros_like(X)
    for i in np.ndindex(X.shape):
        xp, xm = X.copy(), X.copy()
        xp[i] += 1e-6
        xm[i] -= 1e-6
        want[i] = (np.sum(reference(xp) * weights) - np.sum(reference(xm) * weights)) / 2e-6
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)
    # the shape inferred when compiling is numpy's
    g = compile_program(Source(f"y = {index}", "<t>"), {"x": X}, use_cache=False)
    assert g.shapes[g.output] == reference(X).shape


def test_a_repeated_index_accumulates_its_gradient() -> None:
    x = np.array([1.0, 2.0, 3.0])
    v, g = evaluate("y = sum(x[[0, 2, 2, 2]] * [1, 10, 100, 1000])", x)
    assert v == 1 + 30 + 300 + 3000
    np.testing.assert_array_equal(g, [1, 0, 1110])
    np.testing.assert_allclose(g, numeric_grad("y = sum(x[[0, 2, 2, 2]] * [1, 10, 100, 1000])", x), rtol=1e-6)


def test_scatter_add_in_the_op_record() -> None:
    op = OPS["index"]
    x = np.zeros((3, 2))
    idx = (np.array([1, 1, -1]), slice(None))
    g = np.arange(6.0).reshape(3, 2)
    out = op.vjp_for(0)(g, op.fwd(x, idx=idx), x, idx=idx)
    np.testing.assert_array_equal(out, [[0, 0], [0 + 2, 1 + 3], [4, 5]])


def test_index_from_a_loop_variable() -> None:
    x = np.array([5.0, 6.0, 7.0])
    v, g = evaluate("s = 0\nfor i in range(1, 3) { s = s + x[i - 1] * x[[i, -i]][0] }", x)
    assert v == 5 * 6 + 6 * 7
    np.testing.assert_allclose(g, [6, 5 + 7, 6])


def test_none_and_ellipsis_in_the_listing() -> None:
    g = compile_program(Source("y = x[..., None, [0, 2, 2], -1]", "<t>"), {"x": X.reshape(2, 4, 3)}, use_cache=False)
    assert "idx=[..., None, [0, 2, 2], -1]" in format_ir(g)
    assert (
        fmt_index((Ellipsis, None, np.array([[0, 1], [1, 0]]), slice(1, None, -1)))
        == "[..., None, [[0, 1], [1, 0]], 1::-1]"
    )


def fails(*args: str) -> str:
    r = run_inproc(*args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout == ""
    return r.stderr


def caret_col(err: str) -> tuple[int, int]:
    lines = err.splitlines()
    marks = lines[2][lines[2].index("|") + 2 :]
    return len(marks) - len(marks.lstrip()), len(marks.strip())


@pytest.mark.parametrize(
    "src,first,where",
    [
        ("y = x[3]", "error: <expr>:1:7: index 3 is out of range for axis 0 of size 3", (6, 1)),
        ("y = x[-4]", "error: <expr>:1:7: index -4 is out of range for axis 0 of size 3", (6, 2)),
        ("y = x[[0, 1, 7]]", "error: <expr>:1:7: index 7 is out of range for axis 0 of size 3", (6, 9)),
        ("y = x[..., -9]", "error: <expr>:1:12: index -9 is out of range for axis 0 of size 3", (11, 2)),
        (
            "y = x[None, 1, 2]",
            "error: <expr>:1:16: too many indices: 2 for a value of shape (3,) (1 dimension)",
            (15, 1),
        ),
        ("y = x[..., ...]", "error: <expr>:1:5: an index can have only one '...'", (4, 11)),
        (
            "y = x[[0, 1], [2]]",
            "error: <expr>:1:15: too many indices: 2 for a value of shape (3,) (1 dimension)",
            (14, 3),
        ),
        ("y = x[[[0], [1, 2]]]", "error: <expr>:1:7: the rows of an index list have different lengths", (6, 13)),
        ("y = x[[0.5]]", "error: <expr>:1:8: an index in a list must be a whole-number constant", (7, 3)),
        ("y = x[a]", "error: <expr>:1:7: an index must be a whole-number constant", (6, 1)),
    ],
)
def test_index_errors(src: str, first: str, where: tuple[int, int]) -> None:
    err = fails("eval", "-e", src, "--at", "x=[1,2,3]", "--at", "a=0")
    assert err.splitlines()[0] == first, err
    assert caret_col(err) == where, err


def test_an_index_on_a_later_line_points_there() -> None:
    err = fails("eval", "-e", "x = [[1, 2], [3, 4]]\ny = sum(x[0,\n        5])")
    assert err.splitlines()[0] == "error: <expr>:3:9: index 5 is out of range for axis 1 of size 2"


def test_the_compiled_program_cache_keeps_every_kind_of_index(tmp_path, monkeypatch) -> None:
    from cgraph_cli import limits
    from cgraph_cli.run import cache

    monkeypatch.delenv("CGRAPH_NO_CACHE", raising=False)
    monkeypatch.setattr(limits, "CACHE_MIN_CHARS", 0)
    monkeypatch.setenv("CGRAPH_CACHE_DIR", str(tmp_path))
    src = Source("y = x[..., None, [[0, 2], [2, 2]], 1:] + x[-1, None][0, ..., [1], -2]", "<t>")
    built = compile_program(src, {"x": X})
    key = cache.key(src, {"x": X}, 0, "float64|None")
    loaded = cache.load(key, src)
    assert loaded is not None
    assert [fmt_index(a["idx"]) for a in loaded.attrs if a and "idx" in a] == [
        "[..., None, [[0, 2], [2, 2]], 1:]",
        "[-1, None]",
        "[0, ..., [1], -2]",
    ]
    assert format_ir(loaded) == format_ir(built)
