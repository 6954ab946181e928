import contextlib
import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CGRAPH = Path(sys.executable).parent / "cgraph"


def run_cli(*args: str, input: str | None = None, env: dict | None = None, cwd=None, timeout: float = 120):
    """Run the real `cgraph` entry point in a subprocess."""
    e = dict(os.environ)
    e.pop("CGRAPH_DEBUG", None)
    if env:
        e.update(env)
    exe = [str(CGRAPH)] if CGRAPH.exists() else [sys.executable, "-m", "cgraph_cli"]
    return subprocess.run(
        exe + list(args), input=input, capture_output=True, text=True, env=e, cwd=cwd, timeout=timeout
    )


def run_on_pty(args: list[str], env: dict | None = None, cwd=None) -> tuple[int, bytes, bytes]:
    """Run the real `cgraph` with stderr on a pseudo-terminal and stdout piped: (exit code, stdout, what the
    terminal got). The terminal is read while the command runs, so that it never blocks on it."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    e = dict(os.environ)
    e.pop("CGRAPH_DEBUG", None)
    e.update(env or {})
    exe = [str(CGRAPH)] if CGRAPH.exists() else [sys.executable, "-m", "cgraph_cli"]
    proc = subprocess.Popen(exe + args, stdout=subprocess.PIPE, stderr=slave, env=e, cwd=cwd)
    os.close(slave)
    seen = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out = proc.stdout.read()
    proc.wait(timeout=120)
    reader.join(timeout=30)
    os.close(master)
    return proc.returncode, out, bytes(seen)


@pytest.fixture
def cli():
    return run_cli


def run_inproc(
    *args: str, input: str | bytes | None = None, cwd=None, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Call the real entry point ``cgraph_cli.cli.entry.main(args)`` in this process (no interpreter start).

    The one in-process runner of the suite: stdin, stdout (with ``.buffer``, like a real stream) and
    stderr are captured, ``cwd`` and ``env`` are set for the call and restored. Any exception other
    than SystemExit escapes and fails the test (a user would see a traceback)."""
    from cgraph_cli.cli.entry import main

    data = input.encode("utf-8") if isinstance(input, str) else (input or b"")
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    err = io.StringIO()
    saved_env, saved_cwd, saved_stdin = dict(os.environ), os.getcwd(), sys.stdin
    os.environ.pop("CGRAPH_DEBUG", None)
    os.environ.update(env or {})
    code: object = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        sys.stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as e:
                code = e.code
    finally:
        sys.stdin = saved_stdin
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    code = 0 if code is None else code
    assert isinstance(code, int), f"exit code {code!r} is not an int"
    out.flush()
    return subprocess.CompletedProcess(
        list(args), code, out.buffer.getvalue().decode("utf-8", "replace"), err.getvalue()
    )


def run_inprocess(argv: list[str], stdin: bytes = b"") -> tuple[int, str, str]:
    """:func:`run_inproc` as (exit code, stdout, stderr)."""
    r = run_inproc(*argv, input=stdin)
    return r.returncode, r.stdout, r.stderr


def cli_inproc(*args: str) -> tuple[int, str, str]:
    """:func:`run_inproc` as (exit code, stdout, stderr)."""
    return run_inprocess(list(args))


def pytest_terminal_summary(terminalreporter) -> None:
    """Say why the interactive page's browser tests were skipped (no Chromium, chromedriver or selenium)."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "test_html_browser" in r.nodeid]
    if skipped:
        from tests.browser import why_not

        why = why_not() or "see pytest -rs"
        terminalreporter.write_line(f"tests/test_html_browser.py: {len(skipped)} browser tests skipped: {why}")
