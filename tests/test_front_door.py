"""One front door: every command reads the common options (FILE/-e, --at, --at-file, --of, --seed, --dtype,
--max-memory, --no-cache) through the one table and builds the same :class:`~cgraph_cli.run.request.Request`,
so an option means the same in eval, render, check, explain and ir, and on eval's fast path."""

from __future__ import annotations

import numpy as np
import pytest

from cgraph_cli.cli.fastpath import EVAL_OPTIONS, parse_eval_args
from cgraph_cli.run.request import COMMON_OPTIONS, OPTION, Options, Request, build_request
from tests.conftest import EXAMPLES
from tests.conftest import run_inproc as run_main

LECTURE = str(EXAMPLES / "lecture.cg")
COMMANDS = ("eval", "render", "check", "explain", "ir")
WITH_OF = ("eval", "render", "check", "explain")  # ir prints the whole graph: it has no --of


def extra(command: str, tmp_path) -> list[str]:
    """What a command needs besides the common options to run without side effects."""
    return ["-f", "dot", "-o", str(tmp_path / "g.dot")] if command == "render" else []


@pytest.fixture
def built(monkeypatch) -> list[Request]:
    """The requests that commands build during a test (through Options.build, the one builder)."""
    seen: list[Request] = []
    original = Options.build

    def spy(self: Options, **kw) -> Request:
        req = original(self, **kw)
        seen.append(req)
        return req

    monkeypatch.setattr(Options, "build", spy)
    return seen


@pytest.fixture
def big_npz(tmp_path) -> str:
    path = tmp_path / "big.npz"
    np.savez(path, x=np.zeros(1000))
    return str(path)


def test_max_memory_refuses_a_large_at_file_in_every_command(tmp_path, big_npz) -> None:
    errors = {}
    for command in COMMANDS:
        r = run_main(command, "-e", "y = sum(x)", "--at-file", big_npz, "--max-memory", "2K", *extra(command, tmp_path))
        assert r.returncode == 2, (command, r.stderr)
        assert r.stdout == ""
        errors[command] = r.stderr
    assert not (tmp_path / "g.dot").exists()  # render drew nothing
    assert len(set(errors.values())) == 1, errors
    assert errors["render"] == (
        f"error: --at-file: the arrays in {big_npz} take 7.94 KiB, more than the memory limit of 2 KiB\n"
        "hint: raise the limit with --max-memory\n"
    )


def test_the_same_at_file_passes_under_a_larger_limit(tmp_path, big_npz) -> None:
    for command in COMMANDS:
        r = run_main(command, "-e", "y = sum(x)", "--at-file", big_npz, "--max-memory", "1M", *extra(command, tmp_path))
        assert r.returncode == 0, (command, r.stderr)


def test_an_unreadable_max_memory_is_refused_alike(tmp_path) -> None:
    errors = {
        c: run_main(c, "-e", "y = x", "--at", "x=1", "--max-memory", "12Q", *extra(c, tmp_path)) for c in COMMANDS
    }
    assert {r.returncode for r in errors.values()} == {2}
    assert len({r.stderr for r in errors.values()}) == 1
    assert errors["ir"].stderr.startswith("error: --max-memory: cannot read '12Q' as a size")


def test_a_negative_seed_is_refused_alike(tmp_path) -> None:
    for command in COMMANDS:
        r = run_main(command, "-e", "y = x", "--at", "x=1", "--seed", "-1", *extra(command, tmp_path))
        assert r.returncode == 2, command
        first, hint = r.stderr.splitlines()
        assert first == "error: Invalid value for '--seed': Input should be greater than or equal to 0"
        assert hint == f"hint: see 'cgraph {command} --help'"


def test_an_unknown_of_gets_the_same_did_you_mean(tmp_path) -> None:
    errors = {c: run_main(c, "-e", "y = x", "--at", "x=1", "--of", "yy", *extra(c, tmp_path)) for c in WITH_OF}
    assert {r.returncode for r in errors.values()} == {2}
    assert {r.stderr for r in errors.values()} == {
        "error: --of: 'yy' is not a name in the program; did you mean 'y'? (names: x, y)\n"
    }


def test_a_repeated_at_name_is_refused_alike_everywhere(tmp_path, built) -> None:
    errors = {}
    for command in COMMANDS:
        r = run_main(command, "-e", "y = x * x", "--at", "x=1", "--at", "x=2", *extra(command, tmp_path))
        assert r.returncode == 2, (command, r.stderr)
        assert r.stdout == ""
        errors[command] = r.stderr
    assert set(errors.values()) == {
        "error: --at: x is given twice (x=1 and x=2)\nhint: give each input once: drop one of the x= values\n"
    }
    assert built == []  # refused while reading the options, before any work
    assert not (tmp_path / "g.dot").exists()


