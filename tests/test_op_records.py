"""One fact, one place: every op record holds what every consumer needs, and its forms agree.

The walk over the registry fails when a record lacks something a consumer reads (a text template
for ``explain`` and the ``--steps`` captions, ports for pictures, a row form stated explicitly, a
kink's sentences); the row forms are checked entry by entry against the op on one 0-d value, so an
op whose row form is wrong cannot give wrong numbers on wide graphs or in ``--batch``. The two ops
added as one record each (``cumsum``, ``atan2``) are run through every command.
"""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from cgraph_cli.errors import Source
from cgraph_cli.ops import FUNCTIONS, OPS, Kernel, Op, Rows
from cgraph_cli.run.program import run
from tests.conftest import run_cli

# ops the grammar writes with syntax rather than a call: operators, indexing, tensor literals, x = y
SYNTAX = {
    "id",
    "add",
    "sub",
    "mul",
    "div",
    "pow",
    "matmul",
    "neg",
    "index",
    "stack",
    "lt",
    "le",
    "gt",
    "ge",
    "eq",
    "ne",
}


def _operands(op: Op) -> int:
    return op.arity if op.arity is not None else 3


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_record_has_what_its_consumers_read(name):
    op = OPS[name]
    assert op.name == name
    assert callable(op.fwd) and callable(op.shape)
    assert op.vjp is not None, f"{name}: no VJP"
    if not callable(op.vjp):
        assert len(op.vjp) == op.arity, f"{name}: one VJP per operand"
    assert op.glyph, f"{name}: no glyph for pictures"
    assert op.local is not None, f"{name}: no local-derivative template for explain and the captions"
    if not op.elementwise:
        assert op.vjp_text is not None, f"{name}: a tensor op needs its VJP in matrix form"
    n = _operands(op)
    if n >= 2 and not op.commutative and op.arity is not None:
        assert op.ports is not None and len(op.ports) == n, f"{name}: non-commutative, needs port names"
    assert isinstance(op.rows, Rows) or op.rows is None
    if op.elementwise:
        assert op.rows is not None, f"{name}: an elementwise op runs on rows"
    assert isinstance(op.kernel, Kernel)
    if op.kernel not in (Kernel.NP, Kernel.NP1):
        assert op.rows is not None, f"{name}: a scalar kernel without a row form"
    if op.kernel == Kernel.NP1:
        assert op.arity == 1, f"{name}: NP1 is for one-operand ops"
    if op.kink is not None:
        assert op.kink.why and callable(op.kink.at)
    assert name in SYNTAX or op.calls or op.internal, f"{name}: the language cannot write it"
    for call in op.calls:
        assert (call, op) in FUNCTIONS[call.name]


def test_every_function_name_reaches_its_records():
    for fname, entries in FUNCTIONS.items():
        for call, op in entries:
            assert OPS[op.name] is op and call.name == fname


def _scalar_attrs(op: Op) -> dict:
    return {"dims": ()} if op.name == "reshape" else {}


