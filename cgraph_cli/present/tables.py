"""Presenters: turn a Result into data, text or renderables. Only the CLI prints."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np

from cgraph_cli.analysis import anomaly
from cgraph_cli.engine.reference import Result
from cgraph_cli.errors import format_located
from cgraph_cli.fmt import (
    csv_cell,
    fmt_cell,
    fmt_number,
    fmt_shape,
    fmt_value,
    json_nonfinite,
    json_number,
    json_value,
    shortest,
)
from cgraph_cli.ir.graph import Graph
from cgraph_cli.ir.names import node_names


def rows(result: Result, all_nodes: bool = False) -> list[int]:
    g = result.graph
    return list(range(len(g))) if all_nodes else g.named_nodes()


def to_data(result: Result, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document of SPEC §3 (tensors as nested lists; :func:`write_json` streams it instead)."""
    return _document(result, json_value, extra=extra)


def _leaves(data: Any, value: Any) -> Any:
    """Nested dicts with every array passed through ``value``."""
    if isinstance(data, dict):
        return {k: _leaves(v, value) for k, v in data.items()}
    return value(data)


def _second(result: Result) -> tuple[str | None, list[Any]]:
    """The per-node column beside the value: ("grad", gradients), ("tangent", tangents) in forward mode, or
    (None, ...) for a Jacobian (which has no per-node derivative)."""
    if result.mode == "forward":
        return "tangent", result.tangents or []
    if result.mode == "jacobian":
        return None, result.grads
    return "grad", result.grads


