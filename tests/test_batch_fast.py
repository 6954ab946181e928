"""``--batch`` at C speed (issue 16 item 4): the fast reader (orjson's C parser behind a one-pass check of the
chunk's shape), the fast formatter (``fmt.csv_row_tails``, orjson's C encoder) and chunks spread over worker
processes, each checked against the exact path it replaces: ``float()`` per cell, ``repr`` per number, one
process. Output bytes, warnings and errors (with their line and column) must be the same whichever path runs.
"""

from __future__ import annotations

import io
import random

import numpy as np
import pytest

from cgraph_cli import fmt
from cgraph_cli.errors import CgraphError, Source
from cgraph_cli.run import batch
from tests.conftest import EXAMPLES, run_cli
from tests.test_batch import KINKY, LECTURE, row_by_row

# -- cells: every spelling float() reads, the ones JSON reads too and the ones it does not ------------------------

JSON_CELLS = ["0", "-0.0", "1", "12", "-7", "2.5", "1e3", "1E5", "1e+5", "1e-7", "-1.5e-300", "5e-324", "1e-400"]
JSON_CELLS += ["1.7976931348623157e308", "123456789012345678901234567890", "12345678901234567", "0.1000000000000000055"]
OTHER_CELLS = ["+1", ".5", "5.", "-0", " 2 ", "1_0", "inf", "-inf", "nan", "Infinity", "1e999", "-1e999", "00.5"]


def _random_cell(rng: random.Random) -> str:
    k = rng.random()
    if k < 0.35:
        return repr(round(rng.uniform(-5, 5), rng.randint(0, 6)))
    if k < 0.55:
        return repr(rng.gauss(0, 1) * 10.0 ** rng.randint(-320, 300))
    if k < 0.7:
        return f"{rng.gauss(0, 1) * 10.0 ** rng.randint(-12, 20):.{rng.randint(1, 25)}g}"
    if k < 0.8:
        return str(rng.randint(-(10**20), 10**20))
    return rng.choice(JSON_CELLS)


def _csv(header: list[str], rows: list[list[str]], ending: str = "\n") -> str:
    return ending.join([",".join(header)] + [",".join(r) for r in rows]) + ending


def _run(program: str, text: str, tmp_path, *, dtype: str = "float64", at: dict | None = None) -> tuple[str, list]:
    path = tmp_path / "p.csv"
    path.write_bytes(text.encode())
    out = io.StringIO()
    warnings: list[str] = []
    given = {k: np.array(v) for k, v in (at or {}).items()}
    batch.run_batch(Source(program, "p.cg"), str(path), given, dtype=dtype, out=out, warn=warnings.append)
    return out.getvalue(), warnings


def _exact(monkeypatch):
    """Every chunk through the exact reader (float() per cell, as before the fast one)."""
    monkeypatch.setattr(batch, "_read_fast", lambda body, ncols: None)


def _small_chunks(monkeypatch, rows: int = 5, read: int = 64, workers: int = 1) -> None:
    monkeypatch.setattr(batch, "CHUNK_ROWS", rows)
    monkeypatch.setattr(batch, "_READ_BYTES", read)
    monkeypatch.setattr(batch, "WORKERS", workers)
    monkeypatch.setattr(batch, "PARALLEL_MIN_CHUNKS", 1)


# -- the fast reader -----------------------------------------------------------------------------------------------


def test_fast_reader_is_float_bit_for_bit_on_random_cells() -> None:
    rng = random.Random(5)
    rows = [[_random_cell(rng) for _ in range(3)] for _ in range(20_000)]
    body = "".join(",".join(r) + "\n" for r in rows).encode()
    got = batch._read_fast(body, 3)
    assert got is not None
    want = np.array([[float(c) for c in r] for r in rows])
    assert got.shape == (20_000, 3)
    assert (got.view(np.int64) == want.view(np.int64)).all()  # the same doubles, signs of zero included


@pytest.mark.parametrize("cell", OTHER_CELLS + ["", "1,", '"1"', "1 2", "0x10", "１"])
def test_fast_reader_leaves_other_cells_to_the_exact_path(cell: str) -> None:
    text = f"1,2\n{cell},3\n4,5\n"
    assert batch._read_fast(text.encode(), 2) is None


@pytest.mark.parametrize("body", ["1,2\n3\n", "1\n2,3\n", "1,2,3\n4\n", "1,2\n\n3,4\n", "\n1,2\n", "1,2\n3,4"])
def test_fast_reader_refuses_ragged_or_blank_lines(body: str) -> None:
    assert batch._read_fast(body.encode(), 2) is None


