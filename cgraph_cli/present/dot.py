"""DOT source for the annotated computation graph (the picture `cgraph render` draws).

A small builder of our own, so that the text is byte-for-byte stable: nodes
are ``n<id>`` in topological order, edges ``e<k>`` in the order of their
consumers' operands, attributes are sorted, and every piece of text that comes
from a program (names, source text, numbers) goes through :func:`html_text` or
:func:`quote` (the ``graphviz`` package's escaping and quoting), so it cannot
inject Graphviz attributes.

Nodes are named as everywhere else (:func:`cgraph_cli.ir.names.node_names`: ``s₁``,
``s₂`` for a reassigned name), numbers are :func:`cgraph_cli.fmt.fmt_number` in
its picture style, and the ``--steps`` frames are :func:`cgraph_cli.analysis.explain.explain`'s
steps, each captioned with that step's ``explain`` text.

Layout choices, each for the reader of the picture:

- one box per IR node: its name (or op symbol), its value in one colour and its
  gradient ``∂out/∂node`` in another, with a legend;
- a node used twice by one op (``x * x``) gets two edges; the operands of
  non-commutative ops enter through labelled ports (``+``/``−`` for ``a - b``,
  ``num``/``den`` for ``/``, ...), so ``a - b`` and ``b - a`` look different;
- ``--edge-labels local`` writes the local derivative ``∂successor/∂node`` on each
  edge (a number for scalars, the operand's shape for tensors);
- calls of user functions are (nested) clusters;
- a leaf used by more than :data:`FANOUT` nodes is drawn once with its value and
  gradient and then as one small dashed copy per use, so that hundreds of edges
  from one node do not wreck the layout.

Graphviz itself is not run here; :mod:`cgraph_cli.present.render` lays the text out.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
from graphviz import escape
from graphviz.quoting import quote as _gv_quote

from cgraph_cli.analysis import anomaly
from cgraph_cli.analysis.explain import MAX_STEPS, Explanation, explain, step_text
from cgraph_cli.engine import evaluate
from cgraph_cli.engine.reference import Result, forward
from cgraph_cli.errors import CgraphError
from cgraph_cli.fmt import fmt_number, fmt_picture, fmt_shape, picture_grid
from cgraph_cli.ir.graph import Graph, backward_graph, name_gradients
from cgraph_cli.ir.names import node_names
from cgraph_cli.ops import LEAF_OPS, OPS
from cgraph_cli.present.style import CAPTION_CHAR, CAPTION_HEIGHT, FONT, FONT_SIZE, LIGHT, Palette, font_pt
from cgraph_cli.run.values import bind_inputs

FANOUT = 8  # a leaf with more uses than this is drawn as one copy per use

# the light theme's colours under their old names (for tests and tools); the picture takes them from its palette
VALUE_COLOR = LIGHT.value
GRAD_COLOR = LIGHT.grad
OFF_PATH = LIGHT.off_path
# what an edge's label is, in the lecture's words (an edge runs from a node to its successor): every legend says it
EDGE_MEANING = "local derivative ∂successor/∂node"
PAD = "0.08"  # inches of background around the drawing

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")


# -- escaping ----------------------------------------------------------------------


def html_text(s: str) -> str:
    """Text for the inside of an HTML-like label: XML-escaped, one line, no control characters."""
    s = _CONTROL.sub("", str(s).replace("\r\n", " ").replace("\n", " ").replace("\t", " "))
    return html.escape(s, quote=True)


def quote(s: str) -> str:
    """A double-quoted DOT string whose text is exactly ``s`` (one line).

    ``graphviz.escape`` doubles backslashes (no ``\\l`` escapes) and ``graphviz.quoting.quote`` escapes the
    quotes; it is told that nothing is a bare ID, so every value is quoted (stable text whatever the value)."""
    s = _CONTROL.sub("", str(s).replace("\r\n", " ").replace("\n", " ").replace("\t", " "))
    return _gv_quote(escape(s), is_valid_id=_never)


def _never(_: str) -> None:
    return None


class Html(str):
    """An HTML-like label built here from escaped pieces; written between ``<`` and ``>``."""


def _attrs(d: dict[str, Any]) -> str:
    """``[k1=v1 k2=v2]`` with sorted keys; :class:`Html` values as ``<...>``, the rest quoted."""
    parts = []
    for k in sorted(d):
        v = d[k]
        parts.append(f"{k}=<{v}>" if isinstance(v, Html) else f"{k}={quote(v)}")
    return "[" + " ".join(parts) + "]"


# -- the model ----------------------------------------------------------------------


@dataclass
class DotOptions:
    rankdir: str = "LR"
    edge_labels: str = "local"  # local | none
    fanout: int = FANOUT
    backward_from: int | None = None  # nodes from this id on are the backward pass as nodes (render --backward)
    palette: Palette = LIGHT  # the theme's colours (cgraph_cli.present.style)
    font_size: float = FONT_SIZE  # points: a node's text; every other text scales with it
    fill_size: tuple[float, float] | None = None  # inches: lay the drawing out to fill this box (render --size)


@dataclass
class Edge:
    id: str
    src: int  # the operand (parent) node
    dst: int  # the consumer (child) node
    k: int  # operand index
    copy: int | None = None  # the use number when the leaf is drawn as copies


@dataclass
class State:
    """What a picture shows: all values and gradients, or one step of the animation."""

    values: set[int] | None = None  # None: every value known
    grads: set[int] | None = None  # None: every gradient known
    active: int | None = None
    active_edges: set[str] = field(default_factory=set)
    phase: str = ""  # "forward" | "backward" while stepping
    caption: str | None = None  # the step's explanation under the picture (None: no caption row)
    caption_width: int = 0  # points: the caption cell has one size in every frame
    names: bool = False  # anonymous nodes show their name, as with a caption (the interactive page's captions)


class GraphPicture:
    """The picture of one graph, with values and gradients if known; ``dot(state)`` gives DOT text."""

    def __init__(
        self,
        g: Graph,
        values: list[Any] | None = None,
        grads: list[Any] | None = None,
        out: int | None = None,
        opts: DotOptions | None = None,
    ) -> None:
        self.g = g
        self.values = values
        self.grads = grads
        self.out = g.output if out is None else out
        self.opts = opts or DotOptions()
        n = len(g)
        uses = [0] * n
        for args in g.args:
            for j in args:
                uses[j] += 1
        self.uses = uses
        # a constant nothing reads, that the program did not name (grad() leaves some behind): not drawn, as it
        # says nothing (a column of them made gradient_descent's picture three times as tall)
        self.unused_constant = [
            op == "const" and not uses[i] and g.names[i] is None and i not in g.outputs for i, op in enumerate(g.ops)
        ]
        self.copied = [g.ops[i] in ("input", "const") and uses[i] > self.opts.fanout for i in range(n)]
        self.edges: list[Edge] = []
        self.in_edges: list[list[Edge]] = [[] for _ in range(n)]
        self.out_edges: list[list[Edge]] = [[] for _ in range(n)]
        seen = [0] * n
        for i, args in enumerate(g.args):
            for k, j in enumerate(args):
                copy = None
                if self.copied[j]:
                    copy = seen[j]
                    seen[j] += 1
                e = Edge(f"e{len(self.edges)}", j, i, k, copy)
                self.edges.append(e)
                self.in_edges[i].append(e)
                self.out_edges[j].append(e)
        self.edge_label_text = [self._edge_label(e) for e in self.edges]
        self.labels = node_names(g)  # as in explain, the eval table and check: s₁, s₂, (a + b), %7
        # nodes off every path to the differentiated output (ir's one definition): greyed, without a gradient
        self.off_path = (
            [not a and not self.backward(i) for i, a in enumerate(g.ancestors(self.out))] if grads is not None else None
        )

    # -- text pieces ----------------------------------------------------------------
    def _pt(self, kind: str) -> str:
        """The point size of text ``kind`` (:data:`cgraph_cli.present.style.SIZES`) at this picture's font size."""
        return font_pt(kind, self.opts.font_size)

    @property
    def out_name(self) -> str:
        return self.labels[self.out] if self.g.names[self.out] is not None else "out"

    def name_of(self, i: int) -> str:
        """A named node's name as everywhere (``s₂``), else its id ``%7`` (tooltips: the id of ``cgraph ir``)."""
        return self.labels[i] if self.g.names[i] is not None else self.g.label(i)

    def title(self, i: int) -> str:
        """The node's headline, as HTML: name in bold and op symbol, or the op symbol alone."""
        g = self.g
        op = g.ops[i]
        name = g.names[i]
        muted = self.opts.palette.muted
        if op == "const":
            value = html_text(fmt_picture(g.attrs[i]["value"]))  # type: ignore[index]
            if name is not None:  # a named constant, such as x = [1, 2, 3]
                return "<B>" + html_text(self.labels[i]) + "</B> " + f'<FONT COLOR="{muted}">' + value + "</FONT>"
            return "<B>" + value + "</B>"
        sym = "" if op == "input" else op_text(op, g.attrs[i])
        if name is None:
            return "<B>" + html_text(sym) + "</B>"
        head = "<B>" + html_text(self.labels[i]) + "</B>"
        if sym:
            head += f' <FONT COLOR="{muted}">' + html_text(sym) + "</FONT>"
        return head

    def shape_text(self, i: int) -> str:
        s = self.g.shapes[i]
        if self.values is not None and self.values[i] is not None:
            s = tuple(np.shape(self.values[i]))
        if s is None or s == () or self.g.ops[i] == "const" and s == ():
            return ""
        return fmt_shape(s)

    def _edge_label(self, e: Edge) -> str:
        if self.opts.edge_labels != "local":
            return ""
        return self.local(e)

    def local(self, e: Edge) -> str:
        """The local derivative ∂successor/∂node of an edge: a number for scalars, the operand's shape otherwise."""
        if self.values is None or self.grads is None:
            return ""
        if self.grads[e.src] is None:  # no gradient flows into a constant
            return ""
        vals = self.values
        i, j = e.dst, e.src
        if vals[i] is None or vals[j] is None:
            return ""
        if np.size(vals[i]) != 1 or np.size(vals[j]) != 1 or np.ndim(vals[j]) != np.ndim(vals[i]):
            return fmt_shape(np.shape(vals[j]))
        spec = OPS[self.g.ops[i]]
        if spec.vjp_many is not None:  # max/min of n operands: all n local derivatives at once, kept per node
            return self._many_locals(i)[e.k]
        rule = spec.vjp_for(e.k)
        if rule is None:
            return ""
        xs = [vals[a] for a in self.g.args[i]]
        try:
            with np.errstate(all="ignore"):
                d = rule(np.ones_like(vals[i]), vals[i], *xs, **(self.g.attrs[i] or {}))
            return fmt_number(np.asarray(d).reshape(()), 4, "picture")
        except Exception:  # a rule that cannot run on this value: leave the edge unlabelled
            return ""

    def _many_locals(self, i: int) -> list[str]:
        """The edge labels of every operand of a variadic op (linear in its operands, not per edge)."""
        cache = self.__dict__.setdefault("_locals_of", {})
        if i not in cache:
            vals = self.values
            assert vals is not None
            args = self.g.args[i]
            try:
                with np.errstate(all="ignore"):
                    ds = OPS[self.g.ops[i]].vjps(
                        list(range(len(args))), np.ones_like(vals[i]), vals[i], [vals[a] for a in args]
                    )
                cache[i] = ["" if d is None else fmt_number(np.asarray(d).reshape(()), 4, "picture") for d in ds]
            except Exception:  # a rule that cannot run on this value: leave the edges unlabelled
                cache[i] = [""] * len(args)
        return cache[i]

    # -- DOT --------------------------------------------------------------------------
    def dot(self, state: State | None = None, rankdir: str | None = None) -> str:
        """The DOT text of the picture in ``state`` (default: everything shown), laid out along ``rankdir``
        (default: the options')."""
        st = state or State()
        g = self.g
        o = self.opts
        pal = o.palette
        rankdir = rankdir or o.rankdir
        lr = rankdir == "LR"
        graph = {
            "bgcolor": pal.background,
            "fontname": FONT,
            "fontsize": self._pt("legend"),
            "label": self.legend(st),
            "labeljust": "l",
            "labelloc": "b",
            "nodesep": "0.3",
            "pad": PAD,
            "rankdir": rankdir,
            "ranksep": "0.45",
        }
        if o.fill_size is not None:  # laid out to fill the box: node positions spread, sizes kept (render --size)
            graph.update(ratio="fill", size=f"{o.fill_size[0]:.3f},{o.fill_size[1]:.3f}")
        node = {
            "fontname": FONT,
            "fontsize": self._pt("node"),
            "margin": "0.06,0.03",
            "penwidth": "1.2",
            "shape": "box",
            "style": "rounded,filled",
        }
        if pal.text is not None:
            node["fontcolor"] = pal.text
        edge = {
            "arrowsize": "0.7",
            "color": pal.edge,
            "fontcolor": pal.edge_label,
            "fontname": FONT,
            "fontsize": self._pt("edge"),
            "penwidth": "1.1",
        }
        lines = ["digraph cgraph {", "  graph " + _attrs(graph) + ";"]
        lines += ["  node " + _attrs(node) + ";", "  edge " + _attrs(edge) + ";"]
        # clusters: children lists, emitted with an explicit stack (frames nest)
        frames = g.frames
        members: dict[int, list[int]] = {}
        for i, f in enumerate(g.frames_of):
            members.setdefault(f, []).append(i)
        kids: dict[int, list[int]] = {}
        for k, fr in enumerate(frames):
            kids.setdefault(fr.parent, []).append(k)
        body: list[str] = []
        stack: list[tuple[str, int, int]] = [("open", -1, 0)]
        while stack:
            what, f, depth = stack.pop()
            ind = "  " * (depth + 1)
            if what == "close":
                body.append(ind[:-2] + "}")
                continue
            if f >= 0:
                body.append(ind[:-2] + f"subgraph cluster_f{f} {{")
                body.append(
                    ind
                    + "graph "
                    + _attrs(
                        {
                            "color": pal.cluster,
                            "fontcolor": pal.cluster_label,
                            "label": Html("<I>" + html_text(frames[f].name) + "</I>"),
                            "labeljust": "l",
                            "style": "rounded,dashed",
                        }
                    )
                    + ";"
                )
            for i in members.get(f, []):
                if not self.unused_constant[i]:
                    body.extend(ind + line for line in self._node_lines(i, st, lr))
            if f >= 0:
                stack.append(("close", f, depth))
            for k in reversed(kids.get(f, [])):
                stack.append(("open", k, depth + 1))
        lines.extend(body)
        for e, text in zip(self.edges, self.edge_label_text):
            lines.append("  " + self._edge_line(e, text, st, lr))
        lines.append("}")
        return "\n".join(lines) + "\n"

    def legend(self, st: State | None = None) -> Html:
        """The key under the picture (and the step's caption while stepping)."""
        pal = self.opts.palette
        parts = []
        if self.values is not None:
            parts.append(f'<FONT COLOR="{pal.value}">■ value</FONT>')
            if self.grads is not None:
                parts.append(f'<FONT COLOR="{pal.grad}">■ gradient ∂{html_text(self.out_name)}/∂node</FONT>')
            if self.opts.edge_labels == "local" and self.grads is not None:
                tensors = any(sh for sh in self.g.shapes if sh is not None)
                edge = f"edge: {EDGE_MEANING}" + ("; on a tensor edge, the operand's shape" if tensors else "")
                parts.append(f'<FONT COLOR="{pal.edge_label}">{html_text(edge)}</FONT>')
            if self.off_path is not None and any(self.off_path):
                parts.append(
                    f'<FONT COLOR="{pal.off_path}">dashed grey: not on a path to {html_text(self.out_name)}</FONT>'
                )
        else:
            parts.append(f'<FONT COLOR="{pal.muted}">structure only (no input values)</FONT>')
        if self.opts.backward_from is not None:
            what = f"backward pass as nodes: they compute ∂{html_text(self.out_name)}/∂input"
            parts.append(f'<FONT COLOR="{pal.grad}">▭ {what}</FONT>')
        rows = '<TR><TD ALIGN="LEFT">' + "&#160;&#160;&#160;&#160;".join(parts) + "</TD></TR>"
        if st is not None and st.caption is not None:
            color = pal.grad if st.phase == "backward" else pal.value
            height = f"{round(CAPTION_HEIGHT * self.opts.font_size / FONT_SIZE):d}"
            rows = (
                f'<TR><TD ALIGN="LEFT" FIXEDSIZE="TRUE" WIDTH="{st.caption_width}" HEIGHT="{height}">'
                f'<FONT COLOR="{color}" POINT-SIZE="{self._pt("caption")}">'
                + html_text(st.caption)
                + "</FONT></TD></TR>"
                + rows
            )
        return Html('<TABLE BORDER="0" CELLSPACING="2" CELLPADDING="0">' + rows + "</TABLE>")

    def _node_lines(self, i: int, st: State, lr: bool) -> list[str]:
        g = self.g
        op = g.ops[i]
        kind = op if op in ("input", "const") else "op"
        pal = self.opts.palette
        attrs = {
            "color": pal.border(kind),
            "fillcolor": pal.fill(kind),
            "id": f"n{i}",
            "label": self._label(i, st, lr),
            "tooltip": self._tooltip(i),
        }
        if i == self.out:
            attrs["penwidth"] = "2.4"
        if self.off_path is not None and self.off_path[i]:
            attrs.update(
                color=pal.off_path, fillcolor=pal.off_path_fill, fontcolor=pal.off_path, style="rounded,filled,dashed"
            )
            attrs["tooltip"] += f"; not on a path to {self.out_name}"
        if kind == "const":
            attrs["fontsize"] = self._pt("small")
        if self.backward(i):
            attrs["color"] = pal.grad
            if kind != "const":
                attrs["fillcolor"] = pal.backward_fill
            attrs["style"] = "rounded,filled,dashed" if kind == "const" else "rounded,filled"
        if st.active == i:
            attrs["color"] = pal.grad if st.phase == "backward" else pal.value
            attrs["penwidth"] = "3.2"
        out = [f"n{i} {_attrs(attrs)};"]
        if self.copied[i]:
            name = html_text(self.labels[i] if op == "input" else fmt_picture(g.attrs[i]["value"]))  # type: ignore[index]
            for e in self.out_edges[i]:
                cattrs = {
                    "color": pal.border(kind),
                    "fillcolor": pal.fill(kind),
                    "fontsize": self._pt("small"),
                    "id": f"n{i}_{e.copy}",
                    "label": Html(name),
                    "style": "rounded,filled,dashed",
                    "tooltip": f"one use of {self.name_of(i)} (drawn once per use)",
                }
                if e.id in st.active_edges:
                    cattrs["penwidth"] = "2.4"
                    cattrs["color"] = pal.grad if st.phase == "backward" else pal.value
                out.append(f"n{i}_{e.copy} {_attrs(cattrs)};")
        return out

    def backward(self, i: int) -> bool:
        """Whether node ``i`` belongs to the backward pass drawn as nodes (``render --backward``)."""
        return self.opts.backward_from is not None and i >= self.opts.backward_from

    def _tooltip(self, i: int) -> str:
        g = self.g
        line, col = g.line_col(i)
        text = " ".join(g.text(i).split())
        if len(text) > 80:
            text = text[:77] + "..."
        return f"{self.name_of(i)}: {g.ops[i]}  {text}  (line {line}, column {col})"

    def _label(self, i: int, st: State, lr: bool) -> Html:
        g = self.g
        op = g.ops[i]
        pal = self.opts.palette
        muted = pal.muted
        rows = []
        head = self.title(i)
        shape = self.shape_text(i)
        if shape:
            head += f' <FONT COLOR="{muted}" POINT-SIZE="{self._pt("small")}">' + html_text(shape) + "</FONT>"
        if self.copied[i]:
            head += f' <FONT COLOR="{muted}" POINT-SIZE="{self._pt("small")}">(×{self.uses[i]} uses)</FONT>'
        if (st.caption is not None or st.names) and g.names[i] is None and op != "const":  # the captions name it
            head += f' <FONT COLOR="{muted}" POINT-SIZE="{self._pt("hint")}">' + html_text(self.labels[i]) + "</FONT>"
        rows.append(f"<TR><TD>{head}</TD></TR>")
        fill = pal.fill("const" if op == "const" else "input" if op == "input" else "op")
        off = self.off_path is not None and self.off_path[i]
        if self.values is not None and op != "const":
            v = self.values[i]
            if v is not None:
                color = (pal.off_path if off else pal.value) if st.values is None or i in st.values else fill
                rows.append(f"<TR><TD>{_number_html(v, color)}</TD></TR>")
        if self.grads is not None and self.grads[i] is not None and not off:
            color = pal.grad if st.grads is None or i in st.grads else fill
            rows.append(f"<TR><TD>{_number_html(self.grads[i], color, '∂ ')}</TD></TR>")
        content = '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">' + "".join(rows) + "</TABLE>"
        names = self._port_names(i)
        if not names:
            return Html(content)
        cell = '<TD PORT="p{k}" BGCOLOR="{bg}"><FONT POINT-SIZE="{pt}" COLOR="{fg}">{t}</FONT></TD>'
        port = {"bg": pal.port_fill, "fg": pal.port_text, "pt": self._pt("port")}
        ports = [cell.format(k=k, t=html_text(t), **port) for k, t in enumerate(names)]
        if lr:
            port_table = (
                '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="2" CELLPADDING="1">'
                + "".join(f"<TR>{p}</TR>" for p in ports)
                + "</TABLE>"
            )
            outer = f"<TR><TD>{port_table}</TD><TD>{content}</TD></TR>"
        else:
            port_table = (
                '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="2" CELLPADDING="1"><TR>'
                + "".join(ports)
                + "</TR></TABLE>"
            )
            outer = f"<TR><TD>{port_table}</TD></TR><TR><TD>{content}</TD></TR>"
        return Html('<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="0">' + outer + "</TABLE>")

    def _port_names(self, i: int) -> tuple[str, ...]:
        cache = self.__dict__.setdefault("_ports_of", {})  # max(a1, ..., an): n ports, asked for by n edges
        if i not in cache:
            cache[i] = self._port_names_of(i)
        return cache[i]

    def _port_names_of(self, i: int) -> tuple[str, ...]:
        op = self.g.ops[i]
        n = len(self.g.args[i])
        if op in LEAF_OPS or n < 2 or OPS[op].commutative:
            return ()
        named = OPS[op].ports
        if named is not None and len(named) == n:
            return named
        return tuple(str(k + 1) for k in range(n))

    def _edge_line(self, e: Edge, text: str, st: State, lr: bool) -> str:
        src = f"n{e.src}" if e.copy is None else f"n{e.src}_{e.copy}"
        dst = f"n{e.dst}"
        if self._port_names(e.dst):
            dst += f":p{e.k}:{'w' if lr else 'n'}"
        attrs = {"id": e.id}
        pal = self.opts.palette
        if self.off_path is not None and self.off_path[e.dst]:  # no gradient flows back along it
            attrs.update(color=pal.off_path, style="dashed")
            text = ""
        if self.backward(e.dst):
            attrs["color"] = pal.grad
            attrs["style"] = "dashed"
        if text:
            shown = st.values is None or e.dst in st.values
            attrs["label"] = Html(html_text(text) if shown else _blank(text, pal.background))
        if e.id in st.active_edges:
            attrs["color"] = pal.grad if st.phase == "backward" else pal.value
            attrs["penwidth"] = "2.6"
            if st.phase == "backward":
                attrs["fontcolor"] = pal.grad
        return f"{src} -> {dst} {_attrs(attrs)};"

    # -- the animation -----------------------------------------------------------------
    def explanation(self) -> Explanation:
        """``explain``'s steps of this picture's values and gradients (forward steps only without gradients)."""
        g = self.g
        if self.values is None:
            raise CgraphError("--steps needs every input's value")
        if len(g) > MAX_STEPS:
            raise CgraphError(
                f"--steps draws a frame per step of a {len(g):,}-node graph (at most {MAX_STEPS:,} nodes), "
                "which takes too long",
                hint="render a smaller program step by step, or draw the whole graph without --steps",
            )
        grads = self.grads if self.grads is not None else [None] * len(g)
        result = Result(g, self.values, grads, self.out, {}, [])
        return explain(result, backward=self.grads is not None)

    def steps(self, ex: Explanation | None = None) -> list[tuple[str, int, State]]:
        """The frames of ``--steps``: (phase, node, state), one per step of ``explain``: its forward steps, then
        its backward steps, each captioned with the step's ``explain`` text on one line. ``ex``: this picture's
        :meth:`explanation`, when the caller has it already."""
        ex = self.explanation() if ex is None else ex
        frames: list[tuple[str, int, State]] = []
        known: set[int] = set()
        for k, fst in enumerate(ex.forward):
            i = fst.node
            known = known | {i}
            edges = {e.id for e in self.in_edges[i]}
            st = State(values=known, grads=set(), active=i, active_edges=edges, phase="forward")
            st.caption = f"forward {k + 1}/{len(ex.forward)}:  {caption_text(step_text(ex, 'forward', k))}"
            frames.append(("forward", i, st))
        have: set[int] = set()
        for k, bst in enumerate(ex.backward):
            i = bst.node
            have = have | {i}
            successors = {t.successor for t in bst.terms}
            edges = {e.id for e in self.out_edges[i] if e.dst in successors}
            st = State(values=None, grads=have, active=i, active_edges=edges, phase="backward")
            st.caption = f"backward {k + 1}/{len(ex.backward)}:  {caption_text(step_text(ex, 'backward', k))}"
            frames.append(("backward", i, st))
        if ex.backward and self.grads is not None:  # the last frame is the finished picture: every gradient
            frames[-1][2].grads = {i for i, gr in enumerate(self.grads) if gr is not None}
        width = max([len(st.caption or "") for _, _, st in frames] + [20])
        for _, _, st in frames:
            st.caption_width = int(width * CAPTION_CHAR * self.opts.font_size / FONT_SIZE) + 16
        return frames

    def base_state(self, frames: list[tuple[str, int, State]]) -> State:
        """The state whose layout every frame of ``frames`` reuses: everything shown, the caption row reserved."""
        if not frames:
            return State()
        longest = max((st.caption or "" for _, _, st in frames), key=len)
        return State(caption=longest, caption_width=frames[0][2].caption_width)


