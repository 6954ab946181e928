"""Only the gradients that are asked for: ``eval --wrt NAMES``, ``Program.eval(wrt=...)`` and ``input data X``.

- Pruning changes nothing that is computed: values, and the gradients of every node that depends on a
  requested input, are bit-identical with and without ``wrt``, for every engine strategy, over the examples,
  random scalar programs (tests/test_engine_strategies.py's generator) and random tensor programs
  (tests/test_properties.py's); the other nodes have no gradient (None).
- Pruning really skips work: the backward pass runs no VJP for an operand no requested gradient needs.
- The outputs: JSON ``gradients`` has keys for the requested inputs only, the other nodes' ``grad`` is null;
  the table and CSV leave their cells empty; an unknown name or a data input is exit 2 with a clear message.
"""

from __future__ import annotations

import json
import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import cgraph_cli as cg
from cgraph_cli.engine import evaluate
from cgraph_cli.engine.reference import backward, forward
from cgraph_cli.errors import CgraphError, Source
from cgraph_cli.run.program import compile_program
from cgraph_cli.run.values import bind_inputs
from tests import test_properties
from tests.conftest import EXAMPLES, run_cli, run_inproc
from tests.test_engine_strategies import VALUES, random_program

STRATEGIES = ("generic", "scalar", "levels", "auto")

DATA_PROGRAM = """input data X[2, 3], T[2]
input W[3], b = 0.5
y = X @ W + b
loss = sum((y - T)^2)
"""
DATA_AT = "X=[[1,2,3],[4,5,6]],T=[1,2],W=[0.1,0.2,0.3]"


def _bytes(v) -> bytes | None:
    return None if v is None else np.asarray(v).tobytes() + str(np.asarray(v).dtype).encode()


def assert_pruned_same(text: str, values: dict, wrt: list[str], dtype: str = "float64") -> None:
    """Every strategy: values identical, gradients of the nodes depending on ``wrt`` identical (bytes and dtype),
    every other node without a gradient."""
    for strategy in STRATEGIES:
        g = compile_program(Source(text, "<t>"), values, dtype=dtype, use_cache=False)
        inputs = bind_inputs(g, values)
        full = evaluate(g, inputs, strategy=strategy)
        g2 = compile_program(Source(text, "<t>"), values, dtype=dtype, use_cache=False)
        part = evaluate(g2, bind_inputs(g2, values), strategy=strategy, wrt=wrt)
        need = g.needs_grad(wrt)
        assert part.grad_inputs() == list(dict.fromkeys(wrt))
        for i in range(len(g)):
            assert _bytes(part.values[i]) == _bytes(full.values[i]), (strategy, i, text)
            if need[i]:
                assert _bytes(part.grads[i]) == _bytes(full.grads[i]), (strategy, i, g.ops[i], wrt, text)
            else:
                assert part.grads[i] is None, (strategy, i, g.ops[i], wrt, text)
        for name in wrt:  # a requested input always has a gradient (0 when the output does not depend on it)
            assert part.grads[g.inputs[name]] is not None


def subsets(names: list[str], rng: random.Random) -> list[list[str]]:
    out = [[n] for n in names]
    if len(names) > 2:
        out.append(rng.sample(names, len(names) - 1))
    return out


# -- bit-identical with and without pruning --------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.cg")), ids=lambda p: p.name)
def test_examples_pruned_gradients_are_bit_identical(path) -> None:
    text = path.read_text()
    g = compile_program(Source(text, path.name), {}, use_cache=False)
    missing = [x for x in g.inputs if x not in g.defaults]
    if missing:
        pytest.skip(f"needs values for {missing}")
    names = g.grad_inputs()
    for wrt in subsets(names, random.Random(0)):
        assert_pruned_same(text, {}, wrt)


@pytest.mark.parametrize("seed", range(25))
def test_random_scalar_programs_pruned_gradients_are_bit_identical(seed: int) -> None:
    rng = random.Random(7000 + seed)
    wide = seed % 3 == 0
    n_in = 8 if wide else 3
    text = random_program(rng, rng.randint(30, 200) if wide else rng.randint(3, 40), n_inputs=n_in, wide=wide)
    values = {f"i{k}": np.array(rng.choice(VALUES)) for k in range(n_in)}
    g = compile_program(Source(text, "<t>"), values, use_cache=False)
    values = {k: v for k, v in values.items() if k in g.inputs}
    for wrt in subsets(list(g.inputs), rng):
        assert_pruned_same(text, values, wrt)


