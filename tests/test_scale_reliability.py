"""Issue 9: output formatting, max/min with many operands and explain stay within bounded memory and time.

- eval's JSON and CSV are written chunk by chunk (present.write_json / write_csv): the same bytes as
  before, with memory bounded by a few chunks of text instead of ~400 bytes per tensor entry;
- max()/min() with n operands are linear in n (engine strategies, VJP with ties, explain, pictures);
- explain refuses programs above its size limit up front, with a hint.

No test asserts a time: the many-operand tests are simply infeasible (subprocess timeout) when quadratic.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tracemalloc

import numpy as np
import pytest

from cgraph_cli import fmt
from cgraph_cli.present import tables as present
from cgraph_cli.run.program import load_source, run
from tests.conftest import EXAMPLES, run_cli

pytestmark = pytest.mark.slow  # the quick loop (make test-fast) leaves this file out

FILES = sorted(EXAMPLES.glob("*.cg"))


# -- the reference: the formatting code before streaming (json.dumps of nested lists, csv module) --------------------


def _f32(x) -> float:
    """A float32 number as written since issue 15: its shortest float32 text, read back as a float."""
    return float(str(np.float32(x)))


def ref_json_value(v):
    if v is None:
        return None
    a0 = np.asarray(v)
    if a0.dtype == np.float32:

        def conv(x):
            return _f32(x) if np.isfinite(x) else fmt.json_number(x)
    else:
        conv = fmt.json_number
    a = np.asarray(v, dtype=np.float64)
    if a.ndim == 0:
        return conv(a0)
    if a.size == 0 or (a0.dtype != np.float32 and np.all(np.isfinite(a))):
        return a.tolist()
    flat = [conv(x) for x in a0.ravel()]
    out = flat
    for d in reversed(a.shape[1:]):
        out = [out[i : i + d] for i in range(0, len(out), d)]
    return out


def ref_to_json(result) -> str:
    doc = present._document(result, ref_json_value)
    return json.dumps(doc, indent=2, allow_nan=False)


def ref_csv_cell(v) -> str:
    if v is None:
        return ""
    a = np.asarray(v)
    if a.ndim == 0:
        if not np.isfinite(a):
            return fmt.fmt_number(a)
        return repr(_f32(a)) if a.dtype == np.float32 else repr(float(a))
    return json.dumps(ref_json_value(a), separators=(",", ":"))


def ref_to_csv(result, all_nodes: bool = False) -> str:
    g = result.graph
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["node", "op", "expr", "shape", "value", "grad"])
    for i in present.rows(result, all_nodes):
        v, gr = result.values[i], result.grads[i]
        shape = "x".join(str(d) for d in np.shape(v))
        w.writerow([g.label(i), g.ops[i], g.short_text(i), shape, ref_csv_cell(v), ref_csv_cell(gr)])
    return buf.getvalue()


def evaluate(text: str, dtype: str = "float64", **values):
    return run(load_source(None, text), {k: np.asarray(v) for k, v in values.items()}, dtype=dtype, use_cache=False)


class Sink:
    """A stream that keeps only the length and a hash of what is written."""

    def __init__(self) -> None:
        import hashlib

        self.h = hashlib.sha256()
        self.n = 0

    def write(self, s: str) -> None:
        self.h.update(s.encode())
        self.n += len(s)


SPECIAL = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e300, 5e-324, 0.1, -2.5, 1e16, 123456789.0])


def _tensor(rng, shape, special: bool):
    a = rng.standard_normal(shape) * 10.0 ** rng.integers(-5, 5)
    if special and a.size:
        flat = a.reshape(-1)
        k = rng.integers(0, a.size, size=max(1, a.size // 3))
        flat[k] = rng.choice(SPECIAL, size=len(k))
    return a


SHAPES = [(3,), (1,), (0,), (2, 3), (1, 1), (3, 1), (1, 4), (2, 0), (0, 3), (2, 1, 3), (1, 1, 2), (2, 2, 2, 2), (40, 3)]


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
@pytest.mark.parametrize("chunk", [1, 2, 5, 1 << 15])
@pytest.mark.parametrize("special", [False, True])
def test_streamed_json_and_csv_are_byte_identical_to_the_reference(monkeypatch, chunk, special):
    monkeypatch.setattr(present, "CHUNK", chunk)
    rng = np.random.default_rng(chunk + 7 * special)
    for shape in SHAPES:
        for dtype in ("float64", "float32"):
            x = _tensor(rng, shape, special)
            res = evaluate("y = sum(x * 2)", dtype=dtype, x=x)
            assert present.to_json(res) == ref_to_json(res), (shape, dtype)
            for all_nodes in (False, True):
                assert present.to_csv(res, all_nodes) == ref_to_csv(res, all_nodes), (shape, dtype)
            buf = io.StringIO()
            present.write_json(res, buf)
            assert buf.getvalue() == ref_to_json(res)
            buf = io.StringIO()
            present.write_csv(res, buf, True)
            assert buf.getvalue() == ref_to_csv(res, True)


def test_streamed_json_matches_on_the_examples_and_edge_cases(monkeypatch):
    monkeypatch.setattr(present, "CHUNK", 3)
    cases = [(load_source(str(f), None), {}) for f in FILES]
    cases += [
        (load_source(None, "y = sum(log(x) * w)"), {"x": [[1, -1, 0], [2, 3, 0]], "w": [[1, 2, 3], [4, 5, -6]]}),
        (load_source(None, "y = sum(exp(x)) + sum(zeros(2, 0)) + sum(ones(1, 1, 3))"), {"x": [[1000.0], [1.0]]}),
        (load_source(None, "# ∂ unicode\ny = sum(x[0]) * 1e300"), {"x": [1e300, -0.0, 1e-310]}),
        (load_source(None, "y = max(a, b, c) + min(a, b)"), {"a": 1.0, "b": 1.0, "c": -1.0}),
        (load_source(None, "u = log(a)\nv = sqrt(b)\nw = exp(c) - 1e308\ny = u + v + w"), {"a": -1, "b": 0, "c": 1e3}),
        (load_source(None, "u = sqrt(b) * 2\nw = exp(c) * 0\ny = u + w + -0.0 * b"), {"b": 0, "c": 1e3}),
        (load_source(None, "y = 1e-310 * a + 0.1 * b"), {"a": 3, "b": 7}),
    ]
    for source, values in cases:
        res = run(source, {k: np.asarray(v, dtype=float) for k, v in values.items()}, use_cache=False)
        assert present.to_json(res) == ref_to_json(res)
        assert present.to_csv(res, True) == ref_to_csv(res, True)
        assert present.to_csv(res) == ref_to_csv(res)


def test_dump_json_matches_json_dumps_on_plain_documents():
    docs = [
        {},
        [],
        {"a": [], "b": {}, "c": [1, 2.5, -0.0, None, True, False, 'x\u2202"\\\n'], "d": {"e": [[], [[]], [1]]}},
        [1e300, 5e-324, 12345678901234567890, "é", {"k": [0.1]}],
    ]
    for doc in docs:
        for ascii_ in (True, False):
            buf = io.StringIO()
            present.dump_json(doc, buf, ensure_ascii=ascii_)
            assert buf.getvalue() == json.dumps(doc, indent=2, ensure_ascii=ascii_, allow_nan=False)
    with pytest.raises(ValueError):
        present.dump_json({"a": math.nan}, io.StringIO())


def _peak_while(fn) -> int:
    """Peak bytes allocated by Python (tracemalloc, numpy included) while ``fn`` runs, beyond what it started with."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def big_result():
    x = np.random.default_rng(0).standard_normal((1000, 1000))
    x[3, 4] = np.nan  # non-finite entries take the slower, string-substituting path
    x[999, 0] = -np.inf
    return evaluate("y = sum(x)", x=x)  # x (input, gradient, node value and gradient): 4M entries written


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_formatting_a_million_entry_result_streams_in_bounded_memory(big_result, fmt):
    n = big_result.values[0].size
    sink = Sink()
    if fmt == "json":
        peak = _peak_while(lambda: present.write_json(big_result, sink))
    else:
        peak = _peak_while(lambda: present.write_csv(big_result, sink, True))
    assert sink.n > 20 * n  # it did write every entry (each of x's values has ~19 characters)
    # the old formatter took ~400 bytes per entry (json) / ~80 (csv); streaming takes a few chunks of text
    assert peak < 40 * n, f"{peak / n:.1f} bytes per entry"


