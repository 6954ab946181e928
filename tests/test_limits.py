"""Resource limits: bounded memory, bounded time, clear errors instead of hangs or crashes."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from cgraph_cli import limits
from cgraph_cli.errors import CgraphError, Source
from cgraph_cli.ir.graph import Builder
from cgraph_cli.lang.parser import parse
from cgraph_cli.run.program import compile_program
from tests.conftest import run_inprocess


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Large test programs would be cached under ~/.cache: keep them in a temporary folder."""
    monkeypatch.setenv("CGRAPH_CACHE_DIR", str(tmp_path_factory.mktemp("ir-cache")))


def err_of(*argv: str) -> str:
    code, out, err = run_inprocess(list(argv))
    assert code == 2, (code, out, err)
    assert err.startswith("error: ") and "Traceback" not in err
    return err


# -- memory ----------------------------------------------------------------------------------


def test_huge_constructor_is_refused_before_allocating():
    err = err_of("eval", "-e", "z = sum(zeros(100000, 100000))")
    assert "<expr>:1:9:" in err
    assert "zeros(100000, 100000) would hold 10,000,000,000 values (74.5 GiB)" in err
    assert "memory limit of 1 GiB" in err and "--max-memory" in err


@pytest.mark.parametrize("ctor", ["zeros", "ones", "randn", "rand"])
def test_every_constructor_is_limited(ctor):
    err = err_of("eval", "-e", f"z = sum({ctor}(50000, 50000))")
    assert f"{ctor}(50000, 50000) would hold 2,500,000,000 values" in err


def test_eye_is_limited():
    assert "eye" in err_of("eval", "-e", "z = sum(eye(100000))")


def test_zero_sized_array_with_an_absurd_dimension_is_refused():
    """(0, 10**30) holds no values but numpy cannot represent it: a clear error, not a crash."""
    err_of("eval", "-e", "z = sum(zeros(0, 1e30))")
    err_of("eval", "-e", "z = sum(reshape(zeros(0), 0, 1e15, 1e15))")


def test_broadcast_result_is_limited():
    """An outer sum of two small vectors would allocate 3 GiB: refused at the '+' node."""
    err = err_of("eval", "-e", "z = sum(zeros(20000, 1) + zeros(1, 20000))")
    assert "<expr>:1:9:" in err and "the result of this 'add' would hold 400,000,000 values" in err


def test_total_of_all_values_is_limited():
    prog = "\n".join(f"x{i} = ones(1000, 1000) * {i}" for i in range(20)) + "\nz = sum(x19)"
    err = err_of("eval", "-e", prog, "--max-memory", "100M")
    assert "the values would take" in err and "100 MiB" in err


def test_max_memory_option_changes_the_limit():
    prog = "z = sum(ones(1000, 1000))"
    code, out, _ = run_inprocess(["eval", "-e", prog, "--format", "json"])
    assert code == 0 and json.loads(out)["value"] == 1e6
    err = err_of("eval", "-e", prog, "--max-memory", "1M")
    assert "7.63 MiB" in err and "1 MiB" in err
    assert run_inprocess(["ir", "-e", prog, "--max-memory", "1M"])[0] == 2
    assert run_inprocess(["ir", "-e", prog, "--max-memory", "8M"])[0] == 0


def test_tensor_literal_counts_against_the_limit():
    prog = "z = sum([" + ",".join(["1"] * 200) + "])"
    assert "the tensor literal would hold 200 values" in err_of("eval", "-e", prog, "--max-memory", "1K")


def test_float32_halves_the_bytes():
    prog = "z = sum(ones(1000, 1000))"
    assert run_inprocess(["eval", "-e", prog, "--max-memory", "5M", "--dtype", "float32"])[0] == 0
    assert run_inprocess(["eval", "-e", prog, "--max-memory", "5M"])[0] == 2


@pytest.mark.parametrize(
    "text,expected",
    [("1G", 1 << 30), ("512M", 512 << 20), ("64KiB", 64 << 10), ("1e9", 10**9), ("100", 100), ("1.5g", 3 << 29)],
)
def test_parse_size(text, expected):
    assert limits.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "1X", "-5", "0", "1e99"])
def test_parse_size_rejects(text):
    with pytest.raises(CgraphError):
        limits.parse_size(text)
    assert "--max-memory" in err_of("eval", "-e", "z = 1", "--max-memory", text)


def test_library_default_limit():
    g = compile_program(Source("z = sum(ones(10, 10))"))
    assert g.shapes[g.output] == ()
    with pytest.raises(CgraphError, match="memory limit of 512 bytes"):
        compile_program(Source("z = sum(ones(10, 10))"), max_memory=512)


# -- numbers that overflow -------------------------------------------------------------------


@pytest.mark.parametrize("prog", ["z = 1e999 * a", "z = 10^10^10 * a", "z = a * 2^2^2^2^2^2", "z = exp(exp(exp(a)))"])
def test_overflow_is_a_warning_not_a_hang(prog):
    code, out, err = run_inprocess(["eval", "-e", prog, "--at", "a=3"])
    assert code == 0
    assert "warning:" in err and "non-finite" in err
    code, _, _ = run_inprocess(["eval", "-e", prog, "--at", "a=3", "--strict"])
    assert code == 1


def test_huge_integer_literal_is_a_float():
    code, out, err = run_inprocess(["eval", "-e", "z = 1" + "0" * 400, "--format", "json"])
    assert code == 0 and json.loads(out)["value"] == "Infinity" and "non-finite" in err


def test_huge_static_integers_are_refused():
    err_of("eval", "-e", "z = sum(reshape(zeros(0), 0, 1e30))")
    err_of("eval", "-e", "z = zeros(3)[1e300]")
    err_of("eval", "-e", "z = sum(zeros(3), 1e300)")


