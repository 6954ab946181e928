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

import csv
import io
import re
import sys
from typing import Any, Callable, Iterator

import numpy as np

from cgraph_cli import limits
from cgraph_cli.engine import evaluate
from cgraph_cli.engine.reference import backward, forward
from cgraph_cli.errors import CgraphError, Source, closest
from cgraph_cli.fmt import csv_cell, shortest
from cgraph_cli.ir.graph import Graph
from cgraph_cli.ops import LEAF_OPS, OPS
from cgraph_cli.run.request import Request

CHUNK_ROWS = 1 << 16
_READ_BYTES = 1 << 22


def run_request(
    request: Request,
    batch_path: str,
    *,
    out: Any = None,
    strict: bool = False,
    warn: Callable[[str], None] | None = None,
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
) -> int:
    """Evaluate ``source`` at every row of the CSV ``batch_path``; write CSV to ``out`` (stdout).

    A warning names the first row (and its column) whose value or gradient is not finite; it goes to ``warn``
    (a line without its newline), by default to stderr. Returns the exit code: 1 if there is such a row and
    ``strict`` is set (as ``eval --strict`` for one point), else 0.
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
        fixed = bind_inputs(g, placeholder)  # checks missing inputs and declared shapes
        np_dtype = DTYPES[dtype]
        vectorised = _row_vectorisable(g, fixed)
        label = g.label(out_node)
        names = g.grad_inputs()  # a gradient column per input, but for inputs declared data
        cols = header + [label] + [f"d{label}/d{name}" for name in names]
        head = _csv_line(cols) + "\n"  # written with the first rows, after they have been read
        bad: tuple[int, str] | None = None
        for block, lines, linenos in _blocks(f, shown, header, first_line):
            if vectorised:
                table = _eval_rows(g, out_node, header, block.astype(np_dtype, copy=False), fixed, names)
            else:
                table = _eval_one_by_one(g, out_node, header, block, fixed, names)
            if bad is None:
                bad = _first_nonfinite(table, linenos, cols[len(header) :])
            stream.write(head + _format_rows(lines, table))
            head = ""
        if head:
            stream.write(head)
        if bad is not None:
            message = (
                f"warning: {shown}:{bad[0]}: a value or gradient is not finite (first such row; column '{bad[1]}')"
            )
            if warn is not None:
                warn(message)
            else:
                sys.stderr.write(message + "\n")
    return 1 if strict and bad is not None else 0


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
            raise CgraphError(f"{path}:{lineno}: column {k + 1} of the header, {name!r}, is not an input name")
    if not all(map(str.isascii, header)):  # names as the program spells them (NFKC, as the parser reads them)
        import unicodedata

        header = [unicodedata.normalize("NFKC", name) for name in header]
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise CgraphError(f"{path}:{lineno}: column '{name}' appears twice in the header")
        seen.add(name)
    return header, lineno + 1


def _blocks(f, path: str, header: list[str], first_line: int) -> Iterator[tuple[np.ndarray, list[str], list[int]]]:
    """(rows x columns float64 array, the rows' text, the rows' line numbers), CHUNK_ROWS rows at a time.

    Line endings are \\n, \\r\\n or a lone \\r. The file may be endless (a pipe), but no line may be: a line
    over MAX_LINE_CHARS is refused wherever the reads happen to cut it, and is never held whole."""
    ncols = len(header)
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
            chunk = "".join(pending)
            pending = []
            npending = 0
            arr, lines, linenos = _parse_chunk(chunk, ncols, path, header, lineno)
            if len(arr):
                yield arr, lines, linenos
            lineno += chunk.count("\n")
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
            if arr is None:
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


def _format_rows(lines: list[str], table: np.ndarray) -> str:
    """Rows of the output CSV: each row's input cells as given, then its numbers as ``repr`` of the float
    (as ``eval --format csv`` writes them; non-finite ones as NaN, inf, -inf)."""
    if not lines:
        return ""
    if table.dtype != object:
        table = shortest(table)  # float32: each number's own shortest text
    if table.dtype == object:
        outs = [",".join(_cell(c) for c in r) for r in table]
    elif np.isfinite(table).all():
        outs = _number_rows(table.astype(np.float64, copy=False)).split("\n")
    else:
        width = table.shape[1]
        text = repr(table.astype(np.float64, copy=False).ravel().tolist())[1:-1]
        if "n" in text:  # nan, inf
            text = text.replace("nan", "NaN")
        parts = text.split(", ")
        if width == 1:
            outs = parts
        else:
            outs = [",".join(parts[k : k + width]) for k in range(0, len(parts), width)]
    return "\n".join([a + "," + b for a, b in zip(lines, outs)]) + "\n"


# orjson writes the same shortest round-trip digits as repr() (both are the shortest text that reads back as the
# same double, the nearest one when several are that short) but spells some exponents differently (1e-7, not
# 1e-07; 0.00001, not 1e-05): those few tokens are rewritten by repr().
_EXPONENT = re.compile(r"[0-9]e[-+]?[0-9]+")


def _respell(text: str) -> str:
    """orjson's text of a nested list with every number spelt as repr() spells it."""
    spans = []
    for m in _EXPONENT.finditer(text):  # a token with an exponent: from the delimiter before it
        start = max(text.rfind(",", 0, m.start()), text.rfind("[", 0, m.start())) + 1
        spans.append((start, m.end()))
    pos = text.find("0.0000")
    while pos >= 0:  # 0.00001 .. 0.0000999: repr() writes 1e-05 ..
        start = pos - 1 if pos and text[pos - 1] == "-" else pos
        end = pos + 6
        if start == 0 or text[start - 1] in ",[":
            while end < len(text) and text[end].isdigit():
                end += 1
            spans.append((start, end))
        pos = text.find("0.0000", end)
    if not spans:
        return text
    out = []
    last = 0
    for start, end in sorted(spans):
        out.append(text[last:start])
        out.append(repr(float(text[start:end])))
        last = end
    out.append(text[last:])
    return "".join(out)


def _number_rows(table: np.ndarray) -> str:
    """The rows of a finite float64 table as CSV text, each number exactly as ``repr`` writes it, formatted by
    orjson's C encoder (a few times faster than repr on every float)."""
    import orjson

    text = _respell(orjson.dumps(table, option=orjson.OPT_SERIALIZE_NUMPY).decode())
    return text[2:-2].replace("],[", "\n")


def _cell(v: Any) -> str:
    return _csv_line([csv_cell(np.asarray(v))])
