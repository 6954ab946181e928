"""cgraph export: the exported programs run on numpy, onnxruntime, JAX (and PyTorch where it is installed)
and give cgraph's values and gradients in float64; the command's options, errors and promises (deterministic
bytes, ruff-clean code, lazy imports).

The tolerance, one for every export test: the numpy module's numbers are cgraph's bit for bit
(:func:`assert_identical`); any other target's entry agrees if it is within 1e-12 of cgraph's relative to
itself, or within 1e-15 * S, S the largest finite value or gradient entry of the program (:func:`assert_close`).
The floor is there because the frameworks' float64 kernels are not numpy's (measured over 300,000 points: XLA's
tanh up to 6 ulps apart, exp 2, expm1 4, sinh 5, cosh 3, erf 3; onnxruntime's Tanh 8, Exp and Log 2), so an
ill-conditioned entry cannot meet 1e-12 relative however the export is written (tanh(5.7)'s derivative, 1.3e-5,
moves 4.8e-12 relative per last-digit change of tanh), and a gradient that is 0 mathematically comes out as
1e-17 in one engine and 0 in another. ``CGRAPH_EXPORT_ERR_LOG=path`` appends the errors measured by every
comparison to ``path`` (see :func:`log_errors`); the README's figures come from it.

The helpers here (:func:`verify` and friends) are shared with ``test_export_grad.py`` and
``test_export_random.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cgraph_cli.errors import CgraphError, Source
from cgraph_cli.run.request import Request
from tests.conftest import EXAMPLES, ROOT, run_cli, run_inproc

RTOL = 1e-12  # relative to the entry
FLOOR = 1e-15  # relative to S, the program's largest value or gradient entry
TINY = float(np.finfo(np.float64).tiny)  # 2.2e-308: XLA on CPU flushes numbers below it (subnormals) to 0
RUFF = Path(sys.executable).parent / "ruff"
HAS_TORCH = importlib.util.find_spec("torch") is not None
TORCH_REASON = "torch is not installed (too big for CI here): the PyTorch export is checked where it is"

# -- the harness -----------------------------------------------------------------------------------------------


def request_for(text: str, values: dict | None = None, name: str = "<test>") -> Request:
    return Request(
        source=Source(text, name), values={k: np.asarray(v, dtype=np.float64) for k, v in (values or {}).items()}
    )


def reference(req: Request) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """cgraph's own value, gradients and input values (by input name)."""
    res = req.run()
    g = res.graph
    inputs = req.inputs(g)
    grads = {
        n: np.asarray(res.grads[i]) if res.grads[i] is not None else np.zeros_like(inputs[n])
        for n, i in g.inputs.items()
    }
    return np.asarray(res.values[res.out]), grads, inputs


def exported(req: Request, target: str, gradients: bool | None = None) -> bytes:
    from cgraph_cli.present.export import export

    return export(req, target, "test.cg", gradients)


_LOADED = [0]


def load(code: bytes, tmp_path: Path):
    """Import generated code as a fresh module."""
    _LOADED[0] += 1
    path = tmp_path / f"exported_{_LOADED[0]}.py"
    path.write_bytes(code)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def params(req: Request, target: str) -> dict[str, str]:
    """Input name -> the generated function's parameter name."""
    from cgraph_cli.present.export import make_plan

    plan = make_plan(req, target, gradients=False)
    return {plan.g.names[i]: plan.ident[i] for i in plan.inputs}


def program_scale(value, grads: dict) -> float:
    """S: the largest finite magnitude among a program's value and all its gradients."""
    arrays = [np.asarray(value, dtype=np.float64), *(np.asarray(g, dtype=np.float64) for g in grads.values())]
    return max([0.0] + [float(np.max(np.abs(a[np.isfinite(a)]), initial=0.0)) for a in arrays])


