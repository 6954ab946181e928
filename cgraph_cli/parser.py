"""Parse cgraph source text into a list of statements (small AST tuples).

Lark's LALR parser calls :class:`AstBuilder` on every reduction, so no parse
tree is ever built and nothing recurses over the input.  Lark's exceptions are
translated here, at this one boundary, into :class:`CgraphError` with a span.

AST nodes are tuples ``(kind, start, end, ...)`` where start/end are character
offsets into the source:

- ``("num", s, e, value)``
- ``("name", s, e, ident)``
- ``("bin", s, e, op, lhs, rhs, op_start)`` with op in add/sub/mul/div/matmul/pow
- ``("neg", s, e, x)``
- ``("call", s, e, fname, args, name_end)``
- ``("index", s, e, x, subs)`` with subs items ``("i", expr)`` or ``("s", a, b, c)``
- ``("tensor", s, e, items)``

Statements:

- ``("assign", s, e, name, name_span, expr)``
- ``("input", s, e, items)`` with items ``(name, span, "name"|"default"|"shape", payload)``
- ``("output", s, e, [(name, span), ...])``
- ``("def", s, e, fname, fspan, [(param, span), ...], body)``
- ``("bare", s, e, expr)``
"""

from __future__ import annotations

import os
from pathlib import Path

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from cgraph_cli.errors import CgraphError, Source

_BINOPS = {"PLUS": "add", "MINUS": "sub", "STAR": "mul", "SLASH": "div", "AT": "matmul", "POW": "pow"}

# How Lark's terminal names read in "expected ..." messages.
_TERMINAL_NAMES = {
    "NAME": "a name",
    "NUMBER": "a number",
    "_SEP": "end of statement",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "COMMA": "','",
    "EQUAL": "'='",
    "COLON": "':'",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "AT": "'@'",
    "POW": "'^'",
    "INPUT": "'input'",
    "OUTPUT": "'output'",
    "DEF": "'def'",
    "$END": "end of input",
}


def grammar_path() -> Path:
    """The grammar file: inside the installed package, or the repository's grammars/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "grammars" / "cgraph.lark", here.parent / "grammars" / "cgraph.lark"):
        if candidate.is_file():
            return candidate
    raise CgraphError("internal error: the grammar file cgraph.lark is missing from the installation")


def _kept(children):
    """Children that are AST values, without punctuation tokens and empty optionals."""
    return [c for c in children if c is not None and not isinstance(c, Token)]


class AstBuilder:
    """Callbacks for Lark's LALR parser: one method per ``-> alias`` in the grammar."""

    # -- statements ---------------------------------------------------------------
    def program(self, children):
        return [c for c in children if c is not None]

    def assign(self, c):
        name, expr = c[0], c[-1]
        return ("assign", name.start_pos, expr[2], str(name), (name.start_pos, name.end_pos), expr)

    def input_decl(self, c):
        kw = c[0]
        items = c[1:]
        return ("input", kw.start_pos, items[-1][1][1], items)

    def in_name(self, c):
        t = c[0]
        return (str(t), (t.start_pos, t.end_pos), "name", None)

    def in_default(self, c):
        t, expr = c[0], c[-1]
        return (str(t), (t.start_pos, t.end_pos), "default", expr)

    def in_shape(self, c):
        t = c[0]
        dims = []
        for tok in c[2:-1]:
            text = str(tok)
            if not text.isdigit():
                raise CgraphError(
                    f"a declared dimension must be a whole number, not '{text}'",
                    (tok.start_pos, tok.end_pos),
                )
            dims.append(int(text))
        return (str(t), (t.start_pos, c[-1].end_pos), "shape", tuple(dims))

    def output_decl(self, c):
        names = [(str(t), (t.start_pos, t.end_pos)) for t in c[1:]]
        return ("output", c[0].start_pos, names[-1][1][1], names)

    def def_(self, c):
        kw, fname = c[0], c[1]
        body = c[-1]
        params = [(str(t), (t.start_pos, t.end_pos)) for t in c[2:-1] if isinstance(t, Token) and t.type == "NAME"]
        return ("def", kw.start_pos, body[2], str(fname), (fname.start_pos, fname.end_pos), params, body)

    def bare(self, c):
        expr = c[0]
        return ("bare", expr[1], expr[2], expr)

    # -- expressions --------------------------------------------------------------
    def binop(self, c):
        lhs, tok, rhs = c
        return ("bin", lhs[1], rhs[2], _BINOPS[tok.type], lhs, rhs, tok.start_pos)

    def neg(self, c):
        tok, x = c
        if x[0] == "num" and x[1] == tok.end_pos:  # fold "-3" into a literal
            return ("num", tok.start_pos, x[2], -x[3])
        return ("neg", tok.start_pos, x[2], x)

    def pos(self, c):
        tok, x = c
        return (x[0], tok.start_pos) + x[2:]

    def number(self, c):
        t = c[0]
        return ("num", t.start_pos, t.end_pos, float(t))

    def name(self, c):
        t = c[0]
        return ("name", t.start_pos, t.end_pos, str(t))

    def paren(self, c):
        lpar, x, rpar = c
        return (x[0], lpar.start_pos, rpar.end_pos) + x[3:]

    def tensor(self, c):
        return ("tensor", c[0].start_pos, c[-1].end_pos, tuple(_kept(c[1:-1])))

    def call(self, c):
        fname = c[0]
        return ("call", fname.start_pos, c[-1].end_pos, str(fname), tuple(_kept(c[2:-1])), fname.end_pos)

    def index(self, c):
        x = c[0]
        return ("index", x[1], c[-1].end_pos, x, tuple(_kept(c[2:-1])))

    def sub_index(self, c):
        return ("i", c[0])

    def sub_slice(self, c):
        # children: [expr|None, COLON, expr|None] or [expr|None, COLON, expr|None, COLON, expr|None]
        parts: list = [None, None, None]
        k = 0
        for item in c:
            if isinstance(item, Token) and item.type == "COLON":
                k += 1
            elif item is not None:
                parts[k] = item
        return ("s", parts[0], parts[1], parts[2])


