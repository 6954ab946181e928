"""Compiling a big program: memory a node, and the statement-at-a-time lowering that keeps it low.

The compiler lowers the fast parser's statements a block at a time (the whole program's AST never exists
next to its graph), shares equal scalar constants and keeps spans in two integer columns.  The tests below
check the memory bound, and that the result (graph, errors and which error comes first) is the same as
parsing everything first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cgraph_cli.errors import CgraphError, Source
from cgraph_cli.ir.graph import Spans, format_ir
from cgraph_cli.lang import parser as P
from cgraph_cli.run.program import compile_program

ROOT = Path(__file__).resolve().parent.parent

# Peak RSS growth while compiling `x{i+1} = x{i} * 1.0001 + 0.5` (4 nodes a line), bytes a node:
# about 670 before (AST of the whole program held next to the graph, a 0-d array and a dict a constant,
# a tuple a span), about 180 after.  The bound sits between them with a wide margin either way.
MAX_BYTES_PER_NODE = 400

_MEASURE = r"""
import resource, sys
from cgraph_cli.errors import Source
from cgraph_cli.run.program import compile_program


def peak():
    # VmHWM belongs to this process's own memory map; ru_maxrss would start at the parent's size
    # (Linux carries it over exec), hiding the growth when the test runner is big
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


n = int(sys.argv[1])
text = "x0 = 1.5\n" + "".join(f"x{i + 1} = x{i} * 1.0001 + 0.5\n" for i in range(n))
source = Source(text, "big.cg")
base = peak()
g = compile_program(source, use_cache=False)
print(len(g), peak() - base)
"""


@pytest.mark.slow
def test_compile_peak_memory_per_node():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("CGRAPH_PARSER", None)
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, "200000"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600
    )
    assert out.returncode == 0, out.stderr
    nodes, grown = map(int, out.stdout.split())
    assert nodes == 800_001
    assert grown / nodes < MAX_BYTES_PER_NODE, f"{grown / nodes:.0f} bytes a node"


def _program(n: int, last: str = "", first: str = "") -> str:
    """A program of several parser blocks (each line ~25 characters, a block 64 KiB)."""
    return first + "x0 = 1.5\n" + "".join(f"x{i + 1} = x{i} * 1.0001 + 0.5\n" for i in range(n)) + last


def _error(text: str, monkeypatch, parser: str | None = None) -> CgraphError:
    if parser:
        monkeypatch.setenv("CGRAPH_PARSER", parser)
    else:
        monkeypatch.delenv("CGRAPH_PARSER", raising=False)
    with pytest.raises(CgraphError) as info:
        compile_program(Source(text, "p.cg"), use_cache=False)
    return info.value


def _same_error(text: str, monkeypatch) -> CgraphError:
    fast = _error(text, monkeypatch)
    ref = _error(text, monkeypatch, "lark")
    assert (fast.message, fast.span, fast.hint) == (ref.message, ref.span, ref.hint)
    return fast


def test_program_spans_several_blocks():
    assert len(_program(20_000)) > 4 * P._BLOCK


def test_a_syntax_error_in_a_later_block_comes_before_a_build_error(monkeypatch):
    err = _same_error(_program(20_000, last="y = (x3 +\n", first="a = nosuch(1)\n"), monkeypatch)
    assert err.message.startswith("syntax error")


def test_a_build_error_is_reported_when_the_rest_parses(monkeypatch):
    err = _same_error(_program(20_000, first="a = nosuch(1)\n"), monkeypatch)
    assert "unknown function 'nosuch'" in err.message


def test_fast_parser_giving_up_late_builds_the_same_graph(monkeypatch):
    deep = "y = " + "(" * 80 + "x5" + ")" * 80 + " * 2\n"  # too deep for the fast path: Lark parses
    text = _program(20_000, last=deep)
    assert P.parse_fast(text) is None
    monkeypatch.delenv("CGRAPH_PARSER", raising=False)
    g = compile_program(Source(text, "p.cg"), use_cache=False)
    monkeypatch.setenv("CGRAPH_PARSER", "lark")
    ref = compile_program(Source(text, "p.cg"), use_cache=False)
    assert format_ir(g) == format_ir(ref)
    assert g.spans == ref.spans


def test_a_build_error_before_a_late_give_up_is_the_reference_error(monkeypatch):
    deep = "y = " + "(" * 80 + "x5" + ")" * 80 + "\n"
    err = _same_error(_program(20_000, first="a = q + nosuch(1)\n", last=deep), monkeypatch)
    assert "nosuch" in err.message


def test_bare_expression_not_last_across_blocks(monkeypatch):
    err = _same_error(_program(20_000, first="x0 * 2\n"), monkeypatch)
    assert "only allowed as the last statement" in err.message
    g = compile_program(Source(_program(20_000, last="x7 * 2\n"), "p.cg"), use_cache=False)
    assert g.names[g.output] == "out"


def test_deep_tensor_literal_refused_after_many_tensor_statements(monkeypatch):
    # the builder forgets which tensors it checked once their statements are dropped (ids may be reused)
    lines = "".join(f"t{i} = [[{i}, 1], [2, 3]]\n" for i in range(5000))
    err = _same_error(lines + "u = " + "[" * 40 + "1" + "]" * 40 + "\n", monkeypatch)
    assert "nest at most" in err.message


def test_equal_scalar_constants_are_shared_and_read_only():
    g = compile_program(Source("a = x * 2.5 + 2.5\nb = a * -0.0 + 0.0\nc = 1 / -0.0 + 1 / 0.0\n", "p.cg"))
    consts = [i for i, op in enumerate(g.ops) if op == "const"]
    by_value: dict = {}
    for i in consts:
        v = g.attrs[i]["value"]
        assert v.shape == () and not v.flags.writeable
        by_value.setdefault((float(v), np.signbit(v)), set()).add(id(g.attrs[i]))
    assert all(len(ids) == 1 for ids in by_value.values())  # one attrs dict a distinct value
    assert (0.0, True) in by_value and (0.0, False) in by_value  # -0.0 and 0.0 stay apart
    assert (2.5, False) in by_value


def test_spans_read_like_a_list_of_pairs():
    g = compile_program(Source("z = x * y\n", "p.cg"))
    assert isinstance(g.spans, Spans)
    assert g.spans[len(g) - 1] == (4, 9) and g.text(len(g) - 1) == "x * y"
    assert list(g.spans) == [g.spans[i] for i in range(len(g))] == g.spans[:]
    assert g.spans == list(g.spans)
