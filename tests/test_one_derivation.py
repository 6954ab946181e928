"""One fact, one place: every view of a step renders explain's derivation, with one naming of nodes.

- the ``render --steps`` captions are explain's steps (same list, same formula and numbers, same names);
- a node has one name everywhere: the eval table, explain, check, the pictures and the warnings;
- the presenters import the analysis modules, never the other way round, and no cgraph import hides in a function.
"""

from __future__ import annotations

import ast
import html
import re
from pathlib import Path

import pytest

from cgraph_cli.present.dot import GraphPicture, caption_text, evaluate_for_picture
from cgraph_cli.run.program import compile_program, load_source
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.cg"))
LECTURE = str(ROOT / "examples" / "lecture.cg")
CAPTION = re.compile(r"(forward|backward) (\d+)/(\d+):  (.*)\Z")


def _norm(text: str) -> str:
    return " ".join(text.split())


def explain_steps(text: str) -> dict[str, list[str]]:
    """explain's plain text cut into steps: each step's lines joined, without shapes, 'where' and 'note' lines."""
    steps: dict[str, list[str]] = {"forward": [], "backward": []}
    phase = None
    for line in text.splitlines():
        if line.startswith("Forward pass"):
            phase = "forward"
            continue
        if line.startswith("Backward pass"):
            phase = "backward"
            continue
        if not line.strip() or phase is None:
            continue
        body = line.split("    shape")[0]
        stripped = body.strip()
        if line.startswith("  ") and not line.startswith("   "):  # a new step
            if "does not depend on any input" in line:
                continue
            steps[phase].append(stripped)
        elif stripped.startswith(("+ ", "= ", "‖")):  # a long step, one term per line
            steps[phase][-1] += " " + stripped
        # else: 'where' / 'note' lines
    return {k: [_norm(s) for s in v] for k, v in steps.items()}


def captions_of(path: str, *at: str) -> list[str]:
    src = load_source(path, None)
    given = dict(kv.split("=") for a in at for kv in a.split(","))
    given = {k: float(v) for k, v in given.items()}
    g = compile_program(src, given)
    values, grads, out = evaluate_for_picture(g, given)
    return [st.caption or "" for _, _, st in GraphPicture(g, values, grads, out).steps()]


def same_step(caption_body: str, explain_line: str) -> bool:
    """The caption is explain's line, or the same chain of equalities with middle parts shortened to '…'."""
    cap, exp = _norm(caption_body), _norm(explain_line)
    if cap == exp:
        return True
    parts, want = cap.split(" = "), exp.split(" = ")
    if "…" not in parts or parts[0] != want[0] or parts[-1] != want[-1]:
        return False
    it = iter(want[1:-1])
    return all(p == "…" or any(p == w for w in it) for p in parts[1:-1])


def assert_captions_match(captions: list[str], explained: dict[str, list[str]]) -> None:
    seen: dict[str, list[str]] = {"forward": [], "backward": []}
    for cap in captions:
        m = CAPTION.match(cap)
        assert m, cap
        phase, k, n, body = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
        assert n == len(explained[phase]) and k == len(seen[phase]) + 1, cap
        assert same_step(body, explained[phase][k - 1]), (body, explained[phase][k - 1])
        seen[phase].append(body)
    assert [len(v) for v in seen.values()] == [len(v) for v in explained.values()]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_every_caption_is_the_explain_line_of_its_step(example):
    r = run_cli("explain", str(example))
    assert r.returncode == 0, r.stderr
    explained = explain_steps(r.stdout)
    assert explained["forward"] and explained["backward"]
    assert_captions_match(captions_of(str(example)), explained)