_PARSER: Lark | None = None


def _cache_file() -> str | bool:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "cgraph")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return False
    from cgraph_cli import __version__

    return os.path.join(folder, f"grammar-{__version__}.lark-cache")


def get_parser() -> Lark:
    global _PARSER
    if _PARSER is None:
        path = grammar_path()
        cache = _cache_file()
        try:
            _PARSER = Lark(
                path.read_text(encoding="utf-8"),
                parser="lalr",
                lexer="contextual",
                transformer=AstBuilder(),
                maybe_placeholders=True,
                cache=cache,
            )
        except OSError:  # unwritable cache: parse without it
            _PARSER = Lark(
                path.read_text(encoding="utf-8"),
                parser="lalr",
                lexer="contextual",
                transformer=AstBuilder(),
                maybe_placeholders=True,
            )
    return _PARSER


def _describe_expected(expected) -> str:
    names = sorted({_TERMINAL_NAMES.get(t, t.lower()) for t in expected if not t.startswith("__")})
    if not names:
        return ""
    if len(names) > 6:
        names = names[:6] + ["..."]
    return "expected " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1])


def _syntax(what: str, span: tuple[int, int], expected) -> CgraphError:
    exp = _describe_expected(expected)
    return CgraphError(f"syntax error: {what}" + (f"; {exp}" if exp else ""), span)


def _translate(err: UnexpectedInput, text: str) -> CgraphError:
    if isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream
        ch = text[pos] if pos < len(text) else ""
        what = "unexpected character " + (repr(ch) if ch.strip() else f"{ch!r}")
        return _syntax(what, (pos, pos + 1), err.allowed)
    if isinstance(err, UnexpectedToken):
        tok = err.token
        if tok.type == "$END":
            pos = len(text)
            return _syntax("unexpected end of input", (pos, pos), err.expected)
        if tok.type == "_SEP":
            what = "unexpected end of statement" if str(tok).strip() == ";" else "unexpected end of line"
            pos = tok.start_pos + len(str(tok)) - len(str(tok).lstrip(" \t"))
            return _syntax(what, (pos, pos + 1), err.expected)
        shown = str(tok)
        return _syntax(f"unexpected '{shown}'", (tok.start_pos, tok.end_pos), err.expected)
    if isinstance(err, UnexpectedEOF):
        pos = len(text)
        return _syntax("unexpected end of input", (pos, pos), err.expected)
    return CgraphError(str(err))


def parse(source: Source) -> list[tuple]:
    """Parse a program into its statement list; raise CgraphError on a syntax error."""
    text = source.text
    if not text.endswith("\n"):
        text += "\n"
    try:
        stmts = get_parser().parse(text)
    except UnexpectedInput as err:
        raise _translate(err, source.text).with_source(source) from None
    except CgraphError as err:
        raise err.with_source(source) from None
    return stmts