def test_streamed_json_of_a_large_result_is_the_reference_text(big_result, monkeypatch):
    """A large case through several chunks and row boundaries, compared on a smaller slice of it."""
    monkeypatch.setattr(present, "CHUNK", 777)
    x = np.asarray(big_result.values[0])[:60, :50]
    res = evaluate("y = sum(x * x)", x=x)
    assert present.to_json(res) == ref_to_json(res)
    assert present.to_csv(res, True) == ref_to_csv(res, True)


# -- max/min with many operands: linear everywhere ----------------------------------------------------------------


def _many_program(n: int, fn: str = "max") -> tuple[str, np.ndarray]:
    """``m = fn(x0, ..., x<n-1>)`` with declared defaults that tie n/1000 times at the extreme."""
    x = np.array([((i * 7919) % 1000) / 10 for i in range(n)])
    decl = "input " + ", ".join(f"x{i} = {v!r}" for i, v in enumerate(x.tolist()))
    return decl + "\n" + f"m = {fn}(" + ", ".join(f"x{i}" for i in range(n)) + ")\n", x


def _expected(x: np.ndarray, fn: str, dtype=np.float64) -> tuple[float, np.ndarray]:
    x = x.astype(dtype)
    m = x.max() if fn == "max" else x.min()
    mask = x == m
    return float(m), np.where(mask, np.asarray(1, dtype) / dtype(mask.sum()), dtype(0)).astype(np.float64)


