"""cgraph: evaluate, differentiate, explain and draw computation graphs, from the command line or Python.

>>> import cgraph_cli as cg
>>> ev = cg.parse("z = (a + b) * (b + c)").eval(a=-1, b=3, c=4)
>>> ev.value, ev.grad
(14.0, {'a': 7.0, 'b': 9.0, 'c': 2.0})

The names below are the public API (:mod:`cgraph_cli.api`); they are loaded on first use, so that
``import cgraph_cli`` stays cheap and imports neither numpy nor any display library.
``%load_ext cgraph_cli`` in a notebook adds the ``%%cgraph`` cell magic.
"""

import _signal
import sys as _sys


def _interrupted_early(signum, frame) -> None:
    """Ctrl-C while the cgraph program is still loading: a quiet exit 130 (nothing is written yet)."""
    import os

    os._exit(130)


def _is_program() -> bool:
    """Whether this process is the cgraph program (its console script or ``python -m cgraph_cli``)."""
    argv = list(getattr(_sys, "orig_argv", ()))  # python -m cgraph_cli: the package loads before its __main__
    if "-m" in argv[:-1] and argv[argv.index("-m") + 1] == "cgraph_cli" or "-mcgraph_cli" in argv:
        return True
    main = _sys.modules.get("__main__")
    name = str(getattr(main, "__file__", None) or "").replace("\\", "/").rsplit("/", 1)[-1]
    return name.removesuffix(".exe") == "cgraph"


# Ctrl-C in the first milliseconds, while the program loads (before main() runs), must end as it does later
# (exit 130, no message) and not with Python's traceback: the handler goes in first, before any other import
# of the package. Only for the cgraph program itself, never in a program that imports cgraph_cli; the
# command line (cli/entry.py) hands Ctrl-C back to Python once the command runs.
if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler and _is_program():
    _signal.signal(_signal.SIGINT, _interrupted_early)


import typing as _typing  # noqa: E402

from cgraph_cli.version import __version__  # noqa: E402

if _typing.TYPE_CHECKING:  # for type checkers and editors: the names as they are loaded below
    from typing import Any

    from cgraph_cli.api import (
        CgraphError,
        CheckReport,
        CheckRow,
        Evaluation,
        Explanation,
        Frame,
        Input,
        Node,
        Picture,
        Program,
        Steps,
        examples,
        load,
        parse,
    )

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
    "__version__",
    "examples",
    "load",
    "load_ipython_extension",
    "parse",
]


def __getattr__(name: str) -> "Any":
    """The API's names, imported from :mod:`cgraph_cli.api` when first asked for."""
    if name in __all__:
        from cgraph_cli import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cgraph_cli' has no attribute {name!r}")


def __dir__() -> "list[str]":
    return sorted(__all__)


def load_ipython_extension(ipython: "Any") -> None:
    """``%load_ext cgraph_cli``: adds the ``%%cgraph`` cell magic, which evaluates the cell's program at the
    values of its ``--at`` (as the command line reads them) and shows the table and the annotated graph::

        %%cgraph --at a=-1,b=3,c=4
        z = (a + b) * (b + c)
    """
    from cgraph_cli.api import parse
    from cgraph_cli.notebook import register_magic

    register_magic(ipython, parse)
