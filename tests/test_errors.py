"""Every error path through the real command line: exit code, one `error:` message, no traceback.

Most tests call the real entry point ``cgraph_cli.cli.entry.main`` in-process (the same
Typer app and the same single error path as the installed command, at a fraction
of a subprocess's start-up cost); the ones marked ``subprocess`` run the
installed `cgraph` executable (tests/conftest.py) to prove the two agree.
"""

from __future__ import annotations

import io
import json
import os
import re

import numpy as np
import pytest

from tests.conftest import run_cli as run_subprocess
from tests.conftest import run_inproc as run_main

run_cli = run_main


def fails(*args: str, input: str | None = None, code: int = 2, cwd=None, runner=run_main) -> str:
    """Run cgraph expecting failure; returns stderr after the common checks."""
    r = runner(*args, input=input, cwd=cwd)
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    assert r.stderr.startswith("error: "), r.stderr
    assert sum(line.startswith("error:") for line in r.stderr.splitlines()) == 1, r.stderr
    assert r.stdout == "", r.stdout
    return r.stderr


def caret_under(stderr: str, text: str) -> None:
    """The message shows `text`'s line and a caret starting under the first occurrence of `text`."""
    lines = stderr.splitlines()
    for k, line in enumerate(lines[:-1]):
        m = re.match(r"\s*\d+ \| (.*)$", line)
        if m and text in m.group(1):
            caret = lines[k + 1]
            bar = line.index("| ") + 2
            col = line.index(text, bar)
            assert caret[col] == "^", f"caret not under {text!r}:\n{stderr}"
            return
    raise AssertionError(f"no source line containing {text!r}:\n{stderr}")


# -- syntax errors ------------------------------------------------------------------------------


def test_syntax_error_in_a_file(tmp_path):
    p = tmp_path / "bad.cg"
    p.write_text("# a program\nx = a + b\ny = x * (b + \nz = y\n")
    err = fails("eval", str(p))
    first = err.splitlines()[0]
    assert re.match(rf"error: {re.escape(str(p))}:3:\d+: syntax error", first), err
    assert "expected" in first
    assert "  3 | y = x * (b + " in err
    assert "^" in err


@pytest.mark.parametrize(
    "src,where,expected",
    [
        ("y = (a + b", "1:5", "'(' is never closed; expected ')'"),  # the text ends inside the bracket
        ("y = a $ b", "1:7", "expected"),
        ("y = a +", "1:8", "a name or a number"),
        ("y = = 2", "1:5", "expected"),
        ("x = 1\ny = 2 3", "2:7", "expected"),
        ("y = f(1,,2)", "1:9", "expected"),
        ("input 3", "1:7", "a name"),
        ("def (u) = u", "1:5", "a name"),
        ("y = [1, 2", "1:5", "'[' is never closed; expected ']'"),
        ("y = x[1:2:3:4]", "1:12", "expected"),
        ("y = 1 @@ 2", "1:8", "expected"),
        ("y = 2 ^ * 3", "1:9", "expected"),
    ],
)
def test_syntax_errors_point_at_the_spot(src, where, expected):
    err = fails("eval", "-e", src)
    first = err.splitlines()[0]
    assert first.startswith(f"error: <expr>:{where}: syntax error"), err
    assert expected in first, err
    line_no, col = map(int, where.split(":"))
    shown = [ln for ln in err.splitlines() if re.match(rf"\s*{line_no} \| ", ln)]
    assert shown, err
    caret = err.splitlines()[err.splitlines().index(shown[0]) + 1]
    bar = shown[0].index("| ") + 2
    assert caret.index("^") == bar + col - 1, err


def test_syntax_error_lists_only_what_can_follow():
    # LALR's merged states would also offer ')' and ',' after `y = 3` at the top level
    first = fails("eval", "-e", "y = 3 4").splitlines()[0]
    assert "end of statement" in first and "'^'" in first
    assert "')'" not in first and "','" not in first and "..." not in first
    first = fails("eval", "-e", "y = x[1:2:3:4]").splitlines()[0]
    assert first.endswith("expected ',' or ']'")