def _document(result: Result, value: Any, nodes: Any = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document, with every value and gradient passed through ``value`` (``nodes``: the node
    records as given, e.g. a :class:`NodeRecords` to be written without building a dict per node).

    Other modes than the default (``result.mode``): forward mode has ``direction`` and ``jvp`` and a
    ``tangent`` per node instead of gradients; a cotangent's run has ``cotangent``; a Jacobian has
    ``jacobian`` (input -> output.shape + input.shape), ``jacobian_mode``, ``jacobian_passes``. ``extra`` adds
    top-level keys of nested dicts of arrays (``"hessian"``, ``"hvp"``)."""
    g = result.graph
    vals = result.values
    key, second = _second(result)
    doc: dict[str, Any] = {"output": g.label(result.out), "value": value(vals[result.out])}
    if result.mode != "reverse":
        doc["mode"] = result.mode
    doc["inputs"] = {k: value(v) for k, v in result.inputs.items()}
    if result.mode == "forward":
        doc["direction"] = {k: value((result.direction or {}).get(k)) for k in g.inputs}
        doc["jvp"] = value(result.jvp)
    elif result.mode == "jacobian":
        jac = result.jacobian
        doc["jacobian"] = {k: value(b) for k, b in jac.blocks.items()}
        doc["jacobian_mode"] = jac.mode
        doc["jacobian_passes"] = jac.passes
    else:
        if result.mode == "cotangent":
            doc["cotangent"] = value(result.cotangent)
        # only the inputs differentiated (eval --wrt; not those declared data): the others have no key
        doc["gradients"] = {k: value(second[g.inputs[k]]) for k in result.grad_inputs()}
    doc["outputs"] = {g.label(i): value(vals[i]) for i in g.outputs}
    doc["nodes"] = _node_records(result, value) if nodes is None else nodes
    doc["nonfinite"] = _anomalies(result)
    for k, v in (extra or {}).items():
        doc[k] = _leaves(v, value)
    return doc


def _node_records(result: Result, value: Any) -> list[dict[str, Any]]:
    g = result.graph
    vals = result.values
    key, second = _second(result)
    nonfinite = result.nonfinite_nodes().tolist()
    nodes = []
    for i in range(len(g)):
        line, col = g.line_col(i)
        node = {
            "id": i,
            "name": g.names[i],
            "op": g.ops[i],
            "args": list(g.args[i]),
            "shape": list(np.shape(vals[i])),
            "value": value(vals[i]),
        }
        if key is not None:
            node[key] = value(second[i])
        node.update({"expr": g.short_text(i), "line": line, "column": col, "nonfinite": nonfinite[i]})
        nodes.append(node)
    return nodes


def _anomalies(result: Result) -> list[dict[str, Any]]:
    g = result.graph
    return [  # backward: the op whose local derivative made it, and the operand it flowed to
        {
            "pass": a.where,
            "id": a.node,
            "name": g.names[a.node],
            "op": g.ops[a.node],
            "line": g.line_col(a.node)[0],
            "column": g.line_col(a.node)[1],
            **({"operand": a.operand} if a.where == "backward" else {}),
        }
        for a in anomaly.find(result)
    ]


def to_json(result: Result, extra: dict[str, Any] | None = None) -> str:
    """The JSON document as one string (:func:`write_json` writes the same bytes without holding them)."""
    buf = io.StringIO()
    write_json(result, buf, extra)
    return buf.getvalue()


def write_json(result: Result, stream: Any, extra: dict[str, Any] | None = None) -> None:
    """Write the JSON document of :func:`to_json` to ``stream``, tensors chunk by chunk.

    The bytes are exactly ``json.dumps(to_data(result), indent=2, allow_nan=False)`` (no final newline),
    but the memory used beyond the values themselves is a few chunks of text, not a Python float and a
    string per entry."""
    dump_json(_document(result, lazy_value, NodeRecords(result), extra), stream)


# -- streaming JSON --------------------------------------------------------------------------------------------------
#
# ``json.dumps(doc, indent=2)`` builds a Python list of every number (to_data) and a string piece per entry, about
# 400 bytes per tensor entry.  The writer below produces the same text: small parts through the json module's own
# encoders, tensors (wrapped in :class:`Tensor` by :func:`lazy_value`) one chunk of entries at a time, each entry's
# text being its surrounding brackets and separators (a function of how many dimensions end before it) followed by
# ``float.__repr__`` of the entry, as json writes floats.

CHUNK = 1 << 15  # tensor entries formatted at a time
RECORDS_HELD = 512  # node records whose text is held before it is written
_FLUSH = 1 << 16  # characters buffered before a write


class Tensor:
    """A tensor to be written as nested JSON lists of numbers (float64 values; non-finite as strings)."""

    __slots__ = ("a",)

    def __init__(self, a: np.ndarray) -> None:
        self.a = a


def lazy_value(v: Any) -> Any:
    """:func:`json_value`, but a tensor stays a :class:`Tensor` to be written chunk by chunk."""
    if v is None:
        return None
    a = np.asarray(v)
    if a.ndim == 0:
        return json_number(a)
    return Tensor(a)


def _number_texts(chunk: np.ndarray, quote: str = '"') -> list[str]:
    """The JSON text of each entry (float64 repr, as json writes it; non-finite as quoted strings)."""
    c = np.asarray(shortest(chunk), dtype=np.float64)  # float32: its own shortest text
    texts = list(map(float.__repr__, c.tolist()))
    fin = np.isfinite(c)
    if not fin.all():
        for k in np.flatnonzero(~fin).tolist():
            texts[k] = quote + json_nonfinite(c[k]) + quote
    return texts


def _flat_chunks(a: np.ndarray):
    """(start, entries) chunks of a tensor in C order, copying at most a chunk at a time."""
    flat = a.reshape(-1) if a.flags.c_contiguous else a.flat
    for s in range(0, a.size, CHUNK):
        yield s, np.asarray(flat[s : s + CHUNK])


def _tensor_text(a: np.ndarray, write, level: int | None, indent: str = "  ", quote: str = '"') -> None:
    """Write a tensor as nested lists: json.dumps' layout with ``indent`` at list depth ``level`` (a list whose
    own bracket is written at ``level`` has its entries at ``level + 1``), or compact (``level`` None, separators
    ',' and ':')."""
    shape = a.shape
    k = len(shape)

    def nl(depth: int) -> str:
        return "" if level is None else "\n" + indent * (level + depth)

    if a.size == 0:  # no numbers: brackets only (an empty list is '[]' in either layout)
        write(_empty_text(shape, nl))
        return
    # before an entry whose flat index is a multiple of the last o suffix products (o < k), the innermost o
    # lists close, the list above them takes a separator and o new lists open
    suffix = [int(np.prod(shape[j:], dtype=np.int64)) for j in range(k)]  # P_1 .. P_k
    opens = ["".join("[" + nl(j) for j in range(k - o + 1, k + 1)) for o in range(k + 1)]
    closes = ["".join(nl(j - 1) + "]" for j in range(k, k - o, -1)) for o in range(k + 1)]
    pre = [closes[o] + "," + nl(k - o) + opens[o] for o in range(k)]
    pre.append(opens[k])  # the first entry
    for s, chunk in _flat_chunks(a):
        texts = _number_texts(chunk, quote)
        n = len(texts)
        idx = np.arange(s, s + n, dtype=np.int64)
        o = np.zeros(n, dtype=np.int64)
        for p in suffix[1:] if k > 1 else ():
            o += idx % p == 0
        if s == 0:
            o[0] = k
        if not o.any():
            write(pre[0] + pre[0].join(texts))
        elif k == 1 or not (o > 0).sum() * 4 < n:
            write("".join(map(str.__add__, [pre[x] for x in o.tolist()], texts)))
        else:  # a few row boundaries in a long chunk: join the runs between them
            cuts = np.flatnonzero(o).tolist() + [n]
            parts = [pre[0] + pre[0].join(texts[: cuts[0]])] if cuts[0] else []
            for c0, c1 in zip(cuts[:-1], cuts[1:]):
                parts.append(pre[int(o[c0])] + pre[0].join(texts[c0:c1]))
            write("".join(parts))
    write(closes[k])


def _empty_text(shape: tuple[int, ...], nl) -> str:
    def rec(depth: int) -> str:
        d = shape[depth - 1]
        if d == 0:
            return "[]"
        if depth == len(shape):  # pragma: no cover - a non-empty last dimension has numbers
            raise AssertionError
        inner = rec(depth + 1)
        return "[" + nl(depth) + ("," + nl(depth)).join([inner] * d) + nl(depth - 1) + "]"

    return rec(1)


class NodeRecords:
    """The document's ``nodes`` list, written record by record from a template (the same bytes as the
    list of dicts of :func:`_node_records`, without building them)."""

    __slots__ = ("result",)

    def __init__(self, result: Result) -> None:
        self.result = result


def _scalar_json(v: Any) -> str | None:
    """The JSON text of None or a 0-d value (None: a tensor, written by :func:`_tensor_text`)."""
    if v is None:
        return "null"
    if getattr(v, "ndim", 0):
        return None
    x = float(v) if type(v) is float or getattr(v, "dtype", None) == np.float64 else float(shortest(v))
    if x - x == 0.0:  # finite
        return float.__repr__(x)
    return _number_texts(np.asarray(x).reshape(1))[0]


def _write_node_records(result: Result, level: int, indent: str, enc_str, append, tensor, flush) -> None:
    """The ``nodes`` list's text, a record per node, ``flush`` called every :data:`RECORDS_HELD` records (the
    text of 200,000 records held until the end took 160 MB)."""
    g = result.graph
    vals, names, ops, args = result.values, g.names, g.ops, g.args
    second_key, grads = _second(result)
    nonfinite = result.nonfinite_nodes().tolist()
    item = "\n" + indent * (level + 1)
    key = ",\n" + indent * (level + 2)
    inner = ",\n" + indent * (level + 3)
    open_inner = "[\n" + indent * (level + 3)
    close_inner = "\n" + indent * (level + 2) + "]"

    def int_list(xs) -> str:
        return open_inner + inner.join(map(str, xs)) + close_inner if len(xs) else "[]"

    if not len(g):
        append("[]")
        return
    append("[")
    for i in range(len(g)):
        v, gr = vals[i], grads[i]
        line, col = g.line_col(i)
        name = names[i]
        append(
            ("" if i == 0 else ",")
            + item
            + "{\n"
            + indent * (level + 2)
            + f'"id": {i}{key}"name": {"null" if name is None else enc_str(name)}{key}"op": {enc_str(ops[i])}'
            + f'{key}"args": {int_list(args[i])}{key}"shape": {int_list(np.shape(v))}{key}"value": '
        )
        text = _scalar_json(v)
        if text is None:
            tensor(np.asarray(v), level + 2)
        else:
            append(text)
        if second_key is not None:
            append(f'{key}"{second_key}": ')
            text = _scalar_json(gr)
            if text is None:
                tensor(np.asarray(gr), level + 2)
            else:
                append(text)
        append(
            f'{key}"expr": {enc_str(g.short_text(i))}{key}"line": {line}{key}"column": {col}'
            f'{key}"nonfinite": {"true" if nonfinite[i] else "false"}\n' + indent * (level + 1) + "}"
        )
        if i % RECORDS_HELD == RECORDS_HELD - 1:
            flush()
    append("\n" + indent * level + "]")


def dump_json(doc: Any, stream: Any, *, indent: str = "  ", ensure_ascii: bool = True) -> None:
    """Write ``json.dumps(doc, indent=len(indent), ensure_ascii=ensure_ascii, allow_nan=False)`` to ``stream``,
    with :class:`Tensor` values written chunk by chunk (buffered: a write per ~64k pieces of text).

    The json module's indented encoder is pure Python; this one dispatches on the exact type, writes the
    scalars of a container inline and appends to one list, which makes it several times faster on the
    documents cgraph writes (a dict per node)."""
    from json import encoder

    enc_str = encoder.encode_basestring_ascii if ensure_ascii else encoder.encode_basestring
    parts: list[str] = []
    append = parts.append
    flt, integer = float.__repr__, int.__repr__

    def flush() -> None:
        stream.write("".join(parts))
        parts.clear()

    def number(x: float) -> str:
        if x - x != 0.0:  # NaN or an infinity (x - x is NaN for both)
            raise ValueError("Out of range float values are not JSON compliant")
        return flt(x)

    def scalar(o: Any) -> str | None:
        """The text of a str, int, float, bool or None (None: not one of those)."""
        t = type(o)
        if t is str:
            return enc_str(o)
        if t is float:
            return number(o)
        if t is int:
            return integer(o)
        if o is None:
            return "null"
        if o is True:
            return "true"
        if o is False:
            return "false"
        if isinstance(o, str):
            return enc_str(o)
        if isinstance(o, int):
            return integer(o)
        if isinstance(o, float):
            return number(o)
        return None

    def tensor(a: np.ndarray, level: int) -> None:
        if a.ndim == 1 and 0 < a.size <= 64:  # a short vector: at once
            sep = ",\n" + indent * (level + 1)
            append("[\n" + indent * (level + 1) + sep.join(_number_texts(a)) + "\n" + indent * level + "]")
            return

        def write(text: str) -> None:
            if len(text) > 4096:  # a chunk of entries: written through, never held
                flush()
                stream.write(text)
            else:
                append(text)

        _tensor_text(a, write, level, indent)

    def enc(o: Any, level: int) -> None:
        text = scalar(o)
        if text is not None:
            append(text)
        elif type(o) is Tensor:
            tensor(o.a, level)
        elif type(o) is NodeRecords:
            _write_node_records(o.result, level, indent, enc_str, append, tensor, flush)
            flush()
        elif isinstance(o, (list, tuple)):
            if not o:
                append("[]")
                return
            sep = ",\n" + indent * (level + 1)
            append("[\n" + indent * (level + 1))
            for k, x in enumerate(o):
                if k:
                    append(sep)
                text = scalar(x)
                if text is None:
                    enc(x, level + 1)
                    if len(parts) >= _FLUSH // 16:
                        flush()
                else:
                    append(text)
            append("\n" + indent * level + "]")
        elif isinstance(o, dict):
            if not o:
                append("{}")
                return
            sep = ",\n" + indent * (level + 1)
            append("{\n" + indent * (level + 1))
            first = True
            for key, x in o.items():
                if not isinstance(key, str):
                    raise TypeError(f"keys must be str, not {type(key).__name__}")
                if first:
                    first = False
                else:
                    append(sep)
                append(enc_str(key))
                append(": ")
                text = scalar(x)
                if text is None:
                    enc(x, level + 1)
                else:
                    append(text)
            append("\n" + indent * level + "}")
        else:
            raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")

    enc(doc, 0)
    if parts:
        flush()


def to_csv(result: Result, all_nodes: bool = False) -> str:
    """One row per node: node,op,expr,shape,value,grad (tensors as JSON lists)."""
    buf = io.StringIO()
    write_csv(result, buf, all_nodes)
    return buf.getvalue()


def write_csv(result: Result, stream: Any, all_nodes: bool = False) -> None:
    """Write :func:`to_csv`'s text to ``stream``, tensor cells chunk by chunk (forward mode: a tangent column
    in place of the gradient; a Jacobian: :func:`write_jacobian_csv`)."""
    if result.mode == "jacobian":
        write_jacobian_csv(result, stream)
        return
    g = result.graph
    small = io.StringIO()
    w = csv.writer(small, lineterminator="\n")
    key, grads = _second(result)
    w.writerow(["node", "op", "expr", "shape", "value", key])
    names, ops, vals = g.names, g.ops, result.values
    for i in rows(result, all_nodes):
        v, gr = vals[i], grads[i]
        tv, tg = type(v), type(gr)
        if (tv is np.float64 or tv is float) and (tg is np.float64 or tg is float or gr is None):
            # the common scalar row (a program of a million scalar nodes writes one per name), quickly
            w.writerow(
                (
                    names[i] or f"%{i}",
                    ops[i],
                    g.short_text(i),
                    "",
                    float.__repr__(v) if math.isfinite(v) else fmt_number(v),
                    "" if gr is None else (float.__repr__(gr) if math.isfinite(gr) else fmt_number(gr)),
                )
            )
            if small.tell() >= _FLUSH:
                stream.write(small.getvalue())
                small.seek(0)
                small.truncate()
            continue
        head = [g.label(i), ops[i], g.short_text(i), "x".join(str(d) for d in np.shape(v))]
        if np.ndim(v) == 0 and np.ndim(gr) == 0:  # scalars (or None): the csv module writes the row
            w.writerow(head + [csv_cell(v), csv_cell(gr)])
        else:
            w.writerow(head + ["", ""])  # the row without its last two cells, which are written below
            text = small.getvalue()
            small.seek(0)
            small.truncate()
            stream.write(text[: -len(",,\n")] + ",")
            _csv_tensor_cell(v, stream.write)
            stream.write(",")
            _csv_tensor_cell(gr, stream.write)
            stream.write("\n")
            continue
        if small.tell() >= _FLUSH:
            stream.write(small.getvalue())
            small.seek(0)
            small.truncate()
    stream.write(small.getvalue())


def entry_names(name: str, shape: tuple[int, ...]) -> list[str]:
    """``x[0, 1]`` for each entry of a tensor in C order (the name alone for a scalar)."""
    if not shape:
        return [name]
    return [f"{name}[{', '.join(map(str, idx))}]" for idx in np.ndindex(*shape)]


def write_jacobian_csv(result: Result, stream: Any) -> None:
    """One row per (output entry, input entry): ``output,input,derivative`` such as ``y[1],x[0],2.0``."""
    g = result.graph
    w = csv.writer(stream, lineterminator="\n")
    w.writerow(["output", "input", "derivative"])
    oshape = tuple(np.shape(result.values[result.out]))
    outs = entry_names(g.label(result.out), oshape)
    for name, block in result.jacobian.blocks.items():
        ins = entry_names(name, tuple(np.shape(result.values[g.inputs[name]])))
        flat = np.asarray(block, dtype=np.float64).reshape(len(outs), len(ins))
        for r, o in enumerate(outs):
            w.writerows((o, x, csv_cell(flat[r, c])) for c, x in enumerate(ins))


def _csv_tensor_cell(v: Any, write) -> None:
    """A cell as the csv module writes :func:`_csv_cell`'s text: quoted (quotes doubled) when the text has a
    comma or a quote, which for a tensor's compact JSON is known from its shape and whether it is finite."""
    a = None if v is None else np.asarray(v)
    if a is None or a.ndim == 0:
        text = csv_cell(v)
        if "," in text or '"' in text:
            text = '"' + text.replace('"', '""') + '"'
        write(text)
        return
    first = next((d for d in a.shape if d != 1), 1)  # the first level with other than one entry
    quoted = first >= 2 or (a.size > 0 and not np.isfinite(a).all())
    if not quoted:
        _tensor_text(a, write, None)
        return
    write('"')
    _tensor_text(a, write, None, quote='""')
    write('"')


