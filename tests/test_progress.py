"""Progress of long work (issue 15, item 8): the library's loops report ``progress(done, total)`` (monotone,
ending at the total) and never print; the CLI shows a transient rich bar on stderr only when stderr is a terminal
and the work is long, and piped output stays byte for byte the same."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import cgraph_cli as cg
from tests.conftest import CGRAPH, EXAMPLES, run_on_pty

EXE = [str(CGRAPH)] if CGRAPH.exists() else [sys.executable, "-m", "cgraph_cli"]
LECTURE = str(EXAMPLES / "lecture.cg")


def _assert_monotone_to_total(calls: list[tuple[int, int | None]], total: int) -> None:
    assert calls, "progress was never called"
    dones = [d for d, _ in calls]
    assert dones == sorted(dones), calls
    assert all(0 <= d <= total for d in dones), calls
    assert all(t == total for _, t in calls), calls
    assert calls[-1] == (total, total), calls


# -- the library: the callback, no printing --------------------------------------------------------------------------


def test_check_reports_every_entry(capsys):
    calls: list[tuple[int, int | None]] = []
    report = cg.parse("y = sum(sin(x)) + a * b").check(
        {"x": np.linspace(-1, 1, 25), "a": 2.0, "b": 3.0}, progress=lambda d, t: calls.append((d, t))
    )
    assert report.ok
    _assert_monotone_to_total(calls, 27)
    assert len(calls) >= 27  # one call per entry
    assert capsys.readouterr() == ("", "")


def test_second_order_check_reports_every_entry(capsys):
    calls: list[tuple[int, int | None]] = []
    report = cg.parse("y = sum(sin(x)) * a + a * b").check(
        {"x": np.linspace(-1, 1, 4), "a": 2.0, "b": 3.0}, order=2, progress=lambda d, t: calls.append((d, t))
    )
    assert report.ok
    _assert_monotone_to_total(calls, 6)  # a gradient check per entry x[k], a, b
    assert capsys.readouterr() == ("", "")


def test_batch_reports_bytes_up_to_the_file_size(tmp_path, capsys, monkeypatch):
    from cgraph_cli.run import batch

    monkeypatch.setattr(batch, "CHUNK_ROWS", 100)  # several chunks, so several reports
    monkeypatch.setattr(batch, "_READ_BYTES", 2000)
    points = tmp_path / "points.csv"
    points.write_text("a,b,c\n" + "".join(f"{k * 0.25},{3 - k},{k % 7}\n" for k in range(1000)))
    program = cg.load(LECTURE)
    plain, with_progress = io.StringIO(), io.StringIO()
    assert program.eval_batch(points, plain) == []
    calls: list[tuple[int, int | None]] = []
    assert program.eval_batch(points, with_progress, progress=lambda d, t: calls.append((d, t))) == []
    assert with_progress.getvalue() == plain.getvalue()  # progress changes nothing in the output
    assert len(plain.getvalue().splitlines()) == 1001
    size = points.stat().st_size
    _assert_monotone_to_total(calls, size)
    assert calls[0] == (0, size)
    assert len({d for d, _ in calls}) >= 3, calls  # it moved along the chunks, not only at the end
    assert capsys.readouterr() == ("", "")


def test_batch_from_a_pipe_ends_at_what_was_read(tmp_path):
    """A CSV with no size known in advance: total None until the end, which reports (done, done)."""
    from cgraph_cli.run.batch import run_batch
    from cgraph_cli.run.program import load_source

    text = "a,b,c\n" + "".join(f"{k},{k + 1},{k + 2}\n" for k in range(50))
    r, w = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(w, text.encode()), os.close(w)))
    writer.start()
    calls: list[tuple[int, int | None]] = []
    out = io.StringIO()
    try:
        run_batch(load_source(LECTURE, None), f"/dev/fd/{r}", {}, out=out, progress=lambda d, t: calls.append((d, t)))
    finally:
        writer.join()
        os.close(r)
    assert len(out.getvalue().splitlines()) == 51
    assert calls[0] == (0, None) and all(t is None for _, t in calls[:-1])
    dones = [d for d, _ in calls]
    assert dones == sorted(dones) and calls[-1][0] == calls[-1][1] > 0, calls


def test_steps_and_render_report_frames(capsys):
    ev = cg.load(LECTURE).eval(a=-1, b=3, c=4)
    steps = ev.steps()
    calls: list[tuple[int, int | None]] = []
    frames = steps.render("svg", progress=lambda d, t: calls.append((d, t)))
    assert len(frames) == len(steps) == 12
    _assert_monotone_to_total(calls, len(steps))
    assert calls[0] == (0, len(steps))
    single: list[tuple[int, int | None]] = []
    svg = ev.picture().render("svg", progress=lambda d, t: single.append((d, t)))
    assert svg.lstrip().startswith(b"<?xml") or b"<svg" in svg[:400]
    _assert_monotone_to_total(single, 1)
    assert capsys.readouterr() == ("", "")


# -- the bar -----------------------------------------------------------------------------------------------------


def _terminal_console():
    from rich.console import Console

    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, width=80), buf


def test_bar_shows_on_a_terminal_once_the_work_is_long():
    from cgraph_cli.cli.progress import progress_bar

    console, buf = _terminal_console()
    with progress_bar("checking gradients", min_total=10, delay=60, console=console) as progress:
        assert progress is not None
        for k in range(21):
            progress(k, 20)
    shown = buf.getvalue()
    assert "checking gradients" in shown and "\x1b[" in shown


def test_bar_stays_hidden_for_short_work():
    from cgraph_cli.cli.progress import progress_bar

    console, buf = _terminal_console()
    with progress_bar("drawing frames", min_total=100, delay=60, console=console) as progress:
        for k in range(6):
            progress(k, 5)
    assert buf.getvalue() == ""


def test_bar_shows_after_the_delay_without_a_known_total():
    from cgraph_cli.cli.progress import progress_bar

    console, buf = _terminal_console()
    with progress_bar("evaluating rows", unit="bytes", delay=0, console=console) as progress:
        progress(0, None)
        progress(100, None)
        progress(100, 100)
    assert "evaluating rows" in buf.getvalue()


def test_no_bar_and_no_rich_when_stderr_is_not_a_terminal():
    code = (
        "import sys\n"
        "from cgraph_cli.cli.progress import progress_bar\n"
        "with progress_bar('x', min_total=1, delay=0) as p:\n"
        "    assert p is None\n"
        "assert 'rich' not in sys.modules\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr


@pytest.mark.parametrize("env", [{"CGRAPH_PROGRESS_DELAY": "bad"}, {"CGRAPH_PROGRESS_DELAY": "-1"}, {}])
def test_delay_setting_falls_back_to_the_default(env, monkeypatch):
    from cgraph_cli.cli import progress

    monkeypatch.delenv("CGRAPH_PROGRESS_DELAY", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert progress.delay_setting() == progress.DELAY
    monkeypatch.setenv("CGRAPH_PROGRESS_DELAY", "0")
    assert progress.delay_setting() == 0.0


# -- the command line on a pseudo-terminal and piped ----------------------------------------------------------------


def _run_piped(args: list[str], env: dict, cwd) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.pop("CGRAPH_DEBUG", None)
    e.update(env)
    return subprocess.run(EXE + args, capture_output=True, env=e, cwd=cwd, timeout=120)


@pytest.mark.slow
def test_steps_gif_shows_a_bar_on_a_terminal_and_nothing_piped(tmp_path):
    args = ["render", LECTURE, "--at", "a=-1,b=3,c=4", "--steps", "lecture.gif"]
    code, out, seen = run_on_pty(args, {}, tmp_path)  # 12 frames: over render's threshold of 10
    assert code == 0, seen
    assert b"drawing frames" in seen, seen
    assert out == b"wrote lecture.gif (12 frames)\n"
    (tmp_path / "lecture.gif").unlink()
    piped = _run_piped(args, {}, tmp_path)
    assert piped.returncode == 0
    assert piped.stdout == out and piped.stderr == b""


def test_batch_shows_a_bar_on_a_terminal_and_the_same_bytes_piped(tmp_path):
    points = tmp_path / "points.csv"
    points.write_text("a,b,c\n" + "".join(f"{k * 0.5},{k - 3},{k % 5}\n" for k in range(2000)))
    args = ["eval", LECTURE, "--batch", str(points)]
    env = {"CGRAPH_PROGRESS_DELAY": "0"}  # show it at once, however fast the machine
    code, out, seen = run_on_pty(args, env, tmp_path)
    assert code == 0, seen
    assert b"evaluating rows" in seen, seen
    piped = _run_piped(args, env, tmp_path)
    assert piped.returncode == 0 and piped.stderr == b""
    assert piped.stdout == out
    assert out.decode().splitlines()[1] == "0.0,-3,0,9.0,-3.0,-6.0,-3.0"  # z = (a + b)(b + c) by hand


def test_check_bar_leaves_stdout_alone(tmp_path):
    args = ["check", "-e", "y = sum(sin(x))", "--at", "x=" + str([0.01 * k for k in range(40)])]
    env = {"CGRAPH_PROGRESS_DELAY": "0"}
    code, out, seen = run_on_pty(args, env, tmp_path)
    assert code == 0, seen
    assert b"checking gradients" in seen
    piped = _run_piped(args, env, tmp_path)
    assert piped.returncode == 0 and piped.stderr == b"" and piped.stdout == out
    assert b"40 of 40" in out or b"40 entries" in out, out
