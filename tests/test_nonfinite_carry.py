"""The records' non-finite claims (``Op.carry``) and the engine's scan that relies on them.

``Carry.value`` says a NaN or an infinity in an operand always shows in the op's result; ``Carry.grad`` that one
in the upstream gradient always shows in an operand's VJP. The engine scans only the nodes no such claim vouches
for (:func:`cgraph_cli.engine.reference.scan_plan`) and scans every node, as before, as soon as one of them is not
finite, so a wrong claim would hide a non-finite number. Every claim of every record is checked here on random
operands holding NaN, ±inf, zeros, equal entries and the domain's values (a claim must hold whatever the other
operands are), in float64 and float32; a deliberately wrong claim is caught; and programs whose NaN or infinity
is hidden by a later node (relu(-inf) = 0, an empty result, overflow) report the same nodes as a full scan.
"""

from __future__ import annotations

import zlib
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cgraph_cli.engine import evaluate
from cgraph_cli.engine.forward_mode import vjp
from cgraph_cli.engine.reference import nonfinite_report, scan_plan
from cgraph_cli.errors import CgraphError, Source
from cgraph_cli.ir.graph import build_graph
from cgraph_cli.lang.parser import parse
from cgraph_cli.ops import OPS, Op, unbroadcast
from cgraph_cli.ops.core import CARRIES, CARRIES_GRAD, Carry
from cgraph_cli.run.program import compile_program
from cgraph_cli.run.values import bind_inputs
from tests import test_fuzz
from tests.conftest import run_inproc
from tests.test_ops_fd import default_shapes

BAD = (np.nan, np.inf, -np.inf)

# more shapes and attributes than the records' own test metadata: vectors and batches for matmul (and a size
# that runs through the BLAS), axes, keepdims, the other norms and ddof, 0-d operands, integer-array indices
MORE = {
    "matmul": [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((5, 2, 3), (3, 4)), ((40, 30), (30, 20))],
    "sum": [((2, 3, 4),), ((),)],
    "mean": [((2, 3),), ((),)],
    "norm": [((4,),), ((),)],
    "prod": [((2, 3),), ((),)],
    "var": [((2, 3),), ((),)],
    "std": [((2, 3),), ((),)],
    "amax": [((2, 3),)],
    "logsumexp": [((2, 3),), ((),)],
    "softmax": [((2, 3),), ((),), ((4,),)],
    "log_softmax": [((2, 3),), ((),), ((4,),)],
    "add": [((), (3,)), ((2, 1), (1, 3))],
    "mul": [((), (3,)), ((2, 1), (1, 3))],
    "div": [((), (3,)), ((2, 1), (1, 3))],
    "maximum": [((3,), ())],
    "stack": [((), ())],
    "cumsum": [((2, 3),)],
    "diag": [((3, 3),), ((2, 3),)],
}
MORE_ATTRS = {
    "sum": [{"axis": 1}, {"axis": (0, 2), "keepdims": True}],
    "mean": [{"axis": 0}, {"axis": -1, "keepdims": True}],
    "norm": [{"p": 1}, {"p": np.inf}, {"p": 2, "axis": 0}],
    "var": [{"ddof": 1}, {"axis": 1}],
    "std": [{"ddof": 1}, {"axis": 0, "keepdims": True}],
    "prod": [{"axis": 1}],
    "amax": [{"axis": 0}],
    "logsumexp": [{"axis": 1}],
    "softmax": [{"axis": 0}],
    "log_softmax": [{"axis": 0}],
    "cumsum": [{"axis": 0}, {"axis": 1}],
    "index": [{"idx": (np.array([0, 0, 2]),)}],
}


def _cases(op: Op) -> list[tuple[tuple, dict]]:
    base = dict(op.test_attrs or {})
    cases = [(default_shapes(op), base)]
    cases += [(shapes, base) for shapes in MORE.get(op.name, [])]
    cases += [(default_shapes(op), {**base, **attrs}) for attrs in MORE_ATTRS.get(op.name, [])]
    out = []
    for shapes, attrs in cases:
        try:  # keep the (shapes, attrs) pairs the op accepts (an axis needs enough dimensions)
            op.shape([tuple(s) for s in shapes], **attrs)
        except (ValueError, TypeError, IndexError):
            continue
        out.append((shapes, attrs))
    assert out, f"op '{op.name}': no case to check"
    return out


def _operand(rng, shape, kind: str, lo: float, hi: float, dtype) -> np.ndarray:
    """Operand entries of one kind: the domain's values, zeros, all equal, or a mix of specials."""
    if kind == "domain":
        x = rng.uniform(lo, hi, size=shape)
    elif kind == "zeros":
        x = np.zeros(shape)
    elif kind == "equal":
        x = np.full(shape, rng.uniform(lo, hi))
    else:
        specials = np.array([0.0, 1.0, -1.0, lo, hi, np.nan, np.inf, -np.inf, 0.5, -2.0])
        x = rng.choice(specials, size=shape)
    return np.asarray(x, dtype=dtype)