def grad_header(g: Graph, out: int) -> str:
    return f"∂{g.label(out)}/∂node"


def direction_text(result: Result) -> str:
    """Forward mode's direction as ``a = 1, b = 0``."""
    return ", ".join(f"{k} = {fmt_value(t)}" for k, t in (result.direction or {}).items())


def table_title(result: Result) -> str:
    """The title of the table of a run: ``z = 14``, and what was differentiated in another mode than reverse."""
    out = result.graph.label(result.out)
    title = f"{out} = {fmt_value(result.values[result.out])}"
    if result.mode == "forward":
        title += f";  along t ({direction_text(result)}): ∂{out}/∂t = {fmt_value(result.jvp)}"
    elif result.mode == "cotangent":
        title += f";  cotangent v = {fmt_value(result.cotangent)}"
    return title


def derivative_column(result: Result) -> tuple[str | None, list[Any]]:
    """The header and per-node entries of the table's derivative column: ∂out/∂node, each node's tangent in
    forward mode, ``vᵀ·∂out/∂node`` from a cotangent; (None, ...) for a Jacobian, which has no such column."""
    key, second = _second(result)
    out = result.graph.label(result.out)
    if key is None:
        return None, second
    if result.mode == "forward":
        return "tangent ∂node/∂t", second
    if result.mode == "cotangent":
        return f"vᵀ·∂{out}/∂node", second
    return grad_header(result.graph, result.out), second


