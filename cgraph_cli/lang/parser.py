"""Parse cgraph source text into a list of statements (small AST tuples).

Lark's LALR parser calls :class:`AstBuilder` on every reduction, so no parse
tree is ever built and nothing recurses over the input.  Lark's exceptions are
translated here, at this one boundary, into :class:`CgraphError` with a span.

AST nodes are plain tuples ``(kind, start, end, ...)`` where start/end are character
offsets into the source (plain tuples: a program of a million statements builds
millions of them, and a tuple costs a fraction of a named tuple to make).  Every
field is read by the name of its index, defined below for each kind:

- ``("num", s, e, value)``: :data:`NUM_VALUE`
- ``("name", s, e, ident)``: :data:`NAME_ID`
- ``("bin", s, e, op, lhs, rhs, op_start)`` with op in add/sub/mul/div/matmul/pow and the comparisons
  lt/le/gt/ge/eq/ne: :data:`BIN_OP`, ...
- ``("neg", s, e, x)``: :data:`NEG_X`
- ``("call", s, e, fname, args, name_end, keywords)`` with keywords ``((name, name_span, expr), ...)`` in the
  order written: :data:`CALL_FNAME`, ..., :data:`CALL_KEYWORDS`
- ``("index", s, e, x, subs)`` with subs items ``("i", expr)``, ``("s", start, stop, step)`` or ``("e",)``
  (an ellipsis ``...``)
- ``("tensor", s, e, items)``: :data:`TENSOR_ITEMS`
- ``("tuple", s, e, items)``: ``(0, 1)``, ``()``, ``(2,)``, a static argument such as ``axis=(0, 1)``

Statements:

- ``("assign", s, e, name, name_span, expr)``
- ``("input", s, e, items, data)`` with items ``(name, span, "name"|"default"|"shape", payload)``; ``data`` is
  True for ``input data X, Y`` (inputs that are data: no gradient), else False
- ``("output", s, e, [(name, span), ...])``
- ``("def", s, e, fname, fspan, [(param, span), ...], body)``
- ``("bare", s, e, expr)``
- ``("for", s, e, var, var_span, range_args, range_span, body)``: ``for i in range(...) { body }``, body a
  list of statements
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cgraph_cli import gcpause
from cgraph_cli.errors import CgraphError, Source
from cgraph_cli.fsutil import user_cache_home
from cgraph_cli.version import __version__

# -- the AST's fields, by name -------------------------------------------------------------------------------------
# every node and statement: its kind and its span; the kind's own fields start at FIELDS
KIND, START, END, FIELDS = 0, 1, 2, 3
NUM_VALUE = 3  # ("num", s, e, value)
NAME_ID = 3  # ("name", s, e, ident)
BIN_OP, BIN_LHS, BIN_RHS, BIN_OP_START = 3, 4, 5, 6  # ("bin", s, e, op, lhs, rhs, op_start)
NEG_X = 3  # ("neg", s, e, x)
CALL_FNAME, CALL_ARGS, CALL_NAME_END, CALL_KEYWORDS = 3, 4, 5, 6  # ("call", s, e, fname, args, name_end, kws)
KW_NAME, KW_SPAN, KW_VALUE = 0, 1, 2  # a keyword argument (name, name_span, expr)
INDEX_X, INDEX_SUBS = 3, 4  # ("index", s, e, x, subs)
SUB_KIND, SUB_EXPR = 0, 1  # a subscript ("i", expr)
SLICE_START, SLICE_STOP, SLICE_STEP = 1, 2, 3  # a subscript ("s", start, stop, step), each None when left out
TENSOR_ITEMS = 3  # ("tensor", s, e, items)
TUPLE_ITEMS = 3  # ("tuple", s, e, items)
ASSIGN_NAME, ASSIGN_NAME_SPAN, ASSIGN_EXPR = 3, 4, 5  # ("assign", s, e, name, name_span, expr)
INPUT_ITEMS, INPUT_DATA = 3, 4  # ("input", s, e, [(name, span, "name"|"default"|"shape", payload), ...], data)
OUTPUT_NAMES = 3  # ("output", s, e, [(name, span), ...])
DEF_NAME, DEF_NAME_SPAN, DEF_PARAMS, DEF_BODY = 3, 4, 5, 6  # ("def", s, e, fname, fspan, params, body)
BARE_EXPR = 3  # ("bare", s, e, expr)
FOR_VAR, FOR_VAR_SPAN, FOR_ARGS, FOR_RANGE_SPAN, FOR_BODY = 3, 4, 5, 6, 7  # ("for", s, e, var, ...)
ELLIPSIS_SUB = ("e",)  # the subscript ``...``
ITEM_SPAN = 1  # the span in an input item or an output name: (name, span, ...)

_BINOPS = {"PLUS": "add", "MINUS": "sub", "STAR": "mul", "SLASH": "div", "AT": "matmul", "POW": "pow"}
_COMPARE = {"LT": "lt", "LE": "le", "GT": "gt", "GE": "ge", "EQ": "eq", "NE": "ne"}
COMPARISONS = frozenset(_COMPARE.values())  # the ops of the comparison operators
_EMPTY: tuple = ()

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
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "ELLIPSIS": "'...'",
    "LT": "a comparison",  # all six are expected together: one entry
    "LE": "a comparison",
    "GT": "a comparison",
    "GE": "a comparison",
    "EQ": "a comparison",
    "NE": "a comparison",
    "FOR": "'for'",
    "IN": "'in'",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "AT": "'@'",
    "POW": "'^'",
    "INPUT": "'input'",
    "DATA": "a name",  # 'data' (input data X) is read only where a name is also expected
    "OUTPUT": "'output'",
    "DEF": "'def'",
    "$END": "end of input",
}


def grammar_path() -> Path:
    """The grammar file: inside the installed package, or the repository's grammars/."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "grammars" / "cgraph.lark", package.parent / "grammars" / "cgraph.lark"):
        if candidate.is_file():
            return candidate
    raise CgraphError("internal error: the grammar file cgraph.lark is missing from the installation")