MAX_CAPTION = 110  # characters: a longer step's text loses middle parts of its chain of equalities


def caption_text(text: str, limit: int = MAX_CAPTION) -> str:
    """A step's ``explain`` text shortened for a caption: while longer than ``limit``, the longest middle part of
    ``lhs = formula = numbers = result`` becomes ``…`` (the left-hand side and the result always stay)."""
    parts = text.split(" = ")
    while len(" = ".join(parts)) > limit:
        middle = [k for k in range(1, len(parts) - 1) if parts[k] != "…"]
        if not middle:
            break
        k = max(middle, key=lambda m: len(parts[m]))
        parts[k] = "…"
        parts = [p for n, p in enumerate(parts) if not (p == "…" and n and parts[n - 1] == "…")]
    return " = ".join(parts)


def _number_html(v: Any, color: str, prefix: str = "") -> str:
    """A value or gradient in a box: one line (:func:`fmt_picture`), or a small tensor in full as a matrix
    (:func:`picture_grid`): its entries right-aligned in columns between two bracket lines."""
    grid = picture_grid(v)
    if grid is None:
        return f'<FONT COLOR="{color}">{html_text(prefix + fmt_picture(v))}</FONT>'
    n = len(grid)
    bracket = '<TD ROWSPAN="{n}" BORDER="1" SIDES="{sides}" COLOR="{color}" FIXEDSIZE="TRUE" WIDTH="4" HEIGHT="4"></TD>'
    left = bracket.format(n=n, sides="LTB", color=color)
    right = bracket.format(n=n, sides="RTB", color=color)
    head = f'<TD ROWSPAN="{n}"><FONT COLOR="{color}">{html_text(prefix.strip())}</FONT></TD>' if prefix else ""
    trs = []
    for k, row in enumerate(grid):
        cells = "".join(f'<TD ALIGN="RIGHT"><FONT COLOR="{color}">{html_text(t)}</FONT></TD>' for t in row)
        trs.append("<TR>" + (head + left if k == 0 else "") + cells + (right if k == 0 else "") + "</TR>")
    matrix = '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="1" CELLPADDING="2">' + "".join(trs) + "</TABLE>"
    # empty cells on both sides take the box's extra width: Graphviz would stretch the matrix's columns instead
    return (
        '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="0"><TR><TD WIDTH="0"></TD>'
        + f'<TD>{matrix}</TD><TD WIDTH="0"></TD></TR></TABLE>'
    )