def test_fast_reader_takes_minus_zero_only_with_a_point_or_exponent() -> None:
    assert batch._read_fast(b"1e-0,-0.0\n-0e0,2\n", 2) is not None
    assert batch._read_fast(b"1,2\n3,-0\n", 2) is None
    assert batch._read_fast(b"-0,2\n", 2) is None


# -- fast path and exact path give the same bytes -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("program", [LECTURE, KINKY], ids=["lecture", "kinky"])
def test_fast_path_bytes_equal_the_exact_path(tmp_path, monkeypatch, program: str, dtype: str) -> None:
    rng = random.Random(hash((program, dtype)) % 1000)
    header = ["a", "b", "c"] if program is LECTURE else ["a", "b"]
    rows = [[_random_cell(rng) for _ in header] for _ in range(3000)]
    text = _csv(header, rows)
    fast, fast_warn = _run(program, text, tmp_path, dtype=dtype)
    _exact(monkeypatch)
    exact, exact_warn = _run(program, text, tmp_path, dtype=dtype)
    assert fast == exact
    assert fast_warn == exact_warn
    assert fast.count("\n") == len(rows) + 1


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fast_path_equals_eval_row_by_row(tmp_path, dtype: str) -> None:
    """An independent reference: the one-point `eval` path, its CSV cells, for every row."""
    rng = random.Random(11)
    rows = [[_random_cell(rng) for _ in range(2)] for _ in range(60)]
    rows += [["-0.0", "1e-7"], ["1e300", "-1e300"], ["5e-324", "0"], ["1e-5", "3.4e38"], ["2", "0"]]
    got, _ = _run(KINKY, _csv(["a", "b"], rows), tmp_path, dtype=dtype)
    assert got.split("\n", 1)[1] == row_by_row(KINKY, ["a", "b"], rows, {}, dtype=dtype)


def test_non_finite_cells_and_results_match_the_exact_path(tmp_path, monkeypatch) -> None:
    rows = [["1", "2", "3"], ["inf", "1", "2"], ["nan", "0", "0"], ["1e308", "1e308", "1e308"], ["-inf", "2", "3"]]
    rows += [["4", "5", "6"], ["-0", "0.0", "-0.0"]]
    text = _csv(["a", "b", "c"], rows)
    fast, fast_warn = _run(LECTURE, text, tmp_path)
    _exact(monkeypatch)
    exact, exact_warn = _run(LECTURE, text, tmp_path)
    assert fast == exact and fast_warn == exact_warn
    assert "NaN" in fast and ",inf," in fast
    path = tmp_path / "p.csv"
    assert fast_warn == [f"warning: {path}:3: a value or gradient is not finite (first such row; column 'z')"]


# -- the formatter: exactly repr --------------------------------------------------------------------------------


def _repr_rows(table: np.ndarray) -> list[bytes]:
    return [("," + ",".join(fmt.csv_number(x) for x in row) + "\n").encode() for row in table]