def _kept(children):
    """Children that are AST values (tuples), without punctuation tokens (str) and empty optionals."""
    return [c for c in children if c is not None and not isinstance(c, str)]


class AstBuilder:
    """Callbacks for Lark's LALR parser: one method per ``-> alias`` in the grammar."""

    # -- statements ---------------------------------------------------------------
    def program(self, children):
        return [c for c in children if c is not None]

    def assign(self, c):
        name, expr = c[0], c[-1]
        return ("assign", name.start_pos, expr[END], str(name), (name.start_pos, name.end_pos), expr)

    def input_decl(self, c):
        kw = c[0]
        data = isinstance(c[1], str)  # the DATA token (items are tuples)
        items = c[2:] if data else c[1:]
        return ("input", kw.start_pos, items[-1][ITEM_SPAN][1], items, data)

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
        return ("output", c[0].start_pos, names[-1][ITEM_SPAN][1], names)

    def def_(self, c):
        kw, fname = c[0], c[1]
        body = c[-1]
        params = [(str(t), (t.start_pos, t.end_pos)) for t in c[2:-1] if isinstance(t, str) and t.type == "NAME"]
        return ("def", kw.start_pos, body[END], str(fname), (fname.start_pos, fname.end_pos), params, body)

    def bare(self, c):
        expr = c[0]
        return ("bare", expr[START], expr[END], expr)

    # -- expressions --------------------------------------------------------------
    def binop(self, c):
        lhs, tok, rhs = c
        return ("bin", lhs[START], rhs[END], _BINOPS[tok.type], lhs, rhs, tok.start_pos)

    def neg(self, c):
        tok, x = c
        if x[KIND] == "num" and x[START] == tok.end_pos:  # fold "-3" into a literal
            return ("num", tok.start_pos, x[END], -x[NUM_VALUE])
        return ("neg", tok.start_pos, x[END], x)

    def pos(self, c):
        tok, x = c
        return (x[KIND], tok.start_pos) + x[END:]

    def number(self, c):
        t = c[0]
        return ("num", t.start_pos, t.end_pos, float(t))

    def name(self, c):
        t = c[0]
        return ("name", t.start_pos, t.end_pos, str(t))

    def paren(self, c):
        lpar, x, rpar = c
        return (x[KIND], lpar.start_pos, rpar.end_pos) + x[FIELDS:]

    def tensor(self, c):
        return ("tensor", c[0].start_pos, c[-1].end_pos, tuple(_kept(c[1:-1])))

    def compare(self, c):
        lhs, tok, rhs = c
        if lhs[KIND] == "bin" and lhs[BIN_OP] in COMPARISONS and lhs[END] == lhs[BIN_RHS][END]:
            raise CgraphError(CHAINED_COMPARISON, (tok.start_pos, tok.end_pos))
        return ("bin", lhs[START], rhs[END], _COMPARE[tok.type], lhs, rhs, tok.start_pos)

    def call(self, c):
        fname = c[0]
        args = []
        kws = []
        for a in _kept(c[2:-1]):
            if a[KIND] == "kw":
                kws.append(a[FIELDS:])
            else:
                args.append(a)
        return (
            "call",
            fname.start_pos,
            c[-1].end_pos,
            str(fname),
            tuple(args),
            fname.end_pos,
            tuple(kws) if kws else _EMPTY,
        )

    def kwarg(self, c):
        name, value = c[0], c[-1]
        return ("kw", name.start_pos, value[END], str(name), (name.start_pos, name.end_pos), value)

    def tuple(self, c):
        return ("tuple", c[0].start_pos, c[-1].end_pos, tuple(_kept(c[1:-1])))

    def sub_ellipsis(self, c):
        return ELLIPSIS_SUB

    def for_(self, c):
        var, rng = c[1], c[3]
        if str(rng) != "range":
            raise CgraphError(f"a loop runs over range(n) or range(a, b), not '{rng}'", (rng.start_pos, rng.end_pos))
        close = next(k for k in range(5, len(c)) if isinstance(c[k], str) and c[k].type == "RPAR")
        args = tuple(_kept(c[5:close]))
        body = [x for x in c[close + 2 : -1] if x is not None and not isinstance(x, str)]
        return (
            "for",
            c[0].start_pos,
            c[-1].end_pos,
            str(var),
            (var.start_pos, var.end_pos),
            args,
            (rng.start_pos, c[close].end_pos),
            body,
        )

    def index(self, c):
        x = c[0]
        return ("index", x[START], c[-1].end_pos, x, tuple(_kept(c[2:-1])))

    def sub_index(self, c):
        return ("i", c[0])

    def sub_slice(self, c):
        # children: [expr|None, COLON, expr|None] or [expr|None, COLON, expr|None, COLON, expr|None]
        parts: list = [None, None, None]  # start, stop, step: the part after the k-th colon
        k = 0
        for item in c:
            if isinstance(item, str) and item.type == "COLON":
                k += 1
            elif item is not None:
                parts[k] = item
        start, stop, step = parts
        return ("s", start, stop, step)


