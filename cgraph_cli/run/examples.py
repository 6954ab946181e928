"""The example programs shipped with cgraph: examples/*.cg, reachable by name after ``pip install``.

The wheel carries them as ``cgraph_cli/examples/*.cg`` (pyproject.toml); a checkout (or an editable
install) reads the repository's ``examples/``. An example's name is its file name without ``.cg``
(``lecture``); its description is its first comment line. Every command that reads a program file
accepts a name where no file of that name exists (:func:`resolve`): a real file always wins.
Only the standard library is used here: the start-up fast path of ``cgraph eval`` resolves names too.
"""

from __future__ import annotations

import os
from pathlib import Path

from cgraph_cli.errors import CgraphError, closest

SUFFIX = ".cg"


def folder() -> Path | None:
    """The folder of the shipped examples: inside the installed package, else the repository's examples/."""
    package = Path(__file__).resolve().parent.parent
    inside = package / "examples"
    if inside.is_dir():
        return inside
    repo = package.parent
    if (repo / "grammars" / "cgraph.lark").is_file() and (repo / "examples").is_dir():  # a cgraph checkout
        return repo / "examples"
    return None


def names() -> list[str]:
    """The examples' names, sorted (``lecture``, ``mlp``, ...)."""
    where = folder()
    if where is None:
        return []
    return sorted(p.stem for p in where.glob("*" + SUFFIX) if p.is_file())


def path(name: str) -> Path | None:
    """The shipped file of the example ``name`` (``lecture`` or ``lecture.cg``), or None if there is none."""
    stem = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name
    if not stem or stem in (".", "..") or "/" in stem or os.sep in stem or (os.altsep and os.altsep in stem):
        return None
    where = folder()
    if where is None:
        return None
    candidate = where / (stem + SUFFIX)
    return candidate if candidate.is_file() else None


def description(name: str) -> str:
    """The example's first comment line (what it shows), without the ``#``; ``""`` if it has none."""
    p = path(name)
    if p is None:
        raise unknown(name)
    for line in p.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if text.startswith("#"):
            text = text.lstrip("#").strip()
            if text and not text.startswith("expect:"):
                return text
    return ""


def text(name: str) -> str:
    """The example's program text."""
    p = path(name)
    if p is None:
        raise unknown(name)
    return p.read_text(encoding="utf-8")


def unknown(name: str) -> CgraphError:
    """The refusal of a name that is no example, with the closest name."""
    stem = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name
    best = closest(stem, names())
    return CgraphError(
        f"no example named '{name}'",
        hint=f"did you mean '{best}'? ('cgraph examples' lists them)" if best else "'cgraph examples' lists them",
    )


def resolve(file: str) -> str:
    """The file to read for the program argument ``file``: ``file`` itself when it exists (a real file wins; a
    folder of that name does not) or names no example, else the shipped example it names
    (``lecture`` -> .../examples/lecture.cg)."""
    if file == "-" or (os.path.lexists(file) and not os.path.isdir(file)):
        return file
    p = path(file)
    return str(p) if p is not None else file


def hint_for_missing(file: str) -> str | None:
    """For a program file that does not exist: the example of that file name (``examples/lecture.cg`` outside
    the repository: ``lecture``), or 'did you mean' the closest example name; None if none is close."""
    base = os.path.basename(file)
    stem = base[: -len(SUFFIX)] if base.endswith(SUFFIX) else base
    if os.path.dirname(file):
        if base.endswith(SUFFIX) and path(stem) is not None:
            return f"cgraph ships the example '{stem}': give its name instead of a path ('cgraph examples' lists them)"
        return None
    best = closest(stem, names())
    return f"did you mean the example '{best}'? ('cgraph examples' lists them)" if best else None
