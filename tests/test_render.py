"""cgraph render and ir --format dot: golden DOT, real images, limits, escaping, structure, steps."""

from __future__ import annotations

import html
import re
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES, ROOT, cli_inproc, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from cgraph_cli.errors import Source
from cgraph_cli.ir.graph import build_graph
from cgraph_cli.lang.parser import parse
from cgraph_cli.present.dot import GraphPicture, html_text, quote

GOLDEN = Path(__file__).parent / "golden"
LECTURE = str(EXAMPLES / "lecture.cg")
AT = "a=-1,b=3,c=4"


def graph_of(text: str, values=None):
    src = Source(text, "<test>")
    return build_graph(parse(src), src, values)


def dot_of(*args: str) -> str:
    code, out, err = cli_inproc("render", *args, "--format", "dot", "-o", "-")
    assert code == 0, err
    return out


def agraph(text: str):
    pgv = pytest.importorskip("pygraphviz")
    return pgv.AGraph(string=text)


def edges(text: str) -> list[tuple[str, str]]:
    """(source, target with port) of every edge line."""
    return re.findall(r"^\s*(n[\d_]+) -> (n[\d:pwn]+) \[", text, re.M)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


# -- golden DOT ------------------------------------------------------------------------


def _golden_cases():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import make_images
    finally:
        sys.path.pop(0)
    return make_images.GOLDEN_CASES


@pytest.mark.parametrize("name,args", _golden_cases(), ids=[c[0] for c in _golden_cases()])
def test_dot_matches_golden(name, args, monkeypatch):
    """The DOT text is byte-for-byte stable; regenerate on purpose with `make images`."""
    monkeypatch.chdir(ROOT)
    got = dot_of(*args)
    want = (GOLDEN / name).read_text(encoding="utf-8")
    assert got == want, f"{name} differs from tests/golden; if intended, run `make images` and review the diff"


def test_dot_is_deterministic_across_runs():
    assert dot_of(str(EXAMPLES / "mlp.cg")) == dot_of(str(EXAMPLES / "mlp.cg"))


def test_ir_format_dot_is_render_dot():
    r = run_cli("ir", LECTURE, "--format", "dot")
    assert r.returncode == 0, r.stderr
    assert r.stdout == dot_of(LECTURE)  # the declared defaults give values, as in render
    code, out, _ = cli_inproc("ir", "-e", "z = x * y", "--format", "dot")  # no values: the structure
    assert code == 0 and out == dot_of("-e", "z = x * y", "--no-values")
    code, out, _ = cli_inproc("ir", LECTURE, "--format", "dot", "--at", AT)
    assert code == 0 and out == dot_of(LECTURE, "--at", AT)
    assert "∂ 9" in out


# -- what the picture shows -----------------------------------------------------------------


def test_lecture_svg_text_shows_values_and_gradients(tmp_path):
    out = tmp_path / "l.svg"
    r = run_cli("render", LECTURE, "--at", AT, "-o", str(out))
    assert r.returncode == 0, r.stderr
    svg = out.read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
    # Graphviz writes '-' as the entity &#45; in SVG text
    texts = [html.unescape(re.sub(r"<[^>]+>", "", t)).strip() for t in re.findall(r"<text[^>]*>(.*?)</text>", svg)]
    for name in ("a", "b", "c", "x", "y", "z"):
        assert name in texts
    for value in ("-1", "3", "4", "2", "7", "14"):
        assert value in texts, value
    grads = {t.removeprefix("∂ ") for t in texts if t.startswith("∂ ")}
    assert {"7", "9", "2", "1"} <= grads
    assert sorted(t for t in texts if t.startswith("∂ ")) == sorted(["∂ 7", "∂ 9", "∂ 2", "∂ 7", "∂ 2", "∂ 1"])