CHAINED_COMPARISON = "comparisons do not chain; write (a < b) * (b < c) for both at once"


def normal_name(raw: str, start: int) -> str:
    """A name as Python reads it: ``raw`` checked against Python's identifier rules and normalised to NFKC
    (``ﬁ`` is ``fi``); an invalid character is an error pointing at it."""
    if raw.isascii():
        return raw
    if not raw.isidentifier():
        for k in range(1, len(raw) + 1):
            if not raw[:k].isidentifier():
                ch = raw[k - 1]
                what = unicodedata.name(ch, "")
                shown = f"U+{ord(ch):04X}" + (f" {what}" if what else "")
                raise CgraphError(
                    f"invalid character '{ch}' ({shown}) in the name '{raw}'",
                    (start + k - 1, start + k),
                    hint="a name is made of letters, digits and _, as in Python",
                )
    return unicodedata.normalize("NFKC", raw)


def _name_token(tok: Any) -> Any:
    """Lark's lexer callback for NAME: the name normalised (:func:`normal_name`)."""
    if tok.isascii():
        return tok
    return tok.update(value=normal_name(str(tok), tok.start_pos))


class _Brackets:
    """Lark's post-lexer: drops the newlines inside (...) and [...] (not ``;``), so that a statement goes on
    over them; inside {...}, a loop's body, a newline separates statements."""

    always_accept = ("_SEP",)

    def process(self, stream):
        open_: list[str] = []
        for tok in stream:
            t = tok.type
            if t == "_SEP":
                if open_ and open_[-1] != "LBRACE" and not tok.endswith(";"):
                    continue
            elif t == "LPAR" or t == "LSQB" or t == "LBRACE":
                open_.append(t)
            elif (t == "RPAR" or t == "RSQB" or t == "RBRACE") and open_:
                open_.pop()
            yield tok


_PARSER: Any = None


def _cache_file() -> str | bool:
    folder = os.path.join(user_cache_home(), "cgraph")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return False
    return os.path.join(folder, f"grammar-{__version__}.lark-cache")


