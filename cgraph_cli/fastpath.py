"""A start-up fast path for the commonest scripted call, ``cgraph eval ... --format json|csv``.

Importing Typer (and through it click, rich and pydantic pieces) costs more than numpy itself, and a
script that asks for one value and its gradient pays it on every call.  :func:`parse_eval_args`
recognises an ``eval`` command line made only of options it knows, with values it can check exactly as
Typer would; :func:`run_eval` then does what ``commands/eval_cmd.eval_command`` does.  Anything else
(``--help``, an unknown or malformed option, the table format, a value Typer would reject) returns None
and the ordinary Typer path handles it, errors included.  ``cli.main`` wraps both in the same error
handling, and tests/test_fastpath.py checks that both paths give the same stdout, stderr and exit code.
``CGRAPH_NO_FASTPATH=1`` turns it off.
"""

from __future__ import annotations

import os
import sys
from typing import Any

_VALUE_OPTS = {
    "-e": "expr",
    "--expr": "expr",
    "--at": "at",
    "--at-file": "at_file",
    "--of": "of",
    "--format": "fmt",
    "-f": "fmt",
    "--batch": "batch",
    "--seed": "seed",
    "--dtype": "dtype",
    "--max-memory": "max_memory",
}
_FLAGS = {"--all": "all_nodes", "--strict": "strict", "--no-cache": "no_cache"}


def parse_eval_args(argv: list[str]) -> dict[str, Any] | None:
    """The options of a plain ``eval ... --format json|csv`` call, or None to leave it to Typer."""
    if os.environ.get("CGRAPH_NO_FASTPATH") or not argv or argv[0] != "eval":
        return None
    opts: dict[str, Any] = {
        "file": None,
        "expr": None,
        "at": [],
        "at_file": None,
        "of": None,
        "fmt": "table",
        "batch": None,
        "seed": "0",
        "dtype": "float64",
        "max_memory": None,
        "all_nodes": False,
        "strict": False,
        "no_cache": False,
    }
    args = argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        if a in _FLAGS:
            opts[_FLAGS[a]] = True
            i += 1
            continue
        name = a
        value: str | None = None
        if a.startswith("--") and "=" in a:
            name, value = a.split("=", 1)
        if name in _VALUE_OPTS:
            if value is None:
                if i + 1 >= len(args):
                    return None
                value = args[i + 1]
                i += 1
            if value.startswith("-") and value != "-" and not _numberish(value):
                return None  # click's handling of option-like values is Typer's business
            key = _VALUE_OPTS[name]
            if key == "at":
                opts["at"].append(value)
            else:
                opts[key] = value
            i += 1
            continue
        if a.startswith("-") and a != "-":
            return None  # --help, -h, --, unknown options, combined short flags
        if opts["file"] is not None:
            return None  # a second positional: Typer's usage error
        opts["file"] = a
        i += 1
    if opts["fmt"] not in ("json", "csv") and opts["batch"] is None:
        return None
    try:
        opts["seed"] = int(opts["seed"])
    except ValueError:
        return None
    if opts["seed"] < 0:
        return None  # Typer's range check words the error
    opts["at"] = opts["at"] or None
    return opts


def _numberish(text: str) -> bool:
    try:
        float(text.split("=", 1)[-1].split(",", 1)[0])
        return True
    except ValueError:
        return False


def run_eval(opts: dict[str, Any]) -> int:
    """The one implementation of ``cgraph eval`` (Typer's command calls it too); returns the exit code."""
    from cgraph_cli.errors import CgraphError, OutputClosed
    from cgraph_cli.limits import parse_size
    from cgraph_cli.program import load_source, run
    from cgraph_cli.values import gather_values

    def check_choice(value: str, choices: tuple[str, ...], option: str) -> None:
        if value not in choices:
            raise CgraphError(f"{option}: '{value}' is not one of: {', '.join(choices)}")

    check_choice(opts["fmt"], ("table", "json", "csv"), "--format")
    check_choice(opts["dtype"], ("float64", "float32"), "--dtype")
    if opts["batch"] is not None and (opts["fmt"] == "json" or opts["all_nodes"]):
        raise CgraphError(
            "--batch writes CSV (one row per point); it cannot be combined with "
            + ("--format json" if opts["fmt"] == "json" else "--all")
        )
    limit = parse_size(opts["max_memory"])
    source = load_source(opts["file"], opts["expr"])
    values = gather_values(opts["at"], opts["at_file"], limit)
    common = dict(of=opts["of"], seed=opts["seed"], dtype=opts["dtype"], max_memory=limit)
    if opts["batch"] is not None:
        from cgraph_cli.batch import run_batch

        return run_batch(source, opts["batch"], values, use_cache=not opts["no_cache"], strict=opts["strict"], **common)
    result = run(source, values, use_cache=not opts["no_cache"], **common)
    from cgraph_cli import present

    try:
        if opts["fmt"] == "table":  # only through Typer (parse_eval_args leaves tables to it)
            from cgraph_cli.commands.common import print_rich

            print_rich(present.to_table(result, opts["all_nodes"]))
        elif opts["fmt"] == "json":  # written as it is formatted: memory bounded by a few chunks
            present.write_json(result, sys.stdout)
            sys.stdout.write("\n")
        else:
            present.write_csv(result, sys.stdout, opts["all_nodes"])
    except BrokenPipeError:
        raise OutputClosed() from None
    for w in present.nonfinite_warnings(result):
        try:
            sys.stderr.write(w.rstrip("\n") + "\n")
        except (OSError, ValueError, AttributeError):  # a lost warning must not change the exit code
            pass
    if opts["strict"] and result.nonfinite:
        return 1
    return 0
