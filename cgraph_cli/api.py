"""cgraph from Python: a small typed API that the command line itself is built on.

>>> import cgraph_cli as cg
>>> program = cg.parse("x = a + b\\ny = b + c\\nz = x * y")
>>> ev = program.eval(a=-1, b=3, c=4)
>>> ev.value, ev.grad
(14.0, {'a': 7.0, 'b': 9.0, 'c': 2.0})

:func:`parse` and :func:`load` give a :class:`Program`; its methods run the program the way the commands
do: :meth:`Program.eval` (``cgraph eval``) gives an :class:`Evaluation`, :meth:`Program.explain` an
:class:`Explanation`, :meth:`Program.check` a :class:`CheckReport`, :meth:`Program.render` the picture's
bytes and :meth:`Program.ir` the IR listing. Errors are :class:`CgraphError` with the command line's
message (``.line``, ``.column``, ``.hint``); nothing here prints, exits or changes global state.

Every ``cgraph`` command goes through this module: a command reads its options into a
:class:`~cgraph_cli.run.request.Options`, makes a Program of it (:meth:`Program.from_options`) and calls
the method of its name; what it prints is made from what the method returns. Input values are given as
keywords (``a=-1``), as a mapping (``program.eval({"a": -1})``, for names such as ``seed``) or, on the
command line, with ``--at``; inputs not given take their declared defaults.

In a notebook, programs, evaluations and the stepped backward pass display themselves
(:mod:`cgraph_cli.notebook`).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal, Mapping, Sequence, TextIO, Union

import numpy as np

from cgraph_cli.engine.reference import Result
from cgraph_cli.errors import CgraphError, Source
from cgraph_cli.present import tables
from cgraph_cli.present.canvas import Look, check_font_size, parse_canvas
from cgraph_cli.present.style import THEMES
from cgraph_cli.progress import Progress
from cgraph_cli.run import examples as shipped_examples
from cgraph_cli.run.request import OPTION, Options, Request, check_choice
from cgraph_cli.run.values import real_array

if TYPE_CHECKING:
    from cgraph_cli.analysis.check import CheckReport as _Report
    from cgraph_cli.analysis.explain import Explanation as _Explanation
    from cgraph_cli.ir.graph import Graph
    from cgraph_cli.present.dot import GraphPicture

__all__ = [
    "CgraphError",
    "CheckReport",
    "CheckRow",
    "Evaluation",
    "Explanation",
    "Frame",
    "Input",
    "Node",
    "Picture",
    "Program",
    "Steps",
    "examples",
    "load",
    "parse",
]

Value = Union[float, np.ndarray]
"""A value or gradient: a float for a scalar, else a numpy array."""
Format = Literal["png", "svg", "pdf", "dot", "html"]
Mode = Literal["reverse", "forward"]
"""How to differentiate: reverse mode (gradients, the default) or forward mode (tangents along a direction)."""
PICTURE_FORMATS = ("png", "svg", "pdf", "dot", "html")
RENDER_MAX_NODES = 1000  # render's --max-nodes default: a larger picture is unreadable
RENDER_TIMEOUT = 30.0
SMALL_TEXT = 6.0  # points on the slide: a drawing scaled down to fit a canvas below this gets a note
EXPLAIN_MAX_STEPS = 10_000
KEEP_GRAPHS = 4  # eval's graphs a Program keeps (by input shapes and settings: Program._graph)


def _py(v: Any) -> Value:
    """A value as the API hands it out: a float for a scalar (0-d), else the array itself."""
    a = np.asarray(v)
    return float(a) if a.ndim == 0 else a


def _input_value(name: str, v: Any) -> np.ndarray:
    """A Python value given for an input as a float64 array (:func:`cgraph_cli.run.values.real_array`)."""
    return real_array(v, f"input {name!r}")


def _dtype_name(dtype: Any) -> Any:
    """``dtype`` as its name: numpy's spellings (``np.float32``, ``np.dtype("float32")``) read as ``"float32"``;
    anything else is left for the option's check to refuse."""
    if isinstance(dtype, str):
        return dtype
    try:
        return np.dtype(dtype).name
    except TypeError:
        return dtype


def _frozen(g: Graph) -> Graph:
    """``g`` with its constants' and inputs' default values read-only (views of them are then read-only too)."""
    for at in g.attrs:
        value = at.get("value") if at else None
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    for value in g.defaults.values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return g


