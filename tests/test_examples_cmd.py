"""The shipped examples (issue 15, item 6): `cgraph examples` lists and prints them, and every command takes an
example's name where it takes a program file (a real file of that name wins; an unknown name is the usual
file-not-found error with a 'did you mean' over the examples' names). The installed wheel is tested in
tests/test_wheel.py; here the examples come from the repository's examples/ folder."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import cgraph_cli as cg
from cgraph_cli.run import examples
from tests.conftest import EXAMPLES, run_cli, run_inproc

FILES = sorted(EXAMPLES.glob("*.cg"))
LECTURE_AT = "a=-1,b=3,c=4"


def first_comment(path) -> str:
    """The example's description as a reader sees it: its first comment line."""
    line = next(ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.startswith("#"))
    return line[1:].strip()


def test_the_examples_are_found_in_the_repository() -> None:
    assert examples.folder() == EXAMPLES
    assert examples.names() == [p.stem for p in FILES]
    assert "lecture" in examples.names() and "mlp" in examples.names()


def test_list_has_one_line_per_example_with_its_first_comment_line() -> None:
    r = run_inproc("examples")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == len(FILES)
    for line, path in zip(lines, FILES):
        name, _, rest = line.partition(" ")
        assert name == path.stem
        assert rest.strip() == first_comment(path)
        assert line == line.rstrip()
    assert len({line.index(first_comment(p)) for line, p in zip(lines, FILES)}) == 1  # descriptions aligned


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_description_is_one_whole_line(path) -> None:
    text = first_comment(path)
    assert text and not text.startswith("expect:")
    assert text.endswith((".", ")")), f"{path.name}: the first comment line is cut mid-sentence: {text!r}"
    assert len(text) <= 110


def test_print_one_example_is_its_exact_text() -> None:
    r = run_inproc("examples", "lecture")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (EXAMPLES / "lecture.cg").read_text(encoding="utf-8")
    assert run_inproc("examples", "mlp.cg").stdout == (EXAMPLES / "mlp.cg").read_text(encoding="utf-8")


def test_print_unknown_example_says_did_you_mean() -> None:
    r = run_inproc("examples", "lectur")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [
        "error: no example named 'lectur'",
        "hint: did you mean 'lecture'? ('cgraph examples' lists them)",
    ]
    r = run_inproc("examples", "../examples/lecture")  # a name, never a path
    assert r.returncode == 2 and "no example named" in r.stderr


def test_eval_by_name_from_a_folder_without_examples(tmp_path) -> None:
    for name in ("lecture", "lecture.cg"):
        r = run_cli("eval", name, "--at", LECTURE_AT, "--format", "json", cwd=tmp_path)  # the fast path
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["value"] == 14.0 and doc["gradients"] == {"a": 7.0, "b": 9.0, "c": 2.0}
    r = run_inproc("eval", "linear_regression", cwd=tmp_path)  # the table, through Typer
    assert r.returncode == 0, r.stderr
    assert "loss" in r.stdout and "0.125" in r.stdout


def test_fast_path_by_name_does_not_import_typer(tmp_path) -> None:
    code = (
        "import sys\n"
        "from cgraph_cli.cli.entry import main\n"
        "try:\n"
        "    main(['eval', 'lecture', '--format', 'json'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.stderr.write(repr(sorted(m for m in ('typer', 'rich', 'click') if m in sys.modules)))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert '"value": 14.0' in r.stdout
    assert r.stderr == "[]"


@pytest.mark.parametrize(
    "argv, want",
    [
        (["check", "lecture"], "all 3 gradient entries of z match"),
        (["explain", "lecture", "--at", LECTURE_AT], "∂z/∂a = ∂z/∂x · ∂x/∂a = 7 · 1 = 7"),
        (["ir", "lecture"], "mul"),
    ],
    ids=["check", "explain", "ir"],
)
def test_other_commands_take_a_name(tmp_path, argv, want) -> None:
    r = run_inproc(*argv, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert want in r.stdout
    assert list(tmp_path.iterdir()) == []


def test_render_and_export_by_name_write_next_to_the_user(tmp_path) -> None:
    r = run_inproc("render", "lecture", "--format", "svg", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "lecture.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
    r = run_inproc("export", "lecture", "--to", "numpy", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "lecture_numpy.py").is_file()
    assert not (EXAMPLES / "lecture.svg").exists() and not (EXAMPLES / "lecture_numpy.py").exists()


def test_a_real_file_of_that_name_wins(tmp_path) -> None:
    (tmp_path / "lecture").write_text("input a = 5\nz = a * 2\n")
    r = run_cli("eval", "lecture", "--format", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["value"] == 10.0
    assert cg.load(tmp_path / "lecture").eval().value == 10.0


def test_a_folder_of_that_name_does_not_hide_the_example(tmp_path) -> None:
    (tmp_path / "mlp").mkdir()
    r = run_cli("eval", "mlp", "--format", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert abs(json.loads(r.stdout)["value"] - 0.102083) < 1e-6  # examples/mlp.cg's `# expect: loss`
    (tmp_path / "other").mkdir()  # a folder that names no example: the usual refusal
    r = run_cli("eval", "other", "--format", "json", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr == "error: other is a folder, not a program file\n"


def test_unknown_name_is_file_not_found_with_did_you_mean(tmp_path) -> None:
    r = run_cli("eval", "lectur", "--format", "json", cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [
        "error: no such file: lectur",
        "hint: did you mean the example 'lecture'? ('cgraph examples' lists them)",
    ]
    r = run_inproc("render", "nothing_like_it", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.splitlines() == ["error: no such file: nothing_like_it"]


def test_the_readme_path_outside_the_repository_points_to_the_name(tmp_path) -> None:
    r = run_cli("eval", "examples/lecture.cg", "--format", "json", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        "error: no such file: examples/lecture.cg",
        "hint: cgraph ships the example 'lecture': give its name instead of a path ('cgraph examples' lists them)",
    ]


def test_python_api_lists_and_loads_examples(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    listed = cg.examples()
    assert list(listed) == [p.stem for p in FILES]
    assert all(listed[p.stem] == first_comment(p) for p in FILES)
    ev = cg.load("lecture").eval(a=-1, b=3, c=4)
    assert ev.value == 14.0 and ev.grad == {"a": 7.0, "b": 9.0, "c": 2.0}
    with pytest.raises(cg.CgraphError) as e:
        cg.load("lectur")
    assert str(e.value) == "no such file: lectur" and "'lecture'" in (e.value.hint or "")
