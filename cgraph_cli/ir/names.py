"""The one naming of nodes for people: the eval table, ``explain``, ``check``, the pictures and the warnings.

- A named node is shown by its name; a name assigned several times gets a subscript per assignment
  (``s₁``, ``s₂``, ...), in program order.
- An anonymous node is shown by its source text in parentheses, such as ``(w * x)`` (none are added
  around a call such as ``dot(w, x)`` or text already in parentheses). When that text is longer than
  :data:`MAX_LABEL`, appears twice, reads like a name, or lies inside a user function (where it would name
  the function's parameters), the node is shown as ``%ID``, its id in ``cgraph ir``.
- An anonymous constant is shown by its value (``%ID`` beyond :data:`~cgraph_cli.fmt.FULL` entries).

JSON and CSV outputs keep the plain name (``Graph.names`` / ``Graph.label``); this is for text meant to be read.
"""

from __future__ import annotations

import re

import numpy as np

from cgraph_cli.fmt import FULL, fmt_list
from cgraph_cli.ir.graph import Graph
from cgraph_cli.ops.text import balanced_outer

MAX_LABEL = 20  # longer source text is shown as %ID

_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_WORD = re.compile(r"\S+")
_CALL = re.compile(r"[A-Za-z_]\w*\(.*\)")


def node_names(g: Graph) -> list[str]:
    """The readable name of every node (see the module's docstring)."""
    counts: dict[str, int] = {}
    for n in g.names:
        if n is not None:
            counts[n] = counts.get(n, 0) + 1
    seen: dict[str, int] = {}
    labels: list[str] = []
    for i, n in enumerate(g.names):
        if n is None:
            labels.append(_anonymous(g, i))
        elif counts[n] > 1:
            seen[n] = seen.get(n, 0) + 1
            labels.append(n + str(seen[n]).translate(_SUBSCRIPTS))
        else:
            labels.append(n)
    # anonymous labels must be unique and must not look like a name
    taken: dict[str, int] = {}
    for i, lab in enumerate(labels):
        if g.names[i] is None and g.ops[i] != "const":
            taken[lab] = taken.get(lab, 0) + 1
    named = {lab for i, lab in enumerate(labels) if g.names[i] is not None}
    for i, lab in enumerate(labels):
        if g.names[i] is None and g.ops[i] != "const" and (taken[lab] > 1 or lab in named):
            labels[i] = f"%{i}"
    return labels


def _anonymous(g: Graph, i: int) -> str:
    if g.ops[i] == "const":
        v = np.asarray(g.attrs[i]["value"])  # type: ignore[index]
        return fmt_list(v) if v.size <= FULL else f"%{i}"
    if g.frames_of[i] != -1:
        return f"%{i}"
    text = _one_line(g, i)
    if not text:
        return f"%{i}"
    if text.startswith("(") and text.endswith(")") and balanced_outer(text):
        return text
    if _CALL.fullmatch(text) and balanced_outer(text):
        return text
    return f"({text})"


def _one_line(g: Graph, i: int) -> str:
    """The node's source text with its white space collapsed; "" when longer than :data:`MAX_LABEL`.

    Reads at most about MAX_LABEL characters of words, so that naming every node of a long sum (each node's
    text a longer prefix of one line) stays linear."""
    s, e = g.spans[i]
    words: list[str] = []
    size = -1
    for m in _WORD.finditer(g.source.text, s, e):
        size += len(m.group()) + 1
        if size > MAX_LABEL:
            return ""
        words.append(m.group())
    return " ".join(words)