def get_parser() -> Any:
    """The Lark LALR parser (built once; its tables cached in the user's cache folder)."""
    global _PARSER
    if _PARSER is None:
        from lark import Lark

        path = grammar_path()
        cache = _cache_file()
        try:
            _PARSER = Lark(
                path.read_text(encoding="utf-8"),
                parser="lalr",
                lexer="contextual",
                transformer=AstBuilder(),
                maybe_placeholders=True,
                postlex=_Brackets(),
                lexer_callbacks={"NAME": _name_token},
                cache=cache,
            )
        except OSError:  # unwritable cache: parse without it
            _PARSER = Lark(
                path.read_text(encoding="utf-8"),
                parser="lalr",
                lexer="contextual",
                transformer=AstBuilder(),
                maybe_placeholders=True,
                postlex=_Brackets(),
                lexer_callbacks={"NAME": _name_token},
            )
    return _PARSER


def _describe_expected(expected) -> str:
    names = sorted({_TERMINAL_NAMES.get(t, t.lower()) for t in expected if not t.startswith("__")})
    if not names:
        return ""
    if len(names) > 10:
        names = names[:10] + ["..."]
    return "expected " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1])


def _syntax(what: str, span: tuple[int, int], expected, hint: str | None = None) -> CgraphError:
    exp = _describe_expected(expected)
    return CgraphError(f"syntax error: {what}" + (f"; {exp}" if exp else ""), span, hint=hint)


_LINE_START = re.compile(r"[ \t]*(\w+)")


def _mistake_hint(text: str, pos: int, shown: str) -> str | None:
    """A hint for a common mistake at an unexpected token: a product written without '*' (``(a + b)(b + c)``), a
    Python-style loop (``while``, or ``for ...:``)."""
    line_start = text.rfind("\n", 0, pos) + 1
    first = _LINE_START.match(text, line_start)
    before = text[line_start:pos].rstrip()
    if first is not None and first.group(1) == "while":
        return "there is no while loop: a loop runs a fixed number of times, for i in range(n) { ... }"
    if shown == ":" and first is not None and first.group(1) == "for":
        return "a loop's body goes in braces: for i in range(n) { ... }"
    if shown == "(" and before and (before[-1] in ")]" or before[-1].isdigit()):  # (after a name it is a call)
        return "to multiply, write '*' between them, as in (a + b) * (b + c)"
    return None


def _accepted(err: Any, fallback) -> Any:
    """The terminals the parser would really accept at the error (LALR's merged states list more,
    such as ')' after `y = 3` at the top level)."""
    ip = getattr(err, "interactive_parser", None)
    if ip is not None:
        try:
            return ip.accepts()
        except Exception:
            pass
    return fallback


_BRACKET_RE = re.compile(r"#[^\n]*|[(\[{]|[)\]}]")
_CLOSER = {"(": ")", "[": "]", "{": "}"}


def _unclosed(text: str, pos: int) -> int | None:
    """The offset of the innermost bracket open at ``pos`` that is never closed in the whole text and was opened
    on an earlier line (a statement went on over the lines after it) or ``pos`` is the end of the text (it ended
    inside the bracket, with or without a last newline), or None."""
    stack: list[int] = []
    low = None  # the fewest brackets open after pos
    for m in _BRACKET_RE.finditer(text):
        ch = m.group()
        if ch[0] == "#":
            continue
        if m.start() >= pos and low is None:
            low = len(stack)
        if ch in _CLOSER:
            stack.append(m.start())
        elif stack:
            stack.pop()
            if low is not None:
                low = min(low, len(stack))
    if low is None:
        low = len(stack)
    if low == 0:
        return None
    b = stack[low - 1] if low <= len(stack) else None
    if b is None or b >= pos or ("\n" not in text[b:pos] and text[pos:].strip()):
        return None
    return b


def _translate(err: Any, text: str) -> CgraphError:
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

    where = getattr(err, "pos_in_stream", None)
    tok = getattr(err, "token", None)
    if tok is not None:
        where = len(text) if tok.type == "$END" else tok.start_pos
    if where is None:
        where = len(text)
    b = _unclosed(text, where)
    if b is not None:
        return CgraphError(
            f"syntax error: '{text[b]}' is never closed; expected '{_CLOSER[text[b]]}'",
            (b, b + 1),
            hint="close the loop's body with '}'"
            if text[b] == "{"
            else f"close it with '{_CLOSER[text[b]]}'; a statement goes on over the lines inside brackets",
        )

    if isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream
        ch = text[pos] if pos < len(text) else ""
        what = "unexpected character " + (repr(ch) if ch.strip() else f"{ch!r}")
        return _syntax(what, (pos, pos + 1), _accepted(err, err.allowed))
    if isinstance(err, UnexpectedToken):
        tok = err.token
        expected = _accepted(err, err.expected)
        if tok.type == "$END":
            pos = len(text)
            return _syntax("unexpected end of input", (pos, pos), expected)
        if tok.type == "_SEP":
            what = "unexpected end of statement" if str(tok).strip() == ";" else "unexpected end of line"
            pos = tok.start_pos + len(str(tok)) - len(str(tok).lstrip(" \t"))
            return _syntax(what, (pos, pos + 1), expected)
        shown = str(tok)
        span = (tok.start_pos, tok.end_pos)
        return _syntax(f"unexpected '{shown}'", span, expected, _mistake_hint(text, tok.start_pos, shown))
    if isinstance(err, UnexpectedEOF):
        pos = len(text)
        return _syntax("unexpected end of input", (pos, pos), err.expected)
    return CgraphError(str(err))


