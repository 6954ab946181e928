"""``cgraph eval FILE --batch points.csv``: one forward and one backward pass over all rows at once.

The CSV's header names inputs (scalars); every other input takes its ``--at`` value or its default.
Rows are read, evaluated and written in chunks, so memory stays constant however long the file is.
Each node holds one value per row (a 1-D array), and every op runs its elementwise row kernel
(:class:`cgraph_cli.ops.Rows`), which computes each element exactly as the op table computes a
single 0-d value, so the output is identical, digit for digit, to running ``cgraph eval`` row by row.
A program whose nodes are not all scalars (tensors inside) is evaluated row by row instead.

Output: the CSV columns (each row's cells as given), then the output, then ``d<out>/d<input>`` for every
input of the program; numbers as ``repr`` (shortest round-trip), non-finite ones as ``NaN``, ``inf``, ``-inf``.
"""

from __future__ import annotations

import codecs
import collections
import csv
import io
import itertools
import os
import re
import signal
import sys
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from cgraph_cli import allocator, limits
from cgraph_cli.engine import evaluate
from cgraph_cli.engine.reference import backward, forward
from cgraph_cli.errors import CgraphError, Source, closest
from cgraph_cli.fmt import csv_cell, csv_row_tails
from cgraph_cli.fsutil import regular_size
from cgraph_cli.ir.graph import Graph
from cgraph_cli.ops import LEAF_OPS, OPS
from cgraph_cli.progress import Progress, report
from cgraph_cli.run.request import Request

CHUNK_ROWS = 1 << 14  # rows a chunk holds at least (a chunk is whole reads): small enough to stay in the caches
_READ_BYTES = 1 << 18
WORKERS: int | None = None  # processes evaluating chunks; None: CGRAPH_BATCH_WORKERS, or the idle CPUs
MAX_WORKERS = 8
PARALLEL_MIN_CHUNKS = 4  # fewer chunks are evaluated in this process: forking would cost more than it saves