KINDS = ("domain", "zeros", "equal", "mixed")


def _with_bad(rng, x: np.ndarray, bad: float) -> np.ndarray:
    x = np.array(x, copy=True)
    if x.size:
        x.reshape(-1)[rng.integers(x.size)] = bad
    return x


def carry_counterexample(op: Op, shapes, attrs: dict, dtype=np.float64, seed: int = 0) -> str | None:
    """A case where the record's claim fails (a description), or None: for every operand the record says
    carries a non-finite value (gradient), a NaN or ±inf put at a random entry of it (of the upstream gradient)
    must show in the result (in that operand's VJP), whatever the other operands hold."""
    rng = np.random.default_rng(zlib.crc32(f"{op.name}{shapes}{attrs}{seed}".encode()))
    lo, hi = op.domain
    n = len(shapes)
    value_ks = list(op.carry.value_from(n))
    grad_ks = list(op.carry.grad_to(n))
    with np.errstate(all="ignore"):
        for kind in KINDS:
            for bad in BAD:
                for _ in range(2):
                    kinds = [kind if rng.random() < 0.7 else rng.choice(KINDS) for _ in shapes]
                    xs = [_operand(rng, s, kd, lo, hi, dtype) for s, kd in zip(shapes, kinds)]
                    for k in value_ks:
                        ys = list(xs)
                        ys[k] = _with_bad(rng, xs[k], bad)
                        ans = np.asarray(op.fwd(*ys, **attrs))
                        if ans.size and np.isfinite(ans).all():
                            return f"{op.name}{shapes} {attrs}: operand {k} = {ys[k]!r} ({kind}) gives finite {ans!r}"
                    if not grad_ks:
                        continue
                    ans = np.asarray(op.fwd(*xs, **attrs))
                    g = _with_bad(rng, np.asarray(rng.uniform(0.5, 1.5, size=ans.shape), dtype=dtype), bad)
                    if not g.size:
                        continue
                    for k, gk in zip(grad_ks, op.vjps(grad_ks, g, ans, xs, attrs)):
                        if gk is None:
                            return f"{op.name}{shapes} {attrs}: no VJP for operand {k}"
                        gk = np.asarray(unbroadcast(gk, np.shape(xs[k]), op.name))
                        if gk.size and np.isfinite(gk).all():
                            return (
                                f"{op.name}{shapes} {attrs}: g = {g!r} gives a finite VJP {gk!r} for operand {k} = "
                                f"{xs[k]!r} ({kind})"
                            )
    return None


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_every_records_carry_claim_holds(name, dtype):
    op = OPS[name]
    for shapes, attrs in _cases(op):
        for seed in range(2):
            problem = carry_counterexample(op, shapes, attrs, dtype, seed)
            assert problem is None, problem


@pytest.mark.parametrize(
    "name,wrong",
    [
        ("tanh", CARRIES),  # tanh(inf) = 1
        ("exp", CARRIES),  # exp(-inf) = 0
        ("relu", CARRIES),  # relu(-inf) = 0
        ("div", CARRIES),  # 1 / inf = 0
        ("pow", CARRIES),  # nan^0 = 1, and d/da is 0 where b = 0
        ("amax", CARRIES),  # max([-inf, 1]) = 1
        ("softmax", CARRIES_GRAD),  # 0-d: the VJP is zeros
        ("where", CARRIES_GRAD),  # the VJP picks g where the condition holds
        ("concat", CARRIES),  # each operand's VJP is its slice of g
        ("stack", CARRIES),
        ("std", CARRIES),  # 0 where the standard deviation is 0
        ("sign", CARRIES_GRAD),  # the VJP is zeros
        ("index", CARRIES),  # x[0] does not see x[1]
        ("diag", Carry(value="all")),  # diag of a matrix drops the rest
    ],
)
def test_a_wrong_claim_is_caught(name, wrong):
    """The check has teeth: a record claiming more than its op does gets a counterexample."""
    op = replace(OPS[name], carry=wrong)
    found = [
        carry_counterexample(op, shapes, attrs, dtype, seed)
        for shapes, attrs in _cases(op)
        for dtype in (np.float64, np.float32)
        for seed in range(2)
    ]
    assert any(found), f"{name}: the wrong claim {wrong} was not caught"


