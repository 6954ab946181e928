"""Dead branches and the legend (issue 15): a node that does not reach the differentiated output is drawn apart
(greyed, no gradient line), marked in the table and named by explain; the legend says what a tensor edge shows."""

from __future__ import annotations

import html

from cgraph_cli.analysis import explain
from cgraph_cli.present.dot import OFF_PATH, graph_dot
from cgraph_cli.run.request import build_request
from tests.conftest import EXAMPLES, run_inproc

SOFTMAX = str(EXAMPLES / "softmax_regression.cg")


def _dot(path: str) -> tuple[str, object]:
    result = build_request(path).run()
    return graph_dot(result.graph, result.values, result.grads, result.out), result


def _line(dot: str, node: str) -> str:
    return html.unescape(next(ln for ln in dot.splitlines() if ln.strip().startswith(f"{node} [")))


def test_the_off_path_nodes_are_exactly_those_the_output_does_not_depend_on() -> None:
    dot, result = _dot(SOFTMAX)
    g = result.graph
    p = g.bindings["p"]
    for i in range(len(g)):
        line = _line(dot, f"n{i}")
        # an independent definition: i reaches the output iff some chain of consumers leads there
        reach, frontier = False, {i}
        while frontier and not reach:
            reach = result.out in frontier
            frontier = {j for j in range(len(g)) for k in frontier if k in g.args[j]}
        off = f'color="{OFF_PATH}"' in line
        assert off == (not reach), (i, g.label(i))
        if off:
            assert "∂" not in line and "dashed" in line and "not on a path to loss" in line
    assert f'color="{OFF_PATH}"' in _line(dot, f"n{p}")
    into_p = [ln for ln in dot.splitlines() if f"-> n{p} " in ln]
    assert into_p and all("dashed" in ln and "label=" not in ln for ln in into_p)
    assert "dashed grey: not on a path to loss" in dot


def test_a_program_without_dead_branches_has_no_such_legend() -> None:
    dot, _ = _dot(str(EXAMPLES / "mlp.cg"))
    assert OFF_PATH not in dot and "not on a path" not in dot


def test_the_table_marks_the_dead_branch() -> None:
    r = run_inproc("eval", SOFTMAX)
    assert r.returncode == 0, r.stderr
    p_row = next(ln for ln in r.stdout.splitlines() if ln.startswith("│ p "))
    assert p_row.rstrip("│ ").endswith("(off path)")
    assert "(off path) p: not on a path to loss (no gradient)" in r.stdout
    live = run_inproc("eval", str(EXAMPLES / "lecture.cg"))
    assert "off path" not in live.stdout


def test_explain_says_not_on_a_path_to_loss() -> None:
    r = run_inproc("explain", SOFTMAX)
    assert r.stdout.rstrip().splitlines()[-1] == "p: not on a path to loss (no gradient flows to it)"
    ex = explain.explain(build_request(SOFTMAX).run())
    assert [ex.labels[i] for i in ex.off_path] == ["p"]
    assert explain.to_data(ex)["off_path"] == ["p"]


def test_the_legend_says_a_tensor_edge_shows_the_operands_shape() -> None:
    dot, _ = _dot(str(EXAMPLES / "mlp.cg"))
    assert "on a tensor edge, the operand's shape" in html.unescape(dot) and "its shape for tensors" not in dot
    scalar, _ = _dot(str(EXAMPLES / "lecture.cg"))
    assert "edge: local derivative ∂successor/∂node<" in html.unescape(scalar).replace("</FONT>", "<")
    assert "tensor edge" not in scalar