# -- program size ----------------------------------------------------------------------------


def test_file_over_the_size_limit_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 1000)
    p = tmp_path / "big.cg"
    p.write_text("z = a\n" * 200)
    err = err_of("eval", str(p))
    assert "too large" in err and "977 bytes" not in err and "limit is 1000 bytes" in err


def test_stdin_over_the_size_limit_is_refused(monkeypatch):
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 1000)
    code, out, err = run_inprocess(["eval", "-"], stdin=b"z = 1\n" * 500)
    assert code == 2 and err.startswith("error: <stdin> is too large")


def test_line_over_the_length_limit_is_refused(monkeypatch):
    monkeypatch.setattr(limits, "MAX_LINE_CHARS", 100)
    err = err_of("eval", "-e", "y = 1\nz = " + " + ".join(["y"] * 100))
    assert "<expr>:2: the line is too long (401 characters)" in err and "limit is 100" in err


def test_default_limits_are_sensible():
    assert limits.MAX_FILE_BYTES == 64 << 20
    assert limits.MAX_LINE_CHARS >= 1_000_000


def test_a_20000_term_sum_on_one_line_works():
    prog = "z = " + " + ".join(f"a{i}" for i in range(20000))
    at = ",".join(f"a{i}={i}" for i in range(20000))
    code, out, err = run_inprocess(["eval", "-e", prog, "--at", at, "--format", "json"])
    assert code == 0, err
    data = json.loads(out)
    assert data["value"] == sum(range(20000))
    assert all(v == 1.0 for v in data["gradients"].values())


# -- def expansion ---------------------------------------------------------------------------


def tower(n: int, call: str = "y = f{n}(a)") -> str:
    lines = ["def f1(x) = x + x"] + [f"def f{i}(x) = f{i - 1}(f{i - 1}(x))" for i in range(2, n + 1)]
    return "\n".join(lines + [call.format(n=n)])


def test_exponential_def_expansion_is_refused_fast():
    """f30 would inline 2^29 additions: refused at the call, before any of it is built."""
    text = tower(30)
    err = err_of("eval", "-e", text, "--at", "a=1")
    assert "<expr>:31:5:" in err and "f30()" in err and "over 10,000,000 nodes" in err


def test_expansion_estimate_is_exact_for_a_small_tower():
    src = Source(tower(5))
    b = Builder(src, {"a": np.float64(1)})
    g = b.build(parse(src))
    assert [b.defs[f"f{k}"].size for k in range(1, 6)] == [1, 2, 4, 8, 16]  # additions only
    assert len(g) == 1 + 16  # the input a and the additions (the last one named y)


def test_expansion_below_the_cap_works_and_above_it_is_refused():
    src = Source(tower(12))
    stmts = parse(src)
    assert len(Builder(src, {"a": np.float64(1)}, max_nodes=2050).build(stmts)) == 2049  # a + 2^11 additions
    with pytest.raises(CgraphError, match="past the limit of 2,000 nodes"):
        Builder(src, {"a": np.float64(1)}, max_nodes=2000).build(stmts)


def test_uncalled_exponential_def_costs_nothing():
    code, out, err = run_inprocess(["eval", "-e", tower(200, "y = a * 2"), "--at", "a=1", "--format", "json"])
    assert code == 0 and json.loads(out)["value"] == 2


def test_node_cap_without_defs():
    src = Source("y = a + a\n" * 50)
    with pytest.raises(CgraphError, match="more than 40 nodes"):
        Builder(src, {"a": np.float64(1)}, max_nodes=40).build(parse(src))


# -- dimensions and nesting ------------------------------------------------------------------


@pytest.mark.parametrize("leaf", ["1", "a"])
def test_deeply_nested_tensor_literal_is_refused_quickly(leaf):
    """Numpy allows 32 (1.x) or 64 (2.x) dimensions; a deeper literal is an error at the literal,
    found in one pass (not once per level)."""
    n = 20000
    prog = "z = sum(" + "[" * n + leaf + "]" * n + ")"
    err = err_of("eval", "-e", prog, "--at", "a=1")
    assert "a tensor literal may nest at most 32 levels deep" in err


def test_32_levels_are_fine():
    prog = "z = sum(" + "[" * 32 + "a" + "]" * 32 + ")"
    code, out, err = run_inprocess(["eval", "-e", prog, "--at", "a=2", "--format", "json"])
    assert code == 0 and json.loads(out)["gradients"]["a"] == 1.0


def test_too_many_dimensions_from_ops_and_constructors():
    ones = ", ".join(["1"] * 33)
    assert "has 34 dimensions (at most 32)" in err_of("eval", "-e", f"z = sum(reshape(ones(1), {ones}, 1))")
    assert "at most 32 dimensions, not 33" in err_of("eval", "-e", f"z = sum(zeros({ones}))")


@pytest.mark.parametrize(
    "nbytes,text", [(1, "1M"), (5 << 20, "8M"), (1 << 30, "1G"), ((1 << 30) + 1, "2G"), (80 * 10**9, "128G")]
)
def test_suggested_limit_is_enough_and_round(nbytes, text):
    assert limits.suggest_size(nbytes) == text
    assert limits.parse_size(text) >= nbytes


def test_error_suggests_a_limit_that_works():
    prog = "z = sum(ones(1000, 1000))"
    err = err_of("eval", "-e", prog, "--max-memory", "4M")
    suggested = re.search(r"--max-memory (\S+)$", err, re.M).group(1)
    assert suggested == "8M"
    assert run_inprocess(["eval", "-e", prog, "--max-memory", suggested])[0] == 0
