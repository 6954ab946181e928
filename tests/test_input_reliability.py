"""Reading inputs reliably (issue 9): every input stream is bounded, values that are not numbers are refused,
control characters in error excerpts are escaped, and old Mac line endings count as line breaks.

The stream tests run the real CLI with its address space capped (so that a regression ends in a failed
assertion, not in an exhausted machine) and under a timeout (so that they fail rather than hang).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import resource
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from cgraph_cli import limits
from cgraph_cli.errors import CgraphError, Source
from cgraph_cli.run.batch import run_batch
from tests.conftest import CGRAPH, run_cli, run_inprocess

MEM_CAP = 2 << 30  # generous: cgraph needs a few hundred MiB; an unbounded read would need far more
TIMEOUT = 120  # a guard against hangs, not a timing assertion
MIB64 = "64 MiB"
LINE_LIMIT = f"{limits.MAX_LINE_CHARS:,}"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CGRAPH_CACHE_DIR", str(tmp_path_factory.mktemp("ir-cache")))


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEM_CAP, MEM_CAP))


def _exe() -> list[str]:
    return [str(CGRAPH)] if CGRAPH.exists() else [sys.executable, "-m", "cgraph_cli"]


def _endless(chunk: bytes) -> Iterator[bytes]:
    block = chunk * max(1, (1 << 20) // len(chunk))
    while True:
        yield block


class Writer(threading.Thread):
    """Writes chunks from a generator into a FIFO (opened here) or a pipe until the reader goes away."""

    def __init__(self, chunks: Iterator[bytes], fifo: Path | None = None, pipe=None) -> None:
        super().__init__(daemon=True)
        self.chunks, self.fifo, self.pipe = chunks, fifo, pipe

    def run(self) -> None:
        try:
            f = self.pipe if self.pipe is not None else open(self.fifo, "wb")  # noqa: SIM115
            with f:
                for chunk in self.chunks:
                    f.write(chunk)
        except (BrokenPipeError, OSError, ValueError):
            pass

    def finish(self) -> None:
        if self.fifo is not None and self.is_alive():  # blocked in open(): give it a reader so that it ends
            try:
                fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
                os.close(fd)
            except OSError:
                pass
        self.join(timeout=10)


def run_capped(args: list[str], *, feed: Iterator[bytes] | None = None, shell: str | None = None, cwd=None):
    """(exit code, stdout, stderr) of the real cgraph; ``feed`` goes to its stdin; ``shell`` runs a bash
    command line instead (for process substitution), with $CGRAPH set."""
    env = dict(os.environ)
    env.pop("CGRAPH_DEBUG", None)
    env["CGRAPH"] = " ".join(_exe())
    cmd = ["bash", "-c", shell] if shell is not None else _exe() + args
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if feed is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        preexec_fn=_cap_memory,
        start_new_session=True,
    )
    writer = Writer(feed, pipe=proc.stdin) if feed is not None else None
    if writer:
        writer.start()
    try:
        out, err = proc.communicate(timeout=TIMEOUT) if writer is None else _wait(proc)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of this run (yes, a stuck cgraph)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        if writer:
            writer.join(timeout=10)
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _wait(proc) -> tuple[bytes, bytes]:
    """stdout and stderr while a writer thread owns stdin (communicate() would write to it too)."""
    res: dict[str, bytes] = {}
    threads = [
        threading.Thread(target=lambda k=k, s=s: res.__setitem__(k, s.read()), daemon=True)
        for k, s in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for t in threads:
        t.start()
    proc.wait(timeout=TIMEOUT)
    for t in threads:
        t.join(timeout=TIMEOUT)
    return res.get("out", b""), res.get("err", b"")


def refused(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 2, (code, out[:500], err[:2000])
    assert err.startswith("error: ") and "Traceback" not in err, err[:2000]
    assert "out of memory" not in err
    for n in needles:
        assert n in err, (n, err[:2000])


@pytest.fixture
def fifo(tmp_path):
    """A FIFO and a way to feed it from a thread; the thread is always finished."""
    writers: list[Writer] = []

    def make(chunks: Iterator[bytes], name: str = "in.fifo") -> str:
        p = tmp_path / name
        os.mkfifo(p)
        w = Writer(chunks, fifo=p)
        w.start()
        writers.append(w)
        return str(p)

    yield make
    for w in writers:
        w.finish()


# -- 5. unbounded reads: programs ------------------------------------------------------------------------------------


def test_program_from_dev_zero_is_refused_at_the_size_limit():
    refused(*run_capped(["eval", "/dev/zero", "--format", "json"]), "/dev/zero is too large", MIB64)


def test_program_from_an_endless_fifo_is_refused(fifo):
    path = fifo(_endless(b"z = 1\n"))
    refused(*run_capped(["eval", path, "--format", "json"]), f"{path} is too large", MIB64)


def test_program_from_endless_process_substitution_is_refused():
    code, out, err = run_capped([], shell='exec $CGRAPH eval <(yes "z = 1") --format json')
    refused(code, out, err, "is too large", MIB64)


def test_program_from_endless_stdin_is_refused():
    refused(*run_capped(["eval", "-", "--format", "json"], feed=_endless(b"z = 1\n")), "<stdin> is too large", MIB64)


def test_a_program_from_a_fifo_within_the_limit_works(fifo):
    path = fifo(iter([b"z = a * 2\n"]))
    code, out, err = run_capped(["eval", path, "--at", "a=3", "--format", "json"])
    assert code == 0, err
    assert json.loads(out)["value"] == 6.0


def test_bounded_read_reads_in_chunks_and_at_most_limit_plus_one():
    from cgraph_cli.fsutil import read_bounded

    class Counting(io.RawIOBase):
        def __init__(self) -> None:
            self.asked: list[int] = []

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            self.asked.append(len(b))
            b[:] = b"\0" * len(b)
            return len(b)

    src = Counting()
    data = read_bounded(src, 10 << 20, chunk=1 << 20)
    assert len(data) == (10 << 20) + 1
    assert max(src.asked) <= 1 << 20
    assert read_bounded(io.BytesIO(b"abc"), 3) == b"abc"
    assert read_bounded(io.BytesIO(b"abcd"), 3) == b"abcd"  # limit + 1: the caller refuses it


# -- 5. unbounded reads: --at-file -----------------------------------------------------------------------------------


def test_at_file_from_dev_zero_is_refused():
    refused(
        *run_capped(["eval", "-e", "z = a * 2", "--at-file", "/dev/zero", "--format", "json"]),
        "--at-file: /dev/zero is too large",
        MIB64,
    )


def test_at_file_from_yes_is_refused():
    code, out, err = run_capped([], shell="exec $CGRAPH eval -e 'z = a * 2' --at-file <(yes) --format json")
    refused(code, out, err, "--at-file:", "is too large", MIB64)


def test_at_file_json_from_a_fifo_works(fifo):
    path = fifo(iter([b'{"a": 3}']))
    code, out, err = run_capped(["eval", "-e", "z = a * 2", "--at-file", path, "--format", "json"])
    assert code == 0, err
    assert json.loads(out)["value"] == 6.0


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_at_file_npz_from_a_fifo_works(fifo):
    path = fifo(iter([_npz_bytes(a=np.array([1.0, 2.0]))]), name="values.npz")
    code, out, err = run_capped(["eval", "-e", "z = sum(a * 2)", "--at-file", path, "--format", "json"])
    assert code == 0, err
    assert json.loads(out)["value"] == 6.0


def test_at_file_npz_from_process_substitution_works(tmp_path):
    """``--at-file <(cat values.npz)``: the name is /dev/fd/N, the content says it is an archive."""
    p = tmp_path / "v.npz"
    p.write_bytes(_npz_bytes(a=np.array(4.0)))
    code, out, err = run_capped([], shell=f"exec $CGRAPH eval -e 'z = a * 2' --at-file <(cat '{p}') --format json")
    assert code == 0, err
    assert json.loads(out)["value"] == 8.0


def test_at_file_npz_fifo_of_endless_garbage_is_refused_at_once(fifo):
    path = fifo(_endless(b"\0"), name="values.npz")
    refused(
        *run_capped(["eval", "-e", "z = a * 2", "--at-file", path, "--format", "json"]),
        "is not a .npz archive",
    )


def test_at_file_npz_stream_is_bounded_by_the_memory_limit(fifo):
    """An endless archive-looking stream stops at --max-memory (plus a little for the archive's headers)."""
    path = fifo(itertools.chain([b"PK\x03\x04"], _endless_n(b"\0", 40)), name="values.npz")
    refused(
        *run_capped(["eval", "-e", "z = a * 2", "--at-file", path, "--max-memory", "16M", "--format", "json"]),
        "is too large",
        "--max-memory",
    )


def _endless_n(chunk: bytes, mib: int) -> Iterator[bytes]:
    for _ in range(mib):
        yield chunk * (1 << 20)


# -- 5. unbounded reads: --batch -------------------------------------------------------------------------------------


def test_batch_from_dev_zero_is_refused_at_the_line_limit():
    refused(
        *run_capped(["eval", "-e", "z = y * 2", "--batch", "/dev/zero"]),
        "/dev/zero:1: the line is too long",
        LINE_LIMIT,
    )


def test_batch_endless_line_without_newline_is_refused():
    code, out, err = run_capped([], shell="exec $CGRAPH eval -e 'z = y * 2' --batch <(yes | tr -d '\\n')")
    refused(code, out, err, ":1: the line is too long", LINE_LIMIT)


def test_batch_endless_row_after_the_header_is_refused(fifo):
    path = fifo(itertools.chain([b"a\n1\n2\n"], _endless(b"1")))
    code, out, err = run_capped(["eval", "-e", "z = a * 2", "--batch", path])
    refused(code, out, err, f"{path}:4: the line is too long", LINE_LIMIT)
    assert out == ""  # nothing written half-way: the bad line is in the first chunk


def test_batch_endless_yes_is_not_a_number():
    code, out, err = run_capped([], shell="exec $CGRAPH eval -e 'z = y * 2' --batch <(yes)")
    refused(code, out, err, ":2:1: 'y' in column 'y' is not a number")


def test_batch_endless_yes_is_not_an_input():
    code, out, err = run_capped([], shell="exec $CGRAPH eval -e 'z = a * 2' --batch <(yes)")
    refused(code, out, err, "column 'y' is not an input")


def test_batch_endless_blank_lines_before_the_header_are_refused():
    code, out, err = run_capped([], shell="exec $CGRAPH eval -e 'z = a * 2' --batch <(yes '')")
    refused(code, out, err, "no header row", LINE_LIMIT)


def test_batch_from_endless_stdin_is_refused():
    refused(*run_capped(["eval", "-e", "z = y * 2", "--batch", "-"], feed=_endless(b"\0")), "<stdin>:1:", "too long")


def test_batch_line_limit_does_not_depend_on_where_reads_end(tmp_path, monkeypatch):
    """A line over the limit is refused whether it falls inside one read or across two."""
    import cgraph_cli.run.batch as batch

    monkeypatch.setattr(limits, "MAX_LINE_CHARS", 50)
    for read_size in (7, 64, 1000):
        monkeypatch.setattr(batch, "_READ_BYTES", read_size)
        p = tmp_path / "p.csv"
        p.write_text("a\n1\n" + "1" * 60 + "\n2\n")
        with pytest.raises(CgraphError, match=r"p.csv:3: the line is too long"):
            run_batch(Source("z = a * 2", "p.cg"), str(p), {}, out=io.StringIO())
        p.write_text("a\n1\n" + "1" * 50 + "\n2\n")  # at the limit: fine
        buf = io.StringIO()
        run_batch(Source("z = a * 2", "p.cg"), str(p), {}, out=buf)
        assert buf.getvalue().splitlines()[2].startswith("1" * 50 + ",")


def test_batch_long_quoted_cell_is_a_clear_error(tmp_path):
    """Python's csv module refuses fields over 128 KiB with its own exception: a clear error instead."""
    p = tmp_path / "p.csv"
    p.write_text('a\n"' + "1" * 200_000 + '"\n')
    code, out, err = run_inprocess(["eval", "-e", "z = a * 2", "--batch", str(p)])
    assert code in (0, 2) and "internal error" not in err and "Traceback" not in err, err


@pytest.mark.parametrize("read_size", [3, 4, 5, 1 << 22])
@pytest.mark.parametrize("eol", ["\r", "\r\n", "\n"])
def test_batch_line_endings_cr_crlf_lf_wherever_reads_end(tmp_path, monkeypatch, eol, read_size):
    """A lone CR is a line break (old Mac files), CRLF is one, even when a read ends between its CR and LF;
    line numbers in errors agree."""
    import cgraph_cli.run.batch as batch

    monkeypatch.setattr(batch, "_READ_BYTES", read_size)
    p = tmp_path / "p.csv"
    p.write_bytes(eol.join(["a,b", "1,2", "3,4", "5,6", ""]).encode())
    buf = io.StringIO()
    run_batch(Source("z = a * b", "p.cg"), str(p), {}, out=buf)
    assert buf.getvalue().splitlines() == [
        "a,b,z,dz/da,dz/db",
        "1,2,2.0,2.0,1.0",
        "3,4,12.0,4.0,3.0",
        "5,6,30.0,6.0,5.0",
    ]
    p.write_bytes(eol.join(["a,b", "1,2", "", "3,x", ""]).encode())
    with pytest.raises(CgraphError, match=r"p.csv:4:2: 'x' in column 'b' is not a number"):
        run_batch(Source("z = a * b", "p.cg"), str(p), {}, out=io.StringIO())


# -- 10. eval --batch --strict ---------------------------------------------------------------------------------------


def _nonfinite_csv(tmp_path) -> Path:
    p = tmp_path / "pts.csv"
    p.write_text("a\n1\n0\n-1\n")
    return p


def test_batch_strict_returns_1_for_nonfinite_rows(tmp_path, capsys):
    p = _nonfinite_csv(tmp_path)
    buf = io.StringIO()
    code = run_batch(Source("z = log(a)", "p.cg"), str(p), {}, out=buf, strict=True)
    assert code == 1
    assert len(buf.getvalue().splitlines()) == 4  # header and every row are still written
    err = capsys.readouterr().err
    assert f"warning: {p}:3:" in err and "'z'" in err
    assert run_batch(Source("z = log(a)", "p.cg"), str(p), {}, out=io.StringIO()) == 0
    p.write_text("a\n1\n2\n")
    assert run_batch(Source("z = log(a)", "p.cg"), str(p), {}, out=io.StringIO(), strict=True) == 0


def test_batch_warning_names_the_first_nonfinite_column(tmp_path, capsys):
    p = tmp_path / "pts.csv"
    p.write_text("a\n1\n0\n")
    run_batch(Source("z = sqrt(a)", "p.cg"), str(p), {}, out=io.StringIO())
    err = capsys.readouterr().err
    assert f"{p}:3:" in err and "'dz/da'" in err  # sqrt(0) = 0 is finite; its derivative is not


def test_cli_batch_strict_exits_1(tmp_path):
    p = _nonfinite_csv(tmp_path)
    r = run_cli("eval", "-e", "z = log(a)", "--batch", str(p), "--strict")
    assert r.returncode == 1, r.stderr
    assert len(r.stdout.splitlines()) == 4 and f"{p}:3:" in r.stderr
    assert run_cli("eval", "-e", "z = log(a)", "--batch", str(p)).returncode == 0


# -- 16. control characters in excerpts, lone CR line breaks ---------------------------------------------------------


def test_control_characters_are_escaped_in_error_excerpts(tmp_path):
    p = tmp_path / "evil.cg"
    p.write_bytes("y = 1\nz = 1 +\x1b]52;c;aGVsbG8=\x07 \u202e 2\n".encode())
    code, out, err = run_inprocess(["eval", str(p)])
    assert code == 2
    for raw in ("\x1b", "\x07", "\u202e"):
        assert raw not in err
    lines = err.splitlines()
    excerpt = next(ln for ln in lines if ln.startswith("  2 | "))
    caret = lines[lines.index(excerpt) + 1]
    assert "\\x1b]52;c;aGVsbG8=\\x07 \\u202e 2" in excerpt
    # the caret sits under the escaped ESC
    assert excerpt[caret.index("^") : caret.index("^") + 4] == "\\x1b"
    assert caret.count("^") == 4


def test_caret_after_escaped_characters_points_at_the_right_spot():
    code, out, err = run_inprocess(["eval", "-e", "z = 1 +\f\f $"])  # a form feed is white space
    assert code == 2 and "\f" not in err and "\\x0c\\x0c $" in err
    lines = err.splitlines()
    excerpt = next(ln for ln in lines if ln.startswith("  1 | "))
    caret = lines[lines.index(excerpt) + 1]
    assert excerpt[caret.index("^")] == "$"


def test_control_characters_in_messages_are_escaped():
    code, out, err = run_inprocess(["eval", "no\x1b[31mfile\u202e.cg"])
    assert code == 2 and "\x1b" not in err and "\u202e" not in err
    assert "\\x1b[31m" in err


def test_tabs_and_ordinary_unicode_are_kept_in_excerpts():
    code, out, err = run_inprocess(["eval", "-e", "é = 1\n\tz = ∂ + 1"])
    assert code == 2
    assert "\\u" not in err and "\\x" not in err.split("\n", 1)[1]


def test_lone_cr_is_a_line_break(tmp_path):
    p = tmp_path / "mac.cg"
    p.write_bytes(b"a = 1\ry = a + 1\rz = y * $\r")
    code, out, err = run_inprocess(["eval", str(p)])
    assert code == 2
    assert err.startswith(f"error: {p}:3:9:"), err
    assert "  3 | z = y * $" in err
    p.write_bytes(b"a = 1\ry = a + 1\rz = y * 2\r")
    code, out, err = run_inprocess(["eval", str(p), "--format", "json"])
    assert code == 0, err
    assert json.loads(out)["value"] == 4.0


def test_crlf_stays_one_line_break_and_mixed_endings_count_right(tmp_path):
    p = tmp_path / "mixed.cg"
    p.write_bytes(b"a = 1\r\ny = a + 1\rw = 2\nz = y * $\r\n")
    code, out, err = run_inprocess(["eval", str(p)])
    assert code == 2 and err.startswith(f"error: {p}:4:9:"), err
    code, out, err = run_inprocess(["eval", "-"], stdin=b"a = 1\r\rz = a * $\r")
    assert code == 2 and err.startswith("error: <stdin>:3:9:"), err
    code, out, err = run_inprocess(["eval", "-e", "a = 1\rz = a * $"])
    assert code == 2 and err.startswith("error: <expr>:2:9:"), err


# -- 17. values that are not numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "array,dtype_word",
    [
        (np.array([1 + 2j]), "complex128"),
        (np.array("2020-01-01", dtype="datetime64[D]"), "datetime64[D]"),
        (np.array([1, 2], dtype="timedelta64[s]"), "timedelta64[s]"),
        (np.array(["x"]), "<U1"),
        (np.array([b"x"]), "|S1"),
        (np.array(True), "bool"),
    ],
)
def test_npz_with_a_non_real_dtype_is_refused(tmp_path, array, dtype_word):
    p = tmp_path / "v.npz"
    np.savez(p, w=array)
    code, out, err = run_inprocess(["eval", "-e", "z = sum(w) * 2", "--at-file", str(p), "--format", "json"])
    assert code == 2, (out, err)
    assert err.startswith("error: --at-file:") and "'w'" in err and dtype_word in err, err
    assert "Warning" not in err


