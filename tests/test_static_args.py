"""A static argument (a dimension, an axis) written with an op that takes no scalars, such as `1 @ 1`, is the usual
'must be a whole-number constant' error (exit 2), not an internal error (found by
tests/test_properties.py::test_random_tensor_programs_raise_only_cgraph_error)."""

from __future__ import annotations

from tests.conftest import run_inproc


def test_matmul_of_numbers_in_a_static_argument_is_a_user_error() -> None:
    r = run_inproc("eval", "-e", "y = sum(permute(x, (1 @ 1)))", "--at", "x=[1,2]")
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: <expr>:1:")
    assert "must be a whole-number constant" in r.stderr and "internal error" not in r.stderr


def test_arithmetic_in_a_static_argument_still_works() -> None:
    r = run_inproc("eval", "-e", "y = sum(permute(x, (2 - 1, 1 * 0)))", "--at", "x=[[1,2],[3,4]]", "--format", "json")
    assert r.returncode == 0, r.stderr