def run_request(
    request: Request,
    batch_path: str,
    *,
    out: Any = None,
    strict: bool = False,
    warn: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> int:
    """``eval --batch``: :func:`run_batch` with the program, ``--at`` values and settings of ``request``."""
    return run_batch(
        request.source,
        batch_path,
        dict(request.values),
        of=request.of,
        seed=request.seed,
        dtype=request.dtype,
        out=out,
        max_memory=request.max_memory,
        use_cache=request.use_cache,
        strict=strict,
        warn=warn,
        progress=progress,
    )


def run_batch(
    source: Source,
    batch_path: str,
    given_values: dict[str, Any],
    *,
    of: str | None = None,
    seed: int = 0,
    dtype: str = "float64",
    out: Any = None,
    max_memory: int | None = None,
    use_cache: bool = True,
    strict: bool = False,
    warn: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> int:
    """Evaluate ``source`` at every row of the CSV ``batch_path``; write CSV to ``out`` (stdout).

    A warning names the first row (and its column) whose value or gradient is not finite; it goes to ``warn``
    (a line without its newline), by default to stderr. Returns the exit code: 1 if there is such a row and
    ``strict`` is set (as ``eval --strict`` for one point), else 0. ``progress(done, total)`` (see
    :mod:`cgraph_cli.progress`) is told the bytes of the CSV evaluated and written so far, out of the file's size
    (None for a pipe or stdin), after each chunk of rows.
    """
    from cgraph_cli.run.program import DTYPES, compile_program, pick_output
    from cgraph_cli.run.values import bind_inputs

    stream = out if out is not None else sys.stdout
    shown = _shown(batch_path)
    f = _open(batch_path)
    with f:
        header, first_line = _read_header(f, shown)
        placeholder = dict(given_values)
        for name in header:
            placeholder[name] = np.zeros((), dtype=np.float64)
        g = compile_program(source, placeholder, seed=seed, dtype=dtype, max_memory=max_memory, use_cache=use_cache)
        unknown = [c for c in header if c not in g.inputs]
        if unknown:
            listed = ", ".join(g.inputs) or "none"
            best = closest(unknown[0], list(g.inputs))
            raise CgraphError(
                f"{shown}: column{'s' * (len(unknown) > 1)} {', '.join(repr(u) for u in unknown)} "
                f"{'is not an input' if len(unknown) == 1 else 'are not inputs'} of the program; "
                f"the program's inputs are: {listed}",
                hint=f"did you mean '{best}'?" if best else None,
            )
        clash = [c for c in header if c in given_values]
        if clash:
            raise CgraphError(f"input '{clash[0]}' is given both as a column of {shown} and by --at/--at-file")
        out_node = pick_output(g, of)
        fixed = bind_inputs(g, placeholder, csv=True)  # checks missing inputs and declared shapes
        np_dtype = DTYPES[dtype]
        vectorised = _row_vectorisable(g, fixed)
        label = g.label(out_node)
        names = g.grad_inputs()  # a gradient column per input, but for inputs declared data
        cols = header + [label] + [f"d{label}/d{name}" for name in names]
        job = _Job(g, out_node, header, fixed, names, np_dtype, vectorised, shown, cols[len(header) :])
        output = _Output(stream, (_csv_line(cols) + "\n").encode())
        bad: tuple[int, str] | None = None
        total = regular_size(f.buffer) if progress is not None else None
        done = 0
        report(progress, 0, total)
        read = [0]
        for chunk_bad in _results(job, _counting(_chunks(f, shown, first_line), read), output):
            if bad is None:
                bad = chunk_bad
            if progress is not None:  # the bytes read so far (workers may be a few chunks behind the reading)
                done = max(done, _consumed(f, read))
                report(progress, done if total is None else min(done, total), total)
        output.write(b"")  # the header, if there were no rows
        if progress is not None:
            report(progress, done if total is None else total, done if total is None else total)
        if bad is not None:
            message = (
                f"warning: {shown}:{bad[0]}: a value or gradient is not finite (first such row; column '{bad[1]}')"
            )
            if warn is not None:
                warn(message)
            else:
                sys.stderr.write(message + "\n")
    return 1 if strict and bad is not None else 0


def _consumed(f, read: list[int]) -> int:
    """Bytes of the CSV read so far: the binary stream's position, else (a pipe) the characters of the chunks read
    (``read[0]``, counted by :func:`_counting`)."""
    try:
        return int(f.buffer.tell())
    except (OSError, ValueError, AttributeError):
        return read[0]


def _counting(chunks: Iterator[tuple[str, int]], read: list[int]) -> Iterator[tuple[str, int]]:
    """``chunks`` as they are, adding up their characters in ``read[0]``."""
    for text, lineno in chunks:
        read[0] += len(text)
        yield text, lineno


def _first_nonfinite(table: np.ndarray, linenos: list[int], names: list[str]) -> tuple[int, str] | None:
    """(line number, column name) of the first cell of ``table`` that is not finite, or None."""
    if table.dtype == object:
        fin = np.array(
            [[bool(np.isfinite(np.asarray(c, dtype=np.float64)).all()) for c in row] for row in table], dtype=bool
        ).reshape(table.shape)
    else:
        fin = np.isfinite(table)
    if fin.all():
        return None
    r, c = np.unravel_index(int(np.argmin(fin.ravel())), fin.shape)
    return linenos[int(r)], names[int(c)]


# -- reading ---------------------------------------------------------------------------------------------------------


def _shown(path: str) -> str:
    return "<stdin>" if path == "-" else path


def _open(path: str):
    """The CSV as text (UTF-8, a BOM skipped), line endings untranslated: :func:`_blocks` counts them."""
    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
    from cgraph_cli.fsutil import open_input

    return io.TextIOWrapper(open_input(path, "--batch: ", "a CSV file"), encoding="utf-8-sig", newline="")


def _readline(f, path: str, lineno: int) -> str:
    """One line (with its ending), refused past MAX_LINE_CHARS characters without reading the rest of it."""
    limit = limits.MAX_LINE_CHARS
    try:
        line = f.readline(limit + 2)  # room for the line's ending, \r\n
    except UnicodeDecodeError:
        raise CgraphError(f"--batch: {path} is not UTF-8 text") from None
    if len(line.rstrip("\r\n")) > limit:
        raise limits.line_too_long(path, lineno)
    return line


def _read_header(f, path: str) -> tuple[list[str], int]:
    lineno = 1
    blank = 0
    line = _readline(f, path, lineno)
    while line and not line.strip():  # blank lines before the header
        blank += len(line)
        if blank > limits.MAX_LINE_CHARS:  # such as `yes ''`: a header would have come by now
            raise CgraphError(
                f"--batch: {path} has no header row in its first {limits.MAX_LINE_CHARS:,} characters, "
                "only blank lines",
                hint="the first line of a CSV file names the inputs, such as: a,b,c",
            )
        lineno += 1
        line = _readline(f, path, lineno)
    if not line:
        raise CgraphError(f"--batch: {path} is empty; it needs a header row of input names, such as: a,b,c")
    try:
        header = [c.strip() for c in next(csv.reader([line.rstrip("\r\n")]))]
    except (csv.Error, StopIteration) as e:
        raise CgraphError(f"{path}:{lineno}: cannot read the header row: {e}") from None
    for k, name in enumerate(header):
        if not name:
            raise CgraphError(f"{path}:{lineno}: column {k + 1} of the header has no name")
        if not name.isidentifier():
            other = next((sep for sep in (";", "\t", "|") if sep in name), None)
            raise CgraphError(
                f"{path}:{lineno}: column {k + 1} of the header, {name!r}, is not an input name",
                hint=f"columns are separated by commas, not {other!r}" if other else None,
            )
    if not all(map(str.isascii, header)):  # names as the program spells them (NFKC, as the parser reads them)
        import unicodedata

        header = [unicodedata.normalize("NFKC", name) for name in header]
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise CgraphError(f"{path}:{lineno}: column '{name}' appears twice in the header")
        seen.add(name)
    return header, lineno + 1


def _chunks(f, path: str, first_line: int) -> Iterator[tuple[str, int]]:
    """(text, the line number of its first line): whole lines, each ending in \\n, at least CHUNK_ROWS of them
    (but the last chunk).

    Line endings are \\n, \\r\\n or a lone \\r (all read as \\n). The file may be endless (a pipe), but no line
    may be: a line over MAX_LINE_CHARS is refused wherever the reads happen to cut it, and is never held whole."""
    max_line = limits.MAX_LINE_CHARS
    rest = ""
    lineno = first_line
    pending: list[str] = []
    npending = 0
    while True:
        try:
            data = f.read(_READ_BYTES)
        except UnicodeDecodeError:
            raise CgraphError(f"--batch: {path} is not UTF-8 text") from None
        if data:
            data = rest + data
            if data.endswith("\r"):  # its \n may start the next read: one line break, not two
                data, rest = data[:-1], "\r"
            else:
                rest = ""
            if "\r" in data:
                data = data.replace("\r\n", "\n").replace("\r", "\n")
            cut = data.rfind("\n")
            rest = data[cut + 1 :] + rest
            text = data[: cut + 1]
        else:
            rest = rest.replace("\r", "\n")
            text = rest + ("\n" if rest and not rest.endswith("\n") else "")
            rest = ""
        if text:
            _check_line_lengths(text, path, lineno + npending, max_line)
            pending.append(text)
            npending += text.count("\n")
        if len(rest.rstrip("\r")) > max_line:  # a line with no end in sight (/dev/zero, `yes | tr -d '\n'`)
            raise limits.line_too_long(path, lineno + npending)
        if npending >= CHUNK_ROWS or (not data and pending):
            yield "".join(pending), lineno
            pending = []
            lineno += npending
            npending = 0
        if not data:
            return


def _check_line_lengths(text: str, path: str, lineno: int, max_line: int) -> None:
    """Refuse a line over ``max_line`` characters in ``text`` (whole lines, the first one numbered ``lineno``).

    Jumps from the last line break within each window of ``max_line + 1`` characters: a few steps per
    read when lines are short, whatever their number."""
    pos = 0
    n = len(text)
    while n - pos > max_line:
        nl = text.rfind("\n", pos, pos + max_line + 1)
        if nl < 0:
            raise limits.line_too_long(path, lineno + text.count("\n", 0, pos))
        pos = nl + 1


_NUMBER_CHARS = b"0123456789eE.+-"  # what JSON's numbers are made of
_MINUS_ZERO_CELL = re.compile(rb"(?:^|[,\n])-0(?=[,\n])")


def _read_fast(body: bytes, ncols: int) -> np.ndarray | None:
    """Whole lines (each ending in \\n) of exactly ``ncols`` JSON numbers as a (rows, ncols) float64 array, read
    by orjson's C parser: exactly ``float(cell)`` for every cell (JSON's numbers are a subset of float()'s, and
    both round correctly). None for anything else (``+1``, ``.5``, ``inf``, spaces, quotes, an empty cell or
    line, a row of another length, or the integer ``-0``, which JSON makes 0), which :func:`_parse_chunk` reads
    the exact way, errors included."""
    seps = body.translate(None, _NUMBER_CHARS)  # what is left of a well-formed chunk: ,,\n,,\n ...
    if not seps or len(seps) % ncols or seps != (b"," * (ncols - 1) + b"\n") * (len(seps) // ncols):
        return None
    if (b"-0," in body or b"-0\n" in body) and _MINUS_ZERO_CELL.search(body):
        return None
    import orjson

    try:
        values = orjson.loads(b"[" + body[:-1].replace(b"\n", b",") + b"]")
        if len(values) != len(seps):
            return None
        return np.fromiter(values, dtype=np.float64, count=len(values)).reshape(-1, ncols)
    except (orjson.JSONDecodeError, OverflowError, TypeError, ValueError):
        return None


def _parse_chunk(
    text: str, ncols: int, path: str, header: list[str], lineno: int
) -> tuple[np.ndarray, list[str], list[int]]:
    """Parse complete lines into floats; any irregularity (quotes, blank lines, errors) takes the careful path."""
    body = text[:-1] if text.endswith("\n") else text
    if '"' not in body and "\n\n" not in body and not body.startswith("\n"):
        lines = body.split("\n")
        cells = body.replace("\n", ",").split(",")
        if len(cells) == len(lines) * ncols:
            arr = _parse_numbers(body, len(lines), ncols)
            if arr is None and body.isascii() and "_" not in body:  # (else the careful path refuses the cell)
                try:
                    arr = np.array(cells, dtype=np.float64).reshape(len(lines), ncols)
                except ValueError:
                    arr = None
            if arr is not None and _commas_ok(body, len(lines), ncols):
                return arr, lines, list(range(lineno, lineno + len(lines)))
    return _parse_careful(text, ncols, path, header, lineno)


# Text made only of JSON numbers, commas and line breaks; and the one JSON number float() reads differently
# (the integer -0, which JSON makes 0 and float() makes -0.0).
_NUMBERS_ONLY = re.compile(r"[0-9eE.+\-,\n \t]*")
_MINUS_ZEROS = re.compile(r"-0+(?![0-9.eE])")


def _parse_numbers(body: str, nlines: int, ncols: int) -> np.ndarray | None:
    """The cells read by orjson's C parser as a JSON array: exactly ``float(cell)`` for every cell JSON
    accepts (correctly rounded, as float() is), None for anything else (``+1``, ``.5``, ``inf``, ``1_0``,
    an empty cell), which the callers read the slow way with float()'s own rules."""
    if not _NUMBERS_ONLY.fullmatch(body) or any(
        m.start() == 0 or body[m.start() - 1] in ",\n \t" for m in _MINUS_ZEROS.finditer(body)
    ):
        return None
    import orjson

    try:
        values = orjson.loads("[" + body.replace("\n", ",") + "]")
    except orjson.JSONDecodeError:
        return None
    if len(values) != nlines * ncols:
        return None
    return np.array(values, dtype=np.float64).reshape(nlines, ncols)


def _commas_ok(body: str, nlines: int, ncols: int) -> bool:
    """Every line has exactly ncols - 1 commas (a total count alone could hide two ragged rows)."""
    if ncols == 1:
        return "," not in body
    b = np.frombuffer(body.encode("utf-8"), dtype=np.uint8)
    nl = np.flatnonzero(b == 10)
    cm = np.flatnonzero(b == 44)
    per = np.bincount(np.searchsorted(nl, cm), minlength=nlines)
    return bool((per == ncols - 1).all())


def _parse_careful(
    text: str, ncols: int, path: str, header: list[str], lineno: int
) -> tuple[np.ndarray, list[str], list[int]]:
    rows: list[list[float]] = []
    lines: list[str] = []
    linenos: list[int] = []
    reader = csv.reader(io.StringIO(text))
    while True:
        line = lineno + reader.line_num  # where the next record starts
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:  # such as a quoted cell over the csv module's field size limit
            raise CgraphError(f"{path}:{line}: cannot read this row: {e}") from None
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line
        if len(row) != ncols:
            raise CgraphError(
                f"{path}:{line}: this row has {len(row)} cell{'s' * (len(row) != 1)} but the header has {ncols}"
            )
        vals = []
        for c, cell in enumerate(row):
            try:
                digits = cell.strip()  # (float() and --at allow any white space around a number)
                if "_" in digits or not digits.isascii():  # float() reads 1_000, '١٢' and '１' too; --at does not
                    raise ValueError(cell)
                vals.append(float(cell))
            except ValueError:
                shown = cell.strip()
                raise CgraphError(
                    f"{path}:{line}:{c + 1}: {shown!r} in column '{header[c]}' is not a number"
                    if shown
                    else f"{path}:{line}:{c + 1}: the cell in column '{header[c]}' is empty"
                ) from None
        rows.append(vals)
        lines.append(",".join(cell.strip() for cell in row))
        linenos.append(line)
    return np.array(rows, dtype=np.float64).reshape(len(rows), ncols), lines, linenos


# -- chunks: read, evaluated and formatted, in this process or in several ------------------------------------------


class _Job:
    """What every chunk needs: the program, its output, the inputs and how to read, evaluate and write a row."""

    def __init__(
        self,
        g: Graph,
        out: int,
        header: list[str],
        fixed: dict[str, np.ndarray],
        names: list[str],
        dtype: Any,
        vectorised: bool,
        path: str,
        result_cols: list[str],
    ) -> None:
        self.g, self.out, self.header, self.fixed, self.names = g, out, header, fixed, names
        self.dtype, self.vectorised, self.path, self.result_cols = dtype, vectorised, path, result_cols

    def run(self, text: str, lineno: int) -> tuple[bytes, tuple[int, str] | None]:
        """The output rows of one chunk (whole lines, the first one numbered ``lineno``) and its first row with a
        value or gradient that is not finite. Well-formed numbers take the fast C reader, anything else (blank
        lines, quotes, spaces, errors to report with their line and column) the exact one."""
        ncols = len(self.header)
        body = text.encode("ascii") if text.isascii() else b""
        block = _read_fast(body, ncols) if body else None
        if block is not None:
            lines = body.split(b"\n")
            lines.pop()  # after the last line break
            linenos: Sequence[int] = range(lineno, lineno + len(lines))
        else:
            block, texts, linenos = _parse_chunk(text, ncols, self.path, self.header, lineno)
            lines = [line.encode() for line in texts]
        if not lines:
            return b"", None
        if self.vectorised:
            with np.errstate(over="ignore"):  # a cell beyond float32 becomes inf: cgraph's own warning says so
                cells = block.astype(self.dtype, copy=False)
            table = _eval_rows(self.g, self.out, self.header, cells, self.fixed, self.names)
        else:
            table = _eval_one_by_one(self.g, self.out, self.header, block, self.fixed, self.names)
        return _format_rows(lines, table), _first_nonfinite(table, linenos, self.result_cols)


class _Output:
    """Where the rows go, in order: the CSV header with the first of them (after they have been read, so that an
    error in the first rows leaves nothing written)."""

    def __init__(self, stream: Any, head: bytes) -> None:
        self.stream, self.head = stream, head

    def write(self, data: bytes) -> None:
        """UTF-8 ``data`` to the text stream; to standard output's bytes directly (no decoding and encoding)."""
        data, self.head = self.head + data, b""
        if not data:
            return
        if self.direct():
            self.stream.flush()
            self.stream.buffer.write(data)
            if getattr(self.stream, "line_buffering", False):
                self.stream.buffer.flush()
        else:
            self.stream.write(data.decode())

    def direct(self) -> bool:
        """Whether rows go straight to standard output's bytes (then worker processes write them there too)."""
        stream = self.stream
        if stream is not sys.stdout or getattr(stream, "buffer", None) is None or os.linesep != "\n":
            return False
        try:
            return codecs.lookup(stream.encoding).name == "utf-8"
        except (AttributeError, LookupError, TypeError):
            return False


def _results(job: _Job, chunks: Iterator[tuple[str, int]], output: _Output) -> Iterator[tuple[int, str] | None]:
    """Every chunk's rows written to ``output`` in order; yields each chunk's first row with a value or gradient
    that is not finite (None if none). The chunks are evaluated in this process, or spread over worker processes
    when there are several CPUs to use and at least PARALLEL_MIN_CHUNKS chunks. Either way the output is the same
    bytes, and an error (a bad cell, a line too long) comes after the rows before it, as when reading row by row."""
    workers = _workers()
    ahead: list[tuple[str, int]] = []
    failed: CgraphError | None = None
    if workers > 1:
        try:
            for chunk in chunks:
                ahead.append(chunk)
                if len(ahead) >= PARALLEL_MIN_CHUNKS:
                    break
        except CgraphError as e:  # raised after the chunks before it
            failed = e
        if len(ahead) >= PARALLEL_MIN_CHUNKS:
            yield from _in_parallel(job, itertools.chain(ahead, chunks), workers, output)
            return
    for text, lineno in itertools.chain(ahead, () if failed else chunks):
        data, bad = job.run(text, lineno)
        output.write(data)
        yield bad
    if failed is not None:
        raise failed


def _workers() -> int:
    """How many processes evaluate chunks: WORKERS, or the environment's CGRAPH_BATCH_WORKERS, or the CPUs this
    process may run on less the load average (1 where processes cannot be forked)."""
    if WORKERS is not None:
        n = WORKERS
    elif os.environ.get("CGRAPH_BATCH_WORKERS", "").strip():
        try:
            n = int(os.environ["CGRAPH_BATCH_WORKERS"])
        except ValueError:
            raise CgraphError(
                f"CGRAPH_BATCH_WORKERS={os.environ['CGRAPH_BATCH_WORKERS']!r} is not a number of processes"
            ) from None
    else:  # the CPUs not busy with other work: on a loaded machine more processes only add their own costs
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        try:
            n -= int(os.getloadavg()[0] + 0.5)
        except (AttributeError, OSError):
            pass
    return max(1, min(n, MAX_WORKERS)) if sys.platform.startswith("linux") else 1


class _Shared:
    """What the worker processes inherit when they are forked: the job, and (when they write the rows to standard
    output themselves) whose turn it is to write."""

    job: _Job
    output: _Output | None  # None: the rows come back to the parent, which writes them
    turn: Any  # the number of the next chunk to write
    stopped: Any  # set when a chunk failed: the chunks after it write nothing
    cond: Any


_SHARED: _Shared | None = None


def _run_in_worker(k: int, text: str, lineno: int) -> tuple[bytes, tuple[int, str] | None]:
    """Chunk number ``k``: its rows and first non-finite row, or (writing them itself) b"" and that row."""
    shared = _SHARED
    assert shared is not None
    if shared.output is None:
        return shared.job.run(text, lineno)
    try:
        data, bad = shared.job.run(text, lineno)
    except BaseException:
        _my_turn(shared, k)  # the rows before this chunk are written first, then the parent hears the error
        _stop(shared)
        raise
    if not _my_turn(shared, k):
        return b"", None  # an earlier chunk failed
    try:
        if k > 0:
            shared.output.head = b""  # the first chunk's writer writes the header
        shared.output.write(data)
        shared.output.stream.buffer.flush()
    except BaseException:
        _stop(shared)
        raise
    with shared.cond:
        shared.turn.value = k + 1
        shared.cond.notify_all()
    return b"", bad


def _my_turn(shared: _Shared, k: int) -> bool:
    with shared.cond:
        shared.cond.wait_for(lambda: shared.turn.value == k or shared.stopped.value)
        return not shared.stopped.value


def _stop(shared: _Shared) -> None:
    with shared.cond:
        shared.stopped.value = 1
        shared.cond.notify_all()


def _quiet_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent, which stops the workers
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # how the parent stops them (not the CLI's handler)


def _in_parallel(
    job: _Job, chunks: Iterator[tuple[str, int]], workers: int, output: _Output
) -> Iterator[tuple[int, str] | None]:
    """The chunks evaluated by ``workers`` forked processes (each inherits the compiled program), at most two
    chunks a worker in flight so that memory stays bounded. When the rows go to standard output the workers
    write them there themselves, each chunk in its turn; otherwise they come back here and are written in order."""
    global _SHARED
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    shared = _Shared()
    shared.job = job
    shared.output = output if output.direct() else None
    shared.turn, shared.stopped, shared.cond = ctx.RawValue("q", 0), ctx.RawValue("b", 0), ctx.Condition()
    if shared.output is not None:
        output.stream.flush()
    _SHARED = shared
    try:
        pool = ctx.Pool(workers, initializer=_quiet_worker)
    finally:
        _SHARED = None
    if shared.output is not None:
        output.head = b""  # written by the first chunk's worker

    def result(pending: collections.deque) -> tuple[int, str] | None:
        data, bad = pending.popleft().get()
        output.write(data)
        return bad

    try:
        pending: collections.deque = collections.deque()
        for k in itertools.count():
            try:
                text, lineno = next(chunks)
            except StopIteration:
                break
            except CgraphError:  # a line too long: after the rows before it
                while pending:
                    yield result(pending)
                raise
            pending.append(pool.apply_async(_run_in_worker, (k, text, lineno)))
            while len(pending) >= 2 * workers or (pending and pending[0].ready()):
                yield result(pending)
        while pending:
            yield result(pending)
    finally:
        pool.terminate()
        pool.join()


# -- evaluating ------------------------------------------------------------------------------------------------------


def _row_vectorisable(g: Graph, fixed: dict[str, np.ndarray]) -> bool:
    if any(np.shape(v) != () for v in fixed.values()):
        return False
    for s, op in zip(g.shapes, g.ops):
        if s != ():
            return False
        if op not in LEAF_OPS and OPS[op].rows is None:
            return False
    return True


def _eval_rows(
    g: Graph, out: int, header: list[str], block: np.ndarray, fixed: dict[str, np.ndarray], names: list[str]
) -> np.ndarray:
    """Values and gradients for all rows: (rows, 1 + inputs) array (the engine's passes, row-wise ops)."""
    allocator.retain()  # (each chunk's arrays reuse the last one's memory)
    m = len(block)
    dt = g.dtype
    col = {name: k for k, name in enumerate(header)}
    inputs = {
        # a fixed input gets one value per row too, so that its gradient is per row
        name: np.ascontiguousarray(block[:, col[name]]) if name in col else np.full(m, fixed[name], dtype=dt)
        for name in g.inputs
    }
    vals = forward(g, inputs, rows=True)
    grads = backward(g, vals, out, rows=True)
    table = np.empty((m, 1 + len(names)), dtype=np.result_type(dt, np.float32))  # in the dtype computed
    table[:, 0] = vals[out]
    for k, name in enumerate(names):
        gr = grads[g.inputs[name]]
        table[:, 1 + k] = 0.0 if gr is None else gr
    return table


def _eval_one_by_one(
    g: Graph, out: int, header: list[str], block: np.ndarray, fixed: dict[str, np.ndarray], names: list[str]
) -> np.ndarray:
    """The general case (tensors inside the program): one evaluation per row; cells may be tensors."""
    rows = []
    for r in range(len(block)):
        inputs = dict(fixed)
        for k, name in enumerate(header):
            inputs[name] = np.asarray(block[r, k], dtype=g.dtype)
        res = evaluate(g, inputs, out)
        cells: list[Any] = [res.values[out]]
        for name in names:
            gr = res.grads[g.inputs[name]]
            cells.append(0.0 if gr is None else gr)
        rows.append(cells)
    if all(np.ndim(c) == 0 for row in rows for c in row):
        return np.array([[np.asarray(c).reshape(()) for c in row] for row in rows], dtype=g.dtype)
    table = np.empty((len(rows), len(rows[0]) if rows else 0), dtype=object)
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            table[r, c] = cell
    return table


# -- writing ---------------------------------------------------------------------------------------------------------


def _csv_line(cells: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(cells)
    return buf.getvalue()


def _format_rows(lines: list[bytes], table: np.ndarray) -> bytes:
    """Rows of the output CSV: each row's input cells as given (``lines``, UTF-8), then its numbers as ``repr``
    writes them (as ``eval --format csv`` does; float32 numbers as their own shortest text; NaN, inf, -inf)."""
    if not lines:
        return b""
    if table.dtype == object:
        return "".join(
            line.decode() + "," + ",".join(_cell(c) for c in row) + "\n" for line, row in zip(lines, table)
        ).encode()
    parts: list[bytes | None] = [None] * (2 * len(lines))
    parts[0::2] = lines
    parts[1::2] = csv_row_tails(table)  # ",z,dz/da\n"
    return b"".join(parts)  # type: ignore[arg-type]


def _cell(v: Any) -> str:
    return _csv_line([csv_cell(np.asarray(v))])