def test_gradients_match_the_engine_independently_of_hand_values():
    """Every gradient shown is ∂z/∂node from finite differences (an independent reference)."""
    g = graph_of("z = a * sin(b) + exp(a - b)")
    pic_vals = {"a": np.float64(0.3), "b": np.float64(-1.2)}
    from cgraph_cli.present.dot import evaluate_for_picture

    values, grads, out = evaluate_for_picture(g, pic_vals)
    text = GraphPicture(g, values, grads, out).dot()
    eps = 1e-6
    for name in ("a", "b"):
        up = dict(pic_vals, **{name: pic_vals[name] + eps})
        dn = dict(pic_vals, **{name: pic_vals[name] - eps})
        f = lambda v: v["a"] * np.sin(v["b"]) + np.exp(v["a"] - v["b"])
        numeric = (f(up) - f(dn)) / (2 * eps)
        i = g.inputs[name]
        assert f"∂ {format(numeric, '.4g')}" in re.search(rf"^\s*n{i} \[.*$", text, re.M).group(0)


def test_edge_labels_are_local_derivatives():
    text = dot_of(LECTURE, "--at", AT)
    labels = dict(re.findall(r"(n\d+ -> n\d+) \[id=\"e\d+\" label=<([^>]*)>", text))
    assert labels == {
        "n0 -> n3": "1",
        "n1 -> n3": "1",
        "n1 -> n4": "1",
        "n2 -> n4": "1",
        "n3 -> n5": "7",
        "n4 -> n5": "2",
    }
    assert "label=<" not in "".join(
        line for line in dot_of(LECTURE, "--edge-labels", "none").splitlines() if "->" in line
    )


def test_tensor_nodes_show_shape_and_abbreviations():
    text = dot_of(str(EXAMPLES / "mlp.cg"))
    assert "(4, 3)" in text  # W1's shape; its 12 entries in full: tests/test_polish_matrices.py
    big = dot_of("-e", "y = sum(W)", "--at", "W=" + str(np.arange(16.0).reshape(4, 4).tolist()))
    assert "‖·‖ = " in big  # more than 12 entries: the norm
    assert "label=<(4, 3)>" in text  # a tensor edge carries its shape


def test_x_times_x_has_two_edges():
    text = dot_of("-e", "y = x * x", "--at", "x=3")
    assert edges(text).count(("n0", "n1")) == 2
    assert len(agraph(text).edges()) == 2


def test_non_commutative_operands_are_marked():
    ab = dot_of("-e", "input a, b; z = a - b", "--no-values")
    ba = dot_of("-e", "input a, b; z = b - a", "--no-values")
    assert ab.replace("a - b", "b - a") != ba  # not just the source text in the tooltip
    assert ("n0", "n2:p0:w") in edges(ab) and ("n1", "n2:p1:w") in edges(ab)
    assert ("n0", "n2:p1:w") in edges(ba) and ("n1", "n2:p0:w") in edges(ba)
    assert 'PORT="p0"' in ab and "−" in ab
    tb = dot_of("-e", "z = a / b", "--no-values", "--rankdir", "TB")
    assert ("n0", "n2:p0:n") in edges(tb) and "num" in tb and "den" in tb
    # commutative ops need no ports
    assert "PORT=" not in dot_of("-e", "z = a + b", "--no-values")


def test_def_calls_are_nested_clusters():
    text = dot_of(str(EXAMPLES / "functions.cg"))
    A = agraph(text)
    outer = [s for s in A.subgraphs() if s.name.startswith("cluster")]
    assert len(outer) == 1 and "dist2" in outer[0].graph_attr["label"]
    inner = outer[0].subgraphs()
    assert len(inner) == 2 and all("sq" in s.graph_attr["label"] for s in inner)
    assert all(len(s.nodes()) == 1 for s in inner)  # sq(u) = u * u is one node per call