@settings(max_examples=30, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=test_properties.typed("S", 4), seed=st.integers(0, 2**32 - 1), f32=st.booleans())
def test_random_tensor_programs_pruned_gradients_are_bit_identical(expr: str, seed: int, f32: bool) -> None:
    text = f"y = {expr}\n"
    rng = np.random.default_rng(seed)
    values = {k: rng.uniform(-1, 1, size=shape) for k, shape in test_properties.TENSOR_INPUTS.items()}
    try:
        g = compile_program(Source(text, "<t>"), values, use_cache=False)
    except CgraphError:
        assume(False)
    values = {k: v for k, v in values.items() if k in g.inputs}
    assume(values)
    for wrt in subsets(list(g.inputs), random.Random(seed)):
        assert_pruned_same(text, values, wrt, "float32" if f32 else "float64")


def test_data_declaration_equals_wrt_of_the_others() -> None:
    """``input data X`` gives exactly what ``--wrt`` of the other inputs gives, in every strategy."""
    plain = DATA_PROGRAM.replace("input data", "input")
    values = {"X": np.array([[1.0, 2, 3], [4, 5, 6]]), "T": np.array([1.0, 2]), "W": np.array([0.1, 0.2, 0.3])}
    for strategy in STRATEGIES:
        gd = compile_program(Source(DATA_PROGRAM, "d"), values, use_cache=False)
        gp = compile_program(Source(plain, "p"), values, use_cache=False)
        rd = evaluate(gd, bind_inputs(gd, values), strategy=strategy)
        rp = evaluate(gp, bind_inputs(gp, values), strategy=strategy, wrt=["W", "b"])
        assert gd.data_inputs == {"X", "T"} and gp.data_inputs == set()
        assert rd.grad_inputs() == ["W", "b"]
        assert [_bytes(v) for v in rd.grads] == [_bytes(v) for v in rp.grads]
        assert rd.grads[gd.inputs["X"]] is None and rd.grads[gd.inputs["T"]] is None


# -- pruning skips work ----------------------------------------------------------------------------------------------

MLP = """input data X[4, 5], T[4, 2]
input W1[5, 3], b1[3], W2[3, 2], b2[2]
h = relu(X @ W1 + b1)
o = h @ W2 + b2
loss = sum((o - T) * (o - T))
"""


def _mlp_values() -> dict:
    rng = np.random.default_rng(1)
    shapes = {"X": (4, 5), "T": (4, 2), "W1": (5, 3), "b1": (3,), "W2": (3, 2), "b2": (2,)}
    return {k: rng.standard_normal(s) for k, s in shapes.items()}


def test_backward_runs_no_vjp_for_what_nobody_asked() -> None:
    values = _mlp_values()
    g = compile_program(Source(MLP, "m"), values, use_cache=False)
    vals = forward(g, bind_inputs(g, values))
    every, data, last = Counter(), Counter(), Counter()
    backward(g, vals, g.output, count=every, wrt=list(g.inputs))
    backward(g, vals, g.output, count=data)  # the default: X and T are data
    backward(g, vals, g.output, count=last, wrt=["W2", "b2"])
    # every input: both operands of both matmuls; without X: not X's; W2 and b2 only: the second matmul's W2 side
    assert every["matmul"] == 4 and data["matmul"] == 3 and last["matmul"] == 1
    assert every["relu"] == 1 and data["relu"] == 1 and last["relu"] == 0  # nothing reaches below h
    assert sum(last.values()) < sum(data.values()) < sum(every.values())


def test_the_fast_strategies_leave_out_the_nodes_nobody_asked_for() -> None:
    """The float loop's and the level-batched pass's backward lists hold only the nodes that depend on a requested
    input (and reach the output); the whole pass's lists hold the others too."""
    from cgraph_cli.engine.scalar import scalar_plan

    text = "y = sin(a) * b\nz = cos(c) * c + exp(b)\nout = y + z\n"
    values = {k: np.array(v) for k, v in {"a": 0.5, "b": 2.0, "c": -1.0}.items()}
    g = compile_program(Source(text, "p"), values, use_cache=False)
    plan = scalar_plan(g, values)
    assert plan is not None
    full = set(plan.back(g.output).nodes)
    depends_on_a = set(np.flatnonzero(g.needs_grad(["a"])).tolist())
    part = set(plan.pruned(["a"]).back(g.output).nodes)
    assert part and part <= depends_on_a and part < full
    assert {g.ops[i] for i in full - part} >= {"cos", "exp"}
    for strategy in ("scalar", "levels"):
        res = evaluate(g, values, strategy=strategy, wrt=["a"])
        assert res.wrt == ["a"] and [i for i, gr in enumerate(res.grads) if gr is not None] == sorted(depends_on_a)


# -- the command line and the API ------------------------------------------------------------------------------------