def parse(source: Source) -> list[tuple]:
    """Parse a program into its statement list; raise CgraphError on a syntax error.

    The hand-written fast path (:func:`parse_fast`) handles well-formed programs; anything it does not
    accept, every syntax error among them, is parsed by Lark, whose grammar is the definition of the
    language and whose errors are the ones reported.  ``CGRAPH_PARSER=lark`` skips the fast path.
    """
    text = source.text
    if not text.endswith("\n"):
        text += "\n"
    if os.environ.get("CGRAPH_PARSER") != "lark":
        stmts = parse_fast(text)
        if stmts is not None:
            return stmts
    return parse_lark(source)


def parse_lark(source: Source) -> list[tuple]:
    """Parse with Lark's LALR parser (the reference)."""
    from lark.exceptions import UnexpectedInput

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


# -- the fast path ----------------------------------------------------------------------------------------------------
#
# A tokenizer made of one regular expression and a recursive-descent parser over the grammar's rules, building the
# same AST tuples as AstBuilder.  It gives up (returns None) on anything unusual: a syntax error, a token it does not
# expect, nesting deeper than _MAX_DEPTH (so it never recurses far), a non-integer declared dimension.  Lark then
# parses the text and reports the error.  tests/test_parser_fast.py checks the two agree on generated programs.

_TOKEN_PARTS = (
    r"(?P<ws>[ \t\f]+|#[^\n]*|\\[ \t]*\r?\n)"
    r"|(?P<sep>\r?\n|;)"
    r"|(?P<num>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)"
    r"|(?P<name>{name})"
    r"|(?P<op>\*\*|\.\.\.|[<>=!]=|[-+*/@^,:=<>])"
    r"|(?P<open>[(\[{{])"
    r"|(?P<close>[)\]}}])"
)
# ASCII text (the common case) is tokenized with ASCII names, which is faster; other text with Python's
# identifier characters (checked and normalised by normal_name)
_TOKEN_RE = re.compile(_TOKEN_PARTS.format(name=r"[A-Za-z_][A-Za-z_0-9]*"))
_TOKEN_RE_UNICODE = re.compile(_TOKEN_PARTS.format(name=r"[^\W\d][^\x00-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f\s]*"))
_KEYWORDS = {"input": "INPUT", "output": "OUTPUT", "def": "DEF"}
_KEYWORD_PREFIX = re.compile(r"(input|output|def)\b")  # a keyword the grammar reads off a longer name
_LOOP_VAR = re.compile(r"[^\W\d]\w*")  # the name the grammar's FOR looks ahead for
_OPKIND = {"**": "^"}
_CMP = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne"}
_MAX_DEPTH = 60


class _GiveUp(Exception):
    pass


