"""--batch reads and writes numbers through orjson's C parser and encoder (issue 16): exactly the digits of
``repr`` and the values of ``float()``, checked on a million random numbers over the whole double range, and
every cell JSON would read differently (``-0``, ``null``, ``+1``, ``.5``, ``inf``, ``1_0``) taking float()'s path.
"""

from __future__ import annotations

import numpy as np
import pytest

from cgraph_cli.fmt import csv_row_tails
from cgraph_cli.run import batch
from tests.conftest import EXAMPLES, run_cli

EDGES = [0.0, -0.0, 1.0, -1.0, 14.0, 0.1, 1 / 3, 1e-4, 1e-5, -1e-5, 1.5e-5, 9.99e-5, 1e-7, 1.5e-9, 1e15, 1e16]
EDGES += [1e22, 1.7976931348623157e308, 5e-324, 2.2250738585072014e-308, -10.000096, 123e-5, 9999999999999998.0]


def _random(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = n // 4
    x = np.concatenate(
        [
            rng.standard_normal(k) * 10.0 ** rng.integers(-300, 300, k),  # every magnitude
            rng.uniform(-5, 5, k).round(3),  # the kind of data batches hold
            rng.standard_normal(k) * 10.0 ** rng.integers(-8, 3, k),  # around the switch to exponents
            np.frombuffer(rng.bytes(8 * k), dtype=np.float64),  # any bit pattern
        ]
    )
    return x[np.isfinite(x)]


def _reference_rows(table: np.ndarray) -> str:
    return "\n".join(",".join(map(repr, row)) for row in table.tolist())


def _number_rows(table: np.ndarray) -> str:
    """The rows as fmt.csv_row_tails writes them (each ",cells\\n"), without the leading comma and line break."""
    return "\n".join(tail.decode()[1:-1] for tail in csv_row_tails(table))


@pytest.mark.parametrize("width", [1, 3, 7])
def test_number_rows_are_repr_on_edge_cases(width):
    x = np.array(EDGES * width).reshape(-1, width)
    assert _number_rows(x) == _reference_rows(x)


def test_number_rows_are_repr_on_random_numbers():
    x = _random(40_000, 1).reshape(-1, 1)
    assert _number_rows(x) == _reference_rows(x)


@pytest.mark.slow
def test_number_rows_are_repr_on_a_million_random_numbers():
    x = _random(1_000_000, 2)
    x = x[: len(x) // 4 * 4].reshape(-1, 4)
    assert _number_rows(x) == _reference_rows(x)


def _texts(x: np.ndarray) -> list[str]:
    return [repr(v) for v in x.tolist()] + [f"{v:.25g}" for v in x[:1000].tolist()] + ["1", "12", "1E5", "1e+5"]


def test_parse_numbers_is_float_on_random_texts():
    cells = _texts(_random(40_000, 3))
    arr = batch._parse_numbers(",".join(cells), 1, len(cells))
    assert arr is not None
    ref = np.array([float(c) for c in cells])
    assert (arr.ravel().view(np.int64) == ref.view(np.int64)).all()  # the same doubles, bit for bit


@pytest.mark.parametrize(
    "cell", ["-0", "-00", "null", "true", "+1", ".5", "5.", "inf", "-inf", "nan", "1_0", "", "[1]"]
)
def test_cells_json_reads_differently_take_floats_path(cell):
    assert batch._parse_numbers(f"1,{cell}", 1, 2) is None


def test_minus_zero_and_spaces_in_a_batch_read_as_float_reads_them(tmp_path):
    pts = tmp_path / "p.csv"
    pts.write_text("a,b,c\n-0,3,4\n 1 ,2,3\n-0.0,1e-7,+2\n")
    r = run_cli("eval", str(EXAMPLES / "lecture.cg"), "--batch", str(pts))
    assert r.returncode == 0, r.stderr
    rows = r.stdout.splitlines()[1:]

    def lecture(a: float, b: float, c: float) -> str:  # z = (a + b)(b + c) and its gradient, in Python floats
        x, y = a + b, b + c
        return ",".join(map(repr, (x * y, y, y + x, x)))

    assert rows[0] == "-0,3,4," + lecture(-0.0, 3.0, 4.0)
    assert rows[1].endswith(",2,3," + lecture(1.0, 2.0, 3.0))
    assert rows[2] == "-0.0,1e-7,+2," + lecture(-0.0, 1e-7, 2.0)
    assert float(rows[0].split(",")[3]) == 21.0
