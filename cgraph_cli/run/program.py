"""The library's front door: source -> graph -> values and gradients."""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from cgraph_cli import gcpause, limits
from cgraph_cli.engine import evaluate
from cgraph_cli.engine.reference import Result
from cgraph_cli.errors import CgraphError, Source
from cgraph_cli.ir.graph import MAX_NODES, Graph, TooManyNodes, build_graph
from cgraph_cli.lang.parser import NotFast, parse_lark, statement_blocks
from cgraph_cli.run import examples
from cgraph_cli.run.values import bind_inputs

DTYPES = {"float64": np.float64, "float32": np.float32}


def load_source(file: str | None, expr: str | None) -> Source:
    """The program from ``-e``, a file, stdin (``-``), or a shipped example by name (``lecture``, where no file
    of that name exists: :func:`cgraph_cli.run.examples.resolve`).

    Read in chunks, at most ``MAX_FILE_BYTES + 1`` bytes: a file, pipe or device that goes on past the
    limit (/dev/zero, ``<(yes)``, an endless stdin) is refused without reading the rest. Line endings
    become ``\n``: ``\r\n`` and a lone ``\r`` (old Mac files) are each one line break, so the parser, line
    numbers and error excerpts all agree.
    """
    from cgraph_cli.fsutil import open_input, read_bounded, regular_size
    from cgraph_cli.limits import MAX_FILE_BYTES, check_read, check_size, check_text

    if expr is not None:
        if file not in (None, "-"):
            raise CgraphError("give either a FILE or -e/--expr, not both")
        expr = normalize_newlines(expr)
        check_text(expr, "<expr>")
        return Source(expr, "<expr>")
    if file is None:
        raise CgraphError("no program given", hint="pass a FILE, '-' for stdin, or -e 'z = x * y'")
    if file == "-":
        data = read_bounded(sys.stdin.buffer, MAX_FILE_BYTES)
        name = "<stdin>"
    else:
        file = examples.resolve(file)  # a shipped example by name (lecture), where no such file exists
        try:
            f = open_input(file, "", "a program file")
        except CgraphError as e:
            if e.hint is None and not os.path.lexists(file):
                e.hint = examples.hint_for_missing(file)
            raise
        with f:
            size = regular_size(f)
            if size is not None:
                check_size(size, file)  # a regular file over the limit is refused without reading it
            data = read_bounded(f, MAX_FILE_BYTES)
        name = file
    check_read(len(data), name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CgraphError(f"{name} is not UTF-8 text (byte {e.start} cannot be decoded)") from None
    if "\x00" in text:
        raise CgraphError(f"{name} is not a text file (it contains a NUL byte)")
    text = normalize_newlines(text)
    check_text(text, name)
    return Source(text, name)


def normalize_newlines(text: str) -> str:
    """``\r\n`` and a lone ``\r`` as ``\n``."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def compile_program(
    source: Source,
    values: dict[str, Any] | None = None,
    *,
    seed: int = 0,
    dtype: str = "float64",
    max_memory: int | None = None,
    max_nodes: int = MAX_NODES,
    use_cache: bool = True,
) -> Graph:
    """Parse and lower a program; input shapes come from ``values`` where given.

    ``max_memory`` (bytes, default 1 GiB) bounds the values the program may create; a graph of more
    than ``max_nodes`` nodes is refused with :class:`~cgraph_cli.ir.TooManyNodes` as soon as it gets
    there. A large program's graph is cached by content (see :mod:`cgraph_cli.run.cache`) unless
    ``use_cache`` is off.
    """
    key = None
    if use_cache and len(source.text) >= limits.CACHE_MIN_CHARS:  # only then is the cache module imported (start-up)
        from cgraph_cli.run import cache

        if cache.enabled(source, use_cache):
            key = cache.key(source, values, seed, f"{dtype}|{max_memory}")
            g = cache.load(key, source)
            if g is not None:
                if len(g) > max_nodes:
                    raise TooManyNodes(f"the program expands to more than {max_nodes:,} nodes")
                return g
    with gcpause.paused():  # the AST and the IR are acyclic: collections while building them are pure cost
        g = _parse_and_build(source, values, seed, DTYPES[dtype], max_memory, max_nodes)
    if key is not None:
        cache.store(key, g)
    return g


def _parse_and_build(source: Source, values, seed: int, dtype, max_memory, max_nodes: int) -> Graph:
    """Parse and lower a block of statements at a time, so that the whole program's AST never exists next to
    its graph (a program's AST takes several times the memory of its graph).

    The result is the same as parsing everything first: where the fast parser gives up, Lark parses the
    whole text and the graph is built from its statements; when building fails, the rest of the text is
    still parsed, so that a syntax error anywhere is the error reported, as it comes first.
    """

    def build(stmts) -> Graph:
        return build_graph(stmts, source, values, seed=seed, dtype=dtype, max_memory=max_memory, max_nodes=max_nodes)

    blocks = statement_blocks(source)
    try:
        return build(st for block in blocks for st in block)
    except NotFast:
        pass  # (outside the handler, the partly built graph is freed)
    except CgraphError as err:
        failed: CgraphError | None = err
        try:
            for _ in blocks:  # the rest of the text: a syntax error comes first
                pass
        except NotFast:
            failed = None
        if failed is not None:
            raise failed from None
    del blocks
    return build(parse_lark(source))


def pick_output(g: Graph, of: str | None) -> int:
    if of is None:
        return g.output
    if of not in g.bindings:
        names = ", ".join(sorted(g.bindings))
        from cgraph_cli.errors import did_you_mean

        raise CgraphError(f"--of: '{of}' is not a name in the program{did_you_mean(of, g.bindings)} (names: {names})")
    return g.bindings[of]


def run(
    source: Source,
    given: dict[str, Any],
    *,
    of: str | None = None,
    seed: int = 0,
    dtype: str = "float64",
    max_memory: int | None = None,
    max_nodes: int = MAX_NODES,
    use_cache: bool = True,
    wrt: list[str] | None = None,
    graph: Graph | None = None,
) -> Result:
    """Compile, bind inputs, run forward and backward passes (``wrt``: the inputs to differentiate, default
    every input not declared data; checked before the input values; ``graph``: the program compiled already)."""
    g = (
        graph
        if graph is not None
        else compile_program(
            source, given, seed=seed, dtype=dtype, max_memory=max_memory, max_nodes=max_nodes, use_cache=use_cache
        )
    )
    names = None if wrt is None else g.grad_inputs(wrt)
    inputs = bind_inputs(g, given)
    out = pick_output(g, of)
    return evaluate(g, inputs, out, wrt=names)
