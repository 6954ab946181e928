"""The start-up fast path (``eval ... --format json|csv`` without Typer) behaves exactly as the Typer path:
same stdout, stderr and exit code for successes, program errors, option errors and the fall-backs."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from cgraph_cli.cli.entry import main
from cgraph_cli.cli.fastpath import parse_eval_args
from tests.conftest import EXAMPLES

LECTURE = str(EXAMPLES / "lecture.cg")

INVOCATIONS = [
    ["eval", "-e", "x^2", "--at", "x=3", "--format", "json"],
    ["eval", LECTURE, "--format", "csv"],
    ["eval", LECTURE, "--format=json", "--at=a=2", "--at", "b=1,c=0.5", "--of", "x"],
    ["eval", "--format", "csv", "--all", LECTURE, "--dtype", "float32", "--seed", "3"],
    ["eval", "-f", "json", "-e", "y = log(a) + 1 / b", "--at", "a=-1,b=0"],  # non-finite warnings
    ["eval", "-f", "json", "-e", "y = log(a)", "--at", "a=-1", "--strict"],  # exit 1
    ["eval", "-f", "csv", "-e", "y = a +", "--at", "a=1"],  # syntax error
    ["eval", "-f", "csv", "-e", "y = a * b", "--at", "a=1"],  # missing input
    ["eval", "-f", "csv", "-e", "y = a * b", "--at", "a=1,b=2,q=3"],  # unknown input
    ["eval", "-f", "csv", "-e", "y = a", "--at", "a=[1,2"],  # bad --at
    ["eval", "-f", "csv", "-e", "y = a", "--at", "a=1", "--dtype", "float16"],
    ["eval", "-f", "csv", "-e", "y = a", "--at", "a=1", "--of", "nope"],
    ["eval", "-f", "csv", "-e", "y = sum(x)", "--at", "x=[1,2]", "--max-memory", "12Q"],
    ["eval", "-f", "csv", "/no/such/file.cg"],
    ["eval", "-f", "csv", "-e", "y = x", "--at", "x=-2"],
    ["eval", "-f", "csv", "-e", "-x", "--at", "x=2"],  # a value that looks like an option
    ["eval", "-f", "csv", "-e", "y = x", "--at"],  # missing value
    ["eval", "-f", "csv", "-e", "y = x", "--seed", "x1"],  # Typer's conversion error
    ["eval", "-f", "csv", LECTURE, LECTURE],  # two files
    ["eval", "-f", "csv", "--bogus", LECTURE],
    ["eval", "-f", "yaml", LECTURE],
    ["eval", "--help"],
    ["eval", "-f", "json", "-", "--at", "v=4"],  # stdin
    ["eval", LECTURE, "--batch", "BATCH"],
    ["eval", LECTURE, "--batch", "/no/such.csv"],
    ["eval", "-f", "csv", "--no-cache", "-e", "z = sin(a) * a", "--at", "a=0.5"],
]


def run_in_process(argv: list[str], monkeypatch, capsys, fast: bool) -> tuple[str, str, int]:
    if fast:
        monkeypatch.delenv("CGRAPH_NO_FASTPATH", raising=False)
    else:
        monkeypatch.setenv("CGRAPH_NO_FASTPATH", "1")
    monkeypatch.delenv("CGRAPH_DEBUG", raising=False)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"y = v * v\n")))
    code = 0
    try:
        main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    captured = capsys.readouterr()
    return captured.out, captured.err, code


@pytest.mark.parametrize("argv", INVOCATIONS, ids=[" ".join(a)[:60] for a in INVOCATIONS])
def test_both_paths_agree(argv: list[str], monkeypatch, capsys, tmp_path) -> None:
    pts = tmp_path / "p.csv"
    pts.write_text("a,b\n1,2\n-1,0.5\n")
    argv = [str(pts) if a == "BATCH" else a for a in argv]
    slow = run_in_process(argv, monkeypatch, capsys, fast=False)
    fast = run_in_process(argv, monkeypatch, capsys, fast=True)
    assert fast == slow
    assert "Traceback" not in fast[1]


def test_fast_path_is_taken_only_for_what_it_knows() -> None:
    assert parse_eval_args(["eval", "-e", "x^2", "--at", "x=3", "--format", "json"]) is not None
    assert parse_eval_args(["eval", "-e", "x^2", "--at", "x=-3", "-f", "csv"]) is not None
    assert parse_eval_args(["eval", "-e", "x^2", "--at", "x=3"]) is None  # the rich table
    assert parse_eval_args(["eval", "--help"]) is None
    assert parse_eval_args(["render", "x.cg"]) is None
    assert parse_eval_args(["eval", "-f", "json", "-e", "-x"]) is None


def test_json_eval_does_not_import_typer_or_rich() -> None:
    code = (
        "import sys\n"
        "from cgraph_cli.cli.entry import main\n"
        "try:\n"
        "    main(['eval', '-e', 'x^2', '--at', 'x=3', '--format', 'json'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('typer', 'rich', 'click', 'lark', 'numpy.random', 'tempfile')\n"
        "sys.stderr.write(repr(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert '"value": 9.0' in r.stdout
    # (numpy.random, 10 ms, only for a program that draws random numbers; tempfile, 4 ms, only to write a file)
    assert r.stderr == "[]"


def test_a_program_that_draws_random_numbers_draws_the_same_ones() -> None:
    """The generator of randn() and rand() is made at the first draw (ir.graph.LazyRng): the same numbers for a
    --seed as numpy's generator made up front, an input's default and the program drawing from one stream."""
    import numpy as np

    import cgraph_cli as cg

    p = cg.parse("input W = randn(2, 3)\nu = rand(3)\ny = sum(W @ u)\n")
    ev = p.eval(seed=7)
    rng = np.random.default_rng(7)
    W, u = rng.standard_normal((2, 3)), rng.random(3)
    assert np.array_equal(ev["W"].value, W) and np.array_equal(ev["u"].value, u)


def test_fast_parser_gives_typed_options() -> None:
    from cgraph_cli.cli.fastpath import EvalArgs
    from cgraph_cli.run.request import Options

    argv = ["eval", "-e", "y = a", "--at", "a=1", "--at=a=2", "--seed", "3", "-f", "csv", "--no-cache", "--all"]
    want = Options(expr="y = a", at=("a=1", "a=2"), seed=3, no_cache=True)
    assert parse_eval_args(argv) == EvalArgs(want, fmt="csv", all_nodes=True)
    assert parse_eval_args(["eval", "-f", "csv", "-e", "y = a", "--seed", "-1"]) is None  # Typer words the range
    assert parse_eval_args(["eval", "-f", "csv", "-e", "y = a", "--all=1"]) is None