# -- names, functions, arity ---------------------------------------------------------------------


def test_unknown_function_suggests_the_closest():
    err = fails("eval", "-e", "y = sigmod(x)", "--at", "x=1")
    assert "unknown function 'sigmod'" in err and "did you mean 'sigmoid'" in err
    assert err.startswith("error: <expr>:1:5:")
    caret_under(err, "sigmod")


@pytest.mark.parametrize(
    "src,needle",
    [
        ("y = expp(x)", "'exp'"),
        ("y = sofmax(x)", "'softmax'"),
        ("y = tanhh(x)", "'tanh'"),
        ("y = logsumexpp(x)", "'logsumexp'"),
    ],
)
def test_unknown_function_suggestions(src, needle):
    err = fails("eval", "-e", src, "--at", "x=1")
    assert "did you mean " + needle in err


def test_unknown_name_inside_def_suggests_a_parameter():
    err = fails("eval", "-e", "def f(alpha) = alpa * 2\ny = f(1)")
    assert "unknown name 'alpa'" in err and "'alpha'" in err
    caret_under(err, "alpa *")


@pytest.mark.parametrize(
    "src,needle",
    [
        ("y = exp(a, b)", "exp() takes 1 argument, got 2"),
        ("y = exp()", "exp() takes 1 argument, got 0"),
        ("y = pow(a)", "pow() takes 2 arguments, got 1"),
        ("y = max()", "max() takes at least 1 argument, got 0"),
        ("y = sum(a, 0, 1)", "sum() takes 1 to 2 arguments, got 3"),
        ("y = softmax()", "softmax() takes 1 to 2 arguments, got 0"),
        ("y = dot(a)", "dot() takes 2 arguments, got 1"),
        ("y = reshape(a)", "reshape() takes at least 2 arguments, got 1"),
        ("y = eye(2, 3)", "eye() takes 1 argument, got 2"),
        ("def f(u, v) = u\ny = f(a)", "f() takes 2 arguments, got 1"),
        ("y = sin(a=1)", "hint: sin() takes no keyword arguments: give its arguments in order, without names"),
    ],
)
def test_wrong_arity(src, needle):
    err = fails("eval", "-e", src, *(["--at", "a=1,b=2"] if "b)" in src else (["--at", "a=1"] if "a" in src else [])))
    assert needle in err
    assert re.match(r"error: <expr>:\d+:\d+: ", err)


def _arity_cases():
    from cgraph_cli.ops import CONSTRUCTORS, FUNCTIONS, arity_bounds

    cases = []
    for name in sorted(FUNCTIONS):
        least, most = arity_bounds(name)
        if least > 0:
            cases.append((name, least - 1))
        if most is not None:
            cases.append((name, most + 1))
    cases.append(("eye", 0))
    cases.append(("eye", 2))
    assert {n for n, _ in cases} >= set(FUNCTIONS) - {"max", "min", "reshape"} | set(CONSTRUCTORS) - {
        "zeros",
        "ones",
        "randn",
        "rand",
    }
    return cases


@pytest.mark.parametrize("fname,n", _arity_cases())
def test_every_builtin_checks_its_arity(fname, n):
    """Generated from the function table: one argument too few and one too many."""
    args = ", ".join(["1"] * n)
    err = fails("eval", "-e", f"y = {fname}({args})")
    assert re.search(rf"{fname}\(\) takes .*argument.*, got {n}", err), err
    caret_under(err, f"{fname}(")


def test_pow_takes_two_arguments():
    # Python's pow(a, b, m) is modular; a fold would be ambiguous: refuse a third argument
    assert "pow() takes 2 arguments, got 3" in fails("eval", "-e", "y = pow(2, 3, 2)")


def test_recursion_is_an_error():
    err = fails("eval", "-e", "def f(u) = f(u) + 1\ny = f(2)")
    assert "recursion" in err
    caret_under(err, "f(u) + 1")