def test_cli_json_has_only_the_requested_gradients(tmp_path) -> None:
    p = tmp_path / "d.cg"
    p.write_text(DATA_PROGRAM.replace("input data", "input"))
    full = json.loads(run_inproc("eval", str(p), "--at", DATA_AT, "-f", "json").stdout)
    r = run_inproc("eval", str(p), "--at", DATA_AT, "-f", "json", "--wrt", "b,W")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["gradients"] == {"b": full["gradients"]["b"], "W": full["gradients"]["W"]}  # absent keys, given order
    grads = {n["name"]: n["grad"] for n in doc["nodes"] if n["name"]}
    assert grads["X"] is None and grads["T"] is None  # null, as for a node without a gradient
    assert grads["y"] == [n["grad"] for n in full["nodes"] if n["name"] == "y"][0]
    assert doc["value"] == full["value"] and doc["inputs"] == full["inputs"]


def test_cli_data_inputs_have_no_gradient(tmp_path) -> None:
    p = tmp_path / "d.cg"
    p.write_text(DATA_PROGRAM)
    doc = json.loads(run_inproc("eval", str(p), "--at", DATA_AT, "-f", "json").stdout)
    assert list(doc["gradients"]) == ["W", "b"]
    assert doc["gradients"]["b"] == pytest.approx(2 * ((1.9 - 1) + (3.7 - 2)))
    r = run_inproc("eval", str(p), "--at", DATA_AT)
    assert r.returncode == 0, r.stderr
    assert "gradients with respect to W, b only (X, T: data)" in r.stdout
    csv = run_inproc("eval", str(p), "--at", DATA_AT, "-f", "csv").stdout.splitlines()
    assert csv[1].startswith("X,input,X,2x3,") and csv[1].endswith(",")  # an empty gradient cell
    assert csv[2] == 'T,input,T,2,"[1.0,2.0]",'


def test_cli_table_says_whose_gradients(tmp_path) -> None:
    r = run_inproc("eval", "-e", "y = a * b + c", "--at", "a=2,b=3,c=1", "--wrt", "a")
    assert r.returncode == 0, r.stderr
    rows = {line.split("│")[1].strip(): line for line in r.stdout.splitlines() if line.startswith("│")}
    assert rows["a"].rstrip("│ ").endswith("3")
    assert rows["b"].rstrip("│ ").endswith("—") and rows["c"].rstrip("│ ").endswith("—")
    assert "gradients with respect to a only" in r.stdout


def test_cli_unknown_name_is_exit_2_with_did_you_mean() -> None:
    r = run_cli("eval", "-e", "y = w1 * x + b", "--at", "w1=1,x=2,b=3", "--wrt", "w,b", "-f", "json")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("error: --wrt: 'w' is not an input of the program; its inputs are: w1, x, b")
    assert "did you mean 'w1'?" in r.stderr and "Traceback" not in r.stderr
    r = run_inproc("eval", "-e", "y = x", "--at", "x=1", "--wrt", " , ")
    assert r.returncode == 2 and "--wrt: no input named" in r.stderr


def test_cli_wrt_of_a_data_input_says_it_was_declared_data(tmp_path) -> None:
    p = tmp_path / "d.cg"
    p.write_text(DATA_PROGRAM)
    for fmt in ("json", "table"):
        r = run_inproc("eval", str(p), "--at", DATA_AT, "--wrt", "W,T", "-f", fmt)
        assert r.returncode == 2 and r.stdout == ""
        assert f"error: {p}:1:21: --wrt: 'T' is declared as data (input data T), so it has no gradient" in r.stderr
        assert "^" in r.stderr
    r = run_inproc("check", str(p), "--at", DATA_AT, "--wrt", "X")  # check --wrt words it the same way
    assert r.returncode == 2 and "'X' is declared as data" in r.stderr


def test_check_skips_data_inputs(tmp_path) -> None:
    p = tmp_path / "d.cg"
    p.write_text(DATA_PROGRAM)
    r = run_inproc("check", str(p), "--at", DATA_AT, "-f", "json")
    assert r.returncode == 0, r.stderr
    assert "X[0, 0]" not in r.stdout and "T[0]" not in r.stdout and '"b"' in r.stdout


def test_cli_hessian_with_wrt_has_the_blocks_of_those_inputs() -> None:
    base = ["eval", "-e", "y = a * a * b + c", "--at", "a=2,b=3,c=1", "--hessian", "-f", "json"]
    full = json.loads(run_inproc(*base).stdout)
    part = json.loads(run_inproc(*base, "--wrt", "b,a").stdout)
    assert part["hessian"] == {x: {y: full["hessian"][x][y] for y in ("b", "a")} for x in ("b", "a")}
    assert part["hessian"]["a"]["b"] == 4.0 and part["gradients"] == {"b": 4.0, "a": 12.0}


def test_cli_refuses_forward_and_hvp_with_wrt() -> None:
    base = ["eval", "-e", "y = a * b", "--at", "a=2,b=3", "--wrt", "a"]
    for extra, word in (
        (["--hvp", "a=1"], "--hvp"),
        (["--mode", "forward"], "--mode forward"),
        (["--mode", "forward", "--tangent", "a=1"], "--tangent"),
    ):
        r = run_inproc(*base, *extra, "-f", "json")
        assert r.returncode == 2 and r.stdout == "", extra
        assert f"--wrt picks which gradients the reverse pass computes; it cannot be combined with {word}" in r.stderr