@pytest.mark.parametrize(
    "args",
    [
        (LECTURE, "--at", "a=-1,b=3,c=4"),
        (str(ROOT / "examples" / "unrolled.cg"),),  # one caption shortened with '…'
    ],
    ids=["lecture", "unrolled"],
)
def test_rendered_svg_frames_carry_the_explain_lines(tmp_path, args):
    d = tmp_path / "frames"
    r = run_cli("render", *args, "--steps", str(d), "--format", "svg")
    assert r.returncode == 0, r.stderr
    explained = explain_steps(run_cli("explain", *args).stdout)
    captions = []
    for frame in sorted(d.glob("*.svg")):
        texts = [html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", frame.read_text("utf-8"))]
        (cap,) = [_norm(t) for t in texts if re.match(r"(forward|backward) \d+/\d+:", t)]
        captions.append(re.sub(r"^(\w+ \d+/\d+:) ", r"\1  ", cap))
    assert_captions_match(captions, explained)


def test_lecture_frame_of_dz_dy_says_what_explain_says():
    """The issue's example: the frame read ∂z/∂y = ∂z/∂z · ∂z/∂y = 1 · 2 = 2 (circular). (Frame 008 since the
    backward steps go in the lecture's order: z, x, y, a, b, c.)"""
    caps = captions_of(LECTURE, "a=-1,b=3,c=4")
    assert caps[7] == "backward 2/6:  ∂z/∂x = y = 7"
    assert caps[8] == "backward 3/6:  ∂z/∂y = x = 2"
    assert "∂z/∂y = x = 2" in run_cli("explain", LECTURE, "--at", "a=-1,b=3,c=4").stdout


def test_anonymous_nodes_are_named_by_their_text_in_the_frames(tmp_path):
    prog = tmp_path / "z.cg"
    prog.write_text("z = (a + b) * (b + c)\n")
    caps = captions_of(str(prog), "a=-1,b=3,c=4")
    assert "backward 3/6:  ∂z/∂(b + c) = (a + b) = 2" in caps
    assert not any("%" in c for c in caps)
    # the boxes of the frames carry the same name as the captions
    src = load_source(str(prog), None)
    g = compile_program(src, {})
    values, grads, out = evaluate_for_picture(g, {"a": -1.0, "b": 3.0, "c": 4.0})
    pic = GraphPicture(g, values, grads, out)
    frames = pic.steps()
    text = pic.dot(frames[0][2])
    assert "(a + b)</FONT>" in text and "(b + c)</FONT>" in text and ">%2<" not in text  # tooltips keep ir ids


def test_tensor_frames_write_the_vjp_not_a_count_of_uses():
    caps = captions_of(str(ROOT / "examples" / "mlp.cg"))
    (a1,) = [c for c in caps if "  ∂loss/∂a1 = " in c]
    assert "W2ᵀ · ∂loss/∂(W2 @ a1) = [0.0377596, 0.0323258, -0.0561008, -0.119869]" in a1
    assert not any("sum over" in c for c in caps)


def test_unrolled_picture_names_each_assignment():
    r = run_cli("render", str(ROOT / "examples" / "unrolled.cg"), "--format", "dot", "-o", "-")
    assert r.returncode == 0, r.stderr
    for name in ("s₁", "s₂", "s₃"):
        assert f"<B>{name}</B>" in r.stdout and f'tooltip="{name}: ' in r.stdout
    assert "<B>s</B>" not in r.stdout


def test_frames_skip_anonymous_constants_as_explain_does():
    caps = captions_of(str(ROOT / "examples" / "linear_regression.cg"))
    assert sum(c.startswith("forward") for c in caps) == 9  # 11 nodes, two of them the constants 0.5 and 2
    assert not any(c.startswith("forward") and "constant" in c for c in caps)


def test_caption_shortening_keeps_the_ends():
    text = "∂L/∂w = " + " + ".join(["∂L/∂u · ∂u/∂w"] * 8) + " = 1 · 2 + 3 · 4 = 14"
    short = caption_text(text, 60)
    assert short == "∂L/∂w = … = 1 · 2 + 3 · 4 = 14"
    assert caption_text("x = a + b = 1 + 2 = 3", 60) == "x = a + b = 1 + 2 = 3"


# -- one naming: the warnings, the table and check say what explain says ---------------------------


def test_warnings_name_reassigned_and_anonymous_nodes_as_explain_does():
    r = run_cli("eval", "-e", "s = a - 1\ns = log(s)\nz = s * 2", "--at", "a=1")
    assert "at node s₂ (log) from s₁ = 0" in r.stderr, r.stderr
    assert "∂z/∂s₂ = 2 into inf for s₁" in r.stderr
    ex = run_cli("explain", "-e", "s = a - 1\ns = log(s)\nz = s * 2", "--at", "a=1").stdout
    assert "  s₂ = log(s₁)" in ex
    r = run_cli("eval", "-e", "z = log(a - 1) * 2", "--at", "a=1")
    assert "at node log(a - 1) (log) from (a - 1) = 0" in r.stderr, r.stderr


def test_table_and_check_use_the_same_subscripts():
    table = run_cli("eval", str(ROOT / "examples" / "unrolled.cg")).stdout
    assert all(f"│ {s} " in table for s in ("s₁", "s₂", "s₃"))
    r = run_cli("check", "-e", "s = a\ns = relu(s)\nz = s * 2", "--at", "a=0")
    assert "s₂ sits on a kink (s₁ = 0)" in r.stderr, r.stderr


# -- one direction of imports ------------------------------------------------------------------------

MINE = {
    "names": "ir/names.py",
    "fmt": "fmt.py",
    "anomaly": "analysis/anomaly.py",
    "check": "analysis/check.py",
    "explain": "analysis/explain.py",
    "present": "present/tables.py",
    "dot": "present/dot.py",
}


def _cgraph_imports(path: Path) -> tuple[set[str], list[str]]:
    """(modules imported at the top, imports of cgraph modules inside functions)."""
    tree = ast.parse(path.read_text("utf-8"))
    top: set[str] = set()
    hidden: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cgraph_cli"):
            top.add(node.module)
            top.update(f"{node.module}.{a.name}" for a in node.names if node.module == "cgraph_cli")
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom) and sub.module and sub.module.startswith("cgraph_cli"):
                    hidden.append(f"{node.name}: {sub.module}")
                if isinstance(sub, ast.Import) and any(a.name.startswith("cgraph_cli") for a in sub.names):
                    hidden.append(f"{node.name}: import")
    return top, hidden


@pytest.mark.parametrize("mod", sorted(MINE))
def test_no_hidden_imports_and_one_direction(mod):
    top, hidden = _cgraph_imports(ROOT / "cgraph_cli" / MINE[mod])
    assert hidden == []
    allowed = {
        "fmt": set(),
        "names": {"cgraph_cli.fmt", "cgraph_cli.ir.graph", "cgraph_cli.ops", "cgraph_cli.ops.text"},
    }
    if mod in allowed:
        assert top <= allowed[mod], top
    if mod in ("anomaly", "check", "explain"):  # analysis: never a presenter
        assert not top & {"cgraph_cli.present.tables", "cgraph_cli.present.dot", "cgraph_cli.cli"}, top
