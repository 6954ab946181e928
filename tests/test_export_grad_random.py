"""Random programs: numpy's value_and_grad and the ONNX model with --with-gradients (in onnxruntime) give
``cgraph eval``'s value and gradients within 1e-12 relative in float64, strictly: no rounding slack, as both
write cgraph's own derivative formulas (the JAX and PyTorch exports, differentiated by their frameworks, get
the slack of ``test_export.rounding_slack`` where a result is ill-conditioned).

The generators are ``test_export_random.py``'s (``test_properties.py``'s scalar and tensor programs,
``test_fuzz.py``'s programs of every function at kinks and ties). A program cgraph refuses, whose value or
gradient is not finite, or whose output holds several numbers is skipped.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cgraph_cli.errors import CgraphError
from tests import test_fuzz, test_properties
from tests.test_export import Engines, request_for
from tests.test_export_grad import check_gradients
from tests.test_export_random import FUZZ_VALUES, RANDOM, _finite, _mentions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engines():
    e = Engines()
    yield e
    e.close()


def _check(req, engines, tmp_path) -> None:
    assume(_finite(req))
    g = req.compile()
    shape = g.shapes[req.output(g)]
    assume(shape is not None and math.prod(shape) == 1)
    targets = ["numpy", "onnx"]
    try:
        from cgraph_cli.present.export import export

        export(req, "onnx", "random.cg", True)
    except CgraphError as e:  # an op ONNX cannot run in float64 here (erf): the refusal is the tested answer
        assert "no equivalent" in e.message
        targets.remove("onnx")
    check_gradients(req, engines, tmp_path, tuple(targets))


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


@settings(RANDOM, max_examples=80)
@given(stmts=test_fuzz.programs())
def test_random_programs_of_every_function(stmts, engines, tmp_path_factory):
    """Every function of the language at points where kinks and ties are common (max(a, 1) at a = 1)."""
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
    assume(g.outputs and g.shapes[g.outputs[0]] is not None)
    _check(req, engines, tmp_path_factory.mktemp("fuzz"))
