"""The front end keeps its exit codes whatever happens around it (issue 9).

Bad seeds, standard output that is full or closed, standard error that is closed or full, terminals
that cannot show Unicode, odd COLUMNS, non-finite numbers in JSON, bad ``check`` tolerances, and
``check`` on large tensors (sampled by default). These run the real executable with real file
descriptors: ``stdout=subprocess.DEVNULL`` is an open file, not a closed one, so the shell closes them.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import CGRAPH, EXAMPLES, run_cli, run_on_pty

pytestmark = pytest.mark.slow  # the quick loop (make test-fast) leaves this file out

EXE = [str(CGRAPH)] if CGRAPH.exists() else [sys.executable, "-m", "cgraph_cli"]
LECTURE = str(EXAMPLES / "lecture.cg")
AT = "a=-1,b=3,c=4"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CGRAPH_CACHE_DIR", str(tmp_path_factory.mktemp("ir-cache")))


def shell(args: list[str], redirect: str, env: dict | None = None, timeout: float = 120):
    """Run cgraph through ``sh -c`` with a redirection such as ``>&-`` or ``>/dev/full``."""
    e = dict(os.environ)
    e.pop("CGRAPH_DEBUG", None)
    e.update(env or {})
    cmd = " ".join(shlex.quote(a) for a in EXE + args) + " " + redirect
    return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, env=e, timeout=timeout)


def strict_json(text: str):
    def refuse(token):
        raise AssertionError(f"bare {token} in JSON output")

    return json.loads(text, parse_constant=refuse)


BOTH_PATHS = [{}, {"CGRAPH_NO_FASTPATH": "1"}]
PATH_IDS = ["fast", "typer"]

# -- 11: --seed -1 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["eval", LECTURE, "--at", AT],
        ["eval", LECTURE, "--at", AT, "--format", "json"],
        ["eval", LECTURE, "--at", AT, "--format", "csv"],
        ["ir", LECTURE],
        ["check", LECTURE, "--at", AT],
        ["explain", LECTURE, "--at", AT],
        ["render", LECTURE, "--at", AT, "--format", "dot", "-o", "OUT"],
    ],
    ids=lambda a: " ".join(a[:1] + a[-2:]),
)
@pytest.mark.parametrize("seed", ["-1", "--seed=-7"])
def test_negative_seed_is_a_usage_error(args, seed, tmp_path):
    args = [str(tmp_path / "g.dot") if a == "OUT" else a for a in args]
    extra = ["--seed", "-1"] if seed == "-1" else [seed]
    for env in BOTH_PATHS:
        r = run_cli(*args, *extra, env=env)
        assert r.returncode == 2, (env, r.stderr)
        assert r.stderr.startswith("error:") and "--seed" in r.stderr, r.stderr
        assert "internal error" not in r.stderr and "Traceback" not in r.stderr
        assert r.stdout == ""
    assert not (tmp_path / "g.dot").exists()


def test_large_seed_still_works():
    r = run_cli("eval", "-e", "y = sum(randn(3) * a)", "--at", "a=1", "--seed", str(2**40), "--format", "json")
    assert r.returncode == 0, r.stderr


# -- 11: standard output full or closed -------------------------------------------------------

OUTPUT_COMMANDS = [
    ["eval", LECTURE, "--at", AT, "--format", "json"],
    ["eval", LECTURE, "--at", AT, "--format", "csv"],
    ["eval", LECTURE, "--at", AT],
    ["ir", LECTURE],
    ["ir", LECTURE, "--format", "json"],
    ["explain", LECTURE, "--at", AT],
    ["explain", LECTURE, "--at", AT, "--format", "json"],
    ["check", LECTURE, "--at", AT],
    ["check", LECTURE, "--at", AT, "--format", "json"],
    ["--help"],
    ["eval", "--help"],
    ["--version"],
]
OUT_IDS = [" ".join(a[:1] + a[-2:]) for a in OUTPUT_COMMANDS]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("env", BOTH_PATHS, ids=PATH_IDS)
@pytest.mark.parametrize("args", OUTPUT_COMMANDS, ids=OUT_IDS)
def test_stdout_full_is_a_clear_error(args, env):
    r = shell(args, ">/dev/full", env)
    assert r.returncode == 2, r.stderr
    assert r.stderr == "error: cannot write to standard output: No space left on device\n", r.stderr


@pytest.mark.parametrize("env", BOTH_PATHS, ids=PATH_IDS)
@pytest.mark.parametrize("args", OUTPUT_COMMANDS, ids=OUT_IDS)
def test_stdout_closed_is_a_clear_error(args, env):
    r = shell(args, ">&-", env)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: cannot write to standard output: "), r.stderr
    assert r.stderr.count("\n") == 1 and "internal" not in r.stderr


def test_closed_stdout_does_not_stop_a_render_to_a_file(tmp_path):
    out = tmp_path / "g.dot"
    r = shell(["render", LECTURE, "--at", AT, "--format", "dot", "-o", str(out)], ">&-")
    if r.returncode == 2:  # render reports where it wrote: then the closed stdout is the error
        assert r.stderr.startswith("error: cannot write to standard output"), r.stderr
    else:
        assert r.returncode == 0, r.stderr
        assert out.read_text().startswith(("digraph", "strict digraph"))


def test_closed_stdin_reads_as_empty(tmp_path):
    r = shell(["eval", "-", "--format", "json"], "<&-")
    assert r.returncode == 2 and r.stderr.startswith("error:") and "internal" not in r.stderr, r.stderr


# -- 11: encodings that cannot show ∂, ₁, box characters ------------------------------------


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
@pytest.mark.parametrize(
    "args",
    [
        ["eval", "-e", "s = a * b\ns = s + a", "--at", "a=2,b=3"],
        ["eval", "-e", "s = a * b\ns = s + a", "--at", "a=2,b=3", "--format", "json"],
        ["eval", "-e", "s = a * b\ns = s + a", "--at", "a=2,b=3", "--format", "csv"],
        ["explain", LECTURE, "--at", AT],
        ["explain", LECTURE, "--at", AT, "--format", "json"],
        ["check", LECTURE, "--at", AT],
        ["check", LECTURE, "--at", AT, "--format", "json"],
        ["ir", LECTURE],
        ["eval", "--help"],
    ],
    ids=lambda a: " ".join(a[:1] + a[-2:]),
)
def test_narrow_encodings_print_readably(args, encoding):
    if "--help" in args and encoding == "ascii":
        pytest.skip("click takes an ASCII stdout for a misconfigured locale and writes UTF-8 help on purpose")
    for env in BOTH_PATHS:
        e = dict(env, PYTHONIOENCODING=encoding)
        r = subprocess.run(
            EXE + args, capture_output=True, env={**os.environ, **e}, timeout=120
        )  # bytes: what the terminal gets
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        out = r.stdout.decode(encoding)  # encodable by construction
        assert out.strip()
        if "--format" in args and args[args.index("--format") + 1] == "json":
            strict_json(out)  # still JSON, with the same data
        assert "\\u2202" not in out or "json" in args  # readable fallbacks, not escapes, in text


def test_ascii_table_uses_readable_fallbacks():
    r = run_cli("eval", "-e", "s = a * b\ns = s + a", "--at", "a=2,b=3", env={"PYTHONIOENCODING": "ascii"})
    assert r.returncode == 0, r.stderr
    assert "ds/dnode" in r.stdout or "ds_2/dnode" in r.stdout, r.stdout
    assert "s_1" in r.stdout and "s_2" in r.stdout, r.stdout


def test_explain_json_keeps_its_text_under_ascii():
    utf = run_cli("explain", LECTURE, "--at", AT, "--format", "json")
    asc = run_cli("explain", LECTURE, "--at", AT, "--format", "json", env={"PYTHONIOENCODING": "ascii"})
    assert asc.returncode == 0 and strict_json(asc.stdout) == strict_json(utf.stdout)


# -- 12: standard error closed or full ---------------------------------------------------------


@pytest.mark.parametrize("redirect", ["2>&-", "2>/dev/full"])
@pytest.mark.parametrize("env", BOTH_PATHS, ids=PATH_IDS)
@pytest.mark.parametrize(
    "args, code",
    [
        (["eval", "-e", "y = a +", "--at", "a=1", "--format", "json"], 2),  # syntax error
        (["eval", "-e", "y = a +", "--at", "a=1"], 2),
        (["eval", "-e", "y = log(a)", "--at", "a=-1", "--format", "json"], 0),  # a warning alone
        (["eval", "-e", "y = log(a)", "--at", "a=-1"], 0),
        (["eval", "-e", "y = log(a)", "--at", "a=-1", "--format", "csv", "--strict"], 1),
        (["eval", LECTURE, "--at", AT, "--format", "csv"], 0),
        (["check", "-e", "y = relu(a)", "--at", "a=1"], 0),
        (["check", "-e", "y = abs(a)", "--at", "a=0"], 0),  # a kink warning, and passes (0 == 0)
        (["explain", "-e", "y = log(a)", "--at", "a=-1"], 0),
        (["ir", "-e", "y = a +"], 2),
        (["eval", "--bogus"], 2),
    ],
    ids=lambda v: " ".join(v[:1] + v[-2:]) if isinstance(v, list) else str(v),
)
def test_stderr_trouble_keeps_exit_codes(args, code, env, redirect):
    if redirect.endswith("/dev/full") and not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    r = shell(args, redirect, env)
    assert r.returncode == code, (r.stdout, r.stderr)


# -- 13: strict JSON everywhere ----------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["ir", "-e", "z = a * 1e400", "--format", "json"],
        ["ir", "-e", "z = sum(a * [1e400, -1e400, 1])", "--format", "json"],
        ["eval", "-e", "z = a * 1e400", "--at", "a=1", "--format", "json"],
        ["explain", "-e", "z = a * 1e400", "--at", "a=1", "--format", "json"],
        ["explain", "-e", "z = log(a) * 0", "--at", "a=-1", "--format", "json"],
        ["check", "-e", "z = a * 1e400", "--at", "a=1", "--format", "json"],
        ["check", "-e", "z = log(a)", "--at", "a=-1", "--format", "json"],
    ],
    ids=lambda a: " ".join(a[:3]),
)
def test_json_outputs_have_no_bare_nonfinite_tokens(args):
    r = run_cli(*args)
    assert r.returncode in (0, 1), r.stderr
    assert "internal error" not in r.stderr
    strict_json(r.stdout)


def test_ir_json_nonfinite_constants_are_strings():
    r = run_cli("ir", "-e", "z = sum(a * [1e400, -1e400, 1])", "--format", "json")
    doc = strict_json(r.stdout)
    values = [n["attrs"]["value"] for n in doc["nodes"] if "value" in n["attrs"]]
    assert ["Infinity", "-Infinity", 1.0] in values, values


# -- 19: COLUMNS ---------------------------------------------------------------------------


@pytest.mark.parametrize("columns", ["0", "-5", "abc", "3", ""])
def test_odd_columns_still_print_the_table(columns):
    r = run_cli("eval", LECTURE, "--at", AT, env={"COLUMNS": columns})
    assert r.returncode == 0, r.stderr
    for name in ("a", "x", "z"):
        assert f" {name} " in r.stdout, r.stdout
    widest = max(len(line) for line in r.stdout.splitlines())
    assert "14" in r.stdout and "∂z/∂node" in r.stdout  # every row's value and gradient
    # 3 is taken as 40 (never narrower), where the table leaves out a column or two to keep its numbers whole
    assert widest <= 40 if columns == "3" else widest >= 40, r.stdout


def test_check_table_with_columns_0():
    r = run_cli("check", LECTURE, "--at", AT, env={"COLUMNS": "0"})
    assert r.returncode == 0 and "pass" in r.stdout, r.stdout


# -- 20: check's options -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "opt, value, needle",
    [
        ("--rtol", "nan", "--rtol"),
        ("--rtol", "inf", "--rtol"),
        ("--rtol", "-1", "--rtol"),
        ("--atol", "nan", "--atol"),
        ("--atol", "inf", "--atol"),
        ("--atol", "-1e-3", "--atol"),
        ("--eps", "inf", "--eps"),
        ("--eps", "nan", "--eps"),
        ("--eps", "-1e-6", "--eps"),
        ("--eps", "0", "--eps"),
        ("--samples", "0", "--samples"),
        ("--samples", "-3", "--samples"),
    ],
)
def test_check_bad_options_exit_2(opt, value, needle):
    r = run_cli("check", LECTURE, "--at", AT, f"{opt}={value}")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("error:") and needle in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert r.stdout == ""


def test_check_samples_and_all_entries_conflict():
    r = run_cli("check", LECTURE, "--at", AT, "--samples", "3", "--all-entries")
    assert r.returncode == 2 and "cannot be combined" in r.stderr, r.stderr


# -- 8: check samples large inputs by default ------------------------------------------------


@pytest.fixture
def big_input(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, x=np.linspace(-1, 1, 100_000))
    return p


def test_check_samples_a_large_input_by_default(big_input):
    r = run_cli("check", "-e", "y = sum(sin(x))", "--at-file", str(big_input), "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = strict_json(r.stdout)
    x = doc["inputs"][0]
    assert x["size"] == 100_000 and x["checked"] == 1000 and x["sampled"] is True
    assert len(x["entries"]) == 1000
    assert doc["sampled"] is True and doc["checked"] == 1000 and doc["size"] == 100_000
    assert "note: x has 100000 entries: checked 1000 chosen at random (--seed 0)" in r.stderr, r.stderr
    assert "--all-entries" in r.stderr
    # the table says so too, and nothing but the note reaches a piped stderr (no progress bar)
    t = run_cli("check", "-e", "y = sum(sin(x))", "--at-file", str(big_input), "--seed", "4")
    assert t.returncode == 0, t.stderr
    assert "1000 of 100000 entries (sampled) of x (100000,)" in t.stdout
    assert t.stderr.splitlines()[0].startswith("note: x has 100000 entries: checked 1000 chosen at random (--seed 4)")
    assert "\r" not in t.stderr and "\x1b" not in t.stderr


def test_check_small_inputs_are_not_sampled(tmp_path):
    r = run_cli("check", "-e", "y = sum(sin(x))", "--at", "x=" + str([0.1 * k for k in range(50)]), "-f", "json")
    doc = strict_json(r.stdout)
    assert doc["sampled"] is False and doc["checked"] == 50 and r.stderr == ""


def test_check_all_entries_checks_everything(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, x=np.linspace(-1, 1, 1500))
    r = run_cli("check", "-e", "y = sum(sin(x))", "--at-file", str(p), "--all-entries", "-f", "json")
    assert r.returncode == 0, r.stderr
    doc = strict_json(r.stdout)
    assert doc["sampled"] is False and doc["checked"] == 1500 and "note:" not in r.stderr
    # explicit --samples: sampled as asked, no note needed
    r = run_cli("check", "-e", "y = sum(sin(x))", "--at-file", str(p), "--samples", "7", "-f", "json")
    doc = strict_json(r.stdout)
    assert doc["sampled"] is True and doc["checked"] == 7 and "note:" not in r.stderr


def test_check_shows_progress_on_a_terminal(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, x=np.linspace(-1, 1, 3000))
    code, out, seen = run_on_pty(["check", "-e", "y = sum(sin(x))", "--at-file", str(p), "--format", "json"])
    assert code == 0
    assert strict_json(out.decode())["checked"] == 1000
    assert b"checking" in seen, seen


def test_non_ascii_arguments_under_the_c_locale_are_read_as_utf8():
    """LC_ALL=C without UTF-8 mode: Python decodes the arguments as ASCII and keeps the other bytes as surrogates
    (θ arrives as '\\udcce\\udcb8'); cgraph reads them as the UTF-8 they are, in the program and in --at."""
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "LANG": "C"}
    env.pop("PYTHONIOENCODING", None)
    for extra in BOTH_PATHS:
        r = subprocess.run(
            [*EXE, "eval", "-e", "ŷ = θ * 2", "--at", "θ=1.5", "--format", "json"],
            capture_output=True,
            env={**env, **extra},
            timeout=120,
        )
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        doc = strict_json(r.stdout.decode("ascii"))
        assert doc["value"] == 3.0 and doc["gradients"] == {"θ": 2.0}


def test_a_non_ascii_file_name_under_the_c_locale_opens(tmp_path):
    """Paths stay the bytes the OS gave (only program text and names are read as UTF-8): a file named θ.cg opens
    under LC_ALL=C, and its program's names are read too."""
    (tmp_path / "θ.cg").write_text("ŷ = θ * 2\n", encoding="utf-8")
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "LANG": "C"}
    env.pop("PYTHONIOENCODING", None)
    for extra in BOTH_PATHS:
        for at in (["--at", "θ=2"], ["--at=θ=2"]):
            r = subprocess.run(
                [*EXE, "eval", "θ.cg", *at, "--format", "json"], capture_output=True, env={**env, **extra}, cwd=tmp_path
            )
            assert r.returncode == 0, r.stderr.decode(errors="replace")
            assert strict_json(r.stdout.decode("ascii"))["value"] == 4.0