def test_fanout_leaf_is_drawn_once_per_use_past_the_threshold():
    many = "; ".join(f"h{i} = h{i - 1} * w" for i in range(1, 21))
    text = dot_of("-e", f"input x, w; h0 = x; {many}", "--at", "x=1,w=0.9")
    w = "n1"
    copies = re.findall(rf"^\s*({w}_\d+) \[", text, re.M)
    assert len(copies) == 20
    assert not any(src == w for src, _ in edges(text))  # the main node keeps value and gradient, no edges
    assert "×20 uses" in text
    # the lecture's b (used twice) stays one node with two out-edges
    lec = dot_of(LECTURE)
    assert [dst for src, dst in edges(lec) if src == "n1"] == ["n3", "n4"]


# -- escaping ------------------------------------------------------------------------


AWKWARD = ['a"b', "back\\slash", "<b>bold</b>", "{brace}", "]; n9 [label=x", "é∂σ→✓", "line\nbreak", "&amp;", "\\N"]


@pytest.mark.parametrize("s", AWKWARD)
def test_quote_and_html_text_round_trip_through_graphviz(s):
    flat = s.replace("\n", " ")
    text = f"digraph {{ n0 [tooltip={quote(s)} label=<{html_text(s)}>]; }}"
    A = agraph(text)
    assert A.nodes() == ["n0"]
    node = A.get_node("n0")
    assert node.attr["tooltip"].replace("\\\\", "\\") == flat
    assert html.unescape(node.attr["label"]) == flat


def test_awkward_names_cannot_inject_attributes():
    g = graph_of("def f(u) = u * 2\nz = f(a) - b")
    for i, s in zip(g.inputs.values(), AWKWARD):
        g.names[i] = s
    g.frames[0].name = '"}; evil [shape=star'
    g.names[g.output] = "ünïcødé ∂z"
    text = GraphPicture(g).dot()
    A = agraph(text)
    assert sorted(A.nodes()) == sorted(f"n{i}" for i in range(len(g)))
    assert all(n.attr["shape"] != "star" for n in A.nodes())
    assert len(A.edges()) == sum(len(a) for a in g.args)
    labels = " ".join(html.unescape(A.get_node(f"n{i}").attr["label"]) for i in range(len(g)))
    assert 'a"b' in labels and "back\\slash" in labels and "ünïcødé ∂z" in labels


# -- files, formats, defaults -----------------------------------------------------------