def _csv_grads(text: str, n: int) -> tuple[float, np.ndarray]:
    rows = {r[0]: r for r in csv.reader(io.StringIO(text))}
    return float(rows["m"][4]), np.array([float(rows[f"x{i}"][5]) for i in range(n)])


@pytest.mark.parametrize("fn", ["max", "min"])
def test_max_of_50000_operands_evaluates_linearly_and_the_strategies_agree(tmp_path, fn):
    n = 50_000
    text, x = _many_program(n, fn)
    prog = tmp_path / "many.cg"
    prog.write_text(text)
    outs = {}
    for engine in ("generic", "scalar", "auto"):
        r = run_cli("eval", str(prog), "--format", "csv", "--no-cache", env={"CGRAPH_ENGINE": engine}, timeout=300)
        assert r.returncode == 0, r.stderr
        outs[engine] = r.stdout
    assert outs["generic"] == outs["scalar"] == outs["auto"]  # bit for bit
    m, grads = _csv_grads(outs["generic"], n)
    em, eg = _expected(x, fn)
    assert m == em and np.array_equal(grads, eg)
    assert np.count_nonzero(grads) == n // 1000  # ties split evenly
    r = run_cli("eval", str(prog), "--format", "csv", "--dtype", "float32", "--no-cache", timeout=300)
    assert r.returncode == 0, r.stderr
    m, grads = _csv_grads(r.stdout, n)
    em, eg = _expected(x, fn, np.float32)  # float32 numbers are written as their shortest float32 text
    assert np.float32(m) == np.float32(em) and np.array_equal(grads.astype(np.float32), eg.astype(np.float32))


def test_max_of_many_tensor_operands_matches_numpy_in_float32_and_float64():
    rng = np.random.default_rng(3)
    n = 3000
    xs = rng.integers(0, 4, size=(n, 5)).astype(float)  # many ties per entry
    text = "m = sum(max(" + ", ".join(f"x{i}" for i in range(n)) + ") * w)"
    w = np.arange(1.0, 6.0)
    for dtype, t in (("float64", np.float64), ("float32", np.float32)):
        res = evaluate(text, dtype=dtype, w=w, **{f"x{i}": xs[i] for i in range(n)})
        g = res.graph
        top = xs.astype(t).max(axis=0)
        count = (xs.astype(t) == top).sum(axis=0)
        for i in range(n):
            gi = res.grads[g.inputs[f"x{i}"]]
            assert gi.dtype == t
            expect = w.astype(t) * (xs[i].astype(t) == top) / count.astype(t)
            assert np.array_equal(gi, expect)


def test_explain_of_a_20000_operand_max_is_linear_and_matches_numpy():
    from cgraph_cli.analysis import explain

    n = 20_000
    text, x = _many_program(n)
    res = run(load_source(None, text), {}, max_nodes=2 * n)
    ex = explain.explain(res, max_steps=2 * n)
    em, eg = _expected(x, "max")
    assert float(res.values[res.out]) == em
    by_label = {st.label: st for st in ex.backward}
    for i in (0, 1, 999, n - 1) + tuple(np.flatnonzero(eg)[:3]):
        assert float(by_label[f"x{i}"].grad) == eg[i]
    out = explain.to_text(ex)
    k = int(np.flatnonzero(eg)[0])
    assert f"  ∂m/∂x{k} = [x{k} = m] = 0.05\n" in out  # 20 ties: 1/20 each, the operand list is not repeated
    assert len(out) < 200 * n
    data = explain.to_data(ex)
    assert len(data["backward"]) == n + 1


