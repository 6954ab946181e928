"""The Python API (cgraph_cli.api, re-exported as ``import cgraph_cli as cg``): its results against hand values,
finite differences and the command line's own output, its errors, and that it is safe for library use (no
printing, no SystemExit, no global state changed, no display library imported, independent programs evaluated
in threads). And the other way round: every command goes through it."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading

import numpy as np
import pytest

import cgraph_cli as cg
from cgraph_cli import api
from tests.conftest import EXAMPLES, ROOT
from tests.conftest import run_inproc as run_main

LECTURE = str(EXAMPLES / "lecture.cg")
MLP = str(EXAMPLES / "mlp.cg")
ABC = {"a": -1, "b": 3, "c": 4}


# -- values and gradients --------------------------------------------------------------------------------------------


def test_the_lecture_by_hand() -> None:
    ev = cg.load(LECTURE).eval(a=-1, b=3, c=4)
    assert ev.output == "z"
    assert ev.value == 14.0 and isinstance(ev.value, float)
    assert ev.grad == {"a": 7.0, "b": 9.0, "c": 2.0}
    assert ev["x"].value == 2.0 and ev["x"].grad == 7.0
    assert ev["y"].value == 7.0 and ev["y"].grad == 2.0
    assert ev.inputs == {"a": -1.0, "b": 3.0, "c": 4.0}
    assert ev.outputs == {"z": 14.0}


def test_defaults_mapping_and_keywords() -> None:
    p = cg.load(LECTURE)
    assert p.eval().value == 14.0  # the declared defaults
    assert p.eval({"a": 1}).value == (1 + 3) * (3 + 4)
    assert p.eval({"a": 1}, a=2).value == (2 + 3) * (3 + 4)  # keywords win over the mapping
    assert p.eval(b=np.float32(0.5)).grad["b"] == pytest.approx((-1 + 0.5) + (0.5 + 4))


def test_program_structure() -> None:
    p = cg.parse("input x = [1, 2], n\nW = randn(2, 2)\ny = sum(W @ x) * n\noutput y")
    assert list(p.inputs) == ["x", "n"]
    assert p.inputs["x"].shape == (2,) and p.inputs["x"].default.tolist() == [1.0, 2.0]
    assert p.inputs["n"].shape is None and p.inputs["n"].default is None
    assert p.outputs == ["y"]
    assert p.ir() == run_main("ir", "-e", p.text).stdout.rstrip("\n")
    assert len(p) == len(p.ir_data()["nodes"])


def finite_difference(program: cg.Program, name: str, values: dict, h: float = 1e-6) -> np.ndarray:
    x = np.array(values[name], dtype=np.float64)
    grad = np.zeros_like(x)
    for k in range(x.size):
        up, down = x.copy(), x.copy()
        up.flat[k] += h
        down.flat[k] -= h
        grad.flat[k] = (program.eval({**values, name: up}).value - program.eval({**values, name: down}).value) / (2 * h)
    return grad


def test_tensor_gradients_against_finite_differences() -> None:
    p = cg.load(MLP)
    ev = p.eval(seed=3)
    W1 = ev.inputs["W1"]
    assert isinstance(W1, np.ndarray) and W1.shape == (4, 3)
    at = {k: v for k, v in ev.inputs.items()}
    for name in ("W1", "b2", "x"):
        fd = finite_difference(p, name, at)
        np.testing.assert_allclose(ev.grad[name], fd, rtol=1e-5, atol=1e-8)
    assert p.eval(seed=3).value == ev.value != p.eval(seed=4).value  # randn() follows the seed


def test_of_and_dtype() -> None:
    p = cg.parse("u = a * b\nv = u + a\noutput v, u")
    assert p.eval(a=2, b=5).grad == {"a": 6.0, "b": 2.0}
    assert p.eval(a=2, b=5, of="u").grad == {"a": 5.0, "b": 2.0}
    ev32 = p.eval(a=0.1, b=0.2, dtype="float32")
    assert ev32.result.values[ev32.result.out].dtype == np.float32


def test_nodes_are_the_json_documents_nodes() -> None:
    ev = cg.load(MLP).eval()
    doc = json.loads(ev.to_json())
    assert len(ev.nodes) == len(doc["nodes"])
    for node, rec in zip(ev.nodes, doc["nodes"]):
        assert (node.id, node.name, node.op, list(node.shape), node.expr, node.line, node.column) == (
            rec["id"],
            rec["name"],
            rec["op"],
            rec["shape"],
            rec["expr"],
            rec["line"],
            rec["column"],
        )
        assert np.array_equal(np.asarray(node.value), np.asarray(rec["value"], dtype=np.float64))
        if rec["grad"] is None:
            assert node.grad is None
        else:
            assert np.array_equal(np.asarray(node.grad), np.asarray(rec["grad"], dtype=np.float64))


# -- the same bytes as the command line ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "program, at",
    [
        (LECTURE, ["--at", "a=-1,b=3,c=4"]),
        (MLP, ["--seed", "2"]),
        ("-e:y = log(x) * sqrt(x)", ["--at", "x=-1"]),  # non-finite numbers
    ],
)
def test_to_json_and_csv_are_the_clis(program: str, at: list[str]) -> None:
    if program.startswith("-e:"):
        args = ["-e", program[3:]]
        p = cg.parse(program[3:])
    else:
        args = [program]
        p = cg.load(program)
    values = {}
    seed = 0
    if at[0] == "--at":
        values = {k: float(v) for k, v in (kv.split("=") for kv in at[1].split(","))}
    else:
        seed = int(at[1])
    ev = p.eval(values, seed=seed)
    r = run_main("eval", *args, *at, "--format", "json")
    assert ev.to_json() + "\n" == r.stdout
    assert "\n".join(ev.warnings) + ("\n" if ev.warnings else "") == r.stderr
    assert ev.to_data() == json.loads(r.stdout)
    r = run_main("eval", *args, *at, "--format", "csv", "--all")
    assert ev.to_csv(all_nodes=True) == r.stdout


def test_explain_check_ir_render_are_the_clis(tmp_path) -> None:
    p = cg.load(LECTURE)
    assert p.explain(ABC).text == run_main("explain", LECTURE).stdout
    assert json.loads(p.explain(ABC).to_json()) == json.loads(run_main("explain", LECTURE, "-f", "json").stdout)
    report = p.check(ABC)
    assert report.to_data() == json.loads(run_main("check", LECTURE, "-f", "json").stdout)
    assert report.summary + "\n" in run_main("check", LECTURE).stdout
    assert p.ir(format="dot") == run_main("ir", LECTURE, "-f", "dot").stdout
    assert json.loads(p.ir(format="json")) == json.loads(run_main("ir", LECTURE, "-f", "json").stdout)
    dot = run_main("render", LECTURE, "-f", "dot", "-o", "-").stdout
    assert p.render(format="dot").decode("utf-8") == dot
    assert p.render(format="dot", rankdir="TB") == run_main(
        "render", LECTURE, "-f", "dot", "-o", "-", "--rankdir", "TB"
    ).stdout.encode("utf-8")
    target = p.save(tmp_path / "z.dot")
    assert target.read_text(encoding="utf-8") == dot


def test_export_is_the_clis() -> None:
    for target in ("numpy", "jax", "torch"):
        code = cg.load(MLP).export(target)
        assert code.decode("utf-8") == run_main("export", MLP, "--to", target, "-o", "-").stdout
    namespace: dict = {}
    exec(cg.load(LECTURE).export("numpy", a=1.0).decode("utf-8"), namespace)  # noqa: S102 - our own module
    assert any(callable(v) and k == "forward" for k, v in namespace.items())


def test_eval_batch_is_the_clis(tmp_path) -> None:
    points = tmp_path / "p.csv"
    points.write_text("a,b\n1,2\n-1,3\n0,0\n", encoding="utf-8")
    program = "c = 4\nz = log(a + b) * (b + c)"
    import io

    buf = io.StringIO()
    warnings = cg.parse(program).eval_batch(points, buf)
    r = run_main("eval", "-e", program, "--batch", str(points))
    assert buf.getvalue() == r.stdout
    assert warnings and "\n".join(warnings) + "\n" == r.stderr
    assert buf.getvalue().splitlines()[1].split(",")[2] == repr(math.log(3) * 6)


# -- check -----------------------------------------------------------------------------------------------------------


def test_check_rows() -> None:
    report = cg.load(MLP).check(wrt=["W2", "b2"])
    assert report.ok and bool(report)
    assert [r.entry for r in report.rows[:2]] == ["W2[0, 0]", "W2[0, 1]"]
    assert len(report.rows) == 8 + 2
    assert all(r.ok and abs(r.analytic - r.numeric) <= r.abs_error + 1e-15 for r in report.rows)
    bad = cg.parse("y = relu(a)").check(a=0)
    assert not bad.ok and bad.rows[0].analytic == 0.0 and bad.rows[0].numeric == pytest.approx(0.5)
    assert any("not differentiable" in w for w in bad.warnings)


def test_check_options_are_checked_before_work() -> None:
    p = cg.parse("y = x * x")
    with pytest.raises(cg.CgraphError, match="cannot be combined"):
        p.check(x=1, samples=3, all_entries=True)
    with pytest.raises(cg.CgraphError, match="--method: 'secant' is not one of"):
        p.check(x=1, method="secant")


# -- errors ----------------------------------------------------------------------------------------------------------


def test_errors_carry_place_hint_and_the_clis_message() -> None:
    text = "x = 1\ny = sigmod(x)"
    with pytest.raises(cg.CgraphError) as info:
        cg.parse(text)
    err = info.value
    assert (err.line, err.column) == (2, 5)
    assert str(err) == "unknown function 'sigmod'; did you mean 'sigmoid'?"
    assert err.render() + "\n" == run_main("eval", "-e", text).stderr
    with pytest.raises(cg.CgraphError) as info:
        cg.parse("z = x*y+w").eval()
    assert (info.value.line, info.value.column) == (None, None)
    assert info.value.hint == "give them with --at, for example: --at x=1,y=1,w=1"
    assert info.value.render() + "\n" == run_main("eval", "-e", "z = x*y+w").stderr


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: cg.parse("y = x").eval(x="1"), "input 'x'"),
        (lambda: cg.parse("y = x").eval(x=[[1, 2], [3]]), "rectangular"),
        (lambda: cg.parse("y = x").eval(x=True), "input 'x': booleans are not numbers here"),  # as --at-file
        (lambda: cg.parse("y = sum(x)").eval(x=np.array([1, 0], dtype=bool)), "booleans are not numbers"),
        # numpy would read these as numbers without a word (a new user's review): refused, as --at-file does
        (lambda: cg.parse("y = sum(x)").eval(x=[1.0, True, 3.0]), "input 'x': booleans are not numbers here"),
        (lambda: cg.parse("y = sum(x)").eval(x=[[1.0], [np.True_]]), "booleans are not numbers here"),
        (lambda: cg.parse("y = sum(x)").eval(x=np.array([1, 2], dtype=complex)), "holds complex numbers, not real"),
        (lambda: cg.parse("y = x").eval(x=np.array(1 + 5j)), "input 'x': the value holds complex numbers"),
        (lambda: cg.parse("y = sum(x)").eval(x=[1.0, 2j]), "input 'x': 2j in the list is not a number"),
        (lambda: cg.parse("y = sum(x)").eval(x=["1", "2"]), "input 'x': '1' in the list is not a number"),
        (lambda: cg.parse("y = sum(x)").eval(x=np.array(["1", "2"])), "input 'x': the value holds text, not real"),
        (lambda: cg.parse("y = sum(x)").eval(x=[1.0, None]), "input 'x': None in the list is not a number"),
        # ... and in object arrays, arrays inside lists, byte buffers (a review of the above)
        (lambda: cg.parse("y = sum(x)").eval(x=np.array([1, True], dtype=object)), "booleans are not numbers"),
        (lambda: cg.parse("y = sum(x)").eval(x=np.array([1, "2"], dtype=object)), "'2' in the value is not a"),
        (lambda: cg.parse("y = sum(x)").eval(x=np.array([1, None], dtype=object)), "None in the value is not a"),
        (lambda: cg.parse("y = sum(x)").eval(x=[[1.0, 2.0], np.array([True, False])]), "booleans are not numbers"),
        (lambda: cg.parse("y = sum(x)").eval(x=[1.0, np.array(True)]), "booleans are not numbers"),
        (lambda: cg.parse("y = sum(x)").eval(x=[1.0, np.datetime64("2020-01-01")]), "in the list is not a number"),
        (lambda: cg.parse("y = sum(x)").eval(x=bytearray(b"12")), "is not a number or a rectangular list"),
        (lambda: cg.parse("y = sum(x)").eval(x=memoryview(b"12")), "is not a number or a rectangular list"),
        (lambda: cg.load(LECTURE).eval(tangent={"a": [True]}), "--tangent a: booleans are not numbers"),
        (lambda: cg.load(LECTURE).eval(cotangent=True), "--cotangent: booleans are not numbers"),
        (lambda: cg.load(LECTURE).eval().vjp("1"), "--cotangent: '1' is not a number"),
        (
            lambda: cg.parse("y = sum(x)").eval(x=np.array(["2020-01-01"] * 2, dtype="datetime64[D]")),
            "input 'x': the value holds dates and times, not real numbers",
        ),
        (lambda: cg.parse("y = x").eval(x=1, seed=-1), "--seed: -1 is out of range"),
        (lambda: cg.parse("y = x").eval(x=1, dtype="int8"), "--dtype: 'int8' is not one of"),
        (lambda: cg.parse("y = x").eval(x=1, dtype=np.float16), "--dtype: 'float16' is not one of"),
        (lambda: cg.parse("y = x").eval(x=1, wrt=[]), "--wrt: no input named"),  # (as wrt="")
        (lambda: cg.load(LECTURE).eval().jacobian([]), "--wrt: no input named"),  # (it meant every input)
        (lambda: cg.load(LECTURE).eval().hessian(""), "--wrt: no input named"),
        (lambda: cg.load(LECTURE).check(wrt=[]), "--wrt: no input named"),
        (lambda: cg.parse("y = x").eval(x=1, wrt=[1]), "--wrt: 1 is not an input's name"),  # (a TypeError)
        (lambda: cg.parse("y = x").eval(x=1, wrt=[None]), "--wrt: None is not an input's name"),
        (lambda: cg.parse("y = x").eval(x=1, wrt=b"x"), "--wrt: b'x' is not an input's name"),
        (lambda: cg.parse("y = x").eval(z=1), "unknown input 'z'"),
        (lambda: cg.parse("y = x").eval(x=1, of="q"), "--of: 'q' is not a name"),
        (lambda: cg.parse("y = x").render(x=1, format="gif"), "--format: 'gif'"),
        (lambda: cg.parse("y = x").render(x=1, rankdir="RL"), "--rankdir"),
        (lambda: cg.parse("y = x").ir(format="yaml"), "--format"),
        (lambda: cg.load(str(ROOT / "no-such.cg")), "no-such.cg"),
        (lambda: cg.parse("y = x").save("picture.gif", {"x": 1}), "cannot tell the format"),
        (lambda: cg.parse("y = sum(x)").picture(x=[1, 2], max_nodes=1), "more than 1 nodes"),
    ],
)
def test_bad_calls_raise_cgraph_error_not_system_exit(call, message, capfd) -> None:
    with pytest.raises(cg.CgraphError, match=message.replace("(", r"\(").replace("[", r"\[")):
        call()
    assert capfd.readouterr() == ("", "")


def test_nothing_is_printed(capfd) -> None:
    ev = cg.parse("y = log(x)").eval(x=-1)  # the command line warns on stderr here
    assert ev.nonfinite and ev.warnings
    cg.parse("y = relu(a)").check(a=0)
    cg.load(LECTURE).explain()
    assert capfd.readouterr() == ("", "")


# -- library hygiene -------------------------------------------------------------------------------------------------

HYGIENE = r"""
import codecs, gc, signal, sys, warnings
before_modules = set(sys.modules)
state = lambda: (sys.getrecursionlimit(), gc.isenabled(), signal.getsignal(signal.SIGTERM),
                 signal.getsignal(signal.SIGINT), sys.stdout, sys.stderr, sys.stdin)