def test_default_output_is_stem_png_in_cwd(tmp_path):
    r = run_cli("render", LECTURE, "--at", AT, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    data = (tmp_path / "lecture.png").read_bytes()
    w, h = png_size(data)
    assert w > 400 and h > 200 and len(data) > 10_000
    assert "lecture.png" in r.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["lecture.png"]  # no temporary files left


def test_stdin_and_expr_default_to_graph_png(tmp_path):
    r = run_cli("render", "-", input="z = x * y\n", cwd=tmp_path, env={"CGRAPH_X": "1"})
    assert r.returncode == 0, r.stderr
    assert "note: no value for inputs x, y" in r.stderr  # structure only, said so
    assert (tmp_path / "graph.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "name,magic", [("g.png", b"\x89PNG\r\n\x1a\n"), ("g.pdf", b"%PDF-"), ("g.svg", b"<?xml"), ("g.dot", b"digraph")]
)
def test_format_from_suffix(tmp_path, name, magic):
    out = tmp_path / name
    r = run_cli("render", LECTURE, "-o", str(out))
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    assert data.startswith(magic) and len(data) > 1500


def test_format_option_overrides_suffix_and_bad_suffix_is_an_error(tmp_path):
    out = tmp_path / "picture.img"
    r = run_cli("render", LECTURE, "-o", str(out))
    assert r.returncode == 2 and r.stderr.startswith("error:") and "--format" in r.stderr
    assert not out.exists()
    r = run_cli("render", LECTURE, "-o", str(out), "--format", "svg")
    assert r.returncode == 0 and out.read_bytes().startswith(b"<?xml")
    r = run_cli("render", LECTURE, "--format", "gif")
    assert r.returncode == 2 and "png, svg, pdf, dot" in r.stderr


def test_renders_without_dot_on_path(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    assert shutil.which("dot", path=str(empty)) is None
    out = tmp_path / "l.png"
    r = run_cli("render", LECTURE, "--at", AT, "-o", str(out), env={"PATH": str(empty)})
    assert r.returncode == 0, r.stderr
    assert png_size(out.read_bytes())[0] > 400


def test_no_values_needs_no_inputs(tmp_path):
    out = tmp_path / "s.png"
    r = run_cli("render", "-e", "z = W @ x + b", "--no-values", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert out.read_bytes()[:4] == b"\x89PNG"
    text = dot_of("-e", "z = W @ x + b", "--no-values")
    assert "structure only" in text and "∂ " not in text


def test_unknown_input_is_an_error():
    code, _, err = cli_inproc("render", LECTURE, "--at", "q=1", "--format", "dot", "-o", "-")
    assert code == 2 and "unknown input 'q'" in err


# -- limits -------------------------------------------------------------------------------


def test_refuses_a_3000_node_graph_without_writing(tmp_path):
    prog = tmp_path / "big.cg"
    prog.write_text("s0 = x\n" + "\n".join(f"s{i} = s{i - 1} + x" for i in range(1, 1600)) + "\n")
    r = run_cli("render", str(prog), "--at", "x=1", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("error:") and "more than 1,000 nodes" in r.stderr and "--max-nodes" in r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.cg"]


def test_timeout_is_an_error_that_writes_nothing(tmp_path):
    prog = tmp_path / "chain.cg"
    prog.write_text("h0 = x\n" + "\n".join(f"h{i} = tanh(w * h{i - 1} + 1)" for i in range(1, 60)) + "\n")
    r = run_cli("render", str(prog), "--at", "x=1,w=0.5", "--timeout", "0.001", cwd=tmp_path)
    assert r.returncode == 2
    assert "did not finish" in r.stderr and "--format dot" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chain.cg"]


def test_graphviz_crash_is_an_error(monkeypatch):
    """A renderer killed by a signal becomes one clear error (simulated: the child kills itself)."""
    from cgraph_cli.errors import CgraphError
    from cgraph_cli.present import render

    def crashing() -> list[str]:
        return [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]

    monkeypatch.setattr(render, "child_command", crashing)
    with pytest.raises(CgraphError) as err:
        render.render_dot("digraph { a -> b }", "png", timeout=30)
    assert "crashed" in err.value.message and "--format dot" in err.value.hint


# -- steps -------------------------------------------------------------------------------


def test_steps_frames(tmp_path):
    d = tmp_path / "frames"
    r = run_cli("render", LECTURE, "--at", AT, "--steps", str(d))
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in d.iterdir() if not p.name.startswith("."))  # not cgraph's record of them
    assert len(names) == 6 + 6  # six forward steps, six nodes get a gradient
    assert names[0] == "000-forward-a.png" and names[5] == "005-forward-z.png"
    assert names[6] == "006-backward-z.png" and names[-1] == "011-backward-c.png"  # (the lecture's order)
    sizes = {png_size((d / n).read_bytes()) for n in names}
    assert len(sizes) == 1  # one layout, one size


def test_steps_svg_last_frame_shows_every_gradient(tmp_path):
    d = tmp_path / "frames"
    r = run_cli("render", str(EXAMPLES / "functions.cg"), "--steps", str(d), "--format", "svg")
    assert r.returncode == 0, r.stderr
    frames = sorted(p for p in d.iterdir() if not p.name.startswith("."))  # not cgraph's record of them
    n_nodes, n_grads = 9, 9
    assert len(frames) == n_nodes + n_grads

    def shown_grads(path):
        svg = path.read_text(encoding="utf-8")
        return len(re.findall(r'fill="#c2410c"[^>]*>∂ ', svg))

    assert shown_grads(frames[n_nodes - 1]) == 0
    assert shown_grads(frames[n_nodes]) == 1
    assert shown_grads(frames[-1]) == n_grads
    # positions are shared: the first and last frame place node n0 at the same spot
    first = re.search(r'<g id="n0".*?<path[^>]* d="([^"]+)"', frames[0].read_text(), re.S).group(1)
    last = re.search(r'<g id="n0".*?<path[^>]* d="([^"]+)"', frames[-1].read_text(), re.S).group(1)
    assert first == last


def test_steps_gif(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    out = tmp_path / "anim.gif"
    r = run_cli("render", LECTURE, "--at", AT, "--steps", str(out))
    assert r.returncode == 0, r.stderr
    with Image.open(out) as im:
        assert im.n_frames == 12


def test_steps_needs_values(tmp_path):
    r = run_cli("render", "-e", "z = x * y", "--steps", str(tmp_path / "f"))
    assert r.returncode == 2 and "--steps" in r.stderr
    assert not (tmp_path / "f").exists()


def test_steps_replace_the_frames_of_an_earlier_run(tmp_path):
    """Frames that an earlier, longer run of cgraph wrote go; the user's files stay (never deleted)."""
    d = tmp_path / "frames"
    r = run_cli("render", LECTURE, "--at", AT, "--steps", str(d))  # 12 frames
    assert r.returncode == 0, r.stderr
    (d / "notes.txt").write_text("mine")
    r = run_cli("render", "-e", "y = 2 * x", "--at", "x=3", "--steps", str(d))
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in d.iterdir() if not p.name.startswith("."))
    # the frames are explain's steps: the anonymous constant 2 is no step of its own
    assert names == ["000-forward-x.png", "001-forward-y.png", "002-backward-y.png", "003-backward-x.png", "notes.txt"]


@pytest.mark.slow
def test_a_1000_node_chain_with_a_heavily_shared_input_renders(tmp_path):
    """One input used by 250 nodes makes plain dot hang or crash; drawn as copies it lays out quickly."""
    lines = ["input x, w", "h0 = x"]
    i = 1
    while len(lines) < 1000:
        lines.append(f"h{i} = sin(h{i - 1}) * w" if i % 3 == 0 else f"h{i} = sin(h{i - 1})")
        i += 1
    prog = tmp_path / "chain.cg"
    prog.write_text("\n".join(lines) + "\n")
    code, text, err = cli_inproc(
        "render", str(prog), "--at", "x=0.1,w=0.9", "--max-nodes", "2000", "-f", "dot", "-o", "-"
    )
    assert code == 0, err
    w_uses = sum(1 for line in lines if "* w" in line)
    assert len(re.findall(r"^\s*n1_\d+ \[", text, re.M)) == w_uses > 200
    out = tmp_path / "chain.png"
    r = run_cli("render", str(prog), "--at", "x=0.1,w=0.9", "--max-nodes", "2000", "-o", str(out), "--timeout", "100")
    assert r.returncode == 0, r.stderr
    w, h = png_size(out.read_bytes())
    assert max(w, h) <= 12_100  # large pictures are scaled to fit a bitmap


# -- property: any program's DOT is well-formed and complete ---------------------------------

_leaf = st.sampled_from(["a", "b", "c", "2", "0.5"])
_expr = st.recursive(
    _leaf,
    lambda sub: st.one_of(
        st.tuples(sub, st.sampled_from(["+", "-", "*", "/", "^"]), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["exp", "sin", "tanh", "sigmoid", "-"]), sub).map(lambda t: f"{t[0]}({t[1]})"),
    ),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None)
@given(_expr, st.booleans())
def test_random_programs_give_well_formed_complete_dot(expr, with_values):
    g = graph_of(f"input a, b, c\nz = {expr}\n")
    if g.ops[g.output] == "input":
        return
    from cgraph_cli.present.dot import evaluate_for_picture

    values = grads = None
    if with_values:
        values, grads, _ = evaluate_for_picture(g, {"a": 0.7, "b": 1.3, "c": -0.4})
    pic = GraphPicture(g, values, grads)
    A = agraph(pic.dot())
    copies = sum(len(pic.out_edges[i]) for i in range(len(g)) if pic.copied[i])
    assert len(A.nodes()) == len(g) + copies
    assert len(A.edges()) == sum(len(a) for a in g.args)
    # every gradient shown is the engine's gradient
    if grads is not None:
        for i in range(len(g)):
            if grads[i] is not None and not pic.off_path[i]:  # off the output's paths: greyed, no gradient
                assert "∂ " in A.get_node(f"n{i}").attr["label"]
            elif pic.off_path[i]:
                assert "∂" not in A.get_node(f"n{i}").attr["label"]


def test_named_constant_keeps_its_name():
    text = dot_of("-e", "x = [1, 2, 3]; w = 2; y = sum(w * x)")
    line = next(line for line in text.splitlines() if "[1, 2, 3]</FONT>" in line)
    assert "<B>x</B>" in line


@pytest.mark.parametrize("target", ["out.png", "frames.svg", "f.pdf"])
def test_steps_refuses_an_image_name(tmp_path, target):
    code, out, err = cli_inproc("render", LECTURE, "--steps", str(tmp_path / target))
    assert code == 2 and out == ""
    assert err.startswith("error: --steps writes many frames: give it a folder or a .gif file")
    assert not (tmp_path / target).exists()


def test_steps_without_values_is_one_error():
    code, out, err = cli_inproc("render", "-e", "z = x * y", "--steps", "frames.gif")
    assert code == 2
    assert err.startswith("error: --steps shows values and gradients") and "note:" not in err


def test_image_to_dev_stdout_is_not_followed_by_a_message(tmp_path):
    r = run_cli("render", LECTURE, "--format", "svg", "-o", "/dev/stdout")
    assert r.returncode == 0, r.stderr
    assert r.stdout.lstrip().startswith("<?xml") and r.stdout.rstrip().endswith("</svg>")


def test_steps_folder_with_a_nul_byte_is_a_clear_error():
    code, out, err = cli_inproc("render", LECTURE, "--steps", "a\x00b")
    assert code == 2 and err.startswith("error: --steps: cannot write") and "NUL" in err


def test_binary_image_to_a_terminal_is_refused():
    """`render -o -` on a terminal would print raw PNG bytes: refused with a hint, as curl does."""
    import os
    import pty
    import subprocess

    from conftest import CGRAPH

    primary, secondary = pty.openpty()
    try:
        r = subprocess.run(
            [str(CGRAPH), "render", str(EXAMPLES / "lecture.cg"), "-o", "-"],
            stdout=secondary,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(secondary)
        os.close(primary)
    assert r.returncode == 2
    assert r.stderr.startswith("error: -o - would write a binary PNG image to the terminal")
    assert "hint: redirect it" in r.stderr
    # piped, the bytes are the output
    r = run_cli("render", str(EXAMPLES / "lecture.cg"), "-o", "-", "--format", "svg")
    assert r.returncode == 0 and "<svg" in r.stdout


def test_constants_nothing_reads_are_not_drawn() -> None:
    """grad() leaves constants nothing reads; drawn, they made a column of stray boxes (a teacher's review:
    gradient_descent's picture was three times as tall). A constant the program names is still drawn."""
    src = Source("input x = 2\nk = 3\ny = grad(x^3, x)\n", "p.cg")
    g = build_graph(parse(src), src, {})
    uses = [0] * len(g.ops)
    for args in g.args:
        for j in args:
            uses[j] += 1
    unused = [i for i, op in enumerate(g.ops) if op == "const" and not uses[i] and g.names[i] is None]
    assert unused, "the program should leave an unused anonymous constant behind"
    text = GraphPicture(g).dot()
    drawn = set(re.findall(r"^\s*n(\d+) \[", text, flags=re.M))
    assert not drawn & {str(i) for i in unused}
    assert str(g.bindings["k"]) in drawn  # named, though nothing reads it
    assert {str(i) for i, op in enumerate(g.ops) if op != "const" or uses[i]} <= drawn
