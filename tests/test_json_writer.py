"""eval's JSON writer (present.tables.write_json) against the json module.

The writer dispatches on exact types, writes node records from a template and short vectors at once; each of
those shortcuts must give exactly ``json.dumps(to_data(result), indent=2, allow_nan=False)``: examples, every
kind of value (non-finite numbers, None gradients, empty, short and long tensors, matrices), names the template
escapes (non-ASCII), and float32 programs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from cgraph_cli.present import tables
from cgraph_cli.run.program import load_source, run
from tests.conftest import EXAMPLES

PROGRAMS = {
    "scalars": "input a = -1, b = 3, c = 4\nx = a + b\ny = b + c\nz = x * y",
    "nonfinite": "input a = 0\nb = log(a)\nc = 1 / a\nd = sqrt(a)\nz = b + c + d",
    "no gradient": "input a = 2\nk = 3 * 4\nz = a * k",
    "vectors": "input a = 0.5\nv = ones(70) * a\nw = ones(3) + a\nz = sum(v * v) + sum(w)",
    "matrices": "input a = 0.25\nW = ones(2, 3) * a\nx = ones(3)\ny = W @ x\nz = sum(tanh(y))",
    "empty": "input a = 2\ne = zeros(0) * a\nz = sum(e) + a",
    "unicode": "# é\ninput a = 2\nb = a * 2 # ü\nz = b + a",
}


def _result(text: str, dtype: str = "float64"):
    return run(load_source(None, text), {}, dtype=dtype, use_cache=False)


def _check(result) -> None:
    ref = json.dumps(tables.to_data(result), indent=2, allow_nan=False)
    assert tables.to_json(result) == ref


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_writer_matches_json_dumps(name):
    _check(_result(PROGRAMS[name]))


@pytest.mark.parametrize("name", ["scalars", "matrices", "nonfinite"])
def test_writer_matches_json_dumps_in_float32(name):
    _check(_result(PROGRAMS[name], "float32"))


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.cg")), ids=lambda p: p.stem)
def test_writer_matches_json_dumps_on_examples(path):
    _check(run(load_source(str(path), None), {}))


def test_writer_matches_json_dumps_with_a_nan_inside_a_tensor():
    res = run(load_source(None, "input a = 1\nv = ones(4) * a\nw = log(v - 1)\nz = sum(w * 0 + v)"), {})
    assert res.nonfinite_nodes().any()
    _check(res)


def test_nonfinite_mask_matches_a_per_node_scan():
    from cgraph_cli.engine.reference import all_finite, nonfinite_mask

    items = [None, np.float64(1.0), np.float64("nan"), np.asarray(np.inf), 2.5, np.ones(3), np.array([1, np.nan])]
    items += [np.ones(100), np.full(100, -np.inf), np.float32(np.inf), np.zeros((0, 3))]
    expect = [v is not None and not all_finite(v) for v in items]
    assert nonfinite_mask(items).tolist() == expect


def test_node_records_are_written_as_they_are_made_not_held_to_the_end():
    """The nodes list is written a few hundred records at a time (200,000 records held until the end took
    160 MB), and the text is still json.dumps's."""
    text = "input a = 0.5\nx = a\n" + "x = tanh(x) * 0.5 + a\n" * 1500  # 6,000 nodes
    result = _result(text)
    writes: list[int] = []

    class Stream:
        def __init__(self) -> None:
            self.parts: list[str] = []

        def write(self, s: str) -> None:
            writes.append(len(s))
            self.parts.append(s)

    out = Stream()
    tables.write_json(result, out)
    assert "".join(out.parts) == json.dumps(tables.to_data(result), indent=2, allow_nan=False)
    assert len(writes) >= len(result.graph) // tables.RECORDS_HELD
    assert max(writes) < sum(writes) / 5