def _merge(base: Mapping[str, Any], values: Mapping[str, Any] | None, inputs: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = dict(base)
    for given in (values or {}, inputs):
        for name, v in given.items():
            merged[name] = _input_value(str(name), v)
    return merged


# -- the program ---------------------------------------------------------------------------------------------------


def _wrt_names(wrt: str | Sequence[str]) -> list[str]:
    """``wrt`` as a list of names: ``"W1, b1"`` (the command line's ``--wrt W1,b1``) or a sequence of names."""
    names = [w.strip() for w in wrt.split(",") if w.strip()] if isinstance(wrt, str) else list(wrt)
    if not names:  # (an empty list too: it would differentiate nothing, or everything, without a word)
        raise CgraphError("--wrt: no input named", hint="for example: --wrt W1,b1")
    odd = [wrt] if isinstance(wrt, (bytes, bytearray)) else [w for w in names if not isinstance(w, str)]
    if odd:
        raise CgraphError(f"--wrt: {odd[0]!r} is not an input's name")
    return names


def _name_warnings(g: Graph) -> list[str]:
    """A warning per name that mixes alphabets confusably (:func:`cgraph_cli.lang.scripts.name_warnings`)."""
    if all(map(str.isascii, g.bindings)):  # the common case: nothing more to import
        return []
    from cgraph_cli.lang.scripts import name_warnings

    return name_warnings(g.bindings, g.source)


@dataclass(frozen=True)
class Input:
    """One input of a program: its name, declared shape (None when it comes from the value), default value.

    >>> cg.parse("input x = [1, 2], n\\ny = sum(x) * n").inputs["x"]
    Input(name='x', shape=(2,), default=array([1., 2.]))
    """

    name: str
    shape: tuple[int, ...] | None
    default: np.ndarray | None


class Program:
    """A parsed program, ready to run; made by :func:`parse` or :func:`load` (or the command line's options).

    Input values are given to each method as keywords or a mapping, over the program's declared defaults.

    >>> p = cg.parse("input a = -1, b = 3, c = 4\\nz = (a + b) * (b + c)")
    >>> p.inputs["b"].default, p.outputs
    (array(3.), ['z'])
    >>> p.eval(b=0).value
    -4.0
    """

    def __init__(self, request: Request | None = None, *, options: Options | None = None, max_nodes: int | None = None):
        """Use :func:`parse`, :func:`load` or :meth:`from_options`; ``request`` is the front door's prepared
        request (program, values and settings), ``options`` a command line's options read when first needed."""
        if (request is None) == (options is None):
            raise TypeError("Program needs a request or options")
        self._request_ = request
        self._options = options
        self._max_nodes = max_nodes
        self._lock = threading.Lock()
        self._structure_: Graph | None = None
        self._graphs: dict[tuple, Graph] = {}  # eval's graphs by what they are built from (see _graph)
        self._keep = KEEP_GRAPHS  # how many of them (a command line's program evaluates once: none)

    @classmethod
    def from_options(cls, options: Options, *, max_nodes: int | None = None) -> Program:
        """The program of a command line's options (FILE/``-e``, ``--at``, ``--at-file``, ``--of``, ``--seed``,
        ``--dtype``, ``--max-memory``, ``--no-cache``): they are read, checked and loaded by
        :meth:`Options.build <cgraph_cli.run.request.Options.build>` when the first method needs them, so a
        command's own option checks come first, as the command line has always ordered its errors."""
        program = cls(options=options, max_nodes=max_nodes)
        program._keep = 0
        return program

    # -- what a program is ------------------------------------------------------------------------
    @property
    def request(self) -> Request:
        """The front door's :class:`~cgraph_cli.run.request.Request`: the source, given values and settings."""
        if self._request_ is None:
            with self._lock:
                if self._request_ is None:
                    assert self._options is not None
                    self._request_ = self._options.build(max_nodes=self._max_nodes)
        return self._request_

    @property
    def name(self) -> str:
        """Where the program came from: its file name, or ``<expr>``."""
        return self.request.source.filename

    @property
    def text(self) -> str:
        """The program's text."""
        return self.request.source.text

    def _structure(self) -> Graph:
        """The program's graph with the values it was given (input shapes), compiled once."""
        if self._structure_ is None:
            g = self.request.compile()
            with self._lock:
                if self._structure_ is None:
                    self._structure_ = g
        return self._structure_

    @property
    def warnings(self) -> list[str]:
        """Warnings about the program itself (the command line prints them on stderr): a name that mixes
        alphabets confusably, such as a Cyrillic 'а' among Latin letters."""
        if self.request.source.text.isascii():  # the common case: no name to look at, nothing to compile
            return []
        return _name_warnings(self._structure())

    @property
    def inputs(self) -> dict[str, Input]:
        """The inputs in order of appearance, with declared shapes and defaults."""
        g = self._structure()
        return {
            name: Input(
                name,
                g.declared_shapes.get(name, g.shapes[i]),
                None if name not in g.defaults else np.array(g.defaults[name], dtype=np.float64),
            )
            for name, i in g.inputs.items()
        }

    @property
    def outputs(self) -> list[str]:
        """The outputs' names (the first is differentiated unless ``of`` says otherwise)."""
        g = self._structure()
        return [g.label(i) for i in g.outputs]

    def __len__(self) -> int:
        """The number of nodes of the program's graph."""
        return len(self._structure())

    def __repr__(self) -> str:
        g = self._structure()
        ins = ", ".join(g.inputs) or "none"
        return f"<cgraph Program {self.name}: inputs {ins}; outputs {', '.join(self.outputs)}; {len(g)} nodes>"

    def _graph(self, request: Request) -> Graph:
        """The request's graph, compiled once per input shapes and settings: a graph depends on the values only
        through their shapes (as the compiled-program cache assumes), so :meth:`eval` in a loop runs one graph,
        whose evaluation plan is then built once and gets hot (:mod:`cgraph_cli.engine.compiled`). The
        :data:`KEEP_GRAPHS` used last are kept, with the program (none for a command line's program, which
        evaluates once). Their constants and default values are made read-only, since every evaluation hands
        them out (``ev["c"].value``) and they must stay what the program says."""
        if not self._keep:
            return request.compile()
        key = (
            tuple(sorted((k, np.shape(v)) for k, v in request.values.items())),
            request.seed,
            request.dtype,
            request.max_memory,
            request.max_nodes,
            request.use_cache,
        )
        with self._lock:
            g = self._graphs.pop(key, None)
            if g is not None:
                self._graphs[key] = g  # (the last used, last)
                return g
        g = _frozen(request.compile())
        with self._lock:
            self._graphs[key] = g
            while len(self._graphs) > self._keep:
                self._graphs.pop(next(iter(self._graphs)))
        return g

    # -- requests ----------------------------------------------------------------------------------
    def _with(
        self,
        values: Mapping[str, Any] | None,
        inputs: Mapping[str, Any],
        *,
        of: str | None = None,
        seed: int | None = None,
        dtype: str | None = None,
        max_nodes: int | None = None,
    ) -> Request:
        """The request for one call: the given values over the program's, settings checked as on the command line."""
        base = self.request
        changes: dict[str, Any] = {}
        if seed is not None:
            OPTION["seed"].check(seed)
            changes["seed"] = seed
        if dtype is not None:
            dtype = _dtype_name(dtype)
            OPTION["dtype"].check(dtype)
            changes["dtype"] = dtype
        if of is not None:
            changes["of"] = of
        if max_nodes is not None:
            changes["max_nodes"] = max_nodes
        if values or inputs:
            changes["values"] = _merge(base.values, values, inputs)
        return dataclasses.replace(base, **changes) if changes else base

    def ir(
        self,
        values: Mapping[str, Any] | None = None,
        /,
        *,
        format: str = "text",
        seed: int | None = None,
        **inputs: Any,
    ) -> str:
        """The graph IR as ``cgraph ir`` prints it: ``"text"`` (one line per node), ``"json"`` or ``"dot"``.

        >>> print(cg.parse("y = 2 * x").ir())
         %0 = const 2 : ()  @1:5
         %1 x = input : ?  @1:9
         %2 y = mul %0 %1 : ?  @1:5
        output y
        """
        from cgraph_cli.fmt import json_text

        check_choice(format, ("text", "json", "dot"), "--format")
        if format == "json":
            return json_text(self.ir_data(values, seed=seed, **inputs), ensure_ascii=False)
        request = self._with(values, inputs, seed=seed)
        g = request.compile()
        if format == "text":
            from cgraph_cli.ir.graph import format_ir

            return format_ir(g)
        from cgraph_cli.present.dot import ir_dot

        return ir_dot(g, dict(request.values))

    def ir_data(
        self, values: Mapping[str, Any] | None = None, /, *, seed: int | None = None, **inputs: Any
    ) -> dict[str, Any]:
        """The graph IR as data (``cgraph ir --format json``): inputs, outputs, nodes and frames."""
        from cgraph_cli.ir.graph import ir_data

        return ir_data(self._with(values, inputs, seed=seed).compile())

    # -- running it --------------------------------------------------------------------------------
    def eval(
        self,
        values: Mapping[str, Any] | None = None,
        /,
        *,
        of: str | None = None,
        seed: int | None = None,
        dtype: str | None = None,
        mode: Mode | None = None,
        tangent: Mapping[str, Any] | None = None,
        cotangent: Any = None,
        jacobian: bool = False,
        wrt: str | Sequence[str] | None = None,
        **inputs: Any,
    ) -> Evaluation:
        """Run the forward and backward passes (``cgraph eval``): every node's value and ∂out/∂node.

        ``of`` names the output to differentiate (default: the first output); ``seed`` seeds ``randn()``
        and ``rand()``; ``dtype`` is ``"float64"`` (default) or ``"float32"``. ``wrt`` (``eval --wrt``):
        the inputs to differentiate, a list of names or ``"W1,b1"``; the other inputs get no gradient and
        the backward pass skips what only they need (default: every input not declared ``input data``);
        it works with reverse mode, ``cotangent`` and ``jacobian`` (the blocks of those inputs), not with
        forward mode's ``tangent``.

        How to differentiate, as ``eval``'s options say it (the evaluation's :attr:`~Evaluation.mode`):
        ``mode="forward"`` or a ``tangent`` (input name -> its tangent; ``--mode forward --tangent``) runs
        forward mode, every node's tangent along that direction instead of a gradient; ``cotangent`` (a
        number or an array of the output's shape; ``--cotangent``) runs reverse mode from it, so a
        non-scalar output can be inspected node by node; ``jacobian=True`` (``--jacobian``) computes the
        whole Jacobian, by ``mode``'s passes or whichever take fewer. A value named ``"cotangent"`` that is
        not an input is the cotangent (the ``--at-file`` key). Derivatives at the same point without
        running again: :meth:`Evaluation.jvp`, :meth:`~Evaluation.vjp`, :meth:`~Evaluation.jacobian`,
        :meth:`~Evaluation.hessian`, :meth:`~Evaluation.hvp`.

        >>> ev = cg.parse("y = relu(w * x + b)").eval(w=2, x=3, b=-1)
        >>> ev.value, ev.grad["w"]
        (5.0, 3.0)
        >>> cg.parse("y = relu(w * x + b)").eval(w=2, x=3, b=-1, tangent={"x": 1}).tangent
        2.0
        >>> cg.parse("y = relu(w * x + b)").eval(w=2, x=3, b=-1, wrt="w,b").grad
        {'w': 3.0, 'b': 1.0}
        """
        from cgraph_cli.run import derivatives

        request = self._with(values, inputs, of=of, seed=seed, dtype=dtype)
        return Evaluation(
            self,
            derivatives.run(
                request,
                compiler=self._graph,
                mode=mode,
                tangent=tangent,
                cotangent=cotangent,
                jacobian=jacobian,
                wrt=None if wrt is None else _wrt_names(wrt),
            ),
        )

    def eval_batch(
        self,
        points: str | os.PathLike[str],
        out: TextIO,
        *,
        of: str | None = None,
        seed: int | None = None,
        dtype: str | None = None,
        progress: Progress | None = None,
    ) -> list[str]:
        """Evaluate at every row of the CSV file ``points`` (``cgraph eval --batch``), writing CSV to ``out``:
        the row's cells, the output, then ∂out/∂input for each input. Returns the warnings (the first row
        whose value or gradient is not finite), an empty list when there is none. ``progress(done, total)``
        (:mod:`cgraph_cli.progress`) is told the bytes of the file done so far after each chunk of rows."""
        from cgraph_cli.run.batch import run_request

        warnings: list[str] = []
        run_request(
            self._with(None, {}, of=of, seed=seed, dtype=dtype),
            os.fspath(points),
            out=out,
            warn=warnings.append,
            progress=progress,
        )
        return warnings

    def explain(
        self,
        values: Mapping[str, Any] | None = None,
        /,
        *,
        of: str | None = None,
        seed: int | None = None,
        max_steps: int = EXPLAIN_MAX_STEPS,
        mode: Mode | None = None,
        tangent: Mapping[str, Any] | None = None,
        **inputs: Any,
    ) -> Explanation:
        """The forward and backward passes step by step, as ``cgraph explain`` writes them; ``mode="forward"``
        or a ``tangent`` (as for :meth:`eval`): forward mode's dual numbers instead of the backward pass.

        >>> print(cg.parse("z = x * y").explain(x=2, y=3).text.splitlines()[-1])
          ∂z/∂y = x = 2
        >>> print(cg.parse("z = x * y").explain(x=2, y=3, tangent={"x": 1}).text.splitlines()[-1])
        ∂z/∂t = ż = 3
        """
        from cgraph_cli.analysis import explain
        from cgraph_cli.ir.graph import TooManyNodes
        from cgraph_cli.run import derivatives

        request = self._with(values, inputs, of=of, seed=seed, max_nodes=max_steps)
        try:  # the builder stops at the limit: a tower of def calls is refused before it is built
            result = derivatives.run(request, mode=mode, tangent=tangent, cotangent_key=False)
        except TooManyNodes:
            raise explain.too_large(None, max_steps, "--max-steps") from None
        return Explanation(explain.explain(result, max_steps, "--max-steps"))

    def check(
        self,
        values: Mapping[str, Any] | None = None,
        /,
        *,
        of: str | None = None,
        wrt: str | Sequence[str] | None = None,
        eps: float | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        method: str = "richardson",
        samples: int | None = None,
        all_entries: bool = False,
        seed: int | None = None,
        progress: Progress | None = None,
        order: int = 1,
        modes: bool = False,
        **inputs: Any,
    ) -> CheckReport:
        """Check every gradient entry against finite differences (``cgraph check``); see its ``--help``.

        ``wrt`` limits the check to some inputs; ``eps``/``rtol``/``atol`` switch to a fixed central
        difference; ``method="complex"`` takes the complex-step derivative; an input of more than 1000
        entries is checked at 1000 random ones unless ``samples`` or ``all_entries`` says otherwise.
        ``progress(done, total)`` is called as entries are checked. ``modes``: also check forward mode
        against reverse mode (``check --modes``: ⟨v, J t⟩ = ⟨Jᵀv, t⟩ for random t and v). ``order=2`` checks the second
        derivatives against finite differences of the gradient (``check --order 2``).

        >>> report = cg.parse("y = sin(x) * x").check(x=0.5)
        >>> report.ok, len(report.rows)
        (True, 1)
        """
        from cgraph_cli.analysis import check

        check_choice(method, check.METHODS, "--method")
        if method != "richardson" and (eps is not None or rtol is not None or atol is not None):
            raise CgraphError(f"--method {method} and --eps/--rtol/--atol cannot be combined: pick one")
        if all_entries and samples is not None:
            raise CgraphError("--samples and --all-entries cannot be combined: pick one")
        check.check_options(eps, rtol, atol, samples)  # before any work: a bad tolerance is a usage error
        if order not in (1, 2):
            raise CgraphError(f"--order must be 1 or 2, got {order}")
        request = self._with(values, inputs, of=of, seed=seed)  # float64: differences are taken in float64
        g = request.compile()
        bound = request.inputs(g)
        target = request.output(g)
        names = None if wrt is None else _wrt_names(wrt)
        by_default = samples is None and not all_entries
        common = dict(
            eps=eps,
            rtol=rtol,
            atol=atol,
            wrt=names,
            samples=check.DEFAULT_SAMPLES if by_default else samples,
            seed=request.seed,
            method=method,
        )
        if order == 2:  # second derivatives against finite differences of the gradient
            from cgraph_cli.analysis.second import check_second_order

            report = check_second_order(g, bound, target, progress=progress, **common)
        else:
            report = check.check_gradients(g, bound, target, progress=progress, **common)
            if modes:
                report.modes = check.check_modes(g, bound, target, seed=request.seed)
        notes = []
        if by_default:
            for c in report.inputs:
                if c.sampled:
                    notes.append(
                        f"note: {c.name} has {c.size} entries: checked {len(c.index)} chosen at random"
                        f" (--seed {request.seed}); --all-entries checks every one, --samples N checks N"
                    )
        return CheckReport(report, notes)

    # -- pictures ----------------------------------------------------------------------------------
    def picture(
        self,
        values: Mapping[str, Any] | None = None,
        /,
        *,
        of: str | None = None,
        show_values: bool = True,
        rankdir: str | None = None,
        edge_labels: str = "local",
        max_nodes: int = RENDER_MAX_NODES,
        timeout: float = RENDER_TIMEOUT,
        seed: int | None = None,
        backward: bool = False,
        size: str | None = None,
        width: int | None = None,
        height: int | None = None,
        font_size: float | None = None,
        theme: str = "light",
        **inputs: Any,
    ) -> Picture:
        """The annotated graph as ``cgraph render`` draws it: values and gradients when every input has a value
        (``show_values=False``: the structure only). ``rankdir`` is ``"LR"``, ``"TB"`` or None (``"auto"``: the
        one nearest the shape of ``size``, else LR), ``edge_labels`` ``"local"`` (∂successor/∂node on each edge)
        or ``"none"``; a graph of more than ``max_nodes`` nodes is refused; drawing may take ``timeout``
        seconds. ``backward``: draw the backward pass too, as the nodes that compute the gradient
        (``render --backward``). ``size`` (``"16:9"``, ``"4:3"``, ``"1920x1080"``), ``width``, ``height``
        (pixels), ``font_size`` (points) and ``theme`` (``"light"`` or ``"dark"``) are ``render``'s slide options
        (:mod:`cgraph_cli.present.canvas`).

        >>> pic = cg.parse("z = x * y").picture(x=2, y=3)
        >>> pic.dot().count("->")  # two edges
        2
        """
        from cgraph_cli.ir.graph import TooManyNodes

        look = check_picture_options(
            rankdir,
            edge_labels,
            max_nodes,
            timeout,
            size=size,
            width=width,
            height=height,
            font_size=font_size,
            theme=theme,
        )
        request = self._with(values, inputs, of=of, seed=seed, max_nodes=max_nodes)
        try:
            g = request.compile()
            if len(g) > max_nodes:
                raise TooManyNodes("")
        except TooManyNodes:
            raise CgraphError(
                f"the graph has more than {max_nodes:,} nodes (--max-nodes {max_nodes}); "
                "a picture that large is unreadable and Graphviz may take minutes",
                hint="draw a smaller program, raise the limit with --max-nodes N, "
                "or write only the DOT source with --format dot --max-nodes N",
            ) from None
        out = request.output(g)
        return Picture(g, request, out, show_values, rankdir, edge_labels, timeout, backward=backward, look=look)

    def render(
        self,
        values: Mapping[str, Any] | None = None,
        /,
        *,
        format: Format = "png",
        of: str | None = None,
        show_values: bool = True,
        rankdir: str | None = None,
        edge_labels: str = "local",
        max_nodes: int = RENDER_MAX_NODES,
        timeout: float = RENDER_TIMEOUT,
        seed: int | None = None,
        size: str | None = None,
        width: int | None = None,
        height: int | None = None,
        font_size: float | None = None,
        theme: str = "light",
        **inputs: Any,
    ) -> bytes:
        """The picture as ``format`` bytes: ``"png"``, ``"svg"``, ``"pdf"``, ``"dot"`` or ``"html"`` (an interactive
        page) (see :meth:`picture`).

        >>> cg.parse("z = x * y").render(x=2, y=3, format="svg")[:5]
        b'<?xml'
        """
        check_choice(format, PICTURE_FORMATS, "--format")
        pic = self.picture(
            values,
            of=of,
            show_values=show_values,
            rankdir=rankdir,
            edge_labels=edge_labels,
            max_nodes=max_nodes,
            timeout=timeout,
            seed=seed,
            size=size,
            width=width,
            height=height,
            font_size=font_size,
            theme=theme,
            **inputs,
        )
        return pic.render(format)

    def save(
        self,
        path: str | os.PathLike[str],
        values: Mapping[str, Any] | None = None,
        /,
        *,
        format: Format | None = None,
        **options: Any,
    ) -> Path:
        """Draw the picture into ``path`` (format from its suffix unless given; written atomically) and return
        the path. ``options`` are those of :meth:`picture` and the input values."""
        return self.picture(values, **options).save(path, format=format)

    # -- other engines -----------------------------------------------------------------------------
    def export(
        self,
        to: str,
        values: Mapping[str, Any] | None = None,
        /,
        *,
        of: str | None = None,
        seed: int | None = None,
        source_name: str | None = None,
        gradients: bool | None = None,
        **inputs: Any,
    ) -> bytes:
        """The program for another engine (``cgraph export``): ``to`` is ``"numpy"``, ``"jax"`` or ``"torch"``
        (a Python module's source, UTF-8) or ``"onnx"`` (a model; needs the onnx package). Given values fix
        input shapes and become the defaults; ``source_name`` is the file named in the module's header.
        ``gradients`` (``--with-gradients``/``--forward-only``): True adds the gradient of every input (numpy's
        ``value_and_grad``, ONNX outputs ``grad_<input>``), False writes the forward pass alone, None is the
        target's default (numpy: with ``value_and_grad`` when the output holds one number).

        >>> code = cg.parse("z = x * y").export("numpy").decode()
        >>> "def forward(" in code
        True
        """
        from cgraph_cli.present.export import TARGETS, export

        check_choice(to, TARGETS, "--to")
        request = self._with(values, inputs, of=of, seed=seed)
        if to == "onnx":
            import importlib.util

            if importlib.util.find_spec("onnx") is None:
                raise CgraphError("--to onnx needs the onnx package", hint="pip install onnx")
        if source_name is None:
            name = request.source.filename
            source_name = name if name.startswith("<") else Path(name).name
        return export(request, to, source_name, gradients)

    # -- notebook display --------------------------------------------------------------------------
    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The program's structure as SVG (PNG as a fallback) with its IR listing as text."""
        from cgraph_cli import notebook  # (the notebook views: only when a notebook shows one)

        return notebook.picture_bundle(lambda fmt: self._structure_picture().render(fmt), self.ir())

    def _structure_picture(self) -> Picture:
        return self.picture(show_values=False)


def check_picture_options(
    rankdir: str | None,
    edge_labels: str,
    max_nodes: int,
    timeout: float,
    *,
    size: str | None = None,
    width: int | None = None,
    height: int | None = None,
    font_size: float | None = None,
    theme: str = "light",
) -> Look:
    """Refuse a picture's options as ``cgraph render`` does (the command checks them before reading anything);
    the slide options, read."""
    import math

    if rankdir is not None:
        check_choice(rankdir, ("LR", "TB", "auto"), "--rankdir")
    check_choice(edge_labels, ("local", "none"), "--edge-labels")
    check_choice(theme, tuple(THEMES), "--theme")
    canvas = parse_canvas(size, width, height)
    if font_size is not None:
        check_font_size(font_size)
    if max_nodes < 1:
        raise CgraphError("--max-nodes must be at least 1")
    if not (math.isfinite(timeout) and timeout > 0):
        raise CgraphError(
            f"--timeout must be a positive finite number of seconds, not {timeout:g}",
            hint="for example --timeout 120",
        )
    return Look(canvas, None if font_size is None else float(font_size), theme)


def parse(
    text: str,
    *,
    name: str = "<expr>",
    max_memory: int | str | None = None,
    cache: bool = True,
) -> Program:
    """A program from its text (as ``cgraph eval -e TEXT``), checked at once: a syntax or name error raises
    :class:`CgraphError`. ``name`` is shown in messages; ``max_memory`` bounds the values the program may
    create (bytes, or a size such as ``"512M"``; default 1G); ``cache`` off never reads or writes the
    compiled-program cache.

    >>> cg.parse("y = sigmod(x)")
    Traceback (most recent call last):
    ...
    cgraph_cli.errors.CgraphError: unknown function 'sigmod'; did you mean 'sigmoid'?
    """
    from cgraph_cli.limits import check_text, parse_size
    from cgraph_cli.run.program import normalize_newlines

    if not isinstance(text, str):
        raise TypeError(f"parse() takes the program's text, not {type(text).__name__}")
    text = normalize_newlines(text)
    check_text(text, name)
    request = Request(Source(text, name), max_memory=parse_size(max_memory), use_cache=cache)
    program = Program(request)
    program._structure()
    return program


def load(path: str | os.PathLike[str], *, max_memory: int | str | None = None, cache: bool = True) -> Program:
    """A program from a file (UTF-8, as ``cgraph eval FILE`` reads it), checked at once (see :func:`parse`).
    ``path`` may also name an example shipped with cgraph (:func:`examples`) where no such file exists.

    >>> cg.load("examples/lecture.cg").eval().value
    14.0
    >>> cg.load("mlp").outputs
    ['loss']
    """
    from cgraph_cli.limits import parse_size
    from cgraph_cli.run.program import load_source

    source = load_source(os.fspath(path), None)
    program = Program(Request(source, max_memory=parse_size(max_memory), use_cache=cache))
    program._structure()
    return program


def examples() -> dict[str, str]:
    """The example programs shipped with cgraph, name -> what it shows (its first comment line), as
    ``cgraph examples`` lists them; :func:`load` takes the name.

    >>> cg.examples()["lecture"]
    "The lecture's computation graph: z = (a + b) * (b + c)"
    """
    return {name: shipped_examples.description(name) for name in shipped_examples.names()}


# -- results -------------------------------------------------------------------------------------------------------


def _second(hessian: Mapping[str, Any] | None, hvp: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The second derivatives as the JSON document's extra keys (None: none)."""
    extra = {k: v for k, v in (("hessian", hessian), ("hvp", hvp)) if v is not None}
    return extra or None


@dataclass(frozen=True)
class Node:
    """One node of an evaluated graph (a row of ``cgraph eval --all``): ``name`` is None for an anonymous
    node (``label`` is then its id, ``%3``); ``grad`` is ∂out/∂node, None where the output does not depend
    on an input through it (and in forward mode); ``tangent`` is the node's tangent ∂node/∂t in forward mode,
    else None."""

    id: int
    name: str | None
    label: str
    op: str
    shape: tuple[int, ...]
    value: Value
    grad: Value | None
    expr: str
    line: int
    column: int
    tangent: Value | None = None


class Evaluation:
    """The values and gradients of one run (``cgraph eval``); made by :meth:`Program.eval`.

    >>> ev = cg.parse("x = a + b\\ny = b + c\\nz = x * y").eval(a=-1, b=3, c=4)
    >>> ev.output, ev.value, ev.grad["b"]
    ('z', 14.0, 9.0)
    >>> [(n.name, n.value, n.grad) for n in ev.nodes if n.name in ("x", "y")]
    [('x', 2.0, 7.0), ('y', 7.0, 2.0)]
    """

    def __init__(self, program: Program, result: Result) -> None:
        self.program = program
        self.result = result
        """The engine's result (graph, values and gradients by node id)."""
        self._images: dict[tuple, bytes] = {}

    @property
    def mode(self) -> str:
        """What this run differentiated: ``"reverse"`` (∂out/∂node from the seed 1, the default), ``"forward"``
        (each node's tangent along :attr:`direction`), ``"cotangent"`` (``vᵀ ∂out/∂node`` for the given v) or
        ``"jacobian"`` (the whole Jacobian; no per-node derivative)."""
        return self.result.mode

    @property
    def output(self) -> str:
        """The differentiated output's name."""
        return self.result.graph.label(self.result.out)

    @property
    def value(self) -> Value:
        """The output's value."""
        return _py(self.result.values[self.result.out])

    @property
    def grad(self) -> dict[str, Value]:
        """∂out/∂input for every input differentiated (``wrt``; default every input not declared data), by name
        (from a cotangent v: ``vᵀ ∂out/∂input``). A run in forward mode
        or of the Jacobian has no gradient and raises :class:`CgraphError`: see :attr:`tangent`,
        :meth:`jacobian`, or :meth:`vjp` for a gradient at the same point.

        >>> cg.parse("z = x * y").eval(x=2, y=3, tangent={"x": 1}).grad
        Traceback (most recent call last):
        ...
        cgraph_cli.errors.CgraphError: this evaluation ran forward mode: it holds tangents ..., not gradients
        """
        r = self.result
        if r.mode in ("forward", "jacobian"):
            what = "tangents along a direction" if r.mode == "forward" else "the Jacobian"
            hint = ".tangent is the output's tangent; " if r.mode == "forward" else ".jacobian() is it; "
            raise CgraphError(
                f"this evaluation ran {r.mode} mode: it holds {what}, not gradients",
                hint=hint + ".vjp(1) gives the gradient of a scalar output at the same point",
            )
        g, grads = r.graph, r.grads
        ids = {name: g.inputs[name] for name in r.grad_inputs()}
        return {name: _py(0.0 if grads[i] is None else grads[i]) for name, i in ids.items()}

    @property
    def tangent(self) -> Value:
        """Forward mode: the output's tangent ∂out/∂t along :attr:`direction` (``eval --mode forward``'s
        ``jvp``); another mode raises :class:`CgraphError` (:meth:`jvp` gives it at the same point).

        >>> fwd = cg.load("examples/lecture.cg").eval(tangent={"b": 1})
        >>> fwd.mode, fwd.direction, fwd.tangent
        ('forward', {'a': 0.0, 'b': 1.0, 'c': 0.0}, 9.0)
        """
        r = self.result
        if r.mode != "forward":
            raise CgraphError(
                f"this evaluation ran {r.mode} mode: it has no tangent",
                hint="eval(..., tangent={...}) runs forward mode; .jvp({...}) gives the output's tangent here",
            )
        return _py(np.zeros(np.shape(r.values[r.out])) if r.jvp is None else r.jvp)

    @property
    def direction(self) -> dict[str, Value]:
        """Forward mode: each input's tangent, the direction t (empty in another mode)."""
        return {k: _py(v) for k, v in (self.result.direction or {}).items()}

    # -- more derivatives at the same point -------------------------------------------------------------
    def jvp(self, tangent: Mapping[str, Any] | None = None) -> np.ndarray:
        """The Jacobian-vector product ``J t``: the output's tangent along ``tangent`` (input name -> its tangent,
        an array of the input's shape or a number for every entry; inputs not named: 0; None: 1 for the first
        input and 0 for the others), by one forward-mode pass over this run's values. An array of the
        output's shape (``eval --mode forward --tangent ...``'s ``jvp``).

        >>> ev = cg.load("examples/lecture.cg").eval()
        >>> ev.jvp({"a": 1, "b": 1})
        array(16.)
        """
        from cgraph_cli.run.derivatives import forward_mode

        r = forward_mode(self.result, tangent)
        return np.asarray(np.zeros(np.shape(r.values[r.out])) if r.jvp is None else r.jvp)

    def vjp(self, cotangent: Any) -> dict[str, np.ndarray]:
        """The vector-Jacobian product ``vᵀ J`` for every input (``vᵀ ∂out/∂x``, an array of x's shape), by one
        reverse pass over this run's values; ``cotangent`` is v, a number or an array of the output's shape
        (``eval --cotangent``'s ``gradients``). For a scalar output, ``vjp(1)`` is the gradient.

        >>> ev = cg.parse("input x[3]\\ny = x * x").eval(x=[1, 2, 3], jacobian=True)
        >>> ev.vjp([1, 0, 1])["x"]
        array([2., 0., 6.])
        """
        from cgraph_cli.run.derivatives import reverse_mode

        r = reverse_mode(self.result, cotangent)
        g = r.graph
        return {
            x: np.asarray(np.zeros(np.shape(r.values[i])) if r.grads[i] is None else r.grads[i])
            for x, i in g.inputs.items()
        }

    def jacobian(self, wrt: str | Sequence[str] | None = None, *, mode: Mode | None = None) -> dict[str, np.ndarray]:
        """The Jacobian ``∂out/∂x`` for every input x (or those in ``wrt``: names, or one text ``"a,b"``), each an
        array of shape ``output.shape + x.shape``, by forward passes (one per input entry) or reverse passes
        (one per output entry): ``mode``, else whichever takes fewer (``eval --jacobian``'s ``jacobian``).

        >>> ev = cg.parse("input x[2], s\\ny = x * x * s").eval(x=[1, 2], s=3, jacobian=True)
        >>> ev.jacobian()["x"]
        array([[ 6.,  0.],
               [ 0., 12.]])
        >>> ev.jacobian("s", mode="forward")
        {'s': array([1., 4.])}
        """
        from cgraph_cli.run.derivatives import jacobian_of

        names = self._wrt(wrt)
        stored = self.result.jacobian
        if stored is not None and wrt is None and mode in (None, stored.mode):
            jac = stored  # eval(jacobian=True) computed it already
        else:
            jac = jacobian_of(self.result, names, mode)
        return {x: np.asarray(jac.blocks[x]) for x in names}

    def hessian(self, wrt: str | Sequence[str] | None = None) -> dict[str, dict[str, np.ndarray]]:
        """The Hessian of the (scalar) output: ``{x: {y: ∂²out/∂x∂y}}`` for every pair of inputs (or of those in
        ``wrt``), each an array of shape ``x.shape + y.shape``, by one Hessian-vector product per input entry
        (``eval --hessian``'s ``hessian``; at most 4,096 input entries).

        >>> h = cg.load("examples/lecture.cg").eval().hessian()
        >>> [[float(h[x][y]) for y in "abc"] for x in "abc"]
        [[0.0, 1.0, 1.0], [1.0, 2.0, 1.0], [1.0, 1.0, 0.0]]
        """
        from cgraph_cli.run.second import hessian_of

        return hessian_of(self.result, self._wrt(wrt), max_memory=self.program.request.max_memory)

    def hvp(self, direction: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The Hessian-vector product ``H v`` of the (scalar) output for every input (an array of its shape),
        ``direction`` being v: input name -> an array of its shape or a number for every entry (inputs not
        named: 0). It never forms the Hessian: one reverse pass over the backward pass dotted with v
        (``eval --hvp``'s ``hvp``).

        >>> cg.load("examples/lecture.cg").eval().hvp({"a": 1})
        {'a': array(0.), 'b': array(1.), 'c': array(1.)}
        """
        from cgraph_cli.run.second import hvp_of

        return hvp_of(self.result, direction, max_memory=self.program.request.max_memory)

    def _wrt(self, wrt: str | Sequence[str] | None) -> list[str]:
        from cgraph_cli.analysis.check import pick_inputs

        return pick_inputs(self.result.graph, None if wrt is None else _wrt_names(wrt))

    @property
    def inputs(self) -> dict[str, Value]:
        """The inputs' values used (given or defaults)."""
        return {k: _py(v) for k, v in self.result.inputs.items()}

    @property
    def outputs(self) -> dict[str, Value]:
        """Every output's value, by name."""
        g = self.result.graph
        return {g.label(i): _py(self.result.values[i]) for i in g.outputs}

    @property
    def nodes(self) -> list[Node]:
        """Every node in topological order (the ``nodes`` of the JSON document)."""
        g, vals, grads = self.result.graph, self.result.values, self.result.grads
        ts = self.result.tangents if self.result.mode == "forward" else None
        out = []
        for i in range(len(g)):
            line, col = g.line_col(i)
            t = None if ts is None or ts[i] is None else _py(ts[i])
            out.append(
                Node(
                    i,
                    g.names[i],
                    g.label(i),
                    g.ops[i],
                    tuple(np.shape(vals[i])),
                    _py(vals[i]),
                    None if grads[i] is None else _py(grads[i]),
                    g.short_text(i),
                    line,
                    col,
                    t,
                )
            )
        return out

    def __getitem__(self, name: str) -> Node:
        """The node a name is bound to (its newest assignment): ``ev["x"].grad``."""
        g = self.result.graph
        if name not in g.bindings:
            from cgraph_cli.errors import did_you_mean

            raise KeyError(f"'{name}' is not a name in the program{did_you_mean(name, g.bindings)}")
        return self.nodes[g.bindings[name]]

    @property
    def nonfinite(self) -> bool:
        """Whether a value or gradient is NaN or infinite (``eval --strict`` exits 1 then)."""
        return bool(self.result.nonfinite)

    @property
    def warnings(self) -> list[str]:
        """The warnings the command line prints on stderr: a name that mixes alphabets confusably, where a
        non-finite number first appeared."""
        return _name_warnings(self.result.graph) + tables.nonfinite_warnings(self.result)

    def to_data(
        self,
        *,
        hessian: Mapping[str, Mapping[str, Any]] | None = None,
        hvp: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The JSON document as data (SPEC §3; tensors as nested lists, non-finite numbers as strings), with
        the keys ``"hessian"`` and ``"hvp"`` when given (what :meth:`hessian` and :meth:`hvp` returned)."""
        return tables.to_data(self.result, _second(hessian, hvp))

    def to_json(
        self,
        *,
        hessian: Mapping[str, Mapping[str, Any]] | None = None,
        hvp: Mapping[str, Any] | None = None,
    ) -> str:
        """Exactly what ``cgraph eval --format json`` prints, without its final newline (``hessian``, ``hvp``:
        what ``--hessian`` and ``--hvp`` add, from :meth:`hessian` and :meth:`hvp`).

        >>> import json
        >>> ev = cg.parse("z = x * y").eval(x=2, y=3)
        >>> json.loads(ev.to_json())["gradients"]
        {'x': 3.0, 'y': 2.0}
        >>> json.loads(ev.to_json(hvp=ev.hvp({"x": 1})))["hvp"]
        {'x': 0.0, 'y': 1.0}
        """
        return tables.to_json(self.result, _second(hessian, hvp))

    def write_json(
        self,
        stream: TextIO,
        *,
        hessian: Mapping[str, Mapping[str, Any]] | None = None,
        hvp: Mapping[str, Any] | None = None,
    ) -> None:
        """Write :meth:`to_json`'s text to ``stream``, tensors a chunk at a time (memory stays small)."""
        tables.write_json(self.result, stream, _second(hessian, hvp))

    def to_csv(self, all_nodes: bool = False) -> str:
        """What ``cgraph eval --format csv`` prints (``all_nodes``: ``--all``)."""
        return tables.to_csv(self.result, all_nodes)

    def write_csv(self, stream: TextIO, all_nodes: bool = False) -> None:
        """Write :meth:`to_csv`'s text to ``stream``, tensor cells a chunk at a time."""
        tables.write_csv(self.result, stream, all_nodes)

    def to_rich(
        self,
        all_nodes: bool = False,
        *,
        hessian: Mapping[str, Mapping[str, Any]] | None = None,
        hvp: Mapping[str, Any] | None = None,
    ) -> Any:
        """The table ``cgraph eval`` prints, as a rich renderable; with ``hessian`` and ``hvp`` (from
        :meth:`hessian` and :meth:`hvp`), their tables below it (``eval --hessian --hvp``)."""
        table = tables.to_table(self.result, all_nodes)
        if hessian is None and hvp is None:
            return table
        from rich.console import Group

        from cgraph_cli.present import second

        g, out = self.result.graph, self.result.out
        more = [] if hessian is None else second.hessian_tables(g, out, {x: dict(r) for x, r in hessian.items()})
        if hvp is not None:
            more.append(second.hvp_table(g, out, dict(hvp)))
        return Group(table, *more)

    def explain(self, max_steps: int = EXPLAIN_MAX_STEPS) -> Explanation:
        """This run's passes step by step (see :meth:`Program.explain`)."""
        from cgraph_cli.analysis import explain

        return Explanation(explain.explain(self.result, max_steps, "--max-steps"))

    def picture(
        self,
        *,
        rankdir: str | None = None,
        edge_labels: str = "local",
        timeout: float = RENDER_TIMEOUT,
        size: str | None = None,
        width: int | None = None,
        height: int | None = None,
        font_size: float | None = None,
        theme: str = "light",
    ) -> Picture:
        """The annotated graph of this run (see :meth:`Program.picture`, also for the slide options)."""
        look = check_picture_options(
            rankdir,
            edge_labels,
            RENDER_MAX_NODES,
            timeout,
            size=size,
            width=width,
            height=height,
            font_size=font_size,
            theme=theme,
        )
        r = self.result
        return Picture(r.graph, None, r.out, True, rankdir, edge_labels, timeout, result=r, look=look)

    def render(self, format: Format = "svg", **options: Any) -> bytes:
        """The annotated graph as ``format`` bytes (kept: rendering again costs nothing); ``options`` are those of
        :meth:`picture` (``size="16:9"``, ``theme="dark"``, ...)."""
        key = (format, tuple(sorted(options.items())))
        if key not in self._images:
            self._images[key] = self.picture(**options).render(format)
        return self._images[key]

    def save(self, path: str | os.PathLike[str], *, format: Format | None = None) -> Path:
        """Draw the annotated graph into ``path`` (format from the suffix unless given)."""
        return self.picture().save(path, format=format)

    def steps(self, *, timeout: float = RENDER_TIMEOUT) -> Steps:
        """The stepped passes (``cgraph render --steps``): one frame per forward and backward step, each
        with its ``explain`` text, drawn on one layout. In a notebook: a slider over the frames."""
        return self.picture(timeout=timeout).steps()

    def __repr__(self) -> str:
        shown = tables.fmt_value(self.result.values[self.result.out])
        return f"<cgraph Evaluation of {self.program.name}: {self.output} = {shown}>"

    # -- notebook display --------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        """The table of values and gradients as HTML."""
        from cgraph_cli import notebook  # (the notebook views: only when a notebook shows one)

        return notebook.table_html(self.result)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The table and the annotated graph (HTML), the graph alone (SVG, PNG) and a text table."""
        from cgraph_cli import notebook  # (the notebook views: only when a notebook shows one)

        return notebook.evaluation_bundle(self.result, self.render)


class Explanation:
    """The passes step by step (``cgraph explain``): ``.text`` is what it prints, ``.forward`` and
    ``.backward`` the steps (:mod:`cgraph_cli.analysis.explain`'s records)."""

    def __init__(self, explanation: _Explanation) -> None:
        self.explanation = explanation
        """The analysis's record of the steps."""

    @property
    def forward(self) -> list[Any]:
        """The forward steps: node, label, formula, numbers, value."""
        return self.explanation.forward

    @property
    def backward(self) -> list[Any]:
        """The backward steps, from the output back as the lecture takes them (by distance from the output, then in
        the program's order): node, label, terms, gradient."""
        return self.explanation.backward

    @property
    def text(self) -> str:
        """The explanation as ``cgraph explain`` prints it when piped."""
        from cgraph_cli.analysis.explain import to_text

        return to_text(self.explanation)

    def __str__(self) -> str:
        return self.text

    @property
    def warnings(self) -> list[str]:
        """Where a non-finite number first appeared (the command line's stderr)."""
        return _name_warnings(self.explanation.result.graph) + tables.nonfinite_warnings(self.explanation.result)

    def to_data(self) -> dict[str, Any]:
        """The steps as data (``cgraph explain --format json``)."""
        from cgraph_cli.analysis.explain import to_data

        return to_data(self.explanation)

    def to_json(self) -> str:
        """:meth:`to_data` as strict JSON text."""
        from cgraph_cli.fmt import json_text

        return json_text(self.to_data(), ensure_ascii=False)

    def to_rich(self) -> Any:
        """The explanation as a styled rich ``Text`` (what a terminal shows)."""
        from cgraph_cli.analysis.explain import to_rich

        return to_rich(self.explanation)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text.rstrip("\n"))


@dataclass(frozen=True)
class CheckRow:
    """One checked gradient entry: ``entry`` is ``x`` or ``W[1, 2]``; ``error_estimate`` the numeric
    derivative's estimated error (None with fixed settings); ``ok`` whether it passed."""

    input: str
    entry: str
    index: tuple[int, ...]
    analytic: float
    numeric: float
    abs_error: float
    rel_error: float
    error_estimate: float | None
    method: str
    ok: bool


class CheckReport:
    """The result of a gradient check (``cgraph check``): ``.ok``, one :class:`CheckRow` per entry.

    >>> r = cg.parse("y = relu(a)").check(a=0)
    >>> r.ok, r.rows[0].analytic, round(r.rows[0].numeric, 6)
    (False, 0.0, 0.5)
    """

    def __init__(self, report: _Report, notes: list[str]) -> None:
        self.report = report
        """The analysis's report (per input: entries, numbers, verdicts)."""
        self.notes = notes
        """Notes about sampled inputs (the command line's stderr)."""

    @property
    def ok(self) -> bool:
        """Whether every checked entry passed."""
        return self.report.passed

    def __bool__(self) -> bool:
        return self.ok

    @property
    def rows(self) -> list[CheckRow]:
        """Every checked entry, input by input."""
        out = []
        for c in self.report.inputs:
            for k in range(len(c.index)):
                idx = tuple(int(i) for i in np.unravel_index(int(c.index[k]), c.shape)) if c.shape else ()
                out.append(
                    CheckRow(
                        c.name,
                        c.entry_name(k),
                        idx,
                        float(c.analytic[k]),
                        float(c.numeric[k]),
                        float(c.abs_error[k]),
                        float(c.rel_error[k]),
                        None if c.error is None else float(c.error[k]),
                        c.method[k] if c.method is not None else "central",
                        bool(c.ok[k]),
                    )
                )
        return out

    @property
    def summary(self) -> str:
        """The summary line(s) ``cgraph check`` prints under its tables."""
        from cgraph_cli.analysis.check import summary

        return summary(self.report)

    @property
    def warnings(self) -> list[str]:
        """Non-finite numbers and points where the program is not differentiable (the command line's stderr)."""
        from cgraph_cli.analysis.check import kink_warnings

        return (
            _name_warnings(self.report.result.graph)
            + tables.nonfinite_warnings(self.report.result)
            + kink_warnings(self.report)
        )

    def to_data(self) -> dict[str, Any]:
        """The report as data (``cgraph check --format json``)."""
        from cgraph_cli.analysis.check import to_data

        return to_data(self.report)

    def to_json(self) -> str:
        """:meth:`to_data` as strict JSON text."""
        from cgraph_cli.fmt import json_text

        return json_text(self.to_data(), ensure_ascii=False)

    def to_rich(self) -> Any:
        """The table ``cgraph check`` prints (a rich ``Table``: every entry checked)."""
        from cgraph_cli.analysis.check import to_table

        return to_table(self.report)

    def __repr__(self) -> str:
        return f"<cgraph CheckReport: {self.summary.splitlines()[0]}>"

    def _repr_html_(self) -> str:
        """The rows as an HTML table with the summary."""
        from cgraph_cli import notebook  # (the notebook views: only when a notebook shows one)

        return notebook.check_html(self.rows, self.summary)


# -- pictures ------------------------------------------------------------------------------------------------------


class Picture:
    """The annotated graph of a program (``cgraph render``): :meth:`dot` is its DOT text, :meth:`render`
    lays it out with Graphviz (in a child process, within the timeout). Values are computed on first use."""

    def __init__(
        self,
        g: Graph,
        request: Request | None,
        out: int,
        show_values: bool,
        rankdir: str | None,
        edge_labels: str,
        timeout: float,
        *,
        result: Result | None = None,
        backward: bool = False,
        look: Look | None = None,
    ) -> None:
        self.graph = g
        self._backward = backward
        self._request = request
        self._out = out
        self._show_values = show_values
        self._rankdir = None if rankdir == "auto" else rankdir
        self._edge_labels = edge_labels
        self.timeout = timeout
        self._result = result
        self.look = look or Look()
        self._made: tuple[GraphPicture, list[str]] | None = None
        self._settled = not self._auto  # whether the rankdir is known (auto: once Graphviz has compared both)
        self.fitted: dict[str, Any] = {}  # what the last drawing chose to fit the canvas: rankdir, zoom

    @property
    def _auto(self) -> bool:
        """Whether the rankdir is chosen by the canvas's shape: not given, and both sides of the canvas fixed."""
        canvas = self.look.canvas
        return self._rankdir is None and canvas is not None and canvas.aspect is not None

    @property
    def rankdir(self) -> str:
        """The direction the picture is laid out in (chosen by Graphviz when ``rankdir`` was left to the shape)."""
        return self.settle().opts.rankdir

    def fit_job(self) -> dict | None:
        """What the renderer needs to fit the canvas (:func:`cgraph_cli.present.canvas.fit_job`); None without one."""
        from cgraph_cli.present.canvas import fit_job

        canvas = self.look.canvas
        return None if canvas is None else fit_job(canvas, self.look.font_size is not None)

    def settle(self) -> GraphPicture:
        """The picture with its rankdir decided: compared by laying out both directions when it is automatic."""
        gp = self.graph_picture
        if not self._settled:
            from cgraph_cli.present.render import choose_layout

            fit = self.fit_job()
            assert fit is not None
            k = choose_layout(gp.dot(), [gp.dot(rankdir="TB")], fit, self.timeout)
            gp.opts.rankdir = ("LR", "TB")[k]
            self._settled = True
        return gp

    def _make(self) -> tuple[GraphPicture, list[str]]:
        if self._made is None:
            from cgraph_cli.present.dot import DotOptions, GraphPicture, evaluate_for_picture

            notes: list[str] = []
            g, out = self.graph, self._out
            values = grads = None
            if self._result is not None:
                values, grads = self._result.values, self._result.grads
            elif self._show_values:
                assert self._request is not None
                values, grads, out = evaluate_for_picture(g, dict(self._request.values), out, notes)
            elif self._request is not None and self._request.values:
                self._request.inputs(g, require=False)  # still reject unknown names
            backward_from = None
            if self._backward:  # the backward pass as nodes, drawn after the forward ones
                from cgraph_cli.present.dot import with_backward

                backward_from = len(g)
                given = dict(self._request.values) if self._request is not None else {}
                limit = self._request.max_memory if self._request is not None else None
                nodes = self._request.max_nodes if self._request is not None else None
                g, values = with_backward(g, out, values, given, limit, nodes or RENDER_MAX_NODES)
                grads = None
                self.graph = g
            from cgraph_cli.present.style import FONT_SIZE, THEMES

            look = self.look
            canvas = look.canvas
            fill = None
            if canvas is not None and canvas.aspect is not None:  # the DOT text says the shape it fills
                fill = canvas.inches()
            opts = DotOptions(
                rankdir=self._rankdir or "LR",
                edge_labels=self._edge_labels,
                backward_from=backward_from,
                palette=THEMES[look.theme],
                font_size=FONT_SIZE if look.font_size is None else look.font_size,
                fill_size=fill,
            )
            self._made = (GraphPicture(g, values, grads, out, opts), notes)
        return self._made

    @property
    def graph_picture(self) -> GraphPicture:
        """The presenter's model of the picture (:class:`cgraph_cli.present.dot.GraphPicture`)."""
        return self._make()[0]

    @property
    def notes(self) -> list[str]:
        """Why the picture shows less than everything (missing inputs, a non-scalar output, non-finite numbers)."""
        return self._make()[1]

    @property
    def warnings(self) -> list[str]:
        """Warnings about the program drawn: a name that mixes alphabets confusably."""
        return _name_warnings(self.graph)

    @property
    def has_values(self) -> bool:
        """Whether the picture shows values (every input had one)."""
        return self.graph_picture.values is not None

    def dot(self) -> str:
        """The DOT text (``cgraph render --format dot``); with a canvas it says ``ratio="fill"`` and ``size``, so
        that Graphviz's ``dot`` fills the same shape."""
        return self.settle().dot()

    def render(self, format: Format = "png", *, title: str | None = None, progress: Progress | None = None) -> bytes:
        """The picture as ``format`` bytes: png, svg, pdf (drawn by Graphviz), dot (the text, UTF-8) or html (an
        interactive page titled ``title``, by default the program's name; UTF-8). ``progress(done, 1)``
        (:mod:`cgraph_cli.progress`) is called while Graphviz draws png, svg or pdf."""
        check_choice(format, PICTURE_FORMATS, "--format")
        if format == "html":
            from cgraph_cli.present.html import html_page

            gp = self.settle()
            name = self.graph.source.filename if title is None else title
            return html_page(gp, name, self.timeout, fit=self.fit_job()).encode("utf-8")
        if format == "dot":
            return self.dot().encode("utf-8")
        from cgraph_cli.present.render import render_dot

        gp = self.graph_picture
        info: dict[str, Any] = {}
        if self._settled:
            data = render_dot(gp.dot(), format, self.timeout, progress, fit=self.fit_job(), info=info)
        else:  # one Graphviz run lays out both directions and draws the nearer one
            alt = [gp.dot(rankdir="TB")]
            data = render_dot(gp.dot(), format, self.timeout, progress, fit=self.fit_job(), alternatives=alt, info=info)
            gp.opts.rankdir = ("LR", "TB")[int(info.get("choice", 0))]
            self._settled = True
        self.fitted = {"rankdir": gp.opts.rankdir, **{k: v for k, v in info.items() if k != "choice"}}
        return data

    @property
    def layout_notes(self) -> list[str]:
        """After :meth:`render` with a canvas: a note when the drawing had to shrink so much that its text is small
        (less than :data:`SMALL_TEXT` points on the slide)."""
        from cgraph_cli.present.canvas import SLIDE_DPI
        from cgraph_cli.present.style import FONT_SIZE

        zoom = self.fitted.get("zoom")
        canvas = self.look.canvas
        if zoom is None or canvas is None:
            return []
        pt = (self.look.font_size or FONT_SIZE) * zoom
        if pt >= SMALL_TEXT:
            return []
        px = pt * SLIDE_DPI / 72
        return [
            f"note: to fit {canvas} pixels the drawing is scaled to {zoom:.0%}: its text is {pt:.1f} points "
            f"({px:.0f} pixels high), small on a slide; a larger --size or a smaller program reads better"
        ]

    def save(self, path: str | os.PathLike[str], *, format: Format | None = None) -> Path:
        """Write the picture to ``path`` atomically (nothing half-written); the format comes from the suffix
        (``.png``, ``.svg``, ``.pdf``, ``.dot``, ``.html``) unless given. Returns the path."""
        from cgraph_cli.fsutil import atomic_write

        target = Path(path)
        if format is None:
            suffix = target.suffix.lower().lstrip(".")
            if suffix not in PICTURE_FORMATS:
                raise CgraphError(
                    f"cannot tell the format from '{os.fspath(path)}'",
                    hint="end the name in .png, .svg, .pdf, .dot or .html, or pass --format",
                )
            format = suffix  # type: ignore[assignment]
        assert format is not None
        atomic_write(os.fspath(target), self.render(format))
        return target

    def steps(self) -> Steps:
        """The frames of the stepped passes (``cgraph render --steps``): needs every input's value."""
        if not self.has_values:
            raise CgraphError(
                "--steps shows values and gradients appearing step by step, so it needs every input's value",
                hint="give them with --at, or declare defaults with 'input a = 1'",
            )
        return Steps(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from cgraph_cli import notebook  # (the notebook views: only when a notebook shows one)

        return notebook.picture_bundle(self.render, self.dot())


@dataclass(frozen=True)
class Frame:
    """One frame of the stepped passes: ``phase`` (``"forward"`` or ``"backward"``), the step's node and its
    ``caption`` (the step's ``explain`` text), and the frame's DOT text."""

    phase: str
    node: int
    label: str
    caption: str
    dot: str


class Steps:
    """The stepped forward and backward passes: :attr:`frames`, and :meth:`render` to draw them all on one
    layout (nodes keep their places from frame to frame). In a notebook, a slider over the frames
    (ipywidgets), or a strip of every frame where ipywidgets is missing."""

    def __init__(self, picture: Picture) -> None:
        self.picture = picture
        gp = picture.settle()
        self._plan = gp.steps()
        self.frames: list[Frame] = [
            Frame(phase, i, gp.labels[i], st.caption or "", gp.dot(st)) for phase, i, st in self._plan
        ]
        self._images: dict[str, list[bytes]] = {}

    def __len__(self) -> int:
        """The number of frames: one per forward step and one per backward step."""
        return len(self.frames)

    def __iter__(self) -> Iterator[Frame]:
        """The frames in order: the forward steps, then the backward steps."""
        return iter(self.frames)

    def render(self, format: Literal["svg", "png"] = "svg", *, progress: Progress | None = None) -> list[bytes]:
        """Every frame as ``format`` bytes, laid out once (kept: a second call costs nothing).
        ``progress(done, len(self))`` (:mod:`cgraph_cli.progress`) is told the frames drawn so far."""
        check_choice(format, ("svg", "png"), "--format")
        if format not in self._images:
            from cgraph_cli.present.render import render_frames

            gp = self.picture.graph_picture
            base = gp.dot(gp.base_state(self._plan))
            texts = (f.dot for f in self.frames)
            fit = self.picture.fit_job()
            n = len(self.frames)
            with render_frames(base, texts, n, format, self.picture.timeout, progress=progress, fit=fit) as paths:
                self._images[format] = [p.read_bytes() for p in paths]
        return self._images[format]

    def _repr_html_(self) -> str:
        """Every frame in a row with its caption (the static strip)."""
        from cgraph_cli import notebook  # (the notebook views: only when a notebook shows one)

        return notebook.strip_html(self.render("svg"), [f.caption for f in self.frames])

    def _ipython_display_(self) -> None:
        from cgraph_cli import notebook  # (the notebook views: only when a notebook shows one)

        notebook.show_steps(self.render("svg"), [f.caption for f in self.frames])
