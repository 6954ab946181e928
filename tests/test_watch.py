"""``--watch`` (issue 15, item 9): render, eval and explain run again whenever the program file is saved; an error
in the edited file is shown and the watch goes on; Ctrl-C ends it quietly with exit 0; combinations that make no
sense are refused with exit 2."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import CGRAPH, run_cli

EXE = [str(CGRAPH)] if CGRAPH.exists() else [sys.executable, "-m", "cgraph_cli"]
LECTURE = "input a = -1, b = 3, c = 4\nx = a + b\ny = b + c\nz = x * y\noutput z\n"
WAIT = 180.0  # seconds a step may take on a loaded machine (the test never asserts a time)


# -- refusals --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,needle",
    [
        (["eval", "-e", "z = a * b", "--at", "a=1,b=2", "--watch"], "--watch needs a program FILE"),
        (["explain", "-e", "z = a * b", "--at", "a=1,b=2", "--watch"], "--watch needs a program FILE"),
        (["render", "-e", "z = a * b", "--watch"], "--watch needs a program FILE"),
        (["eval", "-", "--watch"], "--watch needs a program FILE"),
        (["eval", "{prog}", "--watch", "--batch", "{csv}"], "cannot be combined with --batch"),
        (["render", "{prog}", "--watch", "-o", "-"], "cannot write it to standard output (-o -)"),
        (["render", "{prog}", "--watch", "-o", "out.xyz"], "cannot tell the format from 'out.xyz'"),
        (["eval", "{prog}", "--watch", "--format", "xml"], "--format: 'xml' is not one of"),
    ],
)
def test_watch_refuses_what_makes_no_sense(tmp_path, args, needle):
    prog = tmp_path / "p.cg"
    prog.write_text(LECTURE)
    csv = tmp_path / "p.csv"
    csv.write_text("a\n1\n")
    args = [a.format(prog=prog, csv=csv) for a in args]
    r = run_cli(*args, input="z = a\n", cwd=tmp_path, timeout=120)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("error: ") and needle in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.cg", "p.csv"]  # nothing drawn


# -- the loop, in-process ----------------------------------------------------------------------------------------


def test_watch_runs_again_after_a_change_and_goes_on_after_an_error(tmp_path, monkeypatch):
    from cgraph_cli.cli import watch as w
    from cgraph_cli.errors import CgraphError

    prog = tmp_path / "p.cg"
    prog.write_text("z = 1\n")
    seen: list[str] = []

    def run() -> None:
        text = prog.read_text()
        seen.append(text)
        if len(seen) < 3:  # the next save, while the watch waits
            following = "z = broken\n" if len(seen) == 1 else "z = 3\n"
            threading.Timer(0.05, lambda: prog.write_text(following)).start()
        if "broken" in text:
            raise CgraphError("the program is broken")

    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    assert w.watch([str(prog)], run, poll=0.01, settle=0.02, runs=3) == 0
    assert seen == ["z = 1\n", "z = broken\n", "z = 3\n"]
    assert "error: the program is broken" in err.getvalue()


def test_watch_ignores_a_save_that_changes_nothing_and_ends_on_ctrl_c(tmp_path, monkeypatch):
    from cgraph_cli.cli import watch as w

    prog = tmp_path / "p.cg"
    prog.write_text("z = 1\n")
    runs: list[str] = []
    naps: list[float] = []

    def run() -> None:
        runs.append(prog.read_text())
        later = time.time_ns() + 5_000_000_000
        os.utime(prog, ns=(later, later))  # saved again, the same text

    def nap(seconds: float) -> None:  # Ctrl-C after 40 looks at the file (no real signal: no thread to rely on)
        naps.append(seconds)
        if len(naps) >= 40:
            raise KeyboardInterrupt

    monkeypatch.setattr(w.time, "sleep", nap)
    assert w.watch([str(prog)], run, poll=0.01, settle=0.02) == 0  # ended by Ctrl-C, quietly
    assert runs == ["z = 1\n"]  # the touch changed no content: nothing ran again
    assert 0.02 in naps  # the touch was seen (and debounced), then found unchanged


# -- the real command: a subprocess, edited while it watches ------------------------------------------------------


class Watcher:
    """``cgraph ... --watch`` in a subprocess, with its stdout and stderr collected as they come."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        env = dict(os.environ)
        env.pop("CGRAPH_DEBUG", None)
        self.proc = subprocess.Popen(EXE + args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = bytearray()
        self.err = bytearray()
        self.readers = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self.readers:
            t.start()

    @staticmethod
    def _drain(stream, into: bytearray) -> None:
        for chunk in iter(lambda: stream.read1(65536), b""):
            into.extend(chunk)

    def until(self, what: str, condition) -> None:
        end = time.monotonic() + WAIT
        while not condition():
            if self.proc.poll() is not None:
                self.stop()
                pytest.fail(f"cgraph ended (exit {self.proc.returncode}) waiting for {what}: {bytes(self.err)!r}")
            if time.monotonic() > end:
                self.stop()
                pytest.fail(f"no {what} within {WAIT:g} s; stderr: {bytes(self.err)!r}")
            time.sleep(0.05)

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=WAIT)
        for t in self.readers:
            t.join(timeout=30)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _save(path: Path, text: str) -> None:
    """As an editor does: a new file renamed over the old one."""
    tmp = path.with_name(path.name + ".swp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.mark.slow
def test_render_watch_follows_the_file(tmp_path):
    prog = tmp_path / "lecture.cg"
    prog.write_text(LECTURE)
    out = tmp_path / "out.dot"
    w = Watcher(["render", str(prog), "--watch", "-o", str(out)], tmp_path)
    try:
        w.until("first picture", lambda: out.exists() and b"wrote" in w.out)
        first = out.read_text()
        assert "14" in first and "extra" not in first

        _save(prog, LECTURE.replace("z = x * y", "extra = x * y\nz = extra + 1"))
        w.until("picture of the edit", lambda: out.exists() and "extra" in out.read_text())
        assert "15" in out.read_text()  # z = 14 + 1

        _save(prog, "z = (a +\n")
        w.until("the error", lambda: b"error:" in w.err)
        assert b"lecture.cg:1:" in w.err and b"^" in w.err  # FILE:LINE:COL and the caret
        assert w.proc.poll() is None  # still watching
        assert "extra" in out.read_text()  # the last good picture is left as it was

        _save(prog, LECTURE.replace("z = x * y", "fixed = x * y\nz = fixed * 2"))
        w.until("picture of the fix", lambda: out.exists() and "fixed" in out.read_text())
        assert "28" in out.read_text()
    finally:
        code = w.interrupt() if w.proc.poll() is None else w.proc.returncode
    assert code == 0, bytes(w.err)
    assert b"Traceback" not in w.err and b"KeyboardInterrupt" not in w.err
    assert w.out.count(b"wrote ") == 3  # three good saves, three pictures
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lecture.cg", "out.dot"]  # no half-written file


@pytest.mark.slow
def test_eval_watch_prints_the_new_value(tmp_path):
    prog = tmp_path / "lecture.cg"
    prog.write_text(LECTURE)
    w = Watcher(["eval", str(prog), "--watch", "--format", "json"], tmp_path)
    try:
        w.until("first value", lambda: b'"value": 14' in w.out)
        _save(prog, LECTURE.replace("z = x * y", "z = x * y * 3"))
        w.until("the new value", lambda: b'"value": 42' in w.out)
        _save(prog, "z = nope(a)\ninput a = 1\n")
        w.until("the error", lambda: b"error:" in w.err)
        assert w.proc.poll() is None
        _save(prog, LECTURE.replace("z = x * y", "z = x - y"))
        w.until("the value after the fix", lambda: b'"value": -5' in w.out)
    finally:
        code = w.interrupt() if w.proc.poll() is None else w.proc.returncode
    assert code == 0, bytes(w.err)
    assert b"Traceback" not in w.err
    assert b"\x1b[" not in w.out  # piped: no screen clearing, each view appended


@pytest.mark.slow
def test_explain_watch_shows_the_new_steps(tmp_path):
    prog = tmp_path / "lecture.cg"
    prog.write_text(LECTURE)
    w = Watcher(["explain", str(prog), "--watch"], tmp_path)
    try:
        w.until("first explanation", lambda: b"z = x * y" in w.out)
        _save(prog, LECTURE.replace("z = x * y", "z = x + y"))
        w.until("the new explanation", lambda: b"z = x + y" in w.out)
    finally:
        code = w.interrupt() if w.proc.poll() is None else w.proc.returncode
    assert code == 0 and b"Traceback" not in w.err