def assert_close(got, want, what: str, scale: float | None = None, target: str = "") -> None:
    """Every finite entry agrees with cgraph's if ``|got - want| <= RTOL * |want|``, or ``<= FLOOR * S`` with S
    the program's largest finite value or gradient entry (``scale``, :func:`program_scale`; by default the largest
    in ``want``), or ``<= TINY``. The floor admits an entry that is zero or tiny next to the program's numbers,
    where a relative error means nothing (a gradient that is mathematically 0: cgraph's 1e-17 against JAX's 0);
    TINY admits a subnormal result that XLA flushes to 0. Non-finite entries must be the same non-finite number.
    ``target`` labels the comparison in the opt-in error log (:func:`log_errors`)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"{what}: NaN at other places\n{got}\n{want}"
    inf = np.isinf(want)
    assert np.array_equal(got[inf], want[inf]), f"{what}: infinities differ\n{got}\n{want}"
    finite = np.isfinite(want)
    if scale is None:
        scale = float(np.max(np.abs(want[finite]), initial=0.0))
    g, w = got[finite], want[finite]
    err = np.abs(g - w)
    floor = max(FLOOR * scale, TINY)
    ok = (err <= RTOL * np.abs(w)) | (err <= floor)
    if target:
        log_errors(target, what, g, w, scale)
    if not ok.all():
        i = np.flatnonzero(~ok)[0]
        rel = err[i] / abs(w[i]) if w[i] else np.inf
        raise AssertionError(
            f"{what}: {got} != {want}\n(entry {i}: {g[i]!r} against cgraph's {w[i]!r}: relative error "
            f"{rel:.3g} > {RTOL:g}, absolute error {err[i]:.3g} > max({FLOOR:g} S, TINY) = {floor:.3g})"
        )


def assert_identical(got, want, what: str) -> None:
    """Bit for bit the same (NaN where cgraph has NaN): the numpy export calls the numpy functions cgraph
    computes with, in the same order."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert np.array_equal(got, want, equal_nan=True), f"{what}: not bit for bit cgraph's\n{got!r}\n{want!r}"


def log_errors(target: str, what: str, got, want, scale: float) -> None:
    """Opt-in measurement (``CGRAPH_EXPORT_ERR_LOG=path``; normal runs write nothing): one JSON line per
    comparison with the worst componentwise relative error among the well-conditioned entries (|want| >= 1e-3 S)
    and among all nonzero ones, and how many entries agreed only by the floor (FLOOR * S) or only as subnormals
    flushed to 0 (TINY)."""
    path = os.environ.get("CGRAPH_EXPORT_ERR_LOG")
    if not path or want.size == 0:
        return
    err = np.abs(got - want)
    normal = np.abs(want) >= TINY
    rel = np.where(normal, err / np.where(normal, np.abs(want), 1.0), 0.0)
    well = normal & (np.abs(want) >= 1e-3 * scale)
    by_floor = (err > RTOL * np.abs(want)) & (err <= FLOOR * scale)
    by_tiny = (err > RTOL * np.abs(want)) & (err > FLOOR * scale) & (err <= TINY)
    line = {
        "test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
        "target": target,
        "what": what,
        "S": scale,
        "entries": int(want.size),
        "well_conditioned": int(well.sum()),
        "worst_rel_well": float(np.max(rel[well], initial=0.0)),
        "worst_rel_nonzero": float(np.max(rel, initial=0.0)),
        "by_floor": int(by_floor.sum()),
        "floor_err_over_S": float(np.max(err[by_floor], initial=0.0) / scale) if scale > 0 else 0.0,
        "by_tiny": int(by_tiny.sum()),
    }
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


def run_numpy(req: Request, tmp_path: Path, inputs: dict) -> np.ndarray:
    mod = load(exported(req, "numpy", gradients=False), tmp_path)  # value_and_grad: test_export_grad*.py
    names = params(req, "numpy")
    return mod.forward(**{names[k]: v for k, v in inputs.items()})


# JAX, PyTorch and onnxruntime run in a separate process (one per test worker, started on first use): JAX warns
# at every fork of a process that imported it, and the suite forks for its CLI tests.
RUNNER = r"""
import importlib.util, json, sys, traceback
import numpy as np

def load(path):
    spec = importlib.util.spec_from_file_location("exported_" + str(len(sys.modules)), path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

def run(job):
    data = dict(np.load(job["inputs"]))
    target = job["target"]
    if target == "onnx":
        import onnxruntime as ort
        sess = ort.InferenceSession(job["module"], providers=["CPUExecutionProvider"])
        outs = sess.run(None, {i.name: data[i.name] for i in sess.get_inputs()})
        return {"value": outs[0], **{"out:" + o.name: v for o, v in zip(sess.get_outputs(), outs)}}
    mod = load(job["module"])
    if target == "jax":
        import jax
        jax.config.update("jax_enable_x64", True)
        value, grads = jax.value_and_grad(lambda q: mod.f(**q))(data)
    else:
        import torch
        p = {k: torch.tensor(v, dtype=torch.float64) for k, v in data.items()}
        grads, value = torch.func.grad_and_value(lambda q: mod.f(**q))(p)
        value, grads = value.detach().numpy(), {k: v.detach().numpy() for k, v in grads.items()}
    out = {"value": np.asarray(value)}
    out.update({"grad:" + k: np.asarray(v) for k, v in grads.items()})
    return out

for line in sys.stdin:
    job = json.loads(line)
    try:
        np.savez(job["out"], **run(job))
        reply = {"ok": True}
    except Exception:
        reply = {"ok": False, "error": traceback.format_exc()}
    print(json.dumps(reply), flush=True)
"""


