"""Shell completion (bash, zsh, fish): what a Tab after ``cgraph`` offers.

Typer provides ``cgraph --install-completion`` / ``--show-completion`` and answers the shell's requests:
the installed script runs ``cgraph`` with ``_CGRAPH_COMPLETE=complete_bash`` (``complete_zsh``,
``complete_fish``) and the words typed so far in ``COMP_WORDS``/``COMP_CWORD`` (bash) or
``_TYPER_COMPLETE_ARGS`` (zsh, fish). Such a request always goes to Typer (:func:`is_request`; the start-up
fast path of ``cgraph eval`` steps aside), and only then is Typer imported: a plain ``cgraph eval`` pays
nothing for completion.

Commands and options come from Typer itself. :func:`attach` adds what it cannot know:

- the program argument ``FILE`` offers the shipped examples' names, ``.cg`` files and folders;
- an option whose metavar lists its allowed words (``--format table|json|csv``, ``--rankdir LR|TB``)
  offers those words: the metavar the help shows is the one place they are written;
- other file options (``-o``, ``--at-file``, ``--batch``) offer nothing, and the shell completes file names.
"""

from __future__ import annotations

import inspect
import os
import re
from typing import Any, Callable

from cgraph_cli.run import examples
from cgraph_cli.run.request import OPTION

COMPLETE_VAR = "_CGRAPH_COMPLETE"
"""The variable a completion request sets (click's ``_{PROG}_COMPLETE`` for the program ``cgraph``)."""

_WORDS = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._-]*(\|[A-Za-z0-9][A-Za-z0-9:._-]*)+")
_MAX_DEPTH = 4  # how far a lone folder is opened (examples/ -> examples/lecture.cg ...)


def is_request(environ: Any = None) -> bool:
    """Whether this run answers a shell's completion request (it goes to Typer, never to the fast path)."""
    return bool((os.environ if environ is None else environ).get(COMPLETE_VAR))


def choices(metavar: str | None) -> tuple[str, ...]:
    """The allowed words a metavar lists (``table|json|csv``), or () for a placeholder (``FILE|-``, ``N``)."""
    if not metavar or not _WORDS.fullmatch(metavar):
        return ()
    return tuple(metavar.split("|"))


def words(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    """A completion function offering ``allowed``."""

    def complete(incomplete: str) -> list[str]:
        return [w for w in allowed if w.startswith(incomplete)]

    return complete


def program_files(incomplete: str) -> list[Any]:
    """What the program argument offers: example names (with their descriptions), ``.cg`` files and folders.

    A lone folder is opened (``ex`` -> the ``.cg`` files in ``examples/``), so that the shell does not
    stop after the folder's name."""
    items: list[Any] = []
    if not os.path.dirname(incomplete):
        items += [(n, examples.description(n)) for n in examples.names() if n.startswith(incomplete)]
    found = _paths(incomplete)
    for _ in range(_MAX_DEPTH):
        if items or len(found) != 1 or not found[0].endswith("/"):
            break
        inside = _paths(found[0])
        if not inside:
            break
        found = inside
    names = {n if isinstance(n, str) else n[0] for n in items}
    return items + [p for p in found if p not in names]


def _paths(incomplete: str) -> list[str]:
    """The folders (with a trailing ``/``) and ``.cg`` files whose path starts with ``incomplete``."""
    head, prefix = os.path.split(incomplete)
    folder = os.path.expanduser(head) if head else "."
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except (OSError, ValueError):
        return []
    out = []
    for e in entries:
        if not e.name.startswith(prefix) or (e.name.startswith(".") and not prefix.startswith(".")):
            continue
        shown = os.path.join(head, e.name) if head else e.name
        try:
            if e.is_dir():
                out.append(shown + "/")
            elif e.name.endswith(examples.SUFFIX):
                out.append(shown)
        except OSError:
            continue
    return out


def attach(app: Any) -> None:
    """Give the commands' parameters the completions described above (those that have none yet)."""
    from typer.models import ArgumentInfo, ParameterInfo

    for command in app.registered_commands:
        for p in inspect.signature(command.callback).parameters.values():
            info = p.default
            if not isinstance(info, ParameterInfo) or info.autocompletion is not None:
                continue
            if isinstance(info, ArgumentInfo) and info.metavar == OPTION["file"].metavar:
                info.autocompletion = program_files
            elif allowed := choices(info.metavar):
                info.autocompletion = words(allowed)