def test_matmul_nan_times_a_zero_row_is_nan():
    """The claim for matmul needs a BLAS that does not skip zero products (OpenBLAS does not); check the one
    installed at the MLP's sizes, in both float types, both operands."""
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        for bad in BAD:
            a = rng.standard_normal((256, 784)).astype(dtype)
            b = rng.standard_normal((784, 512)).astype(dtype)
            a[17, 100] = bad
            b[100, :] = 0
            with np.errstate(all="ignore"):
                assert not np.isfinite(a @ b).all()
                a2, b2 = np.zeros_like(a), rng.standard_normal((784, 512)).astype(dtype)
                b2[5, 7] = bad
                assert not np.isfinite(a2 @ b2).all()


# -- the engine: a hidden non-finite number is still found and named --------------------------------------

MLP = """input data X[4, 6], T[4, 3]
input W1[6, 5], b1[5], W2[5, 5], b2[5], W3[5, 3], b3[3]
h1 = relu(X @ W1 + b1)
h2 = tanh(h1 @ W2 + b2)
o = h2 @ W3 + b3
p = softmax(o, 1)
q = max(o, 0.5 * o)
loss = -sum(T * log(p)) / 4 + sum(where(q > 100, exp(q), q)) / 40 + sum(exp(-h1 * 1000))
"""
MLP_SHAPES = {"X": (4, 6), "T": (4, 3), "W1": (6, 5), "b1": (5,), "W2": (5, 5), "b2": (5,), "W3": (5, 3), "b3": (3,)}


def _mlp_inputs(rng, scale: float = 1.0) -> dict[str, np.ndarray]:
    d = {k: rng.standard_normal(s) * scale for k, s in MLP_SHAPES.items()}
    d["T"] = np.eye(3)[rng.integers(0, 3, 4)]
    return d


def _same_as_full_scan(g, inputs, wrt=None) -> tuple[list, np.ndarray]:
    """The engine's report equals a scan of every node of its own values and gradients (the old behaviour)."""
    res = evaluate(g, inputs, strategy="generic", wrt=wrt)
    bad, masks = nonfinite_report(res.values, res.grads)
    assert res.nonfinite == bad
    assert (res.masks[0] == masks[0]).all() and (res.masks[1] == masks[1]).all()
    if np.size(res.values[res.out]) == 1:  # reverse mode from a cotangent (forward_mode.vjp) reports the same way
        for seed in (1.0, -3.0, np.inf, np.nan):
            r = vjp(g, inputs, seed, values=res.values, wrt=wrt)
            want, wmasks = nonfinite_report(r.values, r.grads)
            assert r.nonfinite == want, seed
            assert (r.masks[0] == wmasks[0]).all() and (r.masks[1] == wmasks[1]).all(), seed
    return bad, masks[0] | masks[1]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_nonfinite_anywhere_in_an_mlp_is_reported_as_by_a_full_scan(dtype):
    """NaN and ±inf put into each input in turn, and inputs large enough to overflow inside the graph (exp,
    float32 range), hidden or not by relu, tanh, softmax, max, where and exp(-inf) = 0 later on."""
    rng = np.random.default_rng(7)
    g = compile_program(Source(MLP, "mlp.cg"), _mlp_inputs(rng), dtype=dtype, use_cache=False)
    seen = 0
    for name, shape in MLP_SHAPES.items():
        for bad in BAD:
            for _ in range(3):
                data = _mlp_inputs(rng)
                data[name] = np.array(data[name])
                data[name][tuple(rng.integers(0, s) for s in shape)] = bad
                found, _ = _same_as_full_scan(g, bind_inputs(g, data))
                seen += bool(found)
    for scale in (1.0, 30.0, 1e3, 1e20, 1e200):
        for _ in range(3):
            found, _ = _same_as_full_scan(g, bind_inputs(g, _mlp_inputs(rng, scale)))
            seen += bool(found)
    for wrt in (["W1"], ["b3"], ["W2", "b1"]):
        data = _mlp_inputs(rng)
        data["W2"][1, 1] = np.inf
        _same_as_full_scan(g, bind_inputs(g, data), wrt)
    assert seen > 50  # most cases are not finite: the comparison is not vacuous


def test_the_check_would_catch_a_wrong_claim(monkeypatch):
    """With relu wrongly claiming to carry -inf, log(0) = -inf under relu goes unseen (x is data: no gradient
    shows it either): the engine's report then differs from a full scan, so the comparison above would fail."""
    text = "input data x[3]\ninput w = 2\nz = log(x)\ny = sum(relu(z)) * w\n"
    x = {"x": np.array([0.0, 1.0, 2.0])}
    g = compile_program(Source(text, "t.cg"), x, use_cache=False)
    bad, _ = _same_as_full_scan(g, bind_inputs(g, x))
    assert bad == [("forward", g.bindings["z"])]
    monkeypatch.setitem(OPS, "relu", replace(OPS["relu"], carry=CARRIES))
    g2 = compile_program(Source(text, "t.cg"), x, use_cache=False)
    with pytest.raises(AssertionError):
        _same_as_full_scan(g2, bind_inputs(g2, x))


