"""numpy's ``value_and_grad`` and ONNX's ``--with-gradients``: the backward pass exported as code and as model
nodes gives ``cgraph eval``'s gradients (numpy's bit for bit; onnxruntime's within the tolerance of
``test_export.assert_close``); the code reads as the backward pass; what cannot be exported is a clear error.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cgraph_cli.errors import CgraphError
from tests.conftest import EXAMPLES, ROOT, run_inproc
from tests.test_export import (
    KINKS,
    LANGUAGE_OPS,
    RUFF,
    TENSOR_PROGRAMS,
    Engines,
    assert_close,
    assert_identical,
    exported,
    load,
    params,
    program_scale,
    reference,
    request_for,
    verify,
)

# Both write cgraph's own derivative formulas (the op records' VJPs). numpy's value_and_grad calls the numpy
# functions cgraph computes with, in the same order: bit for bit cgraph's numbers. onnxruntime's float64 kernels
# are not numpy's (Tanh up to 8 ulps apart, Exp and Log 2), so its entries agree within 1e-12 relative, or within
# 1e-15 of the program's largest value or gradient entry where an entry is ill-conditioned or zero.


@pytest.fixture(scope="module")
def engines():
    e = Engines()
    yield e
    e.close()


def check_gradients(req, engines, tmp_path: Path, targets=("numpy", "onnx")) -> None:
    """numpy's forward and value_and_grad against cgraph's value and gradients: bit for bit. The ONNX model
    with gradients in onnxruntime: within RTOL relative or FLOOR * S (:func:`tests.test_export.assert_close`)."""
    value, grads, inputs = reference(req)
    src = req.source.text
    if "numpy" in targets:
        names = params(req, "numpy")
        mod = load(exported(req, "numpy"), tmp_path)
        args = {names[k]: v for k, v in inputs.items()}
        got, got_grads = mod.value_and_grad(**args)
        assert list(got_grads) == list(grads), f"gradients of {list(got_grads)}, not {list(grads)}"
        assert_identical(got, value, f"numpy value_and_grad value of {src!r}")
        assert_identical(mod.forward(**args), value, f"numpy forward of {src!r}")
        for k in grads:
            assert isinstance(got_grads[k], (np.ndarray, np.generic)), f"d/d{k} is a {type(got_grads[k])}"
            assert_identical(got_grads[k], grads[k], f"numpy d/d{k} of {src!r}")
    if "onnx" in targets:
        res = engines.run("onnx", exported(req, "onnx", True), inputs, tmp_path)
        assert [k for k in res if k.startswith("out:")][1:] == [f"out:grad_{k}" for k in grads]
        scale = program_scale(value, grads)
        assert_close(res["value"], value, f"onnx value of {src!r}", scale, "onnx --with-gradients")
        for k in grads:
            assert_close(res[f"out:grad_{k}"], grads[k], f"onnx d/d{k} of {src!r}", scale, "onnx --with-gradients")


# -- against cgraph eval: every example, the kinks, the tensor ops, every function of the language --------------

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.cg"))


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_every_example_matches_cgraph_eval(path, engines, tmp_path):
    r = run_inproc("eval", str(path), "--format", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    req = request_for(path.read_text(), name=path.name)
    value, grads, _ = reference(req)
    assert_close(value, data["value"], "cgraph eval and the engine")
    for k, v in data["gradients"].items():
        assert_close(grads[k], v, f"eval's d/d{k}")
    check_gradients(req, engines, tmp_path)


def test_lecture_example(engines, tmp_path):
    check_gradients(request_for((EXAMPLES / "lecture.cg").read_text(), name="lecture.cg"), engines, tmp_path)


@pytest.mark.parametrize("text,values", KINKS, ids=[f"{t} at {v}" for t, v in KINKS])
def test_kinks_keep_cgraphs_derivatives(text, values, engines, tmp_path):
    check_gradients(request_for(text, values), engines, tmp_path)


@pytest.mark.parametrize("text,values", TENSOR_PROGRAMS, ids=[t for t, _ in TENSOR_PROGRAMS])
def test_tensor_ops(text, values, engines, tmp_path):
    check_gradients(request_for(text, values), engines, tmp_path)


@pytest.mark.parametrize("text,values", LANGUAGE_OPS, ids=range(len(LANGUAGE_OPS)))
def test_every_function_of_the_language(text, values, engines, tmp_path):
    check_gradients(request_for(text, values), engines, tmp_path)


@pytest.mark.parametrize(
    "text,values",
    [
        ("z = a", {"a": 2.0}),  # the output is an input: its gradient is the seed 1
        ("input a = 1, b = 2\nz = a * 3", {}),  # b does not reach the output: a zero gradient of its shape
        ("input a = 1, v = [1, 2]\nz = a * 3", {}),
        ("input a = 1\nz = 0.5", {}),  # a constant output
        ("input lambda = 1, l = 2, np = 3, f = 4\nz = lambda * l + np * f", {}),  # renamed parameters
        ("z = sum(v[[0, 0, 2]] * v) + v[1:][::-1][0]", {"v": [0.3, -2.0, 0.5]}),  # place: index gradients added up
    ],
    ids=["input", "unused", "unused-vector", "constant", "renamed", "place"],
)
def test_edge_cases(text, values, engines, tmp_path):
    check_gradients(request_for(text, values), engines, tmp_path)


def test_place_in_every_target(engines, tmp_path):
    """grad() of an indexed expression puts 'place' (an index's gradient) in the forward graph: every target
    writes it, and numpy and ONNX differentiate through it again."""
    req = request_for(
        "input v = [0.3, -2.0, 0.5], M = [[1.0, 2.0, 0.5], [-1.0, 0.25, 3.0]]\n"
        "g = grad(sum(v[::-1][:2] ^ 2) + v[[0, 0]] @ v[1:] + M[1, ::-2] @ v[:2], v)\n"
        "h = grad(sum(M[:, 1] * v[1:]) + M[0, 0] ^ 3, M)\n"
        "y = sum(g * v) + sum(h * M)",
    )
    assert "place" in req.compile().ops
    verify(req, engines, tmp_path)
    check_gradients(req, engines, tmp_path)


# -- reading it: the backward pass as straight-line code --------------------------------------------------------

LECTURE_VALUE_AND_GRAD = '''\
def value_and_grad(a=DEFAULTS["a"], b=DEFAULTS["b"], c=DEFAULTS["c"]):
    """The output z (line 12) and its gradients: (z, {input: ∂z/∂input})."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    x = a + b  # x, line 10
    y = b + c  # y, line 11
    z = x * y  # z, line 12
    # The backward pass, from z back to the inputs: d_v holds ∂z/∂v, starting from d_z = 1; each
    # step applies the derivative of the forward statement named on its right.
    d_x = 1.0 * y  # ∂z/∂x, back through z, line 12
    d_y = 1.0 * x  # ∂z/∂y, back through z, line 12
    d_b = d_y + d_x  # ∂z/∂b, back through x, line 10
    return z, {"a": d_x, "b": d_b, "c": d_y}
'''


def test_lecture_backward_pass_reads_as_the_lecture(tmp_path):
    code = exported(request_for((EXAMPLES / "lecture.cg").read_text(), name="lecture.cg"), "numpy").decode()
    assert code.endswith("\n\n" + LECTURE_VALUE_AND_GRAD), code
    mod = load(code.encode(), tmp_path)
    value, grads = mod.value_and_grad()
    assert value == 14.0 and {k: float(v) for k, v in grads.items()} == {"a": 7.0, "b": 9.0, "c": 2.0}


def test_numpy_warns_only_of_what_is_kept(tmp_path):
    """At a kink the derivative formulas compute both sides and keep one (0^0, sqrt at 0 beside relu): numpy's
    warnings about the other side are silenced in value_and_grad, and a program without such a formula (the
    lecture) reads as before."""
    import warnings

    req = request_for("input a = 0, b = 0\ny = a ^ b + relu(a) + abs(b)\n", name="k.cg")
    code = exported(req, "numpy").decode()
    assert 'with np.errstate(divide="ignore", invalid="ignore"):' in code
    mod = load(code.encode(), tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grads = mod.value_and_grad()
    assert float(value) == 1.0 and {k: float(v) for k, v in grads.items()} == {"a": 0.0, "b": 0.0}
    lecture = exported(request_for((EXAMPLES / "lecture.cg").read_text(), name="lecture.cg"), "numpy").decode()
    assert "errstate" not in lecture


def test_backward_statements_come_in_reverse_order_one_per_node():
    """After the forward statements, each backward statement names a forward node on or before the line of the
    previous one's (reverse order), and there is one per backward node of the plan."""
    from cgraph_cli.present.export import make_plan

    req = request_for((EXAMPLES / "mlp.cg").read_text(), name="mlp.cg")
    code = exported(req, "numpy").decode()
    body = code[code.index("def value_and_grad(") :]
    back = body[body.index("# The backward pass") :].splitlines()[:-1]
    back = [s for s in back if not s.lstrip().startswith(("#", "with np.errstate"))]  # the statements
    plan = make_plan(req, "numpy")
    assert len(back) == len(plan.backward) > 10
    lines = [int(s.rsplit("line ", 1)[1]) for s in back]
    assert lines == sorted(lines, reverse=True), back
    assert all(" back through " in s for s in back)
    gradients = [s.split(" = ", 1)[0].strip() for s in back if "# ∂loss/∂" in s]
    assert {"d_z2", "d_a1", "d_z1", "d_W1", "d_W2", "d_x", "d_t"} <= set(gradients)


# -- what cannot be exported: clear errors, nothing written ---------------------------------------------------


PROD_PROGRAMS = [
    ("y = prod(X) + sum(prod(X, axis=1)) + prod(X, axis=0)[2]", {"X": [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]}),
    ("y = prod(v) + prod(v * v)", {"v": [0.0, 2.0, 3.0]}),  # a zero: the product of the others, no division
    ("y = prod(v)", {"v": [0.0, 2.0, 0.0]}),  # two zeros
    (
        "y = sum(prod(T, axis=(0, 2), keepdims=true)) + prod(s)",
        {"T": np.arange(1.0, 13.0).reshape(2, 3, 2) / 6, "s": 3.0},
    ),
]


@pytest.mark.parametrize("text,values", PROD_PROGRAMS, ids=range(len(PROD_PROGRAMS)))
def test_prod_gradient(text, values, engines, tmp_path):
    """prod's derivative is the internal op prod_others (each entry's product of the others), written by every
    target; through grad() it is in the forward graph, so JAX and PyTorch differentiate it too."""
    check_gradients(request_for(text, values), engines, tmp_path)
    x = "X" if "X" in values else "T" if "T" in values else "v"
    inner = text.split("=", 1)[1].strip()
    req = request_for(f"input {x}\ng = grad({inner}, {x})\ny = sum(g * {x})", {x: values[x], **values})
    assert "prod_others" in req.compile().ops
    verify(req, engines, tmp_path)
    check_gradients(req, engines, tmp_path)


def test_an_op_whose_derivative_is_not_operations_is_a_clear_error(monkeypatch, tmp_path):
    """A VJP that leaves numpy the tracer can record (np.asarray here) cannot be exported as the backward pass:
    an error at the op's line naming it, nothing written; --forward-only still exports."""
    import dataclasses

    from cgraph_cli.ops import OPS

    op = OPS["tanh"]
    monkeypatch.setitem(OPS, "tanh", dataclasses.replace(op, vjp=(lambda g, ans, x: g * (1 - np.asarray(ans) ** 2),)))
    prog = "y = x * 2\nz = tanh(y) + 1"
    r = run_inproc("export", "-e", prog, "--at", "x=0.5", "--to", "numpy", "-o", "m.py", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith(
        "error: <expr>:2:5: cannot export the gradient of 'tanh' to numpy: its derivative is not written as operations"
    ), r.stderr
    assert "hint: --forward-only writes forward() alone" in r.stderr and not (tmp_path / "m.py").exists()
    r = run_inproc("export", "-e", prog, "--at", "x=0.5", "-o", "m.onnx", "--with-gradients", cwd=tmp_path)
    assert r.returncode == 2 and "cannot export the gradient of 'tanh' to ONNX" in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []
    args = ("export", "-e", prog, "--at", "x=0.5", "--to", "numpy", "-o", "m.py", "--forward-only")
    r = run_inproc(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    mod = load((tmp_path / "m.py").read_bytes(), tmp_path)
    assert mod.forward() == np.tanh(1.0) + 1 and not hasattr(mod, "value_and_grad")


def test_an_output_of_several_numbers_has_no_value_and_grad(tmp_path):
    req = request_for("y = v * 2", {"v": [1.0, 2.0]})
    code = exported(req, "numpy").decode()
    assert "def value_and_grad" not in code
    assert "No value_and_grad: the output has shape (2,), and only a one-number" in code
    with pytest.raises(CgraphError, match=r"the output y has shape \(2,\): only a one-number output has a gradient"):
        exported(req, "onnx", True)
    with pytest.raises(CgraphError, match="only a one-number output"):
        exported(req, "numpy", True)


@pytest.mark.parametrize("target", ["jax", "torch"])
def test_with_gradients_is_for_numpy_and_onnx(target, tmp_path):
    r = run_inproc("export", "-e", "z = x * y", "--to", target, "--with-gradients", "-o", "m.py", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("error: --with-gradients is for numpy and ONNX"), r.stderr
    assert list(tmp_path.iterdir()) == []


def test_onnx_model_without_the_flag_has_one_output(tmp_path):
    import onnx

    req = request_for("input a = 1, b = 2\nz = a * b")
    plain = onnx.load_model_from_string(exported(req, "onnx"))
    with_grads = onnx.load_model_from_string(exported(req, "onnx", True))
    assert [o.name for o in plain.graph.output] == ["z"]
    assert [o.name for o in with_grads.graph.output] == ["z", "grad_a", "grad_b"]
    assert [n.doc_string for n in with_grads.graph.node if n.output[0].startswith("grad_")] == ["∂z/∂a", "∂z/∂b"]


# -- promises: deterministic, ruff-clean -----------------------------------------------------------------------

GRAD_PROGRAMS = [
    EXAMPLES / "mlp.cg",
    EXAMPLES / "rnn.cg",
    EXAMPLES / "newton.cg",
    "input v = [0.3, -2.0, 0.5], M = [[1, 2, 0.5], [-1, 0.25, 3]]\n"
    "y = sum(softmax(M, 1) @ v) + logsumexp(v[::-1][1:]) + norm(M[:, [0, 0]]) + sum(log_softmax(v)) + max(v, 0.1)[0]",
]


@pytest.mark.parametrize("prog", GRAD_PROGRAMS, ids=range(len(GRAD_PROGRAMS)))
def test_value_and_grad_modules_are_deterministic_and_pass_ruff(prog, tmp_path):
    args = [str(prog)] if isinstance(prog, Path) else ["-e", prog]
    outs = []
    for k in range(2):
        out = tmp_path / f"gen{k}.py"
        r = run_inproc("export", *args, "--to", "numpy", "-o", str(out))
        assert r.returncode == 0, r.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] and b"def value_and_grad(" in outs[0]
    for extra in ([], ["--config", str(ROOT / "pyproject.toml")]):
        rr = subprocess.run(
            [str(RUFF), "check", "--no-cache", *extra, str(tmp_path / "gen0.py")], capture_output=True, text=True
        )
        assert rr.returncode == 0, rr.stdout + rr.stderr + outs[0].decode()
    assert max(len(line) for line in outs[0].decode().splitlines()) <= 100


def test_onnx_with_gradients_is_deterministic(tmp_path):
    models = []
    for k in range(2):
        r = run_inproc("export", str(EXAMPLES / "mlp.cg"), "-o", str(tmp_path / f"m{k}.onnx"), "--with-gradients")
        assert r.returncode == 0, r.stderr
        models.append((tmp_path / f"m{k}.onnx").read_bytes())
    assert models[0] == models[1]


def test_exporting_gradients_imports_no_framework():
    script = (
        "import sys\nfrom cgraph_cli.cli.entry import main\n"
        "try:\n    main(['export', '-e', 'z = sum(x[::-1] * 2)', '--at', 'x=[1,2]', '--to', 'numpy', '-o', '-'])\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in ('onnx', 'onnxruntime', 'jax', 'torch') if m in sys.modules), file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "def value_and_grad(" in r.stdout and r.stderr.strip().endswith("[]"), r.stderr


def test_readme_examples_are_what_export_writes(engines, tmp_path):
    """The README's value_and_grad listing is the export's own text, and its --with-gradients numbers are
    onnxruntime's."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("$ cgraph export examples/neuron.cg --to numpy -o -\n...\n")
    block = readme[start:].split("\n", 2)[2].split("```", 1)[0]
    code = exported(request_for((EXAMPLES / "neuron.cg").read_text(), name="neuron.cg"), "numpy").decode()
    assert code.endswith("\n\n" + block), block
    assert "a, grad_w, grad_b, grad_x = session.run(None, inputs)  # 0.5, [0.25, -0.5, 0.75], 0.25, [0.125," in readme
    req = request_for((EXAMPLES / "neuron.cg").read_text(), name="neuron.cg")
    res = engines.run("onnx", exported(req, "onnx", True), reference(req)[2], tmp_path)
    assert [res[k].tolist() for k in ("out:a", "out:grad_w", "out:grad_b", "out:grad_x")] == [
        0.5,
        [0.25, -0.5, 0.75],
        0.25,
        [0.125, -0.25, 0.5],
    ]