def _blank(text: str, background: str) -> str:
    """Invisible text of the same width: the label keeps its place in every frame."""
    return f'<FONT COLOR="{background}">{html_text(text)}</FONT>'


def op_text(op: str, attrs: dict | None) -> str:
    spec = OPS[op]
    if not attrs:
        return spec.glyph
    if spec.label is not None:
        return spec.label(attrs)
    extra = []
    for k, v in sorted(attrs.items()):
        extra.append(f"{k}={fmt_shape(v) if isinstance(v, tuple) else v}")
    return f"{spec.glyph} " + " ".join(extra)


def graph_dot(
    g: Graph,
    values: list[Any] | None = None,
    grads: list[Any] | None = None,
    out: int | None = None,
    *,
    rankdir: str = "LR",
    edge_labels: str = "local",
    palette: Palette = LIGHT,
    font_size: float = FONT_SIZE,
) -> str:
    """The DOT text `cgraph render --format dot` writes."""
    opts = DotOptions(rankdir=rankdir, edge_labels=edge_labels, palette=palette, font_size=font_size)
    return GraphPicture(g, values, grads, out, opts).dot()


def ir_dot(g: Graph, given: dict[str, Any] | None = None) -> str:
    """`cgraph ir --format dot`: what `render --format dot` writes: values and gradients when every input
    has one (from ``given`` or its default), else the structure."""
    values, grads, out = evaluate_for_picture(g, given or {})
    return graph_dot(g, values, grads, out)