def test_npz_object_array_is_refused_naming_it(tmp_path):
    p = tmp_path / "v.npz"
    np.savez(p, w=np.array([1, None], dtype=object), allow_pickle=True)
    code, out, err = run_inprocess(["eval", "-e", "z = sum(w) * 2", "--at-file", str(p), "--format", "json"])
    assert code == 2 and "'w'" in err and "object" in err, err


def test_npz_of_integers_and_floats_still_works(tmp_path):
    p = tmp_path / "v.npz"
    np.savez(p, a=np.array([1, 2], dtype=np.int32), b=np.array(0.5, dtype=np.float32))
    code, out, err = run_inprocess(["eval", "-e", "z = sum(a) * b", "--at-file", str(p), "--format", "json"])
    assert code == 0, err
    assert json.loads(out)["value"] == 1.5


@pytest.mark.parametrize(
    "value,word",
    [
        ("true", "true"),
        ("false", "false"),
        ('"1.5"', "string"),
        ("null", "null"),
        ("[1, true]", "true"),
        ("[[1, 2], [3, null]]", "null"),
        ('{"b": 1}', "object"),
        ('[1, "2"]', "string"),
    ],
)
def test_json_values_that_are_not_numbers_are_refused(tmp_path, value, word):
    p = tmp_path / "v.json"
    p.write_text('{"a": ' + value + "}")
    code, out, err = run_inprocess(["eval", "-e", "z = sum(a) * 2", "--at-file", str(p), "--format", "json"])
    assert code == 2, (out, err)
    assert err.startswith("error: --at-file:") and "'a'" in err and word in err, err


