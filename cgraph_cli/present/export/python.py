"""A program as a Python module for numpy, JAX or PyTorch (``cgraph export --to numpy|jax|torch``).

One statement per node of the forward graph, in topological order, each with the node's readable name and
source line in a comment; the spelling of each op comes from its record (``Op.lower``). The text depends on
nothing but the program, its input values and the target, so the same program gives the same bytes; it is
written to pass ``ruff check`` (lines of at most :data:`WIDTH` characters, sorted imports, no unused names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from cgraph_cli.fmt import fmt_code, fmt_shape
from cgraph_cli.ops import OPS
from cgraph_cli.ops.core import Site
from cgraph_cli.present.export.plan import Plan, code_for, write

WIDTH = 100  # generated lines stay within this (ruff's E501 at the project's 120, and readable)
INDENT = "    "


@dataclass(frozen=True)
class Target:
    """How a Python target spells the things around the ops."""

    name: str  # numpy, jax, torch
    module: str  # the alias in templates: np, jnp, torch
    title: str  # how the docstring names the library
    function: str  # the function computing the output
    inf: str
    nan: str

    def array(self, literal: str) -> str:
        """A module-level constant or default from a nested-list literal."""
        if self.name == "torch":
            return f"torch.tensor({literal}, dtype=torch.float64)"
        return f"np.array({literal})"

    def empty(self, shape: tuple[int, ...]) -> str:
        if self.name == "torch":
            return f"torch.zeros({shape}, dtype=torch.float64)"
        return f"np.zeros({shape})"

    def convert(self, name: str) -> str:
        """A parameter as an array of float64."""
        if self.name == "torch":
            return f"torch.as_tensor({name}, dtype=torch.float64)"
        return f"{self.module}.asarray({name}, dtype={self.module}.float64)"


TARGETS = {
    "numpy": Target("numpy", "np", "numpy", "forward", "np.inf", "np.nan"),
    "jax": Target("jax", "jnp", "jax.numpy", "f", "jnp.inf", "jnp.nan"),
    "torch": Target("torch", "torch", "PyTorch", "f", "torch.inf", "torch.nan"),
}


def helper_defines(text: str) -> set[str]:
    """The module-level names a helper defines (functions and assignments)."""
    return {m.group(1) or m.group(2) for m in re.finditer(r"^(?:def (\w+)|(\w+) = )", text, re.M)}


def helper_names() -> set[str]:
    """Every helper function name the records may put into a module (reserved for them)."""
    names = set()
    for op in OPS.values():
        if op.lower is None:
            continue
        for target in TARGETS:
            code = op.lower.code(target)
            if code is not None:
                for h in code.helpers:
                    names |= helper_defines(h)
    return names


def module(plan: Plan, target_name: str, source_name: str) -> str:
    """The module's text."""
    t = TARGETS[target_name]
    w = _Writer(plan, t)
    body = w.prologue(plan.used) + w.statements(plan.nodes)
    body.append(f"{INDENT}return {w.result(plan.out)}")
    params = _params(plan, t)
    functions = [_function(t.function, params, _fn_doc(plan), body)]
    if plan.gradients:
        functions.append(_function("value_and_grad", params, _grad_doc(plan), w.value_and_grad()))
    defaults = _defaults(plan, t)
    code_text = "\n".join([*w.constants, *defaults, *w.helpers, *functions])  # for the import scan
    text = _docstring(plan, t, source_name, w.notes) + "\n\n" + _imports(code_text) + "\n"
    if w.constants or defaults:
        text += "\n" + "\n".join(defaults + w.constants) + "\n"
    for block in [*w.helpers, *functions]:
        text += "\n\n" + block + "\n"
    return text