s0 = state()
import cgraph_cli as cg
heavy = ("rich", "typer", "click", "graphviz", "pygraphviz", "IPython", "ipywidgets", "numpy", "lark")
assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]
import numpy as np  # (numpy adds warning filters of its own when imported)
e0 = (np.geterr(), np.get_printoptions(), list(warnings.filters))
p = cg.parse("x = a + b\ny = b + c\nz = x * y")
ev = p.eval(a=-1, b=3, c=4)
assert ev.value == 14.0
ev.to_json(); ev.to_data(); ev.nodes; p.explain(a=-1, b=3, c=4).text; p.check(a=-1, b=3, c=4).ok
p.picture(a=1, b=2, c=3).dot()
loaded = [m for m in ("rich", "typer", "click", "pygraphviz", "IPython", "ipywidgets") if m in sys.modules]
assert not loaded, loaded
assert state() == s0, (state(), s0)
assert (np.geterr(), np.get_printoptions(), list(warnings.filters)) == e0
try:
    codecs.lookup_error("cgraph-ascii")
    raise AssertionError("the CLI's codec error handler was registered")
except LookupError:
    pass
print("ok")
"""


def test_import_and_use_leave_no_trace_and_load_no_display_library() -> None:
    r = subprocess.run([sys.executable, "-c", HYGIENE], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ok\n" and r.stderr == ""


def test_threads_evaluate_independent_programs() -> None:
    programs = [
        (cg.load(MLP), {"seed": 1}),
        (cg.load(LECTURE), {}),
        (cg.parse("y = sum(exp(x) * sin(x))"), {"x": np.linspace(-1, 1, 50)}),
        (cg.parse("def f(u) = u * u + 1\ny = f(f(a)) / f(b)"), {"a": 0.3, "b": -2.0}),
    ]

    def run(k: int) -> str:
        p, at = programs[k % len(programs)]
        at = dict(at)
        seed = at.pop("seed", 0)
        return p.eval(at, seed=seed).to_json()

    expected = [run(k) for k in range(len(programs))]
    got: dict[int, str] = {}
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for _ in range(5):
                got[k] = run(k)
                assert got[k] == expected[k % len(programs)]
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(got[k] == expected[k % len(programs)] for k in range(8))


# -- one front door: every command goes through the API --------------------------------------------------------------


@pytest.fixture
def calls(monkeypatch) -> list[str]:
    seen: list[str] = []
    for method in ("eval", "eval_batch", "explain", "check", "picture", "ir", "ir_data", "export"):
        original = getattr(api.Program, method)

        def spy(self, *a, _name=method, _original=original, **kw):
            seen.append(_name)
            return _original(self, *a, **kw)

        monkeypatch.setattr(api.Program, method, spy)
    return seen


@pytest.mark.parametrize(
    "argv, method",
    [
        (["eval", LECTURE], "eval"),
        (["eval", LECTURE, "-f", "json"], "eval"),
        (["eval", LECTURE, "-f", "csv"], "eval"),
        (["explain", LECTURE], "explain"),
        (["explain", LECTURE, "-f", "json"], "explain"),
        (["check", LECTURE], "check"),
        (["ir", LECTURE], "ir"),
        (["ir", LECTURE, "-f", "json"], "ir_data"),
        (["render", LECTURE, "-f", "dot", "-o", "-"], "picture"),
        (["export", LECTURE, "--to", "numpy", "-o", "-"], "export"),
    ],
)
def test_every_command_calls_the_api(calls, argv, method) -> None:
    r = run_main(*argv)
    assert r.returncode == 0, r.stderr
    assert calls == [method]


def test_batch_goes_through_the_api(calls, tmp_path) -> None:
    points = tmp_path / "p.csv"
    points.write_text("a\n1\n", encoding="utf-8")
    assert run_main("eval", LECTURE, "--batch", str(points)).returncode == 0
    assert calls == ["eval_batch"]


def test_dtype_may_be_numpys_spelling() -> None:
    p = cg.parse("y = x * 3")
    want = p.eval(x=0.1, dtype="float32")
    for dtype in (np.float32, np.dtype("float32")):
        ev = p.eval(x=0.1, dtype=dtype)
        assert ev.to_json() == want.to_json() and ev.value == want.value != p.eval(x=0.1).value


def test_a_list_that_holds_itself_is_refused_not_a_hang() -> None:
    looped: list = [1.0]
    looped.append(looped)
    with pytest.raises(cg.CgraphError, match="not a number or a rectangular list of numbers"):
        cg.parse("y = sum(x)").eval(x=looped)


def test_numbers_of_every_kind_are_still_numbers() -> None:
    from decimal import Decimal
    from fractions import Fraction

    p = cg.parse("y = sum(x * 2)")
    for x, want in [
        ([1, 2, Fraction(1, 2)], 7.0),
        ([Decimal("1.5"), 2], 7.0),
        (np.arange(3, dtype=np.int8), 6.0),
        (np.float32(2), 4.0),
        ([np.array(1.0), np.array(2.0)], 6.0),
        ((1, 2), 6.0),
        (np.array([1.0, 2.0], dtype=object), 6.0),
        ([np.int64(1), np.float16(2)], 6.0),
    ]:
        assert p.eval(x=x).value == want, x