def test_cli_wrt_with_cotangent_and_jacobian(tmp_path) -> None:
    base = ["eval", "-e", "y = [a * b, a + c]", "--at", "a=2,b=3,c=5", "-f", "json"]
    full = json.loads(run_inproc(*base, "--cotangent", "[1, 2]").stdout)
    part = json.loads(run_inproc(*base, "--cotangent", "[1, 2]", "--wrt", "b").stdout)
    assert part["gradients"] == {"b": full["gradients"]["b"]} == {"b": 2.0}
    jac = json.loads(run_inproc(*base, "--jacobian", "--wrt", "c,a").stdout)
    assert jac["jacobian"] == {"c": [0.0, 1.0], "a": [3.0, 1.0]}


def test_api_eval_wrt() -> None:
    p = cg.parse("input data x\ny = relu(w * x + b)")
    ev = p.eval(w=2, x=3, b=-1)
    assert ev.grad == {"w": 3.0, "b": 1.0}
    assert ev["x"].grad is None
    assert p.eval(w=2, x=3, b=-1, wrt=["b"]).grad == {"b": 1.0}
    assert p.eval(w=2, x=3, b=-1, wrt="b, w").grad == {"b": 1.0, "w": 3.0}
    with pytest.raises(CgraphError, match="'x' is declared as data"):
        p.eval(w=2, x=3, b=-1, wrt="x")
    with pytest.raises(CgraphError, match="'ww' is not an input of the program") as e:
        p.eval(w=2, x=3, b=-1, wrt=["ww"])
    assert e.value.hint == "did you mean 'w'?"


def test_data_inputs_in_forward_mode_hessian_and_batch(tmp_path) -> None:
    prog = "input data x\ny = w * w * x + b"
    base = ["eval", "-e", prog, "--at", "x=3,w=2,b=1", "-f", "json"]
    fwd = json.loads(run_inproc(*base, "--mode", "forward").stdout)  # the default direction: the first non-data input
    assert fwd["jvp"] == 12.0 and fwd["direction"] == {"x": None, "w": 1.0, "b": 0.0}
    r = run_inproc(*base, "--mode", "forward", "--tangent", "x=1")
    assert r.returncode == 2 and "--tangent: 'x' is declared as data" in r.stderr
    hes = json.loads(run_inproc(*base, "--hessian").stdout)["hessian"]
    assert hes == {"w": {"w": 6.0, "b": 0.0}, "b": {"w": 0.0, "b": 0.0}}
    points = tmp_path / "p.csv"
    points.write_text("x,w\n1,2\n2,3\n")
    r = run_inproc("eval", "-e", prog, "--at", "b=1", "--batch", str(points))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "x,w,y,dy/dw,dy/db"
    assert r.stdout.splitlines()[1:] == ["1,2,5.0,4.0,1.0", "2,3,19.0,12.0,1.0"]


def test_data_inputs_survive_the_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CGRAPH_CACHE_DIR", str(tmp_path / "cache"))
    from cgraph_cli import limits

    pad = "# " + "x" * limits.CACHE_MIN_CHARS + "\n"  # long enough to be cached
    text = pad + DATA_PROGRAM
    first = compile_program(Source(text, "d.cg"), {}, use_cache=True)
    assert list((tmp_path / "cache").glob("*.npz")), "the program was not cached"
    again = compile_program(Source(text, "d.cg"), {}, use_cache=True)
    assert first.data_inputs == again.data_inputs == {"X", "T"}


# -- the non-finite scan (the MLP paid for a float32 sum per tensor) ------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_mask_finds_every_non_finite_entry(dtype) -> None:
    from cgraph_cli.engine import reference

    n = reference._SCAN_CHUNK
    rng = np.random.default_rng(0)
    items = []
    want = []
    for size in (1, 65, n - 1, n, n + 1, 3 * n + 5):
        for bad in (None, 0, size - 1, size // 2):
            a = rng.standard_normal(size).astype(dtype)
            if bad is not None:
                a[bad] = [np.nan, np.inf, -np.inf][bad % 3]
            items += [a, a.reshape(1, -1), a[::-1]]  # contiguous, 2-d, a reversed view
            want += [bad is not None] * 3
    big = np.full(3, 1e38, dtype=dtype)  # finite, though its sum overflows in float32
    items += [big, np.broadcast_to(np.array([1.0, np.nan], dtype=dtype), (n, 2)), None, np.float32(np.inf)]
    want += [False, True, False, True]
    assert reference.nonfinite_mask(items).tolist() == want
