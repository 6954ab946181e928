"""One front door: the options every command shares, read once into a :class:`Request`.

``cgraph eval``, ``render``, ``check``, ``explain`` and ``ir`` (and the start-up fast path of
``eval --format json|csv``) all take the same program options: ``FILE``/``-e``, ``--at``,
``--at-file``, ``--of``, ``--seed``, ``--dtype``, ``--max-memory`` and ``--no-cache``.  Their names,
defaults, help and validation are written once, in :data:`COMMON_OPTIONS`; the Typer declarations
(``commands/common.py``) and the fast parser (``fastpath.py``) are both made from that table, so they
cannot drift.  What a command line says is an :class:`Options` value; :meth:`Options.build` does the
set-up once (validate the seed and dtype, read the memory limit, load the program under its size
limits, read the input values under the memory limit) and gives a :class:`Request`, which compiles and
runs the program.

Nothing here prints or knows about Typer: the Python API builds a :class:`Request` the same way.
numpy and the compiler are imported only when a request is built, so that the option table can be read
(``cgraph --version``, ``--help``, parsing) without loading them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from cgraph_cli.errors import CgraphError, Source
from cgraph_cli.limits import DEFAULT_MAX_MEMORY, parse_size

if TYPE_CHECKING:
    import numpy as np

    from cgraph_cli.engine.reference import Result
    from cgraph_cli.ir.graph import Graph


@dataclass(frozen=True)
class OptionSpec:
    """One command-line option: its names, default, help text and the rule its value must follow.

    ``kind`` is ``"text"`` (one string), ``"texts"`` (repeatable), ``"int"`` or ``"flag"``. ``flags`` is
    empty for the positional ``FILE`` argument. ``minimum`` (for ints) and ``choices`` (for text) are the
    checks; an option Typer converts (ints) is refused by Typer with its own words on the command line,
    and by :meth:`check` for callers of the library.
    """

    key: str
    flags: tuple[str, ...]
    kind: str
    default: Any
    metavar: str | None
    help: str
    minimum: int | None = None
    choices: tuple[str, ...] = ()
    show_default: bool = True

    @property
    def name(self) -> str:
        """The name used in messages: the long flag (``--seed``), or ``FILE``."""
        return next((f for f in self.flags if f.startswith("--")), "FILE")

    def check(self, value: Any) -> None:
        """Refuse a value that breaks this option's rule (:class:`CgraphError`, exit 2)."""
        if self.choices:
            check_choice(value, self.choices, self.name)
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise CgraphError(f"{self.name}: {value!r} is not an integer")
            if self.minimum is not None and value < self.minimum:
                raise CgraphError(f"{self.name}: {value} is out of range ({self.minimum} or more)")


def check_choice(value: str, choices: tuple[str, ...], option: str) -> str:
    """``value`` if it is one of ``choices``, else the one refusal every command words the same way."""
    if value not in choices:
        raise CgraphError(f"{option}: '{value}' is not one of: {', '.join(choices)}")
    return value


DTYPES = ("float64", "float32")

COMMON_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("file", (), "text", None, "FILE|-", "Program file, or '-' for stdin.", show_default=False),
    OptionSpec(
        "expr", ("-e", "--expr"), "text", None, "PROGRAM", "The program inline, e.g. -e 'z = (a + b) * (b + c)'."
    ),
    OptionSpec(
        "at",
        ("--at",),
        "texts",
        None,
        "NAME=VALUE,...",
        "Input values: name=value pairs, e.g. --at a=-1,b=3 --at x=[1,2,3]. Repeatable.",
    ),
    OptionSpec("at_file", ("--at-file",), "text", None, "FILE", "Input values from a JSON object or a .npz file."),
    OptionSpec("of", ("--of",), "text", None, "NAME", "The output to differentiate (default: the first output)."),
    OptionSpec("seed", ("--seed",), "int", 0, "N", "Seed for randn()/rand() in the program (0 or more).", minimum=0),
    OptionSpec(
        "dtype", ("--dtype",), "text", "float64", "float64|float32", "Number type: float64 or float32.", choices=DTYPES
    ),
    OptionSpec(
        "max_memory",
        ("--max-memory",),
        "text",
        None,
        "SIZE",
        "Refuse programs whose values would take more than SIZE (default 1G; e.g. 512M, 4G).",
        show_default=False,
    ),
    OptionSpec("no_cache", ("--no-cache",), "flag", False, None, "Do not read or write the compiled-program cache."),
)
OPTION: dict[str, OptionSpec] = {o.key: o for o in COMMON_OPTIONS}