class Engines:
    """The runner process: runs an exported module or model on given inputs, gives value and gradients."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def run(self, target: str, code: bytes, inputs: dict, tmp_path: Path) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", RUNNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
        _LOADED[0] += 1
        k = _LOADED[0]
        module = tmp_path / (f"model_{k}.onnx" if target == "onnx" else f"exported_{target}_{k}.py")
        module.write_bytes(code)
        np.savez(tmp_path / f"in_{k}.npz", **{n: np.asarray(v, dtype=np.float64) for n, v in inputs.items()})
        job = {"target": target, "module": str(module), "inputs": str(tmp_path / f"in_{k}.npz")}
        job["out"] = str(tmp_path / f"out_{k}.npz")
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline() or '{"ok": false, "error": "the runner died"}')
        assert reply["ok"], f"{target} failed on the exported code:\n{reply['error']}\n{code.decode(errors='replace')}"
        with np.load(job["out"]) as data:
            return {k: data[k] for k in data.files}

    def close(self) -> None:
        if self.proc is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


@pytest.fixture(scope="session")
def engines():
    e = Engines()
    yield e
    e.close()


def run_onnx(req: Request, engines: Engines, tmp_path: Path, inputs: dict) -> np.ndarray:
    return engines.run("onnx", exported(req, "onnx"), inputs, tmp_path)["value"]


def run_framework(target: str, req: Request, engines: Engines, tmp_path: Path, inputs: dict):
    names = params(req, target)
    res = engines.run(target, exported(req, target), {names[k]: v for k, v in inputs.items()}, tmp_path)
    return res["value"], {k: res["grad:" + names[k]] for k in inputs}


def verify(req: Request, engines: Engines, tmp_path: Path, targets=("numpy", "onnx", "jax", "torch")) -> None:
    """Every target's value (and gradients where the target differentiates) against cgraph's: numpy's bit for
    bit, the others' within RTOL relative or FLOOR * S (:func:`assert_close`)."""
    value, grads, inputs = reference(req)
    scale = program_scale(value, grads)
    src = req.source.text
    if "numpy" in targets:
        assert_identical(run_numpy(req, tmp_path, inputs), value, f"numpy value of {src!r}")
    if "onnx" in targets:
        assert_close(run_onnx(req, engines, tmp_path, inputs), value, f"onnx value of {src!r}", scale, "onnx")
    for target in ("jax", "torch"):
        if target not in targets or (target == "torch" and not HAS_TORCH):
            continue
        v, gr = run_framework(target, req, engines, tmp_path, inputs)
        assert_close(v, value, f"{target} value of {src!r}", scale, target)
        for k in inputs:
            assert_close(gr[k], grads[k], f"{target} d/d{k} of {src!r}", scale, target)


def test_the_tolerance_is_the_documented_one():
    """assert_close admits 1e-12 relative to the entry, or 1e-15 S, or a flushed subnormal; nothing more."""
    assert_close([1.0 + 9e-13, 2.0], [1.0, 2.0], "relative")
    assert_close([1e-17, 3.0], [0.0, 3.0], "floor", scale=10.0)  # 1e-17 <= 1e-15 * 10
    assert_close(0.0, 1e-309, "a subnormal flushed to 0")
    assert_close([np.inf, np.nan, 1.0], [np.inf, np.nan, 1.0], "non-finite in the same places")
    for got, want, scale in [
        ([1.0 + 2e-12, 2.0], [1.0, 2.0], None),
        ([2e-14, 3.0], [0.0, 3.0], 10.0),  # 2e-14 > 1e-15 * 10
        ([1e-15, 0.5], [0.0, 0.5], None),  # S from want: 0.5
        (-np.inf, np.inf, None),
        (np.nan, 1.0, None),
    ]:
        with pytest.raises(AssertionError):
            assert_close(got, want, "too far", scale)
    assert program_scale(np.float64(-3.0), {"a": np.array([np.inf, 2.0]), "b": np.array([-5.0])}) == 5.0
    assert_identical(np.array([1.0, np.nan]), np.array([1.0, np.nan]), "same bits")
    with pytest.raises(AssertionError):
        assert_identical(1.0 + 2**-52, 1.0, "one ulp")