def test_the_mlp_scans_only_the_nodes_that_could_hide_a_nonfinite_number():
    """relu's operands and the loss are scanned, not the matmuls, the sums or the weights' values; of the
    gradients, the inputs' (where the backward chains end)."""
    g = compile_program(Source(MLP, "mlp.cg"), _mlp_inputs(np.random.default_rng(0)), use_cache=False)
    plan = scan_plan(g, g.grad_inputs())
    ops = [g.ops[i] for i in plan.values]
    assert "matmul" not in ops and "input" not in ops
    assert ops.count("add") >= 2  # relu's and tanh's operands
    assert sorted(g.ops[i] for i in plan.grads if g.ops[i] == "input") == ["input"] * 6
    assert "matmul" not in [g.ops[i] for i in plan.grads]


@pytest.mark.parametrize(
    "program,at,expected",
    [
        (  # log(0) = -inf, then relu(-inf) = 0 hides it
            "input x[3]\nz = log(x)\nh = relu(z)\ny = sum(h)\n",
            ["x=[0,1,2]"],
            [
                "non-finite value [-inf, 0, 0.693147] first appears in the forward pass at node z (log)"
                " from x = [0, 1, 2]",
                "non-finite gradient first appears in the backward pass at node z (log)",
            ],
        ),
        (  # overflow of two constants, hidden by relu, under a data input
            "input data X[2, 3]\ninput W[3, 2]\nz = X @ W\nh = relu(z - 1e300 * 1e300)\ny = sum(tanh(h))\n",
            ["X=[[1,2,3],[4,5,6]]", "W=[[1,2],[3,4],[5,6]]"],
            [
                "non-finite value inf first appears in the forward pass at node (1e300 * 1e300) (mul)"
                " from 1e+300, 1e+300"
            ],
        ),
        (  # a NaN whose only consumer chain ends in an empty result
            "input x[3]\nz = expand_dims(x, 1) + zeros(3, 0)\ny = sum(z)\n",
            ["x=[nan,1,2]"],
            ["non-finite value [NaN, 1, 2] first appears in the forward pass at node x (input)"],
        ),
        (  # exp(-inf) = 0 hides an infinite weight; its gradient is NaN
            "input data X[2, 3]\ninput W[3, 2]\nz = X @ W\nh = relu(z)\ny = sum(exp(-h * 1000))\n",
            ["X=[[1,2,3],[4,5,6]]", "W=[[1,2],[3,4],[5,-inf]]"],
            ["non-finite value [[1, 2], [3, 4], [5, -inf]] first appears in the forward pass at node W (input)"],
        ),
    ],
)
def test_hidden_nonfinite_numbers_are_named_as_before(tmp_path, program, at, expected):
    """The warnings (text captured before the scan used the records' claims) name the same first nodes."""
    f = tmp_path / "p.cg"
    f.write_text(program)
    args = ["eval", str(f)]
    for a in at:
        args += ["--at", a]
    r = run_inproc(*args)
    assert r.returncode == 0, r.stderr
    warnings = [line.split(": ", 2)[2] for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == len(expected), r.stderr
    for got, want in zip(warnings, expected):
        assert got.startswith(want), (got, want)


FINITE = [1.0, -1.0, 0.0, 0.5, 3.0, 1e308, -1e308]
SPECIALS = [*FINITE, np.inf, -np.inf, np.nan]


@pytest.mark.slow
@settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    stmts=test_fuzz.programs(),
    a=st.sampled_from(FINITE),
    b=st.sampled_from(FINITE),
    x=st.sampled_from(SPECIALS),
)
def test_programs_of_every_function_report_as_a_full_scan(stmts, a, b, x) -> None:
    """test_fuzz's programs (every function of the language, tensor literals, indexing, reductions) at values
    that overflow, divide by zero or are not finite: the engine's report is that of a scan of every node. (A
    cross-check of the plumbing over every op in graphs; the claims themselves are checked op by op above, which
    catches a wrong one far more surely than these programs do.)"""
    text = test_fuzz.render_program(stmts)
    values = {"a": np.array(a), "b": np.array(b), "c": np.array(-1.0), "x": np.array(x), "W": np.array(-2.0)}
    src = Source(text, "<test>")
    try:
        g = build_graph(parse(src), src, values)
        _same_as_full_scan(g, {k: values[k] for k in g.inputs})
    except CgraphError:
        assume(False)
