"""The float loop on graphs with a few tensors (engine/scalar.py, ``mixed``) against the generic loop, bit for bit.

The programs come from ``test_fuzz.programs`` (every function of the language, tensor literals, indexing,
reductions, kinks and ties at the chosen values), so every op record's tensor path meets the float loop's
scalar nodes: values, gradients (signed zeros included) and the non-finite report must be the same.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cgraph_cli.engine import evaluate
from cgraph_cli.engine.scalar import scalar_plan
from cgraph_cli.errors import CgraphError, Source
from cgraph_cli.ir.graph import build_graph
from cgraph_cli.lang.parser import parse
from tests import test_fuzz
from tests.test_engine_strategies import check_bits

SCALARS = [1.0, 2.0, -1.0, 0.0, -0.0, 0.5, 3.0, 1e308]


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(stmts=test_fuzz.programs(), a=st.sampled_from(SCALARS), b=st.sampled_from(SCALARS))
def test_programs_of_every_function_bit_for_bit(stmts, a, b) -> None:
    text = test_fuzz.render_program(stmts)
    values = {"a": np.array(a), "b": np.array(b), "c": np.array(-1.0), "x": np.array(0.25), "W": np.array(-2.0)}
    src = Source(text, "<test>")
    try:
        g = build_graph(parse(src), src, values)
        vals = {k: values[k] for k in g.inputs}
        evaluate(g, vals, strategy="generic")  # (a program the engine refuses is not one to compare)
    except CgraphError:
        assume(False)
    assume(scalar_plan(build_graph(parse(src), src, values), vals) is not None)
    check_bits(text, vals)