# -- every example, every target, against `cgraph eval --format json` --------------------------------------------

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.cg"))


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_examples_match_cgraph_eval(path, engines, tmp_path):
    r = run_inproc("eval", str(path), "--format", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    req = request_for(path.read_text(), name=path.name)
    value, grads, inputs = reference(req)
    assert_close(value, data["value"], "cgraph eval and the engine")  # the harness's reference is eval's
    for k, v in data["gradients"].items():
        assert_close(grads[k], v, f"eval's d/d{k}")
    verify(req, engines, tmp_path)


def test_torch_is_skipped_with_a_reason_when_missing():
    if not HAS_TORCH:
        print(f"skipping the PyTorch checks: {TORCH_REASON}")
        pytest.skip(TORCH_REASON)
    import torch

    assert torch.float64 is not None


# -- kinks: PyTorch's conventions in every target ----------------------------------------------------------------

KINKS = [
    ("z = relu(a)", {"a": 0.0}),  # relu'(0) = 0
    ("z = abs(a)", {"a": 0.0}),  # abs'(0) = 0 (jax's own is 1)
    ("z = max(a, b)", {"a": 1.0, "b": 1.0}),  # a tie of two: halves
    ("z = max(a, b, c)", {"a": 1.0, "b": 1.0, "c": 1.0}),  # three: thirds (a fold of maximum gives 1/4, 1/4, 1/2)
    ("z = min(a, b, c)", {"a": -2.0, "b": 5.0, "c": -2.0}),
    ("z = max(x)", {"x": [1.0, 3.0, 3.0, 2.0]}),  # a reduction splits a tie evenly
    ("z = sum(min(X, 0))", {"X": [[1.0, 0.0], [-1.0, 0.0]]}),
    ("z = sqrt(a)", {"a": 0.0}),  # inf
    ("z = a ^ b", {"a": 0.0, "b": 0.0}),  # d/da 0 at b = 0 (jax's own is nan), d/db 0 at a = 0
    ("z = a ^ b", {"a": 0.0, "b": 2.0}),
    ("z = a ^ b", {"a": 2.0, "b": 0.0}),
    ("z = norm(x)", {"x": [0.0, 0.0, 0.0]}),  # 0 at the zero vector (jax's own is nan)
    ("z = norm(x) + sum(x)", {"x": [3.0, 0.0, -4.0]}),
    ("z = softplus(a) + sigmoid(a)", {"a": 30.0}),
    ("z = softplus(a)", {"a": 800.0}),
    ("z = softplus(a)", {"a": -40.0}),
    ("z = atan2(a, b)", {"a": 1.0, "b": -2.0}),
    ("z = atan2(a, b)", {"a": -1.0, "b": -2.0}),
    ("z = atan2(a, b)", {"a": 1.5, "b": 0.0}),
]


@pytest.mark.parametrize("text,values", KINKS, ids=[f"{t} at {v}" for t, v in KINKS])
def test_kinks_keep_pytorch_conventions(text, values, engines, tmp_path):
    verify(request_for(text, values), engines, tmp_path)


TENSOR_PROGRAMS = [
    (
        "y = sum(softmax(X, 0) * X) + logsumexp(v) + mean(X, 1)[0]",
        {"X": np.arange(6.0).reshape(2, 3) / 4, "v": [1.0, -2.0, 0.5]},
    ),
    (
        "y = sum(transpose(X) @ v[:2]) + sum(reshape(X, 3, 2)[::-1, 1])",
        {"X": np.arange(6.0).reshape(2, 3) - 2, "v": [1.0, -2.0, 0.5]},
    ),
    ("y = sum(cumsum(X, 1) * cumsum(X)[3]) + X[1, -1] * sum(X[:, ::-2])", {"X": np.arange(6.0).reshape(2, 3) / 3}),
    ("y = sum([v, v * 2] @ v) + norm(v) + max(v) - min(X)", {"X": np.arange(6.0).reshape(2, 3), "v": [1.0, -2.0, 0.5]}),
    (
        "y = logsumexp(X, 0)[1] + softmax(s) + sum(max(X, v, 0.5))",
        {"X": np.arange(6.0).reshape(2, 3) / 5, "v": [1.0, -2.0, 0.5], "s": 0.3},
    ),
    (
        "y = sum(X @ transpose(X)) + sum(sum(X, 0) * mean(X, 0)) + dot(v, v)",
        {"X": np.arange(6.0).reshape(2, 3) / 7, "v": [1.0, -2.0, 0.5]},
    ),
    (
        "w = v[::-1] * [1, 2, 3]\ny = sum(w[1:]) + sum(exp(w)) / 3 + tan(v[0]) * log(v[2]) - tanh(v[1])",
        {"v": [0.3, -2.0, 0.5]},
    ),
    # the gradient of sum(softmax(X, 0), 0) is 0 mathematically: cgraph's entries are rounding noise of 1e-17,
    # JAX's and ONNX's backward pass give 0 or other noise; only the floor (1e-15 S) compares them
    (
        "y = mean(softmax(X, 0) + v ^ 2 + sum(softmax(X, 0), 0))",
        {"X": np.arange(6.0).reshape(2, 3) / 5 - 0.3, "v": [0.3, -2.0, 0.5]},
    ),
]


@pytest.mark.parametrize("text,values", TENSOR_PROGRAMS, ids=[t for t, _ in TENSOR_PROGRAMS])
def test_tensor_ops_in_every_target(text, values, engines, tmp_path):
    verify(request_for(text, values), engines, tmp_path)


_X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
_V = {"v": [0.3, -2.0, 0.5], "w": [0.3, 1.0, -0.5]}
LANGUAGE_OPS = [
    (
        "y = sum(sinh(v) + cosh(v) + asin(v / 3) + acos(v / 3) + atan(v) + log1p(abs(v)) + expm1(v) + sign(v) * v)",
        {"v": [0.3, -2.0, 0.0]},
    ),
    ("y = sum(logaddexp(v, w) + clip(v, -1, w) + where(v > w, v, w) + (v <= w) * v + (v == w) + (v != w) * w)", _V),
    ("y = sum(clip(v, w, 0.4)) + sum(clip(w, 0.3, 1)) + sum(where(v < 0, exp(v), v ^ 2) * (v >= 0.3))", _V),
    (
        "y = sum(sum(X, axis=(0, 1), keepdims=true) + mean(X, axis=0, keepdims=true)) + prod(X) + prod(X, axis=(0, 1))"
        " + var(X, axis=1, ddof=1)[0] + std(X) + std(X, axis=0)[1] + norm(X, p=1) + norm(X, axis=1, p=inf)[1]"
        " + norm(X, axis=0)[2] + sum(prod(X, axis=1, keepdims=true))",
        {"X": _X},
    ),
    (
        "y = sum(log_softmax(X, axis=0) * softmax(X, axis=(0, 1))) + sum(log_softmax(v))"
        " + sum(transpose(T, 2, 0, 1)[0]) + sum(squeeze(expand_dims(v, 0)) * v) + sum(permute(T, 1, 2, 0)[1] * 2)",
        {"X": _X, "v": [0.3, -2.0, 0.5], "T": np.arange(24.0).reshape(2, 3, 4) / 10},
    ),
    (
        "y = sum(concat(X, X * 2, axis=1)) + sum(stack(v, w, axis=1) @ [1, 2]) + trace(X @ transpose(X))"
        " + sum(diag(v) @ v) + sum(diag(X)) + sum(outer(v, w)) + sum(stack(v, w) * 3) + sum(concat(v, w))",
        {"X": _X, **_V},
    ),
    (
        "y = max(X, axis=1, keepdims=true)[0, 0] + min(X, axis=(0, 1)) + logsumexp(X, axis=(0, 1))"
        " + logsumexp(X, axis=1, keepdims=true)[1, 0] + sum(max(X, axis=0)) + std(v - v)",
        {"X": np.array([[0.5, 2.0, 2.0], [1.5, 0.25, 2.0]]), "v": [1.0, 1.0, 1.0]},
    ),
    ("y = var(s) + std(s) + prod(s) + sum(v * 0) * prod(v)", {"s": 0.7, "v": [0.0, 2.0, 0.0]}),
    # written with calls only (no keywords, no comparisons)
    ("y = sum(where(v, exp(v), w) + logaddexp(v, w) + clip(v, w, 0.4) + clip(w, 0.3, 1))", _V),
    (
        "y = sum(log_softmax(X, 0) * softmax(X)) + sum(transpose(T, 2, 0, 1)[0]) + sum(squeeze(expand_dims(v, 0)) * v)",
        {"X": _X, "v": [0.3, -2.0, 0.5], "T": np.arange(24.0).reshape(2, 3, 4) / 10},
    ),
    (
        "y = sum(concat(X, X * 2)) + sum(stack(v, w) * 3) + trace(X @ transpose(X)) + sum(diag(v) @ v) + sum(diag(X))"
        " + sum(outer(v, w)) + prod(X) + var(X) + std(X, 1)[0] + prod(X, 0)[1] + std(v - v) + sum(max(X, 0))",
        {"X": _X, **_V},
    ),
]


def _writable(text: str) -> None:
    """Skip a program the language cannot write yet (keywords and comparisons come with the syntax work)."""
    try:
        request_for(text).compile()
    except CgraphError as e:
        if "syntax error" in e.message:
            pytest.skip(f"the language does not write this yet: {e.message}")


@pytest.mark.parametrize("text,values", LANGUAGE_OPS, ids=range(len(LANGUAGE_OPS)))
def test_language_ops_in_every_target(text, values, engines, tmp_path):
    _writable(text)
    verify(request_for(text, values), engines, tmp_path)


def test_erf_runs_where_the_target_has_it_and_is_refused_for_onnx(engines, tmp_path):
    req = request_for("y = erf(a) * 2 + erf(a / 3)", {"a": 0.7})
    verify(req, engines, tmp_path, targets=("numpy", "jax", "torch"))
    with pytest.raises(CgraphError, match="onnxruntime computes ONNX's Erf in float32 only") as e:
        exported(req, "onnx")
    assert e.value.render().startswith("error: <test>:1:5: cannot export op 'erf' (erf(a)) to ONNX")


ORT_NEAR_ONE = """
import sys
import numpy as np
import onnxruntime as ort

model = open(sys.argv[1], "rb").read()
for options in ({}, {"disabled_optimizers": ["NoopElimination"]}):
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"], **options)
    print(*(float(v) for v in session.run(None, {"x": np.array(2.0)})))
"""


def test_onnxruntime_drops_a_multiplication_by_a_number_near_1_unless_told_not_to(tmp_path):
    """onnxruntime's default graph optimisation (its NoopElimination pass) removes a Mul or Div by a float64
    constant that float32 rounds to 1 (|c - 1| up to 6e-8), unless the product is a graph output: the model
    then computes another function. With that one pass disabled it gives cgraph's numbers; the README says so.
    If this test fails because the first line matches cgraph, onnxruntime has fixed it: update the README."""
    req = request_for("y = exp(x) * 1.00000001 + 1", {"x": 2.0})
    value, grads, _ = reference(req)
    (tmp_path / "m.onnx").write_bytes(exported(req, "onnx", True))
    r = subprocess.run(
        [sys.executable, "-c", ORT_NEAR_ONE, str(tmp_path / "m.onnx")], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    default, fixed = ([float(v) for v in line.split()] for line in r.stdout.splitlines())
    assert default == pytest.approx([np.exp(2.0) + 1, np.exp(2.0)], rel=1e-15)  # the factor is gone
    assert abs(default[0] - value) > 1e-9 * value  # far beyond 1e-12
    assert_close(fixed[0], value, "onnxruntime without NoopElimination")
    assert_close(fixed[1], grads["x"], "its gradient")


def test_every_op_record_says_how_each_target_writes_it():
    """A new op must state its spelling for numpy, JAX, PyTorch and ONNX (or raise NoEquivalent with a reason)."""
    from cgraph_cli.ops import LEAF_OPS, OPS

    missing = []
    for name, op in OPS.items():
        if name in LEAF_OPS:
            continue
        if op.lower is None:
            missing.append(f"{name}: no lower")
            continue
        for target in ("numpy", "jax", "torch"):
            if op.lower.code(target) is None:
                missing.append(f"{name}: no {target} spelling")
        if op.lower.onnx is None:
            missing.append(f"{name}: no onnx lowering")
    assert missing == []


def run_script(script: str, tmp_path: Path) -> str:
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_jax_export_jits_and_takes_second_derivatives(tmp_path):
    req = request_for("z = a ^ 3 * b + abs(a) * relu(b)", {"a": 2.0, "b": 0.5})
    (tmp_path / "prog_jax.py").write_bytes(exported(req, "jax"))
    out = run_script(
        "import jax, numpy as np\n"
        'jax.config.update("jax_enable_x64", True)\n'
        "from prog_jax import f\n"
        "print(float(jax.jit(f)(a=2.0, b=0.5)))\n"
        "print(np.array(jax.hessian(f, argnums=(0, 1))(2.0, 0.5), dtype=float).tolist())\n",
        tmp_path,
    )
    value, hessian = out.splitlines()
    assert float(value) == pytest.approx(8 * 0.5 + 2 * 0.5, rel=1e-15)
    # d2/da2 = 6ab = 6, d2/dadb = 3a^2 + abs'(a) relu'(b) = 13, d2/db2 = 0
    assert np.allclose(json.loads(hessian), [[6.0, 13.0], [13.0, 0.0]], rtol=1e-13)


@pytest.mark.skipif(not HAS_TORCH, reason=TORCH_REASON)
def test_torch_export_runs_torch_func(tmp_path):
    req = request_for("z = sum(relu(x) * w) + max(x)", {"x": [1.0, 0.0, -2.0], "w": [0.5, 2.0, 1.0]})
    (tmp_path / "prog_torch.py").write_bytes(exported(req, "torch"))
    out = run_script(
        "import torch\n"
        "from prog_torch import f\n"
        "x = torch.tensor([1.0, 0.0, -2.0], dtype=torch.float64)\n"
        "w = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)\n"
        "gx, gw = torch.func.grad(f, argnums=(0, 1))(x, w)\n"
        "print(gx.tolist(), gw.tolist())\n",
        tmp_path,
    )
    assert out.strip() == "[1.5, 0.0, 0.0] [1.0, 0.0, 0.0]"


# -- the command --------------------------------------------------------------------------------------------------


def test_cli_writes_each_target_and_onnx_from_the_suffix(tmp_path):
    lecture = str(EXAMPLES / "lecture.cg")
    for target in ("numpy", "jax", "torch"):
        r = run_inproc("export", lecture, "--to", target, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert r.stdout == f"wrote lecture_{target}.py\n"
        assert (tmp_path / f"lecture_{target}.py").read_text().startswith('"""z of lecture.cg')
    r = run_inproc("export", lecture, "-o", "model.onnx", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == "wrote model.onnx\n", r.stderr
    import onnx

    m = onnx.load(str(tmp_path / "model.onnx"))
    assert [i.name for i in m.graph.input] == ["a", "b", "c"] and [o.name for o in m.graph.output] == ["z"]
    assert m.opset_import[0].version >= 18


def test_cli_code_to_stdout():
    r = run_inproc("export", "-e", "z = x * y", "--to", "numpy", "-o", "-")
    assert r.returncode == 0, r.stderr
    assert "def forward(x, y):" in r.stdout and "z = x * y  # z, line 1" in r.stdout


def test_cli_onnx_to_a_pipe_is_the_model():
    r = subprocess.run(
        [sys.executable, "-m", "cgraph_cli", "export", "-e", "z = x * y", "--to", "onnx", "-o", "-"],
        capture_output=True,
        env={**__import__("os").environ},
    )
    assert r.returncode == 0, r.stderr
    import onnx

    assert onnx.load_model_from_string(r.stdout).graph.output[0].name == "z"


def test_cli_refuses_onnx_on_a_terminal(tmp_path):
    import os
    import pty

    main, sub = pty.openpty()
    try:
        r = subprocess.run(
            [sys.executable, "-m", "cgraph_cli", "export", "-e", "z = x * y", "--to", "onnx", "-o", "-"],
            stdout=sub,
            stderr=subprocess.PIPE,
            env=dict(os.environ),
            timeout=60,
        )
    finally:
        os.close(sub)
        os.close(main)
    assert r.returncode == 2
    assert r.stderr.decode().startswith("error: -o - would write a binary ONNX model to the terminal")


@pytest.mark.parametrize(
    "args,message",
    [
        (["-o", "x.py"], "error: a .py file can hold a numpy, JAX or PyTorch module: say which with --to"),
        ([], "error: say what to export to with --to numpy|jax|torch|onnx"),
        (["--to", "tf"], "error: --to: 'tf' is not one of: numpy, jax, torch, onnx"),
        (["--to", "jax", "-o", "m.onnx"], "error: -o m.onnx names an ONNX model, but --to is jax"),
        (["--to", "onnx", "-o", "m.py"], "error: -o m.py names a Python file, but --to onnx writes a binary model"),
        (["--to", "numpy", "--of", "zz"], "error: --of: 'zz' is not a name in the program"),
    ],
)
def test_cli_usage_errors(args, message, tmp_path):
    r = run_inproc("export", "-e", "z = x * y", *args, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith(message), r.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_an_op_without_equivalent_is_a_clear_error(monkeypatch, tmp_path):
    """A target with no spelling for an op: error at the op's line, exit 2, nothing written."""
    import dataclasses

    from cgraph_cli.ops import OPS

    op = OPS["cumsum"]
    monkeypatch.setitem(OPS, "cumsum", dataclasses.replace(op, lower=dataclasses.replace(op.lower, torch=None)))
    r = run_inproc("export", "-e", "y = x * 2\nz = sum(cumsum(y))", "--to", "torch", "-o", "m.py", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith(
        "error: <expr>:2:9: cannot export op 'cumsum' (cumsum(y)) to PyTorch: it has no equivalent there"
    ), r.stderr
    assert "^" in r.stderr and not (tmp_path / "m.py").exists()


def test_a_lowering_that_refuses_an_instance_names_the_reason(monkeypatch):
    import dataclasses

    from cgraph_cli.ops import OPS
    from cgraph_cli.ops.core import Code, NoEquivalent

    def refuse(site):
        raise NoEquivalent("no such spelling here")

    op = OPS["tanh"]
    monkeypatch.setitem(OPS, "tanh", dataclasses.replace(op, lower=dataclasses.replace(op.lower, jax=Code(refuse))))
    with pytest.raises(CgraphError, match=r"to JAX: it has no equivalent there: no such spelling here") as e:
        exported(request_for("a = 1\nz = tanh(a)"), "jax")
    assert e.value.render().startswith("error: <test>:2:5:")


def test_at_values_fix_shapes_and_become_defaults(tmp_path):
    r = run_inproc("export", "-e", "z = sum(x * w)", "--at", "x=[1,2,3]", "--to", "numpy", "-o", "m.py", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "m.py").read_text()
    assert 'def forward(w, x=DEFAULTS["x"]):' in text and '"x": np.array([1.0, 2.0, 3.0]),' in text
    assert "    w: shape (), required" in text  # no value, no declared shape: a scalar


# -- promises: deterministic, ruff-clean, lazy ----------------------------------------------------------------


@pytest.mark.parametrize("target", ["numpy", "jax", "torch", "onnx"])
def test_exports_are_deterministic(target, tmp_path):
    path = str(EXAMPLES / "mlp.cg")
    suffix = "onnx" if target == "onnx" else "py"
    outs = []
    for k in range(2):
        r = run_cli("export", path, "--to", target, "-o", str(tmp_path / f"m{k}.{suffix}"))
        assert r.returncode == 0, r.stderr
        outs.append((tmp_path / f"m{k}.{suffix}").read_bytes())
    assert outs[0] == outs[1]


RUFF_PROGRAMS = [
    EXAMPLES / "mlp.cg",
    EXAMPLES / "softmax_regression.cg",
    "input lambda = 1, l = 2, np = 3, f = 4\n"
    "forward = max(lambda, l, np, f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)",
    "input W = randn(9, 9)\ns = 1\ns = s * 2\nz = sum(W @ W) + norm(W) + abs(s) ^ 0.5 + sum(softmax(W)) + logsumexp(W)",
]


@pytest.mark.parametrize("prog", RUFF_PROGRAMS, ids=range(len(RUFF_PROGRAMS)))
@pytest.mark.parametrize("target", ["numpy", "jax", "torch"])
def test_generated_code_passes_ruff(prog, target, tmp_path):
    args = [str(prog)] if isinstance(prog, Path) else ["-e", prog]
    out = tmp_path / "gen.py"
    r = run_inproc("export", *args, "--to", target, "-o", str(out))
    assert r.returncode == 0, r.stderr
    cfg = ["--config", str(ROOT / "pyproject.toml")]
    for extra in ([], cfg):  # ruff's defaults, and the project's stricter rules (E, F, W, I, B, UP; 120 columns)
        rr = subprocess.run([str(RUFF), "check", "--no-cache", *extra, str(out)], capture_output=True, text=True)
        assert rr.returncode == 0, rr.stdout + rr.stderr + out.read_text()


@pytest.mark.parametrize(
    "text,values",
    [("input a = 1\nt = 0.5", {}), ("input a = 1\nt = [1, 2] @ [3, 4]", {}), ("z = a", {"a": 2.0})],
    ids=["constant", "folded", "input"],
)
def test_an_output_that_is_a_constant_or_an_input(text, values, engines, tmp_path):
    verify(request_for(text, values), engines, tmp_path)


def test_renamed_inputs_still_compute(engines, tmp_path):
    req = request_for("input lambda = 1, l = 2, np = 3, f = 4\nz = lambda * l + np * f", {})
    verify(req, engines, tmp_path)


LAZY = """
import sys
from cgraph_cli.cli.entry import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(m for m in ("onnx", "onnxruntime", "jax", "torch") if m in sys.modules)
print("HEAVY", heavy, file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args,expected",
    [
        (["eval", "-e", "z = x * y", "--at", "x=1,y=2"], []),
        (["render", "-e", "z = x * y", "--at", "x=1,y=2", "-o", "{tmp}/z.dot"], []),
        (["explain", "-e", "z = x * y", "--at", "x=1,y=2"], []),
        (["check", "-e", "z = x * y", "--at", "x=1,y=2"], []),
        (["ir", "-e", "z = x * y"], []),
        (["export", "-e", "z = x * y", "--to", "numpy", "-o", "{tmp}/a.py"], []),
        (["export", "-e", "z = x * y", "--to", "jax", "-o", "{tmp}/b.py"], []),
        (["export", "-e", "z = x * y", "--to", "torch", "-o", "{tmp}/c.py"], []),
        (["export", "-e", "z = x * y", "--to", "onnx", "-o", "{tmp}/d.onnx"], ["onnx"]),
    ],
)
def test_only_export_to_onnx_imports_onnx(args, expected, tmp_path):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    r = subprocess.run([sys.executable, "-c", LAZY, *argv], capture_output=True, text=True, timeout=120)
    line = [x for x in r.stderr.splitlines() if x.startswith("HEAVY")]
    assert line == [f"HEAVY {expected}"], r.stderr
