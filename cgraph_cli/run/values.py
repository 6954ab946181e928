"""Input values: ``--at`` strings, ``--at-file`` JSON/.npz, defaults, and their checks."""

from __future__ import annotations

import json
import math
import numbers
import re
from decimal import Decimal
from typing import Any

import numpy as np

from cgraph_cli.errors import CgraphError, closest
from cgraph_cli.fmt import JSON_NONFINITE, fmt_shape
from cgraph_cli.ir.graph import Graph

_TOKEN = re.compile(
    r"\s*(?:(?P<open>\[)|(?P<close>\])|(?P<comma>,)|"
    r"(?P<num>[-+]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|infinity|inf|nan))|(?P<pi>[-+]?pi))\s*",
    re.IGNORECASE,
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*\Z")


def input_name(name: str) -> str | None:
    """A name given on the command line as the program spells it (Python's identifiers, NFKC-normalised as the
    parser does: ``θ``, ``ŷ``); None when it is not a name."""
    if _NAME.match(name):
        return name
    if not name.isidentifier():
        return None
    import unicodedata

    return unicodedata.normalize("NFKC", name)


def split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_value(text: str, where: str) -> np.ndarray:
    """A number or a (nested) tensor literal such as ``[[1, 2], [3, 4]]``."""
    pos = 0
    stack: list[list] = [[]]
    expect_item = True
    text = text.strip()
    if not text:
        raise CgraphError(f"{where}: missing value", hint="write name=value, such as a=-1 or x=[1,2,3]")
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise CgraphError(
                f"{where}: cannot read a number at {text[pos : pos + 12]!r}",
                hint="values are numbers or tensor literals such as [1, 2, 3]",
            )
        pos = m.end()
        if m.group("open"):
            if not expect_item:
                raise CgraphError(f"{where}: expected ',' before '['")
            stack.append([])
        elif m.group("close"):
            if len(stack) < 2:
                raise CgraphError(f"{where}: unbalanced ']'")
            done = stack.pop()
            stack[-1].append(done)
            expect_item = False
        elif m.group("comma"):
            if expect_item or len(stack) < 2:
                raise CgraphError(f"{where}: unexpected ','")
            expect_item = True
        else:
            if not expect_item:
                raise CgraphError(f"{where}: expected ',' between numbers")
            if m.group("pi"):
                stack[-1].append(-np.pi if m.group("pi").startswith("-") else np.pi)
            else:
                stack[-1].append(float(m.group("num")))
            expect_item = False
    if len(stack) != 1:
        raise CgraphError(f"{where}: unbalanced '['")
    if len(stack[0]) != 1:
        raise CgraphError(f"{where}: expected one value")
    try:
        return np.array(stack[0][0], dtype=np.float64)
    except ValueError:
        raise CgraphError(f"{where}: the rows of the tensor have different lengths") from None


def parse_at(specs: list[str]) -> dict[str, np.ndarray]:
    """``--at a=1,b=[1,2]`` (repeatable) into a dict of arrays; a name given twice is an error (which one was
    meant cannot be told), also across repeated ``--at`` options."""
    out: dict[str, np.ndarray] = {}
    seen: dict[str, str] = {}
    for spec in specs:
        for part in split_top_level(spec):
            if not part.strip():
                continue
            if "=" not in part:
                raise CgraphError(
                    f"--at: expected name=value, got {part.strip()!r}", hint="for example: --at a=-1,b=3,c=4"
                )
            name, value = part.split("=", 1)
            given = name.strip()
            name = input_name(given)  # type: ignore[assignment]
            if name is None:
                raise CgraphError(f"--at: {given!r} is not a valid input name")
            if name in seen:
                raise CgraphError(
                    f"--at: {name} is given twice ({seen[name]} and {name}={value.strip()})",
                    hint=f"give each input once: drop one of the {name}= values",
                )
            seen[name] = f"{name}={value.strip()}"
            out[name] = parse_value(value, f"--at {name}")
    return out


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive (np.savez), or an empty one


def read_at_file(path: str, max_memory: int | None = None) -> dict[str, np.ndarray]:
    """Values from a JSON object or a ``.npz`` archive (never unpickled).

    Bounded before reading: a JSON file over the program-size limit, or a .npz whose arrays would
    take more than ``max_memory`` bytes once decompressed (a zip bomb), is refused. A stream (a pipe,
    ``<(cat values.npz)``, /dev/zero) is read in chunks up to its limit and refused past it. An archive
    is recognised by its name or its first bytes. Values must be numbers: JSON booleans, strings and
    nulls, and complex, datetime, string, boolean or object arrays, are refused.
    """
    from cgraph_cli.fsutil import open_input, read_bounded, regular_size
    from cgraph_cli.limits import DEFAULT_MAX_MEMORY

    limit = DEFAULT_MAX_MEMORY if max_memory is None else max_memory
    with open_input(path, "--at-file: ", "a file of values") as f:
        size = regular_size(f)
        head = read_bounded(f, 3)  # the first 4 bytes, if there are that many
        if path.endswith(".npz") or head.startswith(_ZIP_MAGIC):
            if not head.startswith(_ZIP_MAGIC):  # numpy would call it "pickled data"
                raise CgraphError(f"--at-file: {path} is not a .npz archive (numpy.savez writes one)")
            return _read_npz(f, head, size, path, limit)
        data = _read_json_bytes(f, head, size, path)
    try:
        objects: list[list[tuple[str, Any]]] = []  # each object's pairs, innermost first: the document's is last
        data = json.loads(data.decode("utf-8-sig"), object_pairs_hook=lambda p: objects.append(p) or dict(p))
    except UnicodeDecodeError as e:
        raise CgraphError(f"--at-file: {path} is not UTF-8 text (byte {e.start} cannot be decoded)") from None
    except json.JSONDecodeError as e:
        raise CgraphError(f"--at-file: {path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    except RecursionError:
        raise CgraphError(f"--at-file: {path} is nested too deeply to be a tensor") from None
    if not isinstance(data, dict):
        raise CgraphError(f'--at-file: {path} must hold a JSON object such as {{"a": 1, "x": [1, 2]}}')
    out: dict[str, np.ndarray] = {}
    for k, v in objects[-1]:  # (the pairs as written: a key given twice is seen twice)
        name = input_name(str(k))
        if name is None:
            raise CgraphError(f"--at-file: {k!r} is not a valid input name")
        if name in out:  # as --at a=1 --at a=2 (ｘ is x: names are read as the program reads them)
            raise CgraphError(f"--at-file: input {name!r} is given twice")
        out[name] = _json_array(_check_json_numbers(v, str(k)), str(k), path)
    return out


def _read_json_bytes(f, head: bytes, size: int | None, path: str) -> bytes:
    from cgraph_cli.fsutil import read_bounded
    from cgraph_cli.limits import MAX_FILE_BYTES, fmt_bytes

    hint = "save large arrays with numpy.savez and pass the .npz file"
    if size is not None and size > MAX_FILE_BYTES:  # refused without reading it
        raise CgraphError(
            f"--at-file: {path} is too large ({fmt_bytes(size)}); "
            f"a JSON file of values may hold at most {fmt_bytes(MAX_FILE_BYTES)}",
            hint=hint,
        )
    data = head + read_bounded(f, MAX_FILE_BYTES - len(head))
    if len(data) > MAX_FILE_BYTES:  # a stream that goes on past the limit: not read further
        raise CgraphError(
            f"--at-file: {path} is too large (over {fmt_bytes(MAX_FILE_BYTES)}, not read further); "
            f"a JSON file of values may hold at most {fmt_bytes(MAX_FILE_BYTES)}",
            hint=hint,
        )
    return data


def _read_npz(f, head: bytes, size: int | None, path: str, limit: int) -> dict[str, np.ndarray]:
    """The arrays of a .npz archive: a regular file is read in place; a stream (which zipfile cannot seek)
    is read into memory, at most the memory limit plus room for the archive's headers."""
    import io
    import zipfile
    import zlib

    from cgraph_cli.fsutil import read_bounded
    from cgraph_cli.limits import NPZ_OVERHEAD_BYTES, fmt_bytes

    if size is not None:
        f.seek(0)
        archive = f
    else:
        stream_limit = limit + NPZ_OVERHEAD_BYTES
        data = head + read_bounded(f, stream_limit - len(head))
        if len(data) > stream_limit:
            raise CgraphError(
                f"--at-file: {path} is too large (over {fmt_bytes(stream_limit)}, not read further); "
                f"an archive read from a pipe may hold the memory limit of {fmt_bytes(limit)} and "
                f"{fmt_bytes(NPZ_OVERHEAD_BYTES)} of headers",
                hint="raise the limit with --max-memory, or pass a regular file",
            )
        archive = io.BytesIO(data)
    out: dict[str, np.ndarray] = {}
    try:
        with np.load(archive, allow_pickle=False) as z:
            total = sum(info.file_size for info in z.zip.infolist())
            if total > limit:
                raise CgraphError(
                    f"--at-file: the arrays in {path} take {fmt_bytes(total)}, "
                    f"more than the memory limit of {fmt_bytes(limit)}",
                    hint="raise the limit with --max-memory",
                )
            for k in z.files:
                try:
                    arr = z[k]
                except ValueError as e:
                    if "allow_pickle" in str(e) or "Object arrays" in str(e):
                        raise CgraphError(
                            f"--at-file: the array {k!r} in {path} has dtype object; values must be real "
                            "numbers (object arrays are never unpickled)"
                        ) from None
                    raise
                if not isinstance(arr, np.ndarray):  # a member that is not a .npy file
                    raise CgraphError(f"--at-file: {k!r} in {path} is not a numpy array (numpy.savez writes them)")
                if arr.dtype.kind not in "iuf":
                    raise CgraphError(
                        f"--at-file: the array {k!r} in {path} has dtype {arr.dtype} "
                        f"({VALUE_KIND_WORDS.get(arr.dtype.kind, 'not numbers')}); values must be real numbers "
                        "(integers or floats)",
                        hint=f"convert it first, for example with numpy: {k}.real or {k}.astype(float)",
                    )
                out[k] = np.asarray(arr, dtype=np.float64)
    except (ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise CgraphError(f"--at-file: cannot read {path}: {e}") from None
    return out


VALUE_KIND_WORDS = {  # what an array of a numpy kind holds, in words (.npz inputs, the Python API)
    "b": "booleans",
    "c": "complex numbers",
    "M": "dates and times",
    "m": "time intervals",
    "O": "Python objects",
    "U": "text",
    "S": "bytes",
    "V": "raw records",
}
_NUMBER_TYPES = {int, float}
_REAL = (numbers.Real, np.integer, np.floating, Decimal)  # what a value's entries may be (bool aside)


def real_array(v: Any, where: str) -> np.ndarray:
    """A value given in Python (a number, nested lists or tuples, an array of integers or floats) as a float64
    array; ``where`` starts the message of a refusal (``"input 'x'"``, ``"--tangent x"``). numpy would read much
    else as numbers without a word, and each is refused as ``--at-file`` refuses it: booleans (True as 1.0), text
    ("2" as 2.0), None (NaN), complex numbers (the imaginary part dropped), dates (days since 1970), byte buffers
    (their byte codes), in an array, a list or an object array alike; and a list that is not rectangular (or
    holds itself)."""
    if v is None or isinstance(v, (str, bytes, bytearray, memoryview)):
        raise CgraphError(f"{where}: {v!r} is not a number or a rectangular list of numbers")
    kind = getattr(getattr(v, "dtype", None), "kind", None)
    if kind is not None and kind in "fiu":  # (an array or a numpy number: as it is)
        return np.array(v, dtype=np.float64)
    if kind is not None and kind != "O":
        raise _kind_refusal(where, kind)
    try:  # every entry once, whatever holds it (lists, tuples, object arrays, 0-d arrays inside lists)
        leaves = np.array(v, dtype=object)
    except (TypeError, ValueError, OverflowError, RecursionError):
        leaves = None
    if leaves is not None:
        for t in set(map(type, leaves.flat)):
            if issubclass(t, (bool, np.bool_)):
                raise _kind_refusal(where, "b")
            holder = "list" if isinstance(v, (list, tuple)) else "value"
            if issubclass(t, np.ndarray):  # a 0-d array in a list: by its kind, or its item's type
                for x in leaves.flat:
                    if type(x) is not t:
                        continue
                    if x.ndim:
                        raise _not_rectangular(where)
                    if x.dtype.kind == "O" and not _is_real(x.item()):
                        raise CgraphError(f"{where}: {x.item()!r} in the {holder} is not a number")
                    if x.dtype.kind not in "fiuO":
                        raise _kind_refusal(where, x.dtype.kind)
            elif issubclass(t, (list, tuple)):  # not rectangular, or a list that holds itself
                raise _not_rectangular(where)
            elif not issubclass(t, _REAL):
                x = next(x for x in leaves.flat if type(x) is t)
                raise CgraphError(f"{where}: {x!r} in the {holder} is not a number")
    try:
        return np.array(v, dtype=np.float64)
    except (TypeError, ValueError, OverflowError, RecursionError):
        raise _not_rectangular(where) from None


def _is_real(x: Any) -> bool:
    return isinstance(x, _REAL) and not isinstance(x, (bool, np.bool_))


def _kind_refusal(where: str, kind: str) -> CgraphError:
    if kind == "b":
        return CgraphError(f"{where}: booleans are not numbers here; give 1.0 and 0.0")
    return CgraphError(
        f"{where}: the value holds {VALUE_KIND_WORDS.get(kind, 'something else')}, not real numbers",
        hint="convert it first, for example with numpy: x.real or x.astype(float)" if kind == "c" else None,
    )


def _not_rectangular(where: str) -> CgraphError:
    return CgraphError(f"{where}: the value is not a number or a rectangular list of numbers")


def _json_word(x: Any) -> str:
    if x is True or x is False:
        return f"{str(x).lower()} (a boolean)"
    if x is None:
        return "null"
    if isinstance(x, str):
        return "a string"
    if isinstance(x, dict):
        return "an object"
    return type(x).__name__  # pragma: no cover - json.loads makes nothing else


def _check_json_numbers(v: Any, name: str) -> Any:
    """``v`` with the strings of :data:`~cgraph_cli.fmt.JSON_NONFINITE` read as their numbers (in place in
    lists); refuse a JSON value that holds anything else but numbers and lists (true, false, null, other strings,
    objects), naming the first such item by its place, such as ``a[1][0]``. numpy would read ``true`` as 1,
    ``"1.5"`` as 1.5 and ``null`` as NaN without a word."""
    if type(v) in _NUMBER_TYPES:
        return v
    if type(v) is str and v in JSON_NONFINITE:
        return JSON_NONFINITE[v]
    if not isinstance(v, list):
        raise CgraphError(f"--at-file: the value of {name!r} is {_json_word(v)}, not a number")
    stack: list[tuple[list, str]] = [(v, name)]
    while stack:
        items, where = stack.pop()
        kinds = set(map(type, items))
        if kinds <= _NUMBER_TYPES:
            continue
        sub = []
        for i, x in enumerate(items):
            if type(x) in _NUMBER_TYPES:
                continue
            if type(x) is str and x in JSON_NONFINITE:
                items[i] = JSON_NONFINITE[x]
                continue
            if isinstance(x, list):
                sub.append((x, f"{where}[{i}]"))
                continue
            raise CgraphError(
                f"--at-file: the value of {name!r} holds {_json_word(x)} at {where}[{i}], not a number",
                hint="values are numbers or rectangular lists of numbers",
            )
        stack.extend(reversed(sub))  # depth first, in reading order: the first bad item is the one named
    return v


def _json_array(v: Any, name: str, path: str) -> np.ndarray:
    try:
        try:
            return np.array(v, dtype=np.float64)
        except OverflowError:  # an integer beyond float range: infinite, as --at reads it
            return np.array(_floats(v), dtype=np.float64)
    except (ValueError, TypeError):
        raise CgraphError(
            f"--at-file: the value of {name!r} is not a number or a rectangular list of numbers"
        ) from None
    except RecursionError:
        raise CgraphError(f"--at-file: {path} is nested too deeply to be a tensor") from None


def _floats(v: Any) -> Any:
    if isinstance(v, list):
        return [_floats(x) for x in v]
    try:
        return float(v)
    except OverflowError:
        return float("inf") if v > 0 else float("-inf")


def gather_values(at: list[str] | None, at_file: str | None, max_memory: int | None = None) -> dict[str, np.ndarray]:
    """``--at-file`` first, then ``--at`` on top of it."""
    values: dict[str, np.ndarray] = {}
    if at_file:
        values.update(read_at_file(at_file, max_memory))
    if at:
        values.update(parse_at(at))
    return values


def bind_inputs(g: Graph, given: dict[str, Any], *, require: bool = True, csv: bool = False) -> dict[str, np.ndarray]:
    """Every input's value: given, else its default. Unknown names and missing values are errors (``csv``: the
    values of ``--batch``, whose scalar inputs may be columns of the CSV)."""
    unknown = [k for k in given if k not in g.inputs]
    if unknown:
        listed = ", ".join(g.inputs) or "none"
        hint = None
        if len(unknown) == 1:
            best = closest(unknown[0], list(g.inputs))
            hint = f"did you mean '{best}'?" if best else None
        word = "input" if len(unknown) == 1 else "inputs"
        raise CgraphError(
            f"unknown {word} {', '.join(repr(u) for u in unknown)}; the program's inputs are: {listed}", hint=hint
        )
    out: dict[str, np.ndarray] = {}
    missing = []
    for name in g.inputs:
        if name in given:
            with np.errstate(over="ignore"):  # beyond float32 becomes inf: the non-finite warning names the input
                v = np.asarray(given[name], dtype=g.dtype)
        elif name in g.defaults:
            v = np.asarray(g.defaults[name], dtype=g.dtype)
        else:
            missing.append(name)
            continue
        want = g.declared_shapes.get(name)
        if want is not None and tuple(v.shape) != tuple(want):
            raise CgraphError(
                f"input '{name}' is declared with shape {fmt_shape(want)} but its value has shape {fmt_shape(v.shape)}"
            )
        out[name] = v
    if missing and require:
        raise _missing_values(g, missing, csv)
    return out


def _missing_values(g: Graph, missing: list[str], csv: bool) -> CgraphError:
    """The error for inputs that have no value, with how to give them: under ``--batch`` (``csv``) a scalar input
    may be a column of the CSV and a tensor one is given with ``--at`` (a value of its shape); otherwise with
    ``--at``, the place of a name that may be a typo (a name never assigned is an input) and what it may mean."""
    many = len(missing) > 1
    them = "them" if many else "it"
    message = f"missing value{'s' * many} for input{'s' * many}: {', '.join(missing)}"
    if csv:
        scalar = [m for m in missing if not g.declared_shapes.get(m)]  # (a CSV cell is a number)
        shapes = {m: tuple(g.declared_shapes.get(m) or ()) for m in missing[:3]}
        examples = {m: _literal(sh) for m, sh in shapes.items()}
        example = ",".join(f"{m}={x}" for m, x in examples.items() if x is not None)
        large = [f"{m} of shape {fmt_shape(shapes[m])}" for m, x in examples.items() if x is None]
        return CgraphError(
            message,
            hint=(f"add a column named {scalar[0]} to the CSV, or give " if scalar else "give ")
            + f"{them} with --at"
            + (f", for example: --at {example}" if example else "")
            + (f" (or --at-file for {', '.join(large)})" if large else ""),
        )
    hint = f"give {them} with --at, for example: --at {','.join(f'{m}=1' for m in missing[:3])}"
    at = None  # the input whose use the error points at
    dotted = next((m for m in missing if "·" in m), None)
    assigned = [b for b in g.bindings if b not in g.inputs]
    typo = next(((m, best) for m in missing if (best := closest(m, assigned))), None)
    if dotted is not None:  # (explain writes · for a product; Python's names may hold it)
        at = dotted
        hint = f"'{dotted}' is one name ('·' may be part of a name): to multiply, write {dotted.replace('·', ' * ')}"
    elif typo is not None:  # a misspelt name would quietly become an input
        at, best = typo
        hint = f"'{at}' is never assigned, so it is an input: did you mean '{best}'? Otherwise " + hint
    if at is None:
        return CgraphError(message, hint=hint)
    return CgraphError(message, g.spans[g.inputs[at]], hint=hint, source=g.source)


def _literal(shape: tuple[int, ...]) -> str | None:
    """A value of ``shape`` to show in a hint (1, [1, 1], [[1, 1], [1, 1]]); None past six entries."""
    if math.prod(shape) > 6:
        return None
    text = "1"
    for n in reversed(shape):
        text = "[" + ", ".join([text] * n) + "]"
    return text
