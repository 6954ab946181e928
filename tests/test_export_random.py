"""Random programs exported and run: the numpy module, the ONNX model in onnxruntime, the JAX module under
``jax.value_and_grad`` and (where torch is installed) the PyTorch module under ``torch.func.grad`` give
cgraph's values and gradients within 1e-12 relative in float64.

The programs come from the generators of ``test_properties.py`` (smooth scalar programs with user functions
and reassignment; smooth tensor programs over reductions, indexing, softmax, reshape, transpose, matmul) and
``test_fuzz.py`` (every function of the language by its records, kinks and ties included: ``max(a, 1)`` at
``a = 1``). A program cgraph refuses, or whose value or gradient is not finite, is skipped (its non-finite
numbers may differ in kind between engines: NaN against infinity).
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


def _check(req, engines, tmp_path) -> None:
    assume(_finite(req))
    targets = ["numpy", "onnx", "jax", "torch"]
    try:
        from cgraph_cli.present.export import export

        export(req, "onnx", "random.cg")
    except CgraphError as e:  # an op ONNX cannot run in float64 here (erf): the refusal is the tested answer
        assert "no equivalent" in e.message
        targets.remove("onnx")
    verify(req, engines, tmp_path, tuple(targets))


@RANDOM
@given(prog=test_properties.programs())
def test_random_scalar_programs(prog, engines, tmp_path_factory):
    text, raw = prog
    req = request_for(text, {k: v for k, v in raw.items() if k in text})
    try:
        g = req.compile()
    except CgraphError:
        assume(False)
    req = request_for(text, {k: v for k, v in raw.items() if k in g.inputs})
    _check(req, engines, tmp_path_factory.mktemp("scalar"))


@RANDOM
@given(expr=test_properties.typed("S", 4), seed=st.integers(0, 2**32 - 1))
def test_random_tensor_programs(expr, seed, engines, tmp_path_factory):
    text = f"y = {expr}"
    rng = np.random.default_rng(seed)
    values = {k: rng.uniform(-1, 1, size=shape) for k, shape in test_properties.TENSOR_INPUTS.items()}
    try:
        g = request_for(text, values).compile()
    except CgraphError:
        assume(False)
    _check(request_for(text, {k: v for k, v in values.items() if k in g.inputs}), engines, tmp_path_factory.mktemp("t"))


FUZZ_VALUES = {"a": 1.0, "b": 2.0, "c": -1.0, "x": [1.0, 2.0, 3.0], "W": [[1.0, 0.0, 2.0], [0.0, 1.0, 3.0]]}


@settings(RANDOM, max_examples=80)
@given(stmts=test_fuzz.programs())
def test_random_programs_of_every_function(stmts, engines, tmp_path_factory):
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
    out = g.outputs[0] if g.outputs else None
    assume(out is not None and g.shapes[out] is not None and math.prod(g.shapes[out]) == 1)
    _check(req, engines, tmp_path_factory.mktemp("fuzz"))


def _mentions(text: str, name: str) -> bool:
    import re

    return re.search(rf"\b{name}\b", text) is not None