def _tokens(text: str, pos: int = 0, hint: int | None = None, plain: bool | None = None):
    """Tokens of ``text`` from ``pos`` (offsets into the whole text), ending with "$END", and where they stop:
    after the first statement separator at ``hint`` or later that is outside every bracket, else at the end.
    ``plain``: whether the text is ASCII (worked out when not given).

    A newline inside (...) or [...] is no token (the statement goes on); inside {...} it separates statements."""
    kinds: list[str] = []
    vals: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    add_kind, add_val, add_start, add_end = kinds.append, vals.append, starts.append, ends.append
    keywords, opkind = _KEYWORDS, _OPKIND
    n = len(text)
    if hint is None:
        hint = n
    if plain is None:
        plain = text.isascii()
    open_: list[str] = []
    for m in (_TOKEN_RE if plain else _TOKEN_RE_UNICODE).finditer(text, pos):
        s = m.start()
        if s != pos:
            raise _GiveUp
        pos = m.end()
        g = m.lastgroup
        if g == "ws":
            continue
        v = m.group()
        if g == "name":
            k = keywords.get(v, "NAME")
            if not plain and not v.isascii():
                if _KEYWORD_PREFIX.match(v):
                    raise _GiveUp
                try:
                    v = normal_name(v, s)
                except CgraphError:
                    raise _GiveUp from None
        elif g == "num":
            k = "NUMBER"
        elif g == "op":
            k = opkind.get(v, v)
        elif g == "sep":
            if open_:
                if open_[-1] != "{" and v != ";":
                    continue
            elif pos >= hint:
                add_kind(";")
                add_val(v)
                add_start(s)
                add_end(pos)
                break
            k = ";"
        elif g == "open":
            open_.append(v)
            k = v
        else:
            if open_:
                open_.pop()
            k = v
        add_kind(k)
        add_val(v)
        add_start(s)
        add_end(pos)
    else:
        if pos != n:
            raise _GiveUp
    kinds.append("$END")
    vals.append("")
    starts.append(pos)
    ends.append(pos)
    return kinds, vals, starts, ends, pos


_BLOCK = 1 << 16  # characters tokenized at a time (whole statements), so that tokens never pile up


class NotFast(Exception):
    """The fast path does not accept the text (a syntax error, or something unusual): Lark decides."""


def fast_blocks(text: str) -> Iterator[list[tuple]]:
    """The statements of ``text`` (which ends with a newline), a block of whole statements at a time.

    Only one block's tokens and statements exist at a time, so a caller that lowers each block before
    asking for the next never holds the whole program's AST.  Raises :class:`NotFast` at the first block
    the fast path does not accept (the blocks before it were well-formed)."""
    start = 0
    n = len(text)
    plain = text.isascii()
    while start < n:
        out: list[tuple] = []
        try:
            fp = _FastParser(text, start, start + _BLOCK, plain)
            fp.program(out)
        except (_GiveUp, RecursionError, IndexError):
            raise NotFast from None
        yield out
        start = fp.end


def statement_blocks(source: Source) -> Iterator[list[tuple]]:
    """The program's statements in blocks, by the fast path (see :func:`fast_blocks`); raises :class:`NotFast`
    where it gives up, and at once under ``CGRAPH_PARSER=lark``: then :func:`parse_lark` parses the whole text."""
    if os.environ.get("CGRAPH_PARSER") == "lark":
        raise NotFast
    text = source.text
    if not text.endswith("\n"):
        text += "\n"
    yield from fast_blocks(text)


def parse_fast(text: str) -> list[tuple] | None:
    """The statement list, or None when the fast path does not accept the text (Lark decides then).

    The text (which ends with a newline) is parsed in blocks of whole statements (:func:`fast_blocks`); the
    garbage collector is paused meanwhile, as the AST is made of acyclic tuples only.
    """
    try:
        with gcpause.paused():
            out: list[tuple] = []
            for block in fast_blocks(text):
                out.extend(block)
            return out
    except NotFast:
        return None