MODES = ("reverse", "forward")
DERIVATIVE_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "mode",
        ("--mode",),
        "text",
        None,
        "reverse|forward",
        "reverse (the default: ∂out/∂node for every node) or forward (every node's tangent along --tangent).",
        choices=MODES,
        show_default=False,
    ),
    OptionSpec(
        "tangent",
        ("--tangent",),
        "texts",
        None,
        "NAME=VALUE,...",
        "Forward mode's direction: each input's tangent, e.g. --tangent a=1,b=0 or x=[1,0,0] (default: 1 for"
        " the first input, 0 for the others). Repeatable.",
    ),
    OptionSpec(
        "cotangent",
        ("--cotangent",),
        "text",
        None,
        "VALUE",
        "Reverse mode from this cotangent v (a number, or a tensor of the output's shape): every node's"
        ' vᵀ·∂out/∂node. Also read from --at-file under the key "cotangent".',
    ),
    OptionSpec(
        "jacobian",
        ("--jacobian",),
        "flag",
        False,
        None,
        "The Jacobian of the output (any shape) with respect to every input, by forward or reverse passes,"
        " whichever takes fewer.",
    ),
)
"""How to differentiate (:mod:`cgraph_cli.run.derivatives`): ``eval`` takes them all, ``explain`` the first two."""

WATCH_OPTION = OptionSpec(
    "watch",
    ("--watch",),
    "flag",
    False,
    None,
    "Run again whenever FILE (or --at-file) is saved: render draws again, eval and explain redraw their view;"
    " an error is shown and the watch goes on; Ctrl-C ends it (exit 0).",
)
"""``--watch`` of ``eval``, ``render`` and ``explain`` (:mod:`cgraph_cli.cli.watch`)."""


def _default(key: str) -> Any:
    return OPTION[key].default


@dataclass(frozen=True)
class Options:
    """The common options as a command line gives them (text, nothing read yet).

    Field names and defaults are those of :data:`COMMON_OPTIONS`; ``at`` is kept as a tuple in the order
    given (``--at`` overrides ``--at-file``; a name given twice in ``--at`` is refused when the values are read).
    """

    file: str | None = _default("file")
    expr: str | None = _default("expr")
    at: Sequence[str] = ()
    at_file: str | None = _default("at_file")
    of: str | None = _default("of")
    seed: int = _default("seed")
    dtype: str = _default("dtype")
    max_memory: str | int | None = _default("max_memory")
    no_cache: bool = _default("no_cache")

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", tuple(self.at or ()))

    def build(self, *, max_nodes: int | None = None) -> Request:
        """Check the options, load the program and its input values: the one set-up of every command.

        In this order: ``--seed`` and ``--dtype`` against their rules, ``--max-memory`` read as a size,
        the program (FILE, ``-`` or ``-e``) read under the program-size limits, then ``--at-file`` (under
        the memory limit) and ``--at`` on top of it. ``max_nodes`` (default: the IR builder's cap) is the
        command's node limit, such as ``render --max-nodes``.
        """
        from cgraph_cli.run.program import load_source  # numpy and the compiler: only once a request is built
        from cgraph_cli.run.values import gather_values

        OPTION["seed"].check(self.seed)
        OPTION["dtype"].check(self.dtype)
        limit = parse_size(self.max_memory)
        source = load_source(self.file, self.expr)
        values = gather_values(list(self.at), self.at_file, limit)
        return Request(
            source=source,
            values=values,
            of=self.of,
            seed=self.seed,
            dtype=self.dtype,
            max_memory=limit,
            max_nodes=max_nodes,
            use_cache=not self.no_cache,
        )


