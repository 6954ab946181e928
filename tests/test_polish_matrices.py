"""Small tensors in full (issue 15): up to fmt.SMALL entries, as matrices, in the eval table and in pictures."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from cgraph_cli import fmt
from cgraph_cli.present.dot import graph_dot
from cgraph_cli.run.request import build_request
from tests.conftest import CGRAPH, EXAMPLES, run_inproc


def _entries(text: str) -> list[float]:
    return [float(t) for t in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", text)]


@pytest.mark.parametrize(
    "shape", [(2,), (12,), (2, 3), (4, 3), (3, 1), (1, 4), (2, 2, 3), (2, 1, 2, 3)], ids=lambda s: "x".join(map(str, s))
)
def test_fmt_matrix_writes_every_entry_in_order_nested_as_numpy_does(shape) -> None:
    rng = np.random.default_rng(sum(shape))
    a = np.round(rng.normal(size=shape), 3)
    text = fmt.fmt_matrix(a)
    assert _entries(text) == pytest.approx(a.ravel().tolist(), rel=1e-3)
    # the bracket structure is numpy's (numpy separates blocks by blank lines; we do not)
    ref = np.array2string(a, separator=", ", threshold=100, max_line_width=10_000)
    assert re.sub(r"[^\[\],\n]", "", text) == re.sub(r"\n+", "\n", re.sub(r"[^\[\],\n]", "", ref))
    lines = text.split("\n")
    assert len(lines) == (1 if a.ndim == 1 else a.size // shape[-1])
    if a.ndim == 2:  # the columns are right-aligned: every row line has the same length
        assert len({len(ln.rstrip(",").rstrip("]")) for ln in lines}) == 1


def test_the_table_shows_a_2x3_matrix_and_its_gradient_in_full() -> None:
    r = run_inproc("eval", "-e", "y = sum(W @ x)", "--at", "W=[[1,2,3],[4,5,6]],x=[1,-2,0.5]")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    w = [ln for ln in lines if "│ W " in ln or (ln.startswith("│      │") and "]]" in ln)]
    assert "[[1, 2, 3]," in w[0] and "[[1, -2, 0.5]," in w[0]
    assert "[4, 5, 6]]" in w[1] and "[1, -2, 0.5]]" in w[1]
    x = next(ln for ln in lines if ln.startswith("│ x "))
    assert "[1, -2, 0.5]" in x and "[5, 7, 9]" in x
    assert "..." not in r.stdout


def test_piped_tables_keep_matrix_rows_whole() -> None:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    exe = [str(CGRAPH)] if CGRAPH.exists() else [sys.executable, "-m", "cgraph_cli"]
    r = subprocess.run(exe + ["eval", str(EXAMPLES / "mlp.cg")], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    result = build_request(str(EXAMPLES / "mlp.cg")).run()
    g = result.graph
    w1 = result.values[g.inputs["W1"]]
    dw1 = result.grads[g.inputs["W1"]]
    lines = r.stdout.splitlines()
    start = next(k for k, ln in enumerate(lines) if ln.startswith("│ W1 "))
    rows = lines[start : start + 4]
    for k in range(4):
        cells = rows[k].split("│")
        value, grad = cells[5], cells[6]
        assert _entries(value) == pytest.approx(w1[k].tolist(), rel=1e-3)
        assert _entries(grad) == pytest.approx(dw1[k].tolist(), rel=1e-3)


def test_larger_tensors_stay_abbreviated_in_the_table() -> None:
    r = run_inproc("eval", "-e", "y = sum(x)", "--at", "x=" + str(list(range(13))))
    assert "[0, 1, ..., 12]" in r.stdout


def _picture(program: str, at: list[str]) -> str:
    req = build_request(expr=program, at=at)
    result = req.run()
    return graph_dot(result.graph, result.values, result.grads, result.out)


def _node_label(dot: str, node: str) -> str:
    line = next(ln for ln in dot.splitlines() if ln.strip().startswith(f"{node} ["))
    return html.unescape(line)


def test_a_picture_shows_a_small_matrix_and_its_gradient_as_matrices() -> None:
    dot = _picture("y = sum(W @ x)", ["W=[[1,2,3],[4,5,6]]", "x=[1,-2,0.5]"])
    w = _node_label(dot, "n0")
    # values then gradients, entry by entry, each in its own right-aligned cell
    cells = re.findall(r'<TD ALIGN="RIGHT"><FONT COLOR="[^"]+">([^<]*)</FONT></TD>', w)
    assert cells == ["1", "2", "3", "4", "5", "6", "1", "-2", "0.5", "1", "-2", "0.5"]
    assert w.count('SIDES="LTB"') == 2 and w.count('SIDES="RTB"') == 2  # two bracketed matrices
    assert 'ROWSPAN="2"' in w


def test_twelve_entries_are_in_full_and_thirteen_are_not() -> None:
    twelve = _node_label(_picture("y = sum(x)", ["x=" + str(list(range(12)))]), "n0")
    assert len(re.findall(r'<TD ALIGN="RIGHT">', twelve)) == 24  # value and gradient
    thirteen = _node_label(_picture("y = sum(x)", ["x=" + str(list(range(13)))]), "n0")
    assert 'ALIGN="RIGHT"' not in thirteen and "[0, 1, …, 12]" in thirteen


@pytest.mark.slow
def test_the_matrix_picture_renders(tmp_path) -> None:
    out = tmp_path / "w.png"
    r = run_inproc("render", "-e", "y = sum(W @ x)", "--at", "W=[[1,2,3],[4,5,6]],x=[1,-2,0.5]", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