def test_assigning_to_a_declared_input():
    err = fails("eval", "-e", "input a = 1\na = 2\ny = a")
    assert "cannot assign to 'a'" in err and err.startswith("error: <expr>:2:1:")


def test_static_arguments_must_be_constants():
    err = fails("eval", "-e", "y = sum(x, a)", "--at", "x=[1,2],a=0")
    assert "whole-number constant" in err
    err = fails("eval", "-e", "y = x[a]", "--at", "x=[1,2],a=0")
    assert "whole-number constant" in err


# -- shapes, reported at their source before anything runs -----------------------------------


@pytest.mark.parametrize(
    "src,at,spot,needle",
    [
        ("u = x * 2\ny = sum(x + w)", "x=[1,2,3],w=[1,2]", "x + w", "cannot be broadcast"),
        ("y = sum(A @ v)", "A=[[1,2],[3,4]],v=[1,2,3]", "A @ v", "inner dimensions"),
        ("y = sum(x[5])", "x=[1,2,3]", "5]", "index 5 is out of range"),
        ("y = sum(reshape(x, 2, 2))", "x=[1,2,3]", "reshape", "reshape"),
        ("y = sum(x, 2)", "x=[1,2,3]", "sum(x, 2)", "axis 2"),
        ("y = sum([x, w])", "x=[1,2,3],w=[1,2]", "[x, w]", "different shapes"),
        ("y = sum(softmax(x, 3))", "x=[1,2,3]", "softmax", "axis"),
    ],
)
def test_shape_mismatch_at_its_source(src, at, spot, needle):
    # log(-1) after the error would warn if anything ran: nothing does
    err = fails("eval", "-e", src + "\nq = log(-1)", "--at", at)
    assert needle in err, err
    assert re.match(r"error: <expr>:\d+:\d+: ", err)
    caret_under(err, spot)
    assert "warning" not in err


def test_ragged_tensor_literal():
    err = fails("eval", "-e", "y = sum([[1, 2], [3]])")
    assert "different" in err
    caret_under(err, "[[1, 2]")


def test_nonscalar_output_suggests_sum():
    err = fails("eval", "-e", "y = x * 2", "--at", "x=[1,2]")
    assert "shape (2,)" in err and "sum(y)" in err
    caret_under(err, "x * 2")


def test_declared_shape_mismatch():
    err = fails("eval", "-e", "input x[3]\ny = sum(x)", "--at", "x=[1,2]")
    assert "(3,)" in err and "(2,)" in err and "'x'" in err


# -- inputs -------------------------------------------------------------------------------------


def test_missing_inputs_are_all_listed_at_once():
    err = fails("eval", "-e", "input b = 1\ny = a * b * c + d")
    first = err.splitlines()[0]
    assert "missing" in first
    for name in ("a", "c", "d"):
        assert re.search(rf"\b{name}\b", first), err
    assert not re.search(r"\bb\b", first)
    assert "--at" in err


def test_unknown_at_input_lists_the_real_inputs():
    err = fails("eval", "-e", "y = alpha * beta", "--at", "alpha=1,beta=2,gamma=3")
    assert "'gamma'" in err and "alpha, beta" in err
    err = fails("eval", "-e", "y = alpha * beta", "--at", "alpah=1,beta=2")
    assert "did you mean 'alpha'" in err


@pytest.mark.parametrize(
    "at,needle",
    [
        ("a=[1,2", "unbalanced"),
        ("a=[1,2]]", "unbalanced"),
        ("a=[[1,2],[3]]", "different lengths"),
        ("a=foo", "cannot read a number"),
        ("a=", "missing value"),
        ("a", "name=value"),
        ("1a=1", "not a valid input name"),
        ("a=1 2", "expected ','"),
        ("a=[1,,2]", "unexpected ','"),
    ],
)
def test_bad_at(at, needle):
    err = fails("eval", "-e", "y = sum(a)", "--at", at)
    assert "--at" in err and needle in err, err