def text_cell(v: Any) -> str:
    """A value as a rich table cell: :func:`fmt_cell`'s text, escaped, since a cell is read as markup and
    ``[z, 1]`` or ``[inf, 1]`` would read as a tag and vanish."""
    from rich.markup import escape

    return escape(fmt_cell(v))


def to_table(result: Result, all_nodes: bool = False):
    """A rich Table: node, op, expression, shape, value, gradient (forward mode: the tangent; a Jacobian:
    the values, then :func:`jacobian_tables`)."""
    from rich.markup import escape  # (the expression: text, not markup, as text_cell's values)
    from rich.table import Table

    g = result.graph
    out = g.label(result.out)
    labels = node_names(g)  # the same names as explain, the pictures and check
    title = table_title(result)
    key, _ = _second(result)
    header, second = derivative_column(result)
    t = Table(title=title, title_justify="left")
    t.add_column("node", style="bold", no_wrap=True)
    t.add_column("op", style="dim", no_wrap=True)
    t.add_column("expression", overflow="fold", min_width=6)
    t.add_column("shape", style="dim", no_wrap=True)
    t.add_column("value", justify="right", style="cyan", overflow="fold")
    if key is not None:
        t.add_column(header, justify="right", style="magenta", overflow="fold")
    # gradients: a node the output does not depend on (ir's one definition) is marked, not given a gradient
    on_path = g.ancestors(result.out) if key == "grad" else [True] * len(g)
    off = []
    for i in rows(result, all_nodes):
        if not on_path[i]:
            off.append(labels[i])
        t.add_row(
            labels[i],
            g.ops[i],
            escape(g.short_text(i)),
            fmt_shape(tuple(np.shape(result.values[i]))) if np.ndim(result.values[i]) else "()",
            text_cell(result.values[i]),
            *([text_cell(second[i]) if on_path[i] else OFF_PATH_MARK] if key is not None else []),
            style=None if on_path[i] else "dim",
        )
    captions = []
    if off:
        captions.append(f"{OFF_PATH_MARK} {', '.join(off)}: not on a path to {out} (no gradient)")
    if key == "grad" and result.wrt is not None:  # eval --wrt, or inputs declared data: say whose gradients these are
        data = [x for x in g.inputs if x in g.data_inputs]
        said = f"gradients with respect to {', '.join(result.wrt)} only" if result.wrt else "no input is differentiated"
        captions.append(said + (f" ({', '.join(data)}: data)" if data else ""))
    if captions:
        t.caption = "\n".join(captions)
        t.caption_justify = "left"
    if result.mode == "jacobian":
        from rich.console import Group

        return Group(t, *jacobian_tables(result))
    return t


