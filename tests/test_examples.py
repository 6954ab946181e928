"""Every file in examples/ runs, and its `# expect:` lines hold.

An expectation reads `# expect: NAME = VALUE` (a node's value) or
`# expect: dOUT/dNAME = VALUE` (the gradient of the output OUT w.r.t. NAME).
VALUE is a number or a list of numbers; they are compared to 5 significant digits.
"""

import json
import re

import numpy as np
import pytest

from tests.conftest import EXAMPLES, run_cli

EXPECT = re.compile(r"#\s*expect:\s*(?P<lhs>[^=]+?)\s*=\s*(?P<rhs>.+)$")
GRAD = re.compile(r"d(?P<out>\w+)/d(?P<wrt>\w+)$")
FILES = sorted(EXAMPLES.glob("*.cg"))


def expectations(path):
    out = []
    for line in path.read_text().splitlines():
        m = EXPECT.search(line)
        if m:
            out.append((m["lhs"], np.array(json.loads(m["rhs"]), dtype=float)))
    return out


def test_there_are_examples():
    names = {p.name for p in FILES}
    for want in (
        "lecture.cg",
        "linear_regression.cg",
        "neuron.cg",
        "mlp.cg",
        "softmax_regression.cg",
        "functions.cg",
        "unrolled.cg",
    ):
        assert want in names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_example_runs_and_meets_expectations(path):
    r = run_cli("eval", str(path), "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    by_name = {}
    for node in doc["nodes"]:
        if node["name"] is not None:
            by_name[node["name"]] = node  # the newest node of a reassigned name wins
    exp = expectations(path)
    assert exp, f"{path.name} has no '# expect:' lines"
    for lhs, want in exp:
        g = GRAD.match(lhs)
        if g and g["wrt"] in by_name and g["out"] == doc["output"]:
            got = by_name[g["wrt"]]["grad"]
        else:
            got = by_name[lhs]["value"]
        np.testing.assert_allclose(
            np.array(got, dtype=float), want, rtol=1e-5, atol=1e-6, err_msg=f"{path.name}: {lhs}"
        )
