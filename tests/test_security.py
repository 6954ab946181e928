"""Security: user input is never evaluated, unpickled or spliced into DOT unescaped."""

from __future__ import annotations

import io
import os
import re
import tokenize
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import run_inprocess

PACKAGE = Path(__file__).resolve().parent.parent / "cgraph_cli"


def code_tokens(path: Path) -> list[tokenize.TokenInfo]:
    """The file's tokens without comments and strings (docstrings may mention 'pickle')."""
    src = path.read_text(encoding="utf-8")
    skip = (tokenize.COMMENT, tokenize.STRING, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
    toks = [t for t in tokenize.generate_tokens(io.StringIO(src).readline) if t.type not in skip]
    return [t for t in toks if not t.type == getattr(tokenize, "FSTRING_MIDDLE", -1)]


def dangerous_uses(path: Path) -> list[str]:
    toks = code_tokens(path)
    found = []
    for k, t in enumerate(toks):
        prev = toks[k - 1].string if k else ""
        nxt = toks[k + 1].string if k + 1 < len(toks) else ""
        nxt2 = toks[k + 2].string if k + 2 < len(toks) else ""
        where = f"{path.name}:{t.start[0]}"
        if t.string in ("eval", "exec", "compile", "__import__") and nxt == "(" and prev not in (".", "def"):
            found.append(f"{where}: {t.string}(")
        if t.string == "allow_pickle" and not (nxt == "=" and nxt2 == "False"):
            found.append(f"{where}: allow_pickle={nxt2}")
        if "pickle" in t.string.lower() and t.string != "allow_pickle":
            found.append(f"{where}: {t.string}")
        if t.string in ("marshal", "shelve") or (t.string == "shell" and nxt == "=" and nxt2 == "True"):
            found.append(f"{where}: {t.string}")
        if t.string == "load" and prev == "." and k >= 2 and toks[k - 2].string == "yaml":
            found.append(f"{where}: yaml.load")
    return found


# The one exec of the package: a hot plan's passes, generated from node numbers and the kernels' fixed templates
# only (no text of the program ever reaches it: test_compiled_source_holds_no_program_text below).
COMPILED = ["compiled.py: compile(", "compiled.py: exec("]


def test_no_eval_exec_or_pickle_in_the_package():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10
    problems = [p for f in files for p in dangerous_uses(f)]
    compiled = [p for p in problems if p.startswith("compiled.py:")]
    assert sorted(re.sub(r":\d+:", ":", p) for p in compiled) == sorted(COMPILED)
    assert [p for p in problems if p not in compiled] == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="abcxyzαβγ_0123456789", min_size=1, max_size=6), min_size=1, max_size=4))
def test_compiled_source_holds_no_program_text(names):
    """The generated source's every token is a node's or a function's numbered name, one of the fixed helper
    names, an operator or one of the templates' few numbers, whatever the program's names and constants."""
    from cgraph_cli.engine.compiled import source
    from cgraph_cli.engine.scalar import scalar_plan
    from tests.test_engine_strategies import compile_src

    names = [f"n{k}_{n}" if not n.isidentifier() else n for k, n in enumerate(names)]
    names = list(dict.fromkeys(n for n in names if n not in ("sin", "exp", "tanh")))
    lines = [f"{n} = sin({names[k - 1] if k else 'a'} * 0.123456789 + 1e-7) / 3 + tanh(a)" for k, n in enumerate(names)]
    text = "\n".join(lines) + "\n"
    values = {"a": np.array(0.5)}
    g = compile_src(text, values)
    plan = scalar_plan(g, values)
    src, helpers = source(plan.code, plan.back(g.output), g.output)
    fixed = {"def", "run", "X", "return", "if", "else", "or", "float", *helpers}
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.NAME:
            assert tok.string in fixed or re.fullmatch(r"[vg]\d+", tok.string), tok.string
        elif tok.type == tokenize.NUMBER:
            assert tok.string in ("0.0", "1.0", "2"), tok.string
        else:
            assert tok.type in (
                tokenize.OP,
                tokenize.NEWLINE,
                tokenize.NL,
                tokenize.INDENT,
                tokenize.DEDENT,
                tokenize.ENDMARKER,
            ), tok


def test_the_scanner_catches_what_it_should(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pickle\nx = eval(s)\nexec(code)\nnp.load(p, allow_pickle=True)\n"
        "subprocess.run(c, shell=True)\n# eval( in a comment is fine\ny = '''pickle'''\nz = g.eval(1)\n"
    )
    assert [p.split(": ", 1)[1] for p in dangerous_uses(bad)] == [
        "pickle",
        "eval(",
        "exec(",
        "allow_pickle=True",
        "shell",
    ]


def test_every_np_load_refuses_pickles():
    for f in sorted(PACKAGE.rglob("*.py")):
        for m in re.finditer(r"np\.load\(([^)]*)\)", f.read_text(encoding="utf-8")):
            assert "allow_pickle=False" in m.group(1), f"{f.name}: np.load({m.group(1)})"


class _Evil:
    """Unpickling this would run a command that creates a marker file."""

    marker = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_object_array_npz_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    _Evil.marker = str(marker)
    path = tmp_path / "vals.npz"
    np.savez(path, a=np.array([_Evil()], dtype=object), b=np.array(2.0))
    code, out, err = run_inprocess(["eval", "-e", "z = a * b", "--at-file", str(path)])
    assert code == 2 and err.startswith("error: --at-file:") and "Traceback" not in err
    assert not marker.exists()