def test_every_command_builds_the_same_request_from_the_same_common_options(tmp_path, built) -> None:
    common = ["-e", "y = x * k", "--at", "k=3", "--at", "x=[1,2]", "--seed", "4", "--max-memory", "64M"]
    for command in COMMANDS:
        r = run_main(command, *common, *extra(command, tmp_path))
        assert r.returncode in (0, 2), (command, r.stderr)  # a tensor output: eval/check/explain say so
    assert len(built) == len(COMMANDS)
    want = build_request(expr="y = x * k", at=["k=3", "x=[1,2]"], seed=4, max_memory="64M")
    for command, req in zip(COMMANDS, built):
        node_cap = {"render": 1000, "explain": 10_000}.get(command)
        assert req.max_nodes == node_cap, command
        assert Request(req.source, req.values, req.of, req.seed, req.dtype, req.max_memory, None, req.use_cache) == want


FAST_ARGVS = [
    ["eval", "-e", "x^2", "--at", "x=3", "--format", "json"],
    ["eval", LECTURE, "--format=json", "--at=a=2", "--at", "b=1,c=0.5", "--of", "x"],
    ["eval", "--format", "csv", "--all", LECTURE, "--dtype", "float32", "--seed", "3", "--no-cache"],
    ["eval", "-f", "csv", "-e", "y = x * k", "--at", "x=1", "--at", "k=2", "--max-memory", "2M"],
    ["eval", "-f", "json", "-e", "y = sum(x)", "--at-file", "NPZ", "--max-memory", "1M"],
    ["eval", LECTURE, "--batch", "BATCH"],
]


@pytest.mark.parametrize("argv", FAST_ARGVS, ids=[" ".join(a)[:50] for a in FAST_ARGVS])
def test_fast_path_and_typer_build_equal_requests(argv, tmp_path, built) -> None:
    npz = tmp_path / "v.npz"
    np.savez(npz, x=np.arange(5.0))
    pts = tmp_path / "p.csv"
    pts.write_text("a,b\n1,2\n")
    argv = [str(npz) if a == "NPZ" else str(pts) if a == "BATCH" else a for a in argv]
    assert parse_eval_args(argv) is not None  # the fast path takes it
    fast = run_main(*argv)
    slow = run_main(*argv, env={"CGRAPH_NO_FASTPATH": "1"})
    assert fast.returncode == 0, fast.stderr
    assert (fast.stdout, fast.stderr, fast.returncode) == (slow.stdout, slow.stderr, slow.returncode)
    assert len(built) == 2
    assert built[0] == built[1]


def test_requests_compare_their_values() -> None:
    a = build_request(expr="y = x", at=["x=[1,nan]"])
    assert a == build_request(expr="y = x", at=["x=[1,nan]"])
    assert a != build_request(expr="y = x", at=["x=[1,2]"])
    assert a != build_request(expr="y = x", at=["x=[1,nan]"], seed=1)
    with pytest.raises(TypeError):
        a.values["x"] = np.zeros(2)  # read-only


def test_the_builder_checks_options_for_library_callers() -> None:
    from cgraph_cli.errors import CgraphError

    with pytest.raises(CgraphError, match=r"--seed: -1 is out of range \(0 or more\)"):
        build_request(expr="y = x", seed=-1)
    with pytest.raises(CgraphError, match="--dtype: 'float16' is not one of: float64, float32"):
        build_request(expr="y = x", dtype="float16")
    req = build_request(expr="y = x * 2", at=["x=3"], max_memory=1 << 20)
    assert req.max_memory == 1 << 20
    result = req.run()
    assert float(result.values[result.out]) == 6.0


def _click_params(command: str) -> dict[str, object]:
    import typer.main

    from cgraph_cli.cli.entry import app

    group = typer.main.get_command(app)
    return {p.name: p for p in group.commands[command].params}  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", COMMANDS)
def test_typer_declarations_come_from_the_option_table(command) -> None:
    params = _click_params(command)
    specs = COMMON_OPTIONS + (EVAL_OPTIONS if command == "eval" else ())
    declared = [s for s in specs if s.key in params]
    assert {s.key for s in declared} >= {"file", "expr", "at", "at_file", "seed", "max_memory"}
    for spec in declared:
        p = params[spec.key]
        assert tuple(p.opts) == spec.flags or (not spec.flags and p.opts == [spec.key]), spec.key
        assert p.default == spec.default, spec.key
        if spec.flags:
            assert p.help == spec.help, spec.key
        if spec.minimum is not None:
            assert p.min == spec.minimum  # type: ignore[attr-defined]


def test_the_table_names_every_option_of_the_fast_parser() -> None:
    flags = [f for s in COMMON_OPTIONS + EVAL_OPTIONS for f in s.flags]
    assert len(flags) == len(set(flags))
    assert OPTION["dtype"].choices == ("float64", "float32")
    from cgraph_cli.run.program import DTYPES

    assert tuple(DTYPES) == OPTION["dtype"].choices  # the compiler knows every dtype the option allows
