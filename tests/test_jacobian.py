"""Non-scalar outputs: ``eval --jacobian``, ``eval --cotangent`` and the refusal's hint; forward mode on the
command line (``--mode forward --tangent``) and every bad combination of these options.

Jacobians are checked against finite differences, forward against reverse passes, and (property tests over
the random tensor programs of tests/test_properties.py) JVPs and VJPs against the Jacobian they are
products with: ``J t`` and ``vᵀ J``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cgraph_cli.engine.forward_mode import jacobian, jvp, pick_mode, vjp
from cgraph_cli.engine.reference import forward
from cgraph_cli.errors import Source
from cgraph_cli.run.program import compile_program
from cgraph_cli.run.values import bind_inputs
from tests.conftest import EXAMPLES, run_cli
from tests.test_properties import TENSOR_INPUTS, typed

PROG = "input x[3], s\ny = x * x * s + sin(x)"
AT = ["--at", "x=[1,2,3],s=2"]


def _json(*args):
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _fd_jacobian(g, vals, out, name, h=1e-6):
    base = np.asarray(vals[name], dtype=np.float64)
    cols = []
    for idx in np.ndindex(*base.shape):
        plus = {k: np.array(v, dtype=np.float64, copy=True) for k, v in vals.items()}
        minus = {k: np.array(v, dtype=np.float64, copy=True) for k, v in vals.items()}
        plus[name][idx] += h
        minus[name][idx] -= h
        cols.append((np.asarray(forward(g, plus)[out]) - np.asarray(forward(g, minus)[out])) / (2 * h))
    oshape = np.shape(forward(g, vals)[out])
    return (
        np.moveaxis(
            np.array(cols).reshape(base.shape + oshape),
            list(range(base.ndim)),
            [-base.ndim + k for k in range(base.ndim)],
        )
        if base.ndim
        else np.array(cols).reshape(oshape)
    )


def test_eval_jacobian_json_has_every_input_with_shape_output_plus_input():
    d = _json("eval", "-e", PROG, *AT, "--jacobian", "--format", "json")
    x = np.array([1.0, 2.0, 3.0])
    assert set(d["jacobian"]) == {"x", "s"}
    np.testing.assert_allclose(d["jacobian"]["x"], np.diag(2 * x * 2 + np.cos(x)), rtol=1e-15)
    np.testing.assert_allclose(d["jacobian"]["s"], x * x, rtol=1e-15)
    assert np.shape(d["jacobian"]["x"]) == (3, 3) and np.shape(d["jacobian"]["s"]) == (3,)
    assert d["mode"] == "jacobian" and d["jacobian_mode"] == "reverse" and d["jacobian_passes"] == 3
    assert "gradients" not in d and all("grad" not in n for n in d["nodes"])


def test_the_jacobian_picks_the_mode_with_fewer_passes_and_both_agree():
    assert pick_mode(out_size=3, in_size=4) == "reverse" and pick_mode(out_size=5, in_size=4) == "forward"
    src = "input W[2, 3], v[3]\ny = tanh(W @ v) * 2"  # 2 outputs, 9 input entries: reverse
    rng = np.random.default_rng(0)
    vals = {"W": rng.standard_normal((2, 3)), "v": rng.standard_normal(3)}
    g = compile_program(Source(src), vals)
    fv = forward(g, bind_inputs(g, vals))
    rev, fwd = jacobian(g, fv, g.output), jacobian(g, fv, g.output, "forward")
    assert (rev.mode, rev.passes, rev.other) == ("reverse", 2, 9) and (fwd.mode, fwd.passes) == ("forward", 9)
    for k in vals:
        np.testing.assert_allclose(rev.blocks[k], fwd.blocks[k], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(rev.blocks[k], _fd_jacobian(g, vals, g.output, k), rtol=1e-6, atol=1e-8)
        assert rev.blocks[k].shape == (2,) + vals[k].shape
    # forced from the command line: --mode forward computes it with forward passes
    at = ["--at", "W=[[1,2,3],[0,-1,0.5]],v=[0.1,0.2,0.3]"]
    a = _json("eval", "-e", src, *at, "--jacobian", "-f", "json")
    b = _json("eval", "-e", src, *at, "--jacobian", "--mode", "forward", "-f", "json")
    assert (a["jacobian_mode"], b["jacobian_mode"], b["jacobian_passes"]) == ("reverse", "forward", 9)
    np.testing.assert_allclose(a["jacobian"]["W"], b["jacobian"]["W"], rtol=1e-14)


def test_jacobian_of_a_scalar_output_is_its_gradient():
    d = _json("eval", str(EXAMPLES / "lecture.cg"), "--jacobian", "-f", "json")
    assert d["jacobian"] == {"a": 7.0, "b": 9.0, "c": 2.0}
    assert d["jacobian_mode"] == "reverse" and d["jacobian_passes"] == 1


def test_jacobian_table_and_csv():
    r = run_cli("eval", "-e", PROG, *AT, "--jacobian", env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert "Jacobian by reverse mode: 3 passes, one per output entry (the other mode would take 4)" in r.stdout
    assert "∂y/∂x: shape (3, 3)" in r.stdout and "x[2]" in r.stdout and "y[0]" in r.stdout
    r = run_cli("eval", "-e", PROG, *AT, "--jacobian", "-f", "csv")
    lines = r.stdout.splitlines()
    assert lines[0] == "output,input,derivative" and len(lines) == 1 + 3 * 3 + 3
    assert "y[1],x[1],7.583853163452858" in lines  # 2·2·2 + cos 2
    assert "y[2],s,9.0" in lines


def test_a_large_jacobian_table_is_abbreviated():
    r = run_cli(
        "eval", "-e", "input x[40]\ny = cumsum(x)", "--at", "x=" + str([0.5] * 40).replace(" ", ""), "--jacobian"
    )
    assert r.returncode == 0, r.stderr
    assert "∂y/∂x: shape (40, 40), the first 12 × 8 of 40 × 40 entries" in r.stdout
    assert "x[8]" not in r.stdout and "y[12]" not in r.stdout


def test_cotangent_gives_every_nodes_vector_jacobian_product():
    d = _json("eval", "-e", PROG, *AT, "--cotangent", "[1, 0, -2]", "-f", "json")
    x, v = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, -2.0])
    jx = np.diag(4 * x + np.cos(x))
    np.testing.assert_allclose(d["gradients"]["x"], v @ jx, rtol=1e-15)
    np.testing.assert_allclose(d["gradients"]["s"], v @ (x * x), rtol=1e-15)
    assert d["mode"] == "cotangent" and d["cotangent"] == [1.0, 0.0, -2.0]
    out = next(n for n in d["nodes"] if n["name"] == "y")
    assert out["grad"] == [1.0, 0.0, -2.0]
    # a number is that number at every entry; the table says v
    e = _json("eval", "-e", PROG, *AT, "--cotangent", "1", "-f", "json")
    np.testing.assert_allclose(e["gradients"]["x"], np.ones(3) @ jx)
    r = run_cli("eval", "-e", PROG, *AT, "--cotangent", "[1,0,-2]")
    assert "cotangent v = [1, 0, -2]" in r.stdout and "vᵀ·∂y/∂node" in r.stdout


def test_cotangent_from_the_at_file(tmp_path):
    f = tmp_path / "at.json"
    f.write_text(json.dumps({"x": [1, 2, 3], "s": 2, "cotangent": [0, 1, 0]}))
    d = _json("eval", "-e", PROG, "--at-file", str(f), "-f", "json")
    assert d["mode"] == "cotangent" and d["gradients"]["s"] == 4.0
    r = run_cli("eval", "-e", PROG, "--at-file", str(f), "--jacobian")
    assert r.returncode == 2
    assert r.stderr.startswith("error: --jacobian and the --at-file key 'cotangent' cannot be combined")


def test_a_non_scalar_output_without_the_flags_is_refused_with_a_hint_naming_them():
    r = run_cli("eval", "-e", PROG, *AT)
    assert r.returncode == 2
    assert "output 'y' has shape (3,); only a scalar can be differentiated" in r.stderr
    assert (
        "hint: differentiate a scalar such as sum(y) or mean(y); or, with cgraph eval, ask for the Jacobian"
        " (--jacobian) or a vector-Jacobian product (--cotangent V, V of shape (3,))"
    ) in r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--mode", "forward", "--cotangent", "1"],
            "error: --mode forward and --cotangent cannot be combined: a cotangent seeds reverse mode\n"
            "hint: forward mode takes its direction from --tangent NAME=VALUE,...\n",
        ),
        (
            ["--jacobian", "--cotangent", "1"],
            "error: --jacobian and --cotangent cannot be combined: the Jacobian holds every vector-Jacobian"
            " product already\n",
        ),
        (
            ["--jacobian", "--mode", "forward", "--tangent", "s=1"],
            "error: --jacobian and --tangent cannot be combined: the Jacobian moves every input entry in turn\n",
        ),
        (["--tangent", "s=1"], "error: --tangent gives the direction of forward mode\nhint: add --mode forward\n"),
        (["--mode", "sideways"], "error: --mode: 'sideways' is not one of: reverse, forward\n"),
        (
            ["--mode", "forward", "--tangent", "q=1"],
            "error: --tangent: 'q' is not an input of the program; its inputs are: x, s\n",
        ),
        (
            ["--mode", "forward", "--tangent", "xs=1"],
            "error: --tangent: 'xs' is not an input of the program; its inputs are: x, s\nhint: did you mean 'x'?\n",
        ),
        (
            ["--mode", "forward", "--tangent", "x=[1,2]"],
            "error: --tangent x: the tangent has shape (2,) but input 'x' has shape (3,)\n"
            "hint: give a tensor of the input's shape, or a number for every entry\n",
        ),
        (
            ["--cotangent", "[[1,2,3]]"],
            "error: --cotangent: the cotangent has shape (1, 3) but the output 'y' has shape (3,)\n"
            "hint: give a tensor of the output's shape, or a number for every entry\n",
        ),
        (["--cotangent", "[1,"], "error: --cotangent: unbalanced '['\n"),
    ],
)
@pytest.mark.parametrize("fmt", ["table", "json"])
def test_bad_combinations_are_refused_exactly(args, message, fmt):
    r = run_cli("eval", "-e", PROG, *AT, *args, "--format", fmt)
    assert (r.returncode, r.stdout, r.stderr) == (2, "", message)


def test_batch_is_refused_with_any_of_them(tmp_path):
    r = run_cli("eval", "-e", PROG, "--batch", str(tmp_path / "p.csv"), "--mode", "forward")
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == (
        "error: --batch gives each point's gradient; it cannot be combined with --mode, --tangent, --cotangent"
        " or --jacobian\n"
    )


# -- property tests over random tensor programs ---------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["V", "M", "S"]).flatmap(lambda k: typed(k, 3)), st.integers(0, 2**32 - 1))
def test_jacobian_jvp_and_vjp_agree_on_random_programs(expr, seed):
    """J from forward passes = J from reverse passes = finite differences; J t = JVP(t); vᵀ J = VJP(v)."""
    rng = np.random.default_rng(seed)
    vals = {k: rng.uniform(-1, 1, size=shape) for k, shape in TENSOR_INPUTS.items()}
    g = compile_program(Source(f"y = {expr}"), vals)
    vals = {k: v for k, v in vals.items() if k in g.inputs}
    inputs = bind_inputs(g, vals)
    fv = forward(g, inputs)
    out = g.output
    oshape = np.shape(fv[out])
    jf, jr = jacobian(g, fv, out, "forward"), jacobian(g, fv, out, "reverse")
    t = {k: rng.standard_normal(np.shape(v)) for k, v in vals.items()}
    v = rng.standard_normal(oshape)
    want_jvp = np.zeros(oshape)
    res_v = vjp(g, inputs, v, out)
    for k in vals:
        np.testing.assert_allclose(jf.blocks[k], jr.blocks[k], rtol=1e-10, atol=1e-12, err_msg=expr)
        np.testing.assert_allclose(jr.blocks[k], _fd_jacobian(g, vals, out, k), rtol=1e-5, atol=1e-6, err_msg=expr)
        flat = jr.blocks[k].reshape(int(np.prod(oshape)), -1)
        want_jvp = want_jvp + (flat @ t[k].reshape(-1)).reshape(oshape)
        np.testing.assert_allclose(
            res_v.grads[g.inputs[k]], (v.reshape(-1) @ flat).reshape(np.shape(vals[k])), rtol=1e-10, atol=1e-12
        )
    if vals:
        np.testing.assert_allclose(jvp(g, inputs, t, out).jvp, want_jvp, rtol=1e-10, atol=1e-12, err_msg=expr)