def evaluate_for_picture(
    g: Graph, given: dict[str, Any], of: int | None = None, notes: list[str] | None = None
) -> tuple[list[Any] | None, list[Any] | None, int]:
    """Values and gradients for a picture; (None, None, out) when an input has no value.

    A non-scalar output gets values but no gradients. Each such case adds a line to ``notes``.
    """
    out = g.output if of is None else of
    notes = notes if notes is not None else []
    inputs = bind_inputs(g, given, require=False)
    missing = [name for name in g.inputs if name not in inputs]
    if missing:
        word = "input" if len(missing) == 1 else "inputs"
        notes.append(
            f"note: no value for {word} {', '.join(missing)}; drawing the structure only "
            f"(give values with --at, e.g. --at {missing[0]}=1)"
        )
        return None, None, out
    values = forward(g, inputs)
    if np.size(values[out]) != 1:
        notes.append(
            f"note: output '{g.label(out)}' has shape {fmt_shape(np.shape(values[out]))}, not a scalar; "
            "drawing values without gradients"
        )
        return values, None, out
    result = evaluate(g, inputs, out)
    notes.extend(anomaly.warnings(result))
    return result.values, result.grads, out


def with_backward(
    g: Graph, out: int, values: list[Any] | None, given: dict[str, Any], max_memory: int | None, max_nodes: int
) -> tuple[Graph, list[Any] | None]:
    """``render --backward``: the graph extended with its backward pass as nodes, each input's gradient named
    ``∂out/∂x``, and the values of all its nodes (those of the backward nodes are the gradient's pieces; no
    gradients of this larger graph are drawn). Draw it with ``DotOptions(backward_from=len(g))``."""
    if values is not None and np.size(values[out]) != 1:
        raise CgraphError(
            f"--backward draws the gradient of a scalar, but '{g.label(out)}' has shape "
            f"{fmt_shape(np.shape(values[out]))}",
            g.spans[out],
            hint=f"draw a scalar such as sum({g.label(out)}), or pick one with --of",
            source=g.source,
        )
    bg, grads = backward_graph(g, out, max_memory=max_memory)
    if len(bg) > max_nodes:
        raise CgraphError(
            f"with its backward pass the graph has {len(bg):,} nodes, more than --max-nodes {max_nodes}",
            hint="draw a smaller program, or raise the limit with --max-nodes N",
        )
    name_gradients(bg, g, out, grads)
    if values is not None:
        values = forward(bg, bind_inputs(bg, given, require=False))
    return bg, values


def node_ids(lines: Iterable[str]) -> list[str]:
    """The node ids declared in DOT text made by this module (for tests and tools)."""
    out = []
    for line in lines:
        m = re.match(r"\s*(n\d+(?:_\d+)?) \[", line)
        if m:
            out.append(m.group(1))
    return out
