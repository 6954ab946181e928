"""Shell completion (issue 15, item 7): `cgraph --show-completion` / `--install-completion` for bash, zsh and fish,
and the answers to the shell's requests (the variables click's completion reads: _CGRAPH_COMPLETE, COMP_WORDS and
COMP_CWORD for bash, _TYPER_COMPLETE_ARGS for zsh and fish): commands, options, the words an option allows,
.cg files and the shipped examples' names. A request never takes `cgraph eval`'s fast path, and a plain
`cgraph eval` still imports no Typer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cgraph_cli.cli.completion import choices, program_files
from cgraph_cli.cli.fastpath import EVAL_OPTIONS, FORMATS, parse_eval_args
from cgraph_cli.run import examples
from cgraph_cli.run.request import COMMON_OPTIONS, DTYPES
from tests.conftest import CGRAPH, run_cli, run_inproc

COMMANDS = ["eval", "render", "check", "explain", "ir", "export", "examples"]
NO_DETECTION = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}  # the shell is named, not detected


def bash_request(line: str, cwd=None) -> list[str]:
    """What `cgraph` answers when bash asks to complete the last word of ``line`` (as the installed script asks)."""
    words = line.split(" ")
    env = {"_CGRAPH_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}
    r = run_inproc(env=env, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return [w for w in r.stdout.split("\n") if w]


def test_commands() -> None:
    assert bash_request("cgraph ") == COMMANDS
    assert bash_request("cgraph ex") == ["explain", "export", "examples"]
    assert "--install-completion" in bash_request("cgraph --")
    assert "--show-completion" in bash_request("cgraph --")


def test_options_of_eval_are_those_of_its_tables() -> None:
    offered = set(bash_request("cgraph eval --"))
    flags = {f for spec in COMMON_OPTIONS + EVAL_OPTIONS for f in spec.flags if f.startswith("--")}
    assert flags and flags <= offered
    assert "--help" in offered and "--watch-nothing" not in offered
    assert bash_request("cgraph eval --for") == ["--format"]


@pytest.mark.parametrize(
    "line, want",
    [
        ("cgraph eval x.cg --format ", list(FORMATS)),
        ("cgraph eval x.cg -f j", ["json"]),
        ("cgraph eval x.cg --dtype ", list(DTYPES)),
        ("cgraph render x.cg --format ", ["png", "svg", "pdf", "dot", "html"]),
        ("cgraph render x.cg --rankdir ", ["LR", "TB", "auto"]),
        ("cgraph check x.cg --method ", ["richardson", "complex"]),
        ("cgraph check x.cg --format ", ["table", "json"]),
        ("cgraph explain x.cg --format ", ["text", "json"]),
        ("cgraph ir x.cg --format ", ["text", "json", "dot"]),
        ("cgraph export x.cg --to ", ["numpy", "jax", "torch", "onnx"]),
    ],
)
def test_option_values_are_the_allowed_words(line: str, want: list[str]) -> None:
    assert bash_request(line) == want


def test_the_allowed_words_come_from_the_metavar() -> None:
    assert choices("table|json|csv") == ("table", "json", "csv")
    assert choices("LR|TB") == ("LR", "TB")
    for placeholder in ("FILE|-", "FILE", "N", "NAME=VALUE,...", "[NAME]", None, ""):
        assert choices(placeholder) == ()


def test_file_options_leave_file_names_to_the_shell() -> None:
    # nothing offered: bash's `complete -o default`, zsh's `_files` and fish's file completion take over
    assert bash_request("cgraph eval x.cg --at-file ") == []
    assert bash_request("cgraph render x.cg -o ") == []
    assert bash_request("cgraph eval x.cg --at ") == []


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "model.cg").write_text("y = x\n")
    (tmp_path / "mnist_small.cg").write_text("y = x\n")
    (tmp_path / "notes.txt").write_text("not a program\n")
    (tmp_path / ".hidden.cg").write_text("y = x\n")
    (tmp_path / "progs").mkdir()
    (tmp_path / "progs" / "a.cg").write_text("y = x\n")
    (tmp_path / "progs" / "b.cg").write_text("y = x\n")
    (tmp_path / "progs" / "c.csv").write_text("x\n1\n")
    return tmp_path


def test_program_argument_offers_examples_cg_files_and_folders(folder: Path) -> None:
    got = bash_request("cgraph eval ", cwd=folder)
    assert got == examples.names() + ["mnist_small.cg", "model.cg", "progs/"]
    assert bash_request("cgraph render m", cwd=folder) == ["mlp", "mnist_small.cg", "model.cg"]
    assert bash_request("cgraph check le", cwd=folder) == ["lecture"]
    assert bash_request("cgraph eval .", cwd=folder) == [".hidden.cg"]  # hidden only when asked for


def test_a_lone_folder_is_opened(folder: Path) -> None:
    assert bash_request("cgraph eval pro", cwd=folder) == ["progs/a.cg", "progs/b.cg"]
    assert bash_request("cgraph eval progs/b", cwd=folder) == ["progs/b.cg"]
    assert bash_request("cgraph eval nothing", cwd=folder) == []


def test_examples_command_completes_names_with_descriptions() -> None:
    assert bash_request("cgraph examples ") == examples.names()
    assert bash_request("cgraph examples li") == ["linear_regression"]
    items = program_files("lect")
    assert items[0] == ("lecture", examples.description("lecture"))


def test_zsh_and_fish_requests() -> None:
    env = {"_CGRAPH_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "cgraph eval x.cg --format "}
    r = run_inproc(env=env)
    assert r.returncode == 0 and r.stdout.startswith("_arguments")
    assert '"table"' in r.stdout and '"json"' in r.stdout and '"csv"' in r.stdout
    env["_TYPER_COMPLETE_ARGS"] = "cgraph eval --at-file "
    assert run_inproc(env=env).stdout.strip() == "_files"  # zsh's own file completion
    env = {
        "_CGRAPH_COMPLETE": "complete_fish",
        "_TYPER_COMPLETE_FISH_ACTION": "get-args",
        "_TYPER_COMPLETE_ARGS": "cgraph examples lec",
    }
    r = run_inproc(env=env)
    assert r.returncode == 0
    assert r.stdout.strip() == "lecture\t" + examples.description("lecture")


def test_a_request_never_takes_the_fast_path(monkeypatch) -> None:
    argv = ["eval", "-e", "x^2", "--at", "x=3", "--format", "json"]
    assert parse_eval_args(argv) is not None
    monkeypatch.setenv("_CGRAPH_COMPLETE", "complete_bash")
    assert parse_eval_args(argv) is None


def test_plain_eval_imports_no_typer_or_click() -> None:
    code = (
        "import sys\n"
        "from cgraph_cli.cli.entry import main\n"
        "try:\n"
        "    main(['eval', 'lecture', '--at', 'a=1', '--format', 'csv'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "top = {m.split('.')[0] for m in sys.modules}\n"
        "sys.stderr.write(repr(sorted(top & {'typer', 'click', 'shellingham'})))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("_CGRAPH", "COMP_"))}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert "z," in r.stdout
    assert r.stderr == "[]"


@pytest.mark.parametrize(
    "shell, want",
    [
        ("bash", ["_CGRAPH_COMPLETE=complete_bash", "complete -o default -F _cgraph_completion cgraph"]),
        ("zsh", ["#compdef cgraph", "_CGRAPH_COMPLETE=complete_zsh", "compdef _cgraph_completion cgraph"]),
        ("fish", ["complete --command cgraph", "_CGRAPH_COMPLETE=complete_fish"]),
    ],
)
def test_show_completion_prints_the_script(shell: str, want: list[str]) -> None:
    r = run_cli("--show-completion", shell, env=NO_DETECTION)
    assert r.returncode == 0, r.stderr
    for text in want:
        assert text in r.stdout


@pytest.mark.parametrize(
    "shell, script, rc",
    [
        ("bash", ".bash_completions/cgraph.sh", ".bashrc"),
        ("zsh", ".zfunc/_cgraph", ".zshrc"),
        ("fish", ".config/fish/completions/cgraph.fish", None),
    ],
)
def test_install_completion_writes_the_script_in_home(tmp_path: Path, shell: str, script: str, rc) -> None:
    r = run_cli("--install-completion", shell, env={**NO_DETECTION, "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert f"{shell} completion installed in" in r.stdout
    assert f"_CGRAPH_COMPLETE=complete_{shell}" in (tmp_path / script).read_text()
    if rc is not None:
        assert (tmp_path / rc).is_file()


@pytest.mark.skipif(shutil.which("bash") is None or not CGRAPH.exists(), reason="needs bash and the cgraph script")
def test_real_bash_completes_with_the_shown_script(tmp_path: Path) -> None:
    """bash sources `cgraph --show-completion` (the shell detected from the parent process) and its completion
    function fills COMPREPLY by calling cgraph."""
    (tmp_path / "model.cg").write_text("y = x\n")
    script = (
        'source <("$CGRAPH" --show-completion)\n'
        'ask() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _cgraph_completion cgraph; '
        "printf '%s,' \"${COMPREPLY[@]}\"; echo; }\n"
        "ask cgraph eval --format ''\n"
        "ask cgraph rend\n"
        "ask cgraph eval mo\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("_CGRAPH", "_TYPER"))}
    env["CGRAPH"] = str(CGRAPH)
    env["PATH"] = f"{CGRAPH.parent}{os.pathsep}{env.get('PATH', '')}"
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["table,json,csv,", "render,", "model.cg,"]