class _Writer:
    """The statements of a module: each node's spelling, and what they need at module level (constants,
    helper functions, the notes on kinks for the docstring)."""

    def __init__(self, plan: Plan, t: Target) -> None:
        self.plan = plan
        self.t = t
        self.helpers: list[str] = []
        self.notes: list[str] = []
        self.constants: list[str] = []
        self.operand: dict[int, str] = {}
        g = plan.g
        for i in plan.inputs:
            self.operand[i] = plan.ident[i]
        for i in plan.consts:
            value = np.asarray(g.attrs[i]["value"], dtype=np.float64)  # type: ignore[index]
            if value.ndim == 0 and t.name != "torch":
                text = fmt_code(value, t.inf, t.nan)
                self.operand[i] = f"({text})" if text.startswith("-") else text
            else:
                self.operand[i] = plan.ident[i]
                self.constants += _assign(plan.ident[i], _array(t, value), plan.comment(i), "")

    def prologue(self, inputs: set[int]) -> list[str]:
        """The parameters the statements read, as float64 arrays (program order)."""
        out: list[str] = []
        for i in self.plan.inputs:
            if i in inputs:
                out += _assign(self.plan.ident[i], self.t.convert(self.plan.ident[i]), None, INDENT)
        return out

    def statements(self, nodes: list[int]) -> list[str]:
        """One assignment per node, its comment naming the node and its line."""
        plan, t, g = self.plan, self.t, self.plan.g
        out: list[str] = []
        for i in nodes:
            code = code_for(plan, i, t.name)
            args = g.args[i]
            site = Site(
                [self.operand[j] for j in args],
                dict(g.attrs[i] or {}),
                [plan.shape(j) for j in args],
                plan.shape(i),
                t.module,
            )
            expr = write(plan, i, t.name, code, site)
            for h in code.helpers:
                h = h.rstrip("\n")
                if h not in self.helpers:
                    self.helpers.append(h)
            if code.note and code.note not in self.notes and t.name != "numpy":  # numpy does not differentiate
                self.notes.append(code.note)
            self.operand[i] = plan.ident[i]
            out += _assign(plan.ident[i], expr, plan.comment(i), INDENT)
        return out

    def result(self, i: int) -> str:
        """Node ``i`` as a returned value: a constant becomes a fresh array (a constant output is an array all
        the same; a module-level constant is not handed out to be changed)."""
        if i not in self.plan.consts:
            return self.operand[i]
        if self.operand[i] == self.plan.ident[i] and self.t.name != "torch":  # a module-level array
            return f"np.array({self.operand[i]})"
        return self.t.convert(self.operand[i])

    def value_and_grad(self) -> list[str]:
        """The forward statements, then the backward pass in reverse order, then the output and gradients."""
        plan, g = self.plan, self.plan.g
        reads = {j for i in plan.nodes + plan.backward for j in g.args[i]}
        body = self.prologue({i for i in plan.inputs if i in reads})
        body += self.statements(plan.nodes)
        start = f"d_{plan.ident[plan.out]} = 1" if plan.out not in plan.inputs else "1"
        body += _comment(
            f"The backward pass, from {plan.name} back to the inputs: d_v holds ∂{plan.name}/∂v, starting from "
            f"{start}; each step applies the derivative of the forward statement named on its right.",
            INDENT,
        )
        backward = self.statements(plan.backward)
        if any("np.where(" in line for line in backward):  # a formula computes both sides of a kink and keeps
            # one: numpy's warnings about the side not kept (log(0) for 0^0, 0 * inf) would be false alarms
            body += _comment(
                "The derivative formulas compute both sides of a kink and keep one, so numpy's warnings about "
                "the other side are silenced.",
                INDENT,
            )
            body.append(f'{INDENT}with np.errstate(divide="ignore", invalid="ignore"):')
            backward = [INDENT + line for line in backward]  # (a line may pass WIDTH by this indent)
        body += backward
        value = self.result(plan.out)
        entries = [f'"{g.names[i]}": {self.result(n)}' for i, n in plan.grads.items()]
        one = f"{INDENT}return {value}, {{{', '.join(entries)}}}"
        if len(one) <= WIDTH:
            body.append(one)
        else:
            body += [f"{INDENT}return {value}, {{", *(f"{INDENT * 2}{e}," for e in entries), f"{INDENT}}}"]
        return body


def _function(name: str, params: list[str], doc: str, body: list[str]) -> str:
    signature = f"def {name}({', '.join(params)}):"
    if len(signature) > WIDTH:
        signature = f"def {name}(\n" + "".join(f"{INDENT}{p},\n" for p in params) + "):"
    return "\n".join([signature, *_docstring_lines(doc, INDENT), *body])


def _docstring_lines(doc: str, indent: str) -> list[str]:
    one = f'{indent}"""{doc}"""'
    if len(one) <= WIDTH:
        return [one]
    lines = _wrap_words(f'"""{doc}', indent)
    return [indent + lines[0], *lines[1:], f'{indent}"""']


def _comment(text: str, indent: str) -> list[str]:
    return [f"{indent}# {line}" for line in _wrap_words(text, "", WIDTH - len(indent) - 2)]


def _array(t: Target, value: np.ndarray) -> str:
    if value.size == 0:
        return t.empty(value.shape)
    return t.array(fmt_code(value, t.inf, t.nan))


def _params(plan: Plan, t: Target) -> list[str]:
    """Inputs without a default first, then those with one (program order in each), all keywords too."""
    g = plan.g
    required = [plan.ident[i] for i in plan.inputs if g.names[i] not in plan.defaults]
    optional = [f'{plan.ident[i]}=DEFAULTS["{g.names[i]}"]' for i in plan.inputs if g.names[i] in plan.defaults]
    return required + optional


def _defaults(plan: Plan, t: Target) -> list[str]:
    if not plan.defaults:
        return []
    lines = ["DEFAULTS = {"]
    for name, value in plan.defaults.items():
        lines += _wrap(f'{INDENT}"{name}": {_array(t, value)},', INDENT * 2)
    lines.append("}")
    return lines


def _fn_doc(plan: Plan) -> str:
    return f"The output {plan.name} (line {plan.line(plan.out)}), shape {fmt_shape(plan.shape(plan.out))}."


def _grad_doc(plan: Plan) -> str:
    name = plan.name
    return f"The output {name} (line {plan.line(plan.out)}) and its gradients: ({name}, {{input: ∂{name}/∂input}})."