def test_explain_lists_the_operands_of_a_small_max():
    from cgraph_cli.analysis import explain

    res = evaluate("m = max(a, b, c)", a=np.float64(1), b=np.float64(1), c=np.float64(0))
    out = explain.to_text(explain.explain(res))
    assert "∂m/∂b = [b = max(a, b, c)] = 0.5" in out


_EXPLAIN_50K = """
import sys
import numpy as np
from cgraph_cli.analysis import explain
from cgraph_cli.run.program import load_source, run
n = int(sys.argv[1])
res = run(load_source(sys.argv[2], None), {}, max_nodes=2 * n)
text = explain.to_text(explain.explain(res, max_steps=2 * n))
print(len(text.splitlines()))
"""


def test_explain_and_render_of_a_50000_operand_max_finish(tmp_path):
    import subprocess
    import sys

    n = 50_000
    text, x = _many_program(n)
    prog = tmp_path / "many.cg"
    prog.write_text(text)
    r = subprocess.run(
        [sys.executable, "-c", _EXPLAIN_50K, str(n), str(prog)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) > 2 * n
    out = tmp_path / "many.dot"
    r = run_cli("render", str(prog), "--format", "dot", "-o", str(out), "--max-nodes", str(2 * n), timeout=300)
    assert r.returncode == 0, r.stderr
    dot = out.read_text()
    assert dot.count("label=<0.02>") == n // 1000  # each tying operand's edge: ∂m/∂x = 1/50


def test_a_nonfinite_gradient_after_a_50000_operand_max_is_traced_linearly(tmp_path):
    n = 50_000
    text, x = _many_program(n)
    prog = tmp_path / "many.cg"
    prog.write_text(text.replace("m = max(", "m = log(z) + max("))
    r = run_cli("eval", str(prog), "--at", "z=0", "--format", "json", "--no-cache", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "backward pass at node" in r.stderr and "(log)" in r.stderr


# -- explain's size limit --------------------------------------------------------------------------------------------


def _tower(levels: int) -> str:
    lines = ["def f0(x) = x * 1.0001 + 0.5"]
    lines += [f"def f{k}(x) = f{k - 1}(f{k - 1}(x))" for k in range(1, levels + 1)]
    return "\n".join(lines) + f"\ny = f{levels}(a)\n"


def test_explain_refuses_a_program_above_its_size_limit_with_a_hint():
    from cgraph_cli.analysis import explain
    from cgraph_cli.errors import CgraphError

    res = evaluate(_tower(13), a=np.float64(1))  # 16k+ nodes
    assert len(res.graph) > explain.MAX_STEPS
    with pytest.raises(CgraphError) as err:
        explain.explain(res)
    msg = err.value.render()
    assert "explain writes a step for each node" in msg
    assert "hint: explain a smaller program, or use cgraph eval --format json" in msg
    assert len(explain.to_text(explain.explain(res, max_steps=len(res.graph)))) > 0


def test_explain_cli_refuses_a_large_program_with_a_hint(tmp_path):
    prog = tmp_path / "tower.cg"
    prog.write_text(_tower(13))
    r = run_cli("explain", str(prog), "--at", "a=1", timeout=300)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.startswith("error: the program has ")
    assert "hint: explain a smaller program, or use cgraph eval --format json" in r.stderr
    assert "Traceback" not in r.stderr


_PEAK = """
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(r.returncode)
sys.stdout.write(r.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def test_explain_refuses_a_4m_node_def_tower_before_building_it(tmp_path):
    """The tower (4M nodes: 3 GB and ~10 s to build and evaluate) is refused after 10,000 nodes."""
    import subprocess
    import sys

    from tests.conftest import CGRAPH

    prog = tmp_path / "tower.cg"
    prog.write_text(_tower(20))
    cmd = [str(CGRAPH), "explain", str(prog), "--at", "a=1"]
    r = subprocess.run([sys.executable, "-c", _PEAK, *cmd], capture_output=True, text=True, timeout=300)
    code, *msg, rss = r.stdout.splitlines()
    assert code == "2", r.stdout
    assert (
        msg[0]
        == "error: the program has more than 10,000 nodes; explain writes a step for each node and stops at 10,000"
    )
    assert msg[1].endswith("or raise the limit with --max-steps N")
    assert int(rss) < 400_000  # KiB: the graph was never built in full


def test_explain_max_steps_raises_the_limit(tmp_path):
    prog = tmp_path / "tower.cg"
    prog.write_text(_tower(13))
    r = run_cli("explain", str(prog), "--at", "a=1", "--max-steps", "50000", "--format", "json", timeout=300)
    assert r.returncode == 0, r.stderr
