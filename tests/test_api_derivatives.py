"""The Python API's derivatives beyond the gradient: ``Evaluation.jvp``, ``.vjp``, ``.jacobian``, ``.hessian``,
``.hvp``, ``.tangent`` and ``Program.eval(mode=..., tangent=..., cotangent=..., jacobian=...)``.

Checked against references that share no code with them: the lecture's numbers by hand, a hand-written numpy
MLP (forward pass and backprop), softmax regression's textbook derivatives, and finite differences of values
(first order) or of reverse-mode gradients (second order); on random programs, forward against reverse
Jacobians, the duality ⟨vjp(u), t⟩ = ⟨u, jvp(t)⟩, J t = jvp(t), Hessian symmetry and H v = hvp(v). The command
line gives the same numbers because it calls these methods (checked by spying on them), ``.grad`` is never
silently wrong (a run without gradients refuses), bad requests raise CgraphError, and independent
evaluations differentiate correctly from several threads at once.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cgraph_cli as cg
from cgraph_cli import api
from tests.conftest import EXAMPLES
from tests.conftest import run_inproc as run_main
from tests.test_properties import TENSOR_INPUTS, typed

LECTURE = str(EXAMPLES / "lecture.cg")
MLP = str(EXAMPLES / "mlp.cg")
SOFTMAX = str(EXAMPLES / "softmax_regression.cg")
LECTURE_HESSIAN = np.array([[0.0, 1.0, 1.0], [1.0, 2.0, 1.0], [1.0, 1.0, 0.0]])


def fd_jacobian(f, point: dict[str, np.ndarray], name: str, h: float = 1e-6) -> np.ndarray:
    """Central differences of ``f(point)`` (an array) in every entry of ``point[name]``: shape f.shape + x.shape."""
    base = np.asarray(point[name], dtype=np.float64)
    cols = []
    for idx in np.ndindex(*base.shape):
        plus = {k: np.array(v, dtype=np.float64) for k, v in point.items()}
        minus = {k: np.array(v, dtype=np.float64) for k, v in point.items()}
        plus[name][idx] += h
        minus[name][idx] -= h
        cols.append((np.asarray(f(plus), dtype=np.float64) - np.asarray(f(minus), dtype=np.float64)) / (2 * h))
    out_shape = np.shape(f(point))
    cols_arr = np.array(cols).reshape(base.shape + out_shape)
    return np.moveaxis(cols_arr, list(range(base.ndim)), list(range(len(out_shape), len(out_shape) + base.ndim)))


def matrix(block: np.ndarray, left: tuple[int, ...]) -> np.ndarray:
    """A block of shape left + right as a (size of left) × (size of right) matrix."""
    rows = int(np.prod(left, dtype=np.int64))
    return np.reshape(block, (rows, -1))


# -- the lecture, by hand ----------------------------------------------------------------------------------------------


def test_the_lecture_by_hand() -> None:
    ev = cg.load(LECTURE).eval(a=-1, b=3, c=4)  # z = (a + b)(b + c): ∇z = (b + c, a + 2b + c, a + b) = (7, 9, 2)
    assert ev.mode == "reverse"
    assert float(ev.jvp({"a": 1})) == 7.0 and float(ev.jvp({"b": 1})) == 9.0
    assert float(ev.jvp({"a": 1, "b": 1, "c": 1})) == 18.0
    assert float(ev.jvp()) == 7.0  # no direction: 1 for the first input, as eval --mode forward
    assert {k: float(v) for k, v in ev.vjp(2).items()} == {"a": 14.0, "b": 18.0, "c": 4.0}
    jac = ev.jacobian()
    assert list(jac) == ["a", "b", "c"] and all(np.shape(b) == () for b in jac.values())
    assert {k: float(v) for k, v in jac.items()} == {"a": 7.0, "b": 9.0, "c": 2.0}
    h = ev.hessian()
    np.testing.assert_array_equal([[h[x][y] for y in "abc"] for x in "abc"], LECTURE_HESSIAN)
    hv = ev.hvp({"a": 1, "c": 2})
    np.testing.assert_array_equal([hv[x] for x in "abc"], LECTURE_HESSIAN @ [1.0, 0.0, 2.0])
    sub = ev.hessian(wrt="c, a")
    assert list(sub) == ["c", "a"] and list(sub["c"]) == ["c", "a"]
    assert (float(sub["c"]["a"]), float(sub["a"]["a"])) == (1.0, 0.0)


def test_forward_mode_evaluation_has_tangents_and_refuses_gradients() -> None:
    ev = cg.load(LECTURE).eval(tangent={"b": 1})  # dx = 1, dy = 1, dz = dx·y + x·dy = 7 + 2
    assert ev.mode == "forward" and ev.tangent == 9.0 and ev.direction == {"a": 0.0, "b": 1.0, "c": 0.0}
    assert [(n.name, n.tangent, n.grad) for n in ev.nodes if n.name in ("x", "y", "z")] == [
        ("x", 1.0, None),
        ("y", 1.0, None),
        ("z", 9.0, None),
    ]
    with pytest.raises(cg.CgraphError, match="ran forward mode: it holds tangents along a direction, not gradients"):
        ev.grad  # noqa: B018
    assert cg.load(LECTURE).eval(mode="forward").tangent == 7.0  # the default direction
    # the derivatives at the same point still work from a forward-mode run
    assert {k: float(v) for k, v in ev.vjp(1).items()} == {"a": 7.0, "b": 9.0, "c": 2.0}
    with pytest.raises(cg.CgraphError, match="ran reverse mode: it has no tangent"):
        cg.load(LECTURE).eval().tangent  # noqa: B018


def test_a_jacobian_run_refuses_gradients_and_a_cotangent_run_holds_the_vjp() -> None:
    p = cg.parse("input x[3], s\ny = x * x * s")
    jac = p.eval(x=[1, 2, 3], s=2, jacobian=True)
    assert jac.mode == "jacobian"
    with pytest.raises(cg.CgraphError, match="ran jacobian mode"):
        jac.grad  # noqa: B018
    assert all(n.grad is None and n.tangent is None for n in jac.nodes)
    cot = p.eval(x=[1, 2, 3], s=2, cotangent=[1, 0, 1])
    assert cot.mode == "cotangent"
    np.testing.assert_array_equal(cot.grad["x"], [4.0, 0.0, 12.0])  # vᵀ ∂y/∂x = v · 2xs
    assert cot.grad["s"] == 1 + 9
    assert {k: np.asarray(v).tolist() for k, v in cot.vjp([1, 0, 1]).items()} == {
        k: np.asarray(v).tolist() for k, v in cot.grad.items()
    }


# -- the MLP against a hand-written numpy network --------------------------------------------------------------------


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def mlp_numpy(x, t, W1, b1, W2, b2) -> tuple[float, np.ndarray, dict[str, np.ndarray]]:
    """The loss, the output a2 and the gradient of the loss by backprop written out by hand."""
    z1 = W1 @ x + b1
    a1 = _sigmoid(z1)
    z2 = W2 @ a1 + b2
    a2 = _sigmoid(z2)
    loss = 0.5 * float(np.sum((a2 - t) ** 2))
    d_a2 = a2 - t
    d_z2 = d_a2 * a2 * (1 - a2)
    d_a1 = W2.T @ d_z2
    d_z1 = d_a1 * a1 * (1 - a1)
    grads = {
        "x": W1.T @ d_z1,
        "t": -d_a2,
        "W1": np.outer(d_z1, x),
        "b1": d_z1,
        "W2": np.outer(d_z2, a1),
        "b2": d_z2,
    }
    return loss, a2, grads


@pytest.fixture(scope="module")
def mlp() -> tuple[cg.Evaluation, dict[str, np.ndarray]]:
    ev = cg.load(MLP).eval(seed=0)
    point = {k: np.asarray(v, dtype=np.float64) for k, v in ev.inputs.items()}
    return ev, point


def test_mlp_jacobian_vjp_and_jvp_match_numpy_backprop(mlp) -> None:
    ev, point = mlp
    loss, _, grads = mlp_numpy(**point)
    assert ev.value == pytest.approx(loss, rel=1e-14)
    for how in (None, "forward", "reverse"):
        jac = ev.jacobian(mode=how)
        assert list(jac) == list(grads)
        for k in grads:
            np.testing.assert_allclose(jac[k], grads[k], rtol=1e-12, atol=1e-15, err_msg=f"{how} {k}")
    vjp = ev.vjp(1.0)
    rng = np.random.default_rng(0)
    t = {k: rng.standard_normal(np.shape(v)) for k, v in point.items()}
    want = sum(float(np.sum(grads[k] * t[k])) for k in grads)
    assert float(ev.jvp(t)) == pytest.approx(want, rel=1e-12)
    for k in grads:
        np.testing.assert_allclose(vjp[k], grads[k], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(ev.grad[k], grads[k], rtol=1e-12, atol=1e-15)


def test_mlp_jacobian_of_its_vector_output_matches_finite_differences_of_numpy(mlp) -> None:
    _, point = mlp
    ev = cg.load(MLP).eval(point, of="a2", jacobian=True)
    assert ev.output == "a2"
    for how in ("forward", "reverse"):
        jac = ev.jacobian(mode=how)
        for k in point:
            want = fd_jacobian(lambda p: mlp_numpy(**p)[1], point, k)
            assert jac[k].shape == (2,) + point[k].shape
            np.testing.assert_allclose(jac[k], want, rtol=1e-6, atol=1e-9, err_msg=f"{how} ∂a2/∂{k}")
    np.testing.assert_array_equal(ev.jacobian()["W1"], ev.result.jacobian.blocks["W1"])  # the run's own


def test_mlp_hessian_matches_finite_differences_of_numpy_backprop(mlp) -> None:
    ev, point = mlp
    h = ev.hessian()
    names = list(point)
    assert list(h) == names and all(list(h[x]) == names for x in names)
    for x in names:
        for y in names:
            want = fd_jacobian(lambda p, x=x: mlp_numpy(**p)[2][x], point, y, h=1e-5)
            assert h[x][y].shape == point[x].shape + point[y].shape
            np.testing.assert_allclose(h[x][y], want, rtol=1e-6, atol=1e-8, err_msg=f"∂²loss/∂{x}∂{y}")
    # symmetric: H[x][y] is H[y][x] transposed
    for x in names:
        for y in names:
            np.testing.assert_allclose(
                matrix(h[x][y], point[x].shape), matrix(h[y][x], point[y].shape).T, rtol=1e-12, atol=1e-15
            )
    # H v, block by block, equals the product that never forms H
    rng = np.random.default_rng(1)
    v = {k: rng.standard_normal(np.shape(p)) for k, p in point.items()}
    hv = ev.hvp(v)
    for x in names:
        want = sum(matrix(h[x][y], point[x].shape) @ v[y].reshape(-1) for y in names)
        np.testing.assert_allclose(hv[x].reshape(-1), want, rtol=1e-10, atol=1e-13)


# -- softmax regression: the textbook derivatives --------------------------------------------------------------------


def test_softmax_regression_derivatives_are_the_textbook_ones() -> None:
    rng = np.random.default_rng(3)
    W, b, x, y = rng.standard_normal((3, 2)), rng.standard_normal(3), np.array([1.0, 2.0]), np.array([0.0, 1.0, 0.0])
    program = cg.load(SOFTMAX)
    ev = program.eval(W=W, b=b, x=x, y=y)
    z = W @ x + b
    p = np.exp(z - z.max()) / np.sum(np.exp(z - z.max()))
    S = np.diag(p) - np.outer(p, p)  # ∂p/∂z, and ∂²loss/∂z²
    jac = ev.jacobian()
    np.testing.assert_allclose(jac["W"], np.outer(p - y, x), rtol=1e-12)
    np.testing.assert_allclose(jac["b"], p - y, rtol=1e-12)
    np.testing.assert_allclose(jac["x"], W.T @ (p - y), rtol=1e-12)
    np.testing.assert_allclose(jac["y"], -z, rtol=1e-12)
    h = ev.hessian(["W", "b"])
    np.testing.assert_allclose(h["b"]["b"], S, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(h["W"]["W"], np.einsum("km,l,n->klmn", S, x, x), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(h["W"]["b"], np.einsum("km,l->klm", S, x), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(h["b"]["W"], np.einsum("km,n->kmn", S, x), rtol=1e-12, atol=1e-15)
    # the probabilities p (not on the loss's path) as the output: ∂p/∂b = S, ∂p/∂W[k, l] = S[:, k] x[l]
    jp = program.eval(W=W, b=b, x=x, y=y, of="p", jacobian=True).jacobian()
    np.testing.assert_allclose(jp["b"], S, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(jp["W"], np.einsum("ik,l->ikl", S, x), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(jp["x"], S @ W, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(jp["y"], np.zeros((3, 3)))


# -- random programs -----------------------------------------------------------------------------------------------

RANDOM = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _random_point(seed: int, program: cg.Program) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(-1, 1, size=shape) for k, shape in TENSOR_INPUTS.items() if k in program.inputs}


@RANDOM
@given(st.sampled_from(["V", "M", "S"]).flatmap(lambda k: typed(k, 3)), st.integers(0, 2**32 - 1))
def test_random_programs_jacobians_jvps_and_vjps(expr, seed) -> None:
    """Forward = reverse Jacobian = finite differences of values; J t = jvp(t); vᵀ J = vjp(v);
    ⟨vjp(u), t⟩ = ⟨u, jvp(t)⟩."""
    program = cg.parse(f"y = {expr}")
    point = _random_point(seed, program)
    ev = program.eval(point, mode="forward")
    rng = np.random.default_rng(seed + 1)
    oshape = np.shape(ev.value)
    t = {k: rng.standard_normal(np.shape(v)) for k, v in point.items()}
    u = rng.standard_normal(oshape)
    jf, jr = ev.jacobian(mode="forward"), ev.jacobian(mode="reverse")
    jt = np.zeros(oshape)
    vjp = ev.vjp(u)
    for k in point:
        np.testing.assert_allclose(jf[k], jr[k], rtol=1e-10, atol=1e-12, err_msg=expr)
        fd = fd_jacobian(lambda p: program.eval(p, mode="forward").value, point, k)
        np.testing.assert_allclose(jr[k], fd, rtol=1e-5, atol=1e-6, err_msg=expr)
        jt = jt + (matrix(jr[k], oshape) @ t[k].reshape(-1)).reshape(oshape)
        np.testing.assert_allclose(vjp[k].reshape(-1), u.reshape(-1) @ matrix(jr[k], oshape), rtol=1e-10, atol=1e-12)
    if point:
        jvp = ev.jvp(t)
        np.testing.assert_allclose(jvp, jt, rtol=1e-10, atol=1e-12, err_msg=expr)
        left = sum(float(np.sum(vjp[k] * t[k])) for k in point)
        right = float(np.sum(u * jvp))
        assert left == pytest.approx(right, rel=1e-10, abs=1e-12), expr


@RANDOM
@given(typed("S", 3), st.integers(0, 2**32 - 1))
def test_random_scalar_programs_hessians_and_hvps(expr, seed) -> None:
    """The Hessian is symmetric, equals finite differences of the reverse-mode gradient, and H v = hvp(v)."""
    program = cg.parse(f"y = {expr}")
    point = _random_point(seed, program)
    ev = program.eval(point)
    h = ev.hessian()
    names = list(point)
    scale = 1.0
    for x in names:
        for y in names:
            fd = fd_jacobian(lambda p, x=x: np.asarray(program.eval(p).grad[x]), point, y, h=1e-5)
            scale = max(scale, float(np.max(np.abs(fd), initial=0.0)))
            np.testing.assert_allclose(h[x][y], fd, rtol=1e-4, atol=1e-5 * scale, err_msg=f"{expr} ∂²/∂{x}∂{y}")
            np.testing.assert_allclose(
                matrix(h[x][y], point[x].shape), matrix(h[y][x], point[y].shape).T, rtol=1e-10, atol=1e-12
            )
    v = {k: np.random.default_rng(seed + 2).standard_normal(np.shape(p)) for k, p in point.items()}
    if names:
        hv = ev.hvp(v)
        for x in names:
            want = sum(matrix(h[x][y], point[x].shape) @ v[y].reshape(-1) for y in names)
            np.testing.assert_allclose(hv[x].reshape(-1), want, rtol=1e-9, atol=1e-11 * scale, err_msg=expr)


# -- the command line gives the same numbers: it calls these methods -------------------------------------------------


def _cli_json(*args: str) -> dict:
    r = run_main("eval", *args, "--format", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


CASES = [
    (LECTURE, {"a": -1, "b": 3, "c": 4}, None),
    (MLP, {}, None),
    (SOFTMAX, {"W": [[0.5, -1], [2, 0.25], [0, 1]], "b": [0.1, 0.2, -0.3]}, None),
    (SOFTMAX, {"W": [[0.5, -1], [2, 0.25], [0, 1]]}, "p"),
]


def _at(values: dict) -> list[str]:
    return [a for k, v in values.items() for a in ("--at", f"{k}={json.dumps(v).replace(' ', '')}")]


@pytest.mark.parametrize("path, at, of", CASES, ids=["lecture", "mlp", "softmax", "softmax-p"])
def test_the_command_line_gives_the_apis_numbers(path, at, of) -> None:
    program = cg.load(path)
    of_args = ["--of", of] if of else []
    jac_ev = program.eval(at, of=of, jacobian=True)
    d = _cli_json(path, *_at(at), *of_args, "--jacobian")
    for k, block in jac_ev.jacobian().items():
        np.testing.assert_array_equal(np.asarray(d["jacobian"][k]), block)
    first = next(iter(program.inputs))
    tangent = {first: 1.0}
    d = _cli_json(path, *_at(at), *of_args, "--mode", "forward", "--tangent", f"{first}=1")
    np.testing.assert_array_equal(np.asarray(d["jvp"]), jac_ev.jvp(tangent))
    fwd = program.eval(at, of=of, tangent=tangent)
    np.testing.assert_array_equal(np.asarray(d["jvp"]), fwd.tangent)
    assert d == json.loads(fwd.to_json())
    cot = np.full(np.shape(jac_ev.value), 0.5)
    d = _cli_json(path, *_at(at), *of_args, "--cotangent", "0.5")
    for k, g in jac_ev.vjp(cot).items():
        np.testing.assert_array_equal(np.asarray(d["gradients"][k]), g)
    if of is None:  # second order: a scalar output
        ev = program.eval(at)
        d = _cli_json(path, *_at(at), "--hessian", "--hvp", f"{first}=1")
        h, hv = ev.hessian(), ev.hvp(tangent)
        assert d == json.loads(ev.to_json(hessian=h, hvp=hv))
        for x in h:
            np.testing.assert_array_equal(np.asarray(d["hvp"][x]), hv[x])
            for y in h[x]:
                np.testing.assert_array_equal(np.asarray(d["hessian"][x][y]), h[x][y])


def test_float32_runs_keep_their_type_and_the_command_lines_numbers() -> None:
    program = cg.parse("y = x ** 2 * z")
    ev = program.eval(x=1, z=0.3, dtype="float32")
    h, hv, jac = ev.hessian(), ev.hvp({"x": 0.1}), ev.jacobian()
    assert h["x"]["z"].dtype == hv["x"].dtype == jac["x"].dtype == np.float32
    assert ev.jvp({"z": 1}).dtype == np.float32
    rj = run_main(
        "eval",
        "-e",
        program.text,
        "--at",
        "x=1,z=0.3",
        "--dtype",
        "float32",
        "--hessian",
        "--hvp",
        "x=0.1",
        "-f",
        "json",
    )
    assert rj.stdout == ev.to_json(hessian=h, hvp=hv) + "\n"
    d = json.loads(rj.stdout)
    assert d["hessian"]["z"]["x"] == 2.0
    assert d["hvp"]["x"] == float(str(hv["x"])) == 0.060000002  # float32's shortest text, not a widened float64


@pytest.fixture
def spied(monkeypatch) -> list[tuple[str, dict]]:
    seen: list[tuple[str, dict]] = []
    for cls, method in [
        (api.Program, "eval"),
        (api.Program, "explain"),
        (api.Evaluation, "hessian"),
        (api.Evaluation, "hvp"),
    ]:
        original = getattr(cls, method)

        def spy(self, *a, _name=method, _original=original, **kw):
            seen.append((_name, {k: v for k, v in kw.items() if v is not None and v is not False}))
            return _original(self, *a, **kw)

        monkeypatch.setattr(cls, method, spy)
    return seen


def test_eval_and_explain_go_through_the_api(spied) -> None:
    assert run_main("eval", LECTURE, "--hessian", "--hvp", "a=1", "-f", "json").returncode == 0
    assert [name for name, _ in spied] == ["eval", "hvp", "hessian"]
    spied.clear()
    assert run_main("eval", LECTURE, "--mode", "forward", "--tangent", "b=1").returncode == 0
    assert spied[0][0] == "eval" and spied[0][1]["mode"] == "forward"
    assert {k: float(v) for k, v in spied[0][1]["tangent"].items()} == {"b": 1.0}
    spied.clear()
    assert run_main("eval", LECTURE, "--jacobian", "--mode", "forward", "-f", "csv").returncode == 0
    assert spied == [("eval", {"mode": "forward", "jacobian": True})]
    spied.clear()
    assert run_main("eval", "-e", "y = x * x", "--at", "x=[1,2]", "--cotangent", "[1,0]").returncode == 0
    assert spied[0][0] == "eval" and spied[0][1]["cotangent"].tolist() == [1.0, 0.0]
    spied.clear()
    assert run_main("explain", LECTURE, "--mode", "forward", "--tangent", "b=1").returncode == 0
    assert spied[0][0] == "explain" and spied[0][1]["mode"] == "forward"


def test_the_api_explains_forward_mode_as_the_command_line() -> None:
    r = run_main("explain", LECTURE, "--mode", "forward", "--tangent", "b=1")
    assert r.returncode == 0, r.stderr
    assert cg.load(LECTURE).explain(tangent={"b": 1}).text == r.stdout


# -- bad requests ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda ev: ev.jvp({"bb": 1}), "--tangent: 'bb' is not an input of the program; its inputs are: a, b, c"),
        (lambda ev: ev.jvp({"a": [1, 2]}), "--tangent a: the tangent has shape (2,) but input 'a' has shape ()"),
        (lambda ev: ev.jvp({"a": "1"}), "--tangent a: '1' is not a number or a rectangular list of numbers"),
        (lambda ev: ev.vjp([1, 2]), "--cotangent: the cotangent has shape (2,) but the output 'z' has shape ()"),
        (lambda ev: ev.vjp(None), "--cotangent: None is not a number or a rectangular list of numbers"),
        (lambda ev: ev.hvp({}), "--hvp: no direction given"),
        (lambda ev: ev.hvp({"q": 1}), "--hvp: 'q' is not an input; the program's inputs are: a, b, c"),
        (lambda ev: ev.jacobian("a,q"), "--wrt: 'q' is not an input of the program; its inputs are: a, b, c"),
        (lambda ev: ev.hessian(["cc"]), "--wrt: 'cc' is not an input of the program; its inputs are: a, b, c"),
        (lambda ev: ev.jacobian(mode="sideways"), "--mode: 'sideways' is not one of: reverse, forward"),
    ],
)
def test_bad_derivative_requests_raise_cgraph_errors(call, message) -> None:
    ev = cg.load(LECTURE).eval()
    with pytest.raises(cg.CgraphError) as err:
        call(ev)
    assert str(err.value) == message


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"mode": "sideways"}, "--mode: 'sideways' is not one of: reverse, forward"),
        ({"tangent": {"a": 1}, "cotangent": 1}, "--tangent and --cotangent cannot be combined"),
        (
            {"tangent": {"a": 1}, "mode": "reverse"},
            "--tangent gives the direction of forward mode (not --mode reverse)",
        ),
        ({"tangent": {"a": 1}, "jacobian": True}, "--jacobian and --tangent cannot be combined"),
        ({"cotangent": 1, "jacobian": True}, "--jacobian and --cotangent cannot be combined"),
        ({"cotangent": 1, "mode": "forward"}, "--mode forward and --cotangent cannot be combined"),
    ],
)
def test_bad_combinations_raise_before_any_work(kw, message) -> None:
    with pytest.raises(cg.CgraphError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cg.load(LECTURE).eval(**kw)


def test_second_derivatives_need_a_scalar_output_and_a_small_enough_hessian() -> None:
    ev = cg.parse("input x[2]\ny = x * x").eval(x=[1, 2], jacobian=True)
    with pytest.raises(cg.CgraphError, match=r"output 'y' has shape \(2,\); second derivatives need a scalar output"):
        ev.hessian()
    with pytest.raises(cg.CgraphError, match="second derivatives need a scalar output"):
        ev.hvp({"x": 1})
    big = cg.parse("input x[4097]\ny = sum(x * x)").eval(x=np.ones(4097))
    with pytest.raises(cg.CgraphError, match="the inputs have 4,097 entries in all"):
        big.hessian()
    np.testing.assert_array_equal(big.hvp({"x": 1})["x"], np.full(4097, 2.0))  # H v needs no Hessian


# -- threads -------------------------------------------------------------------------------------------------------


def test_threads_differentiate_independent_evaluations() -> None:
    jobs = [
        (lambda: cg.load(LECTURE).eval(), lambda ev: ev.hessian()),
        (lambda: cg.load(MLP).eval(seed=1), lambda ev: ev.hvp({"b1": 1, "W2": 0.5})),
        (lambda: cg.load(MLP).eval(of="a2", jacobian=True), lambda ev: ev.jacobian(mode="forward")),
        (lambda: cg.parse("input x[5]\ny = sin(x) * x").eval(x=np.arange(5.0), cotangent=1), lambda ev: ev.vjp(2)),
        (lambda: cg.load(SOFTMAX).eval(b=[1, 2, 3]), lambda ev: {"jvp": ev.jvp({"b": [1, 0, -1]})}),
    ]

    def run(k: int) -> str:
        make, ask = jobs[k % len(jobs)]
        out = ask(make())
        return repr(out)

    expected = [run(k) for k in range(len(jobs))]
    errors: list[BaseException] = []
    got: dict[int, list[str]] = {}

    def worker(k: int) -> None:
        try:
            got[k] = [run(k) for _ in range(4)]
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(got[k] == [expected[k % len(jobs)]] * 4 for k in range(10))


# -- notebook display of the other modes -----------------------------------------------------------------------------


def test_a_forward_mode_evaluation_displays_its_tangents_not_empty_gradients() -> None:
    p = cg.load(LECTURE)
    fwd = p.eval(tangent={"b": 1})
    text = fwd._repr_mimebundle_()["text/plain"]
    assert text.splitlines()[0] == "z = 14;  along t (a = 0, b = 1, c = 0): ∂z/∂t = 9"
    assert text.splitlines()[1].split()[-2:] == ["tangent", "∂node/∂t"]
    assert [line.split()[-1] for line in text.splitlines()[2:]] == ["0", "1", "0", "1", "1", "9"]
    html = fwd._repr_html_()
    assert "<th>tangent ∂node/∂t</th>" in html and "∂z/∂node" not in html
    assert '<td class="num value">14</td><td class="num grad">9</td>' in html
    cot = p.eval(cotangent=2)._repr_html_()
    assert "<th>vᵀ·∂z/∂node</th>" in cot and '<td class="num value">3</td><td class="num grad">18</td>' in cot
    jac = p.eval(jacobian=True)._repr_mimebundle_()["text/plain"]
    assert jac.splitlines()[1].split() == ["node", "op", "expression", "shape", "value"]  # no per-node derivative