class _FastParser:
    __slots__ = ("k", "v", "s", "e", "p", "depth", "end", "text")

    def __init__(self, text: str, start: int = 0, hint: int | None = None, plain: bool | None = None) -> None:
        self.k, self.v, self.s, self.e, self.end = _tokens(text, start, hint, plain)
        self.text = text
        self.p = 0
        self.depth = 0

    def expect(self, kind: str) -> int:
        p = self.p
        if self.k[p] != kind:
            raise _GiveUp
        self.p = p + 1
        return p

    def program(self, out: list[tuple]) -> list[tuple]:
        k = self.k
        while True:
            t = k[self.p]
            if t == ";":
                self.p += 1
                continue
            if t == "$END":
                return out
            out.append(self.statement())
            self.expect(";")

    def statement(self) -> tuple:
        k = self.k
        p = self.p
        t = k[p]
        if t == "NAME":
            if k[p + 1] == "=":
                self.p += 2
                x = self.expr()
                return ("assign", self.s[p], x[END], self.v[p], (self.s[p], self.e[p]), x)
            if self.v[p] == "for" and self.is_loop(p):
                return self.for_()
        elif t == "INPUT":
            return self.input_decl()
        elif t == "OUTPUT":
            return self.output_decl()
        elif t == "DEF":
            return self.def_()
        x = self.expr()
        return ("bare", x[START], x[END], x)

    def is_loop(self, p: int) -> bool:
        """Whether 'for' at token p starts a loop, as the grammar's FOR reads it: 'for', blanks, a name,
        blanks, 'in'."""
        k, s, e, text = self.k, self.s, self.e, self.text
        return (
            k[p + 1] == "NAME"
            and k[p + 2] == "NAME"
            and text[s[p] : e[p]] == "for"
            and text[s[p + 2] : e[p + 2]] == "in"
            and _LOOP_VAR.fullmatch(text, s[p + 1], e[p + 1]) is not None
            and _blanks(text, e[p], s[p + 1])
            and _blanks(text, e[p + 1], s[p + 2])
        )

    def for_(self) -> tuple:
        p = self.p
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _GiveUp
        self.p = p + 3
        r = self.expect("NAME")
        if self.v[r] != "range":
            raise _GiveUp
        self.expect("(")
        args = self.items(")")
        rp = self.expect(")")
        self.expect("{")
        k = self.k
        body = []
        while True:
            t = k[self.p]
            if t == ";":
                self.p += 1
                continue
            if t == "}":
                break
            body.append(self.statement())
            if k[self.p] == "}":
                break
            self.expect(";")
        rb = self.expect("}")
        self.depth -= 1
        v = p + 1
        return ("for", self.s[p], self.e[rb], self.v[v], (self.s[v], self.e[v]), args, (self.s[r], self.e[rp]), body)

    def input_decl(self) -> tuple:
        kw = self.expect("INPUT")
        k, p, text = self.k, self.p, self.text
        data = (  # as the grammar's DATA reads it: 'data', blanks, then a name
            k[p] == "NAME"
            and k[p + 1] == "NAME"
            and text[self.s[p] : self.e[p]] == "data"
            and _blanks(text, self.e[p], self.s[p + 1])
        )
        if data:
            self.p += 1
        items = []
        while True:
            p = self.expect("NAME")
            name, span = self.v[p], (self.s[p], self.e[p])
            t = self.k[self.p]
            if t == "=":
                self.p += 1
                items.append((name, span, "default", self.expr()))
            elif t == "[":
                self.p += 1
                dims = []
                while True:
                    q = self.expect("NUMBER")
                    if not self.v[q].isdigit():
                        raise _GiveUp
                    dims.append(int(self.v[q]))
                    if self.k[self.p] != ",":
                        break
                    self.p += 1
                r = self.expect("]")
                items.append((name, (self.s[p], self.e[r]), "shape", tuple(dims)))
            else:
                items.append((name, span, "name", None))
            if self.k[self.p] != ",":
                break
            self.p += 1
        return ("input", self.s[kw], items[-1][ITEM_SPAN][1], items, data)

    def output_decl(self) -> tuple:
        kw = self.expect("OUTPUT")
        names = []
        while True:
            p = self.expect("NAME")
            names.append((self.v[p], (self.s[p], self.e[p])))
            if self.k[self.p] != ",":
                break
            self.p += 1
        return ("output", self.s[kw], names[-1][ITEM_SPAN][1], names)

    def def_(self) -> tuple:
        kw = self.expect("DEF")
        f = self.expect("NAME")
        self.expect("(")
        params = []
        if self.k[self.p] != ")":
            while True:
                p = self.expect("NAME")
                params.append((self.v[p], (self.s[p], self.e[p])))
                if self.k[self.p] != ",":
                    break
                self.p += 1
        self.expect(")")
        self.expect("=")
        body = self.expr()
        return ("def", self.s[kw], body[END], self.v[f], (self.s[f], self.e[f]), params, body)

    # -- expressions ------------------------------------------------------------------------------------------------
    def expr(self, _cmp: dict = _CMP) -> tuple:  # (a default argument: a fast local)
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _GiveUp
        k = self.k
        lhs = self.product()
        t = k[self.p]
        while t == "+" or t == "-":
            p = self.p
            self.p += 1
            rhs = self.product()
            lhs = ("bin", lhs[START], rhs[END], "add" if t == "+" else "sub", lhs, rhs, self.s[p])
            t = k[self.p]
        op = _cmp.get(t)
        if op is not None:  # a comparison (below + and -; no chains)
            p = self.p
            self.p += 1
            rhs = self.product()
            t = k[self.p]
            while t == "+" or t == "-":
                q = self.p
                self.p += 1
                r = self.product()
                rhs = ("bin", rhs[START], r[END], "add" if t == "+" else "sub", rhs, r, self.s[q])
                t = k[self.p]
            if t in _cmp:
                raise _GiveUp
            lhs = ("bin", lhs[START], rhs[END], op, lhs, rhs, self.s[p])
        self.depth -= 1
        return lhs

    def product(self) -> tuple:
        k = self.k
        lhs = self.unary()
        t = k[self.p]
        while t == "*" or t == "/" or t == "@":
            p = self.p
            self.p += 1
            rhs = self.unary()
            op = "mul" if t == "*" else ("div" if t == "/" else "matmul")
            lhs = ("bin", lhs[START], rhs[END], op, lhs, rhs, self.s[p])
            t = k[self.p]
        return lhs

    def unary(self) -> tuple:
        t = self.k[self.p]
        if t == "-" or t == "+":
            p = self.p
            self.p += 1
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise _GiveUp
            x = self.unary()
            self.depth -= 1
            if t == "+":
                return (x[KIND], self.s[p]) + x[END:]
            if x[KIND] == "num" and x[START] == self.e[p]:  # fold "-3" into a literal
                return ("num", self.s[p], x[END], -x[NUM_VALUE])
            return ("neg", self.s[p], x[END], x)
        base = self.postfix()
        if self.k[self.p] == "^":
            p = self.p
            self.p += 1
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise _GiveUp
            e = self.unary()
            self.depth -= 1
            return ("bin", base[START], e[END], "pow", base, e, self.s[p])
        return base

    def postfix(self) -> tuple:
        k = self.k
        p = self.p
        t = k[p]
        if t == "NAME":
            if k[p + 1] == "(":
                self.p = p + 2
                args, kws = self.call_args()
                r = self.expect(")")
                x = ("call", self.s[p], self.e[r], self.v[p], args, self.e[p], kws)
            else:
                self.p = p + 1
                x = ("name", self.s[p], self.e[p], self.v[p])
        elif t == "NUMBER":
            self.p = p + 1
            x = ("num", self.s[p], self.e[p], float(self.v[p]))
        elif t == "(":
            self.p = p + 1
            if k[self.p] == ")":
                r = self.expect(")")
                x = ("tuple", self.s[p], self.e[r], ())
            else:
                inner = self.expr()
                if k[self.p] == ",":
                    items = [inner]
                    while k[self.p] == ",":
                        self.p += 1
                        if k[self.p] == ")" and len(items) == 1:  # (x,)
                            break
                        items.append(self.expr())
                    r = self.expect(")")
                    x = ("tuple", self.s[p], self.e[r], tuple(items))
                else:
                    r = self.expect(")")
                    x = (inner[KIND], self.s[p], self.e[r]) + inner[FIELDS:]
        elif t == "[":
            self.p = p + 1
            items = self.items("]")
            r = self.expect("]")
            x = ("tensor", self.s[p], self.e[r], items)
        else:
            raise _GiveUp
        while k[self.p] == "[":
            self.p += 1
            subs = []
            while True:
                subs.append(self.subscript())
                if k[self.p] != ",":
                    break
                self.p += 1
            r = self.expect("]")
            x = ("index", x[START], self.e[r], x, tuple(subs))
        return x

    def items(self, close: str) -> tuple:
        if self.k[self.p] == close:
            return ()
        out = [self.expr()]
        while self.k[self.p] == ",":
            self.p += 1
            out.append(self.expr())
        return tuple(out)

    def call_args(self) -> tuple[tuple, tuple]:
        """A call's positional arguments and its keyword arguments ``name=expr``, in the order written."""
        k = self.k
        if k[self.p] == ")":
            return (), _EMPTY
        args = []
        kws = []
        while True:
            p = self.p
            if k[p] == "NAME" and k[p + 1] == "=":
                self.p = p + 2
                kws.append((self.v[p], (self.s[p], self.e[p]), self.expr()))
            else:
                args.append(self.expr())
            if k[self.p] != ",":
                break
            self.p += 1
        return tuple(args), (tuple(kws) if kws else _EMPTY)

    def subscript(self) -> tuple:
        k = self.k
        if k[self.p] == "...":
            self.p += 1
            return ELLIPSIS_SUB
        start = stop = step = None
        if k[self.p] != ":":
            start = self.expr()
            if k[self.p] != ":":
                return ("i", start)
        self.p += 1  # the first ':'
        if k[self.p] not in (":", ",", "]"):
            stop = self.expr()
        if k[self.p] == ":":
            self.p += 1
            if k[self.p] not in (",", "]"):
                step = self.expr()
        return ("s", start, stop, step)


def _blanks(text: str, a: int, b: int) -> bool:
    """Whether text[a:b] is one or more spaces and tabs."""
    return b > a and not text[a:b].strip(" \t")
