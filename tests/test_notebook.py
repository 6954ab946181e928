"""Notebook display (cgraph_cli.notebook): examples/lecture.ipynb run in a real kernel (nbclient + ipykernel), with
assertions on what its cells showed, and the display pieces in-process: the HTML table's numbers, the text and
PNG fallbacks, the static strip of frames without ipywidgets, and the %%cgraph magic in an IPython shell."""

from __future__ import annotations

import re
import sys

import pytest

import cgraph_cli as cg
from cgraph_cli import notebook
from cgraph_cli.errors import CgraphError
from tests.conftest import EXAMPLES

LECTURE = str(EXAMPLES / "lecture.cg")


def _svg_texts(svg: str) -> list[str]:
    return [t.replace("&#45;", "-") for t in re.findall(r">([^<>]*)</text>", svg)]


def _table_cells(html: str) -> list[tuple[str, str, str]]:
    """(node, value, gradient) of each row of an evaluation's HTML table."""
    return re.findall(
        r'<tr><td><b>([^<]*)</b></td>.*?<td class="num value">([^<]*)</td><td class="num grad">([^<]*)</td></tr>', html
    )


LECTURE_ROWS = [("a", "-1", "7"), ("b", "3", "9"), ("c", "4", "2"), ("x", "2", "7"), ("y", "7", "2"), ("z", "14", "1")]


# -- the example notebook, run in a kernel ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def executed():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(str(EXAMPLES / "lecture.ipynb"), as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(EXAMPLES)}}
    )
    client.execute()
    cells = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not [o for o in cell.outputs if o.output_type == "error"], cell.source
            cells[cell.source.splitlines()[-1]] = cell.outputs
    return nb, cells


def _data(outputs) -> dict:
    shown = [o for o in outputs if o.output_type in ("execute_result", "display_data")]
    assert len(shown) == 1, outputs
    return shown[0].data


@pytest.mark.slow
def test_the_program_shows_its_structure(executed) -> None:
    _, cells = executed
    data = _data(cells["program"])
    texts = _svg_texts(data["image/svg+xml"])
    assert {"a", "b", "c", "x", "y", "z"} <= set(texts)
    assert "14" not in texts and "structure only (no input values)" in texts
    assert data["image/png"]  # the fallback for front ends without SVG
    assert data["text/plain"].startswith(" %0 a = input") or data["text/plain"].startswith("%0 a = input")


@pytest.mark.slow
def test_the_evaluation_shows_its_table_and_annotated_graph(executed) -> None:
    _, cells = executed
    data = _data(cells["ev"])
    assert _table_cells(data["text/html"]) == LECTURE_ROWS
    assert "<caption>z = 14</caption>" in data["text/html"]
    texts = _svg_texts(data["image/svg+xml"])
    for value in ("-1", "3", "4", "2", "7", "14"):
        assert value in texts
    for grad in ("∂ 7", "∂ 9", "∂ 2", "∂ 1"):
        assert grad in texts
    assert "<svg" in data["text/html"]  # the picture under the table
    assert data["text/plain"].splitlines()[0] == "z = 14"
    assert _data(cells["ev.value, ev.grad"])["text/plain"] == "(14.0, {'a': 7.0, 'b': 9.0, 'c': 2.0})"


@pytest.mark.slow
def test_the_backward_pass_is_a_slider_over_the_frames(executed) -> None:
    nb, cells = executed
    data = _data(cells["ev.steps()"])
    assert "application/vnd.jupyter.widget-view+json" in data
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    sliders = [w["state"] for w in state.values() if w["model_name"] == "IntSliderModel"]
    assert [s["max"] for s in sliders] == [11]  # 6 forward and 6 backward frames
    shown = [w["state"]["value"] for w in state.values() if w["model_name"] == "HTMLModel"]
    assert len(shown) == 1 and "forward 1/6:" in shown[0] and "<svg" in shown[0]


@pytest.mark.slow
def test_the_more_derivatives_cells(executed) -> None:
    _, cells = executed
    fwd = _data(cells['program.eval(a=-1, b=3, c=4, tangent={"b": 1})'])  # forward mode: tangents, not gradients
    assert "<caption>z = 14;  along t (a = 0, b = 1, c = 0): ∂z/∂t = 9</caption>" in fwd["text/html"]
    assert "<th>tangent ∂node/∂t</th>" in fwd["text/html"]
    tangents = [("a", "-1", "0"), ("b", "3", "1"), ("c", "4", "0"), ("x", "2", "1"), ("y", "7", "1"), ("z", "14", "9")]
    assert _table_cells(fwd["text/html"]) == tangents
    assert _data(cells['ev.jvp({"b": 1}), ev.hvp({"a": 1})'])["text/plain"] == (
        "(array(9.), {'a': array(0.), 'b': array(1.), 'c': array(1.)})"
    )
    hessian = _data(cells['[[float(h[u][v]) for v in "abc"] for u in "abc"]'])["text/plain"]
    assert hessian == "[[0.0, 1.0, 1.0], [1.0, 2.0, 1.0], [1.0, 1.0, 0.0]]"