def test_at_values_accept_numbers_in_every_form():
    r = run_cli("eval", "-e", "y = sum(a) + b + c", "--at", "a=[1e-3, -.5, 2E+2],b=-pi,c=1.", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert np.isclose(json.loads(r.stdout)["value"], 1e-3 - 0.5 + 200 - np.pi + 1)


def test_at_file_json_and_npz(tmp_path):
    j = tmp_path / "v.json"
    j.write_text('{"a": 2, "x": [1, 2, 3]}')
    z = tmp_path / "v.npz"
    np.savez(z, a=np.array(2.0), x=np.array([1.0, 2.0, 3.0]))
    for f in (j, z):
        r = run_cli("eval", "-e", "y = a * sum(x)", "--at-file", str(f), "--at", "a=3", "--format", "json")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["value"] == 18.0  # --at wins over --at-file
        assert doc["gradients"] == {"a": 6.0, "x": [3.0, 3.0, 3.0]}


def test_at_file_reads_back_the_non_finite_numbers_cgraph_writes(tmp_path):
    """Strict JSON has no NaN or infinity: cgraph writes "NaN", "Infinity" and "-Infinity", and --at-file reads
    those strings back as the numbers (eval's --format json inputs fed back in)."""
    out = run_cli("eval", "-e", "y = a + sum(x)", "--at", "a=nan,x=[1,inf,-inf]", "--format", "json")
    inputs = json.loads(out.stdout)["inputs"]
    assert inputs == {"a": "NaN", "x": [1.0, "Infinity", "-Infinity"]}
    p = tmp_path / "v.json"
    p.write_text(json.dumps(inputs))
    back = run_cli("eval", "-e", "y = a + sum(x)", "--at-file", str(p), "--format", "json")
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["inputs"] == inputs


@pytest.mark.parametrize(
    "name,content,needle",
    [
        ("bad.json", '{"a": 2, ', "invalid JSON"),
        ("list.json", "[1, 2]", "JSON object"),
        ("str.json", '{"a": "hi"}', "not a number"),
        ("ragged.json", '{"a": [[1, 2], [3]]}', "not a number or a rectangular list"),
        ("key.json", '{"1a": 1}', "not a valid input name"),
        ("twice.json", '{"a": 1, "a": 2}', "input 'a' is given twice"),  # as --at a=1 --at a=2
        ("same.json", '{"a": 1, "\\uff41": 2}', "input 'a' is given twice"),  # ａ is a, as the program reads it
        ("nan.json", '{"a": "nan"}', "is a string, not a number"),  # only the spellings cgraph writes
        ("inner.json", '{"a": [1, "inf"]}', "holds a string at a[1], not a number"),
    ],
)
def test_bad_at_file_json(tmp_path, name, content, needle):
    p = tmp_path / name
    p.write_text(content)
    err = fails("eval", "-e", "y = sum(a)", "--at-file", str(p))
    assert "--at-file" in err and needle in err


def test_at_file_nested_too_deeply(tmp_path):
    p = tmp_path / "deep.json"
    p.write_text('{"a": ' + "[" * 100_000 + "1" + "]" * 100_000 + "}")
    err = fails("eval", "-e", "y = sum(a)", "--at-file", str(p))
    assert "--at-file" in err and "nested too deeply" in err and "program" not in err


def test_at_file_npz_with_objects_is_refused(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, a=np.array([{"p": 1}], dtype=object))
    err = fails("eval", "-e", "y = a", "--at-file", str(p))
    assert "--at-file" in err and ("Object arrays" in err or "pickle" in err)
    marker = tmp_path / "pwned"
    # a pickled payload inside the archive is never executed
    import pickle
    import zipfile

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    q = tmp_path / "evil.npz"
    with zipfile.ZipFile(q, "w") as zf:
        buf = io.BytesIO()
        pickle.dump(Evil(), buf)
        zf.writestr("a.npy", buf.getvalue())
    fails("eval", "-e", "y = a", "--at-file", str(q))
    assert not marker.exists()


def test_at_file_not_an_archive(tmp_path):
    p = tmp_path / "junk.npz"
    p.write_text("garbage")
    err = fails("eval", "-e", "y = a", "--at-file", str(p))
    assert "--at-file" in err and "junk.npz" in err
    assert "not a .npz archive" in err and "pickle" not in err  # never invites unsafe loading


def test_at_file_missing_or_folder(tmp_path):
    err = fails("eval", "-e", "y = a", "--at-file", str(tmp_path / "none.json"))
    assert "no such file" in err
    err = fails("eval", "-e", "y = a", "--at-file", str(tmp_path))
    assert "--at-file" in err


# -- the program file -------------------------------------------------------------------------


def test_missing_file(tmp_path):
    err = fails("eval", str(tmp_path / "nope.cg"))
    assert "no such file" in err and "nope.cg" in err


def test_folder_instead_of_file(tmp_path):
    err = fails("eval", str(tmp_path))
    assert "folder" in err


@pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="needs Linux /proc")
def test_unreadable_file_even_for_root():
    err = fails("eval", "/proc/self/mem", runner=run_subprocess)  # reading it fails with EIO
    assert "cannot read /proc/self/mem" in err


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path):
    p = tmp_path / "secret.cg"
    p.write_text("y = 1")
    p.chmod(0)
    try:
        err = fails("eval", str(p))
        assert "cannot read" in err
    finally:
        p.chmod(0o644)