@pytest.mark.parametrize("name", sorted(n for n, op in OPS.items() if op.rows is not None))
def test_row_forms_compute_each_entry_as_the_op_does_on_one_scalar(name):
    """The row form (levels strategy, --batch) must equal the op on 0-d operands, bit for bit."""
    op = OPS[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    lo, hi = op.domain
    n = _operands(op)
    rows = [rng.uniform(lo, hi, size=7) for _ in range(n)]
    rows[0][:2] = [lo, hi]
    if n > 1:
        rows[1][0] = rows[0][0]  # a tie for max/min
    at = _scalar_attrs(op)
    assert op.shape([()] * n, **at) == (), f"{name}: a row op must map scalars to a scalar"
    got = np.asarray(op.row_fwd()(*rows, **at))
    g = rng.uniform(0.5, 1.5, size=7)
    row_grads = op.vjps(list(range(n)), g, got, rows, at, rows=True)
    for r in range(7):
        xs = [np.float64(x[r]) for x in rows]
        ans = op.fwd(*xs, **at)
        assert np.array_equal(got[r], ans, equal_nan=True), f"{name}: row {r}: {got[r]!r} != {ans!r}"
        one = op.vjps(list(range(n)), np.float64(g[r]), ans, xs, at)
        for k in range(n):
            want = np.broadcast_to(one[k], ()) if one[k] is not None else None
            have = np.broadcast_to(row_grads[k], (7,))[r] if row_grads[k] is not None else None
            assert (want is None) == (have is None)
            if want is not None:
                assert np.array_equal(have, want, equal_nan=True), f"{name}: VJP {k}, row {r}"


def test_a_wide_graph_of_a_non_elementwise_op_gives_the_generic_numbers(monkeypatch):
    """The trap of a one-operand op that is not elementwise (a running sum) on a wide graph."""
    n = 300
    text = "z = " + " + ".join(f"sum(cumsum([x{i}, 2 * x{i}, 3]))" for i in range(n))
    given = {f"x{i}": np.asarray(float(i)) for i in range(n)}
    results = {}
    for strategy in ("generic", "auto", "scalar", "levels"):
        monkeypatch.setenv("CGRAPH_ENGINE", strategy)
        res = run(Source(text), given)
        results[strategy] = (float(res.values[res.out]), [float(res.grads[res.graph.inputs[k]]) for k in given])
    assert results["generic"][0] == sum(7 * i + 3 for i in range(n))  # cumsum = [x, 3x, 3x + 3]
    assert results["generic"][1] == [7.0] * n
    for strategy, got in results.items():
        assert got == results["generic"], strategy


def _cli_json(*args):
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_cumsum_and_atan2_through_every_command(tmp_path):
    prog = tmp_path / "new.cg"
    prog.write_text("input x[3], y\nc = cumsum(x, 0)\nt = atan2(y, c)\nloss = sum(t * c)\n")
    at = ["--at", "x=[1,2,3]", "--at", "y=0.5"]
    data = _cli_json("eval", str(prog), *at, "--format", "json")
    x, y = np.array([1.0, 2.0, 3.0]), 0.5
    c = np.cumsum(x)
    assert data["value"] == pytest.approx(float(np.sum(np.arctan2(y, c) * c)), rel=1e-15)
    # d/dy: sum(c / (y^2 + c^2) * c); d/dx: the reversed running sum of d loss/d c
    dc = np.arctan2(y, c) + c * (-y / (y * y + c * c))
    assert data["gradients"]["y"] == pytest.approx(float(np.sum(c * c / (y * y + c * c))), rel=1e-12)
    assert data["gradients"]["x"] == pytest.approx(np.cumsum(dc[::-1])[::-1].tolist(), rel=1e-12)
    # explain: the records' templates
    r = run_cli("explain", str(prog), *at)
    assert r.returncode == 0, r.stderr
    assert "t = atan2(y, c)" in r.stdout
    assert "the running sum of ∂loss/∂c from the end along axis 0" in r.stdout
    # check: finite differences agree
    r = run_cli("check", str(prog), *at)
    assert r.returncode == 0, r.stdout + r.stderr
    # pictures: atan2 has named ports, cumsum its glyph and axis
    r = run_cli("render", str(prog), *at, "--format", "dot", "-o", "-")
    assert r.returncode == 0, r.stderr
    assert ">y<" in r.stdout and ">x<" in r.stdout and "cumsum axis=0" in r.stdout
    # the anomaly report: atan2's derivative at the origin
    r = run_cli("eval", "-e", "z = atan2(a, b)", "--at", "a=0,b=0", "--format", "json")
    assert r.returncode == 0
    assert "the derivative of atan2(y, x) is undefined at y = x = 0" in r.stderr
    # check names atan2's kink at the origin
    r = run_cli("check", "-e", "z = atan2(a, b)", "--at", "a=0,b=0")
    assert "atan2 is not differentiable at y = x = 0" in r.stderr


def test_stack_along_the_first_axis_is_numpys_stack_bit_for_bit():
    """The record stacks along axis 0 by ``np.array`` of the operands (a tenth of ``np.stack``'s cost for
    scalars): the same entries, signed zeros and NaN included, the same shape and the same promoted dtype."""
    fwd = OPS["stack"].fwd
    rng = np.random.default_rng(5)
    edge = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, 1e30, -1.5])
    for shape in [(), (1,), (3,), (2, 3), (0,), (2, 0, 1)]:
        for dtypes in [("float64",), ("float32",), ("float32", "float64"), ("complex128", "float64"), ("int64",)]:
            for count in (1, 2, 3, 5):
                ops = []
                for k in range(count):
                    x = rng.choice(edge, size=shape).astype(dtypes[k % len(dtypes)]) if dtypes[0] != "int64" else None
                    x = np.full(shape, k) if x is None else x
                    ops.append(x[()] if k % 2 else x)  # numpy scalars (of a 0-d shape) and arrays alike
                got, want = fwd(*ops), np.stack(ops)
                assert got.dtype == want.dtype and got.shape == want.shape, (shape, dtypes, count)
                assert got.tobytes() == want.tobytes(), (shape, dtypes, count)
                for axis in range(-1, np.ndim(want)):
                    assert np.array_equal(fwd(*ops, axis=axis), np.stack(ops, axis=axis), equal_nan=True)