@pytest.mark.slow
def test_the_mlp_check_and_magic_cells(executed) -> None:
    _, cells = executed
    mlp = [o for o in cells['fit.grad["W2"]'] if o.output_type == "stream"]
    assert mlp[0].text.startswith("0.102082")  # examples/mlp.cg: expect loss = 0.102083
    report = _data(cells["report"])
    assert report["text/plain"].startswith("<cgraph CheckReport: ok: all 10 gradient entries of loss match")
    assert report["text/html"].count("<td>ok</td>") == 10 and "W2[1, 3]" in report["text/html"]
    magic = _data(cells["z = x * y"])
    assert sorted(_table_cells(magic["text/html"])) == LECTURE_ROWS  # (rows in the order of the graph: a, b, x, c, ...)
    assert "14" in _svg_texts(magic["image/svg+xml"])


# -- the pieces, in-process ------------------------------------------------------------------------------------------


def test_html_table_numbers_come_from_fmt() -> None:
    from cgraph_cli.fmt import fmt_cell

    ev = cg.parse("x = [1.5, -2, 3]\ny = sum(x * w) / 3").eval(w=0.1)
    html = ev._repr_html_()
    rows = dict((n, (v, g)) for n, v, g in _table_cells(html))
    assert rows["x"] == (fmt_cell(ev["x"].value), "—")
    assert rows["y"] == (fmt_cell(ev.value), "1")
    assert rows["w"][1] == fmt_cell(ev.grad["w"])
    assert "<caption>y = " + fmt_cell(ev.value) + "</caption>" in html


def test_text_fallback_when_graphviz_fails() -> None:
    ev = cg.load(LECTURE).eval()

    def broken(fmt: str) -> bytes:
        raise CgraphError("Graphviz did not finish within 30 seconds")

    bundle = notebook.evaluation_bundle(ev.result, broken)
    assert "image/svg+xml" not in bundle and "image/png" not in bundle
    assert bundle["text/plain"].splitlines()[0] == "z = 14"
    assert "Graphviz did not finish" in bundle["text/plain"]
    assert _table_cells(bundle["text/html"]) == LECTURE_ROWS


@pytest.mark.slow
def test_program_bundle_has_svg_png_and_text() -> None:
    p = cg.parse("z = x * y")
    bundle = p._repr_mimebundle_()
    assert bundle["image/svg+xml"].lstrip().startswith("<?xml")
    assert bundle["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert bundle["text/plain"] == p.ir()


@pytest.mark.slow
def test_steps_without_ipywidgets_are_a_static_strip(monkeypatch) -> None:
    pytest.importorskip("IPython")
    shown = []
    import IPython.display

    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets fails
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    steps = cg.load(LECTURE).eval().steps()
    assert [f.phase for f in steps] == ["forward"] * 6 + ["backward"] * 6
    assert steps.frames[-1].caption.startswith("backward 6/6:")
    steps._ipython_display_()
    assert len(shown) == 1
    html = shown[0].data
    assert html.count("<figure") == 12 and html.count("<svg") == 12
    assert "backward 5/6:  ∂z/∂b = ∂z/∂x · ∂x/∂b + ∂z/∂y · ∂y/∂b = 7 · 1 + 2 · 1 = 9" in html.replace("&#x27;", "'")


def test_magic_arguments() -> None:
    opts = notebook.magic_args("--at a=-1,b=3 --at c=[1,2] --of y --seed 3 --dtype float32 --steps")
    assert {k: v.tolist() for k, v in opts["values"].items()} == {"a": -1.0, "b": 3.0, "c": [1.0, 2.0]}
    assert (opts["of"], opts["seed"], opts["dtype"], opts["steps"]) == ("y", 3, "float32", True)
    with pytest.raises(CgraphError, match="unknown option '--bogus'"):
        notebook.magic_args("--bogus")
    with pytest.raises(CgraphError, match="--at needs a value"):
        notebook.magic_args("--at")


@pytest.mark.slow
def test_the_magic_in_an_ipython_shell(capsys) -> None:
    pytest.importorskip("IPython")
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    try:
        ip.run_line_magic("load_ext", "cgraph_cli")
        ip.run_cell_magic("cgraph", "--at a=-1,b=3,c=4", "x = a + b\ny = b + c\nz = x * y")
        out = capsys.readouterr().out
        assert out.splitlines()[0] == "z = 14"
        assert out.splitlines()[3].split() == ["b", "input", "b", "()", "3", "9"]  # after the title and header: a, b
        ip.run_cell_magic("cgraph", "", "y = sigmod(x)")  # an error: the command line's message, no traceback
        err = capsys.readouterr().err
        assert err.startswith("error: <cell>:1:5: unknown function 'sigmod'; did you mean 'sigmoid'?")
        assert "Traceback" not in err
    finally:
        InteractiveShell.clear_instance()