def test_non_utf8_file(tmp_path):
    p = tmp_path / "latin.cg"
    p.write_bytes(b"y = 1 # caf\xe9\n")
    err = fails("eval", str(p))
    assert "UTF-8" in err and "latin.cg" in err


def test_binary_file(tmp_path):
    p = tmp_path / "bin.cg"
    p.write_bytes(b"y = 1\x00\x00")
    assert "NUL" in fails("eval", str(p))


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", ";;;"])
def test_empty_program(tmp_path, text):
    p = tmp_path / "empty.cg"
    p.write_text(text)
    assert "empty" in fails("eval", str(p))
    assert "empty" in fails("eval", "-e", text)
    assert "empty" in fails("eval", "-", input=text)


def test_file_and_expr_together(tmp_path):
    p = tmp_path / "p.cg"
    p.write_text("y = 1")
    assert "not both" in fails("eval", str(p), "-e", "y = 2")


# -- usage errors: exit 2, never a traceback --------------------------------------------------


@pytest.mark.parametrize(
    "args,needle",
    [
        (("eval",), "no program"),
        (("eval", "-e", "y = 1", "--format", "xml"), "--format"),
        (("eval", "-e", "y = 1", "--dtype", "float16"), "--dtype"),
        (("eval", "-e", "y = 1", "--bogus"), "--bogus"),
        (("eval", "-e", "y = 1", "--seed", "abc"), "--seed"),
        (("eval", "-e", "y = x", "--at", "x=1", "--of", "q"), "'q'"),
        (("eval", "-e", "y = 1", "--at"), "--at"),
        (("frobnicate",), "frobnicate"),
    ],
)
def test_usage_errors(args, needle):
    err = fails(*args)
    assert needle in err


def test_of_suggests_a_name():
    err = fails("eval", "-e", "total = x * 2\ny = total + 1", "--at", "x=1", "--of", "totl")
    assert "did you mean 'total'" in err


# -- non-finite values: a warning, or exit 1 under --strict -------------------------------------


def test_nonfinite_warns_and_strict_exits_1():
    src = "input x = -1\nu = x * 2\ny = log(x) + u"
    ok = run_cli("eval", "-e", src, "--format", "json")
    assert ok.returncode == 0
    assert json.loads(ok.stdout, parse_constant=_no_constants)["value"] == "NaN"
    assert ok.stderr.startswith("warning: <expr>:3:5:"), ok.stderr
    assert "log" in ok.stderr and "forward" in ok.stderr and "Traceback" not in ok.stderr
    assert "  3 | y = log(x) + u" in ok.stderr
    strict = run_cli("eval", "-e", src, "--format", "json", "--strict")
    assert strict.returncode == 1
    assert strict.stderr == ok.stderr
    assert strict.stdout == ok.stdout  # the results are still printed


