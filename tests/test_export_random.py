"""Random programs exported and run, two ways over the same programs: ``values`` checks the numpy module's
``forward``, the ONNX model in onnxruntime, the JAX module under ``jax.value_and_grad`` and (where torch is
installed) the PyTorch module under ``torch.func.grad`` (``test_export.verify``); ``gradients`` checks the
numpy module's ``value_and_grad`` and the ONNX model with ``--with-gradients`` (``test_export_grad.check_gradients``).
numpy must give cgraph's values and gradients bit for bit, the others within ``test_export.assert_close``'s
tolerance (1e-12 relative to the entry, or 1e-15 of the program's largest value or gradient entry).

The programs come from the generators of ``test_properties.py`` (smooth scalar programs with user functions
and reassignment; smooth tensor programs over reductions, indexing, softmax, reshape, transpose, matmul) and
``test_fuzz.py`` (every function of the language by its records, kinks and ties included: ``max(a, 1)`` at
``a = 1``). A program cgraph refuses, whose value or gradient is not finite (its non-finite numbers may differ
in kind between engines: NaN against infinity), or whose output holds several numbers is skipped.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cgraph_cli.errors import CgraphError
from tests import test_fuzz, test_properties
from tests.test_export import Engines, reference, request_for, verify
from tests.test_export_grad import check_gradients

pytestmark = pytest.mark.slow

RANDOM = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same programs every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def engines():
    e = Engines()
    yield e
    e.close()


def _finite(req) -> bool:
    try:
        value, grads, _ = reference(req)
    except CgraphError:
        return False
    return bool(np.all(np.isfinite(value)) and all(np.all(np.isfinite(g)) for g in grads.values()))


# what each run checks: every target's value (and gradients where the framework differentiates), or the
# backward pass the export writes out (numpy's value_and_grad, ONNX's --with-gradients)
CHECKS = pytest.mark.parametrize("check", ["values", "gradients"])


def _check(check: str, req, engines, tmp_path) -> None:
    assume(_finite(req))
    g = req.compile()
    shape = g.shapes[req.output(g)]
    assume(shape is not None and math.prod(shape) == 1)
    targets = ["numpy", "onnx", "jax", "torch"] if check == "values" else ["numpy", "onnx"]
    try:
        from cgraph_cli.present.export import export

        export(req, "onnx", "random.cg", check == "gradients")
    except CgraphError as e:  # an op ONNX cannot run in float64 here (erf): the refusal is the tested answer
        assert "no equivalent" in e.message
        targets.remove("onnx")
    if check == "values":
        verify(req, engines, tmp_path, tuple(targets))
    else:
        check_gradients(req, engines, tmp_path, tuple(targets))


@CHECKS
@RANDOM
@given(prog=test_properties.programs())
def test_random_scalar_programs(check, prog, engines, tmp_path_factory):
    text, raw = prog
    req = request_for(text, {k: v for k, v in raw.items() if k in text})
    try:
        g = req.compile()
    except CgraphError:
        assume(False)
    req = request_for(text, {k: v for k, v in raw.items() if k in g.inputs})
    _check(check, req, engines, tmp_path_factory.mktemp("scalar"))


@CHECKS
@RANDOM
@given(expr=test_properties.typed("S", 4), seed=st.integers(0, 2**32 - 1))
def test_random_tensor_programs(check, expr, seed, engines, tmp_path_factory):
    text = f"y = {expr}"
    rng = np.random.default_rng(seed)
    values = {k: rng.uniform(-1, 1, size=shape) for k, shape in test_properties.TENSOR_INPUTS.items()}
    try:
        g = request_for(text, values).compile()
    except CgraphError:
        assume(False)
    req = request_for(text, {k: v for k, v in values.items() if k in g.inputs})
    _check(check, req, engines, tmp_path_factory.mktemp("t"))


FUZZ_VALUES = {"a": 1.0, "b": 2.0, "c": -1.0, "x": [1.0, 2.0, 3.0], "W": [[1.0, 0.0, 2.0], [0.0, 1.0, 3.0]]}


@CHECKS
@settings(RANDOM, max_examples=80)
@given(stmts=test_fuzz.programs())
def test_random_programs_of_every_function(check, stmts, engines, tmp_path_factory):
    """Every function of the language, at points where kinks and ties are common (max(a, 1) at a = 1,
    relu(a - 1), abs(c + 1)): the targets take cgraph's (PyTorch's) derivative there too."""
    text = test_fuzz.render_program(stmts)
    try:
        req = request_for(text, {k: v for k, v in FUZZ_VALUES.items() if _mentions(text, k)})
        g = req.compile()
    except CgraphError:
        assume(False)
    req = request_for(text, {k: v for k, v in FUZZ_VALUES.items() if k in g.inputs})
    try:
        req.inputs(g)
    except CgraphError:
        assume(False)
    assume(bool(g.outputs))
    _check(check, req, engines, tmp_path_factory.mktemp("fuzz"))


def _mentions(text: str, name: str) -> bool:
    import re

    return re.search(rf"\b{name}\b", text) is not None
