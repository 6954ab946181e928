"""Input values: ``--at`` strings, ``--at-file`` JSON/.npz, defaults, and their checks."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from cgraph_cli.errors import CgraphError, closest
from cgraph_cli.ir import Graph
from cgraph_cli.ops import fmt_shape

_TOKEN = re.compile(
    r"\s*(?:(?P<open>\[)|(?P<close>\])|(?P<comma>,)|"
    r"(?P<num>[-+]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|inf|infinity|nan))|(?P<pi>[-+]?pi))\s*",
    re.IGNORECASE,
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*\Z")


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
    """``--at a=1,b=[1,2]`` (repeatable) into a dict of arrays."""
    out: dict[str, np.ndarray] = {}
    for spec in specs:
        for part in split_top_level(spec):
            if not part.strip():
                continue
            if "=" not in part:
                raise CgraphError(
                    f"--at: expected name=value, got {part.strip()!r}", hint="for example: --at a=-1,b=3,c=4"
                )
            name, value = part.split("=", 1)
            name = name.strip()
            if not _NAME.match(name):
                raise CgraphError(f"--at: {name!r} is not a valid input name")
            out[name] = parse_value(value, f"--at {name}")
    return out


def read_at_file(path: str, max_memory: int | None = None) -> dict[str, np.ndarray]:
    """Values from a JSON object or a ``.npz`` archive (never unpickled).

    Bounded before reading: a JSON file over the program-size limit, or a .npz whose arrays would
    take more than ``max_memory`` bytes once decompressed (a zip bomb), is refused.
    """
    from cgraph_cli.limits import DEFAULT_MAX_MEMORY, MAX_FILE_BYTES, fmt_bytes

    limit = DEFAULT_MAX_MEMORY if max_memory is None else max_memory
    p = Path(path)
    try:
        if p.suffix == ".npz":
            import zipfile

            if p.is_file() and not zipfile.is_zipfile(p):  # numpy would call it "pickled data"
                raise CgraphError(f"--at-file: {path} is not a .npz archive (numpy.savez writes one)")
            with np.load(p, allow_pickle=False) as z:
                size = sum(info.file_size for info in z.zip.infolist())
                if size > limit:
                    raise CgraphError(
                        f"--at-file: the arrays in {path} take {fmt_bytes(size)}, "
                        f"more than the memory limit of {fmt_bytes(limit)}",
                        hint="raise the limit with --max-memory",
                    )
                return {k: np.asarray(z[k], dtype=np.float64) for k in z.files}
        if p.is_file() and p.stat().st_size > MAX_FILE_BYTES:
            raise CgraphError(
                f"--at-file: {path} is too large ({fmt_bytes(p.stat().st_size)}); "
                f"a JSON file of values may hold at most {fmt_bytes(MAX_FILE_BYTES)}",
                hint="save large arrays with numpy.savez and pass the .npz file",
            )
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CgraphError(f"--at-file: no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CgraphError(f"--at-file: cannot read {path}: {e}") from None
    except json.JSONDecodeError as e:
        raise CgraphError(f"--at-file: {path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    except RecursionError:
        raise CgraphError(f"--at-file: {path} is nested too deeply to be a tensor") from None
    except (ValueError, TypeError) as e:  # a bad .npz (object arrays, not a zip, ...)
        raise CgraphError(f"--at-file: cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise CgraphError(f'--at-file: {path} must hold a JSON object such as {{"a": 1, "x": [1, 2]}}')
    out = {}
    for k, v in data.items():
        if not _NAME.match(str(k)):
            raise CgraphError(f"--at-file: {k!r} is not a valid input name")
        try:
            arr = np.array(v, dtype=np.float64)
        except (ValueError, TypeError):
            raise CgraphError(
                f"--at-file: the value of {k!r} is not a number or a rectangular list of numbers"
            ) from None
        out[str(k)] = arr
    return out


def gather_values(at: list[str] | None, at_file: str | None, max_memory: int | None = None) -> dict[str, np.ndarray]:
    """``--at-file`` first, then ``--at`` on top of it."""
    values: dict[str, np.ndarray] = {}
    if at_file:
        values.update(read_at_file(at_file, max_memory))
    if at:
        values.update(parse_at(at))
    return values


def bind_inputs(g: Graph, given: dict[str, Any], *, require: bool = True) -> dict[str, np.ndarray]:
    """Every input's value: given, else its default. Unknown names and missing values are errors."""
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
        example = ",".join(f"{m}=1" for m in missing[:3])
        raise CgraphError(
            f"missing value{'s' * (len(missing) > 1)} for input{'s' * (len(missing) > 1)}: {', '.join(missing)}",
            hint=f"give {'them' if len(missing) > 1 else 'it'} with --at, for example: --at {example}",
        )
    return out
