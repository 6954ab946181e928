"""Small frictions of issue 15: a repeated --at name, check's one table, explain's one rule for showing the
numbers of a step, and a Ctrl-C in the first milliseconds."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cgraph_cli.analysis import check, explain
from cgraph_cli.fmt import is_small
from cgraph_cli.run.request import build_request
from tests.conftest import CGRAPH, EXAMPLES, run_inproc

LECTURE = str(EXAMPLES / "lecture.cg")


# -- --at x=3 --at x=4 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "at,first,second",
    [
        (["--at", "x=[1,2]", "--at", "x=[3,4]"], "x=[1,2]", "x=[3,4]"),
        (["--at", "x=[1,2],x=[3,4]"], "x=[1,2]", "x=[3,4]"),
        (["--at", "x=[1,2],y=2", "--at", "x=[5,6]"], "x=[1,2]", "x=[5,6]"),
    ],
    ids=["two-options", "one-option", "among-others"],
)
def test_a_name_given_twice_is_an_error_naming_it(at, first, second) -> None:
    r = run_inproc("eval", "-e", "z = sum(x)", *at)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines()[0] == f"error: --at: x is given twice ({first} and {second})"


def test_the_fast_path_refuses_a_repeated_name_in_the_same_words() -> None:
    args = ["eval", "-e", "y = x", "--at", "x=3", "--at", "x=4", "--format", "json"]
    fast = run_inproc(*args)
    slow = run_inproc(*args, env={"CGRAPH_NO_FASTPATH": "1"})
    assert fast.returncode == slow.returncode == 2
    assert (
        fast.stderr
        == slow.stderr
        == ("error: --at: x is given twice (x=3 and x=4)\nhint: give each input once: drop one of the x= values\n")
    )


def test_at_still_overrides_at_file(tmp_path) -> None:
    f = tmp_path / "v.json"
    f.write_text('{"x": 3}')
    r = run_inproc("eval", "-e", "y = 2 * x", "--at-file", str(f), "--at", "x=5", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert '"value": 10.0' in r.stdout


# -- check: one table ------------------------------------------------------------------------------------------------


def test_check_prints_one_table_for_all_inputs() -> None:
    r = run_inproc("check", LECTURE, "--at", "a=-1,b=3,c=4")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "∂z/∂input: 3 entries of a, b, c: ok"
    assert sum(ln.startswith("┏") for ln in lines) == 1  # one table
    rows = [ln.split("│")[1].strip() for ln in lines if ln.startswith("│")]
    assert rows == ["a", "b", "c"]
    assert lines[-1].startswith("ok: all 3 gradient entries of z match")


def test_check_one_table_with_tensors_has_a_section_per_input_and_counts_failures() -> None:
    r = run_inproc("check", str(EXAMPLES / "mlp.cg"), "--wrt", "b1,b2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "∂loss/∂input: 6 entries of b1 (4,), b2 (2,): ok"
    assert sum(ln.startswith("┏") for ln in lines) == 1
    assert sum(ln.startswith("├") for ln in lines) == 1  # the section line between b1 and b2
    entries = [ln.split("│")[1].strip() for ln in lines if ln.startswith("│")]
    assert entries == ["b1[0]", "b1[1]", "b1[2]", "b1[3]", "b2[0]", "b2[1]"]


def test_check_table_title_counts_failed_entries_over_all_inputs(monkeypatch) -> None:
    req = build_request(expr="z = a * b + c", at=["a=2,b=3,c=1"])
    g = req.compile()
    report = check.check_gradients(g, req.inputs(g), req.output(g))
    for c in report.inputs[:2]:  # make two inputs fail
        c.ok[:] = False
    t = check.to_table(report)
    assert t.title == "∂z/∂input: 3 entries of a, b, c: 2 failed"
    assert t.row_count == 3


# -- explain: one rule for the numbers of a step ---------------------------------------------------------------------


@pytest.mark.parametrize("program", ["mlp.cg", "softmax_regression.cg", "linear_regression.cg", "lecture.cg"])
def test_a_forward_step_shows_its_numbers_exactly_when_every_operand_is_shown_in_full(program) -> None:
    result = build_request(str(EXAMPLES / program)).run()
    ex = explain.explain(result)
    vals = result.values
    g = result.graph
    seen_tensor = False
    for st in ex.forward:
        if st.op in ("input", "const"):
            continue
        full = all(is_small(vals[j]) for j in g.args[st.node])
        assert (st.numbers is not None) == full, (program, st.label, st.numbers)
        seen_tensor |= full and any(np.ndim(vals[j]) for j in g.args[st.node])
    if program == "mlp.cg":
        assert seen_tensor


def test_mlp_z1_and_z2_are_written_alike() -> None:
    text = run_inproc("explain", str(EXAMPLES / "mlp.cg")).stdout
    z1 = next(ln for ln in text.splitlines() if ln.startswith("  z1 = "))
    z2 = next(ln for ln in text.splitlines() if ln.startswith("  z2 = "))
    for line, bias in ((z1, "[0, 0, 0, 0]"), (z2, "[0, 0]")):
        assert line.count(" = ") == 3, line  # z = formula = numbers = value
        assert f"] + {bias} = [" in line, line


# -- Ctrl-C in the first milliseconds ---------------------------------------------------------------------------------


def _before_cgraph_code(stderr: str) -> bool:
    """A traceback from the interpreter's own start-up or from finding the package (the console script's import
    line), before any code of cgraph_cli ran: outside cgraph's reach."""
    return "cgraph_cli/" not in stderr.replace("\\", "/") and "Exception ignored" not in stderr


@pytest.mark.slow
def test_an_early_ctrl_c_ends_quietly_with_130() -> None:
    programs = [[sys.executable, "-m", "cgraph_cli"]] + ([[str(CGRAPH)]] if CGRAPH.exists() else [])
    env = dict(os.environ)
    env.pop("CGRAPH_DEBUG", None)
    rng = random.Random(15)
    quiet = 0
    for k in range(60):
        args = ["eval", "-e", "y = x * x", "--at", "x=3"] + (["--format", "json"] if k % 3 else [])
        p = subprocess.Popen(
            programs[k % len(programs)] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        time.sleep(rng.uniform(0.0, 0.2))
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        if p.returncode == 130:
            assert err == "", err
            quiet += 1
        elif p.returncode == 0:  # finished before the signal came (or Python's start-up reported and went on)
            assert err == "" or _before_cgraph_code(err), err
        else:  # the interpreter itself had not handed over to cgraph yet
            assert p.returncode in (1, -signal.SIGINT), (p.returncode, err)
            assert _before_cgraph_code(err), err
    assert quiet >= 10, quiet  # many signals land while cgraph loads or runs


def test_importing_cgraph_cli_leaves_ctrl_c_alone() -> None:
    r = subprocess.run(
        [sys.executable, "-c", "import signal, cgraph_cli.cli.entry; print(signal.getsignal(2).__name__)"],
        capture_output=True,
        text=True,
    )
    assert r.stdout.strip() == "default_int_handler", r.stderr
