"""The interactive page of `cgraph render --format html`, checked in Python (the browser tests are in
test_html_browser.py): the pure page builder, its data block against a golden file and against explain and
the --steps frames, the numbers against fmt, escaping, the content security policy, and the CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from cgraph_cli.analysis.explain import step_text, to_text
from cgraph_cli.fmt import fmt_number, fmt_shape
from cgraph_cli.present.dot import GRAD_COLOR, VALUE_COLOR, GraphPicture, evaluate_for_picture
from cgraph_cli.present.html import MATRIX_MAX, build_page, inline_svg, json_block, page_data, tensor_text
from cgraph_cli.run.request import Options
from tests.conftest import EXAMPLES, ROOT, run_inproc

GOLDEN = Path(__file__).parent / "golden" / "lecture-page.json"
LECTURE_AT = ["--at", "a=-1,b=3,c=4"]
FAKE_SVG = (
    '<?xml version="1.0"?>\n<!-- x -->\n<svg viewBox="0 0 10 10"><g id="n0" class="node"><title>n0</title></g></svg>'
)


def picture_of(text: str, at: tuple[str, ...] = ()) -> GraphPicture:
    request = Options(expr=text, at=at).build()
    g = request.compile()
    values, grads, out = evaluate_for_picture(g, dict(request.values), request.output(g), [])
    return GraphPicture(g, values, grads, out)


def lecture_picture() -> GraphPicture:
    request = Options(file=str(EXAMPLES / "lecture.cg"), at=("a=-1,b=3,c=4",)).build()
    g = request.compile()
    values, grads, out = evaluate_for_picture(g, dict(request.values), request.output(g), [])
    return GraphPicture(g, values, grads, out)


def data_block(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="cgraph-data">(.*?)</script>', page, re.S)
    assert m, "no data block"
    return json.loads(m.group(1))


class Tags(HTMLParser):
    """The elements an HTML parser (as a browser's) builds from the page, and the text of its scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._in = tag
            (self.scripts if tag == "script" else self.styles).append("")

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._in == "script":
            self.scripts[-1] += data
        elif self._in == "style":
            self.styles[-1] += data


def parse(page: str) -> Tags:
    t = Tags()
    t.feed(page)
    t.close()
    return t


@pytest.fixture(scope="module")
def lecture_page(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("page") / "lecture.html"
    r = run_inproc("render", "examples/lecture.cg", *LECTURE_AT, "-o", str(out), cwd=ROOT)  # as make images
    assert r.returncode == 0, r.stderr
    return out.read_text(encoding="utf-8")


# -- the data block ---------------------------------------------------------------------


def test_lecture_data_block_matches_golden(lecture_page):
    got = data_block(lecture_page)
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert got == want, "the page's data differs from tests/golden/lecture-page.json; if intended, run `make images`"


def test_lecture_has_twelve_steps_and_the_frames_captions(lecture_page):
    data = data_block(lecture_page)
    pic = lecture_picture()
    frames = pic.steps()
    assert len(data["steps"]) == 12 == len(frames)
    assert [s["caption"] for s in data["steps"]] == [st.caption for _, _, st in frames]
    assert [(s["phase"], s["node"]) for s in data["steps"]] == [(p, i) for p, i, _ in frames]
    b = data["steps"][10]
    assert b["caption"].endswith("∂z/∂b = ∂z/∂x · ∂x/∂b + ∂z/∂y · ∂y/∂b = 7 · 1 + 2 · 1 = 9")
    assert data["nodes"][b["node"]]["name"] == "b"
    # the captions are explain's steps
    ex = pic.explanation()
    for k, s in enumerate(data["steps"][:6]):
        assert s["caption"].endswith(step_text(ex, "forward", k))


def test_panel_steps_are_explains_lines(lecture_page):
    data = data_block(lecture_page)
    r = run_inproc("explain", str(EXAMPLES / "lecture.cg"), *LECTURE_AT)
    explained = [ln[2:] for ln in r.stdout.splitlines()]
    for node in data["nodes"]:
        for line in node.get("forward", []) + node.get("backward", []):
            assert line in explained, line
    b = next(n for n in data["nodes"] if n["name"] == "b")
    assert b["backward"] == [
        "∂z/∂b = ∂z/∂x · ∂x/∂b + ∂z/∂y · ∂y/∂b = 7 · 1 + 2 · 1 = 9",
        "    where ∂x/∂b = 1, ∂y/∂b = 1",
    ]
    assert (b["value"]["text"], b["grad"]["text"]) == ("3", "9")


def test_steps_reveal_values_then_gradients_as_the_frames_do():
    pic = lecture_picture()
    data = page_data(pic, "t")
    shown_v: set[int] = set()
    shown_g: set[int] = set()
    every = set(range(len(pic.g)))
    for step, (_, _, st) in zip(data["steps"], pic.steps()):
        shown_v = every if step["values"] == "all" else shown_v | set(step["values"])
        shown_g = every if step["grads"] == "all" else shown_g | set(step["grads"])
        assert shown_v == (every if st.values is None else st.values)
        assert shown_g == (every if st.grads is None else st.grads)
        assert {f"e{k}" for k in step["edges"]} == st.active_edges


def test_values_and_gradients_match_the_engine():
    pic = picture_of("y = tanh(w * x + b)", ("w=0.5,x=-1.25,b=0.1",))
    data = page_data(pic, "t")
    for i, node in enumerate(data["nodes"]):
        assert float(node["value"]["text"]) == pytest.approx(float(pic.values[i]), rel=1e-5)
        if pic.grads[i] is not None:
            assert float(node["grad"]["text"]) == pytest.approx(float(pic.grads[i]), rel=1e-5)
    # d tanh(u)/du = 1 - tanh(u)^2, by hand
    u = 0.5 * -1.25 + 0.1
    w = next(n for n in data["nodes"] if n["name"] == "w")
    assert float(w["grad"]["text"]) == pytest.approx((1 - np.tanh(u) ** 2) * -1.25, rel=1e-5)


# -- numbers ------------------------------------------------------------------------------


def test_tensor_text_scalar_matrix_list_and_summary():
    assert tensor_text(3.0) == {"shape": "()", "text": "3"}
    assert tensor_text(None) is None
    m = np.arange(6.0).reshape(2, 3) / 3
    t = tensor_text(m)
    assert t["shape"] == "(2, 3)"
    assert np.array([[float(x) for x in row] for row in t["rows"]]) == pytest.approx(m, rel=1e-5)
    assert t["rows"][0][1] == fmt_number(1 / 3)
    assert tensor_text(np.array([1.0, 2.0]))["rows"] == [["1", "2"]]
    cube = tensor_text(np.ones((2, 2, 2)))
    assert cube == {"shape": "(2, 2, 2)", "text": "[[[1, 1], [1, 1]], [[1, 1], [1, 1]]]"}
    big = np.linspace(-1, 2, MATRIX_MAX + 1)
    s = dict(tensor_text(big)["summary"])
    assert float(s["min"]) == -1 and float(s["max"]) == 2
    assert float(s["‖·‖"]) == pytest.approx(np.linalg.norm(big), rel=1e-5)
    assert float(s["mean"]) == pytest.approx(big.mean(), rel=1e-5)
    assert s["entries"] == f"{MATRIX_MAX + 1:,}"
    bad = tensor_text(np.array([np.nan, np.inf] + [1.0] * MATRIX_MAX))
    assert dict(bad["summary"])["non-finite"] == "2"
    assert tensor_text(np.zeros((20, 20)))["shape"] == fmt_shape((20, 20))  # 400 entries: in full
    assert len(tensor_text(np.zeros((20, 20)))["rows"]) == 20


def test_a_tensor_program_shows_matrices_and_shapes():
    pic = picture_of("input W[2, 3]\ninput x[3]\ny = sum(tanh(W @ x))", ("W=[[1,2,3],[4,5,6]]", "x=[0.1,0.2,0.3]"))
    data = page_data(pic, "t")
    w = next(n for n in data["nodes"] if n["name"] == "W")
    assert w["value"]["rows"] == [["1", "2", "3"], ["4", "5", "6"]]
    assert w["grad"]["shape"] == "(2, 3)"
    grad = np.array([[float(x) for x in row] for row in w["grad"]["rows"]])
    assert grad == pytest.approx(pic.grads[pic.g.inputs["W"]], rel=1e-5)
    assert data["steps"][-1]["phase"] == "backward" and data["steps"][-1]["grads"]  # the last shows every gradient


# -- the page as HTML ----------------------------------------------------------------------


def test_build_page_is_pure_and_inlines_the_svg():
    pic = lecture_picture()
    a = build_page(pic, FAKE_SVG, "lecture.cg")
    assert a == build_page(pic, FAKE_SVG, "lecture.cg")
    assert "<?xml" not in a and "<!-- x -->" not in a and "<title>n0</title>" not in a
    assert '<svg viewBox="0 0 10 10"><g id="n0" class="node"></g></svg>' in a
    with pytest.raises(ValueError):
        inline_svg("not svg")


def test_one_file_and_nothing_from_the_network(lecture_page):
    t = parse(lecture_page)
    for tag, attrs in t.tags:
        for k, v in attrs.items():
            if k in ("src", "href", "xlink:href", "action", "data", "poster"):
                raise AssertionError(f"<{tag} {k}={v!r}> refers to something outside the page")
    assert "http://" not in lecture_page.replace("http://www.w3.org/", "")
    assert "https://" not in lecture_page
    assert "@import" not in lecture_page and "url(" not in lecture_page


def test_csp_allows_only_the_pages_own_style_and_script(lecture_page):
    t = parse(lecture_page)
    csp = next(a["content"] for tag, a in t.tags if tag == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    rules = dict(r.strip().split(" ", 1) for r in csp.split(";"))
    assert rules["default-src"] == "'none'"
    assert rules["connect-src"] == "'none'" and rules["img-src"] == "'none'" and rules["font-src"] == "'none'"
    assert "unsafe" not in csp and "http" not in csp and "*" not in csp

    def h(text):
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    executable = [s for (tag, a), s in zip([x for x in t.tags if x[0] == "script"], t.scripts) if "type" not in a]
    assert len(executable) == 1 and rules["script-src"] == h(executable[0])
    assert len(t.styles) == 1 and rules["style-src"] == h(t.styles[0])
    assert "eval(" not in executable[0] and "innerHTML" not in executable[0] and "Function(" not in executable[0]


def test_every_colour_of_the_style_is_filled_in(lecture_page):
    style = parse(lecture_page).styles[0]
    assert not re.findall(r"__[A-Z_]+__", style)
    assert f'text[fill="{VALUE_COLOR}"]' in style and f'text[fill="{GRAD_COLOR}"]' in style


def test_json_block_cannot_end_the_script():
    text = json_block({"s": "</script><script>alert(1)</script><!-- & \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"s": "</script><script>alert(1)</script><!-- & \u2028"}


EVIL = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"


def evil_program(tmp_path: Path) -> Path:
    """A program whose path holds ``</script><script>`` and ``<img onerror>`` (a folder ``x<`` and a file
    ``script>...``) and whose comments hold them too."""
    folder = tmp_path / "x<"
    folder.mkdir()
    src = folder / "script><script>alert(1)<img src=x onerror=alert(2)>.cg"
    src.write_text(f"# {EVIL}\ninput a = 2  # {EVIL}\nz = a * a  # <b>bold</b> & {EVIL}\n", encoding="utf-8")
    assert "</script><script>" in str(src)
    return src


def test_injection_in_the_file_name_and_comments_stays_text(tmp_path):
    src = evil_program(tmp_path)
    out = tmp_path / "page.html"
    r = run_inproc("render", str(src), "-o", str(out))
    assert r.returncode == 0, r.stderr
    page = out.read_text(encoding="utf-8")
    t = parse(page)
    tags = [tag for tag, _ in t.tags]
    assert "img" not in tags and "b" not in tags
    assert tags.count("script") == 2  # the data block and the page's script, nothing else
    data = data_block(page)
    assert data["title"] == str(src)
    assert EVIL in data["source"]
    assert any(EVIL in n["src"] for n in data["nodes"])
    title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    assert "&lt;/script&gt;&lt;script&gt;" in title


# -- the command line -------------------------------------------------------------------


def test_format_html_and_html_suffix(tmp_path):
    a, b = tmp_path / "a.html", tmp_path / "b.out"
    r1 = run_inproc("render", str(EXAMPLES / "lecture.cg"), "-o", str(a))
    r2 = run_inproc("render", str(EXAMPLES / "lecture.cg"), "--format", "html", "-o", str(b))
    assert r1.returncode == r2.returncode == 0, r1.stderr + r2.stderr
    assert r1.stdout.strip() == f"wrote {a}"
    assert a.read_text(encoding="utf-8") == b.read_text(encoding="utf-8")
    assert a.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    r3 = run_inproc("render", "-e", "z = a * b", "--at", "a=2,b=3", "--format", "html", "-o", "-")
    assert r3.returncode == 0 and data_block(r3.stdout)["nodes"][0]["name"] == "a"


def test_structure_only_page_has_no_steps(tmp_path):
    out = tmp_path / "s.html"
    r = run_inproc("render", "-e", "z = a * b", "--no-values", "-o", str(out))
    assert r.returncode == 0, r.stderr
    data = data_block(out.read_text(encoding="utf-8"))
    assert data["steps"] == [] and data["values"] is False
    assert all(n["value"] is None and n["grad"] is None for n in data["nodes"])
    assert '<div id="stepper" hidden>' in out.read_text(encoding="utf-8")


def test_steps_refuse_html(tmp_path):
    r = run_inproc("render", str(EXAMPLES / "lecture.cg"), "--steps", str(tmp_path / "f"), "--format", "html")
    assert r.returncode == 2 and "--steps draws png or svg frames, not html" in r.stderr
    assert not (tmp_path / "f").exists()


def test_bad_input_writes_no_page(tmp_path):
    out = tmp_path / "p.html"
    r = run_inproc("render", "-e", "z = a *", "-o", str(out))
    assert r.returncode == 2 and "error:" in r.stderr and not out.exists()


def test_explain_text_and_the_page_agree_on_names():
    pic = picture_of("s = a * b\ns = s + a\nz = (s * c) + 1", ("a=1,b=2,c=3",))
    data = page_data(pic, "t")
    text = to_text(pic.explanation())
    for n in data["nodes"]:
        if n["op"] != "const":
            assert n["name"] in text
    assert {n["name"] for n in data["nodes"]} >= {"s₁", "s₂"}


def test_a_non_scalar_output_steps_forward_only():
    pic = picture_of("input a = 2\nz = [1, 2] * a")
    assert pic.grads is None
    data = page_data(pic, "t")
    assert data["grads"] is False and data["steps"]
    assert {s["phase"] for s in data["steps"]} == {"forward"}
    assert all(n["grad"] is None and "backward" not in n for n in data["nodes"])
    z = data["nodes"][data["out"]]
    assert z["value"] == {"shape": "(2,)", "rows": [["2", "4"]]}


def test_user_functions_and_fanout_copies_reach_the_page():
    text = "def f(u) = u * u + 1\ninput w = 0.5\nz = " + " + ".join(f"f(w * {k})" for k in range(1, 11))
    pic = picture_of(text)
    assert any(pic.copied)  # w is used more than FANOUT times: drawn once per use
    data = page_data(pic, "t")
    w = pic.g.inputs["w"]
    assert sum(1 for e in data["edges"] if e[0] == w and e[2] >= 0) == pic.uses[w]
    assert float(data["nodes"][w]["grad"]["text"]) == pytest.approx(sum(2 * (0.5 * k) * k for k in range(1, 11)))


def test_a_graph_too_large_to_step_through_gets_a_page_without_stepper(monkeypatch):
    import cgraph_cli.present.html as page

    pic = lecture_picture()
    monkeypatch.setattr(page, "STEPPER_MAX", 5)
    data = page_data(pic, "t")
    assert data["steps"] == [] and "6 nodes, more than the 5" in data["note"]
    assert data["nodes"][1]["value"] == {"shape": "()", "text": "3"} and "backward" not in data["nodes"][1]
