"""Nothing lost: interrupts, terminations, closed pipes and unwritable outputs end cleanly.

These run the real ``cgraph`` executable in a subprocess and send it real signals.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import CGRAPH, run_cli, run_inprocess

pytestmark = pytest.mark.slow  # the quick loop (make test-fast) leaves this file out

EXE = [str(CGRAPH)] if CGRAPH.exists() else [sys.executable, "-m", "cgraph_cli"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Large test programs would be cached under ~/.cache: keep them in a temporary folder."""
    monkeypatch.setenv("CGRAPH_CACHE_DIR", str(tmp_path_factory.mktemp("ir-cache")))


def slow_program(folder: Path, n: int = 300) -> Path:
    """A program whose picture takes Graphviz seconds to lay out (about 4 nodes per line)."""
    lines = ["input a = 1, b = 2", "x1 = a + b"] + [f"x{i} = sin(x{i - 1}) * a + b" for i in range(2, n)]
    p = folder / "slow.cg"
    p.write_text("\n".join(lines) + "\n")
    return p


def start(args: list[str], folder: Path, tmp: Path, **kw) -> subprocess.Popen:
    env = dict(os.environ, TMPDIR=str(tmp))
    env.pop("CGRAPH_DEBUG", None)
    return subprocess.Popen(
        EXE + args, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def wait_for_render(proc: subprocess.Popen, tmp: Path, limit: float = 120) -> None:
    """Until the Graphviz child has its scratch folder: the render is under way."""
    end = time.monotonic() + limit
    while not any(tmp.glob("cgraph-render-*")):
        if proc.poll() is not None or time.monotonic() > end:
            out, err = proc.communicate()
            pytest.fail(f"render did not start (exit {proc.returncode}): {err}")
        time.sleep(0.02)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "slow.cg")


@pytest.fixture
def dirs(tmp_path):
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    return work, tmp


@pytest.mark.parametrize(
    "sig,code,group",
    [(signal.SIGINT, 130, False), (signal.SIGINT, 130, True), (signal.SIGTERM, 143, False)],
    ids=["sigint", "ctrl-c-process-group", "sigterm"],
)
def test_interrupted_render_leaves_no_file(dirs, sig, code, group):
    work, tmp = dirs
    prog = slow_program(work)
    proc = start(["render", str(prog), "-o", "out.png", "--max-nodes", "5000"], work, tmp, start_new_session=True)
    wait_for_render(proc, tmp)
    if group:  # what a terminal's Ctrl-C does: the whole process group, Graphviz child included
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and err.strip() == ""
    assert leftovers(work) == []  # no out.png, no .out.png.*.part
    assert list(tmp.iterdir()) == []  # the renderer's scratch folder is gone too


def test_interrupted_steps_leaves_no_partial_frame(dirs):
    work, tmp = dirs
    prog = slow_program(work, 60)
    proc = start(["render", str(prog), "--steps", "frames"], work, tmp)
    wait_for_render(proc, tmp)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    if proc.returncode == 0:  # finished before the signal arrived: every frame is whole
        return
    assert proc.returncode == 130 and "Traceback" not in err
    frames = work / "frames"
    assert not frames.exists() or not [p for p in frames.iterdir() if p.name.endswith(".part")]


def test_interrupted_eval_is_quiet(dirs):
    """SIGINT while a long program is being built and evaluated: exit 130, no traceback."""
    work, tmp = dirs
    prog = work / "long.cg"
    prog.write_text("y0 = a\n" + "\n".join(f"y{i} = sin(y{i - 1}) * a + {i}" for i in range(1, 200_000)) + "\n")
    proc = start(["eval", str(prog), "--at", "a=0.5", "--format", "csv"], work, tmp)
    time.sleep(1.5)  # past start-up, inside parsing or evaluation (or done: then exit 0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 130), err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    if proc.returncode == 130:
        assert err.strip() == ""


def test_sigterm_handler_is_restored_after_main():
    before = signal.getsignal(signal.SIGTERM)
    run_inprocess(["eval", "-e", "z = 1"])
    assert signal.getsignal(signal.SIGTERM) is before


# -- pipes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "json", "table"])
def test_broken_pipe_is_quiet(tmp_path, fmt):
    """`cgraph eval big.cg --all | head -1`: no BrokenPipeError, not even at interpreter shutdown."""
    prog = tmp_path / "big.cg"
    n = 2000 if fmt == "table" else 20000  # well past a pipe's 64 KiB buffer either way
    prog.write_text("\n".join(f"x{i} = a * {i}" for i in range(n)) + f"\nz = x{n - 1}\n")
    env = dict(os.environ)
    env.pop("CGRAPH_DEBUG", None)
    proc = subprocess.Popen(
        EXE + ["eval", str(prog), "--at", "a=2", "--all", "--format", fmt],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, as `head -1` does
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert first
    assert err == "", err
    assert proc.returncode == 0


def test_broken_pipe_through_a_real_shell_pipeline(tmp_path):
    prog = tmp_path / "big.cg"
    prog.write_text("x = randn(400, 400)\nz = sum(x * a)\n")
    exe = " ".join(EXE)
    r = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {exe} eval {prog} --at a=2 --all --format json | head -c 10"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.stdout == '{\n  "outpu'
    assert r.stderr == "" and r.returncode == 0


# -- outputs that cannot be written ----------------------------------------------------------


def test_output_into_a_missing_folder(tmp_path):
    r = run_cli("render", "-e", "z = a * b", "--at", "a=1,b=2", "-o", str(tmp_path / "nope" / "z.png"))
    assert r.returncode == 2 and r.stderr.startswith("error: cannot write") and "does not exist" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("target", ["/proc/cgraph-test.svg", "{tmp}/file.txt/z.svg", "{tmp}"])
def test_output_to_unwritable_paths(tmp_path, target):
    (tmp_path / "file.txt").write_text("x")
    r = run_cli("render", "-e", "z = a * b", "--at", "a=1,b=2", "-o", target.format(tmp=tmp_path), "--format", "svg")
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_output_into_a_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        r = run_cli("render", "-e", "z = a * b", "--at", "a=1,b=2", "-o", str(ro / "z.svg"))
        assert r.returncode == 2 and "cannot write" in r.stderr and "Permission denied" in r.stderr
    finally:
        ro.chmod(0o700)


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    from cgraph_cli import fsutil

    target = tmp_path / "out.csv"
    target.write_text("old")

    def boom(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(fsutil.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        fsutil.atomic_write(target, "new contents")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_atomic_write_permissions_and_special_files(tmp_path):
    from cgraph_cli import fsutil

    target = tmp_path / "a.txt"
    fsutil.atomic_write(target, "hello")
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600
    target.chmod(0o640)
    fsutil.atomic_write(target, "again")
    assert target.stat().st_mode & 0o777 == 0o640 and target.read_text() == "again"
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    fsutil.atomic_write(link, "through the link")
    assert link.is_symlink() and target.read_text() == "through the link"
    fsutil.atomic_write(os.devnull, "discarded")  # a device is written to, never replaced
    assert Path(os.devnull).is_char_device()