def build_request(
    file: str | None = None,
    expr: str | None = None,
    *,
    at: Sequence[str] | None = None,
    at_file: str | None = None,
    of: str | None = None,
    seed: int = _default("seed"),
    dtype: str = _default("dtype"),
    max_memory: str | int | None = _default("max_memory"),
    no_cache: bool = _default("no_cache"),
    max_nodes: int | None = None,
) -> Request:
    """A :class:`Request` from the common options' values (see :meth:`Options.build`); ``max_memory`` may
    be a size such as ``"512M"`` or a number of bytes."""
    opts = Options(file, expr, tuple(at or ()), at_file, of, seed, dtype, max_memory, no_cache)
    return opts.build(max_nodes=max_nodes)


@dataclass(frozen=True, eq=False)
class Request:
    """A program with everything needed to run it: the one value every command works from.

    ``values`` are the given inputs (read-only; inputs not given take their declared defaults);
    ``max_memory`` is in bytes; ``max_nodes`` None means the IR builder's default cap. Two requests are
    equal when every field is, input arrays compared by shape, dtype and entries (NaN equal to NaN).
    """

    source: Source
    values: Mapping[str, np.ndarray] = field(default_factory=dict)
    of: str | None = None
    seed: int = 0
    dtype: str = "float64"
    max_memory: int = DEFAULT_MAX_MEMORY
    max_nodes: int | None = None
    use_cache: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        import numpy as np

        same = all(
            getattr(self, f.name) == getattr(other, f.name) for f in fields(self) if f.name not in ("values", "source")
        )
        if not same or (self.source.text, self.source.filename) != (other.source.text, other.source.filename):
            return False
        if list(self.values) != list(other.values):
            return False
        return all(
            np.shape(a) == np.shape(b)
            and np.asarray(a).dtype == np.asarray(b).dtype
            and np.array_equal(a, b, equal_nan=True)
            for a, b in ((self.values[k], other.values[k]) for k in self.values)
        )

    __hash__ = None  # type: ignore[assignment]

    def _settings(self) -> dict[str, Any]:
        from cgraph_cli.ir.graph import MAX_NODES

        return {
            "seed": self.seed,
            "dtype": self.dtype,
            "max_memory": self.max_memory,
            "max_nodes": MAX_NODES if self.max_nodes is None else self.max_nodes,
            "use_cache": self.use_cache,
        }

    def compile(self) -> Graph:
        """The program's graph (parsed and lowered; cached by content unless ``use_cache`` is off).

        Raises :class:`~cgraph_cli.ir.TooManyNodes` past ``max_nodes`` and :class:`CgraphError` for a
        program error or one whose values would pass ``max_memory``."""
        from cgraph_cli.run.program import compile_program

        return compile_program(self.source, dict(self.values), **self._settings())

    def output(self, g: Graph) -> int:
        """The node ``--of`` names (did-you-mean for an unknown name), else the program's first output."""
        from cgraph_cli.run.program import pick_output

        return pick_output(g, self.of)

    def inputs(self, g: Graph, *, require: bool = True) -> dict[str, np.ndarray]:
        """Every input's value (given, else its default); unknown names are refused, and with ``require``
        missing values too."""
        from cgraph_cli.run.values import bind_inputs

        return bind_inputs(g, dict(self.values), require=require)

    def run(self, wrt: Sequence[str] | None = None, compiler: Callable[[Request], Graph] | None = None) -> Result:
        """Compile, bind the inputs, and run the forward and backward passes for the output (``wrt``: only the
        gradients of these inputs; default every input not declared ``input data``; ``compiler``: gives the
        request's graph, instead of compiling it here)."""
        from cgraph_cli.run.program import run

        names = None if wrt is None else list(wrt)
        graph = None if compiler is None else compiler(self)
        return run(self.source, dict(self.values), of=self.of, wrt=names, graph=graph, **self._settings())