def test_nonfinite_gradient_only():
    src = "y = sqrt(x)"
    r = run_cli("eval", "-e", src, "--at", "x=0", "--strict")
    assert r.returncode == 1
    assert "warning:" in r.stderr and "backward" in r.stderr and "gradient" in r.stderr
    r = run_cli("eval", "-e", src, "--at", "x=4", "--strict")
    assert r.returncode == 0 and r.stderr == ""


def _no_constants(name):
    raise ValueError(f"non-standard JSON constant {name}")


# -- dtype ------------------------------------------------------------------------------------


def test_dtype_float32():
    r32 = run_cli("eval", "-e", "y = x / 3", "--at", "x=1", "--dtype", "float32", "--format", "json")
    r64 = run_cli("eval", "-e", "y = x / 3", "--at", "x=1", "--format", "json")
    assert r32.returncode == 0 and r64.returncode == 0
    v32 = json.loads(r32.stdout)["value"]
    v64 = json.loads(r64.stdout)["value"]
    third32 = np.float32(1) / np.float32(3)
    assert v32 == float(str(third32)) and v32 != v64  # the float32's shortest text (0.33333334), which reads back
    assert np.float32(v32) == third32
    assert v64 == 1 / 3
    g32 = json.loads(r32.stdout)["gradients"]["x"]
    assert g32 == float(str(third32))


# -- stdin and -e -------------------------------------------------------------------------------


def test_stdin_errors_name_stdin():
    err = fails("eval", "-", input="y = (1 +\n")
    assert err.startswith("error: <stdin>:1:")


def test_internal_details_hidden_without_debug():
    # CGRAPH_DEBUG unset: no traceback even for errors deep in the builder
    err = fails("eval", "-e", "y = sum(zeros(100000, 100000, 100000))")
    assert "limit" in err or "memory" in err


# -- the installed executable agrees with the in-process entry point ----------------------------


@pytest.mark.parametrize(
    "args,input,code",
    [
        (("eval", "-e", "y = (a + b"), None, 2),
        (("eval", "-e", "y = sigmod(x)", "--at", "x=1"), None, 2),
        (("eval", "-e", "y = a * b * c"), None, 2),
        (("eval", "-e", "y = a", "--at", "a=[1,2"), None, 2),
        (("eval", "-e", "y = a", "--at", "a=1,q=2"), None, 2),
        (("eval", "-e", "y = x * 2", "--at", "x=[1,2]"), None, 2),
        (("eval", "-e", "y = 1", "--bogus"), None, 2),
        (("eval", "-e", "y = 1", "--format", "xml"), None, 2),
        (("eval", "-"), "y = 2 *\n", 2),
        (("eval", "-"), "", 2),
        (("eval", "/nonexistent/p.cg"), None, 2),
        (("eval", "-e", "y = log(x)", "--at", "x=-1", "--strict", "--format", "json"), None, 1),
    ],
)
def test_real_executable_error_paths(args, input, code):
    real = run_subprocess(*args, input=input)
    assert real.returncode == code, real.stderr
    assert "Traceback" not in real.stderr
    first = real.stderr.splitlines()[0]
    assert first.startswith("error: " if code == 2 else "warning: "), real.stderr
    inproc = run_main(*args, input=input)
    assert (inproc.returncode, inproc.stdout, inproc.stderr) == (real.returncode, real.stdout, real.stderr)


def test_real_executable_non_utf8_file(tmp_path):
    p = tmp_path / "latin.cg"
    p.write_bytes(b"y = 1 # caf\xe9\n")
    err = fails("eval", str(p), runner=run_subprocess)
    assert "UTF-8" in err