@np.errstate(over="ignore")
def _random64(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = n // 4
    return np.concatenate(
        [
            np.frombuffer(rng.bytes(8 * k), dtype=np.float64),  # any bit pattern: NaNs, infinities, subnormals
            rng.standard_normal(k) * 10.0 ** rng.integers(-320, 309, k),
            rng.standard_normal(k) * 10.0 ** rng.integers(-12, 20, k),  # where the spelling switches
            rng.uniform(-5, 5, n - 3 * k).round(3),
        ]
    )


@np.errstate(over="ignore")
def _random32(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = n // 2
    return np.concatenate(
        [
            np.frombuffer(rng.bytes(4 * k), dtype=np.float32),
            (rng.standard_normal(n - k) * 10.0 ** rng.integers(-46, 39, n - k)).astype(np.float32),
        ]
    )


EDGES = [0.0, -0.0, 1.0, 0.1, 1e-4, 9.999999e-5, 1e-5, 1e-9, 9.9999999e-10, 1e-10, 1e15, 1e16, 9999999999999998.0]
EDGES += [1e12, 1e13, 1e17, 5e-324, 1.7976931348623157e308, float("nan"), float("inf"), -float("inf")]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("width", [1, 4])
def test_row_tails_are_repr_on_edges(dtype, width: int) -> None:
    with np.errstate(over="ignore"):
        x = np.array(EDGES + [-e for e in EDGES], dtype=dtype)
        x = np.concatenate([x, np.nextafter(x, np.inf), np.nextafter(x, -np.inf)]).astype(dtype)
    x = x[: len(x) // width * width].reshape(-1, width)
    assert fmt.csv_row_tails(x) == _repr_rows(x)


def test_row_tails_are_repr_on_random_numbers() -> None:
    x = _random64(40_000, 1).reshape(-1, 4)
    assert fmt.csv_row_tails(x) == _repr_rows(x)
    y = _random32(40_000, 2).reshape(-1, 2)
    assert fmt.csv_row_tails(y) == _repr_rows(y)


@pytest.mark.slow
def test_row_tails_are_repr_on_a_million_random_float64() -> None:
    x = _random64(1_000_000, 3).reshape(-1, 4)
    want = [("," + ",".join(map(repr, row)) + "\n").encode() for row in x.tolist()]
    want = [w.replace(b"nan", b"NaN") for w in want]
    assert fmt.csv_row_tails(x) == want


@pytest.mark.slow
def test_row_tails_are_repr_on_a_million_random_float32() -> None:
    """float32 numbers as their own shortest text (numpy's str of the float32), spelt as repr spells it."""
    y = _random32(1_000_000, 4).reshape(-1, 4)
    want = [("," + ",".join(repr(float(str(v))) for v in row) + "\n").encode() for row in y]
    want = [w.replace(b"nan", b"NaN") for w in want]
    assert fmt.csv_row_tails(y) == want


def test_this_orjson_spells_like_repr_and_the_fallback_agrees(monkeypatch) -> None:
    fmt._fast_ok = None
    assert fmt._orjson_spells_like_repr()  # else every batch would take the slow formatter
    x = _random64(4000, 5).reshape(-1, 4)
    fast = fmt.csv_row_tails(x)
    monkeypatch.setattr(fmt, "_fast_ok", False)
    assert fmt.csv_row_tails(x) == fast


def test_row_tails_of_other_shapes() -> None:
    assert fmt.csv_row_tails(np.zeros((0, 3))) == []
    assert fmt.csv_row_tails(np.array([[1.0], [2.5]])) == [b",1.0\n", b",2.5\n"]
    assert fmt.csv_row_tails(np.array([[1.0, 2.0]])[:, ::-1]) == [b",2.0,1.0\n"]  # not C-contiguous
    with pytest.raises(ValueError):
        fmt.csv_row_tails(np.zeros(3))


# -- chunks, reads and worker processes ----------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("read", [1, 7, 64])
def test_rows_split_across_reads_and_chunks(tmp_path, monkeypatch, ending: str, read: int) -> None:
    rng = random.Random(read)
    rows = [[_random_cell(rng) for _ in range(3)] for _ in range(200)]
    text = _csv(["a", "b", "c"], rows, ending)
    whole, whole_warn = _run(LECTURE, text, tmp_path)
    _small_chunks(monkeypatch, rows=3, read=read)
    pieces, pieces_warn = _run(LECTURE, text, tmp_path)
    assert pieces == whole and pieces_warn == whole_warn


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_worker_processes_give_the_same_bytes_and_warning(tmp_path, monkeypatch, dtype: str) -> None:
    rng = random.Random(7)
    rows = [[_random_cell(rng) for _ in range(2)] for _ in range(2000)]
    rows[1500] = ["0", "-0"]  # a chunk the exact reader takes, among fast ones
    rows[700][1] = "inf"
    text = _csv(["a", "b"], rows)
    _small_chunks(monkeypatch, rows=100, read=512, workers=1)
    one, one_warn = _run(KINKY, text, tmp_path, dtype=dtype)
    monkeypatch.setattr(batch, "WORKERS", 2)
    calls = []
    real = batch._in_parallel
    monkeypatch.setattr(batch, "_in_parallel", lambda *a: calls.append(1) or real(*a))
    two, two_warn = _run(KINKY, text, tmp_path, dtype=dtype)
    assert calls, "the chunks did not go to worker processes"
    assert two == one and two_warn == one_warn
    assert one_warn  # the inf row


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("where", [3, 250, 1999])
def test_a_bad_cell_is_the_exact_error_after_the_rows_before_it(tmp_path, monkeypatch, workers: int, where: int):
    rows = [[str(i), str(i % 7), "1.5"] for i in range(2000)]
    rows[where][1] = "x1"
    path = tmp_path / "p.csv"
    path.write_text(_csv(["a", "b", "c"], rows))
    _small_chunks(monkeypatch, rows=50, read=400, workers=workers)
    out = io.StringIO()
    with pytest.raises(CgraphError) as e:
        batch.run_batch(Source(LECTURE, "p.cg"), str(path), {}, out=out)
    assert str(e.value) == f"{path}:{where + 2}:2: 'x1' in column 'b' is not a number"
    written = out.getvalue().splitlines()
    assert len(written) <= where + 1  # the header and at most the rows before the bad one
    good = _run(LECTURE, _csv(["a", "b", "c"], rows[:where]), tmp_path)[0].splitlines()
    assert written == good[: len(written)]


def test_a_line_too_long_after_many_chunks_in_worker_processes(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(batch.limits, "MAX_LINE_CHARS", 40)
    rows = [[str(i), "2", "3"] for i in range(300)]
    rows[260] = ["1" * 50, "2", "3"]
    path = tmp_path / "p.csv"
    path.write_text(_csv(["a", "b", "c"], rows))
    _small_chunks(monkeypatch, rows=20, read=100, workers=2)
    with pytest.raises(CgraphError) as e:
        batch.run_batch(Source(LECTURE, "p.cg"), str(path), {}, out=io.StringIO())
    assert ":262" in str(e.value) and "40" in str(e.value).replace(",", "")


@pytest.mark.slow
def test_cli_with_two_workers_writes_what_one_writes(tmp_path) -> None:
    """End to end (stdout written as bytes): 100,000 rows, several chunks, one or two worker processes."""
    rng = np.random.default_rng(8)
    vals = np.round(rng.uniform(-5, 5, size=(100_000, 3)), 4)
    pts = tmp_path / "pts.csv"
    pts.write_text("a,b,c\n" + "\n".join(",".join(map(repr, r)) for r in vals.tolist()) + "\n")
    args = ("eval", str(EXAMPLES / "lecture.cg"), "--batch", str(pts))
    one = run_cli(*args, env={"CGRAPH_BATCH_WORKERS": "1"})
    two = run_cli(*args, env={"CGRAPH_BATCH_WORKERS": "2"})
    assert one.returncode == two.returncode == 0, one.stderr + two.stderr
    assert one.stdout == two.stdout
    a, b, c = vals.T
    x, y = a + b, b + c
    want = np.stack([x * y, y, y + x, x], axis=1)
    got = np.array([[float(v) for v in line.split(",")[3:]] for line in one.stdout.splitlines()[1:]])
    assert (got == want).all()


def test_cli_bad_worker_count_is_an_error(tmp_path) -> None:
    pts = tmp_path / "pts.csv"
    pts.write_text("a,b,c\n1,2,3\n")
    r = run_cli("eval", str(EXAMPLES / "lecture.cg"), "--batch", str(pts), env={"CGRAPH_BATCH_WORKERS": "two"})
    assert r.returncode == 2
    assert "CGRAPH_BATCH_WORKERS='two' is not a number of processes" in r.stderr


@pytest.mark.slow
def test_cli_bad_cell_late_in_the_file_with_worker_processes(tmp_path) -> None:
    """The workers write the rows to stdout themselves, in turn: the rows before the bad one, then the error."""
    rows = [f"{i % 97},{i % 13}.5,-{i % 7}" for i in range(80_000)]
    rows[75_000] = "1,2,abc"
    pts = tmp_path / "pts.csv"
    pts.write_text("a,b,c\n" + "\n".join(rows) + "\n")
    args = ("eval", str(EXAMPLES / "lecture.cg"), "--batch", str(pts))
    one = run_cli(*args, env={"CGRAPH_BATCH_WORKERS": "1"})
    two = run_cli(*args, env={"CGRAPH_BATCH_WORKERS": "2"})
    assert one.returncode == two.returncode == 2
    assert one.stderr == two.stderr
    assert f"error: {pts}:75002:3: 'abc' in column 'c' is not a number" in two.stderr
    assert one.stdout == two.stdout
    assert 0 < len(two.stdout.splitlines()) <= 75_001


def test_worker_count_follows_idle_cpus_and_the_setting(monkeypatch) -> None:
    monkeypatch.setattr(batch, "WORKERS", None)
    monkeypatch.delenv("CGRAPH_BATCH_WORKERS", raising=False)
    monkeypatch.setattr(batch.sys, "platform", "linux")
    monkeypatch.setattr(batch.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    for load, want in ((0.1, 4), (1.2, 3), (3.6, 1), (20.0, 1)):
        monkeypatch.setattr(batch.os, "getloadavg", lambda load=load: (load, load, load))
        assert batch._workers() == want, load
    monkeypatch.setenv("CGRAPH_BATCH_WORKERS", "3")
    assert batch._workers() == 3  # the setting wins over the load
    monkeypatch.setenv("CGRAPH_BATCH_WORKERS", "0")
    assert batch._workers() == 1
    monkeypatch.setattr(batch.sys, "platform", "darwin")
    assert batch._workers() == 1  # no fork there