def test_plain_npz_is_read(tmp_path):
    path = tmp_path / "vals.npz"
    np.savez(path, a=np.array(3.0), x=np.array([1.0, 2.0]))
    code, out, err = run_inprocess(["eval", "-e", "z = a * sum(x)", "--at-file", str(path), "--format", "csv"])
    assert code == 0 and "z,add" not in out and ",9.0," in out


def test_pickle_file_posing_as_json_is_not_unpickled(tmp_path):
    import pickle  # the test builds the hostile file; the package never imports pickle

    marker = tmp_path / "pwned"
    _Evil.marker = str(marker)
    path = tmp_path / "vals.json"
    path.write_bytes(pickle.dumps(_Evil()))
    code, out, err = run_inprocess(["eval", "-e", "z = a", "--at-file", str(path)])
    assert code == 2 and not marker.exists()


@pytest.mark.parametrize(
    "prog",
    [
        "z = __import__ + a",  # a name is only ever a name
        "z = exec(a)",
        "z = eval(a)",
        "z = open(a)",
    ],
)
def test_python_names_in_programs_are_just_unknown(prog):
    code, out, err = run_inprocess(["eval", "-e", prog, "--at", "a=1"])
    assert code in (0, 2) and "Traceback" not in err
    if "(" in prog:
        assert code == 2 and "unknown function" in err


# -- DOT injection ---------------------------------------------------------------------------

dot = pytest.importorskip("cgraph_cli.present.dot")


def parse_dot(text: str):
    import pygraphviz as pgv

    return pgv.AGraph(string=text)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(s=st.text(max_size=40))
def test_quote_and_html_text_cannot_break_out(s):
    for label in (dot.quote(s), "<" + dot.html_text(s) + ">"):
        g = parse_dot(f"digraph {{ n [label={label}, color=red]; }}")
        assert g.nodes() == ["n"] and g.edges() == []
        assert g.get_node("n").attr["color"] == "red"


HOSTILE = [
    '"] ; evil [label="x',
    "<B>bold</B><IMG SRC='/etc/passwd'/>",
    "a\\\nb",
    "x\\N\\G\\L",
    "]]><!--",
    "} digraph { x",
    "&amp;&lt;&#0;",
]


@pytest.mark.parametrize("s", HOSTILE)
def test_hostile_strings_in_labels(s):
    g = parse_dot(f"digraph {{ n [label=<{dot.html_text(s)}>, tooltip={dot.quote(s)}]; }}")
    assert g.nodes() == ["n"] and set(g.get_node("n").attr.keys()) >= {"label", "tooltip"}
    assert "IMG" not in g.get_node("n").attr["label"].upper().replace("&LT;IMG", "")


INJECTION_PROGRAMS = [
    # a line continuation puts a backslash and a newline into a node's source text
    "input a = 1, b = 2\nz = a + \\\n    b * a\n",
    # names that look like DOT keywords and attributes
    "input node = 1, edge = 2, digraph = 3, label = 4\nsubgraph = node * edge + digraph - label\n",
    # user functions become clusters whose titles come from the program
    "def cluster_x(graph) = graph * graph\ninput strict = 2\nlabel = cluster_x(strict) + \\\n cluster_x(1)\n",
]


@pytest.mark.parametrize("prog", INJECTION_PROGRAMS)
@pytest.mark.parametrize("command", [["render", "--format", "dot", "-o", "-"], ["ir", "--format", "dot"]])
def test_program_text_cannot_inject_dot(prog, command):
    code, out, err = run_inprocess([command[0], "-e", prog, *command[1:]])
    if code == 2 and "No such command" in err:
        pytest.skip(f"{command[0]} is not available")
    assert code == 0, err
    g = parse_dot(out)
    from cgraph_cli.errors import Source
    from cgraph_cli.run.program import compile_program

    ir = compile_program(Source(prog))
    drawn = {str(n) for n in g.nodes()}
    assert all(re.fullmatch(r"n\d+", n) for n in drawn), drawn  # no node ids came from the program
    for i, name in enumerate(ir.names):
        if name is not None and f"n{i}" in drawn:
            node = g.get_node(f"n{i}")
            assert f"<B>{name}</B>" in node.attr["label"]
            assert set(node.attr.keys()) <= {
                "color",
                "fillcolor",
                "id",
                "label",
                "tooltip",
                "penwidth",
                "shape",
                "style",
            }
    assert sum(f"n{i}" in drawn for i, n in enumerate(ir.names) if n) == len([n for n in ir.names if n])


def test_npz_zip_bomb_is_refused_before_decompressing(tmp_path):
    """1.5 MB on disk, 1.5 GiB of zeros once decompressed: refused from the archive's directory."""
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, a=np.zeros((20000, 10000)))
    assert path.stat().st_size < 5 << 20
    code, out, err = run_inprocess(["eval", "-e", "z = sum(a)", "--at-file", str(path), "--format", "json"])
    assert code == 2 and "take 1.49 GiB, more than the memory limit of 1 GiB" in err
    small = tmp_path / "small.npz"
    np.savez_compressed(small, a=np.ones(1000))
    assert run_inprocess(["eval", "-e", "z = sum(a)", "--at-file", str(small), "--max-memory", "4K"])[0] == 2
    assert run_inprocess(["eval", "-e", "z = sum(a)", "--at-file", str(small), "--max-memory", "16K"])[0] == 0


def test_huge_json_at_file_is_refused_unread(tmp_path, monkeypatch):
    from cgraph_cli import limits

    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 100)
    path = tmp_path / "vals.json"
    path.write_text('{"a": [' + ", ".join(["1"] * 100) + "]}")
    code, out, err = run_inprocess(["eval", "-e", "z = sum(a)", "--at-file", str(path)])
    assert code == 2 and "is too large" in err and ".npz" in err