def _imports(code: str) -> str:
    lines = []
    if re.search(r"(?<![\w.])math\.", code):
        lines += ["import math", ""]  # the standard library first, as isort sorts
    if re.search(r"(?<![\w.])jax\.", code):
        lines.append("import jax")
    if re.search(r"(?<![\w.])jnp\.", code):
        lines.append("import jax.numpy as jnp")
    if re.search(r"(?<![\w.])np\.", code):
        lines.append("import numpy as np")
    if re.search(r"(?<![\w.])torch\.", code):
        lines.append("import torch")
    return "\n".join(lines)


def _assign(name: str, expr: str, comment: str | None, indent: str) -> list[str]:
    """``name = expr  # comment``, the comment on the line above when the line would be too long."""
    line = f"{indent}{name} = {expr}"
    if comment is None:
        return _wrap(line, indent + INDENT)
    one = f"{line}  # {comment}"
    if len(one) <= WIDTH:
        return [one]
    return [f"{indent}# {comment}", *_wrap(line, indent + INDENT)]


def _wrap(line: str, indent: str) -> list[str]:
    """A long line broken after commas (every comma of generated code is inside brackets)."""
    if len(line) <= WIDTH:
        return [line]
    out: list[str] = []
    current = ""
    for piece in re.split(r"(?<=, )", line):
        if current and len(current) + len(piece) > WIDTH:
            out.append(current.rstrip())
            current = indent + piece
        else:
            current += piece
    out.append(current)
    return out


def _docstring(plan: Plan, t: Target, source_name: str, notes: list[str]) -> str:
    g = plan.g
    names = [g.names[i] for i in plan.inputs]
    lines = [
        f"{plan.name} of {source_name}, computed with {t.title}: exported by cgraph.",
        "",
    ]
    lines += _usage(plan, t)
    lines += ["", "Inputs (float64):"]
    for i, name in zip(plan.inputs, names):
        extra = "default in DEFAULTS" if name in plan.defaults else "required"
        renamed = "" if plan.ident[i] == name else f", parameter {plan.ident[i]}"
        lines.append(f"    {name}: shape {fmt_shape(plan.shape(i))}, {extra}{renamed}")
    lines.append(f"Output: {plan.name}, shape {fmt_shape(plan.shape(plan.out))}.")
    if notes:
        lines += ["", "Derivatives at kinks are PyTorch's, as in cgraph:"]
        for note in notes:
            lines += _wrap_words(f"- {note}.", "  ")
    lines += ["", "Generated by `cgraph export`: regenerate it rather than edit it."]
    text = "\n".join(line.rstrip() for line in lines)
    return f'"""{text}\n"""'


def _usage(plan: Plan, t: Target) -> list[str]:
    call = "inputs = dict(DEFAULTS)" if plan.defaults else "inputs = {}"
    missing = [plan.g.names[i] for i in plan.inputs if plan.g.names[i] not in plan.defaults]
    fill = f"  # and {', '.join(missing)}" if missing else ""
    if t.name == "numpy":
        lines = [
            "forward(**inputs) returns the output as a numpy array"
            + (", value_and_grad(**inputs) also its gradients:" if plan.gradients else ":"),
            "",
            f"    {call}{fill}",
            "    value = forward(**inputs)",
        ]
        if plan.gradients:
            lines += [
                "    value, grads = value_and_grad(**inputs)  # grads[name]: the gradient of input name",
                "",
                "value_and_grad is the backward pass written out: after the forward statements, one statement",
                "per step of reverse mode, from the output back to the inputs, each computing with the",
                "derivative of the forward statement named in its comment (cgraph's own formulas).",
            ]
        else:
            shape = plan.shape(plan.out)
            lines += ["", f"No value_and_grad: the output has shape {fmt_shape(shape)}, and only a one-number"]
            lines += ["output has a gradient (export sum(...) or mean(...) of it for one)."]
        return lines
    if t.name == "jax":
        return [
            "f(**inputs) computes the output with jax.numpy, so JAX's transformations apply:",
            "",
            "    import jax",
            '    jax.config.update("jax_enable_x64", True)  # cgraph computes in float64',
            f"    {call}{fill}",
            "    value, grads = jax.value_and_grad(lambda inputs: f(**inputs))(inputs)",
            "    fast = jax.jit(f)",
            "    hessian = jax.hessian(lambda inputs: f(**inputs))(inputs)",
        ]
    return [
        "f(**inputs) computes the output with torch operations, so torch.func and torch.compile apply:",
        "",
        "    import torch",
        f"    {call}{fill}",
        "    grads = torch.func.grad(lambda inputs: f(**inputs))(inputs)",
        "    fast = torch.compile(f)",
    ]


def _wrap_words(text: str, indent: str, width: int = WIDTH - 4) -> list[str]:
    out, current = [], ""
    for word in text.split(" "):
        if current and len(current) + 1 + len(word) > width:
            out.append(current)
            current = indent + word
        else:
            current = f"{current} {word}" if current else word
    out.append(current)
    return out