# the columns a table too narrow for its terminal leaves out, in this order, so that each row keeps its node, its
# value and its derivative whole (the numbers a table is read for) instead of every column cut to a sliver
SPARE_COLUMNS = ("expression", "shape", "op")


def _cell_text(cell: Any, console: Any) -> str | None:
    """A table cell's text as ``console`` shows it (a str is markup, and emoji codes if the console reads them);
    None for a renderable that is not text."""
    from rich.text import Text

    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        return console.render_str(cell).plain if "[" in cell or ":" in cell else cell
    return None


def _extent(column: Any, console: Any) -> tuple[int, int]:
    """A rich Column's (narrowest, widest) width over its header and cells, in terminal cells: the longest word
    (text between spaces, such as a number of a tensor cell; the longest line where the column does not wrap)
    and the longest line."""
    from rich.cells import cell_len

    word = line = 1
    for cell in (column.header, *column._cells):
        text = _cell_text(cell, console)
        if text is not None:
            word = max(word, *map(cell_len, text.split() or [""]))
            line = max(line, *map(cell_len, text.split("\n")))
    return (line if column.no_wrap else word), line


def narrowed(table: Any, console: Any) -> Any:
    """``table`` (a rich Table) made to fit ``console``'s width with every word whole, when it is wider:
    without its :data:`SPARE_COLUMNS`, one at a time, until its narrowest widths fit (:func:`_extent`; a caption
    says which were left out), then each column given its narrowest width and a share of the room left by what
    its longest line lacks (rich, left to itself, cuts numbers and names to share the room evenly). If even the
    narrowest widths do not fit, rich shares out the room."""
    if not any(c.header in SPARE_COLUMNS for c in table.columns):  # (not eval's table: as rich draws it)
        return table
    width = console.width
    border = 1 + 3 * len(table.columns)  # a border left of each column and after the last; a space either side
    extents = [_extent(c, console) for c in table.columns]
    if border + sum(line for _, line in extents) <= width:
        return table
    left_out = []
    for name in SPARE_COLUMNS:
        if border + sum(word for word, _ in extents) <= width:
            break
        keep = [k for k, c in enumerate(table.columns) if c.header != name]
        if len(keep) < len(table.columns):
            table.columns[:] = [table.columns[k] for k in keep]
            extents = [extents[k] for k in keep]
            border = 1 + 3 * len(table.columns)
            left_out.append(name)
    widths = [word for word, _ in extents]
    room = width - border - sum(widths)
    if room < 0:  # not even the narrowest words fit: rich shares the room (the columns left out stay out)
        widths = []
    lack = [line - word for word, line in extents]
    if room > 0 and sum(lack):
        share = [room * x // sum(lack) for x in lack]
        widths = [w + min(s, x) for w, s, x in zip(widths, share, lack)]
    for column, w in zip(table.columns, widths):
        column.width = w
    if left_out:
        note = f"(too narrow for the {', '.join(left_out)} column{'s' if len(left_out) > 1 else ''})"
        table.caption = note if not table.caption else f"{table.caption}\n{note}"
        table.caption_justify = "left"
    return table


FAST_ROWS = 500  # a longer table written to a file or a pipe is laid out by plain_text, not by rich


def plain_text(table: Any, console: Any, max_width: int) -> str | None:
    """The text rich writes for ``table`` (a rich Table) on ``console`` at its natural width, laid out here: rich
    takes seconds for a table of 10,000 rows (it measures and renders every cell as a renderable), this a few
    hundredths. Rich still draws the frame (title, header, borders, caption) around a probe row of the columns'
    widths per row style, and each row is that probe's line with its cells in place of the probe's (so its
    borders, padding and colours are rich's own). None when the table needs more than ``max_width`` columns
    (rich then wraps its cells) or has what this does not lay out (fixed widths, sections, tabs or control
    characters in a cell). ``console``'s width is set to the table's."""
    from rich.cells import cell_len
    from rich.table import Table

    columns = table.columns
    if not columns or any(c.width is not None or c.max_width is not None for c in columns):
        return None
    if any(row.end_section for row in table.rows) or table.show_lines or not table.show_header:
        return None
    cells: list[list[list[str]]] = []  # per column, per row: its lines
    for column in columns:
        lines = []
        for cell in column._cells:
            text = _cell_text(cell, console)
            if text is None:
                return None
            if not text.isprintable() and any(ch != "\n" and not ch.isprintable() for ch in text):
                return None
            lines.append(text.split("\n"))
        cells.append(lines)
    if console.color_system is not None and any(len(cell) > 1 for col in cells for cell in col):
        return None  # (in colour, rich writes a cell's blank lines below its text as one segment: it lays them out)
    headers = [str(c.header) for c in columns]
    widths = [
        max(column.min_width or 1, cell_len(header), *(cell_len(line) for cell in col for line in cell))
        for column, header, col in zip(columns, headers, cells)
    ]
    width = 1 + sum(w + 3 for w in widths)
    if width > max_width:
        return None
    frame = Table(
        title=table.title,
        caption=table.caption,
        title_justify=table.title_justify,
        caption_justify=table.caption_justify,
        box=table.box,
        padding=table.padding,
        style=table.style,
        border_style=table.border_style,
        header_style=table.header_style,
        title_style=table.title_style,
        caption_style=table.caption_style,
    )
    for column, header in zip(columns, headers):
        frame.add_column(
            header,
            justify=column.justify,
            min_width=column.min_width,
            style=column.style,
            header_style=column.header_style,
        )
    styles = list(dict.fromkeys(row.style for row in table.rows))  # a probe row per row style, each its letter
    letters = "xyzuvw"
    if len(styles) > len(letters):
        return None
    for letter, style in zip(letters, styles):
        frame.add_row(*[letter * w for w in widths], style=style)
    console.width = width  # (rich draws no wider than its console)
    with console.capture() as captured:
        console.print(frame)
    drawn = [line.rstrip() for line in captured.get().split("\n")]
    templates = {}  # row style -> the probe's line cut around its cells
    for letter, style in zip(letters, styles):
        found = [k for k, line in enumerate(drawn) if letter * widths[0] in line]
        if len(found) != 1:  # the frame is not one line per probe row: rich lays the table out
            return None
        line, pieces, at = drawn[found[0]], [], 0
        for w in widths:
            start = line.find(letter * w, at)
            if start < 0:
                return None
            pieces.append(line[at:start])
            at = start + w
        pieces.append(line[at:])
        templates[style] = (found[0], pieces)

    def row_lines(row: list[list[str]], pieces: list[str]) -> list[str]:
        out = []
        for k in range(max(map(len, row))):
            parts = [pieces[0]]
            for lines, w, column, piece in zip(row, widths, columns, pieces[1:]):
                text = lines[k] if k < len(lines) else ""
                gap = w - cell_len(text)
                if column.justify == "right":
                    parts.append(" " * gap + text)
                elif column.justify == "center":
                    parts.append(" " * (gap // 2) + text + " " * (gap - gap // 2))
                else:
                    parts.append(text + " " * gap)
                parts.append(piece)
            out.append("".join(parts).rstrip())
        return out

    first, last = min(t[0] for t in templates.values()), max(t[0] for t in templates.values())
    if last - first + 1 != len(templates):  # (the probe rows one after another)
        return None
    body = [
        line
        for r, row in enumerate(table.rows)
        for line in row_lines([col[r] for col in cells], templates[row.style][1])
    ]
    return "\n".join(drawn[:first] + body + drawn[last + 1 :])


OFF_PATH_MARK = "(off path)"
JAC_ROWS, JAC_COLS = 12, 8  # a Jacobian block larger than this is shown by its corner and its size


def jacobian_tables(result: Result) -> list[Any]:
    """A line saying how it was computed, then per input a title and a table: ∂out/∂x as a matrix, one row
    per output entry and a column per input entry
    (the first rows and columns of a large one, with how many more there are)."""
    from rich.table import Table
    from rich.text import Text

    g = result.graph
    jac = result.jacobian
    out = g.label(result.out)
    oshape = tuple(np.shape(result.values[result.out]))
    outs = entry_names(out, oshape)
    how = (
        f"by {jac.mode} mode: {jac.passes} pass{'es' * (jac.passes != 1)}, one per "
        f"{'input' if jac.mode == 'forward' else 'output'} entry (the other mode would take {jac.other})"
    )
    tables = []
    for k, (name, block) in enumerate(jac.blocks.items()):
        ishape = tuple(np.shape(result.values[g.inputs[name]]))
        ins = entry_names(name, ishape)
        flat = np.asarray(block).reshape(len(outs), len(ins))
        shown_r, shown_c = min(len(outs), JAC_ROWS), min(len(ins), JAC_COLS)
        title = f"∂{out}/∂{name}: shape {fmt_shape(oshape + ishape)}"
        if shown_r < len(outs) or shown_c < len(ins):
            title += f", the first {shown_r} × {shown_c} of {len(outs)} × {len(ins)} entries"
        if k == 0:
            tables.append(Text(f"Jacobian {how}", style="bold"))
        tables.append(Text(title))
        t = Table()
        t.add_column("", style="bold", no_wrap=True)
        for c in range(shown_c):
            t.add_column(ins[c], justify="right", style="magenta", no_wrap=True)
        if shown_c < len(ins):
            t.add_column("…", no_wrap=True)
        for r in range(shown_r):
            cells = [fmt_number(flat[r, c]) for c in range(shown_c)]
            t.add_row(outs[r], *cells, *(["…"] if shown_c < len(ins) else []))
        if shown_r < len(outs):
            t.add_row("…", *["…"] * (shown_c + (shown_c < len(ins))))
        tables.append(t)
    return tables


def nonfinite_warnings(result: Result) -> list[str]:
    """The warnings of building the graph (:func:`build_warnings`), then one per pass naming the first node where
    a non-finite number appeared (:func:`anomaly.warnings`)."""
    return build_warnings(result.graph) + anomaly.warnings(result)


def build_warnings(g: Graph) -> list[str]:
    """What the builder noticed, such as a ``grad(loss, w)`` whose ``loss`` does not depend on ``w``."""
    return ["warning: " + format_located(msg, span, g.source) for msg, span in g.warnings]