def test_json_huge_integer_is_infinite_like_at(tmp_path):
    p = tmp_path / "v.json"
    p.write_text('{"a": 1' + "0" * 400 + "}")
    code, out, err = run_inprocess(["eval", "-e", "z = a * 2", "--at-file", str(p), "--format", "json"])
    code2, out2, _ = run_inprocess(["eval", "-e", "z = a * 2", "--at", "a=1" + "0" * 400, "--format", "json"])
    assert code == code2 == 0 and "internal error" not in err
    assert json.loads(out)["value"] == json.loads(out2)["value"] == "Infinity"


def test_json_numbers_nan_and_nested_lists_still_work(tmp_path):
    p = tmp_path / "v.json"
    p.write_text('{"a": [[1, 2.5], [3, -4]], "b": 2, "c": []}')
    code, out, err = run_inprocess(["eval", "-e", "z = sum(a) * b + sum(c)", "--at-file", str(p), "--format", "json"])
    assert code == 0, err
    assert json.loads(out)["value"] == 5.0


# -- 18. a UTF-8 BOM in --at-file JSON -------------------------------------------------------------------------------


def test_json_with_a_bom_is_read(tmp_path):
    p = tmp_path / "v.json"
    p.write_bytes(b'\xef\xbb\xbf{"a": 3}')
    code, out, err = run_inprocess(["eval", "-e", "z = a * 2", "--at-file", str(p), "--format", "json"])
    assert code == 0, err
    assert json.loads(out)["value"] == 6.0


def test_json_not_utf8_is_a_clear_error(tmp_path):
    p = tmp_path / "v.json"
    p.write_bytes(b'{"a": 3, "\xff": 1}')
    code, out, err = run_inprocess(["eval", "-e", "z = a * 2", "--at-file", str(p), "--format", "json"])
    assert code == 2 and "--at-file:" in err and "UTF-8" in err, err
